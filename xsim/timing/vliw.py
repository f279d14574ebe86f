"""hXDP's compiler, as far as its cost goes: a program's basic blocks scheduled onto
the rows of a VLIW core (Brunella et al., OSDI 2020, Sections 3 and 4).

Each basic block (from :mod:`xsim.jit.cfg`) first gets the bytecode transformations
hXDP's compiler applies, then its instructions go in program order to the earliest
row their dependencies and the row's resources allow:

* removed: packet bounds checks (a register-register jump against a value loaded from
  the context: the hardware checks bounds itself) and stack zeroing (a store of zero
  relative to r10: the hardware clears the stack per packet);
* fused: ``rD = rS`` followed by ``rD op= x`` becomes one 3-operand instruction,
  ``r0 = K`` before ``exit`` becomes a parametrized exit, and 6 contiguous bytes
  copied in pieces of 1, 2 or 4 bytes (a MAC address) become one 6-byte load and one
  6-byte store (Sec. 3.2);
* a row holds at most ``lanes`` instructions, ``mem_ports`` memory accesses and
  ``helpers_per_row`` helper calls; a value is read in a row after the row that
  writes it (RAW), a register is written after it is read (WAR, same row allowed);
  two writes of one register need no order (the compiler renames one of them, Sec.
  3.4) unless the first is a helper's r0, which stays where the helper module puts
  it; a helper writes only r0 (r1-r5 are dead after a call, so their clobber is not
  a write to order); the Bernstein conditions are over memory locations too (Sec.
  3.3), so a store is ordered only with the accesses that may touch its bytes
  (:func:`regions` tells stack slots, context, packet and map values apart), and a
  helper call with every access; the block's jump or exit goes in its last row.

One row runs per cycle, so a block costs its row count each time it runs.  This is
a model of the paper's scheduler, not its code.  Like the compiler of hXDP's
artifacts (``parallelizer/optimizer_core.py`` in axbryd/hXDP-Artifacts, whose
firewall ROM bears it out), it schedules each block on its own: that compiler's
code motion across blocks is switched off there ("minor performance improvement,
disabled for now"), and its folding of a following block's lone branch into the
current row is never called.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    #: registers written that must stay those registers (a helper's or ld_abs's r0):
    #: a later write of one of them waits for this one, the others get renamed
    fixed: frozenset[int] = frozenset()
    #: where a memory access goes: (region, base value, first byte, end) with region
    #: "stack", "ctx", "pkt" or "map"; None when unknown (it may alias anything)
    loc: tuple | None = None


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


def slot_of(insn: Insn, reads: set[int] | None = None) -> Slot:
    """The scheduler's view of one instruction: the registers it reads (``reads`` in
    place of its own, after renaming) and writes, and the resources it needs."""
    r, w = _uses(insn)
    kind = insn.op.kind
    helper = kind is Kind.CALL and insn.src != oc.CALL_LOCAL
    if helper:
        w = {0}             # the helper module returns r0; r1-r5 are dead, not written
    return Slot(insn.pc, frozenset(r if reads is None else reads), frozenset(w),
                loads=kind in (Kind.LDX, Kind.ATOMIC, Kind.LDPKT) or helper,
                stores=kind in (Kind.ST, Kind.STX, Kind.ATOMIC) or helper,
                helper=helper,
                ends=kind in (Kind.JA, Kind.JCOND, Kind.EXIT) or kind is Kind.CALL
                and insn.src == oc.CALL_LOCAL,
                fixed=frozenset({0}) if helper or kind is Kind.LDPKT else frozenset())


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


_MAP_LOOKUP = 1         # bpf_map_lookup_elem: r0 points into a map value or is NULL


def regions(fn_blocks: dict[int, "cfg.Block"], by_pc: dict[int, Insn],
            entry: bool) -> dict[int, tuple]:
    """Where each load and store of a function goes, as far as the pointers' origins
    tell: the stack (r10 plus a known offset), the context (r1 at entry), the packet
    (a pointer loaded from the context), a map value (bpf_map_lookup_elem's r0, or an
    ``lddw`` address: global data); pointer arithmetic keeps the region.  A forward
    data flow over the blocks, joined where the predecessors agree; an access through
    a register of unknown origin is left out (it may alias anything).  Two accesses in
    different regions, or through one value of one base register at disjoint offsets,
    or at disjoint known stack offsets, touch different memory locations: the
    Bernstein conditions (hXDP OSDI'20 Sec. 3.3) let them share a row."""
    preds: dict[int, list[int]] = {b: [] for b in fn_blocks}
    for b, blk in fn_blocks.items():
        for t in blk.succs:
            if t in preds:
                preds[t].append(b)
    start = next(iter(fn_blocks))
    init = {10: ("stack", 0)}
    if entry:
        init[1] = ("ctx",)
    out_state: dict[int, dict | None] = {b: None for b in fn_blocks}
    locs: dict[int, tuple] = {}
    changed = True
    while changed:
        changed = False
        for b, blk in fn_blocks.items():
            ins = [out_state[q] for q in preds[b] if out_state[q] is not None]
            if b == start:
                ins.append(init)
            if not ins:
                continue
            state = {r: t for r, t in ins[0].items() if all(i.get(r) == t for i in ins[1:])}
            defs: dict[int, object] = {}
            for pc in blk.pcs:
                insn = by_pc[pc]
                base = insn.mem_base
                if base is not None and base in state:
                    tag, size = state[base], insn.op.size
                    if tag[0] == "stack":
                        lo = None if tag[1] is None else tag[1] + insn.off
                        locs[pc] = ("stack", None, lo, None if lo is None else lo + size)
                    else:
                        locs[pc] = (tag[0], (base, defs.get(base, ("in", b))), insn.off,
                                    insn.off + size)
                state = _step_region(state, insn)
                for w in _uses(insn)[1]:
                    defs[w] = pc
            if state != out_state[b]:
                out_state[b] = state
                changed = True
    return locs


def _step_region(state: dict, insn: Insn) -> dict:
    op, kind = insn.op, insn.op.kind
    new = None
    if kind is Kind.ALU and op.width == 64:
        if op.operation == "mov" and op.src is Field.READ:
            new = state.get(insn.src)
        elif op.operation in ("add", "sub") and insn.dst in state:
            tag = state[insn.dst]
            if tag[0] != "stack":
                new = tag
            elif op.src is not Field.READ and tag[1] is not None:
                new = ("stack", tag[1] + (insn.imm if op.operation == "add" else -insn.imm))
            else:
                new = ("stack", None)
    elif kind is Kind.LDX and state.get(insn.src) == ("ctx",):
        new = ("pkt",)          # data, data_end, data_meta (the scalars are never bases)
    elif kind is Kind.LDDW:
        new = ("map",)
    elif kind is Kind.CALL and insn.src != oc.CALL_LOCAL and insn.imm == _MAP_LOOKUP:
        new = ("map",)
    state = {r: t for r, t in state.items() if r not in _uses(insn)[1]}
    if new is not None:
        state[insn.dst if kind is not Kind.CALL else 0] = new
    return state


def _alias(a: tuple | None, b: tuple | None) -> bool:
    """Whether two accesses may touch one memory location."""
    if a is None or b is None:
        return True
    if a[0] != b[0]:
        return False
    if a[0] != "stack" and a[1] != b[1]:
        return True                         # two pointers into one region: unknown
    if a[2] is None or b[2] is None:
        return True
    return a[2] < b[3] and b[2] < a[3]


def _copy48(block: list[Insn], i: int, after: list[set[int]],
            locs: dict[int, tuple]) -> tuple[Slot, Slot, int] | None:
    """The 6-byte copy starting at ``block[i]``, if one does: plain loads of 1, 2 or 4
    bytes from one base register and stores, each of a register's loaded value at its
    size, to one destination base, nothing else in between (pairwise or all loads
    first); the loads tile 6 bytes and the stores put each piece at the same place of
    6 destination bytes; the loaded registers are dead after it.  Returns the 6-byte
    load's and store's slots and how many instructions they replace."""
    first = block[i]
    base, dest = first.src, None
    loaded: dict[int, tuple[int, int]] = {}     # register -> (source offset, size)
    loads: list[tuple[int, int]] = []
    pairs: list[tuple[int, int, int]] = []      # (destination offset, source offset, size)
    for j in range(i, min(len(block), i + 12)):
        insn, op = block[j], block[j].op
        if op.kind is Kind.LDX and op.operation == "ldx" and op.size <= 4 \
                and insn.src == base and insn.dst not in (base, dest):
            loaded[insn.dst] = (insn.off, op.size)
            loads.append((insn.off, op.size))
        elif op.kind is Kind.STX and insn.src in loaded and op.size == loaded[insn.src][1] \
                and insn.dst not in loaded and (dest is None or insn.dst == dest):
            dest = insn.dst
            pairs.append((insn.off, *loaded[insn.src]))
            if sum(n for _, _, n in pairs) >= 6:
                break
        else:
            return None
    else:
        return None
    src_lo = min(o for o, _ in loads)
    dst_lo = min(d for d, _, _ in pairs)
    tiles = sorted(loads)
    if sorted((o, n) for _, o, n in pairs) != tiles or \
            any(o + n != nxt for (o, n), (nxt, _) in zip(tiles, tiles[1:])) or \
            tiles[-1][0] + tiles[-1][1] - src_lo != 6 or \
            any(d - dst_lo != o - src_lo for d, o, _ in pairs):
        return None
    if dest == base and abs(dst_lo - src_lo) < 6:
        return None                         # an overlapping copy within one region
    if set(loaded) & after[j]:
        return None
    temp = first.dst

    def six(pc: int, lo: int) -> tuple | None:     # the 6 bytes at lo, in pc's region
        loc = locs.get(pc)
        if loc is None or loc[2] is None:
            return loc
        shift = lo - (block_off[pc])
        return (loc[0], loc[1], loc[2] + shift, loc[2] + shift + 6)

    block_off = {insn.pc: insn.off for insn in block[i:j + 1]}
    return (Slot(first.pc, frozenset({base}), frozenset({temp}), loads=True, stores=False,
                 helper=False, ends=False, loc=six(first.pc, src_lo)),
            Slot(block[j].pc, frozenset({dest, temp}), frozenset(), loads=False, stores=True,
                 helper=False, ends=False, loc=six(block[j].pc, dst_lo)),
            j + 1 - i)


def _fuse48(block: list[Insn], live: set[int],
            locs: dict[int, tuple]) -> list[Insn | Slot]:
    """hXDP's 6-byte load/store (Sec. 3.2) on one block: each 6-byte copy made of
    smaller loads and stores becomes two slots; everything else stays."""
    after: list[set[int]] = [set()] * len(block)
    cur = set(live)
    for j in range(len(block) - 1, -1, -1):
        after[j] = set(cur)
        r, w = _uses(block[j])
        cur = (cur - w) | r
    out: list[Insn | Slot] = []
    i = 0
    while i < len(block):
        found = _copy48(block, i, after, locs) if block[i].op.kind is Kind.LDX else None
        if found:
            out.extend(found[:2])
            i += found[2]
        else:
            out.append(block[i])
            i += 1
    return out


def transform(block: list[Insn], live: set[int] | None = None,
              locs: dict[int, tuple] | None = None) -> tuple[list[Slot], int]:
    """hXDP's in-block transformations (stack zeroing out, 6-byte load/store, 3-operand
    ALU, parametrized exit) on one block: its slots and how many instructions went
    away.  ``live`` is what the block's successors read (every register when None);
    ``locs`` where its loads and stores go (from :func:`regions`; unknown when None)."""
    locs = locs or {}
    entries = _fuse48(block, set(range(11)) if live is None else live, locs)
    slots: list[Slot | None] = []
    zero: set[int] = set()
    pending: dict[int, int] = {}            # rD -> index of a 64-bit ``rD = rS`` or ``rD = K``
    for insn in entries:
        if isinstance(insn, Slot):          # a fused 6-byte load or store
            for d in list(pending):
                if d in insn.reads or d in insn.writes or \
                        slots[pending[d]].reads & insn.writes:
                    del pending[d]
            zero -= insn.writes
            slots.append(insn)
            continue
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
        slot = slot_of(insn, reads)
        slots.append(replace(slot, loc=locs[insn.pc]) if insn.pc in locs else slot)
        is_mov = kind is Kind.ALU and op.operation == "mov"
        if is_mov and (op.width == 64 or (insn.dst == 0 and op.src is not Field.READ)):
            pending[insn.dst] = len(slots) - 1
        if is_mov and op.src is not Field.READ and insn.imm == 0:
            zero.add(insn.dst)
        else:
            zero -= w
    kept = [s for s in slots if s is not None]
    return kept, len(block) - len(kept)


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
    last_fixed: dict[int, int] = {}         # register -> row of its last fixed write
    last_read: dict[int, int] = {}
    accesses: list[tuple[int, Slot]] = []  # (row, slot) of the memory accesses so far
    end_floor = 0
    for s in slots:
        floor = 0
        for r in s.reads:
            floor = max(floor, last_write.get(r, -1) + 1)
        for w in s.writes:
            floor = max(floor, last_fixed.get(w, -1) + 1, last_read.get(w, 0))
        for prow, p in accesses if s.loads or s.stores else ():
            if (p.stores or s.stores) and _alias(p.loc, s.loc):
                # after a store; a store may share the row of a load it follows
                floor = max(floor, prow + (0 if s.stores and not s.loads and not p.stores
                                          else 1))
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
            if w in s.fixed:
                last_fixed[w] = row
        if s.loads or s.stores:
            accesses.append((row, s))
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
        locs = regions(blocks, by_pc, fn.entry == 0)
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
                slots, removed = transform(body, live[start], locs)
                removed += dead + len(insns) - len(kept[start])
            else:
                slots = [replace(slot_of(i), loc=locs[i.pc]) if i.pc in locs else slot_of(i)
                         for i in insns]
                removed = 0
            out[start] = (schedule(slots, lanes, mem_ports, helpers_per_row), len(insns),
                          removed)
    return Schedule(prog.name, out)
