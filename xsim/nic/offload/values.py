"""The abstract values of the checker's analysis: pointer kinds with constant offsets,
or an unsigned range / small set of constants for a number, and their arithmetic."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ...isa.opcodes import Op


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
