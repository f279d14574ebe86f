"""Accesses through a copy of r10 that stay inside the running function's frame, found by
an interval analysis of the registers (as the verifier tracks a stack pointer's offset).

The stack region always covers exactly ``[r10 - 512, r10)`` of the running function,
readable and writable, so an access ``r10 + k`` needs no check when ``[k, k + size)``
lies in ``[-512, 0)``.  Compiled code often reaches its stack arrays through another
register: ``r8 = r10; r8 += -400; r6 = r8; r6 += r2; r6 = *(u8 *)(r6 + 0)``, where
``r2`` is a loop counter that the loop's own test keeps below 400.  This analysis
follows each register through the function's control flow as an unsigned interval
(a number) or as r10 plus an interval of offsets (a frame pointer), narrows the
intervals on the branch a comparison with a constant takes, and widens them at loop
headers until nothing changes.  An access whose base is a frame pointer whose offsets,
plus the access's own, all fall inside the frame, is proven; it goes to the stack row
as an access through r10 does.
"""
from __future__ import annotations

import numpy as np

from ..isa import interp as ip
from .cfg import (CALLS, FRAME, JCONDS, LOADS, NAMES, PKT, STORES, Block, Function,
                  plain_accesses)

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
#: frame offsets beyond this are given up (no access through them can be proven)
_FAR = 1 << 40
#: visits of a loop header before its intervals are widened
_WIDEN_AFTER = 3
#: passes that bring widened bounds back down
_NARROW_PASSES = 2

# A value: ("n", lo, hi), an unsigned number in [lo, hi]; ("f", lo, hi), r10 plus an
# offset in [lo, hi] (signed); None, nothing known.
TOP = ("n", 0, _M64)


def _num(lo: int, hi: int, top: int = _M64) -> tuple:
    return ("n", lo, hi) if 0 <= lo <= hi <= top else ("n", 0, top)


def _frame(lo: int, hi: int):
    return ("f", lo, hi) if -_FAR < lo <= hi < _FAR else TOP


def _join(x, y):
    if x == y:
        return x
    if x[0] != y[0]:
        return TOP
    return (x[0], min(x[1], y[1]), max(x[2], y[2]))


def _widen(old, new):
    """``new`` (which contains ``old``) with each bound that moved pushed to its end."""
    if new == old:
        return new
    if old[0] != new[0] or new[0] == "f":
        return TOP
    lo = new[1] if new[1] >= old[1] else 0
    hi = new[2] if new[2] <= old[2] else _M64
    return ("n", lo, hi)


class _Analysis:
    def __init__(self, fn: Function, code: np.ndarray, consts: np.ndarray,
                 cfg: dict[int, Block]) -> None:
        self.fn, self.cfg = fn, cfg
        #: the lowered code and constants as Python ints, read once: the fixpoint reads
        #: them again on every visit, and a numpy element read costs as much as a step
        self.rows, self.kvalues = code.tolist(), consts.tolist()

    def operand(self, regs: list, slot: int):
        if slot >= ip.C_BASE:
            v = self.kvalues[slot - ip.C_BASE] & _M64
            return ("n", v, v)
        return regs[slot - ip.R_BASE]

    def run(self) -> dict[int, list]:
        """Each block's registers on entry, at the fixpoint."""
        entry = [TOP] * 10 + [("f", 0, 0)]
        state_in: dict[int, list] = {self.fn.entry: entry}
        visits: dict[int, int] = {}
        heads = {t for start, blk in self.cfg.items() for t in blk.succs if t <= start}
        work = [self.fn.entry]
        while work:
            start = work.pop()
            regs = list(state_in[start])
            blk = self.cfg[start]
            for pc in blk.pcs[:-1]:
                self.step(regs, pc)
            for succ, out in self.leave(regs, blk):
                old = state_in.get(succ)
                new = out if old is None else [_join(a, b) for a, b in zip(old, out)]
                if succ in heads and old is not None:
                    visits[succ] = visits.get(succ, 0) + 1
                    if visits[succ] > _WIDEN_AFTER:
                        new = [_widen(a, b) for a, b in zip(old, new)]
                if new != old:
                    state_in[succ] = new
                    work.append(succ)
        # narrowing: from that fixpoint, each block's entry is again only what its edges
        # bring (a widened bound comes back down to what a loop's test allows)
        for _pass in range(_NARROW_PASSES):
            arriving: dict[int, list] = {self.fn.entry: entry}
            for start, regs_in in state_in.items():
                regs = list(regs_in)
                blk = self.cfg[start]
                for pc in blk.pcs[:-1]:
                    self.step(regs, pc)
                for succ, out in self.leave(regs, blk):
                    old = arriving.get(succ)
                    arriving[succ] = out if old is None else [
                        _join(a, b) for a, b in zip(old, out)]
            state_in = arriving
        return state_in

    def leave(self, regs: list, blk: Block):
        """(successor, registers on that edge) for the block's last instruction."""
        last = blk.pcs[-1]
        row = self.rows[last]
        if NAMES[row[0]] not in JCONDS:
            self.step(regs, last)
            return [(s, list(regs)) for s in blk.succs]
        target = row[3]
        if len(blk.succs) == 1:
            return [(blk.succs[0], list(regs))]
        return [(s, self.narrow(list(regs), last, s == target)) for s in blk.succs]

    def narrow(self, regs: list, pc: int, taken: bool) -> list:
        """The registers on the edge where the comparison at ``pc`` was ``taken`` (or not)."""
        e, a, bslot, _c = self.rows[pc]
        name = NAMES[e]
        op, width = name[:-2], int(name[-2:])
        r = a - ip.R_BASE
        x, y = regs[r], self.operand(regs, bslot)
        top = _M64 if width == 64 else _M32
        if x[0] != "n" or y[0] != "n" or y[1] != y[2] or x[2] > top or y[2] > top:
            return regs
        c = y[1]
        if not taken:
            op = {"jlt": "jge", "jge": "jlt", "jle": "jgt", "jgt": "jle", "jeq": "jne",
                  "jne": "jeq"}.get(op, "")
        lo, hi = x[1], x[2]
        if op == "jlt":
            hi = min(hi, c - 1)
        elif op == "jle":
            hi = min(hi, c)
        elif op == "jgt":
            lo = max(lo, c + 1)
        elif op == "jge":
            lo = max(lo, c)
        elif op == "jeq":
            lo, hi = max(lo, c), min(hi, c)
        if lo > hi:                 # this edge is never taken: nothing to add
            lo, hi = x[1], x[2]
        regs[r] = ("n", lo, hi)
        return regs

    def step(self, regs: list, pc: int) -> None:
        e, a, bslot, _c = self.rows[pc]
        name = NAMES[e]
        dst = a - ip.R_BASE
        if name in CALLS or name in PKT:
            for r in range(6):
                regs[r] = TOP
            return
        if name in STORES or name == "ja" or name in JCONDS or name == "exit":
            return
        if name in LOADS:
            size, signed = LOADS[name]
            regs[dst] = TOP if signed or size == 8 else ("n", 0, (1 << (8 * size)) - 1)
            return
        if name.startswith("atomic_"):
            if "fetch" in name or "xchg" in name:
                regs[0 if "cmpxchg" in name else bslot - ip.R_BASE] = TOP
            return
        if name == "lddw":
            regs[dst] = self.operand(regs, bslot)
            return
        if not 0 <= dst <= 10:
            return
        regs[dst] = self.alu(name, regs[dst], self.operand(regs, bslot))

    def alu(self, name: str, x, y):
        if name[:2] in ("le", "be"):
            bits = int(name[2:])
            return TOP if bits == 64 else ("n", 0, (1 << bits) - 1)
        width = 32 if name.endswith("32") else 64
        top = _M32 if width == 32 else _M64
        if name.startswith("movsx"):
            return ("n", 0, top)
        op = name[:-2]
        if width == 32:        # a frame pointer's low half is just a number
            x, y = (v if v[0] == "n" and v[2] <= _M32 else ("n", 0, _M32) for v in (x, y))
        if op == "mov":
            return y
        if op in ("add", "sub"):
            sign = 1 if op == "add" else -1
            if x[0] == "n" and y[0] == "n":
                lo, hi = (x[1] + y[1], x[2] + y[2]) if sign > 0 else (x[1] - y[2], x[2] - y[1])
                return _num(lo, hi, top)
            if x[0] == "f" and y[0] == "n":
                # a constant is an offset either way; a range only when it is small
                if y[1] == y[2]:
                    k = y[1] - (1 << 64) if y[1] >> 63 else y[1]
                    return _frame(x[1] + sign * k, x[2] + sign * k)
                if y[2] < _FAR:
                    return _frame(x[1] - y[2], x[2] - y[1]) if sign < 0 else _frame(
                        x[1] + y[1], x[2] + y[2])
            if x[0] == "n" and y[0] == "f" and sign > 0 and x[2] < _FAR:
                return _frame(y[1] + x[1], y[2] + x[2])
            return TOP
        if x[0] != "n" or y[0] != "n":
            return ("n", 0, top)
        k = y[1] if y[1] == y[2] else None
        if op == "and":
            return ("n", 0, min(x[2], y[2]))
        if op in ("or", "xor"):
            return _num(0, (1 << max(x[2], y[2]).bit_length()) - 1, top)
        if k is not None and op == "rsh" and k < width:
            return ("n", x[1] >> k, x[2] >> k)
        if k is not None and op == "lsh" and k < width:
            return _num(x[1] << k, x[2] << k, top)
        if k is not None and op == "mul":
            return _num(x[1] * k, x[2] * k, top)
        if op in ("div", "mod"):
            return ("n", 0, x[2])
        return ("n", 0, top)


def proven(fn: Function, code: np.ndarray, consts: np.ndarray,
           cfg: dict[int, Block]) -> set[int]:
    """The accesses of ``fn`` through a register other than r10 that stay in its frame."""
    an = _Analysis(fn, code, consts, cfg)
    state_in = an.run()
    accesses = plain_accesses(code, cfg)
    out = set()
    for start, regs_in in state_in.items():
        regs = list(regs_in)
        for pc in cfg[start].pcs:
            acc = accesses.get(pc)
            if acc is not None and acc[0] != 10 and regs[acc[0]][0] == "f":
                base, off, size, _perm = acc
                _f, lo, hi = regs[base]
                if lo + off >= -FRAME and hi + off + size <= 0:
                    out.add(pc)
            if pc != cfg[start].pcs[-1] or NAMES[an.rows[pc][0]] not in JCONDS:
                an.step(regs, pc)
    return out
