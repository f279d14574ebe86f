"""What a program did on each packet of a capture: the input of every timing model.

:func:`from_pcap` runs an XDP program over a capture once, packet by packet, with the
interpreter's per-pc execution counts on (the counts behind ``RunResult.histogram``).
Packets whose run took the same path (same per-pc counts, helper calls and memory
accesses: one :class:`Trace`) share one :class:`Path`; each packet keeps only its path's
index, its verdict, its frame sizes and its flow hash.  A path holds the instructions by
class, the helper calls by id, the map operations and value accesses by map, the packet
accesses and the per-pc counts (for the VLIW scheduler).  Timing models price paths,
never re-run the program: see ARCHITECTURE.md, contract 3.

:func:`from_records` builds the same Workload from the records file of a capture run
(``xsim run --pcap F --records R``): :class:`RecordPaths` is the run's side of it, which
numbers paths as :func:`from_pcap` does and puts each path's counts in the record of its
first packet.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import numpy as np

from ..elf.kinds import ProgType
from ..errors import XsimError
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field, Kind
from ..runtime.helper_table import BY_ID
from ..runtime.object import Object, ObjectProgram
from ..runtime.program import Program
from ..runtime.result import RunResult
from ..runtime.testrun import TestRunRefused, test_run
from ..timing.profile import CLASSES
from .pcap import ETHERNET, PcapError, read_packets
from .xdp import XDP_ACTIONS

#: verdict index -> name; XDP's return codes map onto it in XDP_VERDICTS
VERDICTS = ("aborted", "drop", "pass", "tx", "redirect")
XDP_VERDICTS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
#: a records file's verdict (the XDP hook's name of the return code) -> verdict index; a
#: fault ("error") and a code outside the enum (its number) count as aborted, as in from_pcap
_RECORD_VERDICTS = {name: XDP_VERDICTS[code] for code, name in XDP_ACTIONS.items()}
_RECORD_VERDICTS["error"] = 0
#: helper id -> map operation it performs on the map in r1
MAP_HELPERS = {1: "lookup", 2: "update", 3: "delete"}
_ETH_IP, _ETH_IP6, _ETH_VLAN = 0x0800, 0x86DD, (0x8100, 0x88A8)


class WorkloadError(XsimError):
    """A capture or records file that does not fit the program: the file, the packet of a
    capture or the line of a records file (``record``; ``unit`` says which) and why."""

    def __init__(self, path: str | FsPath, reason: str, record: int | None = None, *,
                 unit: str = "packet") -> None:
        self.path, self.record, self.unit, self.reason = str(path), record, unit, reason
        where = f"{path}: {unit} {record}" if record is not None else str(path)
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


@dataclass
class Trace:
    """What one run executed, as far as telling paths apart goes: the per-pc counts of
    every program it went through (tail-call targets too), the helper calls by id, and
    the (loads, stores) of each region it touched."""

    counts: dict[str, np.ndarray]
    calls: dict[int, int]
    regions: dict[str, tuple[int, int]]

    def __post_init__(self) -> None:
        # a region the run did not touch is no part of what it did (and takes no space)
        self.regions = {n: (int(ld), int(st)) for n, (ld, st) in self.regions.items()
                        if ld or st}

    @classmethod
    def of(cls, used: list[Program], calls: dict[int, int],
           regions: dict[str, tuple[int, int]]) -> Trace:
        """The trace of a run that counted (see CountingTier): ``used``'s counters now."""
        return cls({p.name: p._counts[:p.n_slots].copy() for p in used}, dict(calls),
                   regions)

    def key(self) -> tuple:
        """Equal for equal traces: the nonzero counts by program, calls and regions."""
        return (tuple((n, np.flatnonzero(c).tobytes(), c[c != 0].tobytes())
                      for n, c in sorted(self.counts.items())),
                tuple(sorted(self.calls.items())), tuple(sorted(self.regions.items())))


class PathIndex:
    """Numbers distinct traces in the order they first occur: the one numbering shared by
    the workload of a capture and the records file written of it."""

    def __init__(self) -> None:
        self._index: dict[tuple, int] = {}

    def number(self, trace: Trace) -> tuple[int, bool]:
        """The trace's path number, and whether this is its first occurrence."""
        key = trace.key()
        k = self._index.get(key)
        if k is not None:
            return k, False
        k = self._index[key] = len(self._index)
        return k, True


class CountingTier:
    """A Tier that runs ``tier`` with per-pc counting on and keeps the programs a run went
    through (the main one and its tail-call targets), so that each run gives a Trace."""

    def __init__(self, tier: str = "interp") -> None:
        self.tier = tier
        self.used: list[Program] = []

    def drive(self, prog: Program, repeat: int, budget: int, histogram: bool,
              calls: dict[int, int]) -> tuple:
        prog._counts[:] = 0
        out = prog.drive_tier(self.tier, repeat, budget, True, calls)
        self.used = out[6]
        return out

    def trace(self, result: RunResult) -> Trace:
        """The trace of the run that gave ``result``."""
        return Trace.of(self.used, result.helper_calls, result.region_accesses)


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


def flow_hash(frame: bytes) -> int:
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
    """Accumulates paths and per-packet columns, packet by packet: the one place where a
    trace becomes a Path, for a capture run and a records file alike."""

    def __init__(self, obj: Object) -> None:
        self.obj = obj
        self.vaddrs = {m.vaddr: name for name, m in obj.maps.items()}
        self.map_types = {name: str(m.type) for name, m in obj.maps.items()}
        #: program -> pc of a map-helper call -> (map name, operation)
        self.sites: dict[str, dict[int, tuple[str, str]]] = {}
        self.classes: dict[str, list[tuple[int, str | None]]] = {}
        self.programs: dict[str, Program] = {}
        self.index = PathIndex()
        self.paths: list[Path] = []
        self.cols: dict[str, list[int]] = {k: [] for k in ("path", "verdict", "len_in",
                                                            "len_out", "flow")}

    def _learn(self, name: str) -> None:
        if name not in self.programs:
            prog = self.programs[name] = self.obj.programs[name].hooked()
            imm = {i.pc: i.imm for i in prog.insns}
            self.sites[name] = {pc: (mname, MAP_HELPERS[imm[pc]]) for pc, mname
                                in map_call_sites(prog, self.vaddrs).items()}
            self.classes[name] = [(i.pc, insn_class(i)) for i in prog.insns]

    def add(self, trace: Trace, verdict: int, len_in: int, len_out: int, flow: int) -> int:
        """One packet; returns its path's index."""
        for name in trace.counts:
            self._learn(name)
        k, new = self.index.number(trace)
        if new:
            self.paths.append(self._path(trace))
        self.paths[k].packets += 1
        for col, value in zip(("path", "verdict", "len_in", "len_out", "flow"),
                              (k, verdict, len_in, len_out, flow)):
            self.cols[col].append(value)
        return k

    def _path(self, trace: Trace) -> Path:
        counts, calls, regions = trace.counts, trace.calls, trace.regions
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
            if region.startswith("map:") and region.count(":") == 1:
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
    a program fault counts as XDP_ABORTED with nothing sent, as the kernel would count
    it."""
    _xdp_only(prog, capture)
    tier = CountingTier()
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
            builder.add(tier.trace(res), verdict, len(pkt.data),
                        len(out.data_out or b"") if res.ok else 0, flow_hash(pkt.data))
    except PcapError as exc:
        raise WorkloadError(capture, f"not a capture xsim can read: {exc}") from None
    workload = builder.build(prog.name, str(capture))
    if not len(workload):
        raise WorkloadError(capture, "the capture has no packets")
    return workload


# -- records files: ``xsim run --pcap F --records R`` writes them, from_records reads them --

def program_tags(obj: Object) -> dict[str, str]:
    """Each program's code as its object holds it (before relocation), hashed as the
    kernel's tag is (SHA-1, 8 bytes): tells the records of another build apart."""
    return {name: hashlib.sha1(p.spec.code).hexdigest()[:16]
            for name, p in obj.programs.items()}


class RecordPaths:
    """A capture run's side of its records file: numbers each packet's path as
    :func:`from_pcap` does and gives the keys its record adds (``flow``, ``regions``,
    ``path``, and ``counts`` in the first record of each path), so that
    :func:`from_records` rebuilds the Workload without running the program again."""

    def __init__(self, obj: Object) -> None:
        self.tags = program_tags(obj)
        self.index = PathIndex()
        #: each path's region accesses as its records give them
        self.regions: list[dict[str, list[int]]] = []
        #: the counts of the paths whose first record is still to be written
        self.pending: dict[int, dict[str, Any]] = {}

    def number(self, trace: Trace) -> int:
        """The path of one packet's run; packets in capture order."""
        k, new = self.index.number(trace)
        if new:
            self.regions.append({n: list(v) for n, v in trace.regions.items()})
            self.pending[k] = {name: {"tag": self.tags[name], "pcs": _sparse(c)}
                               for name, c in trace.counts.items()}
        return k

    def fields(self, path: int, frame: bytes) -> dict[str, Any]:
        """The keys the record of a packet that took ``path`` adds; records in order."""
        out: dict[str, Any] = {"flow": flow_hash(frame), "regions": self.regions[path],
                               "path": path}
        counts = self.pending.pop(path, None)
        if counts is not None:
            out["counts"] = counts
        return out


def _sparse(counts: np.ndarray) -> list[list[int]]:
    pcs = np.flatnonzero(counts)
    return np.column_stack([pcs, counts[pcs].astype(np.int64)]).tolist()


def from_records(obj: Object, prog: ObjectProgram, records: str | FsPath, *,
                 limit: int | None = None) -> Workload:
    """The workload of a capture run's records file (``xsim run OBJ --prog NAME --pcap F
    --records R``): the Workload ``from_pcap`` gives for that capture, without running
    the program again.  A record that does not fit ``prog`` (another program or build, a
    missing or mistyped field, a packet the run could not take) is a WorkloadError naming
    the file and its line."""
    _xdp_only(prog, records)
    reader = _RecordsReader(obj, prog, records)
    for line, record in _json_lines(records, limit):
        reader.add(line, record)
    workload = reader.builder.build(prog.name, str(records))
    if not len(workload):
        raise WorkloadError(records, "the records file has no records")
    return workload


def _json_lines(path: str | FsPath, limit: int | None) -> Iterator[tuple[int, Any]]:
    """(line number, value) of the first ``limit`` non-blank lines."""
    taken = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line, text in enumerate(f, 1):
                if not text.strip():
                    continue
                if limit is not None and taken >= limit:
                    return
                taken += 1
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise WorkloadError(path, f"not JSON: {exc.msg} (column {exc.colno})",
                                        line, unit="line") from None
                yield line, value
    except OSError as exc:
        raise WorkloadError(path, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WorkloadError(path, "not text: a records file is JSON lines") from None


def _is_int(value: Any, below: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < below


class _RecordsReader:
    """Checks each record of a records file against the program, then adds it to a
    _Builder, which numbers its path again: a record must land on the path it names."""

    def __init__(self, obj: Object, prog: ObjectProgram, path: str | FsPath) -> None:
        self.obj, self.prog, self.path = obj, prog, str(path)
        self.builder = _Builder(obj)
        self.tags = program_tags(obj)
        #: each path's counts, by path number
        self.counts: list[dict[str, np.ndarray]] = []

    def error(self, line: int, reason: str) -> WorkloadError:
        return WorkloadError(self.path, reason, line, unit="line")

    def add(self, line: int, record: Any) -> None:
        if not isinstance(record, dict):
            raise self.error(line, f"a record is a JSON object, not {record!r:.40}")
        if "error" in record:
            raise self.error(line, f"packet {record.get('index')} did not run in the capture "
                                   f"run ({record['error']}): the timing needs every packet, "
                                   "as --pcap does")
        if "path" not in record:
            raise self.error(line, 'no "path": the records of an older xsim, without what '
                                   "the timing needs; write them again with `xsim run OBJ "
                                   "--prog NAME --pcap F --records R`")
        path = self.integer(line, record, "path")
        if "counts" in record:
            self.new_path(line, path, record["counts"])
        elif path >= len(self.counts):
            raise self.error(line, f"path {path} before the record that gives its counts "
                                   "(the first record of each path carries them)")
        trace = Trace(self.counts[path], self.helper_calls(line, record),
                      self.regions(line, record))
        k = self.builder.add(trace, self.verdict(line, record),
                             self.integer(line, record, "len_in", 1 << 31),
                             self.integer(line, record, "len_out", 1 << 31),
                             self.integer(line, record, "flow", 1 << 32))
        if k != path:
            raise self.error(line, f"its helper calls and region accesses are not the ones "
                                   f"path {path} was first recorded with")

    def field(self, line: int, record: dict, key: str) -> Any:
        if key not in record:
            raise self.error(line, f"no {key!r} field")
        return record[key]

    def integer(self, line: int, record: dict, key: str, below: int = 1 << 63) -> int:
        value = self.field(line, record, key)
        if not _is_int(value, below):
            raise self.error(line, f"{key!r} must be an integer from 0 below {below}, "
                                   f"not {value!r:.40}")
        return value

    def verdict(self, line: int, record: dict) -> int:
        name = self.field(line, record, "verdict")
        if isinstance(name, str) and name.isdigit():     # a code outside the XDP enum
            return 0
        if not isinstance(name, str) or name not in _RECORD_VERDICTS:
            raise self.error(line, f"verdict {name!r:.40} is not an XDP action (records of "
                                   "another program type?)")
        return _RECORD_VERDICTS[name]

    def helper_calls(self, line: int, record: dict) -> dict[int, int]:
        calls = self.field(line, record, "helper_calls")
        if not isinstance(calls, dict) or not all(
                k.isdigit() and _is_int(n, 1 << 63) for k, n in calls.items()):
            raise self.error(line, f"'helper_calls' must map helper ids to counts, not "
                                   f"{calls!r:.60}")
        return {int(k): n for k, n in calls.items()}

    def regions(self, line: int, record: dict) -> dict[str, tuple[int, int]]:
        regions = self.field(line, record, "regions")
        if not isinstance(regions, dict) or not all(
                isinstance(v, list) and len(v) == 2 and all(_is_int(n, 1 << 63) for n in v)
                for v in regions.values()):
            raise self.error(line, f"'regions' must map region names to [loads, stores], "
                                   f"not {regions!r:.60}")
        return {n: (v[0], v[1]) for n, v in regions.items()}

    def new_path(self, line: int, path: int, counts: Any) -> None:
        if path != len(self.counts):
            raise self.error(line, f"counts for path {path}: the record that carries counts "
                                   f"starts the next path, {len(self.counts)}")
        if not isinstance(counts, dict) or not counts:
            raise self.error(line, "'counts' must map each program the run went through "
                                   "to its tag and per-pc counts")
        if self.prog.name not in counts:
            raise self.error(line, f"counts of {', '.join(map(repr, counts))}, none of "
                                   f"{self.prog.name!r}: the records of another program's run")
        self.counts.append({name: self.program_counts(line, name, entry)
                            for name, entry in counts.items()})

    def program_counts(self, line: int, name: str, entry: Any) -> np.ndarray:
        """One program's counts, dense, from ``{"tag": HEX, "pcs": [[pc, n], ...]}``."""
        if name not in self.obj.programs:
            raise self.error(line, f"counts of program {name!r}, which {self.obj.path} does "
                                   f"not have (it has {', '.join(self.obj.programs)})")
        if not (isinstance(entry, dict) and isinstance(entry.get("pcs"), list)
                and "tag" in entry):
            raise self.error(line, f"counts of {name!r} must be "
                                   '{"tag": HEX, "pcs": [[pc, n], ...]}')
        if entry["tag"] != self.tags[name]:
            raise self.error(line, f"program {name!r} was recorded with tag {entry['tag']!r:.40}"
                                   f", and {self.obj.path}'s has {self.tags[name]!r}: the "
                                   "records are of another build of it")
        slots = self.obj.programs[name].program.n_slots
        dense = np.zeros(slots, dtype=np.uint64)
        last = -1
        for pair in entry["pcs"]:
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(_is_int(v, 1 << 63) for v in pair) and pair[1]):
                raise self.error(line, f"counts of {name!r}: {pair!r:.40} is not [pc, n] "
                                       "with n >= 1")
            pc = pair[0]
            if pc >= slots:
                raise self.error(line, f"counts of {name!r}: pc {pc} is past its {slots} "
                                       "slots")
            if pc <= last:
                raise self.error(line, f"counts of {name!r}: pc {pc} after pc {last}: the pcs "
                                       "go up")
            dense[pc], last = pair[1], pc
        return dense
