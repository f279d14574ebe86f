#!/bin/sh
# Rebuild the CO-RE test object with xsim's compiler driver.
set -e
cd "$(dirname "$0")/../../.."
python -m xsim.cli cc tests/data/core/core.c -o tests/data/core/core.o
