#!/bin/sh
# Rebuild the BTF test objects from their C sources (run from anywhere).
# The objects are committed so that the tests need no compiler.
# -fdebug-prefix-map keeps this directory's absolute path out of the line info
# (BTF.ext file names are the compile directory joined with the file name).
set -e
cd "$(dirname "$0")"
for src in *.c; do
	python -m ziglang cc -target bpfel-freestanding -O2 -g -fdebug-prefix-map="$PWD"=. \
		-c "$src" -o "${src%.c}.o"
done
