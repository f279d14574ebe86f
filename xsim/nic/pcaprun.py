"""Run a program over a packet capture: one test run per packet, maps kept between them.

Each Ethernet frame of the capture goes through its hook's test run, as
``xsim run --data-in`` would run it; the packets that leave (XDP_PASS,
XDP_TX, each redirect target) are written to their own pcap files with the
program's changes.  Frames that cannot be run (another link type, a
snaplen-truncated capture, a frame the test run refuses) are counted with a
message, never crashed on.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import XsimError
from ..runtime.hooks import HOOKS
from ..runtime.object import Object, ObjectProgram
from ..runtime.testrun import TestRunRefused, dump_map, test_run
from .pcap import ETHERNET, PcapReader, PcapWriter

@dataclass
class PcapSummary:
    """What a capture run did: verdicts, errors, outputs, speed."""

    packets: int = 0
    verdicts: Counter = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)
    outputs: dict[str, list[int]] = field(default_factory=dict)   # name -> [packets, bytes]
    elapsed_s: float = 0.0

    @property
    def pps(self) -> float:
        return self.packets / self.elapsed_s if self.elapsed_s else 0.0

    def to_dict(self, obj: Object) -> dict:
        return {"packets": self.packets, "verdicts": dict(self.verdicts),
                "errors": [{"index": i, "message": m} for i, m in self.errors],
                "outputs": {k: {"packets": v[0], "bytes": v[1]} for k, v in self.outputs.items()},
                "maps": {name: dump_map(m) for name, m in obj.maps.items()},
                "elapsed_s": self.elapsed_s, "pps": self.pps}


def _output_name(hook, verdict: str, redirect: tuple[str, int] | None) -> str | None:
    name = hook.output(verdict)
    if name is not None:
        return name
    if redirect is not None:
        where, key = redirect
        return f"redirect-{where}-{key}" if where != "ifindex" else f"redirect-if{key}"
    return None


def _emit(summary: PcapSummary, writers: dict[str, PcapWriter], base: Path | None, name: str,
          data: bytes, timestamp_ns: int) -> None:
    """Count a packet for output ``name`` and write it to that output's file."""
    stats = summary.outputs.setdefault(name, [0, 0])
    stats[0] += 1
    stats[1] += len(data)
    if base is not None:
        if name not in writers:
            path = base if name == "pass" else base.with_name(
                f"{base.stem}.{name}{base.suffix or '.pcap'}")
            writers[name] = PcapWriter(path)
        writers[name].write(data, timestamp_ns)


def run_pcap(obj: Object, prog: ObjectProgram, capture: str | Path, *,
             out: str | Path | None = None, records: IO[str] | None = None,
             progress=None) -> PcapSummary:
    """Run ``prog`` on every packet of ``capture``; ``out`` names the pass output
    (``OUT.pcap``; ``OUT.tx.pcap`` and ``OUT.redirect-*.pcap`` beside it)."""
    hook = HOOKS.get(prog.spec.prog_type)
    if hook is None or not hasattr(hook, "verdict"):
        raise XsimError(f"{prog.prog_type} programs cannot run on a capture yet")
    reader = PcapReader(capture, on_error="stop")
    writers: dict[str, PcapWriter] = {}
    summary = PcapSummary()
    base = Path(out) if out else None
    t0 = time.perf_counter()
    try:
        for pkt in reader:
            summary.packets += 1
            if progress is not None:
                progress(pkt.index)
            problem = None
            if pkt.linktype != ETHERNET:
                problem = f"link type {pkt.linktype} is not Ethernet"
            elif pkt.truncated:
                problem = f"captured {len(pkt.data)} of {pkt.orig_len} bytes (snaplen)"
            if problem is None:
                try:
                    res = test_run(prog, data_in=pkt.data)
                except TestRunRefused as exc:
                    problem = f"the test run refuses it: {exc}"
            if problem is not None:
                summary.errors.append((pkt.index, problem))
                if records is not None:
                    records.write(json.dumps({"index": pkt.index, "error": problem}) + "\n")
                continue
            error = res.result.error
            verdict = "error" if error is not None else hook.verdict(res.retval)
            summary.verdicts[verdict] += 1
            if error is not None:
                summary.errors.append((pkt.index, str(error)))
            name = _output_name(hook, verdict, res.redirect) if error is None else None
            if name is not None:
                _emit(summary, writers, base, name, res.data_out or b"", pkt.timestamp_ns)
            for ifindex, copy in (res.clones if error is None else []):
                _emit(summary, writers, base, f"clone-if{ifindex}", copy, pkt.timestamp_ns)
            if records is not None:
                records.write(json.dumps({
                    "index": pkt.index, "verdict": verdict, "len_in": len(pkt.data),
                    "len_out": len(res.data_out or b""), "redirect": res.redirect,
                    "helper_calls": {str(k): v for k, v in res.result.helper_calls.items()},
                    "insns": res.result.insns}) + "\n")
    finally:
        for w in writers.values():
            w.close()
    summary.errors += [(-1, str(e)) for e in reader.errors]
    summary.elapsed_s = time.perf_counter() - t0
    return summary
