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
from fnmatch import fnmatchcase as fnmatch
from typing import NamedTuple

from ..errors import XsimError
from ..isa import opcodes as oc

ENV = "XSIM_JIT_PLANT"


class Plant(NamedTuple):
    description: str
    where: str          # the lifter function whose code the plant changes
    execs: str          # the exec names whose code it changes (fnmatch patterns)


#: the bug classes, by name: what the planted code does wrong, where, and to which exec names
PLANTS: dict[str, Plant] = {
    "alu32_no_zext": Plant(
        "a 32-bit ALU result is sign-extended to 64 bits instead of zero-extended",
        "semantics._z32", "add32 sub32 mul32 or32 and32 xor32 mov32 neg32"),
    "shift_unmasked": Plant(
        "a shift by a register count is not masked: counts >= width give 0 (or the sign)",
        "semantics._shift", "lsh* rsh* arsh*"),
    "imm_zext": Plant(
        "a 64-bit ALU or JMP immediate is zero-extended instead of sign-extended",
        "lift._imm_zext (operands of _Fn.insn)",
        "add64 sub64 mul64 div64 or64 and64 lsh64 rsh64 mod64 xor64 mov64 arsh64 sdiv64 "
        "smod64 j*64"),
    "jmp32_as_64": Plant(
        "a JMP32 comparison is made on all 64 bits",
        "semantics.jcond", "j*32"),
    "divmod_zero": Plant(
        "division and modulo by zero are not special-cased: the divisor 0 acts as 1",
        "semantics._divmod", "div* mod* sdiv* smod*"),
    "jump_off_by_one": Plant(
        "a conditional jump lands one slot past its target (when that is an instruction "
        "of its function)", "lift._jumps_off_by_one (Lifter.__init__)", "j*32 j*64"),
    "helper_arg_reg": Plant(
        "a Python helper gets r1 and r2 swapped (its first two arguments)",
        "lift._Fn._python_block", "call_helper callx"),
    "fetch_returns_new": Plant(
        "an atomic fetch op returns the new value instead of the old one",
        "lift._Fn.atomic", "atomic_fetch_*"),
    "cmpxchg_no_r0": Plant(
        "cmpxchg does not write the old value into r0",
        "lift._Fn.atomic", "atomic_cmpxchg*"),
    "sdiv_as_udiv": Plant(
        "signed division and modulo (sdiv, smod) are done unsigned",
        "semantics._divmod", "sdiv* smod*"),
    "ldx_sign": Plant(
        "a sign-extending load (ldxs1, ldxs2, ldxs4) zero-extends",
        "lift._Fn.insn (loads)", "ldxs*"),
    "movsx_as_mov": Plant(
        "movsx moves its source without sign-extending it",
        "semantics._sx", "movsx*"),
    "be_swap_width": Plant(
        "a byte swap of the wrong width: be16 swaps 32 bits, be32 64 bits",
        "semantics._bswap", "be16 be32"),
    "arsh_as_rsh": Plant(
        "an arithmetic right shift is done logically",
        "semantics._shift", "arsh*"),
}


def execs(name: str) -> frozenset[str]:
    """The exec names whose lifted code bug class ``name`` changes."""
    return frozenset(n for n in oc.EXEC_NAMES
                     if any(fnmatch(n, pat) for pat in PLANTS[name].execs.split()))


def active() -> str | None:
    """The bug class ``XSIM_JIT_PLANT`` names, or None (unset or empty)."""
    name = os.environ.get(ENV, "")
    if not name:
        return None
    if name not in PLANTS:
        raise XsimError(f"{ENV}={name!r} is not a planted bug class; the classes are: "
                        + ", ".join(PLANTS))
    return name
