"""Object load time, and map lookups per second from inside a program.

Loads ``benches/progs/ten_maps.o`` (10 maps of 7 types, 5 programs) and
prints the mean time of ``xsim.load`` and of the spec alone; then runs
``benches/progs/lookups.o``, whose two programs make N lookups in a loop, on
an array map (served inside the compiled interpreter) and on a hash map,
and prints lookups per second for each and the ratio to the array program
measured in the same run.

    python benches/bench_maps.py [--json] [--lookups N]
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import xsim
from xsim.elf.loader import load_spec

PROGS = Path(__file__).resolve().parent / "progs"


def mean_ms(fn, seconds: float = 1.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1e3


def lookups_per_s(obj, prog: str, n: int) -> tuple[float, int]:
    run = obj.programs[prog]
    res = run.run(struct.pack("<I", n))
    res.raise_for_error()
    best = min((run.run(struct.pack("<I", n)) for _ in range(3)), key=lambda r: r.duration_ns)
    return n / best.duration_ns * 1e9, best.retval


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--lookups", type=int, default=20000)
    args = ap.parse_args(argv)
    ten = PROGS / "ten_maps.o"
    spec_ms = mean_ms(lambda: load_spec(ten))
    load_ms = mean_ms(lambda: xsim.load(ten))
    obj = xsim.load(ten)
    print(f"load {ten.name}: {len(obj.maps)} maps, {len(obj.programs)} programs: "
          f"{load_ms:.2f} ms (the spec alone: {spec_ms:.2f} ms)")
    obj = xsim.load(PROGS / "lookups.o")
    for i in range(64):
        key, value = struct.pack("<I", i), struct.pack("<Q", i)
        obj.maps["arr"].update(key, value)
        obj.maps["hash"].update(key, value)
    array_rate, array_r0 = lookups_per_s(obj, "array_lookups", args.lookups)
    hash_rate, hash_r0 = lookups_per_s(obj, "hash_lookups", args.lookups)
    assert array_r0 == hash_r0, (array_r0, hash_r0)
    print(f"array lookups: {array_rate / 1e6:8.2f} M/s  (baseline)")
    print(f"hash lookups:  {hash_rate / 1e6:8.2f} M/s  ({hash_rate / array_rate:.3f}x the array)")
    if args.json:
        print(json.dumps({"bench": "maps", "load_ms": load_ms, "spec_ms": spec_ms,
                          "array_lookups_per_s": array_rate, "hash_lookups_per_s": hash_rate,
                          "hash_to_array": hash_rate / array_rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
