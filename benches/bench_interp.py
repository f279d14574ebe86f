"""Interpreter speed on the four bench programs, against the same C built with gcc -O2.

For each program of ``shared/bench-progs`` it prints ns per run (``repeat``
keeps the loop inside the compiled core), million eBPF instructions per
second, and the ratio to native code timed in the same run, beside the ratio
uBPF's C interpreter reaches on these machines (the target: at or below it).
It also prints what one Python-level ``Program.run`` call of pkt_parse costs.

    python benches/bench_interp.py [--json] [--seconds S]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import xsim
from xsim.elf import read_programs

PROGRAMS = ("alu_loop", "pkt_parse", "checksum_1500", "stack_sieve")
#: uBPF interpreter time / gcc -O2 time, measured on 2 vCPU AMD EPYC Zen 4 (issue 4).
UBPF_RATIO = {"alu_loop": 56, "pkt_parse": 78, "checksum_1500": 105, "stack_sieve": 170}

_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef int (*fn_t)(void *, unsigned long);
%(decls)s
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec;
}
int main(int argc, char **argv) {
    fn_t volatile fns[] = { %(fns)s };
    double budget = atof(argv[1]) * 1e9;
    for (int i = 0; i < %(n)d; i++) {
        FILE *f = fopen(argv[2 + i], "rb");
        static unsigned char mem[65536];
        unsigned long len = fread(mem, 1, sizeof mem, f);
        fclose(f);
        long iters = 1; double dt = 0; int r = 0;
        for (;;) {
            double t0 = now();
            for (long k = 0; k < iters; k++) r = fns[i](mem, len);
            dt = now() - t0;
            if (dt > budget) break;
            iters *= 2;
        }
        /* the best of three rounds, as xsim's own figures are */
        for (int round = 0; round < 2; round++) {
            double t0 = now();
            for (long k = 0; k < iters; k++) r = fns[i](mem, len);
            double t = now() - t0;
            if (t < dt) dt = t;
        }
        printf("%%d %%.3f %%d\n", i, dt / iters, r);
    }
    return 0;
}
"""


def shared_dir() -> Path:
    env = os.environ.get("XSIM_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


#: the span a placement is an offset into (native_object): twice a 64-byte fetch line
PLACEMENT_SPAN = 128
#: what puts a program's function ``pad`` bytes past a PLACEMENT_SPAN boundary: top-level
#: assembly that gcc emits (with -fno-toplevel-reorder) before the function, in the same
#: section, whose alignment it raises, so the link keeps the offset whatever comes first
_PAD = '__asm__(".text\\n.p2align %d\\n%%s");\n' % (PLACEMENT_SPAN.bit_length() - 1)


def native_object(gcc: str, progs: Path, name: str, out: Path, pad: int | None = None
                  ) -> Path:
    """A bench program's C built with gcc -O2 into ``out``, its function named
    ``native_<name>``; ``pad`` (a multiple of 16, gcc's function alignment): the
    function starts that many bytes past a PLACEMENT_SPAN boundary in any link, so one
    program's placement does not move with the sizes of the others (native_placement)."""
    padding = []
    if pad is not None:
        (out / "pad.h").write_text(_PAD % (f".skip {pad}, 0x90\\n" if pad else ""))
        padding = ["-fno-toplevel-reorder", "-include", str(out / "pad.h")]
    obj = out / f"{name}.o"
    subprocess.run([gcc, "-O2", *padding, "-c", f"-Dprog=native_{name}", "-I", str(progs),
                    str(progs / f"{name}.c"), "-o", str(obj)], check=True)
    return obj


@contextlib.contextmanager
def native_harness(progs: Path, pad: int | None = None
                   ) -> Iterator[Callable[[float], dict[str, float]] | None]:
    """The bench programs built natively with gcc -O2 into one harness (None without
    gcc): a callable that times them all, ``seconds`` in all, and gives the ns per call
    of each; it may be called again, between other timings.  ``pad``: each program's
    function that many bytes past a PLACEMENT_SPAN boundary (native_object); None: where
    a plain build of the harness puts it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        objs = [str(native_object(gcc, progs, name, Path(tmp), pad)) for name in PROGRAMS]
        src = Path(tmp) / "harness.c"
        src.write_text(_HARNESS % {
            "decls": "\n".join(f"int native_{n}();" for n in PROGRAMS),
            "fns": ", ".join(f"(fn_t)native_{n}" for n in PROGRAMS), "n": len(PROGRAMS)})
        exe = Path(tmp) / "harness"
        subprocess.run([gcc, "-O2", str(src), *objs, "-o", str(exe)], check=True)

        def run(seconds: float) -> dict[str, float]:
            out = subprocess.run([str(exe), str(seconds / 4),
                                  *(str(progs / f"{n}.mem") for n in PROGRAMS)],
                                 check=True, capture_output=True, text=True).stdout
            return {PROGRAMS[int(i)]: float(ns)
                    for i, ns, _ in (line.split() for line in out.splitlines())}
        yield run


def native_ns(progs: Path, seconds: float) -> dict[str, float] | None:
    """ns per call of each program built natively with gcc -O2, or None without gcc."""
    with native_harness(progs) as run:
        return None if run is None else run(seconds)


def bench_program(progs: Path, name: str) -> tuple[xsim.Program, bytes]:
    """A bench program's ``prog`` function as a Program, and the memory it runs on."""
    (code,) = [p.code for p in read_programs(progs / f"{name}.bpf.o") if p.function == "prog"]
    return xsim.Program.from_bytes(code), (progs / f"{name}.mem").read_bytes()


def xsim_run(progs: Path, name: str, seconds: float) -> dict:
    prog, memory = bench_program(progs, name)
    first = prog.run(memory=memory).raise_for_error()
    repeat = max(1, int(seconds * 2e8 / max(first.insns, 1)))
    best = min((prog.run(memory=memory, repeat=repeat) for _ in range(3)),
               key=lambda r: r.duration_ns)
    return {"r0": best.retval, "insns": best.insns, "ns_per_run": best.duration_ns,
            "minsn_per_s": best.insns / best.duration_ns * 1e3}


def call_cost_us(progs: Path, calls: int = 20000, tier: str = "interp") -> float:
    """Mean wall time of one Python-level run() of pkt_parse on ``tier``, the whole call."""
    prog, memory = bench_program(progs, "pkt_parse")
    for _ in range(1000):
        prog.run(memory=memory, tier=tier)
    t0 = time.perf_counter()
    for _ in range(calls):
        prog.run(memory=memory, tier=tier)
    return (time.perf_counter() - t0) / calls * 1e6


def bench_setup(doc: str, argv: list[str] | None, seconds: float = 0.5,
                options: Callable[[argparse.ArgumentParser], None] | None = None
                ) -> tuple[argparse.Namespace, Path | None]:
    """The options every bench-program bench takes (``options`` adds a bench's own), and
    where the programs are (None, said on stderr, when they are not there)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    ap.add_argument("--seconds", type=float, default=seconds, help="time per measurement")
    if options is not None:
        options(ap)
    args = ap.parse_args(argv)
    progs = shared_dir() / "bench-progs"
    if not progs.is_dir():
        print(f"bench programs not found in {progs} (set XSIM_SHARED_DIR)", file=sys.stderr)
        return args, None
    return args, progs


def main(argv: list[str] | None = None) -> int:
    args, progs = bench_setup(__doc__, argv)
    if progs is None:
        return 2
    native = native_ns(progs, args.seconds)
    rows = {}
    print(f"{'program':14} {'r0':>10} {'insns':>9} {'ns/run':>12} {'Minsn/s':>8} "
          f"{'native ns':>10} {'x native':>9} {'uBPF x':>7}")
    for name in PROGRAMS:
        row = xsim_run(progs, name, args.seconds)
        if native:
            row["native_ns"] = native[name]
            row["ratio"] = row["ns_per_run"] / native[name]
        row["ubpf_ratio"] = UBPF_RATIO[name]
        rows[name] = row
        nat = f"{row['native_ns']:10.1f} {row['ratio']:8.1f}x" if native else f"{'-':>10} {'-':>9}"
        print(f"{name:14} {row['r0']:#10x} {row['insns']:9d} {row['ns_per_run']:12.1f} "
              f"{row['minsn_per_s']:8.1f} {nat} {UBPF_RATIO[name]:6d}x")
    cost = call_cost_us(progs)
    print(f"one Python-level run() of pkt_parse: {cost:.2f} us")
    if args.json:
        print(json.dumps({"bench": "interp", "programs": rows, "run_call_us": cost,
                          "native": native is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
