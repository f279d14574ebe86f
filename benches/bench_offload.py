"""Simulated packets per second of wall time: a 10^6-packet study on each profile.

The Katran-like program's workload over the shipped 64-byte capture, offered at each
target's line rate (so every queue is exercised, overflow drops included); the
workload is built once (that time is printed apart).  Run:
    python benches/bench_offload.py [--packets N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xsim  # noqa: E402
from xsim.timing.profile import all_targets  # noqa: E402
from xsim.nic.study import run_study  # noqa: E402
from xsim.nic.workload import from_pcap  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    args = ap.parse_args()
    obj = xsim.load(ROOT / "examples/offload/katran.o")
    from xsim.runtime.testrun import apply_maps_in
    import json
    apply_maps_in(obj, json.loads((ROOT / "examples/offload/katran.maps.json").read_text()))
    t0 = time.perf_counter()
    workload = from_pcap(obj, obj.choose(None), ROOT / "examples/offload/udp64.pcap")
    print(f"workload: {len(workload)} frames of katran in {time.perf_counter() - t0:.2f} s")
    run_study(all_targets()[0], workload, packets=1000)      # numba compile / cache load
    for profile in all_targets():
        t0 = time.perf_counter()
        r = run_study(profile, workload, packets=args.packets)
        wall = time.perf_counter() - t0
        print(f"{profile.name:16s} {args.packets} packets in {wall:6.2f} s = "
              f"{args.packets / wall / 1e6:5.2f} M simulated packets/s "
              f"(model: {r.mpps:.2f} Mpps, bottleneck {r.bottleneck})")


if __name__ == "__main__":
    main()
