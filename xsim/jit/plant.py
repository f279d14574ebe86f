"""Planted JIT bugs: a test-only switch that makes the lifter build one known bug class.

The differential checker (:mod:`xsim.crosscheck.diff`) is only worth its runs if it
finds the bugs JITs really have.  Each class below is one of those behind the
kernel JIT bugs Jitterbug found and the uBPF/rbpf JIT bug reports, planted as a
small change where the lifter (or :mod:`.semantics`) builds the correct code.
``XSIM_JIT_PLANT=<name>`` turns one on; the lifter reads it while it lifts, so it
changes the code built from then on (the disk cache keys it, see
``engine.cached_object``), never a run of code already built.  Unset or empty, the
lifter builds exactly the IR it builds without this module.

A planted build does not version loops: the loop proof (:mod:`.loops`) models the
correct semantics, and an unchecked loop copy running planted code could touch host
memory outside every region.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from ..errors import XsimError

ENV = "XSIM_JIT_PLANT"


class Plant(NamedTuple):
    description: str
    where: str          # the lifter function whose code the plant changes


#: the bug classes, by name
PLANTS: dict[str, Plant] = {
    "alu32_no_zext": Plant(
        "a 32-bit ALU result is sign-extended to 64 bits instead of zero-extended",
        "semantics._z32 (add, sub, mul, or, and, xor, mov, neg)"),
    "shift_unmasked": Plant(
        "a shift by a register count is not masked: counts >= width give 0 (or the sign)",
        "semantics._shift"),
    "imm_zext": Plant(
        "a 64-bit ALU or JMP immediate is zero-extended instead of sign-extended",
        "lift._Fn.insn (ALU and conditional-jump operands)"),
    "jmp32_as_64": Plant(
        "a JMP32 comparison is made on all 64 bits",
        "semantics.jcond"),
    "divmod_zero": Plant(
        "division and modulo by zero are not special-cased: the divisor 0 acts as 1",
        "semantics._divmod"),
    "jump_off_by_one": Plant(
        "a conditional jump lands one instruction past its target (when that is in its "
        "function)", "lift.Lifter.__init__ (jump targets of the lowered code)"),
    "helper_arg_reg": Plant(
        "a Python helper gets r1 and r2 swapped (its first two arguments)",
        "lift._Fn._python_block"),
    "fetch_returns_new": Plant(
        "an atomic fetch op returns the new value instead of the old one",
        "lift._Fn.atomic"),
    "cmpxchg_no_r0": Plant(
        "cmpxchg does not write the old value into r0",
        "lift._Fn.atomic"),
    "sdiv_as_udiv": Plant(
        "signed division and modulo (sdiv, smod) are done unsigned",
        "semantics._divmod"),
    "ldx_sign": Plant(
        "a sign-extending load (ldxs1, ldxs2, ldxs4) zero-extends",
        "lift._Fn.insn (loads)"),
    "movsx_as_mov": Plant(
        "movsx moves its source without sign-extending it",
        "semantics._sx"),
    "be_swap_width": Plant(
        "a byte swap of the wrong width: be16 swaps 32 bits, be32 64 bits",
        "semantics._bswap"),
    "arsh_as_rsh": Plant(
        "an arithmetic right shift is done logically",
        "semantics._shift"),
}


def active() -> str | None:
    """The bug class ``XSIM_JIT_PLANT`` names, or None (unset or empty)."""
    name = os.environ.get(ENV, "")
    if not name:
        return None
    if name not in PLANTS:
        raise XsimError(f"{ENV}={name!r} is not a planted bug class; the classes are: "
                        + ", ".join(PLANTS))
    return name
