"""Random eBPF programs for differential runs, and a minimizer for the ones that differ.

The generator has no list of instructions of its own: it picks rows of the
opcode table (:mod:`xsim.isa.opcodes`) by kind and class and fills their
fields by the rows' field rules, so a row added to the table is generated
without a change here.  What it adds is the shape that keeps a program
runnable and its result meaningful:

* r1 is the input memory and r2 its length (``Program.run(memory=...)``);
  loads, stores and atomics go through r1 (or a pointer derived from it) and
  through r10 at negative offsets, mostly inside the memory and the 512-byte
  frame and sometimes outside (a fault is a verdict like any other);
* forward jumps, conditional or not, go anywhere later in the same block;
  backward jumps exist only as bounded loops: a counter in r6..r9 is set,
  stepped and compared, and nothing inside the loop writes the counter (the
  callee-saved registers survive bpf-to-bpf calls);
* bpf-to-bpf calls go to small subprograms placed after the main program,
  each ending with exit; subprogram i calls only subprograms j > i, so the
  call graph is acyclic, and sometimes a chain of calls is deeper than the
  kernel's 8 frames;
* helper calls (``helpers=True``) use only helper 5, xsim.conformance's
  ``unwind``, so the programs run with that registry.

:func:`minimize` shrinks a program while a predicate holds: it drops
instructions (an lddw as a whole, jump offsets and call targets fixed so the
program still decodes), inlines calls of straight-line functions, turns
immediates and offsets into 0/1/-1, register operands into immediates and
computed values into constants.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DecodeError
from ..isa import opcodes as oc
from ..isa.insn import Insn, decode, encode, make
from ..isa.opcodes import OPS, Field, Kind, Op

#: the memory size the generated offsets assume (``random_memory(rng, MEMORY_SIZE)``)
MEMORY_SIZE = 64
#: the helper a generated program may call: xsim.conformance's ``unwind``
UNWIND_HELPER_ID = 5
FRAME = oc.STACK_FRAME_SIZE

# -- the rows the generator picks from, by kind --------------------------------------------
_BY_KIND: dict[Kind, list[Op]] = {kind: [op for op in OPS if op.kind is kind] for kind in Kind}
ALU_ROWS = tuple(_BY_KIND[Kind.ALU])
END_ROWS = tuple(_BY_KIND[Kind.END])
JCOND_ROWS = tuple(_BY_KIND[Kind.JCOND])
JA_ROWS = tuple(_BY_KIND[Kind.JA])
LDX_ROWS = tuple(_BY_KIND[Kind.LDX])
ST_ROWS = tuple(_BY_KIND[Kind.ST])
STX_ROWS = tuple(_BY_KIND[Kind.STX])
ATOMIC_ROWS = tuple(_BY_KIND[Kind.ATOMIC])
#: the plain 64-bit immediate load (the other LD_IMM64 kinds need a loader)
LDDW_ROW = next(op for op in _BY_KIND[Kind.LDDW] if op.disc_value == 0)
CALL_HELPER_ROW = next(op for op in _BY_KIND[Kind.CALL] if op.disc_value == oc.CALL_HELPER)
CALL_LOCAL_ROW = next(op for op in _BY_KIND[Kind.CALL] if op.disc_value == oc.CALL_LOCAL)
CALLX_ROW = _BY_KIND[Kind.CALLX][0]
EXIT_ROW = _BY_KIND[Kind.EXIT][0]

#: every exec name a generated program may contain (call_helper and callx only
#: with ``helpers=True``, call_local only with ``calls=True``)
CLAIMED_EXECS: frozenset[str] = frozenset(
    [op.exec for op in ALU_ROWS + END_ROWS + JCOND_ROWS + JA_ROWS + LDX_ROWS + ST_ROWS
     + STX_ROWS + ATOMIC_ROWS]
    + [LDDW_ROW.exec, CALL_HELPER_ROW.exec, CALL_LOCAL_ROW.exec, CALLX_ROW.exec, EXIT_ROW.exec])


def _row(kind: Kind, operation: str, cls: int, source: int = oc.K) -> Op:
    """The one row of ``kind`` doing ``operation`` in class ``cls`` with that source bit
    (for ALU rows told apart by ``off``: the plain one, or sdiv/smod's)."""
    rows = [op for op in _BY_KIND[kind] if op.operation == operation and op.cls == cls
            and op.source == source and (op.disc != "off" or op.disc_value in (0, 1))]
    assert len(rows) == 1, (kind, operation, cls, source, rows)
    return rows[0]


def _alu(operation: str, width: int = 64, source: int = oc.K) -> Op:
    return _row(Kind.ALU, operation, oc.ALU64 if width == 64 else oc.ALU, source)


def _jcond(operation: str, width: int = 64, source: int = oc.K) -> Op:
    return _row(Kind.JCOND, operation, oc.JMP if width == 64 else oc.JMP32, source)


_MASK64 = (1 << 64) - 1
_EDGE32 = (0, 1, -1, 2, -2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x100,
           0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, -0x80000000, -0x7FFFFFFF, -0x8000)
_EDGE64 = (0, 1, _MASK64, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF,
           1 << 32, 0xFFFFFFFF00000000, 0xFFFFFFFF80000000, 0x8000000000000001,
           0x0123456789ABCDEF, 0xFEDCBA9876543210, 0xFF, 0x8000, 0xFFFF)


def _s32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _imm32(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.45:
        return rng.choice(_EDGE32)
    if r < 0.75:
        return rng.randint(-16, 64)
    return rng.randint(-(1 << 31), (1 << 31) - 1)


def _imm64(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.4:
        return rng.choice(_EDGE64)
    if r < 0.6:
        return _imm32(rng) & _MASK64
    if r < 0.7:
        return rng.randint(0, 0xFFFF) << rng.choice((16, 32, 48))
    return rng.getrandbits(64)


def random_memory(rng: random.Random, size: int = MEMORY_SIZE) -> bytes:
    """Input memory: random bytes with runs of 0x00, 0xff, 0x80 and small values."""
    out = bytearray()
    while len(out) < size:
        r = rng.random()
        n = rng.randint(1, 8)
        if r < 0.5:
            out += rng.getrandbits(8 * n).to_bytes(n, "little")
        elif r < 0.65:
            out += bytes(n)
        elif r < 0.75:
            out += b"\xff" * n
        elif r < 0.82:
            out += b"\x80" * n
        else:
            out += bytes(rng.randint(0, 9) for _ in range(n))
    return bytes(out[:size])


# -- symbolic program: instructions with label targets, grouped into units ----------------------
class _Label:
    """A position in the program; jumps and calls name one instead of an offset."""

    __slots__ = ()


@dataclass
class _I:
    op: Op
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    next_imm: int = 0
    to: _Label | None = None

    @property
    def slots(self) -> int:
        return 2 if self.op.kind is Kind.LDDW else 1


#: a unit is a list of items that jumps never land inside
Unit = list


def _slots(unit: Unit) -> int:
    return sum(it.slots for it in unit if isinstance(it, _I))


@dataclass
class _Ctx:
    """Where code is being generated: which function, which registers loops own."""

    fn: int                      # -1 for the main program, else the subprogram's index
    protected: frozenset[int]    # loop counters alive here
    loop_depth: int = 0


_COUNTERS = (6, 7, 8, 9)         # callee-saved: a call does not clobber them


class _Gen:
    def __init__(self, rng: random.Random, helpers: bool, calls: bool, mem_size: int) -> None:
        self.rng = rng
        self.helpers = helpers
        self.calls = calls
        self.mem_size = max(mem_size, 8)
        self.sub_labels: list[_Label] = []
        self.chain: set[int] = set()      # subprograms that must call the next one
        #: how often an access is meant to fault (per program: many programs have none)
        self.wild = rng.choice((0.0, 0.0, 0.01, 0.03, 0.08))

    # -- registers ------------------------------------------------------------------------
    def writable(self, ctx: _Ctx) -> int:
        """A register to write: r0, r2..r9 except loop counters, rarely r1."""
        rng = self.rng
        if rng.random() < self.wild / 4:
            return 1
        choices = [r for r in (0, 2, 3, 4, 5, 6, 7, 8, 9) if r not in ctx.protected]
        return rng.choice(choices)

    def readable(self) -> int:
        rng = self.rng
        if rng.random() < 0.08:
            return rng.choice((1, 10))
        return rng.choice((0, 2, 3, 4, 5, 6, 7, 8, 9))

    # -- addresses ------------------------------------------------------------------------
    def _mem_off(self, size: int) -> int:
        rng, top = self.rng, self.mem_size - size
        if rng.random() < self.wild:     # outside the memory
            return rng.choice((-size, -1, top + 1, top + rng.randint(1, 8), self.mem_size,
                               0x7FFF, -0x8000, rng.randint(-64, -1)))
        off = rng.randint(0, top)
        return off - off % size if rng.random() < 0.7 else off

    def _stack_off(self, size: int) -> int:
        rng = self.rng
        if rng.random() < self.wild:     # outside this frame
            return rng.choice((-FRAME - rng.randint(1, 8), -FRAME - size, rng.randint(-size + 1, 8),
                               0, 8, -0x8000, 0x7FFF))
        low = -64 if rng.random() < 0.7 else -FRAME
        off = rng.randint(low, -size)
        return off - off % size if rng.random() < 0.8 else off

    def address(self, ctx: _Ctx, size: int) -> tuple[list[_I], int, int]:
        """(instructions that set up the base, base register, offset) of one access."""
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            return [], 1, self._mem_off(size)
        if r < 0.85:
            return [], 10, self._stack_off(size)
        if r < 1 - self.wild / 2:    # a pointer computed from r1, r2 or r10
            p = rng.choice([x for x in (3, 4, 5, 6, 7, 8, 9) if x not in ctx.protected])
            mov = _I(_alu("mov", 64, oc.X), dst=p)
            kind = rng.random()
            if kind < 0.4:
                mov.src = 1
                delta = rng.randint(0, self.mem_size)
                off = max(-0x8000, min(0x7FFF, self._mem_off(size) - delta))
                return [mov, _I(_alu("add"), dst=p, imm=delta)], p, off
            if kind < 0.7:
                mov.src = 1
                back = (rng.randint(0, size - 1) if rng.random() < self.wild
                        else rng.randint(size, self.mem_size))
                return [mov, _I(_alu("add", 64, oc.X), dst=p, src=2)], p, -back
            mov.src = 10
            delta = rng.randint(0, FRAME)
            off = self._stack_off(size) + delta
            if not -0x8000 <= off < 0x8000:
                off = 0
            return [mov, _I(_alu("sub"), dst=p, imm=delta)], p, off
        # a wild pointer: whatever a register holds
        return [], self.readable(), rng.randint(-0x8000, 0x7FFF)

    # -- units ----------------------------------------------------------------------------
    def unit(self, ctx: _Ctx) -> tuple[Unit, _Label | None]:
        """One unit and, for a forward jump, the label it still needs placing."""
        rng = self.rng
        kinds = ["alu"] * 30 + ["end"] * 4 + ["jcond"] * 10 + ["ja"] * 2 + ["lddw"] * 3 + \
            ["ldx"] * 8 + ["st"] * 4 + ["stx"] * 6 + ["atomic"] * 7 + ["exit"]
        free = [c for c in _COUNTERS if c not in ctx.protected]
        if ctx.loop_depth < 2 and free:
            kinds += ["loop"] * (4 if ctx.loop_depth == 0 else 2)
        if self.calls and self.callees(ctx):
            kinds += ["call"] * 3
        if self.helpers:
            kinds += ["helper"] * 3
        kind = rng.choice(kinds)
        return getattr(self, "u_" + kind)(ctx)

    def callees(self, ctx: _Ctx) -> list[int]:
        return list(range(ctx.fn + 1, len(self.sub_labels)))

    def u_alu(self, ctx: _Ctx):
        rng = self.rng
        op = rng.choice(ALU_ROWS)
        dst = self.writable(ctx)
        ins = _I(op, dst=dst)
        pre: list[_I] = []
        name = op.operation
        if op.imm is Field.VALUE:
            if name in ("div", "mod", "sdiv", "smod"):
                r = rng.random()
                ins.imm = 0 if r < 0.15 else -1 if r < 0.25 else _imm32(rng)
            elif name in ("lsh", "rsh", "arsh"):
                r = rng.random()
                w = op.width
                ins.imm = (rng.randrange(w) if r < 0.6 else rng.randint(w, 2 * w + 2) if r < 0.85
                           else _imm32(rng))
            else:
                ins.imm = _imm32(rng)
        if op.src is Field.READ:
            ins.src = self.readable()
            if name in ("div", "mod", "sdiv", "smod") and rng.random() < 0.2 \
                    and ins.src not in ctx.protected and ins.src not in (1, 10) and ins.src != dst:
                pre.append(_I(_alu("mov"), dst=ins.src, imm=rng.choice((0, 0, -1))))
            elif name in ("lsh", "rsh", "arsh") and rng.random() < 0.3 \
                    and ins.src not in ctx.protected and ins.src not in (1, 10) and ins.src != dst:
                pre.append(_I(_alu("mov"), dst=ins.src, imm=rng.randint(0, 2 * op.width + 2)))
        if name in ("sdiv", "smod") and rng.random() < 0.1 and dst != 1:
            # the one overflowing signed division: INT_MIN / -1
            pre.insert(0, _I(LDDW_ROW, dst=dst, imm=0, next_imm=_s32(0x80000000)) if op.width == 64
                       else _I(_alu("mov", 32), dst=dst, imm=-0x80000000))
            if op.imm is Field.VALUE:
                ins.imm = -1
        return pre + [ins], None

    def u_end(self, ctx: _Ctx):
        return [_I(self.rng.choice(END_ROWS), dst=self.writable(ctx))], None

    def u_jcond(self, ctx: _Ctx):
        rng = self.rng
        op = rng.choice(JCOND_ROWS)
        label = _Label()
        ins = _I(op, dst=self.readable(), to=label)
        if op.src is Field.READ:
            ins.src = self.readable()
        else:
            ins.imm = rng.randint(-2, 8) if rng.random() < 0.5 else _imm32(rng)
        return [ins], label

    def u_ja(self, ctx: _Ctx):
        label = _Label()
        return [_I(self.rng.choice(JA_ROWS), to=label)], label

    def u_lddw(self, ctx: _Ctx):
        value = _imm64(self.rng)
        return [_I(LDDW_ROW, dst=self.writable(ctx), imm=_s32(value), next_imm=_s32(value >> 32))], None

    def u_ldx(self, ctx: _Ctx):
        op = self.rng.choice(LDX_ROWS)
        pre, base, off = self.address(ctx, op.size)
        return pre + [_I(op, dst=self.writable(ctx), src=base, off=off)], None

    def u_st(self, ctx: _Ctx):
        op = self.rng.choice(ST_ROWS)
        pre, base, off = self.address(ctx, op.size)
        return pre + [_I(op, dst=base, off=off, imm=_imm32(self.rng))], None

    def u_stx(self, ctx: _Ctx):
        op = self.rng.choice(STX_ROWS)
        pre, base, off = self.address(ctx, op.size)
        return pre + [_I(op, dst=base, src=self.readable(), off=off)], None

    def u_atomic(self, ctx: _Ctx):
        rng = self.rng
        op = rng.choice(ATOMIC_ROWS)
        pre, base, off = self.address(ctx, op.size)
        if off % op.size and rng.random() < 0.7:
            off -= off % op.size
        src = self.writable(ctx) if op.src is Field.WRITE else self.readable()
        return pre + [_I(op, dst=base, src=src, off=off)], None

    def u_exit(self, ctx: _Ctx):
        return [_I(_alu("mov"), dst=0, imm=_imm32(self.rng)), _I(EXIT_ROW)], None

    def u_call(self, ctx: _Ctx):
        target = self.rng.choice(self.callees(ctx))
        return [_I(CALL_LOCAL_ROW, to=self.sub_labels[target])], None

    def u_helper(self, ctx: _Ctx):
        rng = self.rng
        r = rng.random()
        call = _I(CALL_HELPER_ROW, imm=UNWIND_HELPER_ID)
        if r < 0.45:                  # unwind(r1): returns the memory pointer
            return [call], None
        if r < 0.75:                  # unwind(x) with r1 saved and restored around it
            slot = -8 * rng.randint(1, 8)
            value = rng.choice((1, -1, _imm32(rng) | 1))
            return [_I(_stx8(), dst=10, src=1, off=slot),
                    _I(_alu("mov"), dst=1, imm=value), call,
                    _I(_ldx8(), dst=1, src=10, off=slot)], None
        if r < 0.88:                  # callx: the id in a register
            reg = rng.choice([x for x in (0, 2, 3, 4, 5, 6, 7, 8, 9) if x not in ctx.protected])
            ident = UNWIND_HELPER_ID if rng.random() < 0.9 else rng.choice((0, 6, 1000))
            return [_I(_alu("mov"), dst=reg, imm=ident), _I(CALLX_ROW, dst=reg)], None
        if r < 0.95:                  # unwind(0): the program stops here with r0 = 0
            save = [_I(_stx8(), dst=10, src=1, off=-8)]
            return save + [_I(_alu("mov"), dst=1, imm=0), call,
                           _I(_ldx8(), dst=1, src=10, off=-8)], None
        # a helper this registry does not have: a HelperError
        return [_I(CALL_HELPER_ROW, imm=rng.choice((6, 7, 1)))], None

    def u_loop(self, ctx: _Ctx):
        rng = self.rng
        c = rng.choice([x for x in _COUNTERS if x not in ctx.protected])
        big = ctx.loop_depth == 0 and rng.random() < 0.04
        n = rng.randint(2000, 5000) if big else rng.randint(1, 6)
        step_width = rng.choice((64, 32))
        cmp_width = rng.choice((64, 32))
        inner = _Ctx(ctx.fn, ctx.protected | {c}, ctx.loop_depth + 1)
        size = rng.randint(1, 3) if big else rng.randint(1, 8 if ctx.loop_depth == 0 else 4)
        body = self.block(inner, size)
        top = _Label()
        if rng.random() < 0.5:        # count down from n to 0
            init = _I(_alu("mov", rng.choice((64, 32))), dst=c, imm=n)
            step = (_I(_alu("sub", step_width), dst=c, imm=1) if rng.random() < 0.5
                    else _I(_alu("add", step_width), dst=c, imm=-1))
            cond, k = rng.choice((("jne", 0), ("jgt", 0), ("jsgt", 0), ("jge", 1), ("jsge", 1)))
        else:                         # count up from 0 to n
            init = _I(_alu("mov", rng.choice((64, 32))), dst=c, imm=0)
            step = (_I(_alu("add", step_width), dst=c, imm=1) if rng.random() < 0.5
                    else _I(_alu("sub", step_width), dst=c, imm=-1))
            cond, k = rng.choice((("jne", n), ("jlt", n), ("jslt", n), ("jle", n - 1),
                                  ("jsle", n - 1)))
        back = _I(_jcond(cond, cmp_width), dst=c, imm=k, to=top)
        return [init, top, *body, step, back], None

    # -- blocks and functions -------------------------------------------------------------
    def block(self, ctx: _Ctx, n: int, forced: list[Unit] = ()) -> list:
        """About ``n`` instructions of units; forward jumps land on unit boundaries here."""
        rng = self.rng
        units: list[Unit] = []
        labels: list[tuple[int, _Label]] = []
        count = 0
        while count < n:
            unit, label = self.unit(ctx)
            if label is not None:
                labels.append((len(units), label))
            units.append(unit)
            count += _slots(unit)
        for unit in forced:
            at = rng.randint(0, len(units))
            labels = [(i + 1 if i >= at else i, lab) for i, lab in labels]
            units.insert(at, unit)
        where: dict[int, list[_Label]] = {}
        for i, label in labels:
            r = rng.random()
            if r < 0.7:
                j = min(len(units), i + rng.randint(1, 4))
            elif r < 0.85:
                j = len(units)
            else:
                j = rng.randint(i + 1, len(units))
            where.setdefault(j, []).append(label)
        out: list = []
        for j, unit in enumerate(units):
            out += where.get(j, [])
            out += unit
        out += where.get(len(units), [])
        return out

    def epilogue(self, ctx: _Ctx) -> list[_I]:
        """Set r0, often from the registers the code computed, then exit."""
        rng = self.rng
        out: list[_I] = []
        if ctx.fn >= 0 and rng.random() < 0.3:
            out.append(_I(_alu("mov", rng.choice((64, 32))), dst=0, imm=_imm32(rng)))
        for _ in range(rng.randint(0, 3)):
            op = _alu(rng.choice(("xor", "add", "mov", "sub")), rng.choice((64, 64, 32)), oc.X)
            out.append(_I(op, dst=0, src=rng.choice((0, 2, 3, 4, 5, 6, 7, 8, 9))))
        return out + [_I(EXIT_ROW)]

    def prologue(self) -> list[_I]:
        rng = self.rng
        out = [_I(_alu("mov", rng.choice((64, 32))), dst=0, imm=_imm32(rng))]
        for reg in (3, 4, 5, 6, 7, 8, 9):
            r = rng.random()
            if r < 0.3:
                out.append(_I(_alu("mov", rng.choice((64, 32))), dst=reg, imm=_imm32(rng)))
            elif r < 0.5:
                value = _imm64(rng)
                out.append(_I(LDDW_ROW, dst=reg, imm=_s32(value), next_imm=_s32(value >> 32)))
            elif r < 0.7:
                op = rng.choice(LDX_ROWS)
                out.append(_I(op, dst=reg, src=1, off=rng.randrange(0, self.mem_size - op.size + 1)))
        return out

    def program(self, n: int) -> list:
        rng = self.rng
        plan_chain = 0
        n_free = 0
        if self.calls and rng.random() < 0.6:
            n_free = rng.randint(1, 4)
            if rng.random() < 0.2:
                plan_chain = rng.randint(5, 10)
        n_subs = plan_chain + n_free
        self.sub_labels = [_Label() for _ in range(n_subs)]
        self.chain = set(range(plan_chain - 1)) if plan_chain else set()
        main = _Ctx(-1, frozenset())
        forced = [[_I(CALL_LOCAL_ROW, to=self.sub_labels[0])]] if plan_chain else []
        items = self.prologue() + self.block(main, n, forced) + self.epilogue(main)
        for k in range(n_subs):
            ctx = _Ctx(k, frozenset())
            forced = [[_I(CALL_LOCAL_ROW, to=self.sub_labels[k + 1])]] if k in self.chain else []
            items += [self.sub_labels[k]] + self.block(ctx, rng.randint(1, 10), forced)
            items += self.epilogue(ctx)
        return items


def _stx8() -> Op:
    return next(op for op in STX_ROWS if op.size == 8)


def _ldx8() -> Op:
    return next(op for op in LDX_ROWS if op.size == 8 and op.operation == "ldx")


def _assemble(items: list) -> bytes:
    """Place the labels, turn targets into offsets and encode."""
    where: dict[_Label, int] = {}
    pc = 0
    for it in items:
        if isinstance(it, _Label):
            where[it] = pc
        else:
            pc += it.slots
    out: list[Insn] = []
    pc = 0
    for it in items:
        if isinstance(it, _Label):
            continue
        off, imm = it.off, it.imm
        if it.to is not None:
            rel = where[it.to] - (pc + 1)
            if it.op.off is Field.TARGET:
                off = rel
            else:
                imm = rel
        out.append(make(it.op, pc, dst=it.dst, src=it.src, off=off, imm=imm,
                        next_imm=it.next_imm))
        pc += it.slots
    return encode(out)


def generate(rng: random.Random, n: int = 50, *, helpers: bool = False, calls: bool = True,
             mem_size: int = MEMORY_SIZE) -> bytes:
    """A random program of about ``n`` instructions in its main part (plus subprograms).

    Deterministic for a given state of ``rng``; always decodes and ends with exit.
    Memory offsets assume an input of ``mem_size`` bytes (see :func:`random_memory`).
    """
    code = _assemble(_Gen(rng, helpers, calls, mem_size).program(max(n, 1)))
    decode(code)     # the generator's own check: a program that does not decode is its bug
    return code


# -- the minimizer -------------------------------------------------------------------------------
def _rebuild(insns: list[Insn], drop: set[int] = frozenset(),
             change: dict[int, Insn | list[Insn]] | None = None) -> bytes | None:
    """The program without the instructions at indexes ``drop`` (and with ``change``d
    ones: an instruction, or a list of them whose first takes the place of the old one
    and whose others have no targets), jump offsets and call targets moved along; None
    if it no longer decodes."""
    change = change or {}
    kept: list[tuple[int, Insn]] = []
    for k, i in enumerate(insns):
        if k not in drop:
            new = change.get(k, i)
            kept += [(k, n) for n in new] if isinstance(new, list) else [(k, new)]
    if not kept:
        return None
    new_pc: dict[int, int] = {}
    at: list[int] = []          # each kept instruction's new pc
    pc = 0
    for k, i in kept:
        new_pc.setdefault(insns[k].pc, pc)
        at.append(pc)
        pc += i.slots
    kept_old = sorted(new_pc)

    def moved(target: int) -> int | None:
        # an instruction's target that was dropped becomes the next kept instruction
        lo, hi = 0, len(kept_old)
        while lo < hi:
            mid = (lo + hi) // 2
            if kept_old[mid] < target:
                lo = mid + 1
            else:
                hi = mid
        return new_pc[kept_old[lo]] if lo < len(kept_old) else None

    out: list[Insn] = []
    for (k, i), npc in zip(kept, at):
        target = i.target
        if target is not None and npc != new_pc[insns[k].pc]:
            return None             # an inserted instruction with a target
        if target is not None:
            nt = moved(target)
            if nt is None:
                return None
            rel = nt - (npc + 1)
            if i.op.off is Field.TARGET:
                if not -0x8000 <= rel < 0x8000:
                    return None
                i = dataclasses.replace(i, off=rel)
            else:
                i = dataclasses.replace(i, imm=rel)
        out.append(dataclasses.replace(i, pc=npc))
    code = encode(out)
    try:
        decode(code)
    except DecodeError:
        return None
    return code


_MOV_K = _alu("mov")


def _simpler(insn: Insn) -> list[Insn]:
    """Variants of one instruction with simpler operands, simplest first."""
    op = insn.op
    out: list[Insn] = []

    def values(current: int) -> list[int]:
        order = [0, 1, -1]
        if current in order:
            return order[:order.index(current)]
        return order

    if op.kind is Kind.LDDW and op.disc_value == 0:
        value = insn.value
        for v in (0, 1, _MASK64):
            if value != v and (value not in (0, 1, _MASK64) or v < value):
                out.append(dataclasses.replace(insn, imm=_s32(v), next_imm=_s32(v >> 32)))
        if insn.next_imm not in (0, -1):
            out.append(dataclasses.replace(insn, next_imm=0 if insn.imm >= 0 else -1))
        return out
    if op.imm is Field.VALUE:
        out += [dataclasses.replace(insn, imm=v) for v in values(insn.imm)]
    if op.off is Field.VALUE:
        out += [dataclasses.replace(insn, off=v) for v in values(insn.off)]
    if op.src is Field.READ and op.kind in (Kind.ALU, Kind.JCOND):
        k_row = oc.BY_KEY.get((op.opcode & ~oc.X, op.disc_value if op.disc else 0))
        if k_row is not None and k_row.imm is Field.VALUE and k_row.kind is op.kind:
            out += [dataclasses.replace(insn, op=k_row, src=0, imm=v) for v in (0, 1, -1)]
    if op.kind in (Kind.ALU, Kind.END, Kind.LDX) and op is not _MOV_K:
        # what it computes replaced by a constant
        out += [dataclasses.replace(insn, op=_MOV_K, src=0, off=0, imm=v) for v in (0, 1, -1)]
    return out


def _inlined(insns: list[Insn], k: int) -> list[list[Insn]]:
    """[the body of the function the local call at ``k`` calls, up to its exit] when it
    is straight-line code (no jumps or calls of its own), to replace the call; [] if not."""
    call = insns[k]
    if call.op.kind is not Kind.CALL or call.src != oc.CALL_LOCAL:
        return []
    n = next((n for n, i in enumerate(insns) if i.pc == call.target), len(insns))
    body = []
    for i in insns[n:]:
        if i.op.kind is Kind.EXIT:
            return [body] if body else []
        if i.target is not None or i.op.kind is Kind.CALLX:
            return []
        body.append(i)
    return []


def minimize(code: bytes, still_differs: Callable[[bytes], bool], *,
             max_tests: int = 20_000) -> bytes:
    """The smallest program found that still satisfies ``still_differs``.

    Drops runs of instructions (halving the run length down to one), then pairs
    and single instructions, then inlines calls of straight-line functions and
    simplifies operands (a computed value becoming 0, 1 or -1), until nothing changes;
    every candidate decodes.  Returns ``code`` unchanged if the predicate does
    not hold for it.  ``max_tests`` bounds the calls of the predicate.
    """
    seen: dict[bytes, bool] = {}
    tests = 0

    def holds(candidate: bytes | None) -> bool:
        nonlocal tests
        if candidate is None:
            return False
        if candidate not in seen:
            if tests >= max_tests:
                return False
            tests += 1
            try:
                seen[candidate] = bool(still_differs(candidate))
            except Exception:
                seen[candidate] = False
        return seen[candidate]

    code = bytes(code)
    if not holds(code):
        return code
    best = code
    changed = True
    while changed and tests < max_tests:
        changed = False
        insns = decode(best)
        # runs of instructions, longest first, from the end towards the start; pairs
        # and single instructions at every start (a call and its exit go together)
        size = max(1, len(insns) // 2)
        sizes = []
        while size >= 1:
            sizes.append(size)
            size //= 2
        for size in sorted(set(sizes) | ({2} if len(insns) > 2 else set()), reverse=True):
            start = len(insns) - size
            while start >= 0:
                run = set(range(start, min(start + size, len(insns))))
                if size > 2:    # long runs keep their exits: functions stay apart
                    run = {k for k in run if insns[k].op.kind is not Kind.EXIT}
                candidate = _rebuild(insns, run) if run else None
                if holds(candidate):
                    best, changed = candidate, True
                    insns = decode(best)
                start -= size if size > 2 else 1
        # calls inlined, simpler operands
        insns = decode(best)
        for k in range(len(insns)):
            for variant in _inlined(insns, k) + _simpler(insns[k]):
                candidate = _rebuild(insns, change={k: variant})
                if holds(candidate):
                    best, changed = candidate, True
                    insns = decode(best)
                    break
    return best
