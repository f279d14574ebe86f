"""The control flow and memory accesses of lowered code, as the lifter and its loop
analysis both read them: functions, basic blocks and their successors, and which
instructions go through the region table."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..isa import interp as ip
from ..isa import opcodes as oc

FRAME = oc.STACK_FRAME_SIZE
NAMES = oc.EXEC_NAMES
JCONDS = {f"{c}{w}" for c in oc.JMP_CONDS for w in ("64", "32")}
#: exec names that end a basic block
ENDS = {"ja", "exit", "call_helper", "call_local", "call_kfunc", "callx",
        "lddw_unresolved"} | JCONDS
#: exec names after which control does not go on to the next instruction
NO_FALLTHROUGH = {"ja", "exit", "call_kfunc", "lddw_unresolved"}
CALLS = {"call_helper", "call_local", "callx"}
LOADS = {"ldx1": (1, False), "ldx2": (2, False), "ldx4": (4, False), "ldx8": (8, False),
         "ldxs1": (1, True), "ldxs2": (2, True), "ldxs4": (4, True)}
STORES = {"st1": 1, "st2": 2, "st4": 4, "st8": 8}
PKT = {"ldabs1": (1, False), "ldabs2": (2, False), "ldabs4": (4, False),
       "ldind1": (1, True), "ldind2": (2, True), "ldind4": (4, True)}


class JitUnsupported(Exception):
    """A program this lifter cannot compile (the interpreter still runs it)."""


@dataclass
class Function:
    entry: int
    end: int            # one past its last slot
    leaders: list[int]


@dataclass
class Block:
    start: int
    pcs: list[int]      # its instructions (not the second slots of lddw)
    succs: list[int]    # the blocks control can go to next, in the function


def functions(code: np.ndarray, members: tuple[int, ...] = ()) -> list[Function]:
    """The eBPF functions of lowered ``code``: pc 0, ``members`` (where a linked
    program's members start) and every bpf-to-bpf call or function-pointer target, each
    with its basic block leaders."""
    n = len(code)
    entries = {0, *members}
    for pc in range(n):
        e = int(code[pc, 0])
        if e < len(NAMES) and NAMES[e] == "call_local":
            entries.add(int(code[pc, 3]))
    starts = sorted(entries)
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else n
        leaders = {start}
        pc = start
        while pc < end:
            e = int(code[pc, 0])
            if e >= len(NAMES):        # the second slot of an lddw
                pc += 1
                continue
            name = NAMES[e]
            step = 2 if name in ("lddw", "lddw_unresolved") else 1
            if name in ENDS:
                if name == "ja" or name in JCONDS:
                    target = int(code[pc, 3])
                    if not start <= target < end:
                        raise JitUnsupported(f"pc {pc}: a jump to {target} leaves its function "
                                             f"[{start}, {end})")
                    leaders.add(target)
                if pc + step < end:
                    leaders.add(pc + step)
            pc += step
        out.append(Function(start, end, sorted(leaders)))
    return out


def blocks(fn: Function, code: np.ndarray) -> dict[int, Block]:
    """The basic blocks of ``fn`` by their first pc, in pc order."""
    out = {}
    for k, start in enumerate(fn.leaders):
        end = fn.leaders[k + 1] if k + 1 < len(fn.leaders) else fn.end
        pcs = [pc for pc in range(start, end) if int(code[pc, 0]) < len(NAMES)]
        last = NAMES[int(code[pcs[-1], 0])]
        succs = []
        if last == "ja" or last in JCONDS:
            succs.append(int(code[pcs[-1], 3]))
        if last not in NO_FALLTHROUGH and end < fn.end and end not in succs:
            succs.append(end)
        out[start] = Block(start, pcs, succs)
    return out


def name_at(code: np.ndarray, pc: int) -> str:
    return NAMES[int(code[pc, 0])]


def access(code: np.ndarray, pc: int) -> tuple[int, int, int, int] | None:
    """(base register, signed offset, size, permission) of the access at ``pc`` that
    goes through the region table, or None (no access, or a frame access: r10 plus an
    offset inside the frame needs no check)."""
    e, a, bslot, c = code[pc].tolist()
    name = NAMES[e]
    off = c - (1 << 64) if c >> 63 else c
    if name in LOADS:
        base, size, perm = bslot - ip.R_BASE, LOADS[name][0], int(ip.PERM_R)
    elif name in STORES:
        base, size, perm = a - ip.R_BASE, STORES[name], int(ip.PERM_W)
    elif name.startswith("atomic_"):
        base, size = a - ip.R_BASE, 4 if name.endswith("32") else 8
        perm = int(ip.PERM_R | ip.PERM_W)
    else:
        return None
    if base == 10 and -FRAME <= off and off + size <= 0:
        return None
    return base, off, size, perm


def plain_accesses(code: np.ndarray, blocks: dict[int, Block]) -> dict[int, tuple]:
    """:func:`access` of every load and store of ``blocks`` that goes through the region
    table, by pc: what the bounds and frame proofs may spare a check (atomics keep
    theirs)."""
    return {pc: acc for blk in blocks.values() for pc in blk.pcs
            if (acc := access(code, pc)) is not None
            and not NAMES[int(code[pc, 0])].startswith("atomic_")}
