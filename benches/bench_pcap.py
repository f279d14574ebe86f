"""Packets per second of the firewall example over a large capture.

Builds a capture of N packets (default 1,000,000) from the example's
traffic, then prints: start-up (loading the object and the first packet,
numba's cache warm), packets per second of the firewall, and the per-packet
cost outside the program, measured with the smallest XDP program over the
same capture (pcap parse, context set-up, writing every packet out), beside the time a
100-instruction program takes at the interpreter's speed measured in the
same run.  The baseline is the same firewall run one test run per packet
from Python (``run_pcap(batch=False)``, on the first 20,000 packets): what the
compiled per-packet loop replaces.  Then the same for the socket filter and TC
examples, the XDP load balancer and the XDP parser in tail-called stages (the loop
on both tiers over the first 100,000 packets, the baseline on 20,000).

    python benches/bench_pcap.py [--packets N] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import xsim
from xsim.nic.pcap import PcapWriter, read_packets
from xsim.nic.pcaprun import run_pcap
from xsim.runtime.testrun import apply_maps_in

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "nic"


def capture(path: Path, n: int) -> None:
    frames = [p.data for p in read_packets(EXAMPLE / "traffic.pcap")]
    with PcapWriter(path) as w:
        for i in range(n):
            w.write(frames[i % len(frames)], i * 1000)


#: the maps an example's run starts from (those not named start empty)
MAPS_IN = {"firewall": "blocklist.json", "l4_lb": "backends.json"}


def _pps(example: str, pcap: Path, **options) -> float:
    """Packets per second of an example over ``pcap`` (its second run in this process:
    numba's and the JIT's caches warm)."""
    obj = xsim.load(EXAMPLE / f"{example}.o")
    if example in MAPS_IN:
        apply_maps_in(obj, json.loads((EXAMPLE / MAPS_IN[example]).read_text()))
    run_pcap(obj, obj.programs[example], pcap, **options)
    return run_pcap(obj, obj.programs[example], pcap, **options).pps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "big.pcap"
        capture(pcap, args.packets)
        t0 = time.perf_counter()
        obj = xsim.load(EXAMPLE / "firewall.o")
        apply_maps_in(obj, json.loads((EXAMPLE / MAPS_IN["firewall"]).read_text()))
        prog = obj.programs["firewall"]
        one = Path(tmp) / "one.pcap"
        capture(one, 1)
        run_pcap(obj, prog, one)
        startup = time.perf_counter() - t0
        fw = run_pcap(obj, prog, pcap)
        jit_obj = xsim.load(EXAMPLE / "firewall.o")
        apply_maps_in(jit_obj, json.loads((EXAMPLE / MAPS_IN["firewall"]).read_text()))
        t0 = time.perf_counter()
        run_pcap(jit_obj, jit_obj.programs["firewall"], one, tier="jit")
        jit_start = time.perf_counter() - t0
        jit = run_pcap(jit_obj, jit_obj.programs["firewall"], pcap, tier="jit")
        jit_compile = jit_obj.programs["firewall"].hooked()._native.code
        base_obj = xsim.load(ROOT / "benches" / "progs" / "xdp_pass.o")
        # every packet passes, so every packet is also written out
        base = run_pcap(base_obj, base_obj.programs["pass"], pcap, out=Path(tmp) / "out.pcap")
        small = Path(tmp) / "small.pcap"
        capture(small, min(args.packets, 20_000))
        slow_obj = xsim.load(EXAMPLE / "firewall.o")
        apply_maps_in(slow_obj, json.loads((EXAMPLE / MAPS_IN["firewall"]).read_text()))
        slow = run_pcap(slow_obj, slow_obj.programs["firewall"], small, batch=False)
        medium = Path(tmp) / "medium.pcap"
        capture(medium, min(args.packets, 100_000))
        hooks = {name: [_pps(name, medium, tier="interp"), _pps(name, medium, tier="jit"),
                        _pps(name, small, batch=False)]
                 for name in ("dns_filter", "tc_marker", "l4_lb", "dispatch")}
    overhead_us = base.elapsed_s / base.packets * 1e6
    # the interpreter's speed on straight-line code, from the bench programs' figure
    from benches.bench_interp import xsim_run, shared_dir  # noqa: E402
    minsn = xsim_run(shared_dir() / "bench-progs", "pkt_parse", 0.3)["minsn_per_s"]
    hundred_us = 100 / minsn
    print(f"start-up (load + first packet): {startup:.3f} s")
    print(f"firewall: {fw.packets} packets in {fw.elapsed_s:.2f} s: {fw.pps:,.0f} packets/s "
          f"({dict(fw.verdicts)})")
    print(f"firewall, tier jit: {jit.pps:,.0f} packets/s ({jit.pps / fw.pps:.1f}x the "
          f"interpreter); its start-up {jit_start:.3f} s, compile "
          f"{jit_compile.compile_s * 1e3:.1f} ms"
          f"{' (from the disk cache)' if jit_compile.from_cache else ''}, load "
          f"{jit_compile.load_s * 1e3:.1f} ms")
    print(f"baseline, one test run per packet from Python: {slow.pps:,.0f} packets/s "
          f"(compiled loop: {fw.pps / slow.pps:.1f}x)")
    print(f"per-packet cost outside the program (XDP_PASS program): {overhead_us:.2f} us "
          f"({base.pps:,.0f} packets/s); a 100-instruction program takes {hundred_us:.3f} us "
          f"at {minsn:.0f} Minsn/s")
    for name, (loop, jit_pps, one_by_one) in hooks.items():
        print(f"{name}: {loop:,.0f} packets/s in the loop, {jit_pps:,.0f} on the jit tier; "
              f"one test run per packet: {one_by_one:,.0f} ({loop / one_by_one:.1f}x)")
    if args.json:
        print(json.dumps({"bench": "pcap", "packets": fw.packets, "startup_s": startup,
                          "pps": fw.pps, "jit_pps": jit.pps, "per_packet_pps": slow.pps, "overhead_us": overhead_us,
                          "hundred_insns_us": hundred_us,
                          "hooks": {k: dict(zip(("pps", "jit_pps", "per_packet_pps"), v))
                                    for k, v in hooks.items()}}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
