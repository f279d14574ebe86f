#!/bin/sh
# Rebuild the networking test objects with xsim's compiler driver: every *.c here,
# fib_params.c (bpf_fib_lookup on parameters in the frame, for tests/test_fib_kernel.py)
# among them.
set -e
cd "$(dirname "$0")/../../.."
for f in tests/data/nic/*.c; do python -m xsim.cli cc "$f" -o "${f%.c}.o"; done
