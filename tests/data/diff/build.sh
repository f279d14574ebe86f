#!/bin/sh
# Rebuild the differential-test objects with xsim's compiler driver (ziglang's clang).
set -e
cd "$(dirname "$0")"
for f in *.c; do python -m xsim.cli cc "$f" -o "${f%.c}.o"; done
