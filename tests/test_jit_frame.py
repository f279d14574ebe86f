"""Accesses through copies of r10 proven inside the frame (xsim/jit/frame.py): an
interval analysis of the registers, narrowed by the program's comparisons with
constants and widened at loop headers.

A proven access goes to the stack row unchecked, so the RunResult must still be the
interpreter's, also when the index goes one past the array, when the comparison is
signed or on the wrong side, and when a call clobbers the index.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_jit import both
from xsim.isa import interp as ip
from xsim.isa.asm import assemble
from xsim.jit import cfg, frame
from xsim.runtime import Program
from xsim.runtime.source import read_code


def proven(code: bytes) -> set[int]:
    prog = Program.from_bytes(code)
    lowered, consts = prog._code, prog._st[ip.C_BASE:]
    fn = cfg.functions(lowered)[0]
    return frame.proven(fn, lowered, consts, cfg.blocks(fn, lowered))


def test_the_sieve_reads_its_array_through_a_copy_of_r10(bench_progs) -> None:
    code = read_code(bench_progs / "stack_sieve.bpf.o").code
    assert proven(code) == {42}         # r6 = r10 - 400 + i, with i < 400 from the loop test


INDEXED = """ldxh %r2, [%r1]
jge %r2, 400, out
mov %r8, %r10
add %r8, -400
mov %r6, %r8
add %r6, %r2
ldxb %r0, [%r6]
exit
out:
mov %r0, 0
exit
"""


def test_a_bound_proves_only_what_it_covers() -> None:
    assert proven(assemble(INDEXED)) == {6}
    assert proven(assemble(INDEXED.replace("jge %r2, 400", "jge %r2, 401"))) == set()
    assert proven(assemble(INDEXED.replace("ldxb %r0, [%r6]", "ldxh %r0, [%r6+398]"))) == set()
    assert proven(assemble(INDEXED.replace("jge %r2, 400", "jsge %r2, 400"))) == set()
    assert proven(assemble(INDEXED.replace("jge %r2, 400, out", "jlt %r2, 400, out"))) == set()
    assert proven(assemble(INDEXED.replace("ldxb %r0", "call 5\nldxb %r0"))) == {7}
    clobbered = INDEXED.replace("mov %r6, %r8", "call 5\nmov %r6, %r8")
    assert proven(assemble(clobbered)) == set()      # r2 is not kept across a call
    assert proven(assemble("mov %r3, %r10\nstxdw [%r3-8], %r1\nexit\n")) == {1}


# -- generated stack loops and lookups, run on both tiers ------------------------------------
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}


@st.composite
def stack_programs(draw):
    size = draw(st.sampled_from(list(SIZES)))
    off = draw(st.integers(-8, 8))
    # the array starts at r10 - below: anywhere, or where index 0 is the frame's first
    # byte (or one off)
    below = draw(st.one_of(st.integers(1, 520), st.integers(511, 513).map(lambda v: v + off)))
    # a bound that just fits the frame (or one off), anywhere, or next to 2**64
    fits = below - off - SIZES[size] + 1
    bound = draw(st.one_of(st.integers(fits - 2, fits + 2).filter(lambda v: v >= 0),
                           st.integers(0, 520), st.integers(-4, -1)))
    jump = draw(st.sampled_from(["jlt", "jle", "jne", "jlt32", "jsle", "jgt"]))
    store = draw(st.booleans())
    access = (f"stx{size} [%r6{off:+d}], %r2" if store else
              f"ldx{size} %r4, [%r6{off:+d}]\nadd %r0, %r4")
    lines = ["mov %r8, %r10", f"add %r8, -{below}", "mov %r0, 0"]
    if draw(st.booleans()):         # a loop over the array
        start = draw(st.one_of(st.just(0), st.integers(0, 40)))
        step = draw(st.integers(1, 9))
        lines += [f"mov %r2, {start}", "loop:", "mov %r6, %r8", "add %r6, %r2", access,
                  f"add %r2, {step}", f"{jump} %r2, {bound}, loop", "exit"]
    else:                           # one index from memory, checked first
        lines += ["ldxw %r2, [%r1]", f"{jump} %r2, {bound}, ok", "exit", "ok:",
                  "mov %r6, %r8", "add %r6, %r2", access, "exit"]
    # the index: the last one the bound lets through (or next to it), or any
    near = st.integers(-2, 1).map(lambda d: ((bound + d) & 0xFFFFFFFF).to_bytes(4, "little"))
    memory = draw(st.one_of(near, st.binary(min_size=4, max_size=4)))
    budget = draw(st.one_of(st.none(), st.integers(1, 600)))
    return "\n".join(lines) + "\n", memory, budget


@given(stack_programs())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_stack_accesses_agree_with_the_interpreter(case) -> None:
    text, memory, budget = case
    both(Program.from_bytes(assemble(text)), memory=memory, budget=budget)


EDGE = """mov %r8, %r10
add %r8, -{below}
mov %r0, 0
mov %r2, 0
loop:
mov %r6, %r8
add %r6, %r2
ldxb %r4, [%r6+0]
add %r0, %r4
add %r2, 1
jlt %r2, {bound}, loop
exit
"""


@pytest.mark.parametrize("below,bound,ok", [(512, 512, True), (513, 513, False),
                                            (400, 400, True), (400, 401, False)])
def test_the_frame_s_first_and_last_byte(below: int, bound: int, ok: bool) -> None:
    """Index 0 at the frame's first byte or one below it; the last index at its last
    byte or one past it: proven exactly when inside, and the interpreter's fault
    otherwise."""
    code = assemble(EDGE.format(below=below, bound=bound))
    assert (proven(code) == {6}) == ok
    got = both(Program.from_bytes(code), memory=bytes(4))
    assert (got["error"] is None) == ok
