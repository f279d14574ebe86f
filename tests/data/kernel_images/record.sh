#!/bin/sh
# Record the running kernel's x86-64 JIT image of each example program (needs root or
# CAP_BPF, net.core.bpf_jit_enable=1 and readable /proc/kallsyms addresses).  The
# images are checked under unicorn on every machine (tests/test_native.py); record
# them again when an example object is rebuilt.
set -e
cd "$(dirname "$0")/../../.."
out=tests/data/kernel_images
python -m xsim.cli kernel-image examples/counter.o --prog count -o $out/count.json
for p in firewall l4_lb tc_marker dns_filter; do
    python -m xsim.cli kernel-image examples/nic/$p.o --prog $p -o $out/$p.json
done
for p in encap decap; do
    python -m xsim.cli kernel-image examples/nic/ipip.o --prog $p -o $out/$p.json
done
for p in skb_fields xdp_fields; do
    python -m xsim.cli kernel-image tests/data/nic/native_fields.o --prog $p -o $out/$p.json
done
for p in native_lru native_cpu; do
    python -m xsim.cli kernel-image tests/data/nic/$p.o --prog $p -o $out/$p.json
done
for p in drop tx redirect firewall_ports katran; do
    python -m xsim.cli kernel-image examples/offload/$p.o --prog $p -o $out/$p.json
done
python -m xsim.cli kernel-image examples/offload/firewall.o --prog firewall \
    -o $out/offload_firewall.json
