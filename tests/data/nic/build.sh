#!/bin/sh
# Rebuild the networking test objects with xsim's compiler driver.
set -e
cd "$(dirname "$0")/../../.."
for f in tests/data/nic/*.c; do python -m xsim.cli cc "$f" -o "${f%.c}.o"; done
