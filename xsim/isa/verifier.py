"""The parts of the kernel verifier's analysis that xsim needs, not the verifier.

xsim checks every access at run time, so it does not need the verifier to be
safe.  What it does need is what the verifier *computes* that changes a test
run's answer: ``max_ctx_offset``, the end of the furthest context access,
which BPF_PROG_TEST_RUN compares with ``ctx_size_in`` to refuse a short
context (EINVAL).  This module follows the context pointer through
registers, constant offsets, stack spills and BPF-to-BPF calls, the way the
verifier tracks PTR_TO_CTX, and never over-estimates: an access it cannot
prove to be through the context is left out.
"""
from __future__ import annotations

from .insn import Insn
from .opcodes import Field, Kind

#: how often one instruction is revisited before differing offsets are forgotten
_WIDEN_AFTER = 8
_FP = 10


def max_ctx_offset(insns: list[Insn]) -> int:
    """The largest ``offset + size`` of a load, store or atomic through r1's context."""
    by_pc = {i.pc: i for i in insns}
    return max((off + by_pc[pc].op.size for pc, off in ctx_accesses(insns).items()), default=0)


def ctx_accesses(insns: list[Insn]) -> dict[int, int]:
    """pc -> context offset of every load, store or atomic made through the context
    pointer (r1 at entry), as the verifier proves them; hooks rewrite these."""
    by_pc = {i.pc: i for i in insns}
    found: dict[int, int] = {}
    # a state: registers -> ctx offset (or absent), and spilled stack slots -> ctx offset
    start = ((1, 0),), ()
    work = [(0, start)]
    seen: dict[int, set] = {}
    while work:
        pc, state = work.pop()
        visits = seen.setdefault(pc, set())
        if state in visits:
            continue
        if len(visits) >= _WIDEN_AFTER:
            state = (), ()          # forget what a loop keeps changing
            if state in visits:
                continue
        visits.add(state)
        insn = by_pc.get(pc)
        if insn is None:
            continue
        regs, spills = dict(state[0]), dict(state[1])
        off = _access(insn, regs)
        if off is not None:
            found[pc] = max(found.get(pc, off), off)
        for nxt, new_regs, new_spills in _step(insn, regs, spills):
            work.append((nxt, (tuple(sorted(new_regs.items())),
                               tuple(sorted(new_spills.items())))))
    return found


def _access(insn: Insn, regs: dict[int, int]) -> int | None:
    """The context offset the instruction touches, if its base register is the context."""
    k = insn.op.kind
    if k is Kind.LDX and insn.src in regs:
        return regs[insn.src] + insn.off
    if k in (Kind.ST, Kind.STX, Kind.ATOMIC) and insn.dst in regs:
        return regs[insn.dst] + insn.off
    return None


def _step(insn: Insn, regs: dict[int, int], spills: dict[int, int]):
    """(next pc, registers, spills) for each way the instruction goes on."""
    op, k = insn.op, insn.op.kind
    nxt = insn.pc + insn.slots
    if k is Kind.EXIT:
        return []
    if k is Kind.JA:
        return [(insn.target, regs, spills)]
    if k is Kind.JCOND:
        return [(nxt, regs, spills), (insn.target, regs, spills)]
    regs = dict(regs)
    if k is Kind.CALL and op.disc_value == 1:          # a subprogram: r1-r5 go along
        callee = {r: v for r, v in regs.items() if 1 <= r <= 5}
        after = {r: v for r, v in regs.items() if 6 <= r <= 9}
        return [(insn.target, callee, {}), (nxt, after, spills)]
    if k in (Kind.CALL, Kind.CALLX, Kind.LDPKT):
        return [(nxt, {r: v for r, v in regs.items() if 6 <= r <= 9}, spills)]
    if k is Kind.STX and insn.dst == _FP and op.size == 8:
        spills = dict(spills)
        if insn.src in regs:
            spills[insn.off] = regs[insn.src]
        else:
            spills.pop(insn.off, None)
        return [(nxt, regs, spills)]
    if k in (Kind.ST, Kind.STX, Kind.ATOMIC) and insn.dst == _FP:
        spills = {o: v for o, v in spills.items() if not o - 8 < insn.off < o + 8}
    if k is Kind.LDX and insn.src == _FP and op.size == 8 and insn.off in spills:
        regs[insn.dst] = spills[insn.off]
        return [(nxt, regs, spills)]
    written = _written(insn)
    if k is Kind.ALU and op.width == 64 and written in regs and op.operation in ("add", "sub") \
            and op.imm is Field.VALUE:
        regs[written] += insn.imm if op.operation == "add" else -insn.imm
        return [(nxt, regs, spills)]
    if k is Kind.ALU and op.operation == "mov" and op.width == 64 and op.src is Field.READ:
        if insn.src in regs:
            regs[insn.dst] = regs[insn.src]
        else:
            regs.pop(insn.dst, None)
        return [(nxt, regs, spills)]
    if written is not None:
        regs.pop(written, None)
    if k is Kind.ATOMIC and op.src is Field.WRITE:
        regs.pop(insn.src, None)
    return [(nxt, regs, spills)]


def _written(insn: Insn) -> int | None:
    if insn.op.dst is Field.WRITE:
        return insn.dst
    if insn.op.kind is Kind.ATOMIC and insn.op.operation == "cmpxchg":
        return 0
    return None
