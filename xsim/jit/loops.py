"""Innermost loops whose checks can all be made once, on entry: the proof behind the
JIT's loop versioning.

For a loop without calls or exits, every register is followed through one iteration
as a linear expression of the registers' values at the loop header (exact modulo 2**64;
a 32-bit result is an atom of its own, exact while it does not wrap).  A register that
comes back unchanged is invariant; one that comes back plus an invariant amount is an
induction variable, so that at iteration k every tracked value is ``base + k * step``.
A conditional exit that every iteration passes, comparing such a value with an
invariant one, bounds the number of iterations.  With that bound, every access of the
loop covers a span that one check on entry can prove inside one region, and the budget
one check can prove enough for all iterations.  What this module finds, the lifter
turns into a guard computed from the registers on entry: when it holds, a copy of the
loop without budget or region checks runs; when it does not, the checked loop does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..isa import interp as ip
from .cfg import JCONDS, LOADS, NAMES, STORES, Block, Function, access
from .semantics import ALU, END

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1

# An expression: (terms, const), terms a sorted tuple of (atom, coefficient), all modulo
# 2**64.  An atom is ("h", r): register r at the header of this iteration, or ("z", e):
# the 32-bit value e modulo 2**32, zero-extended.
Expr = tuple


def _expr(terms: dict, const: int) -> Expr:
    items = tuple(sorted(((a, c & _M64) for a, c in terms.items() if c & _M64), key=repr))
    return items, const & _M64


def const(v: int) -> Expr:
    return (), v & _M64


def header(r: int) -> Expr:
    return ((("h", r), 1),), 0


def combine(x: Expr, y: Expr, sign: int = 1) -> Expr:
    terms = dict(x[0])
    for a, c in y[0]:
        terms[a] = terms.get(a, 0) + sign * c
    return _expr(terms, x[1] + sign * y[1])


def scale(x: Expr, k: int) -> Expr:
    return _expr({a: c * k for a, c in x[0]}, x[1] * k)


def low32(x: Expr) -> Expr:
    """``x`` modulo 2**32 (a lone 32-bit atom is its own expression again)."""
    terms, c = x
    if c == 0 and len(terms) == 1 and terms[0][1] == 1 and terms[0][0][0] == "z":
        return terms[0][0][1]
    return _expr({a: k & _M32 for a, k in terms}, c & _M32)


def zext32(x: Expr) -> Expr:
    """The value of a 32-bit operation whose result, modulo 2**32, is ``x``."""
    x = low32(x)
    if not x[0]:
        return const(x[1] & _M32)
    return ((("z", x), 1),), 0


def atoms(x: Expr):
    """Every atom ``x`` depends on, nested ones first."""
    for a, _c in x[0]:
        if a[0] == "z":
            yield from atoms(a[1])
        yield a


def registers(x: Expr) -> set[int]:
    return {a[1] for a in atoms(x) if a[0] == "h"}


@dataclass
class Test:
    """A conditional exit every iteration passes: the loop goes on only while
    ``moving <op> bound`` (``op`` one of ``<``, ``<=``, ``!=``, unsigned, on ``width``
    bits); ``moving`` changes with the iteration, ``bound`` does not."""
    pc: int
    moving: Expr
    bound: Expr
    op: str
    width: int


@dataclass
class Group:
    """Accesses through one address expression (plus constants): at iteration k they
    fall inside ``[base(k) + lo, base(k) + hi)``, with permissions ``perm``."""
    base: Expr
    lo: int
    hi: int
    perm: int
    pcs: list[int] = field(default_factory=list)


@dataclass
class Loop:
    header: int
    blocks: list[int]             # its blocks' first pcs, header first
    steps: dict[int, Expr]        # induction variable -> its step (invariant)
    invariant: set[int]
    test: Test                    # the exit test that bounds its iterations
    groups: list[Group]
    longest: int                  # the most instructions one iteration runs
    exits: list[int]              # blocks outside the loop it can go to
    group_of: dict[int, int]      # access pc -> index in groups


#: what a loop may hold for its copy to run without checks
_PLAIN = {"ja", "lddw"} | JCONDS | set(LOADS) | set(STORES) | set(ALU) | set(END)


def _dominators(entry: int, cfg: dict[int, Block]) -> dict[int, set[int]]:
    order, seen = [], set()

    def visit(n: int) -> None:        # iterative post-order
        stack = [(n, iter(cfg[n].succs))]
        seen.add(n)
        while stack:
            node, it = stack[-1]
            for s in it:
                if s not in seen:
                    seen.add(s)
                    stack.append((s, iter(cfg[s].succs)))
                    break
            else:
                stack.pop()
                order.append(node)
    visit(entry)
    rpo = order[::-1]
    preds: dict[int, list[int]] = {n: [] for n in rpo}
    for n in rpo:
        for s in cfg[n].succs:
            preds[s].append(n)
    dom = {n: set(rpo) for n in rpo}
    dom[entry] = {entry}
    changed = True
    while changed:
        changed = False
        for n in rpo[1:]:
            new = set.intersection(*(dom[p] for p in preds[n])) | {n}
            if new != dom[n]:
                dom[n], changed = new, True
    return dom


def find(fn: Function, code: np.ndarray, consts: np.ndarray, cfg: dict[int, Block],
         checkpoints: set[int]) -> list[Loop]:
    """The innermost loops of ``fn`` that can run without checks once a guard holds."""
    dom = _dominators(fn.entry, cfg)
    preds: dict[int, set[int]] = {n: set() for n in dom}
    heads: dict[int, set[int]] = {}
    for n in dom:
        for s in cfg[n].succs:
            preds[s].add(n)
            if s in dom[n]:
                heads.setdefault(s, set()).add(n)
    out = []
    for h, latches in heads.items():
        body = {h}
        work = [u for u in latches if u != h]
        body.update(work)
        while work:
            for p in preds[work.pop()] - body:
                body.add(p)
                work.append(p)
        if h not in checkpoints:
            continue
        loop = _analyse(h, latches, body, code, consts, cfg, dom, preds, checkpoints, heads)
        if loop is not None:
            out.append(loop)
    return out


def _analyse(h, latches, body, code, consts, cfg, dom, preds, checkpoints,
             heads) -> Loop | None:
    if any(o in body for o in heads if o != h) or (checkpoints & body) - {h}:
        return None                  # not innermost, or a budget check inside
    for n in body:
        if any(NAMES[int(code[pc, 0])] not in _PLAIN for pc in cfg[n].pcs):
            return None
        if n != h and preds[n] - body:
            return None
    # one iteration as a DAG: from the header, the back edges left out
    order, seen = [], set()

    def visit(n: int) -> None:
        seen.add(n)
        for s in cfg[n].succs:
            if s in body and s != h and s not in seen:
                visit(s)
        order.append(n)
    visit(h)
    order.reverse()
    state_in: dict[int, list] = {h: [header(r) for r in range(11)]}
    state_out: dict[int, list] = {}
    longest: dict[int, int] = {}
    at_pc: dict[int, list] = {}
    for n in order:
        if n != h:
            preds = [p for p in order if p in state_out and n in cfg[p].succs]
            state_in[n] = [_merge([state_out[p][r] for p in preds]) for r in range(11)]
            longest[n] = len(cfg[n].pcs) + max(longest[p] for p in preds)
        else:
            longest[n] = len(cfg[n].pcs)
        regs = list(state_in[n])
        for pc in cfg[n].pcs:
            at_pc[pc] = list(regs)
            _step(regs, code, consts, pc)
        state_out[n] = regs
    back = [_merge([state_out[u][r] for u in latches]) for r in range(11)]
    invariant = {r for r in range(11) if back[r] == header(r)}
    steps = {}
    for r in range(11):
        if r in invariant or back[r] is None:
            continue
        d = combine(back[r], header(r), -1)
        if registers(d) <= invariant:
            steps[r] = d
    known = invariant | set(steps)

    def usable(x) -> bool:
        return x is not None and registers(x) <= known

    def moving(x) -> bool:
        return bool(registers(x) & set(steps))

    tests = []
    for n in body:
        blk = cfg[n]
        pc = blk.pcs[-1]
        name = NAMES[int(code[pc, 0])]
        if name not in JCONDS or not all(n in dom[u] for u in latches):
            continue
        taken, stays = int(code[pc, 3]), None
        inside = [s for s in blk.succs if s in body]
        if len(inside) != 1 or len(blk.succs) != 2:
            continue
        stays = inside[0] == taken
        width = 32 if name.endswith("32") else 64
        x = state_out[n][int(code[pc, 1]) - ip.R_BASE]
        y = _operand(state_out[n], consts, int(code[pc, 2]))
        if not (usable(x) and usable(y)):
            continue
        if width == 32:
            x, y = zext32(x), zext32(y)
        cond = name[:-2]
        if not stays:
            cond = _NOT.get(cond)
        if moving(y) and not moving(x):
            x, y, cond = y, x, _SWAP.get(cond)
        if cond in _GOES_ON and moving(x) and not moving(y):
            tests.append(Test(pc, x, y, _GOES_ON[cond], width))
    if not tests:
        return None
    # any one of them bounds the iterations; one with a constant bound is the likeliest
    # to be tight for the accesses (and the guard divides once)
    test = min(tests, key=lambda t: (bool(t.bound[0]), t.pc))
    groups: dict[tuple, Group] = {}
    group_of = {}
    for n in body:
        for pc in cfg[n].pcs:
            acc = access(code, pc)
            if acc is None:
                continue
            base, off, size, perm = acc
            addr = at_pc[pc][base]
            if not usable(addr):
                return None
            c = addr[1] + off
            c = (c & _M64) - (1 << 64) if (c & _M64) >> 63 else c & _M64
            key = addr[0]
            g = groups.get(key)
            if g is None:
                g = groups[key] = Group((key, 0), c, c + size, perm)
            g.lo, g.hi, g.perm = min(g.lo, c), max(g.hi, c + size), g.perm | perm
            g.pcs.append(pc)
    glist = list(groups.values())
    for k, g in enumerate(glist):
        for pc in g.pcs:
            group_of[pc] = k
    exits = sorted({s for n in body for s in cfg[n].succs if s not in body})
    return Loop(h, [h] + sorted(body - {h}), steps, invariant, test, glist,
                max(longest[u] for u in latches), exits, group_of)


_NOT = {"jlt": "jge", "jge": "jlt", "jle": "jgt", "jgt": "jle", "jeq": "jne", "jne": "jeq"}
_SWAP = {"jlt": "jgt", "jgt": "jlt", "jle": "jge", "jge": "jle", "jeq": "jeq", "jne": "jne"}
_GOES_ON = {"jlt": "<", "jle": "<=", "jne": "!="}


def _merge(values: list):
    first = values[0]
    return first if all(v == first for v in values[1:]) else None


def _operand(regs: list, consts: np.ndarray, slot: int):
    if slot >= ip.C_BASE:
        return const(int(consts[slot - ip.C_BASE]))
    return regs[slot - ip.R_BASE]


def _step(regs: list, code: np.ndarray, consts: np.ndarray, pc: int) -> None:
    """Follow the instruction at ``pc`` on the symbolic registers."""
    e, a, bslot, _c = code[pc].tolist()
    name = NAMES[e]
    if name in LOADS:
        regs[a - ip.R_BASE] = None
        return
    if name == "lddw":
        regs[a - ip.R_BASE] = _operand(regs, consts, bslot)
        return
    if name in STORES or name == "ja" or name in JCONDS:
        return
    dst = a - ip.R_BASE
    x, y = regs[dst], _operand(regs, consts, bslot)
    op, width = name[:-2], int(name[-2:]) if name[-2:] in ("32", "64") else 0
    if width == 32:
        x, y = (None if v is None else low32(v) for v in (x, y))
    out = None
    if width and (x is not None or op == "mov") and (y is not None or op == "neg"):
        if op == "mov":
            out = y
        elif op == "add":
            out = combine(x, y)
        elif op == "sub":
            out = combine(x, y, -1)
        elif op == "neg":
            out = scale(x, -1)
        elif op in ("mul", "lsh") and not y[0]:
            k = y[1] if op == "mul" else (1 << y[1]) if y[1] < width else None
            out = None if k is None else scale(x, k)
        elif op == "mul" and not x[0]:
            out = scale(y, x[1])
        if out is not None and width == 32:
            out = zext32(out)
    regs[dst] = out
