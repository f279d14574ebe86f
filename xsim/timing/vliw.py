"""hXDP's compiler, as far as its cost goes: a program's basic blocks scheduled onto
the rows of a VLIW core (Brunella et al., OSDI 2020, Sections 3 and 4).

Each basic block (from :mod:`xsim.jit.cfg`) first gets the bytecode transformations
hXDP's compiler applies, then its instructions go in program order to the earliest
row their dependencies and the row's resources allow:

* removed: packet bounds checks (a register-register jump against a value loaded from
  the context: the hardware checks bounds itself) and stack zeroing (a store of zero
  relative to r10: the hardware clears the stack per packet);
* fused: ``rD = rS`` followed by ``rD op= x`` becomes one 3-operand instruction, and
  ``r0 = K`` before ``exit`` becomes a parametrized exit;
* a row holds at most ``lanes`` instructions, ``mem_ports`` memory accesses and
  ``helpers_per_row`` helper calls; a value is read in a row after the row that
  writes it (RAW), a register is written after it is read (WAR, same row allowed)
  and after its previous write (WAW); stores stay ordered with every other access
  and helper call; the block's jump or exit goes in its last row.

One row runs per cycle, so a block costs its row count each time it runs.  This is
a model of the paper's scheduler, not its code: the paper also moves instructions
across blocks, which this does not do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field, Kind
from ..jit import cfg
from ..runtime.program import Program

_ARGS = frozenset(range(1, 6))
_CLOBBER = frozenset(range(0, 6))


@dataclass(frozen=True)
class Slot:
    """One instruction as the scheduler sees it."""

    pc: int
    reads: frozenset[int]
    writes: frozenset[int]
    loads: bool
    stores: bool
    helper: bool
    ends: bool


def _uses(insn: Insn) -> tuple[set[int], set[int]]:
    """Registers read and written by one instruction."""
    op, kind = insn.op, insn.op.kind
    src = {insn.src} if op.src is Field.READ else set()
    if kind is Kind.ALU:
        reads = src | (set() if op.operation in ("mov", "movsx") else {insn.dst})
        return reads, {insn.dst}
    if kind is Kind.END:
        return {insn.dst}, {insn.dst}
    if kind is Kind.JCOND:
        return {insn.dst} | src, set()
    if kind is Kind.CALL or kind is Kind.CALLX:
        return set(_ARGS) | ({insn.dst} if kind is Kind.CALLX else set()), set(_CLOBBER)
    if kind is Kind.EXIT:
        return {0}, set()
    if kind is Kind.LDDW:
        return set(), {insn.dst}
    if kind is Kind.LDPKT:
        return {6} | src, set(_CLOBBER)
    if kind is Kind.LDX:
        return src, {insn.dst}
    if kind is Kind.ST:
        return {insn.dst}, set()
    if kind is Kind.STX:
        return {insn.dst} | src, set()
    if kind is Kind.ATOMIC:
        fetch = insn.imm & oc.ATOMIC_FETCH
        written = {0} if insn.imm == oc.ATOMIC_CMPXCHG else ({insn.src} if fetch else set())
        return {insn.dst} | src | ({0} if insn.imm == oc.ATOMIC_CMPXCHG else set()), written
    return set(), set()


def _slot(insn: Insn, reads: set[int] | None = None) -> Slot:
    r, w = _uses(insn)
    kind = insn.op.kind
    helper = kind is Kind.CALL and insn.src != oc.CALL_LOCAL
    return Slot(insn.pc, frozenset(r if reads is None else reads), frozenset(w),
                loads=kind in (Kind.LDX, Kind.ATOMIC, Kind.LDPKT) or helper,
                stores=kind in (Kind.ST, Kind.STX, Kind.ATOMIC) or helper,
                helper=helper,
                ends=kind in (Kind.JA, Kind.JCOND, Kind.EXIT) or kind is Kind.CALL
                and insn.src == oc.CALL_LOCAL)


class CtxTrack:
    """Which registers hold the context pointer, and which hold a value loaded from it,
    carried along a function in pc order (a heuristic: no join over the CFG)."""

    def __init__(self, entry: bool) -> None:
        self.pointers: set[int] = {1} if entry else set()
        self.loaded: set[int] = set()

    def bounds_check(self, insn: Insn) -> bool:
        """Whether ``insn`` is a packet bounds check (then removed); steps the tracking."""
        op = insn.op
        check = op.kind is Kind.JCOND and op.src is Field.READ and \
            (insn.dst in self.loaded) != (insn.src in self.loaded)
        self.step(insn, _uses(insn)[1])
        return check

    def step(self, insn: Insn, writes: set[int]) -> None:
        kind, op = insn.op.kind, insn.op
        copy = kind is Kind.ALU and op.operation == "mov" and op.src is Field.READ \
            and insn.src in self.pointers
        load = kind is Kind.LDX and insn.src in self.pointers
        self.pointers -= writes
        self.loaded -= writes
        if copy:
            self.pointers.add(insn.dst)
        if load:
            self.loaded.add(insn.dst)


def transform(block: list[Insn]) -> tuple[list[Slot], int]:
    """hXDP's in-block transformations (stack zeroing out, 3-operand ALU, parametrized
    exit) on one block: its slots and how many instructions went away."""
    slots: list[Slot | None] = []
    zero: set[int] = set()
    pending: dict[int, int] = {}            # rD -> index of a 64-bit ``rD = rS`` or ``rD = K``
    for insn in block:
        op, kind = insn.op, insn.op.kind
        r, w = _uses(insn)
        zeroing = (kind is Kind.ST and insn.dst == 10 and insn.imm == 0) or \
            (kind is Kind.STX and insn.dst == 10 and insn.src in zero)
        if zeroing:
            slots.append(None)
            continue
        reads = None
        if kind is Kind.EXIT and 0 in pending and not slots[pending[0]].reads:
            slots[pending.pop(0)] = None    # r0 = K; exit -> parametrized exit
        elif kind is Kind.ALU and op.operation not in ("mov", "movsx") and op.width == 64 \
                and insn.dst in pending:
            i = pending.pop(insn.dst)       # rD = rS; rD op= x -> rD = rS op x
            reads = set(slots[i].reads) | (r - {insn.dst})
            slots[i] = None
        for d in list(pending):
            if d in r or d in w or slots[pending[d]].reads & w:
                del pending[d]
        slots.append(_slot(insn, reads))
        is_mov = kind is Kind.ALU and op.operation == "mov"
        if is_mov and (op.width == 64 or (insn.dst == 0 and op.src is not Field.READ)):
            pending[insn.dst] = len(slots) - 1
        if is_mov and op.src is not Field.READ and insn.imm == 0:
            zero.add(insn.dst)
        else:
            zero -= w
    kept = [s for s in slots if s is not None]
    return kept, len(slots) - len(kept)


_PURE = (Kind.ALU, Kind.END, Kind.LDDW, Kind.LDX)


def live_out(fn_blocks: dict[int, "cfg.Block"], by_pc: dict[int, Insn]) -> dict[int, set[int]]:
    """Registers live at the end of each block (backward data flow over the function)."""
    use: dict[int, set[int]] = {}
    defs: dict[int, set[int]] = {}
    for start, block in fn_blocks.items():
        u: set[int] = set()
        d: set[int] = set()
        for pc in block.pcs:
            r, w = _uses(by_pc[pc])
            u |= r - d
            d |= w
        use[start], defs[start] = u, d
    live_in = {start: set(u) for start, u in use.items()}
    out = {start: set() for start in fn_blocks}
    changed = True
    while changed:
        changed = False
        for start in reversed(list(fn_blocks)):
            new_out = set().union(*(live_in.get(s, set()) for s in fn_blocks[start].succs))
            new_in = use[start] | (new_out - defs[start])
            if new_out != out[start] or new_in != live_in[start]:
                out[start], live_in[start] = new_out, new_in
                changed = True
    return out


def dead_code(block: list[Insn], live: set[int]) -> tuple[list[Insn], int]:
    """Drop side-effect-free instructions whose results nothing reads (after the bounds
    checks they fed are gone)."""
    live = set(live)
    kept: list[Insn] = []
    for insn in reversed(block):
        r, w = _uses(insn)
        if insn.op.kind in _PURE and w and not (w & live):
            continue
        live = (live - w) | r
        kept.append(insn)
    kept.reverse()
    return kept, len(block) - len(kept)


def schedule(slots: list[Slot], lanes: int, mem_ports: int, helpers_per_row: int) -> int:
    """Rows the block's slots need on a VLIW core with those resources."""
    rows: list[list[int]] = []              # per row: [ops, memory ops, helper calls]
    last_write: dict[int, int] = {}
    last_read: dict[int, int] = {}
    last_store = last_access = -1
    end_floor = 0
    for s in slots:
        floor = 0
        for r in s.reads:
            floor = max(floor, last_write.get(r, -1) + 1)
        for w in s.writes:
            floor = max(floor, last_write.get(w, -1) + 1, last_read.get(w, 0))
        if s.loads or s.stores:
            floor = max(floor, last_store + 1)
        if s.stores:
            floor = max(floor, last_access + (0 if not s.loads else 1))
        if s.ends:
            floor = max(floor, end_floor)
        mem = int(s.loads or s.stores)
        row = floor
        while True:
            if row == len(rows):
                rows.append([0, 0, 0])
            ops, mems, helpers = rows[row]
            if ops < lanes and mems + mem <= mem_ports and helpers + s.helper <= \
                    helpers_per_row:
                break
            row += 1
        rows[row][0] += 1
        rows[row][1] += mem
        rows[row][2] += int(s.helper)
        end_floor = max(end_floor, row)
        for r in s.reads:
            last_read[r] = max(last_read.get(r, 0), row)
        for w in s.writes:
            last_write[w] = row
        if s.loads or s.stores:
            last_access = max(last_access, row)
        if s.stores:
            last_store = row
    return len(rows)


@dataclass(frozen=True)
class Schedule:
    """A program's blocks on a VLIW core: rows and original instructions per block."""

    program: str
    #: block start pc -> (rows, eBPF instructions in it, instructions removed)
    blocks: dict[int, tuple[int, int, int]]

    @property
    def rows(self) -> int:
        return sum(r for r, _, _ in self.blocks.values())

    @property
    def insns(self) -> int:
        return sum(n for _, n, _ in self.blocks.values())

    @property
    def static_ipc(self) -> float:
        """The program's eBPF instructions per VLIW row, over all its blocks."""
        return self.insns / self.rows if self.rows else 0.0

    def cycles(self, counts: np.ndarray) -> int:
        """Rows executed on a path with these per-pc execution counts."""
        return sum(int(counts[start]) * rows for start, (rows, _, _) in self.blocks.items())


def schedule_program(prog: Program, lanes: int, mem_ports: int, helpers_per_row: int,
                     optimize: bool = True) -> Schedule:
    """Schedule every basic block of ``prog`` (hXDP's transformations when ``optimize``)."""
    by_pc = {i.pc: i for i in prog.insns}
    out: dict[int, tuple[int, int, int]] = {}
    for fn in cfg.functions(prog._code):
        ctx = CtxTrack(entry=fn.entry == 0)
        blocks = cfg.blocks(fn, prog._code)
        kept = {}
        if optimize:       # bounds checks out first, then what only they used
            for start, block in blocks.items():
                kept[start] = [i for i in (by_pc[pc] for pc in block.pcs)
                               if not ctx.bounds_check(i)]
            trimmed = {s: cfg.Block(s, [i.pc for i in k], blocks[s].succs)
                       for s, k in kept.items()}
            live = live_out(trimmed, by_pc)
        for start, block in blocks.items():
            insns = [by_pc[pc] for pc in block.pcs]
            if optimize:
                body, dead = dead_code(kept[start], live[start])
                slots, removed = transform(body)
                removed += dead + len(insns) - len(kept[start])
            else:
                slots, removed = [_slot(i) for i in insns], 0
            out[start] = (schedule(slots, lanes, mem_ports, helpers_per_row), len(insns),
                          removed)
    return Schedule(prog.name, out)
