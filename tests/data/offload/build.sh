#!/bin/sh
# Rebuild the offload-rule test objects with xsim's compiler driver (ziglang's clang).
# hxdp_*.c are built for -mcpu=v2: hXDP's compiler knows no 32-bit jumps (ISA v3).
set -e
cd "$(dirname "$0")/../../.."
for f in tests/data/offload/*.c; do
    case "$f" in
    */hxdp_*.c)
        python -c 'import sys; from xsim.cc import compile_c; compile_c(sys.argv[1], sys.argv[2], cflags=["-mcpu=v2"])' "$f" "${f%.c}.o" ;;
    *)
        python -m xsim.cli cc "$f" -o "${f%.c}.o" ;;
    esac
done
