#!/bin/sh
# Rebuild the BTF test objects from their C sources (run from anywhere).
# The objects are committed so that the tests need no compiler.
set -e
cd "$(dirname "$0")"
for src in *.c; do
	python -m ziglang cc -target bpfel-freestanding -O2 -g -c "$src" -o "${src%.c}.o"
done
