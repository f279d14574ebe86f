"""The guard of a versioned loop: the checks of all its iterations, made once on entry.

From the registers on entry it computes, as ``loops.py`` proved sound, a bound K on the
iterations (from the loop's exit test), then that no 32-bit value the proof relies on
wraps within K iterations, that the budget has room for K iterations and what follows
up to the next checkpoint, and that each group of accesses stays inside one region
row, with its permissions, over all K.  Everything is computed without branches; the
loop's unchecked copy runs only when all of it holds.
"""
from __future__ import annotations

from . import loops

_32 = 1 << 32
#: caps that keep every product and sum of the guard inside 64 bits
MAX_ITERATIONS = 1 << 30
MAX_STEP = 1 << 31


class _Values:
    """``base + k * step`` of expressions at iteration k, as IR values on entry."""

    def __init__(self, f, lp: loops.Loop) -> None:
        self.f, self.lp = f, lp
        self.cache: dict = {}
        #: the 32-bit atoms used, whose not wrapping the guard must check
        self.narrow: list[tuple] = []

    def of(self, x: loops.Expr) -> tuple:
        f, b = self.f, self.f.b
        base, step = f.const(x[1]), f.const(0)
        for atom, coef in x[0]:
            ab, ast = self.atom(atom)
            base = b.add(base, b.mul(ab, f.const(coef)))
            step = b.add(step, b.mul(ast, f.const(coef)))
        return base, step

    def atom(self, a) -> tuple:
        if a not in self.cache:
            f, b = self.f, self.f.b
            if a[0] == "h":
                r = a[1]
                step = self.of(self.lp.steps[r])[0] if r in self.lp.steps else f.const(0)
                self.cache[a] = (f.reg(r), step)
            else:
                base, step = self.of(a[1])
                m = f.const(_32 - 1)
                self.cache[a] = (b.and_(base, m), b.and_(step, m))
                self.narrow.append(self.cache[a])
        return self.cache[a]


def guard(f, lp: loops.Loop, budget: int) -> tuple:
    """(i1 that all of ``lp``'s checks hold for all its iterations, [(row, host - vbase)]
    of each access group)."""
    b, c = f.b, f.const
    vals = _Values(f, lp)
    ok = []

    def ult(x, y):
        return b.icmp_unsigned("<", x, y)

    t = lp.test
    x0, step = vals.of(t.moving)
    bound = vals.of(t.bound)[0]
    ok.append(b.icmp_unsigned(">=", step, c(1)))
    ok.append(ult(step, c(MAX_STEP)))
    if t.width == 64:       # far from wrapping: the test stops the loop first (a 32-bit
        ok.append(ult(bound, c(1 << 62)))      # value is checked below)
    if t.op == "<=":
        bound = b.add(bound, c(1))
    safe = b.select(b.icmp_unsigned("==", step, c(0)), c(1), step)
    if t.op == "!=":        # it meets the bound exactly
        ok.append(b.icmp_unsigned("<=", x0, bound))
        ok.append(b.icmp_unsigned("==", b.urem(b.sub(bound, x0), safe), c(0)))
    # the test passes for m iterations in a row at most, so at most m + 1 start
    m = b.select(ult(x0, bound), b.udiv(b.add(b.sub(bound, x0), b.sub(safe, c(1))), safe),
                 c(0))
    iterations = b.add(m, c(1))
    ok.append(ult(iterations, c(MAX_ITERATIONS)))
    last = b.sub(iterations, c(1))
    rows = []
    for g in lp.groups:
        base, step = vals.of(g.base)
        ok.append(ult(step, c(_32)))
        lo = b.add(base, c(g.lo))
        hi = b.add(b.add(lo, b.mul(last, step)), c(g.hi - g.lo))
        # hi - lo is below 2**63, so off <= end says that the span does not wrap
        inside, rid, delta = f.span_row(lo, hi, g.perm)
        ok.append(inside)
        rows.append((rid, delta))
    # every 32-bit value the proof reads stays below 2**32 for all iterations
    for base, step in vals.narrow:
        ok.append(ult(step, c(MAX_STEP)))
        ok.append(ult(b.add(base, b.mul(last, step)), c(_32)))
    # the budget: each iteration's checkpoint, and the last one's path on, would pass
    need = b.add(b.mul(last, c(lp.longest)), c(budget))
    ok.append(b.icmp_unsigned("<=", need, b.load(f.left)))
    cond = ok[0]
    for o in ok[1:]:
        cond = b.and_(cond, o)
    return cond, rows
