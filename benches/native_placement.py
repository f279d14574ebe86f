"""How much the gcc -O2 baseline of the bench programs moves with where its code lands.

bench_jit.py and bench_interp.py divide by one gcc -O2 build of each program, in one
harness.  On these machines the same instructions run at very different speeds at
different addresses (branch prediction and fetch follow the code's placement), so
this builds the same harness with each program's function at 0, 16, ... 112 bytes past
a 128-byte boundary (each program's own offset, whatever the others' sizes) and times
every placement in turn, rounds over all of them.  It prints each program's fastest,
median and slowest placement and how far apart they are: a multiple of gcc that is
smaller than that spread says as much about placement as about the code.

    python benches/native_placement.py [--json] [--seconds S] [--pads N]
"""
from __future__ import annotations

import contextlib
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_interp import PLACEMENT_SPAN, PROGRAMS, bench_setup, native_harness  # noqa: E402

#: bytes between two placements: gcc's function alignment
STEP = 16


def placements(progs: Path, pads: list[int], seconds: float, rounds: int = 2
               ) -> dict[int, dict[str, float]] | None:
    """{pad: {program: best ns per call}} of the harness built with each padding, each
    timed ``rounds`` times in turn (``seconds`` a timing), or None without gcc."""
    with contextlib.ExitStack() as stack:
        runs = {pad: stack.enter_context(native_harness(progs, pad)) for pad in pads}
        if any(run is None for run in runs.values()):
            return None
        best: dict[int, dict[str, float]] = {pad: {} for pad in pads}
        for _ in range(rounds):
            for pad, run in runs.items():
                for name, ns in run(seconds).items():
                    best[pad][name] = min(best[pad].get(name, float("inf")), ns)
        return best


def main(argv: list[str] | None = None) -> int:
    args, progs = bench_setup(__doc__, argv, seconds=0.4, options=lambda ap: ap.add_argument(
        "--pads", type=int, default=PLACEMENT_SPAN // STEP,
        help="placements, STEP bytes apart"))
    if progs is None:
        return 2
    pads = [STEP * k for k in range(args.pads)]
    best = placements(progs, pads, args.seconds)
    if best is None:
        print("native_placement: no gcc on this machine", file=sys.stderr)
        return 2
    print(f"{'program':14} {'pad 0 ns':>10} {'fastest':>10} {'median':>10} {'slowest':>10} "
          f"{'slowest x fastest':>18}")
    rows = {}
    for name in PROGRAMS:
        times = [best[pad][name] for pad in pads]
        lo, hi = min(times), max(times)
        rows[name] = {"pad_ns": dict(zip(pads, times)), "fastest_pad": pads[times.index(lo)]}
        print(f"{name:14} {times[0]:10.1f} {lo:10.1f} {statistics.median(times):10.1f} "
              f"{hi:10.1f} {hi / lo:17.2f}x")
    if args.json:
        print(json.dumps({"bench": "native_placement", "programs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
