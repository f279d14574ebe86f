"""Which eBPF registers are live where: what a handoff to the interpreter must pass on.

A handoff (lift.py) writes the registers to ``st`` for the interpreter to go on from an
instruction.  A register that no path from there reads before writing it cannot change
what the interpreter does or reports (a RunResult shows r0 alone, which the handoff
always passes on since a stop reports it wherever it comes, and each run starts with
r1-r9 set afresh), so it is left out.  That keeps a value the rest of the function
never reads from being kept alive through a loop for the handoff's sake alone: in
stack_sieve, the inner loop's index (r9) past the checkpoint after that loop.

The analysis errs one way only: it may call a register read that is not (every call
reads them all) and never calls one written that may keep its value.
"""
from __future__ import annotations

import bisect

import numpy as np

from ..isa import interp as ip
from .cfg import JCONDS, LOADS, NAMES, STORES, Block, Function
from .semantics import ALU, END

ALL = frozenset(range(11))


def _reg(slot: int) -> set[int]:
    """The register an operand slot names, if it names one (not a constant)."""
    return {slot - ip.R_BASE} if ip.R_BASE <= slot < ip.R_BASE + 11 else set()


def effect(code: np.ndarray, pc: int, top: bool) -> tuple[set[int], set[int]]:
    """(registers the instruction at ``pc`` may read, registers it surely writes); ``top``:
    its function's exit returns to the run loop, which reads r0 alone."""
    e, a, bslot, _c = code[pc].tolist()
    name = NAMES[e]
    dst = a - ip.R_BASE
    if name in ALU:
        moves = name.startswith("mov")     # mov and movsx read only their source
        return _reg(bslot) | (set() if moves else {dst}), {dst}
    if name in END:
        return {dst}, {dst}
    if name == "lddw":
        return set(), {dst}
    if name in LOADS:
        return _reg(bslot), {dst}
    if name in STORES:
        return {dst} | _reg(bslot), set()
    if name.startswith("atomic_"):
        op = name[len("atomic_"):-2]
        if op == "cmpxchg":
            return {dst, 0} | _reg(bslot), {0}
        fetched = op.startswith("fetch_") or op == "xchg"
        return {dst} | _reg(bslot), _reg(bslot) if fetched else set()
    if name in JCONDS:
        return {dst} | _reg(bslot), set()
    if name == "ja":
        return set(), set()
    if name == "exit":     # a caller sees r1-r5 as its callee left them
        return ({0} if top else set(range(6))), set()
    return set(ALL), set()      # calls, packet loads, what the loader left unresolved


class Liveness:
    """The registers live on entry to each instruction of one function."""

    def __init__(self, fn: Function, blocks: dict[int, Block], code: np.ndarray,
                 top: bool) -> None:
        self.blocks, self.starts = blocks, sorted(blocks)
        self.effects = {pc: effect(code, pc, top) for blk in blocks.values() for pc in blk.pcs}
        # each block's reads before any write of its own, and its writes
        summary = {}
        for start, blk in blocks.items():
            reads: set[int] = set()
            writes: set[int] = set()
            for pc in blk.pcs:
                r, w = self.effects[pc]
                reads |= r - writes
                writes |= w
            summary[start] = (frozenset(reads), frozenset(writes))
        self.live_in: dict[int, frozenset[int]] = {s: frozenset() for s in blocks}
        changed = True
        while changed:          # backward data flow to a fixed point
            changed = False
            for start in reversed(fn.leaders):
                reads, writes = summary[start]
                out = frozenset().union(*(self.live_in[t] for t in blocks[start].succs))
                new = reads | (out - writes)
                if new != self.live_in[start]:
                    self.live_in[start] = new
                    changed = True

    def at(self, pc: int) -> frozenset[int]:
        """The registers live on entry to the instruction at ``pc``."""
        start = self.starts[bisect.bisect_right(self.starts, pc) - 1]
        pcs = self.blocks[start].pcs
        live = set().union(*(self.live_in[t] for t in self.blocks[start].succs))
        for p in reversed(pcs[pcs.index(pc):]):
            reads, writes = self.effects[p]
            live = (live - writes) | reads
        return frozenset(live)
