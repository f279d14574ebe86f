"""Accesses the program's own bounds checks prove inside one region: the verifier's
packet-range argument, made once per run instead of once per access.

An XDP parser compares ``data + 14`` with ``data_end`` (or the length with 14)
before it reads the Ethernet header.  Given one fact the program cannot show, that
``[data, data_end)`` lies inside one region row with the right permissions, the
comparisons it does make prove that its accesses stay inside ``[data, data_end)``.
That fact is what the lifter checks at a *guard*, once, where the first such access
is; when it does not hold the interpreter takes the run over at that instruction,
so nothing else changes.

The proof follows every path of a function through its loop-free part (the code a
backward jump cannot reach again), with each register's value as an integer linear
form over *atoms*: runtime values that do not change once made (a register on entry,
a loaded word, a 32-bit result).  Atoms are unsigned; some have an upper bound (a
``u16`` load, ``x & 60``).  A comparison that a path passes adds a fact ``form <= 0``
to it; it holds of the integers, not only modulo 2**64, once the guard has shown that
its unbounded atoms are below 2**48.  An access ``[a, a + size)`` is proven on a path
when a guard ``(s, e)`` holds there with ``s <= a`` and, by some fact, ``a + size <= e``,
and proven when every path that reaches it proves it.  Calls end a guard (a helper
may move or resize a region).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..isa import interp as ip
from .cfg import CALLS, JCONDS, LOADS, NAMES, PKT, STORES, Block, Function, plain_accesses

_M64 = (1 << 64) - 1
#: the guard shows that ``e`` is below this: every atom the guard bounds is below it
GUARD_LIMIT = 1 << 48
#: atoms below this are bounded on their own (a fact's forms stay far from 2**63)
_SMALL = 1 << 32
_MAX_CONST = 1 << 40
_MAX_COEF = 4
_MAX_TERMS = 4
_MAX_FACTS = 24
#: the instructions one proof may follow over all paths before it gives up
STEP_LIMIT = 20_000
_ROUNDS = 6

# A form: (terms, k), terms a frozenset of (atom, coefficient); its value is
# k + sum(coefficient * atom) as an integer.
Form = tuple


@dataclass(frozen=True)
class Guard:
    """Where the region of ``[s, e)`` is checked: ``s`` is register ``base`` minus
    ``base_k``; ``e`` is register ``end`` minus ``end_k``, plus ``s`` when ``add_s``
    (the register holds a length)."""
    base: int
    base_k: int
    end: int
    end_k: int
    add_s: bool


@dataclass
class Proof:
    guards: dict[int, Guard] = field(default_factory=dict)   # access pc -> its guard
    perms: dict[int, int] = field(default_factory=dict)      # guard pc -> what it checks
    proven: set[int] = field(default_factory=set)            # accesses with no check
    #: guard pc -> (s, e) as the function's registers on entry, (register, registers
    #: summed), where every path shows them so and nothing is called: a check the
    #: function's entry can make (and a loop of runs make once)
    at_entry: dict[int, tuple[int, tuple[int, ...]]] = field(default_factory=dict)


def _form(terms: dict, k: int) -> Form | None:
    if abs(k) >= _MAX_CONST:
        return None
    items = frozenset((a, c) for a, c in terms.items() if c)
    if len(items) > _MAX_TERMS or any(abs(c) > _MAX_COEF for _a, c in items):
        return None
    return items, k


def _add(x: Form, y: Form, sign: int = 1) -> Form | None:
    """``x + sign * y``, or None where that is no form."""
    if not y[0]:        # a constant (most sums): x's terms, which are a form's already
        k = x[1] + sign * y[1]
        return (x[0], k) if abs(k) < _MAX_CONST else None
    terms = dict(x[0])
    for a, c in y[0]:
        terms[a] = terms.get(a, 0) + sign * c
    return _form(terms, x[1] + sign * y[1])


def _signed(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


_NONE: frozenset = frozenset()


def _atom(a) -> Form:
    return frozenset(((a, 1),)), 0


def _const(k: int) -> Form:
    return _NONE, k


class _State:
    """One path: registers as forms, atoms' upper bounds, facts, the guard in force."""

    __slots__ = ("regs", "hi", "facts", "guard")

    def __init__(self, regs, hi, facts, guard) -> None:
        self.regs, self.hi, self.facts, self.guard = regs, hi, facts, guard

    def copy(self) -> _State:
        return _State(list(self.regs), dict(self.hi), self.facts, self.guard)

    def fresh(self, a, hi: int | None = None) -> Form:
        if hi is not None:
            self.hi[a] = hi
        return _atom(a)

    def span(self, f: Form) -> tuple[int, int] | None:
        """The least and greatest value of ``f`` over its atoms' bounds (None: unbounded)."""
        lo = hi = f[1]
        for a, c in f[0]:
            top = self.hi.get(a)
            if top is None:
                return None
            lo, hi = (lo, hi + c * top) if c > 0 else (lo + c * top, hi)
        return lo, hi


class _Prover:
    def __init__(self, fn: Function, code: np.ndarray, consts: np.ndarray,
                 cfg: dict[int, Block]) -> None:
        self.fn, self.cfg = fn, cfg
        #: the lowered code and constants as Python ints, read once: every path reads
        #: them again, and a numpy element read costs as much as the rest of a step
        self.rows, self.kvalues = code.tolist(), consts.tolist()
        self.tainted = self._in_loops()
        #: (base, offset, size, perm) of each access the proof may spare a check
        self.accesses = plain_accesses(code, cfg)

    def _in_loops(self) -> set[int]:
        """Blocks a backward jump can reach again (where one path may pass twice)."""
        work = [t for start, blk in self.cfg.items() for t in blk.succs if t <= start]
        seen = set()
        while work:
            n = work.pop()
            if n not in seen:
                seen.add(n)
                work.extend(self.cfg[n].succs)
        return seen

    def operand(self, st: _State, slot: int) -> Form:
        if slot >= ip.C_BASE:
            v = _signed(self.kvalues[slot - ip.C_BASE])
            return _const(v) if abs(v) < _MAX_CONST else st.fresh(("k", slot))
        return st.regs[slot - ip.R_BASE]

    # -- one round: every path, with the guards in ``guards`` ------------------------------
    def explore(self, guards: dict[int, Guard]):
        entry = _State([_atom(("in", r)) for r in range(11)], {}, (), None)
        #: guard pc -> what it shows on each path that reaches it
        self.shown: dict[int, set] = {}
        verdicts: dict[int, bool] = {}
        need: dict[int, int] = {}
        demands: dict[int, Counter] = {}
        work = [(self.fn.entry, entry)]
        steps = 0
        while work:
            start, st = work.pop()
            if start in self.tainted:
                continue
            blk = self.cfg[start]
            steps += len(blk.pcs)
            if steps > STEP_LIMIT:
                return None
            for pc in blk.pcs[:-1]:
                self.visit(st, pc, guards, verdicts, need, demands)
                self.step(st, pc)
            last = blk.pcs[-1]
            self.visit(st, last, guards, verdicts, need, demands)
            row = self.rows[last]
            if NAMES[row[0]] in JCONDS:
                taken, other = st.copy(), st
                target = row[3]
                if len(blk.succs) == 2:     # (a jump to the next instruction tells nothing)
                    self.branch(taken, other, last)
                for succ in blk.succs:
                    work.append((succ, taken if succ == target else other))
                continue
            self.step(st, last)
            for succ in blk.succs:
                work.append((succ, st.copy()))
        return verdicts, need, demands

    def visit(self, st: _State, pc: int, guards, verdicts, need, demands) -> None:
        """The guard and the access at ``pc`` on this path."""
        acc = self.accesses.get(pc)
        if pc in guards:
            st.guard = self.apply(st, guards[pc], pc)
            self.shown.setdefault(pc, set()).add(st.guard and st.guard[:2])
        if acc is None:
            return
        base, off, size, perm = acc
        addr = _add(st.regs[base], _const(off))
        ok = addr is not None and st.guard is not None and self.proves(st, addr, size,
                                                                      st.guard)
        verdicts[pc] = verdicts.get(pc, True) and ok
        if ok:
            need[st.guard[2]] = need.get(st.guard[2], 0) | perm
        elif addr is not None and pc not in guards and st.guard is None:
            g = self.candidate(st, addr, size)
            if g is not None:
                demands.setdefault(pc, Counter())[g] += 1
                # as if it were there: the accesses after it ask for no guard of their own
                st.guard = self.apply(st, g, pc)

    def apply(self, st: _State, g: Guard, pc: int):
        """What a guard at ``pc`` shows on this path: (s, e, pc), or None."""
        shown = self.shows(st, g.base, g.base_k, g.end, g.end_k, g.add_s)
        return None if shown is None else (*shown, pc)

    @staticmethod
    def shows(st: _State, base: int, base_k: int, end: int, end_k: int, add_s: bool):
        """(s, e) of ``Guard(base, base_k, end, end_k, add_s)`` on this path, or None."""
        s = _add(st.regs[base], _const(base_k), -1)
        e = _add(st.regs[end], _const(end_k), -1)
        if s is None or e is None or s[1] or len(s[0]) != 1 or next(iter(s[0]))[1] != 1:
            return None
        if add_s:
            e = _add(e, s)
        if e is None or e[1] or not e[0] or any(c != 1 for _a, c in e[0]) or e == s:
            return None
        return s, e

    def proves(self, st: _State, addr: Form, size: int, guard) -> bool:
        if not st.facts:        # only a fact can bound the access's end
            return False
        s, e, _pc = guard
        free = {a for a, _c in s[0] | e[0]}      # bounded by the guard

        def bounded(f: Form) -> bool:
            return all(a in free or st.hi.get(a, _M64) < _SMALL for a, _c in f[0])

        if not bounded(addr):
            return False
        low = _add(addr, s, -1)                  # a - s >= 0
        if low is None or any(a in free for a, _c in low[0]):
            return False
        span = st.span(low)
        if span is None or span[0] < 0:
            return False
        top = _add(addr, _add(_const(size), e, -1))   # a + size - e <= 0
        if top is None:
            return False
        for fact, atoms in st.facts:
            if not all(a in free or st.hi.get(a, _M64) < _SMALL for a in atoms):
                continue
            rest = _add(top, fact, -1)          # top <= rest + fact <= rest
            if rest is None or any(a in free for a, _c in rest[0]):
                continue
            span = st.span(rest)
            if span is not None and span[1] <= 0:
                return True
        return False

    def candidate(self, st: _State, addr: Form, size: int) -> Guard | None:
        """A guard that would prove this access here, from the registers of this path."""
        if not st.facts:        # none would (proves)
            return None
        regs = st.regs
        for r, f in enumerate(regs):
            if len(f[0]) != 1:
                continue
            ((atom, coef),) = f[0]
            s = _atom(atom)
            if coef != 1 or (atom, 1) not in addr[0]:
                continue
            for j, g in enumerate(regs):
                for add_s in (False, True):
                    shown = self.shows(st, r, f[1], j, g[1], add_s)
                    if shown is None or shown[0] != s:
                        continue
                    if self.proves(st, addr, size, (*shown, -1)):
                        return Guard(r, f[1], j, g[1], add_s)
        return None

    # -- what instructions do to a path -------------------------------------------------------
    def branch(self, taken: _State, other: _State, pc: int) -> None:
        e, a, bslot, _c = self.rows[pc]
        name = NAMES[e]
        if not name.endswith("64"):
            return
        op = name[:-2]
        x, y = taken.regs[a - ip.R_BASE], self.operand(taken, bslot)
        # (smaller, larger, strict) when the jump is taken, and when it is not
        rules = {"jgt": ((y, x, 1), (x, y, 0)), "jge": ((y, x, 0), (x, y, 1)),
                 "jlt": ((x, y, 1), (y, x, 0)), "jle": ((x, y, 0), (y, x, 1))}
        if op not in rules:
            return
        for st, (lo, hi, strict) in zip((taken, other), rules[op]):
            # the larger side is known non-negative, so the unsigned test holds of the
            # integers once its atoms are small enough (the guard's or bounded ones)
            if hi[1] < 0 or any(c < 0 for _a, c in hi[0]):
                continue
            diff = _add(lo, hi, -1)
            fact = None if diff is None else _add(diff, _const(strict))
            if fact is None:
                continue
            atoms = frozenset(a for a, _c in lo[0] | hi[0])
            st.facts = (st.facts + ((fact, atoms),))[-_MAX_FACTS:]

    def step(self, st: _State, pc: int) -> None:
        e, a, bslot, c = self.rows[pc]
        name = NAMES[e]
        regs = st.regs
        dst = a - ip.R_BASE if 0 <= a - ip.R_BASE < 11 else None
        if name in CALLS or name in PKT:
            for r in range(6):
                regs[r] = st.fresh(("c", pc, r))
            if name in CALLS:
                st.guard = None
            return
        if name in STORES or name == "ja" or name in JCONDS or name == "exit":
            return
        if name in LOADS:
            size, signed = LOADS[name]
            regs[dst] = st.fresh(("d", pc), None if signed or size == 8 else
                                 (1 << (8 * size)) - 1)
            return
        if name.startswith("atomic_"):
            if "fetch" in name or "xchg" in name:
                r = 0 if "cmpxchg" in name else bslot - ip.R_BASE
                regs[r] = st.fresh(("d", pc))
            return
        if name == "lddw":
            regs[dst] = self.operand(st, bslot)
            return
        if dst is None:
            return
        regs[dst] = self.alu(st, name, regs[dst], bslot, pc)

    def alu(self, st: _State, name: str, x: Form, bslot: int, pc: int) -> Form:
        fresh = ("d", pc)
        if name[:2] in ("le", "be"):
            bits = int(name[2:])
            return st.fresh(fresh, None if bits == 64 else (1 << bits) - 1)
        width = 32 if name.endswith("32") else 64
        full = _SMALL - 1 if width == 32 else None
        if name.startswith("movsx"):
            return st.fresh(fresh, full)
        op, y = name[:-2], self.operand(st, bslot)
        out = None
        if op == "mov":
            out = y
        elif op in ("add", "sub"):
            out = _add(x, y, 1 if op == "add" else -1)
        if out is not None:
            if width == 64:
                return out
            span = st.span(out)     # a 32-bit result is the integer when it fits
            if span is not None and 0 <= span[0] and span[1] < _SMALL:
                return out
            return st.fresh(fresh, full)
        sx, sy = st.span(x), st.span(y)
        hi = None
        k = y[1] if not y[0] else None
        if op == "and":
            tops = [s[1] for s in (sx, sy) if s is not None and s[0] >= 0]
            if k is not None and k >= 0:
                tops.append(k)
            hi = min(tops, default=None)
        elif sx is not None and sx[0] >= 0 and k is not None and k >= 0:
            if op == "rsh" and k < width:
                hi = sx[1] >> k
            elif op == "lsh" and k < width:
                hi = sx[1] << k
            elif op == "mul":
                hi = sx[1] * k
            elif op in ("div", "mod"):
                hi = sx[1]
        elif op in ("or", "xor") and sx is not None and sy is not None and min(
                sx[0], sy[0]) >= 0:
            hi = (1 << max(sx[1], sy[1]).bit_length()) - 1
        if hi is not None and hi >= (_SMALL if width == 32 else 1 << 64):
            hi = None
        return st.fresh(fresh, hi if hi is not None else full)


def prove(fn: Function, code: np.ndarray, consts: np.ndarray,
          cfg: dict[int, Block]) -> Proof:
    """The guards and proven accesses of ``fn`` (none, if its paths are too many)."""
    p = _Prover(fn, code, consts, cfg)
    guards: dict[int, Guard] = {}
    for _round in range(_ROUNDS):
        found = p.explore(guards)
        if found is None:
            return Proof()
        verdicts, need, demands = found
        new = {pc: c.most_common(1)[0][0] for pc, c in demands.items()
               if pc not in guards and not verdicts.get(pc, False)}
        if not new:
            break
        guards.update(new)
    else:
        found = p.explore(guards)
        if found is None:
            return Proof()
        verdicts, need, demands = found
    proven = {pc for pc, ok in verdicts.items() if ok}
    calls = any(NAMES[p.rows[pc][0]] in CALLS for blk in cfg.values() for pc in blk.pcs)
    at_entry = {} if calls else {pc: e for pc in guards if pc in need and
                                 (e := _entry_terms(p.shown.get(pc, {None}))) is not None}
    return Proof({pc: g for pc, g in guards.items() if pc in need},
                 {pc: need[pc] for pc in guards if pc in need}, proven, at_entry)


def _entry_terms(shown: set) -> tuple[int, tuple[int, ...]] | None:
    """(s, e) as registers on entry, if every path shows the one same pair of them."""
    if len(shown) != 1 or None in shown:
        return None
    ((s, e),) = shown
    if not all(a[0] == "in" and c == 1 for a, c in s[0] | e[0]) or s[1] or e[1]:
        return None
    ((base, _c),) = s[0]
    return base[1], tuple(sorted(a[1] for a, _c in e[0]))
