"""Generated programs checked per second per ISA, and where the time goes.

N generated programs of 50 instructions (xsim/crosscheck/generate.py), each run once
on the interpreter and then, for each ISA in turn, compiled with llvmlite, linked,
run under unicorn and compared with the interpreter's RunResult, on one core, as a
campaign does.  The first ISA lifts the program; the others reuse its IR.  Per ISA:
programs per second of that ISA's own time and its split between llvmlite (lift,
optimize, code generation), linking and unicorn (mapping, the run, helpers).  The
issue's mark: 200 programs per second per ISA.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

from xsim.conformance import HELPERS
from xsim.crosscheck import diff, emulate, link, targets
from xsim.crosscheck.generate import MEMORY_SIZE, generate, random_memory
from xsim.isa import interp as ip
from xsim.jit import engine
from xsim.runtime import Program


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=100)
    ap.add_argument("--insns", type=int, default=50)
    args = ap.parse_args(argv)
    os.environ["XSIM_JIT_FORK"] = "0"      # one core, no child processes
    cases = []
    for seed in range(args.programs):
        rng = random.Random(seed)
        code = generate(rng, args.insns, helpers=True, calls=True, mem_size=MEMORY_SIZE)
        cases.append((code, random_memory(rng, MEMORY_SIZE)))
    print(f"{args.programs} generated programs of {args.insns} instructions, one core, each "
          "checked on every ISA in turn (the first ISA lifts it, the others reuse the IR)")
    print(f"{'isa':9} {'programs/s':>10} {'llvmlite':>9} {'link':>7} {'unicorn':>8} "
          f"{'differ':>6}")
    names = list(targets.ISAS)
    split = {n: dict.fromkeys(("llvmlite", "link", "unicorn"), 0.0) for n in names}
    differ = dict.fromkeys(names, 0)
    interp = 0.0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XSIM_CACHE_DIR"] = cache      # cold compiles, then read back
        t_all = time.perf_counter()
        for code, memory in cases:
            t0 = time.perf_counter()
            ref = diff.run_tier(code, memory, "interp")
            interp += time.perf_counter() - t0
            for name, isa in targets.ISAS.items():
                t1 = time.perf_counter()
                prog = Program.from_bytes(code, helpers=HELPERS)
                try:
                    obj, _, _ = engine.object_for(prog._code, prog._st[ip.C_BASE:], prog.name,
                                                  isa.triple, isa.cpu, isa.features,
                                                  isa.code_model)
                except Exception:       # noqa: BLE001 - the run reports it as a verdict
                    obj = None
                t2 = time.perf_counter()
                if obj is not None:
                    link.link(obj, name, emulate.IMAGE_BASE)
                t3 = time.perf_counter()
                other = diff.run_tier(code, memory, name)   # links again, maps, runs
                t4 = time.perf_counter()
                differ[name] += diff.between(ref, other, ("interp", name)) is not None
                split[name]["llvmlite"] += t2 - t1
                split[name]["link"] += t3 - t2
                split[name]["unicorn"] += max(0.0, (t4 - t3) - (t3 - t2))
        total = time.perf_counter() - t_all
    for name in names:
        spent = sum(split[name].values())
        pct = {k: 100 * v / spent for k, v in split[name].items()}
        print(f"{name:9} {args.programs / spent:10.1f} {pct['llvmlite']:8.0f}% "
              f"{pct['link']:6.0f}% {pct['unicorn']:7.0f}% {differ[name]:6d}")
    print(f"all three: {args.programs / total:.1f} programs/s checked on every ISA "
          f"(the interpreter's reference runs {100 * interp / total:.0f}% of the time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
