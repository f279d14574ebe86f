"""Run a program over a packet capture: one test run per packet, maps kept between them.

Each Ethernet frame of the capture goes through its hook's test run, as
``xsim run --data-in`` would run it; the packets that leave (XDP_PASS,
XDP_TX, each redirect target) are written to their own pcap files with the
program's changes.  Frames that cannot be run (another link type, a
snaplen-truncated capture, a frame the test run refuses) are counted with a
message, never crashed on.  A run that writes records counts executions per pc, so that
each record can name its packet's path (see ``workload.RecordPaths``).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

import numpy as np

from ..errors import XsimError
from ..runtime.hooks import HOOKS
from ..runtime.object import Object, ObjectProgram
from ..runtime.testrun import TestRunRefused, dump_map, test_run
from .batch import FAILED, NOT_RUN, RAN, BatchRunner, Outcomes, batchable
from .pcap import ETHERNET, PacketBatch, PcapReader, PcapWriter
from .workload import CountingTier, RecordPaths
from .xdp import PAGE_SIZE

#: packets per batch: the unit of progress reports and of output writes
BATCH = 65536

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


class _Outputs:
    """The capture files of a run, opened as packets first go to them, and their counts."""

    def __init__(self, summary: PcapSummary, base: Path | None) -> None:
        self.summary, self.base = summary, base
        self.writers: dict[str, PcapWriter] = {}

    def emit(self, name: str, data: np.ndarray, offset: np.ndarray, length: np.ndarray,
             stamps: np.ndarray) -> None:
        stats = self.summary.outputs.setdefault(name, [0, 0])
        stats[0] += len(offset)
        stats[1] += int(length.sum())
        if self.base is not None:
            if name not in self.writers:
                path = self.base if name == "pass" else self.base.with_name(
                    f"{self.base.stem}.{name}{self.base.suffix or '.pcap'}")
                self.writers[name] = PcapWriter(path)
            self.writers[name].write_batch(data, offset, length, stamps)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def _run_one(hook, prog: ObjectProgram, batch: PacketBatch, i: int, out: Outcomes,
             tier: str | CountingTier, paths: RecordPaths | None) -> None:
    """Packet ``i`` of ``batch`` as its own test run, into ``out``; with ``paths`` (then
    ``tier`` counts), its path is numbered there."""
    pkt = batch.packet(i)
    if pkt.linktype != ETHERNET:
        out.errors[i] = f"link type {pkt.linktype} is not Ethernet"
        return
    if pkt.truncated:
        out.errors[i] = f"captured {len(pkt.data)} of {pkt.orig_len} bytes (snaplen)"
        return
    try:
        res = test_run(prog, data_in=pkt.data, tier=tier)
    except TestRunRefused as exc:
        out.errors[i] = f"the test run refuses it: {exc}"
        return
    out.insns[i] = res.result.insns
    out.calls[i] = dict(res.result.helper_calls)
    if paths is not None:
        out.path[i] = paths.number(tier.trace(res.result))
    if res.result.error is not None:
        out.outcome[i] = FAILED
        out.errors[i] = str(res.result.error)
        return
    out.outcome[i] = RAN
    out.r0[i] = res.result.r0
    out.put_output(i, res.data_out or b"")
    if res.redirect is not None:
        out.redirect[i] = res.redirect
    if res.clones:
        out.clones[i] = list(res.clones)


def _account(hook, batch: PacketBatch, out: Outcomes, summary: PcapSummary,
             outputs: _Outputs, records: IO[str] | None, paths: RecordPaths | None) -> None:
    """Verdicts, outputs, errors and records of one batch, in packet order."""
    n = len(batch)
    ran = out.outcome == RAN
    retval = out.r0 & 0xFFFFFFFF
    summary.packets += n
    values, counts = np.unique(retval[ran], return_counts=True)
    verdict_of = {int(v): hook.verdict(int(v)) for v in values}
    for v, count in zip(values, counts):
        summary.verdicts[verdict_of[int(v)]] += int(count)
    failed = int((out.outcome == FAILED).sum())
    if failed:
        summary.verdicts["error"] += failed
    summary.errors += [(batch.first + i, m) for i, m in sorted(out.errors.items())]
    # the redirected packets and a code for each one's target: the only step per packet
    # in Python; they are grouped by target with numpy below
    packets = np.fromiter(out.redirect, dtype=np.int64, count=len(out.redirect))
    codes: dict[tuple[str, int], int] = {}
    code = np.array([codes.setdefault(t, len(codes)) for t in out.redirect.values()],
                    dtype=np.int64)
    for v, verdict in verdict_of.items():
        chosen = ran & (retval == v)
        name = _output_name(hook, verdict, None)
        if name is not None:
            idx = np.flatnonzero(chosen)
            outputs.emit(name, out.out, out.out_off[idx], out.out_len[idx],
                         batch.timestamp_ns[idx])
            continue
        # no output of its own: each packet goes where its redirect sent it
        keep = chosen[packets]
        targets: dict[str, list[np.ndarray]] = {}
        for target, c in codes.items():
            where = _output_name(hook, verdict, target)
            if where is not None:
                targets.setdefault(where, []).append(packets[keep & (code == c)])
        groups = [np.sort(np.concatenate(parts)) for parts in targets.values()]
        # the targets in the order their first packets come
        for where, idx in sorted(((w, g) for w, g in zip(targets, groups) if len(g)),
                                 key=lambda wg: int(wg[1][0])):
            outputs.emit(where, out.out, out.out_off[idx], out.out_len[idx],
                         batch.timestamp_ns[idx])
    for i, copies in sorted(out.clones.items()):
        for ifindex, copy in copies:
            one = np.frombuffer(copy, dtype=np.uint8)
            outputs.emit(f"clone-if{ifindex}", one, np.zeros(1, dtype=np.int64),
                         np.array([len(copy)]), batch.timestamp_ns[i:i + 1])
    if records is None:
        return
    for i in range(n):
        index = batch.first + i
        if out.outcome[i] == NOT_RUN:
            records.write(json.dumps({"index": index, "error": out.errors[i]}) + "\n")
            continue
        ok = out.outcome[i] == RAN
        record = {
            "index": index, "verdict": verdict_of[int(retval[i])] if ok else "error",
            "len_in": int(batch.caplen[i]), "len_out": int(out.out_len[i]) if ok else 0,
            "redirect": out.redirect.get(i),
            "helper_calls": {str(k): v for k, v in sorted(out.helper_calls(i).items())},
            "insns": int(out.insns[i])}
        if paths is not None:
            record.update(paths.fields(int(out.path[i]), batch.packet(i).data))
        records.write(json.dumps(record) + "\n")


def run_pcap(obj: Object, prog: ObjectProgram, capture: str | Path, *,
             out: str | Path | None = None, records: IO[str] | None = None,
             progress: Callable[[int], None] | None = None,
             batch: bool = True, tier: str = "interp") -> PcapSummary:
    """Run ``prog`` on every packet of ``capture``; ``out`` names the pass output
    (``OUT.pcap``; ``OUT.tx.pcap`` and ``OUT.redirect-*.pcap`` beside it).

    XDP, TC and socket filter programs run in the compiled per-packet loop of
    :mod:`.batch` (``batch=False`` runs every packet through ``test_run`` instead; both
    give the same answers);
    ``progress`` is called with the number of packets done after each batch.  ``tier``
    "jit" runs native code in that loop; "auto" does so for programs the loop runs.
    With ``records``, every tier counts executions per pc for the records' paths."""
    hook = HOOKS.get(prog.spec.prog_type)
    if hook is None or not hasattr(hook, "verdict"):
        raise XsimError(f"{prog.prog_type} programs cannot run on a capture yet")
    reader = PcapReader(capture, on_error="stop")
    summary = PcapSummary()
    outputs = _Outputs(summary, Path(out) if out else None)
    if tier == "auto":          # a capture is many runs: compile where the loop can
        tier = "jit" if batch and batchable(prog) and prog.hooked().compiles() else "interp"
    # the compiled loop runs the interpreter or host code; an emulated ISA goes per packet
    loop = batch and tier in ("interp", "jit") and batchable(prog)
    paths = RecordPaths(obj) if records is not None else None
    runner = BatchRunner(prog, tier=tier, paths=paths) if loop else None
    one = CountingTier(tier) if paths is not None else tier     # one test run per packet
    t0 = time.perf_counter()
    try:
        for chunk in reader.batches(BATCH):
            outcomes = Outcomes(len(chunk), int(chunk.caplen.sum()) + PAGE_SIZE)
            if runner is not None:
                runner.run(chunk, lambda i, c=chunk, o=outcomes: _run_one(hook, prog, c, i, o,
                                                                          one, paths), outcomes)
            else:
                for i in range(len(chunk)):
                    _run_one(hook, prog, chunk, i, outcomes, one, paths)
            _account(hook, chunk, outcomes, summary, outputs, records, paths)
            if progress is not None:
                progress(summary.packets)
    finally:
        outputs.close()
    summary.errors += [(-1, str(e)) for e in reader.errors]
    summary.elapsed_s = time.perf_counter() - t0
    return summary
