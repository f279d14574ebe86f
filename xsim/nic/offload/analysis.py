"""The checker's abstract interpretation: paths walked as the verifier walks them (up
to a bound of states per pc, then joined and widened), each register an abstract
value (values.py)."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cache

from ...elf.spec import MapSpec
from ...isa import opcodes as oc
from ...isa.insn import Insn
from ...isa.opcodes import Field, Kind
from ...runtime.helper_table import BY_ID
from ...runtime.object import ObjectProgram
from .. import skb, xdp
from .values import (_MASK64, _PATHS, _SET_MAX, _U32, _WIDEN_AFTER, Num, State, Val,
                     _alu_num, _end_num, _full, _join_payload, _join_val, _movsx_num,
                     _num_of, _pointers, _ptr, _scalar, _signed, _sized, _trunc32)


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
