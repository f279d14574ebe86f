"""``xsim targets`` and ``xsim offload``: the library side of the two subcommands.

``offload`` builds the program's workload from one run over the capture (or reads it
from the records file of an earlier capture run), then runs a study per target (side
by side), at one rate, at the line rate, or over a sweep of offered loads; it prints a
rich table, or one JSON object, and can draw a figure.
``offload --check`` asks xsim.nic.offload's rule checker whether each target takes
the program at all (exit 0 yes, 6 no).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import XsimError

if TYPE_CHECKING:       # the library is imported when a command runs, not at start-up
    from ..timing.profile import Profile
    from .study import StudyResult
    from .workload import Workload

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOT_OFFLOADABLE = 0, 2, 6
SWEEP_POINTS = 10
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(mpps|kpps|pps|gbps)?\s*$", re.I)


def parse_rate(text: str) -> tuple[float, str]:
    """``--rate``: a number of Mpps, or with a unit: ``500kpps``, ``40Gbps``."""
    m = _RATE.match(text)
    if not m:
        raise XsimError(f"--rate {text!r}: give Mpps (e.g. 10), or 500kpps, 40Gbps")
    value, unit = float(m.group(1)), (m.group(2) or "mpps").lower()
    return value, unit


def rate_mpps(value: float, unit: str, workload: Workload) -> float:
    if unit == "gbps":     # L2 bits of this capture's frames
        return value * 1e3 / (8 * float(workload.len_in.mean()))
    return value * {"mpps": 1.0, "kpps": 1e-3, "pps": 1e-6}[unit]


def targets_table() -> "rich.table.Table":  # noqa: F821
    from rich.table import Table

    from ..timing.profile import all_targets
    table = Table(title="xsim targets (shipped profiles; $XSIM_TARGETS directories first)")
    for col in ("target", "kind", "units", "clock", "link", "offload rules", "models"):
        table.add_column(col)
    for p in all_targets():
        threads = f" x {p.threads} threads" if p.threads > 1 else ""
        lanes = f" x {p.vliw['lanes']} lanes" if p.kind == "vliw" else ""
        table.add_row(p.name, p.kind, f"{p.cores}{threads}{lanes}", f"{p.mhz:g} MHz",
                      f"{p.link['ports']:g} x {p.link['gbps']:g}G", p.offload_rules or "-",
                      p.models)
    return table


def cmd_targets(args: argparse.Namespace) -> int:
    from ..timing.profile import all_targets
    if args.json:
        print(json.dumps([{"name": p.name, "kind": p.kind, "models": p.models,
                           "cores": p.cores, "threads": p.threads, "mhz": p.mhz,
                           "offload_rules": p.offload_rules, "file": str(p.path)}
                          for p in all_targets()]))
        return EXIT_OK
    from rich.console import Console
    Console().print(targets_table())
    return EXIT_OK


def _check(args: argparse.Namespace, profiles: list[Profile]) -> int:
    """--check: every refusal of every target; exit 6 if any target refuses."""
    from ..runtime.object import load
    from .offload import refusals
    obj = load(args.obj)
    prog = obj.choose(args.prog)
    report = {}
    for p in profiles:
        found = refusals(obj, prog.name, p.offload_rules) if p.offload_rules else []
        report[p.name] = [str(r) for r in found]
    if args.json:
        print(json.dumps({"program": prog.name, "targets": {
            n: {"offloadable": not r, "refusals": r} for n, r in report.items()}}))
    else:
        for name, found in report.items():
            rules = next(p.offload_rules for p in profiles if p.name == name)
            if not found:
                print(f"{name}: {prog.name} can be offloaded"
                      + ("" if rules else " (the target runs any XDP program)"))
            for r in found:
                print(f"{name}: refused: {r}")
    return EXIT_NOT_OFFLOADABLE if any(report.values()) else EXIT_OK


def workload_of(args: argparse.Namespace) -> Workload:
    """The workload of --pcap (a run over the capture, after --maps-in) or --records."""
    from ..runtime.object import load
    from ..runtime.testrun import apply_maps_in
    from .workload import from_pcap, from_records
    obj = load(args.obj)
    prog = obj.choose(args.prog)
    if args.records:
        return from_records(obj, prog, args.records, limit=args.limit)
    if args.maps_in:
        try:
            apply_maps_in(obj, json.loads(Path(args.maps_in).read_text()))
        except json.JSONDecodeError as exc:
            raise XsimError(f"{args.maps_in}: not JSON: {exc}") from None
    return from_pcap(obj, prog, args.pcap, limit=args.limit)


def run(args: argparse.Namespace) -> dict:
    """The studies ``xsim offload`` asks for, as plain data (what --json prints)."""
    from ..timing.profile import find_target
    from .study import (DEFAULT_PACKETS, check_cores, check_rate, line_rate_mpps, path_costs,
                        run_study)
    profiles = [find_target(t) for t in args.target]
    packets = DEFAULT_PACKETS if args.packets is None else args.packets
    workload = workload_of(args)
    for p in profiles:          # refuse a bad setting before any simulation runs
        check_cores(p, args.cores)
    out = {"workload": workload.summary(), "targets": {}}
    rate = parse_rate(args.rate) if args.rate else None
    for p in profiles:
        costs = path_costs(p, workload)
        if args.sweep:
            line = line_rate_mpps(p, workload)
            loads = [line * (k + 1) / SWEEP_POINTS for k in range(SWEEP_POINTS)]
            per = max(packets // SWEEP_POINTS, 1000)
            results = [run_study(p, workload, mpps=r, cores=args.cores, packets=per,
                                 costs=costs) for r in loads]
        else:
            mpps = check_rate(p, workload, rate_mpps(*rate, workload)) if rate else None
            results = [run_study(p, workload, mpps=mpps, cores=args.cores,
                                 packets=packets, costs=costs)]
        entry = {"studies": results}
        if costs.schedules:
            entry["static_ipc"] = {n: s.static_ipc for n, s in costs.schedules.items()}
        out["targets"][p.name] = entry
    return out


def _as_json(out: dict) -> dict:
    return {"workload": out["workload"], "targets": {
        name: {**{k: v for k, v in e.items() if k != "studies"},
               "studies": [r.to_dict() for r in e["studies"]]}
        for name, e in out["targets"].items()}}


def print_table(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    w = out["workload"]
    console = Console()
    console.print(f"{w['program']} over {w['source']}: {w['packets']} packets, "
                  f"{w['paths']} paths, {w['mean_insns']:.1f} instructions per packet, "
                  + ", ".join(f"{k} {v}" for k, v in w["verdicts"].items()))
    table = Table(title="offload study")
    for col in ("target", "cores", "offered Mpps", "Mpps", "Gbps", "p50 us", "p99 us",
                "p99.9 us", "drops", "bottleneck", "utilisation"):
        table.add_column(col, justify="right" if col not in ("target", "bottleneck",
                                                             "utilisation") else "left")
    for name, entry in out["targets"].items():
        for r in entry["studies"]:
            util = ", ".join(f"{k} {v:.0%}" for k, v in
                             sorted(r.utilisation.items(), key=lambda kv: -kv[1])[:3])
            table.add_row(name, str(r.cores), f"{r.offered_mpps:.2f}", f"{r.mpps:.2f}",
                          f"{r.gbps:.2f}", f"{r.latency_us['p50']:.2f}",
                          f"{r.latency_us['p99']:.2f}", f"{r.latency_us['p99.9']:.2f}",
                          f"{r.drop_rate:.1%}", r.bottleneck, util)
        if "static_ipc" in entry:
            ipc = entry["studies"][-1].ipc
            console.print(f"{name}: VLIW static IPC "
                          + ", ".join(f"{k} {v:.2f}" for k, v in entry["static_ipc"].items())
                          + (f", as run {ipc:.2f}" if ipc is not None else ""))
    console.print(table)


def plot(out: dict, path: str) -> None:
    """Throughput vs offered load per target, latency CDF, utilisation bars."""
    import matplotlib
    import numpy as np
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, entry in out["targets"].items():
        studies: list[StudyResult] = entry["studies"]
        ax1.plot([r.offered_mpps for r in studies], [r.mpps for r in studies], "o-",
                 label=name)
        last = studies[-1]
        lat = np.sort(last.latencies_us)
        if len(lat):
            ax2.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=name)
    ax1.set(xlabel="offered load (Mpps)", ylabel="throughput (Mpps)",
            title="throughput vs offered load")
    ax2.set(xlabel="latency (us)", ylabel="CDF", xscale="log",
            title="latency at the highest load")
    names = list(out["targets"])
    stages = sorted({s for e in out["targets"].values() for s in e["studies"][-1].utilisation})
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        util = out["targets"][name]["studies"][-1].utilisation
        ax3.bar(np.arange(len(stages)) + k * width, [util.get(s, 0.0) for s in stages],
                width, label=name)
    ax3.set_xticks(np.arange(len(stages)) + width * (len(names) - 1) / 2, stages,
                   rotation=45, ha="right")
    ax3.set(ylabel="utilisation", title="resources at the highest load", ylim=(0, 1.05))
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_offload(args: argparse.Namespace) -> int:
    from ..timing.profile import find_target
    profiles = [find_target(t) for t in args.target]
    if args.check:
        return _check(args, profiles)
    if not (args.pcap or args.records):
        raise XsimError("offload needs --pcap FILE (the capture the program runs over) or "
                        "--records FILE (what `xsim run --pcap F --records FILE` wrote), "
                        "or --check")
    if args.records and args.maps_in:
        raise XsimError("--maps-in goes with --pcap: a records file holds what its own run "
                        "did, with the maps that run had")
    if args.rate and args.sweep:
        raise XsimError("--rate and --sweep are exclusive: --sweep offers 10% to 100% of "
                        "each target's line rate")
    out = run(args)
    if args.plot:
        plot(out, args.plot)
    if args.json:
        print(json.dumps(_as_json(out)))
    else:
        print_table(out)
        if args.plot:
            print(f"figure: {args.plot}")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``targets`` and ``offload`` to the ``xsim`` command's subcommands."""
    p = sub.add_parser("targets",
                       help="list the hardware target profiles (shipped, and in $XSIM_TARGETS)")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("offload", help="what-if: throughput, latency and the bottleneck of "
                       "an XDP program on SmartNIC, FPGA and host targets, from its run over "
                       "a capture; --check: can the target take it at all")
    p.add_argument("obj", help="the ELF object")
    p.add_argument("--prog", help="the program: function or section name")
    p.add_argument("--target", action="append", required=True,
                   help="a profile name (xsim targets) or a .toml path; repeat to compare")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pcap", help="the capture the program runs over (the workload)")
    source.add_argument("--records", metavar="R.jsonl",
                        help="the workload from the records of a capture run (`xsim run OBJ "
                             "--pcap F --records R.jsonl`) instead")
    p.add_argument("--maps-in", help="JSON list of map entries to apply before the run")
    p.add_argument("--rate", help="offered load: Mpps, or 500kpps, 40Gbps (default: the "
                                  "target's line rate)")
    p.add_argument("--sweep", action="store_true",
                   help="offer 10%% to 100%% of each target's line rate")
    p.add_argument("--cores", type=int, help="execution units to use (default: the "
                                             "profile's cores.default)")
    p.add_argument("--packets", type=int,
                   help="packets per study, the capture cycled (default: the study's, "
                        "xsim.nic.study.DEFAULT_PACKETS)")
    p.add_argument("--limit", type=int, help="use only the capture's first N frames (the "
                                             "first N records)")
    p.add_argument("--check", action="store_true",
                   help="list every reason each target refuses the program (exit 6 if one "
                        "does)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="draw throughput, latency CDF and "
                                                     "utilisation")
    p.set_defaults(func=cmd_offload)
