"""The porting report: what a program needs on an embedded or edge target.

Per program of an object (or one :class:`~xsim.runtime.Program`), and per ISA
of :data:`xsim.crosscheck.targets.ISAS`: the native code xsim's JIT makes, the
eBPF instructions and functions, the stack over the call graph, the maps and
their memory, global data, helpers and kfuncs, and the ISA version and
features the bytecode uses.  Everything but the native code is read from the
bytecode and the loader's specs, statically; docs/footprint.md says what each
field means and where it can be wrong.

``xsim footprint OBJ [--prog NAME] [--isa LIST] [--cpus N] [--json]`` prints it
(:func:`add_parser`).
"""
from __future__ import annotations

import argparse
import bisect
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from ..elf.kinds import MapType
from ..elf.loader import is_data_section
from ..elf.spec import MapSpec, Reloc
from ..errors import XsimError
from ..isa import interp as ip
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field, Kind, Op
from ..runtime.helper_table import BY_ID
from ..runtime.hooks import HOOKS
from ..runtime.object import Object, ObjectProgram, load
from ..runtime.program import Program
from ..runtime.source import ELF_MAGIC, read_code
from . import targets

_FP = 10
#: stack slots are 8 bytes: a frame is its deepest byte rounded up to this
STACK_ALIGN = 8
#: the kernel's MAX_BPF_STACK, per frame and for a whole call chain (check_max_stack_depth)
KERNEL_MAX_STACK = oc.STACK_FRAME_SIZE
#: how often one pc is revisited with differing stack pointers before they are forgotten
_WIDEN_AFTER = 8


# -- map memory: the formula per type family, as data --------------------------------

@dataclass(frozen=True)
class MapCost:
    """Bytes a map needs at least, when full: max_entries × (key × key_size + value ×
    value_size, times the CPUs if ``per_cpu``, + ``fixed``)."""

    key: int
    value: int
    per_cpu: bool = False
    fixed: int = 0
    note: str = ""

    def bytes(self, m: MapSpec, ncpus: int) -> int:
        value = self.value * m.value_size * (ncpus if self.per_cpu else 1)
        return m.max_entries * (self.key * m.key_size + value + self.fixed)

    @property
    def formula(self) -> str:
        terms = (["key_size"] * self.key
                 + [("value_size × ncpus" if self.per_cpu else "value_size")] * self.value
                 + ([str(self.fixed)] if self.fixed else []))
        inner = " + ".join(terms)
        return f"max_entries × ({inner})" if len(terms) > 1 else f"max_entries × {inner}"


MAP_FAMILIES: dict[str, MapCost] = {
    "hash": MapCost(1, 1, note="each element holds its key and its value"),
    "percpu_hash": MapCost(1, 1, per_cpu=True, note="one key, a value per possible CPU"),
    "array": MapCost(0, 1, note="values only: the index is the key"),
    "percpu_array": MapCost(0, 1, per_cpu=True, note="a value per possible CPU"),
    "ring": MapCost(0, 0, fixed=1, note="max_entries is the ring's size in bytes"),
    "arena": MapCost(0, 0, fixed=4096, note="max_entries counts 4 KiB pages"),
}
_FAMILY_TYPES = {
    "hash": "HASH LRU_HASH LPM_TRIE HASH_OF_MAPS DEVMAP_HASH SOCKHASH",
    "percpu_hash": "PERCPU_HASH LRU_PERCPU_HASH",
    "array": "ARRAY PROG_ARRAY PERF_EVENT_ARRAY CGROUP_ARRAY ARRAY_OF_MAPS DEVMAP SOCKMAP "
             "CPUMAP XSKMAP REUSEPORT_SOCKARRAY QUEUE STACK STACK_TRACE STRUCT_OPS",
    "percpu_array": "PERCPU_ARRAY",
    "ring": "RINGBUF USER_RINGBUF",
    "arena": "ARENA",
}
#: map type -> its family in MAP_FAMILIES
MAP_FAMILY: dict[MapType, str] = {MapType[t]: fam for fam, names in _FAMILY_TYPES.items()
                                  for t in names.split()}
#: map types whose memory max_entries does not bound, and why
UNSIZED_MAPS: dict[MapType, str] = {
    MapType.UNSPEC: "no map type",
    MapType.CGROUP_STORAGE: "one value per cgroup the program is attached to",
    MapType.PERCPU_CGROUP_STORAGE: "one value per CPU per cgroup the program is attached to",
    MapType.SK_STORAGE: "one value per socket that has one",
    MapType.INODE_STORAGE: "one value per inode that has one",
    MapType.TASK_STORAGE: "one value per task that has one",
    MapType.CGRP_STORAGE: "one value per cgroup that has one",
    MapType.BLOOM_FILTER: "a bit array sized from max_entries and the number of hashes "
                          "(map_extra), not from key or value",
}
_MAP_OF_MAPS = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


# -- ISA features: a predicate per feature over the opcode table's rows ----------------

def _muldiv(*ops: str) -> Callable[[Op], bool]:
    return lambda op: op.kind is Kind.ALU and op.width == 64 and op.operation in ops


FEATURES: dict[str, Callable[[Op], bool]] = {
    "atomics": lambda op: op.kind is Kind.ATOMIC,
    "alu32": lambda op: op.kind is Kind.ALU and op.cls == oc.ALU,
    "jmp32": lambda op: op.kind is Kind.JCOND and op.cls == oc.JMP32,
    "mul64": _muldiv("mul"),
    "div64": _muldiv("div", "sdiv"),
    "mod64": _muldiv("mod", "smod"),
    "signed_division": lambda op: op.operation in ("sdiv", "smod"),
    "sign_extension": lambda op: op.operation in ("ldxs", "movsx"),
    "byte_swaps": lambda op: op.kind is Kind.END,
    "long_jumps": lambda op: op.kind is Kind.JA and op.cls == oc.JMP32,
    "legacy_packet_loads": lambda op: op.kind is Kind.LDPKT,
    "indirect_calls": lambda op: op.kind is Kind.CALLX,
}


# -- what one report is made from -----------------------------------------------------

@dataclass
class _Subject:
    """One program as the report reads it: bytecode, functions, references, and the
    Program whose native code counts, in its ``form``: "hooked" (context accesses
    rewritten, as its hook runs it) or "raw" (no hook, or the hook refuses it, as
    ``run --mem`` runs it; ``hook_error`` says why)."""

    name: str
    section: str
    prog_type: str
    insns: list[Insn]
    n_slots: int
    func_names: dict[int, str]
    relocs: tuple[Reloc, ...]
    native: Program
    form: str = "raw"
    hook_error: str | None = None


def _subject_of(op: ObjectProgram) -> _Subject:
    native, form, error = op.program, "raw", None
    if op.spec.prog_type in HOOKS:
        try:
            native, form = op.hooked(), "hooked"
        except XsimError as exc:
            error = str(exc)
    return _Subject(op.name, op.section, op.prog_type, op.program.insns, op.program.n_slots,
                    dict(op.spec.func_names), op.spec.relocs, native, form, error)


def _subject_of_program(prog: Program) -> _Subject:
    return _Subject(prog.name, "", "", prog.insns, prog.n_slots, {0: prog.name}, (), prog)


# -- the report ------------------------------------------------------------------------

def footprint(obj: Object | Program, prog_name: str | None = None,
              isas: Sequence[str] = tuple(targets.ISAS), *,
              ncpus: int | None = None) -> list[dict]:
    """One JSON-ready report per program of ``obj`` (only ``prog_name``, by function or
    section name, if given); ``ncpus``: the possible CPUs per-CPU maps are sized for
    (the object's RunEnv.ncpus by default)."""
    chosen = [targets.isa(name) for name in isas]
    if ncpus is not None and ncpus < 1:
        raise XsimError(f"ncpus must be at least 1, not {ncpus}")
    if isinstance(obj, Program):
        if prog_name not in (None, obj.name):
            raise XsimError(f"the program is {obj.name!r}, not {prog_name!r}: a Program is one "
                            "program, so leave prog_name out")
        return [_report(_subject_of_program(obj), chosen, {}, ncpus or 1)]
    progs = [obj.program(prog_name)] if prog_name is not None else list(obj.programs.values())
    maps = {m.name: m for m in obj.spec.maps}
    return [_report(_subject_of(p), chosen, maps, ncpus or obj.env.ncpus) for p in progs]


def _report(s: _Subject, isas: list[targets.Isa], maps: dict[str, MapSpec],
            ncpus: int) -> dict:
    functions = _functions(s)
    used = _used_maps(s.relocs, maps)
    map_entries = [_map_entry(m, ncpus, via) for m, via in used if not _is_data(m)]
    return {
        "program": s.name, "section": s.section, "prog_type": s.prog_type,
        "insns": len(s.insns), "slots": s.n_slots,
        "functions": functions,
        "stack": _stack(functions),
        "native": {t.name: _native(s.native, t) for t in isas},
        "native_form": s.form, "hook_error": s.hook_error,
        "ncpus": ncpus,
        "maps": map_entries,
        "map_bytes": sum(e["bytes"] or 0 for e in map_entries),
        "global_data": _global_data(maps, {m.name for m, _ in used}),
        "helpers": _helpers(s),
        "kfuncs": _kfuncs(s.insns),
        "isa": _isa(s.insns),
    }


# -- functions and the stack -----------------------------------------------------------

def _entries(insns: list[Insn], func_names: dict[int, str]) -> list[int]:
    """First slots of the functions: pc 0, the linker's functions, every bpf-to-bpf call
    target and every subprogram whose address is taken (a callback)."""
    entries = {0} | set(func_names)
    for i in insns:
        if _callee(i) is not None:
            entries.add(i.target)
    return sorted(entries)


def _callee(i: Insn) -> str | None:
    """"call" for a bpf-to-bpf call, "callback" for a subprogram's address; else None."""
    if i.op.kind is Kind.CALL and i.op.disc_value == oc.CALL_LOCAL:
        return "call"
    if i.op.kind is Kind.LDDW and i.src == ip.LDDW_FUNC:
        return "callback"
    return None


def _functions(s: _Subject) -> list[dict]:
    """Each function: name, first slot, size, stack frame, and the functions it calls."""
    entries = _entries(s.insns, s.func_names)
    ends = entries[1:] + [s.n_slots]
    name = {e: s.func_names.get(e, f"{s.name}+{e}") for e in entries}
    pcs = [i.pc for i in s.insns]
    out = []
    for entry, end in zip(entries, ends):
        body = s.insns[bisect.bisect_left(pcs, entry):bisect.bisect_left(pcs, end)]
        deepest = frame_depth(body)
        calls = sorted({(i.target, _callee(i)) for i in body if _callee(i)})
        out.append({"name": name[entry], "slot": entry, "insns": len(body),
                    "slots": end - entry, "deepest": deepest,
                    "frame": -(-deepest // STACK_ALIGN) * STACK_ALIGN,
                    "calls": [{"name": name[t], "slot": t, "kind": k} for t, k in calls]})
    return out


def frame_depth(body: list[Insn]) -> int:
    """The deepest byte below r10 that one function reaches, as a positive number.

    Counted: loads, stores and atomics whose base is r10, or a register holding r10
    plus a constant (copied from r10, moved, offset by add/sub of an immediate,
    spilled to an 8-byte stack slot and filled back), and every such pointer a
    register holds, since one passed to a helper is written from there up.  Followed
    along every path of the function.  Not counted: offsets computed from registers
    (variable offsets), pointers that go through 32-bit ALU or other arithmetic, and
    accesses a callee makes through a pointer into its caller's frame (the caller
    counted the pointer).
    """
    if not body:
        return 0
    by_pc = {i.pc: i for i in body}
    deepest = 0
    work: list[tuple[int, tuple]] = [(body[0].pc, ((), ()))]
    seen: dict[int, set] = {}
    while work:
        pc, state = work.pop()
        insn = by_pc.get(pc)
        visits = seen.setdefault(pc, set())
        if insn is None or state in visits:
            continue
        if len(visits) >= _WIDEN_AFTER:
            state = ((), ())          # forget what a loop keeps changing
            if state in visits:
                continue
        visits.add(state)
        regs, spills = dict(state[0]), dict(state[1])
        deepest = max(deepest, _access_depth(insn, regs))
        for nxt, new_regs, new_spills in _stack_step(insn, regs, spills):
            deepest = max([deepest] + [-v for v in new_regs.values()])
            work.append((nxt, (tuple(sorted(new_regs.items())),
                               tuple(sorted(new_spills.items())))))
    return deepest


def _fp_offset(regs: dict[int, int], reg: int) -> int | None:
    """reg's offset from r10 if it holds a stack pointer, else None."""
    return 0 if reg == _FP else regs.get(reg)


def _slot(insn: Insn, regs: dict[int, int]) -> int | None:
    """The r10-relative offset a load, store or atomic touches, if known."""
    base = insn.mem_base
    b = _fp_offset(regs, base) if base is not None else None
    return None if b is None else b + insn.off


def _access_depth(insn: Insn, regs: dict[int, int]) -> int:
    at = _slot(insn, regs)
    return max(0, -at) if at is not None else 0


def _stack_step(insn: Insn, regs: dict[int, int],
                spills: dict[int, int]) -> list[tuple[int, dict[int, int], dict[int, int]]]:
    """(next pc, stack pointers in registers, stack pointers spilled) for each way the
    instruction goes on; a local call is stepped over (its frame is its own)."""
    op, k = insn.op, insn.op.kind
    nxt = insn.pc + insn.slots
    if k is Kind.EXIT:
        return []
    if k is Kind.JA:
        return [(insn.target, regs, spills)]
    if k is Kind.JCOND:
        return [(nxt, regs, spills), (insn.target, regs, spills)]
    if k in (Kind.CALL, Kind.CALLX, Kind.LDPKT):      # r0-r5 are clobbered
        return [(nxt, {r: v for r, v in regs.items() if 6 <= r <= 9}, spills)]
    regs, at = dict(regs), _slot(insn, regs)
    if k in (Kind.ST, Kind.STX, Kind.ATOMIC) and at is not None:
        spills = {o: v for o, v in spills.items() if not o - 8 < at < o + 8}
        if k is Kind.STX and op.size == 8 and _fp_offset(regs, insn.src) is not None:
            spills[at] = _fp_offset(regs, insn.src)
    written = _written(insn)
    if written is None:
        return [(nxt, regs, spills)]
    src, dst = _fp_offset(regs, insn.src), _fp_offset(regs, insn.dst)
    regs.pop(written, None)
    if k is Kind.LDX and op.size == 8 and at in spills:
        regs[written] = spills[at]
    elif k is Kind.ALU and op.width == 64 and op.operation == "mov" and op.src is Field.READ:
        if src is not None:
            regs[written] = src
    elif (k is Kind.ALU and op.width == 64 and op.operation in ("add", "sub")
          and op.imm is Field.VALUE and dst is not None):
        regs[written] = dst + (insn.imm if op.operation == "add" else -insn.imm)
    return [(nxt, regs, spills)]


def _written(insn: Insn) -> int | None:
    """The register an instruction writes (not counting calls)."""
    op = insn.op
    if op.dst is Field.WRITE:
        return insn.dst
    if op.kind is Kind.ATOMIC and op.operation == "cmpxchg":
        return 0
    if op.kind is Kind.ATOMIC and op.src is Field.WRITE:
        return insn.src
    return None


def _stack(functions: list[dict]) -> dict:
    """The deepest call chain by bytes (each call adds the caller's frame) and by frames,
    against the kernel's limits; a recursion is reported, not followed."""
    frame = {f["slot"]: f["frame"] for f in functions}
    calls = {f["slot"]: [c["slot"] for c in f["calls"]] for f in functions}
    name = {f["slot"]: f["name"] for f in functions}
    limits = {"frame": KERNEL_MAX_STACK, "combined": KERNEL_MAX_STACK,
              "frames": oc.MAX_CALL_FRAMES}
    try:
        depth, slots = _longest(0, calls, frame.__getitem__, {}, ())
        frames, _ = _longest(0, calls, lambda _: 1, {}, ())
    except _Recursion as exc:
        cycle = " -> ".join(name[f] for f in exc.cycle)
        return {"max_depth": None, "path": [], "max_frames": None, "reserved": None,
                "limits": limits, "problems": [],
                "error": f"recursion: {cycle} (the kernel's verifier refuses recursive "
                         "calls; make the call a loop)"}
    path = [name[f] for f in slots]
    problems = [f"{name[f]}: a frame of {b} bytes is over the kernel's {KERNEL_MAX_STACK}"
                for f, b in frame.items() if b > KERNEL_MAX_STACK]
    if depth > KERNEL_MAX_STACK:
        problems.append(f"the call chain {' -> '.join(path)} uses {depth} bytes of stack, "
                        f"over the kernel's combined {KERNEL_MAX_STACK}")
    if frames > oc.MAX_CALL_FRAMES:
        problems.append(f"{frames} nested frames, over the kernel's MAX_CALL_FRAMES "
                        f"({oc.MAX_CALL_FRAMES})")
    return {"max_depth": depth, "path": path, "max_frames": frames,
            "reserved": frames * oc.STACK_FRAME_SIZE, "limits": limits,
            "problems": problems, "error": None}


class _Recursion(Exception):
    """A function that calls itself, directly or not: ``cycle`` lists their slots."""

    def __init__(self, cycle: tuple[int, ...]) -> None:
        super().__init__(cycle)
        self.cycle = cycle


def _longest(fn: int, calls: dict[int, list[int]], weight: Callable[[int], int],
             memo: dict[int, tuple[int, list[int]]],
             chain: tuple[int, ...]) -> tuple[int, list[int]]:
    """(the largest sum of weights along a call path from function ``fn``, that path);
    ``chain``: the calls that led here, to catch a recursion instead of looping."""
    if fn in chain:
        raise _Recursion(chain[chain.index(fn):] + (fn,))
    if fn not in memo:
        best: tuple[int, list[int]] = (0, [])
        for callee in calls[fn]:
            got = _longest(callee, calls, weight, memo, chain + (fn,))
            best = max(best, got, key=lambda t: (t[0], len(t[1])))   # ties: the longer
        memo[fn] = (weight(fn) + best[0], [fn] + best[1])
    return memo[fn]


# -- native code -----------------------------------------------------------------------

def _native(prog: Program, isa: targets.Isa) -> dict:
    """Section sizes of the program's object code for ``isa``, or why there is none."""
    from ..jit import engine, lift           # llvmlite: loaded only when code is made
    try:
        obj, seconds, hit = engine.object_for(prog._code, prog._st[ip.C_BASE:], prog.name,
                                              isa.triple, isa.cpu, isa.features,
                                              isa.code_model, False, prog.starts, prog._core)
    except (lift.JitUnsupported, XsimError) as exc:
        return {"error": f"the JIT cannot compile it for {isa.name}: {exc}"}
    return {**section_sizes(obj), "compile_s": round(seconds, 4), "from_cache": hit}


def section_sizes(obj: bytes) -> dict:
    """Allocated bytes of an object by kind: text (executable), rodata (read-only
    data, unwind tables included), data (writable, .bss included), their sum, and
    every allocated section's size by name."""
    sizes = {"text": 0, "rodata": 0, "data": 0}
    sections: dict[str, int] = {}
    for sec in ELFFile(io.BytesIO(obj)).iter_sections():
        flags = sec["sh_flags"]
        if not flags & SH_FLAGS.SHF_ALLOC:
            continue
        kind = ("text" if flags & SH_FLAGS.SHF_EXECINSTR
                else "data" if flags & SH_FLAGS.SHF_WRITE else "rodata")
        sizes[kind] += sec["sh_size"]
        sections[sec.name] = sections.get(sec.name, 0) + sec["sh_size"]
    return {**sizes, "allocated": sum(sizes.values()), "sections": sections}


# -- maps and global data --------------------------------------------------------------

def _is_data(m: MapSpec) -> bool:
    return is_data_section(m.section) or m.section == ".kconfig"


def _used_maps(relocs: tuple[Reloc, ...],
               maps: dict[str, MapSpec]) -> list[tuple[MapSpec, str | None]]:
    """The maps the program's lddw relocations name, in first-use order, then the inner
    maps a map-of-maps it names holds from the start: (map, the outer map or None)."""
    names = list(dict.fromkeys(r.target for r in relocs if r.kind in ("map", "map_value")))
    used: list[tuple[MapSpec, str | None]] = [(maps[n], None) for n in names]
    for m, _ in list(used):
        if m.type in _MAP_OF_MAPS:
            used += [(maps[inner], m.name) for _, inner in m.init
                     if inner in maps and inner not in names]
    return used


def map_bytes(m: MapSpec, ncpus: int) -> tuple[int | None, str, str]:
    """(bytes the kernel needs at least for ``m`` when full, or None; the formula; a note)."""
    family = MAP_FAMILY.get(m.type)
    if family is None:
        return None, "", UNSIZED_MAPS.get(m.type, "map type not modelled")
    cost = MAP_FAMILIES[family]
    return cost.bytes(m, ncpus), cost.formula, cost.note


def _map_entry(m: MapSpec, ncpus: int, via: str | None) -> dict:
    size, formula, note = map_bytes(m, ncpus)
    return {"name": m.name, "type": str(m.type), "key_size": m.key_size,
            "value_size": m.value_size, "max_entries": m.max_entries, "flags": m.flags,
            "family": MAP_FAMILY.get(m.type), "bytes": size, "formula": formula,
            "note": note, "via": via}


def _global_data(maps: dict[str, MapSpec], used: set[str]) -> dict:
    """The object's global-data sections (each an array map of one value), and the
    bytes of those this program references."""
    sections = [{"section": m.section, "map": m.name, "bytes": m.value_size,
                 "readonly": m.readonly, "used": m.name in used}
                for m in maps.values() if _is_data(m)]
    return {"sections": sections, "bytes": sum(d["bytes"] for d in sections if d["used"]),
            "object_bytes": sum(d["bytes"] for d in sections)}


# -- helpers, kfuncs and the ISA ---------------------------------------------------------

def _helpers(s: _Subject) -> list[dict]:
    """Each helper called by id: its name in the kernel's table, the call sites, and
    whether xsim provides it to this program."""
    sites: dict[int, int] = {}
    for i in s.insns:
        if i.op.kind is Kind.CALL and i.op.disc_value == oc.CALL_HELPER:
            sites[i.imm] = sites.get(i.imm, 0) + 1
    return [{"id": hid, "name": f"bpf_{BY_ID[hid].name}" if hid in BY_ID else None,
             "calls": n, "xsim": s.native.helpers.get(hid) is not None}
            for hid, n in sorted(sites.items())]


def _kfuncs(insns: list[Insn]) -> list[dict]:
    """Each kfunc called: its BTF id and module (off: 0 is vmlinux), and the call sites.
    The loader refuses extern kfunc calls, so only raw bytecode has them: no names."""
    sites: dict[tuple[int, int], int] = {}
    for i in insns:
        if i.op.kind is Kind.CALL and i.op.disc_value == oc.CALL_KFUNC:
            sites[(i.imm, i.off)] = sites.get((i.imm, i.off), 0) + 1
    return [{"btf_id": imm, "off": off, "calls": n} for (imm, off), n in sorted(sites.items())]


def _isa(insns: list[Insn]) -> dict:
    """The lowest ISA version that has every instruction used (the opcode table's
    ``version``), the instructions that need it, and the instructions behind each
    feature."""
    version = max(i.op.version for i in insns)
    names = sorted({i.op.name for i in insns})
    ops = {i.op.name: i.op for i in insns}
    return {"version": version,
            "version_ops": [n for n in names if ops[n].version == version],
            "features": {f: [n for n in names if test(ops[n])] for f, test in FEATURES.items()}}


# -- text -----------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[object]], indent: str = "    ") -> list[str]:
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _render_stack(st: dict) -> list[str]:
    if st["error"]:
        return [f"  stack: {st['error']}"]
    lines = [f"  stack: {st['max_depth']} bytes over the deepest call chain "
             f"({' -> '.join(st['path'])}); {st['max_frames']} frame(s), "
             f"{st['reserved']} bytes at {oc.STACK_FRAME_SIZE} per frame"]
    return lines + [f"  stack problem: {p}" for p in st["problems"]]


def _render_native(r: dict) -> list[str]:
    rows = [[isa, n.get("text"), n.get("rodata"), n.get("data"), n.get("allocated"),
             n.get("error", "")] for isa, n in r["native"].items()]
    form = ("as its hook rewrites it" if r["native_form"] == "hooked"
            else f"on raw memory: its hook refuses it ({r['hook_error']})" if r["hook_error"]
            else "on raw memory")
    return [f"  native code, bytes (the program {form}):"] + _table(
        ["isa", "text", "rodata", "data", "allocated", ""], rows)


def _render_maps(r: dict) -> list[str]:
    lines = [f"  maps: {r['map_bytes']} bytes at least (per-CPU maps for {r['ncpus']} "
             "CPU(s))"]
    rows = [[m["name"] + (f" (in {m['via']})" if m["via"] else ""), m["type"], m["key_size"],
             m["value_size"], m["max_entries"], m["bytes"], m["formula"] or m["note"]]
            for m in r["maps"]]
    if rows:
        lines += _table(["map", "type", "key", "value", "entries", "bytes", "formula"], rows)
    g = r["global_data"]
    used = [f"{d['section']} {d['bytes']}" for d in g["sections"] if d["used"]]
    lines.append(f"  global data: {g['bytes']} bytes used"
                 + (f" ({', '.join(used)})" if used else "")
                 + f", {g['object_bytes']} in the object")
    return lines


def _render_calls(r: dict) -> list[str]:
    helpers = ", ".join(f"{h['id']} {h['name'] or '(unknown)'} ×{h['calls']}"
                        + ("" if h["xsim"] else " (not in xsim)") for h in r["helpers"])
    lines = [f"  helpers: {helpers or 'none'}"]
    if r["kfuncs"]:
        lines.append("  kfuncs: " + ", ".join(f"BTF id {k['btf_id']} (module {k['off']}) "
                                              f"×{k['calls']}" for k in r["kfuncs"]))
    return lines


def _render_isa(isa: dict) -> list[str]:
    used = [f"{name} ({', '.join(ops)})" for name, ops in isa["features"].items() if ops]
    unused = [name for name, ops in isa["features"].items() if not ops]
    why = f" (for {', '.join(isa['version_ops'])})" if isa["version"] > 1 else ""
    return [f"  ISA: v{isa['version']}{why}",
            f"    uses: {'; '.join(used) or 'none'}",
            f"    does not use: {', '.join(unused) or '-'}"]


def render(reports: list[dict]) -> str:
    """The reports as text, one block per program."""
    out: list[str] = []
    for r in reports:
        where = f" ({r['prog_type']}, section {r['section']})" if r["section"] else ""
        out.append(f"program {r['program']}{where}")
        out.append(f"  eBPF: {r['insns']} instructions in {r['slots']} slots, "
                   f"{len(r['functions'])} function(s)")
        out += _table(["function", "slot", "insns", "frame", "calls"],
                      [[f["name"], f["slot"], f["insns"], f["frame"],
                        ", ".join(c["name"] for c in f["calls"])] for f in r["functions"]])
        out += _render_stack(r["stack"])
        out += _render_native(r)
        out += _render_maps(r)
        out += _render_calls(r)
        out += _render_isa(r["isa"])
        out.append("")
    return "\n".join(out)


# -- the command -------------------------------------------------------------------------

def _isa_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        targets.isa(n)                  # an XsimError naming the choices
    if not names:
        raise XsimError(f"--isa needs at least one of {', '.join(targets.ISAS)}")
    return names


def _cmd_footprint(args: argparse.Namespace) -> int:
    path = Path(args.obj)
    if path.read_bytes()[:4] == ELF_MAGIC:
        subject: Object | Program = load(path)
    else:
        source = read_code(path, prog=args.prog)
        subject = Program.from_bytes(source.code, name=source.name)
    reports = footprint(subject, args.prog if isinstance(subject, Object) else None,
                        _isa_list(args.isa), ncpus=args.cpus)
    print(json.dumps(reports, indent=2) if args.json else render(reports).rstrip("\n"))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``footprint`` to the ``xsim`` command's subcommands."""
    p = sub.add_parser("footprint", help="what a program needs on a target: native code "
                       "size per ISA, stack, maps, helpers, ISA features")
    p.add_argument("obj", help="an ELF object, raw bytecode or a .s file")
    p.add_argument("--prog", help="only this program of an ELF object: function or section")
    p.add_argument("--isa", default=",".join(targets.ISAS),
                   help=f"comma-separated ISAs to compile for (default: "
                        f"{','.join(targets.ISAS)})")
    p.add_argument("--cpus", type=int, default=None,
                   help="possible CPUs to size per-CPU maps for (default 1)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(func=_cmd_footprint)
