"""Generated tail-call chains: objects of two to four generated programs, each of which
runs its generated body as a subprogram and then tail calls the slot its r0 picks in
a prog array with slots left empty and indexes past its end.  Chains of any length
(the 33-call limit included), faults, Python helpers and budgets that end anywhere
in a chain: a linked run on the interpreter and on native code must report what the
unlinked run (one Python step per tail call) reports."""
from __future__ import annotations

import random
import struct

import pytest

from xsim.crosscheck.diff import between, facts
from xsim.crosscheck.generate import generate, random_memory
from xsim.elf.kinds import MapType, ProgType
from xsim.elf.spec import MapSpec, ObjectSpec, ProgramSpec, Reloc
from xsim.runtime.object import Object

_INSN = struct.Struct("<BBhi")
SLOTS = 4                   # the prog array's; r0 & 7 picks slots 0-7
MEMORY = 64


def _insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(opcode, dst | src << 4, off, imm)


#: r6 = ctx; call the body; r1 = ctx; r2 = &jumps; r3 = r0 & 7; bpf_tail_call; exit
TRAILER = b"".join([
    _insn(0xBF, 6, 1),                      # 0: r6 = r1
    _insn(0x85, 0, 1, 0, 7),                # 1: call the body at slot 9
    _insn(0xBF, 1, 6),                      # 2: r1 = r6
    _insn(0x18, 2), _insn(0),               # 3: r2 = &jumps (relocated)
    _insn(0xBF, 3, 0),                      # 5: r3 = r0
    _insn(0x57, 3, 0, 0, 7),                # 6: r3 &= 7
    _insn(0x85, 0, 0, 0, 12),               # 7: bpf_tail_call(ctx, &jumps, r3)
    _insn(0x95),                            # 8: exit (a failed tail call: the body's r0)
])


#: the same, the tail call made from a subprogram: its target's exit returns to slot 5
#: with the target's r0 (a failed call returns 77)
DEEP_TRAILER = b"".join([
    _insn(0xBF, 6, 1),                      # 0: r6 = r1
    _insn(0x85, 0, 1, 0, 11),               # 1: call the body at slot 13
    _insn(0xBF, 1, 6),                      # 2: r1 = r6
    _insn(0xBF, 2, 0),                      # 3: r2 = r0
    _insn(0x85, 0, 1, 0, 1),                # 4: call the tail-calling subprogram at slot 6
    _insn(0x95),                            # 5: exit
    _insn(0xBF, 3, 2),                      # 6: r3 = r2
    _insn(0x57, 3, 0, 0, 7),                # 7: r3 &= 7
    _insn(0x18, 2), _insn(0),               # 8: r2 = &jumps (relocated)
    _insn(0x85, 0, 0, 0, 12),               # 10: bpf_tail_call(ctx, &jumps, r3)
    _insn(0xB7, 0, 0, 0, 77),               # 11: r0 = 77
    _insn(0x95),                            # 12: exit
])


def chain_object(seed: int, deep: bool = False) -> tuple[ObjectSpec, bytes, int, int]:
    """The object of a seed, its input memory, a budget and a repeat count; ``deep``: each
    program tail calls from a subprogram."""
    rng = random.Random(seed)
    names = [f"p{k}" for k in range(rng.randint(2, 4))]
    programs = []
    for name in names:
        body = generate(rng, rng.choice((6, 12, 20, 30)), helpers=rng.random() < 0.3,
                        calls=rng.random() < 0.6, mem_size=MEMORY)
        code, at = (DEEP_TRAILER, 8) if deep else (TRAILER, 3)
        code += body
        programs.append(ProgramSpec(name, "raw_tp", ProgType.RAW_TRACEPOINT, code,
                                    relocs=(Reloc(at, "map", "jumps"),)))
    slots = tuple((s, rng.choice(names)) for s in range(SLOTS) if rng.random() < 0.75)
    jumps = MapSpec("jumps", MapType.PROG_ARRAY, 4, 4, SLOTS, init=slots, section=".maps")
    budget = rng.randint(1, 400) if rng.random() < 0.3 else 10_000
    repeat = rng.choice((1, 1, 2, 3))
    return ObjectSpec(f"gen{seed}.o", tuple(programs), (jumps,)), random_memory(rng, MEMORY), \
        budget, repeat


class _NoLinks(dict):
    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> None:
        return None


def _facts(seed: int, tier: str, linked: bool, deep: bool = False) -> dict:
    spec, memory, budget, repeat = chain_object(seed, deep)
    obj = Object(spec)
    if not linked:
        obj._links = _NoLinks()
    prog = obj.programs["p0"].program
    assert (prog.linked() is not None) == linked
    return facts(prog.run(memory, tier=tier, budget=budget, repeat=repeat))


#: seed 236: the budget ends at a tail call, so the target stops at its first instruction
SEEDS = [*range(60), 236]


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_generated_chains_linked_and_unlinked_agree(tier: str) -> None:
    verdicts = set()
    for seed in SEEDS:
        ref = _facts(seed, "interp", False)
        diff = between(ref, _facts(seed, tier, True), ("unlinked interp", f"linked {tier}"))
        assert diff is None, f"seed {seed}: {diff}"
        verdicts.add(ref["error"][0] if ref["error"] else "ok")
        verdicts.add(f"tail calls {ref['helper_calls'].get(12, 0) > 33}")
    # the seeds reach the cases they are for: ends without error, faults, the budget,
    # and chains long enough for the limit
    assert {"ok", "BudgetExceeded", "MemoryAccessError", "tail calls True"} <= verdicts


@pytest.mark.parametrize("tier", ["aarch64", "riscv64"])
def test_generated_chains_on_other_isas(tier: str) -> None:
    for seed in range(12):
        ref = _facts(seed, "interp", False)
        diff = between(ref, _facts(seed, tier, True), ("unlinked interp", f"linked {tier}"))
        assert diff is None, f"seed {seed}: {diff}"


@pytest.mark.parametrize("tier", ["jit", "aarch64"])
def test_generated_chains_from_subprograms(tier: str) -> None:
    """Each tail call made from a subprogram, its target returning to the subprogram's
    caller: native code agrees with the interpreter (both linked: unlinked, such a tail
    call is an error)."""
    returned = []
    for seed in range(40 if tier == "jit" else 30):
        ref = _facts(seed, "interp", True, deep=True)
        diff = between(ref, _facts(seed, tier, True, deep=True), ("linked interp", tier))
        assert diff is None, f"seed {seed}: {diff}"
        if ref["error"] is None and ref["helper_calls"].get(12, 0) > ref["runs"]:
            returned.append(seed)
    assert returned
    unlinked = _facts(returned[0], "interp", False, deep=True)
    assert "from a subprogram" in unlinked["error"][1]
