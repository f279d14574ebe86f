"""xsim: run eBPF programs without a kernel."""
