"""The rule sets of the offload checker, as read from their TOML files (one per
target toolchain under ``rules/``, each rule with its source in a comment), and the
errors a wrong file or name gives."""
from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ...elf.kinds import MapType, ProgType
from ...errors import XsimError
from ...isa import opcodes as oc
from ...isa.opcodes import Kind, Op
from ...runtime.helper_table import BY_NAME
from ...timing.profile import RULES_DIR
from .values import _MASK64


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
