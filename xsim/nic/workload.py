"""What a program did on each packet of a capture: the input of every timing model.

:func:`from_pcap` runs an XDP program over a capture once, packet by packet, with the
interpreter's per-pc execution counts on (the counts behind ``RunResult.histogram``).
Packets whose run took the same path (same per-pc counts, helper calls and memory
accesses) share one :class:`Path`; each packet keeps only its path's index, its
verdict, its frame sizes and its flow hash.  A path holds the instructions by class,
the helper calls by id, the map operations and value accesses by map, the packet
accesses and the per-pc counts (for the VLIW scheduler).  Timing models price paths,
never re-run the program: see ARCHITECTURE.md, contract 3.
"""
from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path as FsPath
import numpy as np

from ..elf.kinds import ProgType
from ..errors import XsimError
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field, Kind
from ..runtime.helper_table import BY_ID
from ..runtime.object import Object, ObjectProgram
from ..runtime.program import Program
from ..runtime.testrun import TestRunRefused, test_run
from ..timing.profile import CLASSES
from .pcap import ETHERNET, PcapError, read_packets

#: verdict index -> name; XDP's return codes map onto it in XDP_VERDICTS
VERDICTS = ("aborted", "drop", "pass", "tx", "redirect")
XDP_VERDICTS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
#: helper id -> map operation it performs on the map in r1
MAP_HELPERS = {1: "lookup", 2: "update", 3: "delete"}
_ETH_IP, _ETH_IP6, _ETH_VLAN = 0x0800, 0x86DD, (0x8100, 0x88A8)


class WorkloadError(XsimError):
    """A capture or records file that does not fit the program: the file, the packet
    (record) and why."""

    def __init__(self, path: str | FsPath, reason: str, record: int | None = None) -> None:
        self.path, self.record, self.reason = str(path), record, reason
        where = f"{path}: packet {record}" if record is not None else str(path)
        super().__init__(f"{where}: {reason}")


def insn_class(insn: Insn) -> str | None:
    """The cost class of one instruction; None for a helper or kfunc call (priced by id)."""
    op = insn.op
    kind = op.kind
    if kind is Kind.ALU:
        if op.operation == "mul":
            return "mul"
        return "div" if op.operation in ("div", "mod", "sdiv", "smod") else "alu"
    if kind is Kind.END:
        return "alu"
    if kind in (Kind.JA, Kind.JCOND):
        return "jmp"
    if kind is Kind.CALL:
        return "call" if insn.src == oc.CALL_LOCAL else None
    return {Kind.CALLX: "call", Kind.EXIT: "exit", Kind.LDDW: "lddw", Kind.LDPKT: "ldpkt",
            Kind.LDX: "load", Kind.ST: "store", Kind.STX: "store",
            Kind.ATOMIC: "atomic"}[kind]


@dataclass
class Path:
    """One distinct way through the program: what a packet that took it executed."""

    insns: int
    classes: dict[str, int]
    #: helper id -> calls
    helpers: dict[int, int]
    #: map name -> {"lookup"|"update"|"delete"|"load"|"store": count}
    maps: dict[str, dict[str, int]]
    #: map helper calls whose map the static analysis could not name: op -> count
    unattributed: dict[str, int]
    packet_accesses: int
    #: program name -> executions per pc (slot), for the VLIW scheduler
    counts: dict[str, np.ndarray] = field(repr=False)
    #: packets that took this path
    packets: int = 0

    def to_dict(self) -> dict:
        return {"insns": self.insns, "classes": self.classes,
                "helpers": {BY_ID[h].name if h in BY_ID else str(h): n
                            for h, n in self.helpers.items()},
                "maps": self.maps, "packet_accesses": self.packet_accesses,
                "packets": self.packets}


@dataclass
class Workload:
    """Per-packet records of one capture run, columnar, plus the paths they index."""

    program: str
    source: str
    paths: list[Path]
    #: per packet: index into ``paths``, verdict index (VERDICTS), sizes, flow hash
    path: np.ndarray
    verdict: np.ndarray
    len_in: np.ndarray
    len_out: np.ndarray
    flow: np.ndarray
    #: map name -> map type name ("hash", "array", ...)
    map_types: dict[str, str]
    #: the programs the runs went through, by name (their code for static analysis)
    programs: dict[str, Program] = field(repr=False)

    def __len__(self) -> int:
        return len(self.path)

    def verdict_counts(self) -> dict[str, int]:
        counts = np.bincount(self.verdict, minlength=len(VERDICTS))
        return {VERDICTS[i]: int(n) for i, n in enumerate(counts) if n}

    def summary(self) -> dict:
        return {"program": self.program, "source": self.source, "packets": len(self),
                "paths": len(self.paths), "verdicts": self.verdict_counts(),
                "mean_insns": float(np.mean([self.paths[i].insns for i in self.path]))
                if len(self) else 0.0}


class _Profiled:
    """A Tier that runs the interpreter with per-pc counting on and keeps the programs a
    run went through (the main one and its tail-call targets)."""

    def __init__(self) -> None:
        self.used: list[Program] = []

    def drive(self, prog: Program, repeat: int, budget: int, histogram: bool,
              calls: dict[int, int]) -> tuple:
        prog._counts[:] = 0
        out = (prog._drive_each(repeat, budget, True, calls) if prog._tail_calls
               else prog._drive(repeat, budget, True, calls))
        self.used = out[6]
        return out


def map_call_sites(program: Program, vaddrs: dict[int, str]) -> dict[int, str]:
    """pc of each map-helper call -> the map its r1 holds, by forward propagation of
    map addresses (lddw of a map, register moves) inside each basic block."""
    sites: dict[int, str] = {}
    regs: dict[int, str] = {}
    targets = {i.target for i in program.insns if i.target is not None}
    for insn in program.insns:
        if insn.pc in targets:
            regs = {}
        kind = insn.op.kind
        if kind is Kind.LDDW:
            name = vaddrs.get(insn.value)
            if name is not None:
                regs[insn.dst] = name
            else:
                regs.pop(insn.dst, None)
        elif kind is Kind.ALU and insn.op.operation == "mov" and insn.op.src is Field.READ:
            if insn.src in regs:
                regs[insn.dst] = regs[insn.src]
            else:
                regs.pop(insn.dst, None)
        elif kind is Kind.CALL:
            if insn.src == oc.CALL_HELPER and insn.imm in MAP_HELPERS and 1 in regs:
                sites[insn.pc] = regs[1]
            for r in range(6):
                regs.pop(r, None)
        elif kind in (Kind.JA, Kind.JCOND, Kind.EXIT):
            regs = {} if kind is not Kind.JCOND else regs
        elif insn.op.dst is Field.WRITE or kind is Kind.LDX:
            regs.pop(insn.dst, None)
    return sites


def _flow_hash(frame: bytes) -> int:
    """The RSS input of a frame: its IP addresses, protocol and ports (its MACs if it has
    no IP header), hashed; a stand-in for the NIC's Toeplitz hash."""
    pos, proto = 12, int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
    while proto in _ETH_VLAN and len(frame) >= pos + 6:
        pos += 4
        proto = int.from_bytes(frame[pos:pos + 2], "big")
    pos += 2
    if proto == _ETH_IP and len(frame) >= pos + 20:
        ihl = (frame[pos] & 0x0F) * 4
        l4 = frame[pos + 9]
        key = frame[pos + 9:pos + 10] + frame[pos + 12:pos + 20]
        if l4 in (6, 17) and len(frame) >= pos + ihl + 4:
            key += frame[pos + ihl:pos + ihl + 4]
    elif proto == _ETH_IP6 and len(frame) >= pos + 40:
        key = frame[pos + 6:pos + 7] + frame[pos + 8:pos + 40]
        if frame[pos + 6] in (6, 17) and len(frame) >= pos + 44:
            key += frame[pos + 40:pos + 44]
    else:
        key = frame[:12]
    return zlib.crc32(key)


class _Builder:
    """Accumulates paths and per-packet columns while a capture runs."""

    def __init__(self, obj: Object) -> None:
        self.vaddrs = {m.vaddr: name for name, m in obj.maps.items()}
        self.map_types = {name: str(m.type) for name, m in obj.maps.items()}
        #: program -> pc of a map-helper call -> (map name, operation)
        self.sites: dict[str, dict[int, tuple[str, str]]] = {}
        self.classes: dict[str, list[tuple[int, str | None]]] = {}
        self.programs: dict[str, Program] = {}
        self.index: dict[tuple, int] = {}
        self.paths: list[Path] = []
        self.cols: dict[str, list[int]] = {k: [] for k in ("path", "verdict", "len_in",
                                                            "len_out", "flow")}

    def _learn(self, prog: Program) -> None:
        if prog.name not in self.programs:
            self.programs[prog.name] = prog
            imm = {i.pc: i.imm for i in prog.insns}
            self.sites[prog.name] = {pc: (name, MAP_HELPERS[imm[pc]]) for pc, name
                                     in map_call_sites(prog, self.vaddrs).items()}
            self.classes[prog.name] = [(i.pc, insn_class(i)) for i in prog.insns]

    def add(self, used: list[Program], calls: dict[int, int], regions: dict[str, tuple],
            verdict: int, len_in: int, len_out: int, flow: int) -> None:
        for prog in used:
            self._learn(prog)
        counts = {p.name: p._counts[:p.n_slots].copy() for p in used}
        key = (tuple((n, c.tobytes()) for n, c in counts.items()),
               tuple(sorted(calls.items())), tuple(sorted(regions.items())))
        k = self.index.get(key)
        if k is None:
            k = self.index[key] = len(self.paths)
            self.paths.append(self._path(counts, calls, regions))
        self.paths[k].packets += 1
        for col, value in zip(("path", "verdict", "len_in", "len_out", "flow"),
                              (k, verdict, len_in, len_out, flow)):
            self.cols[col].append(value)

    def _path(self, counts: dict[str, np.ndarray], calls: dict[int, int],
              regions: dict[str, tuple]) -> Path:
        classes: Counter = Counter()
        maps: dict[str, Counter] = {}
        unattributed: Counter = Counter()
        insns = 0
        for name, c in counts.items():
            for pc, cls in self.classes[name]:
                n = int(c[pc])
                if not n:
                    continue
                insns += n
                if cls is not None:
                    classes[cls] += n
            for pc, (mname, op) in self.sites[name].items():
                n = int(c[pc])
                if n:
                    maps.setdefault(mname, Counter())[op] += n
        attributed: Counter = Counter()
        for per_map in maps.values():
            attributed.update(per_map)
        for hid, op in MAP_HELPERS.items():
            rest = calls.get(hid, 0) - attributed.get(op, 0)
            if rest > 0:
                unattributed[op] = rest
        for region, (loads, stores) in regions.items():
            if region.startswith("map:") and region.count(":") == 1 and (loads or stores):
                per = maps.setdefault(region[4:], Counter())
                per["load"] += loads
                per["store"] += stores
        packet = sum(regions.get("packet", (0, 0)))
        return Path(insns=insns, classes={c: classes[c] for c in CLASSES if classes[c]},
                    helpers=dict(sorted(calls.items())),
                    maps={m: dict(c) for m, c in sorted(maps.items())},
                    unattributed=dict(unattributed), packet_accesses=packet, counts=counts)

    def build(self, program: str, source: str) -> Workload:
        cols = self.cols
        return Workload(program=program, source=source, paths=self.paths,
                        path=np.array(cols["path"], dtype=np.int32),
                        verdict=np.array(cols["verdict"], dtype=np.int8),
                        len_in=np.array(cols["len_in"], dtype=np.int32),
                        len_out=np.array(cols["len_out"], dtype=np.int32),
                        flow=np.array(cols["flow"], dtype=np.uint32),
                        map_types=self.map_types, programs=self.programs)


def _xdp_only(prog: ObjectProgram, source: str | FsPath) -> None:
    if prog.spec.prog_type is not ProgType.XDP:
        raise WorkloadError(source, f"program {prog.name!r} is a {prog.prog_type} program: "
                                    "the offload models take XDP programs")


def from_pcap(obj: Object, prog: ObjectProgram, capture: str | FsPath, *,
              limit: int | None = None) -> Workload:
    """Run ``prog`` over ``capture`` (maps kept between packets, as a capture run keeps
    them) and record what it did on each packet.  A frame the program cannot take (not
    Ethernet, cut by the snaplen, refused by the test run) is a WorkloadError naming it;
    a program fault counts as XDP_ABORTED, as the kernel would count it."""
    _xdp_only(prog, capture)
    tier = _Profiled()
    builder = _Builder(obj)
    try:
        for n, pkt in enumerate(read_packets(capture)):
            if limit is not None and n >= limit:
                break
            if pkt.linktype != ETHERNET:
                raise WorkloadError(capture, f"link type {pkt.linktype} is not Ethernet: "
                                             "XDP programs take Ethernet frames", pkt.index)
            if pkt.truncated:
                raise WorkloadError(capture, f"captured {len(pkt.data)} of {pkt.orig_len} "
                                             "bytes (snaplen): the timing needs whole frames",
                                    pkt.index)
            try:
                out = test_run(prog, data_in=pkt.data, tier=tier)
            except TestRunRefused as exc:
                raise WorkloadError(capture, f"the test run refuses it: {exc}",
                                    pkt.index) from None
            res = out.result
            verdict = XDP_VERDICTS.get(res.retval, 0) if res.ok else 0
            builder.add(tier.used, res.helper_calls, res.region_accesses, verdict,
                        len(pkt.data), len(out.data_out or b""), _flow_hash(pkt.data))
    except PcapError as exc:
        raise WorkloadError(capture, f"not a capture xsim can read: {exc}") from None
    workload = builder.build(prog.name, str(capture))
    if not len(workload):
        raise WorkloadError(capture, "the capture has no packets")
    return workload
