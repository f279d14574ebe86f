"""Can it be offloaded?  Every reason a target's own toolchain would refuse a program.

A rule set is data: one TOML file per target under ``offload_rules/`` (``nfp.toml``
for the kernel's Netronome driver, ``hxdp.toml`` for hXDP's compiler), each rule with
its source in a comment.  :func:`refusals` reads the program's instructions (rows of
the one opcode table, ``xsim.isa.opcodes``), its helper calls (the one helper table,
``xsim.runtime.helper_table``), its maps (the loader's specs) and its stack frames
(``xsim.crosscheck.footprint.frame_depth``), and says which rules it breaks, naming
the pc and the C source line (BTF line info).

Rules about values (a multiplier that must fit 32 bits, a key that must be on the
stack, a constant exit code) need what the kernel's verifier knows about registers.
This module computes an approximation by abstract interpretation: it walks paths as
the verifier does (up to _PATHS states per pc, then joins them) and gives each
register its pointer kinds (context, stack, packet, map value, ...) with their
constant offsets, or an unsigned range / small set of constants for a number.  The
checks see, per instruction, the union over every path, as the driver's checks
accumulate over every visit.  Where the analysis cannot prove what the driver needs,
it refuses, and the message says what it derived; docs/offload.md lists what it
approximates.
"""
from __future__ import annotations

import bisect
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..crosscheck.footprint import frame_depth
from ..elf.kinds import MapType, ProgType
from ..elf.loader import is_data_section
from ..elf.spec import MapSpec
from ..errors import XsimError
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field, Kind, Op
from ..runtime.helper_table import BY_ID, BY_NAME
from ..runtime.object import Object, ObjectProgram
from . import skb, xdp

__all__ = ["RULES_DIR", "Refusal", "RuleSet", "RuleFileError", "UnknownRules", "parse_rules",
           "load_rules", "rule_sets", "refusals"]

#: where the rule sets live, one ``<name>.toml`` each
RULES_DIR = Path(__file__).resolve().parent / "offload_rules"


# -- errors -------------------------------------------------------------------------

class UnknownRules(XsimError):
    """A rule set name with no file under RULES_DIR: ``available`` lists the names."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name, self.available = name, available
        super().__init__(f"no offload rule set {name!r}: choose one of "
                         f"{', '.join(available) or 'none'} (files in {RULES_DIR})")


class RuleFileError(XsimError):
    """A rule file that cannot be used: the file, the field (dotted) and why."""

    def __init__(self, path: str | Path, field: str, reason: str) -> None:
        self.path, self.field, self.reason = str(path), field, reason
        super().__init__(f"{path}: {field or 'file'}: {reason}")


# -- what a refusal is ----------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """One reason the target refuses the program.

    ``kind``: "program", "size", "stack", "map", "helper", "call", "insn" or "exit";
    ``pc``: the instruction (None for the program or a map); ``line``: ``file:line``
    from BTF line info; ``what``: the helper, map, instruction or program it is about.
    """

    kind: str
    pc: int | None
    line: str | None
    what: str
    reason: str

    def __str__(self) -> str:
        where = "" if self.pc is None else f"pc {self.pc}"
        if self.line:
            where += f" ({self.line})" if where else self.line
        return f"{where}: {self.what}: {self.reason}" if where else f"{self.what}: {self.reason}"


# -- the rule set, as read from its file ----------------------------------------------

#: pointer kinds a rule may name, and how messages say them
POINTER_KINDS = {"ctx": "the context", "stack": "the stack", "packet": "the packet",
                 "packet_end": "the packet end", "map_value": "a map value",
                 "map": "a map", "other": "kernel memory"}
_SELECTORS = ("kind", "class", "operation", "name", "width")


@dataclass(frozen=True)
class InsnRule:
    """Instructions the target cannot take: every given selector matches (a list is
    any of its values), against the opcode table's row."""

    selectors: tuple[tuple[str, frozenset], ...]
    reason: str

    def matches(self, op: Op) -> bool:
        fields = {"kind": op.kind.value, "class": oc.CLASS_NAMES[op.cls],
                  "operation": op.operation, "name": op.name, "width": op.width}
        return all(fields[key] in values for key, values in self.selectors)


@dataclass(frozen=True)
class RuleSet:
    """A target's rules (see docs/offload.md for each field's meaning)."""

    name: str
    path: str
    title: str
    short: str
    prog_types: frozenset[str]
    prog_source: str
    size: dict | None = None
    stack: dict | None = None
    helpers: frozenset[str] = frozenset()
    helper_prog_types: Mapping[str, frozenset[str]] = field(default_factory=dict)
    kfuncs: bool = False
    helper_source: str = ""
    local_calls: bool = True
    calls_source: str = ""
    maps: dict | None = None
    insns: tuple[InsnRule, ...] = ()
    memory: dict | None = None
    alu: dict | None = None
    helper_args: dict | None = None
    exit: Mapping[str, dict] = field(default_factory=dict)
    exit_source: str = ""


class _Table:
    """One TOML table being read: typed fields, every key used once, errors that name
    the file and the dotted field."""

    def __init__(self, path: Path, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise RuleFileError(path, where, f"must be a table, not {type(data).__name__}")
        self.path, self.data, self.where, self.used = path, data, where, set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _fail(self, key: str, reason: str) -> RuleFileError:
        return RuleFileError(self.path, self._name(key), reason)

    def get(self, key: str, kind: type | tuple[type, ...], required: bool = False) -> object:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self._fail(key, "is missing")
            return None
        value = self.data[key]
        bad_bool = isinstance(value, bool) and kind is int
        if bad_bool or not isinstance(value, kind):
            names = (kind,) if isinstance(kind, type) else kind
            raise self._fail(key, f"must be {' or '.join(k.__name__ for k in names)}, not "
                                  f"{type(value).__name__} {value!r}")
        return value

    def count(self, key: str, required: bool = False, minimum: int = 0) -> int | None:
        value = self.get(key, int, required)
        if value is not None and value < minimum:
            raise self._fail(key, f"must be at least {minimum}, not {value}")
        return value

    def text(self, key: str, required: bool = False) -> str | None:
        return self.get(key, str, required)

    def flag(self, key: str) -> bool | None:
        return self.get(key, bool)

    def names(self, key: str, known: Iterable[str], what: str,
              required: bool = False) -> frozenset[str] | None:
        value = self.get(key, list, required)
        if value is None:
            return None
        known = set(known)
        for item in value:
            if not isinstance(item, str):
                raise self._fail(key, f"must list {what} names, not {item!r}")
            if item not in known:
                raise self._fail(key, f"{item!r} is no {what} ({_known(known)})")
        return frozenset(value)

    def table(self, key: str) -> _Table | None:
        self.used.add(key)
        if key not in self.data:
            return None
        return _Table(self.path, self.data[key], self._name(key))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self._fail(extra[0], "is no field of this table (a typo?)")


def _known(names: Iterable[object]) -> str:
    """The valid choices, for an error message: listed when there are few."""
    names = sorted(map(str, names))
    if len(names) > 40:
        return (f"one of {len(names)} names, as xsim's tables spell them: "
                f"{', '.join(names[:5])}, ...")
    return f"known: {', '.join(names)}"


_PROG_TYPES = [t.kernel_name for t in ProgType]
_MAP_TYPES = [t.bpftool_name for t in MapType]


def _ctx_fields(t: _Table, key: str) -> dict[str, tuple[tuple[str, int, int], ...]]:
    """``prog_type = [[name, offset, size], ...]`` for each program type."""
    sub = t.table(key)
    if sub is None:
        return {}
    out = {}
    for ptype in list(sub.data):
        rows = sub.get(ptype, list)
        if ptype not in _PROG_TYPES:
            raise sub._fail(ptype, f"is no program type ({_known(_PROG_TYPES)})")
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)
                    and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                            for v in row[1:])):
                raise sub._fail(ptype, f"rows must be [name, offset, size], not {row!r}")
        out[ptype] = tuple(tuple(row) for row in rows)
    sub.done()
    return out


def _insn_rule(path: Path, data: object, index: int) -> InsnRule:
    t = _Table(path, data, f"insn[{index}]")
    known = {"kind": {k.value for k in Kind}, "class": set(oc.CLASS_NAMES),
             "operation": {op.operation for op in oc.OPS}, "name": {op.name for op in oc.OPS},
             "width": {op.width for op in oc.OPS}}
    selectors = []
    for key in _SELECTORS:
        value = t.get(key, (str, int, list))
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v not in known[key]:
                raise t._fail(key, f"{v!r} is in no row of xsim's opcode table "
                                   f"({_known(known[key])})")
        selectors.append((key, frozenset(values)))
    reason = t.text("reason", required=True)
    t.done()
    if not selectors:
        raise RuleFileError(path, f"insn[{index}]",
                            f"needs at least one of {', '.join(_SELECTORS)}")
    rule = InsnRule(tuple(selectors), reason)
    if not any(rule.matches(op) for op in oc.OPS):
        raise RuleFileError(path, f"insn[{index}]", "its selectors match no instruction")
    return rule


def parse_rules(path: str | Path) -> RuleSet:
    """Read and check one rule file (a RuleFileError naming the field if it is wrong)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RuleFileError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(path, "", f"is not valid TOML: {exc}") from None
    top = _Table(path, data, "")
    title, short = top.text("title", required=True), top.text("short", required=True)

    prog = top.table("program")
    if prog is None:
        raise RuleFileError(path, "program", "is missing")
    prog_types = prog.names("types", _PROG_TYPES, "program type", required=True)
    prog_source = prog.text("source", required=True)
    prog.done()

    size = _section(top, "size", {"max": 1, "per": 1}, ("unit", "source"))
    stack = _section(top, "stack", {"max": 1, "frame_align": 1, "call_overhead": 0,
                                    "callee_saved_overhead": 0}, ("source",))

    helpers, helper_prog_types, kfuncs, helper_source = frozenset(), {}, False, ""
    h = top.table("helpers")
    if h is not None:
        helpers = h.names("allowed", BY_NAME, "helper", required=True)
        kfuncs = bool(h.flag("kfuncs"))
        helper_source = h.text("source", required=True)
        pt = h.table("prog_types")
        if pt is not None:
            for name in list(pt.data):
                if name not in helpers:
                    raise pt._fail(name, "is not in helpers.allowed")
                helper_prog_types[name] = pt.names(name, _PROG_TYPES, "program type")
            pt.done()
        h.done()

    local_calls, calls_source = True, ""
    c = top.table("calls")
    if c is not None:
        local_calls = c.flag("local")
        if local_calls is None:
            raise c._fail("local", "is missing")
        calls_source = c.text("source", required=True)
        c.done()

    maps = None
    m = top.table("maps")
    if m is not None:
        maps = {"types": m.names("types", _MAP_TYPES, "map type", required=True),
                "flags": m.flag("flags"), "source": m.text("source", required=True)}
        for key in ("max_key_size", "max_value_size", "max_elem_size", "max_entries_total"):
            maps[key] = m.count(key, minimum=1)
        maps["elem_align"] = m.count("elem_align", minimum=1) or 1
        host = m.table("host")
        maps["host"] = {}
        if host is not None:
            for name in list(host.data):
                if name not in _MAP_TYPES:
                    raise host._fail(name, f"is no map type ({_known(_MAP_TYPES)})")
                maps["host"][name] = host.names(name, BY_NAME, "helper")
            host.done()
        m.done()

    rows = top.get("insn", list) or []
    insns = tuple(_insn_rule(path, row, i) for i, row in enumerate(rows))

    memory = None
    mem = top.table("memory")
    if mem is not None:
        memory = {k: mem.names(k, POINTER_KINDS, "pointer kind")
                  for k in ("load", "store", "store_imm", "atomic")}
        for key in ("one_pointer_type", "const_stack_offset", "const_map_value_offset",
                    "exclusive_map_words", "zeroed_atomic_words"):
            memory[key] = bool(mem.flag(key))
        memory["stack_offset_align"] = mem.count("stack_offset_align", minimum=1)
        memory["source"] = mem.text("source", required=True)
        memory["ctx_load"] = _ctx_fields(mem, "ctx_load")
        memory["ctx_store"] = _ctx_fields(mem, "ctx_store")
        mem.done()

    alu = None
    a = top.table("alu")
    if a is not None:
        alu = {"mul32": bool(a.flag("mul32")), "div_by_constant": bool(a.flag("div_by_constant")),
               "source": a.text("source", required=True)}
        a.done()

    helper_args = None
    ha = top.table("helper_args")
    if ha is not None:
        helper_args = {"stack_args_align": ha.count("stack_args_align", minimum=1),
                       "current_cpu": bool(ha.flag("perf_event_output_current_cpu")),
                       "output_data": ha.names("perf_event_output_data", POINTER_KINDS,
                                               "pointer kind"),
                       "source": ha.text("source", required=True)}
        ha.done()

    exit_rules, exit_source = {}, ""
    e = top.table("exit")
    if e is not None:
        exit_source = e.text("source", required=True)
        for ptype in [k for k in e.data if k != "source"]:
            if ptype not in _PROG_TYPES:
                raise e._fail(ptype, f"is no program type ({_known(_PROG_TYPES)})")
            sub = e.table(ptype)
            refuse = sub.get("refuse", list) or []
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in refuse):
                raise sub._fail("refuse", f"must list integers, not {refuse!r}")
            exit_rules[ptype] = {"constant": bool(sub.flag("constant")),
                                 "refuse": frozenset(v & _MASK64 for v in refuse)}
            sub.done()
        e.done()
    top.done()
    return RuleSet(path.stem, str(path), title, short, prog_types, prog_source, size, stack,
                   helpers, helper_prog_types, kfuncs, helper_source, local_calls,
                   calls_source, maps, insns, memory, alu, helper_args, exit_rules,
                   exit_source)


def _section(top: _Table, key: str, counts: dict[str, int],
             texts: tuple[str, ...]) -> dict | None:
    """A table of required integers (each at least its minimum) and required strings."""
    t = top.table(key)
    if t is None:
        return None
    out: dict = {k: t.count(k, required=True, minimum=lo) for k, lo in counts.items()}
    out.update({k: t.text(k, required=True) for k in texts})
    t.done()
    return out


def rule_sets() -> list[str]:
    """The names of the rule sets shipped in RULES_DIR."""
    return sorted(p.stem for p in RULES_DIR.glob("*.toml"))


@cache
def load_rules(name: str) -> RuleSet:
    """The rule set called ``name`` (an UnknownRules error lists the others)."""
    if name not in rule_sets():
        raise UnknownRules(name, rule_sets())
    return parse_rules(RULES_DIR / f"{name}.toml")


# -- abstract values ------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_U32 = 0xFFFFFFFF
#: constants kept as a set before a value becomes a range, and offsets per pointer
_SET_MAX = 16
#: distinct states one pc keeps apart before they are joined (a bounded loop of up to
#: this many iterations is walked iteration by iteration)
_PATHS = 64
#: joins at a joined pc before what still changes there is widened
_WIDEN_AFTER = 8


@dataclass(frozen=True)
class Num:
    """An unsigned 64-bit number in [lo, hi]; ``vals`` when it is one of a few constants."""

    lo: int
    hi: int
    vals: frozenset[int] | None = None

    @staticmethod
    def of(values: Iterable[int]) -> Num:
        vs = frozenset(v & _MASK64 for v in values)
        return Num(min(vs), max(vs), vs if len(vs) <= _SET_MAX else None)

    @property
    def const(self) -> int | None:
        return self.lo if self.lo == self.hi else None

    def join(self, other: Num) -> Num:
        vals = None
        if self.vals is not None and other.vals is not None:
            union = self.vals | other.vals
            vals = union if len(union) <= _SET_MAX else None
        return Num(min(self.lo, other.lo), max(self.hi, other.hi), vals)


def _full(mask: int = _MASK64) -> Num:
    return Num(0, mask)


def _sized(size: int) -> Num:
    """What a load of ``size`` bytes may give, zero-extended."""
    return Num(0, (1 << (8 * size)) - 1)


#: a register's value: (kind, ref) -> payload.  kind "scalar": a Num; a pointer kind: its
#: offsets (a frozenset, or None when variable); "map"/"other": None.  ref names the map
#: (map, map_value) or the frame (stack: the function's first slot).
Val = dict


def _scalar(num: Num) -> Val:
    return {("scalar", None): num}


def _ptr(kind: str, ref: object, offs: frozenset[int] | None) -> Val:
    return {(kind, ref): offs}


def _join_payload(a: object, b: object) -> object:
    if isinstance(a, Num):
        return a.join(b)
    if a is None or b is None:
        return None
    union = a | b
    return union if len(union) <= _SET_MAX else None


def _join_val(a: Val, b: Val) -> Val:
    out = dict(a)
    for key, payload in b.items():
        out[key] = _join_payload(out[key], payload) if key in out else payload
    return out


#: where a widened number's upper bound goes: the widths loads and 32-bit ALU give
_WIDEN_TO = (0xFF, 0xFFFF, 0xFFFFFFFF, _MASK64)


def _widen_val(old: Val, new: Val) -> Val:
    """A number that still changes becomes "anything of its width", up to the next of
    _WIDEN_TO (so a 32-bit result stays 32-bit).  Offset sets need no widening: a join
    makes them variable past _SET_MAX, and until then they keep what a bounded loop's
    iterations give, as the verifier's walk of each iteration does."""
    out = {}
    for key, payload in new.items():
        if isinstance(payload, Num) and old.get(key) != payload:
            out[key] = Num(0, next(t for t in _WIDEN_TO if payload.hi <= t))
        else:
            out[key] = payload
    return out


def _num_of(v: Val | None) -> Num:
    """The number a register holds, as far as the rules ask (a pointer: anything)."""
    if not v:
        return _full()
    nums = [p for (kind, _), p in v.items() if kind == "scalar"]
    if len(nums) != len(v):
        return _full()
    out = nums[0]
    for n in nums[1:]:
        out = out.join(n)
    return out


def _pointers(v: Val | None) -> dict[tuple[str, object], object]:
    return {k: p for k, p in (v or {}).items() if k[0] != "scalar"}


@dataclass
class State:
    """Registers, and the current frame's stack: values stored at (offset, size), and
    the bytes known to be zero."""

    regs: dict[int, Val]
    slots: dict[tuple[int, int], Val] = field(default_factory=dict)
    zeros: frozenset[int] = frozenset()

    def copy(self) -> State:
        return State(dict(self.regs), dict(self.slots), self.zeros)

    def join(self, other: State) -> State:
        regs = dict(self.regs)
        for r, v in other.regs.items():
            regs[r] = _join_val(regs[r], v) if r in regs else v
        slots = dict(self.slots)
        for k, v in other.slots.items():
            slots[k] = _join_val(slots[k], v) if k in slots else v
        return State(regs, slots, self.zeros & other.zeros)

    def widen(self, new: State) -> State:
        regs = {r: _widen_val(self.regs.get(r, {}), v) for r, v in new.regs.items()}
        slots = {k: _widen_val(self.slots.get(k, {}), v) for k, v in new.slots.items()}
        return State(regs, slots, new.zeros)

    def clobber_calls(self) -> None:
        for r in range(1, 6):
            self.regs.pop(r, None)


# -- scalar arithmetic ------------------------------------------------------------------

def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _concrete(op: str, a: int, b: int, width: int) -> int:
    """One ALU operation on constants, as RFC 9669 defines it (unsigned view)."""
    mask = (1 << width) - 1
    a, b = a & mask, b & mask
    if op == "add":
        r = a + b
    elif op == "sub":
        r = a - b
    elif op == "mul":
        r = a * b
    elif op == "div":
        r = a // b if b else 0
    elif op == "mod":
        r = a % b if b else a
    elif op == "sdiv":
        sa, sb = _signed(a, width), _signed(b, width)
        r = 0 if not sb else abs(sa) // abs(sb) * (1 if (sa < 0) == (sb < 0) else -1)
    elif op == "smod":
        sa, sb = _signed(a, width), _signed(b, width)
        r = a if not sb else sa - sb * int(abs(sa) // abs(sb) * (1 if (sa < 0) == (sb < 0)
                                                                 else -1))
    elif op == "or":
        r = a | b
    elif op == "and":
        r = a & b
    elif op == "xor":
        r = a ^ b
    elif op == "lsh":
        r = a << (b & (width - 1))
    elif op == "rsh":
        r = a >> (b & (width - 1))
    elif op == "arsh":
        r = _signed(a, width) >> (b & (width - 1))
    elif op == "mov":
        r = b
    elif op == "neg":
        r = -a
    else:
        raise AssertionError(op)
    return r & mask


def _range_op(op: str, a: Num, b: Num, mask: int) -> Num:
    """An ALU operation on ranges: a sound over-approximation, or anything."""
    full = _full(mask)
    if op == "add":
        return Num(a.lo + b.lo, a.hi + b.hi) if a.hi + b.hi <= mask else full
    if op == "sub":
        return Num(a.lo - b.hi, a.hi - b.lo) if a.lo >= b.hi else full
    if op == "mul":
        return Num(a.lo * b.lo, a.hi * b.hi) if a.hi * b.hi <= mask else full
    if op == "div":
        return Num(a.lo // b.hi if b.lo else 0, a.hi // b.lo if b.lo else a.hi)
    if op == "mod":
        return Num(0, min(a.hi, b.hi - 1) if b.lo else a.hi)
    if op == "and":
        return Num(0, min(a.hi, b.hi))
    if op in ("or", "xor"):
        return Num(0, min(mask, (1 << max(a.hi, b.hi).bit_length()) - 1))
    if op == "lsh" and b.const is not None:
        k = b.const & (mask.bit_length() - 1)
        return Num(a.lo << k, a.hi << k) if a.hi << k <= mask else full
    if op == "rsh":
        if b.const is not None:
            k = b.const & (mask.bit_length() - 1)
            return Num(a.lo >> k, a.hi >> k)
        return Num(0, a.hi)
    if op == "arsh" and a.hi <= mask >> 1:
        return _range_op("rsh", a, b, mask)
    if op == "mov":
        return b
    return full


def _trunc32(n: Num) -> Num:
    if n.vals is not None:
        return Num.of(v & _U32 for v in n.vals)
    return n if n.hi <= _U32 else _full(_U32)


def _alu_num(op: str, a: Num, b: Num, width: int) -> Num:
    if width == 32:
        a, b = _trunc32(a), _trunc32(b)
    if a.vals is not None and b.vals is not None and len(a.vals) * len(b.vals) <= _SET_MAX:
        return Num.of(_concrete(op, x, y, width) for x in a.vals for y in b.vals)
    return _range_op(op, a, b, (1 << width) - 1)


def _end_num(op: Op, a: Num) -> Num:
    """le/be/bswap of ``op.width`` bits (xsim runs on little-endian hosts' semantics)."""
    bits = op.width
    mask = (1 << bits) - 1
    if a.vals is not None:
        def swap(v: int) -> int:
            return int.from_bytes((v & mask).to_bytes(bits // 8, "little"), "big")
        return Num.of((v & mask) if op.operation == "le" else swap(v) for v in a.vals)
    return Num(0, min(a.hi, mask)) if op.operation == "le" else _full(mask)


def _movsx_num(op: Op, a: Num) -> Num:
    bits, mask = op.disc_value, (1 << op.width) - 1
    if a.vals is not None:
        return Num.of(_signed(v, bits) & mask for v in a.vals)
    return a if a.hi < 1 << (bits - 1) else _full(mask)


# -- the analysis -----------------------------------------------------------------------

@dataclass
class _Program:
    """What the analysis and the checks read of one program."""

    op: ObjectProgram
    insns: list[Insn]
    by_pc: dict[int, Insn]
    ptype: str
    entries: list[int]
    reloc: dict[int, tuple[str, str, int]]
    maps: dict[str, MapSpec]

    def function_of(self, pc: int) -> int:
        return self.entries[bisect.bisect_right(self.entries, pc) - 1]


def _is_local_call(insn: Insn) -> bool:
    return insn.op.kind is Kind.CALL and insn.op.disc_value == oc.CALL_LOCAL


def _is_helper_call(insn: Insn) -> bool:
    return insn.op.kind is Kind.CALL and insn.op.disc_value == oc.CALL_HELPER


#: context field names by offset, where the hook has a layout table (xsim/nic/skb.py)
_CTX_NAMES = {t: {off: name for name, off in skb.LAYOUT.items()}
              for t in ("sched_cls", "sched_act")}


def _ctx_pointer_fields(ptype: str) -> dict[int, str]:
    """Context offsets whose load gives a packet pointer (xsim/nic/xdp.py and skb.py)."""
    if ptype == "xdp":
        data, end, meta = sorted(xdp.POINTER_FIELDS)        # struct xdp_md order
        return {data: "packet", end: "packet_end", meta: "packet"}
    if ptype in ("sched_cls", "sched_act"):
        lay = skb.LAYOUT
        return {lay["data"]: "packet", lay["data_end"]: "packet_end",
                lay["data_meta"]: "packet"}
    return {}


class _Analysis:
    """The states before each reachable instruction.

    Like the verifier, it walks paths: each pc keeps up to _PATHS distinct states (so a
    bounded loop's iterations stay apart, with their own constant offsets); past that,
    a pc's states are joined into one, widened after _WIDEN_AFTER further joins, and
    the walk through it becomes path-insensitive."""

    def __init__(self, prog: _Program) -> None:
        self.p = prog
        self.ctx_fields = _ctx_pointer_fields(prog.ptype)
        self.states: dict[int, list[State]] = {}
        self.merged: dict[int, int] = {}           # pc -> joins since it was merged
        self.returns: dict[int, Val] = {}
        self.call_states: dict[int, list[State]] = {}
        self.work: list[tuple[int, State]] = []

    def run(self) -> dict[int, State]:
        """pc -> the join of its states: what the driver's per-instruction checks see,
        as they accumulate over every visit of the instruction."""
        self._push(0, State({1: _ptr("ctx", None, frozenset({0})),
                             10: _ptr("stack", 0, frozenset({0}))}))
        while self.work:
            pc, state = self.work.pop()
            insn = self.p.by_pc.get(pc)
            if insn is not None:
                for nxt, after in self._step(insn, state.copy()):
                    self._push(nxt, after)
        out = {}
        for pc, states in self.states.items():
            joined = states[0]
            for st in states[1:]:
                joined = joined.join(st)
            out[pc] = joined
        return out

    def _push(self, pc: int, state: State) -> None:
        have = self.states.setdefault(pc, [])
        if pc in self.merged:
            old = have[0]
            new = old.join(state)
            self.merged[pc] += 1
            if self.merged[pc] > _WIDEN_AFTER:
                new = old.widen(new)
            if new == old:
                return
            have[0] = new
        elif state in have:
            return
        elif len(have) < _PATHS:
            have.append(state)
            new = state
        else:
            new = state
            for st in have:
                new = new.join(st)
            self.states[pc], self.merged[pc] = [new], 0
        self.work.append((pc, new))

    # one instruction: (next pc, state) for each way it goes on
    def _step(self, insn: Insn, s: State) -> list[tuple[int, State]]:
        op, k = insn.op, insn.op.kind
        nxt = insn.pc + insn.slots
        if k is Kind.EXIT:
            fn = self.p.function_of(insn.pc)
            if fn != 0:
                self._returned(fn, s.regs.get(0, _scalar(_full())))
            return []
        if k is Kind.JA:
            return [(insn.target, s)]
        if k is Kind.JCOND:
            return self._branch(insn, s)
        if k is Kind.CALL and op.disc_value == oc.CALL_LOCAL:
            return self._local_call(insn, s)
        if k in (Kind.CALL, Kind.CALLX, Kind.LDPKT):
            r0 = self._helper_result(insn, s) if _is_helper_call(insn) else (
                _scalar(_sized(op.size)) if k is Kind.LDPKT else _scalar(_full()))
            if k is not Kind.LDPKT and self._may_write_stack(insn, s):
                s.slots, s.zeros = {}, frozenset()
            s.clobber_calls()
            s.regs[0] = r0
            return [(nxt, s)]
        if k is Kind.LDDW:
            s.regs[insn.dst] = self._lddw(insn)
        elif k is Kind.ALU:
            s.regs[insn.dst] = self._alu(insn, s)
        elif k is Kind.END:
            s.regs[insn.dst] = _scalar(_end_num(op, _num_of(s.regs.get(insn.dst))))
        elif k is Kind.LDX:
            s.regs[insn.dst] = self._load(insn, s)
        elif k in (Kind.ST, Kind.STX, Kind.ATOMIC):
            self._store(insn, s)
        return [(nxt, s)]

    def _returned(self, fn: int, r0: Val) -> None:
        old = self.returns.get(fn)
        new = r0 if old is None else _join_val(old, r0)
        if new == old:
            return
        self.returns[fn] = new
        for pc, callers in self.call_states.items():
            if self.p.by_pc[pc].target == fn:
                for caller in callers:
                    after = caller.copy()
                    after.regs[0] = new
                    self._push(pc + 1, after)

    def _local_call(self, insn: Insn, s: State) -> list[tuple[int, State]]:
        callee = insn.target
        entry = {r: s.regs[r] for r in range(1, 6) if r in s.regs}
        entry[10] = _ptr("stack", callee, frozenset({0}))
        self._push(callee, State(entry))
        after = State({r: v for r, v in s.regs.items() if r >= 6})   # the callee may
        callers = self.call_states.setdefault(insn.pc, [])          # write our stack
        if after not in callers:
            callers.append(after)
        if callee in self.returns:
            after = after.copy()
            after.regs[0] = self.returns[callee]
            return [(insn.pc + 1, after)]
        return []

    def _lddw(self, insn: Insn) -> Val:
        r = self.p.reloc.get(insn.pc)
        if r is not None:
            kind, target, offset = r
            if kind == "map":
                return _ptr("map", target, None)
            if kind == "map_value":
                return _ptr("map_value", target, frozenset({offset}))
            return _ptr("other", target, None)
        if insn.op.operation == "imm":
            return _scalar(Num.of([insn.value]))
        return _ptr("other", insn.op.operation, None)

    def _may_write_stack(self, insn: Insn, s: State) -> bool:
        """Whether a call may write this frame: it gets a pointer into it where its
        prototype takes a pointer it may write through (not const)."""
        frame = self.p.function_of(insn.pc)
        written = _written_args(insn.imm) if _is_helper_call(insn) else None
        return any(("stack", frame) in s.regs.get(r, {})
                   for r in (written if written is not None else range(1, 6)))

    def _helper_result(self, insn: Insn, s: State) -> Val:
        info = BY_ID.get(insn.imm)
        name = info.name if info else ""
        if name == "map_lookup_elem":
            maps = [ref for (kind, ref) in _pointers(s.regs.get(1)) if kind == "map"]
            if maps:
                out: Val = {}
                for m in maps:
                    out[("map_value", m)] = frozenset({0})
                return out
        if name == "get_prandom_u32":
            return _scalar(_full(_U32))
        return _scalar(_full())

    def _operand(self, insn: Insn, s: State) -> Val:
        if insn.op.source == oc.X:
            return s.regs.get(insn.src, _scalar(_full()))
        width = insn.op.width
        return _scalar(Num.of([insn.imm & ((1 << width) - 1)]))

    def _alu(self, insn: Insn, s: State) -> Val:
        op = insn.op
        operation, width = op.operation, op.width
        src = self._operand(insn, s)
        dst = s.regs.get(insn.dst, _scalar(_full()))
        if operation == "mov":
            if width == 64:
                return dict(src)
            return _scalar(_trunc32(_num_of(src)))
        if operation == "movsx":
            return _scalar(_movsx_num(op, _num_of(src)))
        if operation == "neg":
            return _scalar(_alu_num("neg", _num_of(dst), Num.of([0]), width))
        out: Val = {}
        for dkey, dpay in dst.items():
            for skey, spay in src.items():
                for key, pay in self._combine(operation, width, dkey, dpay, skey, spay):
                    out[key] = _join_payload(out[key], pay) if key in out else pay
        return out

    @staticmethod
    def _combine(operation: str, width: int, dkey, dpay, skey, spay):
        """The (key, payload) one pair of operand parts gives."""
        dscalar, sscalar = dkey[0] == "scalar", skey[0] == "scalar"
        if dscalar and sscalar:
            return [(dkey, _alu_num(operation, dpay, spay, width))]
        if width == 64 and operation in ("add", "sub") and not dscalar and sscalar:
            return [(dkey, _shift(dpay, spay, operation == "sub"))]
        if width == 64 and operation == "add" and dscalar and not sscalar:
            return [(skey, _shift(spay, dpay, False))]
        return [(("scalar", None), _full(_MASK64 if width == 64 else _U32))]

    def _branch(self, insn: Insn, s: State) -> list[tuple[int, State]]:
        taken, fall = s.copy(), s
        dst = s.regs.get(insn.dst)
        src = self._operand(insn, s)
        cmp = insn.op.operation
        c = _num_of(src).const if all(k[0] == "scalar" for k in src) else None
        if dst and all(k[0] == "scalar" for k in dst) and c is not None:
            num = _num_of(dst)
            if insn.op.width == 32:
                if num.hi > _U32:
                    return [(insn.pc + 1, fall), (insn.target, taken)]
                c &= _U32
            out = []
            for target, state, yes in ((insn.pc + 1, fall, False), (insn.target, taken, True)):
                refined = _refine(num, cmp, c, yes)
                if refined is not None:
                    state.regs[insn.dst] = _scalar(refined)
                    out.append((target, state))
            return out
        return [(insn.pc + 1, fall), (insn.target, taken)]

    def _load(self, insn: Insn, s: State) -> Val:
        op = insn.op
        base = s.regs.get(insn.src, {})
        frame = self.p.function_of(insn.pc)
        out: Val = {}

        def add(v: Val) -> None:
            for key, pay in v.items():
                out[key] = _join_payload(out[key], pay) if key in out else pay

        for (kind, ref), offs in _pointers(base).items():
            if kind == "ctx" and offs is not None and op.operation == "ldx":
                for o in offs:
                    field_kind = self.ctx_fields.get(o + insn.off)
                    add(_ptr(field_kind, None, frozenset({0})) if field_kind
                        else _scalar(_sized(op.size)))
            elif kind == "stack" and ref == frame and offs is not None:
                for o in offs:
                    add(s.slots.get((o + insn.off, op.size), _scalar(_sized(op.size))))
            else:
                add(_scalar(_sized(op.size)))
        if not out or op.operation == "ldxs":
            return _scalar(_full() if op.operation == "ldxs" else _sized(op.size))
        return out

    def _store(self, insn: Insn, s: State) -> None:
        op = insn.op
        frame = self.p.function_of(insn.pc)
        base = _pointers(s.regs.get(insn.dst))
        if op.kind is Kind.ATOMIC and op.src is Field.WRITE:    # fetch forms, xchg
            s.regs[insn.src] = _scalar(_sized(op.size))
        if op.kind is Kind.ATOMIC and op.operation == "cmpxchg":
            s.regs[0] = _scalar(_sized(op.size))
        if ("stack", frame) not in base:
            return
        offs = base[("stack", frame)]
        if offs is None:
            s.slots, s.zeros = {}, frozenset()
            return
        value: Val | None = None
        if op.kind is Kind.STX:
            value = s.regs.get(insn.src, _scalar(_full()))
        elif op.kind is Kind.ST:
            value = _scalar(Num.of([insn.imm & ((1 << (8 * op.size)) - 1)]))
        for o in offs:
            at = o + insn.off
            s.slots = {(so, sz): v for (so, sz), v in s.slots.items()
                       if so + sz <= at or at + op.size <= so}
            s.zeros -= set(range(at, at + op.size))
            if value is not None and len(offs) == 1:
                s.slots[(at, op.size)] = value
                if _num_of(value).const == 0 and all(k[0] == "scalar" for k in value):
                    s.zeros |= set(range(at, at + op.size))


@cache
def _written_args(helper_id: int) -> frozenset[int] | None:
    """Argument registers a helper may write memory through, from its prototype in the
    helper table: its pointer parameters not declared const (None: no prototype)."""
    info = BY_ID.get(helper_id)
    if info is None or "(" not in info.proto:
        return None
    params = info.proto[info.proto.index("(") + 1:info.proto.rindex(")")].split(",")
    return frozenset(i for i, param in enumerate(params, 1)
                     if "*" in param and not param.strip().startswith("const"))


def _shift(offs: frozenset[int] | None, by: Num, negate: bool) -> frozenset[int] | None:
    """Pointer offsets moved by a scalar (signed, as the verifier adds them)."""
    if offs is None or by.vals is None or len(offs) * len(by.vals) > _SET_MAX:
        return None
    deltas = [_signed(v, 64) for v in by.vals]
    return frozenset(o - d if negate else o + d for o in offs for d in deltas)


def _refine(n: Num, cmp: str, c: int, taken: bool) -> Num | None:
    """``n`` where ``n <cmp> c`` is ``taken`` (unsigned compares and equality); None when
    that cannot happen."""
    lo, hi, vals = n.lo, n.hi, n.vals
    if cmp in ("jeq", "jne"):
        equal = (cmp == "jeq") == taken
        if equal:
            if not lo <= c <= hi or (vals is not None and c not in vals):
                return None
            return Num.of([c])
        if vals is not None:
            rest = vals - {c}
            return Num.of(rest) if rest else None
        if lo == hi == c:
            return None
        return Num(lo + (lo == c), hi - (hi == c))
    bounds = {"jgt": (c + 1, None), "jge": (c, None), "jlt": (None, c - 1), "jle": (None, c)}
    negated = {"jgt": "jle", "jge": "jlt", "jlt": "jge", "jle": "jgt"}
    if cmp not in bounds:
        return n
    low, high = bounds[cmp if taken else negated[cmp]]
    if low is not None:
        lo = max(lo, low)
    if high is not None:
        hi = min(hi, high)
    if lo > hi:
        return None
    if vals is not None:
        vals = frozenset(v for v in vals if lo <= v <= hi)
        return Num.of(vals) if vals else None
    return Num(lo, hi)


# -- the checks -------------------------------------------------------------------------

def _line(spec_lines: tuple, pc: int | None) -> str | None:
    """``file:line`` of the C source line that instruction comes from (BTF line info)."""
    if pc is None:
        return None
    best = None
    for slot, file, num, _ in spec_lines:
        if slot > pc:
            break
        best = f"{Path(file).name}:{num}"
    return best


def _kinds(v: Val | None) -> set[str]:
    return {kind for kind, _ in _pointers(v)}


def _say(kinds: Iterable[str]) -> str:
    return " or ".join(POINTER_KINDS[k] for k in sorted(kinds))


class _Checker:
    """Runs every rule of a rule set over one analysed program, collecting refusals."""

    def __init__(self, rules: RuleSet, prog: _Program, states: dict[int, State]) -> None:
        self.r, self.p, self.states = rules, prog, states
        self.out: list[Refusal] = []
        #: map -> 4-byte word -> (use, pc) of its first use: "read" or "atomic"
        self.words: dict[str, dict[int, tuple[str, int]]] = {}
        #: map -> words a bpf_map_update_elem may write non-zero, with the call's pc
        self.nonzero: dict[str, dict[int, int]] = {}

    def refuse(self, kind: str, pc: int | None, what: str, reason: str) -> None:
        ref = Refusal(kind, pc, _line(self.p.op.spec.lines, pc), what, reason)
        if ref not in self.out:
            self.out.append(ref)

    def run(self) -> list[Refusal]:
        self.program()
        self.maps()
        self.size()
        self.stack()
        for pc in sorted(self.states):
            insn = self.p.by_pc.get(pc)
            if insn is not None:
                self.insn(insn, self.states[pc])
        self.atomic_words()
        return sorted(self.out, key=lambda f: (f.pc is not None, f.pc or 0))

    # program-level rules
    def program(self) -> None:
        if self.p.ptype not in self.r.prog_types:
            self.refuse("program", None, self.p.ptype,
                        f"{self.r.short} takes only {', '.join(sorted(self.r.prog_types))} "
                        f"programs ({self.r.prog_source})")

    def size(self) -> None:
        rule = self.r.size
        if rule is None:
            return
        n = len(self.p.insns)
        need = math.ceil(n / rule["per"])
        if need > rule["max"]:
            each = "" if rule["per"] == 1 else f" of {rule['per']} instructions each"
            self.refuse("size", None, self.p.op.name,
                        f"{n} eBPF instructions need at least {need} {rule['unit']}{each}, "
                        f"more than the {rule['max']} {self.r.short} holds ({rule['source']}); "
                        "split the program or move work to the host")

    def stack(self) -> None:
        rule = self.r.stack
        if rule is None:
            return
        frames, calls, names = {}, {}, {}
        for slot, body in _functions(self.p):
            depth = frame_depth(body)
            if slot != 0:
                depth += rule["call_overhead"]
                if any(6 <= i.dst <= 9 for i in body):      # needs_reg_push
                    depth += rule["callee_saved_overhead"]
            frames[slot] = -(-depth // rule["frame_align"]) * rule["frame_align"]
            calls[slot] = sorted({i.target for i in body if _is_local_call(i)})
            names[slot] = dict(self.p.op.spec.func_names).get(slot, f"{self.p.op.name}+{slot}")
        total, chain = _deepest(0, frames, calls)
        if total > rule["max"]:
            path = " -> ".join(names[s] for s in chain)
            self.refuse("stack", None, path,
                        f"the call chain takes {total} bytes of stack as {self.r.short} counts "
                        f"it (frames rounded up to {rule['frame_align']} bytes, a return "
                        f"address and saved r6-r9 per call), more than its {rule['max']} "
                        f"({rule['source']}); keep large buffers in a map value")

    def maps(self) -> None:
        rule = self.r.maps
        if rule is None:
            return
        used = _used_maps(self.p)
        total = 0
        for m in used:
            kind = m.type.bpftool_name
            data = is_data_section(m.section) or m.section == ".kconfig"
            if kind in rule["host"]:
                continue                  # stays on the host, checked at its helper calls
            if kind not in rule["types"]:
                self.refuse("map", None, m.name,
                            f"it is a {kind} map, and {self.r.short} takes only "
                            f"{', '.join(sorted(rule['types']))} maps ({rule['source']})")
            flags = m.flags | (_libbpf_data_flags(m) if data else 0)
            if rule["flags"] is False and flags:
                named = " | ".join(_flag_names(flags))
                why = (f"libbpf creates the {m.section} map with flags {flags:#x} ({named})"
                       if data else f"the map has map_flags {flags:#x} ({named})")
                self.refuse("map", None, m.name,
                            f"{why}, and {self.r.short} takes no map flags ({rule['source']}); "
                            + ("use a map of your own instead of global data" if data
                               else "drop the flags"))
            self._map_sizes(m, rule)
            total += m.max_entries
        limit = rule.get("max_entries_total")
        if limit is not None and total > limit:
            self.refuse("map", None, ", ".join(m.name for m in used),
                        f"the maps hold {total} entries together, more than the {limit} "
                        f"{self.r.short} has for all maps ({rule['source']})")

    def _map_sizes(self, m: MapSpec, rule: dict) -> None:
        align = rule["elem_align"]
        checks = [("key", m.key_size, rule.get("max_key_size")),
                  ("value", m.value_size, rule.get("max_value_size"))]
        for what, size, limit in checks:
            if limit is not None and size > limit:
                self.refuse("map", None, m.name,
                            f"its {what} is {size} bytes, more than the {limit} "
                            f"{self.r.short} takes ({rule['source']})")
        limit = rule.get("max_elem_size")
        elem = -(-m.key_size // align) * align + -(-m.value_size // align) * align
        if limit is not None and elem > limit:
            self.refuse("map", None, m.name,
                        f"an element takes {elem} bytes (key and value each rounded up to "
                        f"{align}), more than the {limit} {self.r.short} takes "
                        f"({rule['source']}); shrink the key or the value")

    # instruction-level rules
    def insn(self, insn: Insn, s: State) -> None:
        op = insn.op
        for rule in self.r.insns:
            if rule.matches(op):
                self.refuse("insn", insn.pc, op.name, rule.reason)
        if _is_helper_call(insn):
            self.helper(insn, s)
        elif op.kind is Kind.CALL and op.disc_value == oc.CALL_KFUNC and not self.r.kfuncs:
            self.refuse("helper", insn.pc, f"kfunc (BTF id {insn.imm})",
                        f"{self.r.short} calls no kernel functions; it supports only the "
                        f"helpers {_helper_list(self.r)} ({self.r.helper_source})")
        elif _is_local_call(insn) and not self.r.local_calls:
            self.refuse("call", insn.pc, "bpf-to-bpf call",
                        f"{self.r.short} does not support calls to subprograms "
                        f"({self.r.calls_source}); mark the callee __always_inline")
        elif op.kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
            self.memory(insn, s)
        elif op.kind is Kind.ALU:
            self.alu(insn, s)
        elif op.kind is Kind.EXIT:
            self.exit(insn, s)

    def helper(self, insn: Insn, s: State) -> None:
        info = BY_ID.get(insn.imm)
        name = info.name if info else None
        what = f"bpf_{name}" if name else f"helper {insn.imm}"
        if name not in self.r.helpers:
            self.refuse("helper", insn.pc, what,
                        f"{self.r.short} supports only the helpers {_helper_list(self.r)} "
                        f"({self.r.helper_source}); do this on the host or in a program "
                        "that is not offloaded")
            return
        types = self.r.helper_prog_types.get(name)
        if types is not None and self.p.ptype not in types:
            self.refuse("helper", insn.pc, what,
                        f"{self.r.short} supports it only in {', '.join(sorted(types))} "
                        f"programs, not {self.p.ptype} ({self.r.helper_source})")
        host = (self.r.maps or {}).get("host", {})
        passed = [key for r in range(1, 6) for key in _pointers(s.regs.get(r))]
        for (kind, ref) in passed:
            if kind == "map" and ref in self.p.maps:
                mtype = self.p.maps[ref].type.bpftool_name
                if mtype in host and name not in host[mtype]:
                    self.refuse("helper", insn.pc, what,
                                f"the {mtype} map {ref} stays on the host: {self.r.short} "
                                f"uses it only through {', '.join(sorted(host[mtype]))} "
                                f"({self.r.maps['source']})")
        args = self.r.helper_args
        if args is None:
            return
        if name in ("map_lookup_elem", "map_update_elem", "map_delete_elem"):
            self._stack_arg(insn, s, 2, what, "key", args)
            if name == "map_update_elem":
                self._stack_arg(insn, s, 3, what, "value", args)
                self._update_value(insn, s)
        if name == "perf_event_output":
            self._perf_event_output(insn, s, what, args)

    def _stack_arg(self, insn: Insn, s: State, reg: int, what: str, role: str,
                   args: dict) -> None:
        v = s.regs.get(reg)
        kinds = _kinds(v)
        align = args["stack_args_align"]
        if kinds - {"stack"} or not kinds:
            where = _say(kinds - {"stack"}) if kinds - {"stack"} else "something xsim cannot type"
            self.refuse("helper", insn.pc, what,
                        f"its {role} (r{reg}) points to {where}; {self.r.short} takes map "
                        f"keys and values only from the stack ({args['source']}); copy it to "
                        f"a {align}-byte aligned stack slot first")
            return
        for (kind, _), offs in _pointers(v).items():
            if offs is None:
                self.refuse("helper", insn.pc, what,
                            f"its {role} (r{reg}) is at a variable stack offset; "
                            f"{self.r.short} needs a constant one ({args['source']})")
            elif any(o % align for o in offs):
                self.refuse("helper", insn.pc, what,
                            f"its {role} (r{reg}) is at stack offset "
                            f"{', '.join(map(str, sorted(offs)))}, not {align}-byte aligned "
                            f"({args['source']}); align the variable")

    def _update_value(self, insn: Insn, s: State) -> None:
        """Words bpf_map_update_elem() may write non-zero, for the atomic-counter rule."""
        if not (self.r.memory or {}).get("zeroed_atomic_words"):
            return
        value = _pointers(s.regs.get(3))
        frame = self.p.function_of(insn.pc)
        for (kind, ref) in _pointers(s.regs.get(1)):
            if kind != "map" or ref not in self.p.maps:
                continue
            size = self.p.maps[ref].value_size
            words = self.nonzero.setdefault(ref, {})
            for (vkind, vref), offs in value.items():
                for o in (offs or ()):
                    known_zero = vkind == "stack" and vref == frame
                    for i in range(size):
                        if not (known_zero and o + i in s.zeros):
                            words.setdefault(i // 4, insn.pc)
                if offs is None:
                    for i in range(size):
                        words.setdefault(i // 4, insn.pc)

    def _perf_event_output(self, insn: Insn, s: State, what: str, args: dict) -> None:
        if args["current_cpu"]:
            flags = _num_of(s.regs.get(3))
            if flags.vals is None or any(v & _U32 != _U32 for v in flags.vals):
                self.refuse("helper", insn.pc, what,
                            f"its flags (r3) must be BPF_F_CURRENT_CPU for {self.r.short}, "
                            f"which sends events from whichever CPU it runs on "
                            f"({args['source']})")
        allowed = args["output_data"]
        if allowed is not None:
            bad = _kinds(s.regs.get(4)) - allowed
            if bad:
                self.refuse("helper", insn.pc, what,
                            f"its data (r4) points to {_say(bad)}; {self.r.short} sends "
                            f"only {_say(allowed)} ({args['source']})")
            if "stack" in _kinds(s.regs.get(4)) and "stack" in allowed:
                self._stack_arg(insn, s, 4, what, "data", args)

    def memory(self, insn: Insn, s: State) -> None:
        rule = self.r.memory
        if rule is None:
            return
        op = insn.op
        if op.kind is Kind.LDX:
            base_reg, access, allowed = insn.src, "load from", rule["load"]
        elif op.kind is Kind.STX:
            base_reg, access, allowed = insn.dst, "store into", rule["store"]
        elif op.kind is Kind.ST:
            base_reg, access, allowed = insn.dst, "store an immediate into", rule["store_imm"]
        else:
            base_reg, access, allowed = insn.dst, "do an atomic operation on", rule["atomic"]
        base = _pointers(s.regs.get(base_reg))
        kinds = {kind for kind, _ in base}
        src = rule["source"]
        if allowed is not None and kinds - allowed:
            advice = {"map_value": "; update the value with bpf_map_update_elem() or count "
                                   "with an atomic add",
                      "stack": ""}.get(next(iter(sorted(kinds - allowed))), "")
            self.refuse("insn", insn.pc, op.name,
                        f"{self.r.short} cannot {access} {_say(kinds - allowed)} "
                        f"(r{base_reg}), only {_say(allowed)} ({src}){advice}")
        if rule["one_pointer_type"] and len(kinds) > 1:
            self.refuse("insn", insn.pc, op.name,
                        f"this instruction reaches {_say(kinds)} through r{base_reg} on "
                        f"different paths; {self.r.short} translates each memory access for "
                        f"one pointer type ({src}); split the paths")
        if op.kind is Kind.ATOMIC and _kinds(s.regs.get(insn.src)):
            self.refuse("insn", insn.pc, op.name,
                        f"{self.r.short} adds only numbers atomically, and r{insn.src} may "
                        f"be a pointer ({src})")
        for (kind, ref), offs in base.items():
            if kind == "stack":
                self._stack_access(insn, offs, rule)
            elif kind == "map_value":
                self._map_value_access(insn, ref, offs, rule)
            elif kind == "ctx" and offs is not None:
                self._ctx_access(insn, offs, rule)

    def _stack_access(self, insn: Insn, offs: frozenset[int] | None, rule: dict) -> None:
        if rule["const_stack_offset"] and offs is None:
            self.refuse("insn", insn.pc, insn.op.name,
                        f"a stack access at a variable offset: {self.r.short} needs a "
                        f"constant one ({rule['source']}: variable ptr stack access)")
        align = rule["stack_offset_align"]
        if align and offs is not None and len({o % align for o in offs}) > 1:
            self.refuse("insn", insn.pc, insn.op.name,
                        f"this instruction reaches stack offsets "
                        f"{', '.join(map(str, sorted(offs)))} on different paths, which "
                        f"differ modulo {align}; {self.r.short} cannot translate that "
                        f"({rule['source']}: stack access changed location)")

    def _map_value_access(self, insn: Insn, ref: str, offs: frozenset[int] | None,
                          rule: dict) -> None:
        op = insn.op
        use = {Kind.LDX: "read", Kind.ATOMIC: "atomic"}.get(op.kind)
        if use is None:
            return
        if offs is None:
            if rule["const_map_value_offset"]:
                self.refuse("insn", insn.pc, op.name,
                            f"an access to map {ref}'s value at a variable offset: "
                            f"{self.r.short} needs a constant one ({rule['source']}: map "
                            "value offset is variable)")
            return
        if not rule["exclusive_map_words"] and not rule["zeroed_atomic_words"]:
            return
        words = self.words.setdefault(ref, {})
        conflict = None
        for o in sorted(offs):
            start, i = o + insn.off, 0
            while i < op.size:             # nfp_bpf_map_mark_used(): each word touched
                word = (start + i) // 4
                first = words.setdefault(word, (use, insn.pc))
                if first[0] != use and conflict is None:
                    conflict = (word, first)
                i += 4 - (start + i) % 4
        if rule["exclusive_map_words"] and conflict is not None:
            word, (other, pc) = conflict
            done = "read" if other == "read" else "used as an atomic counter"
            here = "read" if use == "read" else "counted atomically"
            self.refuse("insn", insn.pc, op.name,
                        f"byte {4 * word} of map {ref}'s value is {done} at pc {pc} and "
                        f"{here} here; {self.r.short} keeps each 4-byte word either read or "
                        f"an atomic counter ({rule['source']}: map value use type conflict)")

    def _ctx_access(self, insn: Insn, offs: frozenset[int], rule: dict) -> None:
        """Loads: the fields ``ctx_load`` lists for this program type (none listed: not
        checked); stores: only those ``ctx_store`` lists (immediates and atomics are
        refused by pointer kind)."""
        op = insn.op
        if op.kind is Kind.LDX:
            fields = rule["ctx_load"].get(self.p.ptype)
            if fields is None:
                return
        elif op.kind is Kind.STX:
            fields = rule["ctx_store"].get(self.p.ptype, ())
        else:
            return
        for o in offs:
            at = o + insn.off
            if not any(at == off and op.size == size for _, off, size in fields):
                verb = "read" if op.kind is Kind.LDX else "write"
                names = ", ".join(f"{n} ({size} bytes)" for n, _, size in fields)
                which = f"only {names}" if names else "no field"
                field_name = _CTX_NAMES.get(self.p.ptype, {}).get(at)
                this = f"{field_name} (offset {at})" if field_name else f"offset {at}"
                self.refuse("insn", insn.pc, op.name,
                            f"in {self.p.ptype} programs {self.r.short} can {verb} {which} "
                            f"of the context, and this {verb}s {this}, {op.size} bytes "
                            f"({rule['source']})")

    def alu(self, insn: Insn, s: State) -> None:
        rule = self.r.alu
        if rule is None:
            return
        op = insn.op
        x = op.source == oc.X
        dst = _num_of(s.regs.get(insn.dst))
        src = _num_of(s.regs.get(insn.src)) if x else None
        src_text = f"r{insn.src}" if x else f"{insn.imm}"
        why = rule["source"]
        if rule["mul32"] and op.operation == "mul":
            if dst.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} multiplies only numbers that fit 32 bits, and "
                            f"r{insn.dst} may be up to {dst.hi:#x} here ({why}: multiplier "
                            "is not within u32 value range); mask or narrow it first")
            if x and src.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} multiplies only numbers that fit 32 bits, and "
                            f"{src_text} may be up to {src.hi:#x} here ({why}: multiplicand "
                            "is not within u32 value range); mask or narrow it first")
            if not x and op.width == 64 and insn.imm < 0:
                self.refuse("insn", insn.pc, op.name,
                            f"a 64-bit multiply by {insn.imm}: the sign-extended constant does "
                            f"not fit 32 bits for {self.r.short} ({why})")
        if rule["div_by_constant"] and op.operation in ("div", "sdiv"):
            if dst.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} divides only numbers that fit 32 bits, and "
                            f"r{insn.dst} may be up to {dst.hi:#x} here ({why}: dividend is "
                            "not within u32 value range)")
            if x and src.const is None:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} divides only by a constant (by multiplying by "
                            f"its reciprocal), and r{insn.src} may be anything in "
                            f"[{src.lo}, {src.hi}] here ({why}: divisor is not constant)")
            elif x and src.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"the divisor {src.hi:#x} does not fit 32 bits ({why})")
            if not x and insn.imm < 0:
                self.refuse("insn", insn.pc, op.name,
                            f"a division by the negative constant {insn.imm}: "
                            f"{self.r.short} divides unsigned only ({why})")

    def exit(self, insn: Insn, s: State) -> None:
        rule = self.r.exit.get(self.p.ptype)
        if rule is None:
            return
        r0 = s.regs.get(0)
        num = _num_of(r0)
        if rule["constant"] and (num.vals is None or _kinds(r0)):
            self.refuse("exit", insn.pc, "exit",
                        f"r0 is not a known constant here (it may be anything in "
                        f"[{num.lo}, {num.hi}]); {self.r.short} needs a constant return code "
                        f"in a {self.p.ptype} program ({self.r.exit_source})")
            return
        bad = sorted(v for v in (num.vals or ()) if v in rule["refuse"])
        if bad:
            self.refuse("exit", insn.pc, "exit",
                        f"the program may return {', '.join(map(str, bad))}, which "
                        f"{self.r.short} cannot give back to {self.p.ptype} "
                        f"({self.r.exit_source}); return one of the codes it maps, such "
                        "as TC_ACT_SHOT (2) or TC_ACT_UNSPEC (-1)")

    def atomic_words(self) -> None:
        """Words a bpf_map_update_elem() may make non-zero that are atomic counters."""
        if not (self.r.memory or {}).get("zeroed_atomic_words"):
            return
        for ref, words in self.nonzero.items():
            uses = self.words.get(ref, {})
            for word, pc in sorted(words.items()):
                use = uses.get(word)
                if use and use[0] == "atomic":
                    self.refuse("helper", pc, "bpf_map_update_elem",
                                f"it may write a non-zero value into byte {4 * word} of map "
                                f"{ref}'s value, an atomic counter at pc {use[1]}; "
                                f"{self.r.short} needs atomic counters set to zero by "
                                f"bpf_map_update_elem() ({self.r.memory['source']})")
                    break


def _helper_list(rules: RuleSet) -> str:
    return ", ".join(f"bpf_{n}" for n in sorted(rules.helpers)) or "none"


#: uapi bpf.h map_flags, for messages
_MAP_FLAGS = {1 << 0: "BPF_F_NO_PREALLOC", 1 << 1: "BPF_F_NO_COMMON_LRU",
              1 << 2: "BPF_F_NUMA_NODE", 1 << 3: "BPF_F_RDONLY", 1 << 4: "BPF_F_WRONLY",
              1 << 7: "BPF_F_RDONLY_PROG", 1 << 8: "BPF_F_WRONLY_PROG",
              1 << 10: "BPF_F_MMAPABLE"}
_BPF_F_RDONLY_PROG, _BPF_F_MMAPABLE = 1 << 7, 1 << 10


def _libbpf_data_flags(m: MapSpec) -> int:
    """The flags libbpf creates a global-data map with (bpf_object__init_internal_map):
    BPF_F_RDONLY_PROG for .rodata and .kconfig, and BPF_F_MMAPABLE."""
    readonly = m.readonly or m.section.startswith(".rodata") or m.section == ".kconfig"
    return (_BPF_F_RDONLY_PROG if readonly else 0) | _BPF_F_MMAPABLE


def _flag_names(flags: int) -> list[str]:
    names = [n for bit, n in _MAP_FLAGS.items() if flags & bit]
    rest = flags & ~sum(_MAP_FLAGS)
    return names + ([f"{rest:#x}"] if rest else [])


def _functions(p: _Program) -> list[tuple[int, list[Insn]]]:
    """(first slot, instructions) of each function, in slot order."""
    ends = p.entries[1:] + [p.op.program.n_slots]
    return [(e, [i for i in p.insns if e <= i.pc < end]) for e, end in zip(p.entries, ends)]


def _deepest(fn: int, frames: dict[int, int],
             calls: dict[int, list[int]]) -> tuple[int, list[int]]:
    """(the largest sum of frames along a call path from ``fn``, that path); the kernel's
    verifier has refused recursion before a driver sees a program."""
    best = (0, [])
    for callee in calls.get(fn, ()):
        got = _deepest(callee, frames, calls)
        best = max(best, got, key=lambda t: t[0])
    return frames.get(fn, 0) + best[0], [fn] + best[1]


def _used_maps(p: _Program) -> list[MapSpec]:
    """The maps the program's instructions name, in first-use order."""
    names = dict.fromkeys(target for kind, target, _ in p.reloc.values()
                          if kind in ("map", "map_value"))
    return [p.maps[n] for n in names if n in p.maps]


def _prepare(obj: Object, prog_name: str | None) -> _Program:
    op = obj.choose(prog_name)
    insns = op.program.insns
    entries = {0} | {slot for slot, _ in op.spec.func_names}
    entries |= {i.target for i in insns if _is_local_call(i)}
    reloc = {r.slot: (r.kind, r.target, r.offset) for r in op.spec.relocs}
    return _Program(op, insns, {i.pc: i for i in insns}, op.spec.prog_type.kernel_name,
                    sorted(entries), reloc, {m.name: m for m in obj.spec.maps})


def refusals(obj: Object, prog_name: str | None, rules: str | RuleSet) -> list[Refusal]:
    """Every reason the target of rule set ``rules`` ("nfp", "hxdp", or a parsed
    RuleSet) refuses program ``prog_name`` of ``obj`` (the only one when None); an
    empty list when it would take it.  Program-wide reasons come first, then by pc."""
    ruleset = rules if isinstance(rules, RuleSet) else load_rules(rules)
    prog = _prepare(obj, prog_name)
    states = _Analysis(prog).run()
    return _Checker(ruleset, prog, states).run()
