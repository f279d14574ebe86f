"""JIT speed on the four bench programs, beside the interpreter and gcc -O2, in one run.

For each program: ns per run on the JIT tier (``repeat`` runs inside native
code), on the interpreter, and of the same C built with gcc -O2 (where gcc
exists; the JIT's and gcc's each the best of five rounds that time both, since
a 2-vCPU VM has slow spells of a second or more), as multiples of native, next
to uBPF's x86-64 JIT and the Linux kernel's JIT as measured for issue 7, and of
the program's floor (jit_floor.py: its eBPF code compiled by LLVM -O3 with no
checks, budget or counts, which no checked JIT of that code can beat); then the
JIT's compile time (cold, and loaded from its disk cache) and the cost of one
Python-level ``run()``.

    python benches/bench_jit.py [--json] [--seconds S]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import xsim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_interp import (PROGRAMS, bench_program, bench_setup, call_cost_us,  # noqa: E402
                          native_harness)
from jit_floor import floor_ns  # noqa: E402

#: ns per run / gcc -O2 ns, issue 7: uBPF's x86-64 JIT and the kernel's JIT
UBPF_JIT = {"alu_loop": 1.05, "pkt_parse": 1.82, "checksum_1500": 1.63, "stack_sieve": 2.21}
KERNEL_JIT = {"alu_loop": 0.99, "pkt_parse": 0.95, "checksum_1500": 1.05, "stack_sieve": None}
#: rounds of JIT and gcc timings, the best of them kept for each
ROUNDS = 5


def ns_per_run(prog: xsim.Program, memory: bytes, tier: str, seconds: float) -> float:
    first = prog.run(memory=memory, tier=tier).raise_for_error()
    rate = 2e9 if tier == "jit" else 2e8
    repeat = max(1, int(seconds * rate / max(first.insns, 1)))
    return min(prog.run(memory=memory, repeat=repeat, tier=tier).duration_ns for _ in range(3))


def compile_times(progs: Path) -> tuple[float, float]:
    """(cold compile, load from the disk cache) in seconds, for pkt_parse."""
    from xsim.jit import driver
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XSIM_CACHE_DIR"] = cache
        try:
            cold = driver.native(bench_program(progs, "pkt_parse")[0]).code
            warm = driver.native(bench_program(progs, "pkt_parse")[0]).code
        finally:
            del os.environ["XSIM_CACHE_DIR"]
    return cold.compile_s + cold.load_s, warm.compile_s + warm.load_s


def jit_and_native(progs: Path, seconds: float, rounds: int = ROUNDS
                   ) -> tuple[dict[str, float], dict[str, float] | None]:
    """({program: JIT ns per run}, {program: gcc -O2 ns per run} or None without gcc):
    each the best of ``rounds`` rounds that time every program on both, one after the
    other, so that a slow spell of a shared machine does not fall on one side only."""
    built = {name: bench_program(progs, name) for name in PROGRAMS}
    jit: dict[str, float] = {}
    native: dict[str, float] = {}
    with native_harness(progs) as gcc:
        for _ in range(rounds):
            for name, ns in (gcc(seconds / rounds) if gcc else {}).items():
                native[name] = min(native.get(name, ns), ns)
            for name, (prog, memory) in built.items():
                ns = ns_per_run(prog, memory, "jit", seconds / rounds)
                jit[name] = min(jit.get(name, ns), ns)
    return jit, native or None


def main(argv: list[str] | None = None) -> int:
    args, progs = bench_setup(__doc__, argv)
    if progs is None:
        return 2
    jit, native = jit_and_native(progs, args.seconds)
    rows = {}
    print(f"{'program':14} {'jit ns':>10} {'interp ns':>11} {'native ns':>10} {'jit x':>7} "
          f"{'interp x':>9} {'uBPF jit x':>10} {'kernel x':>9} {'floor x':>8}")
    for name in PROGRAMS:
        prog, memory = bench_program(progs, name)
        row = {"jit_ns": jit[name],
               "interp_ns": ns_per_run(prog, memory, "interp", args.seconds / 2)}
        nat = native[name] if native else None
        row["native_ns"] = nat
        row["floor_ns"], floor_r0, row["floor_build"] = floor_ns(prog, memory, args.seconds)
        if floor_r0 != prog.run(memory=memory).r0:
            raise SystemExit(f"{name}: the floor build returned {floor_r0:#x}, not the "
                             "interpreter's r0")
        kernel = KERNEL_JIT[name]
        if nat:
            row["jit_ratio"], row["interp_ratio"] = row["jit_ns"] / nat, row["interp_ns"] / nat
            row["floor_ratio"] = row["floor_ns"] / nat
        rows[name] = row
        ratios = (f"{row['jit_ratio']:6.2f}x {row['interp_ratio']:8.1f}x" if nat
                  else f"{'-':>7} {'-':>9}")
        floor = (f"{row['floor_ratio']:7.2f}x" if nat else f"{row['floor_ns']:6.1f}ns") + \
            f" ({row['floor_build']})"
        print(f"{name:14} {row['jit_ns']:10.1f} {row['interp_ns']:11.1f} "
              f"{nat if nat else float('nan'):10.1f} {ratios} {UBPF_JIT[name]:9.2f}x "
              f"{(f'{kernel:.2f}x' if kernel else '-'):>9} {floor}")
    cold, warm = compile_times(progs)
    cost = call_cost_us(progs, tier="jit")
    print(f"jit compile of pkt_parse: {cold * 1e3:.1f} ms cold, {warm * 1e3:.1f} ms from the "
          "disk cache")
    print(f"one Python-level run(tier='jit') of pkt_parse: {cost:.2f} us")
    if args.json:
        print(json.dumps({"bench": "jit", "programs": rows, "compile_ms": cold * 1e3,
                          "cached_ms": warm * 1e3, "run_call_us": cost}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
