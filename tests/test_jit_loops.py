"""Loop versioning in the JIT: a loop's checks made once on entry (xsim/jit/loops.py
proves, xsim/jit/guard.py computes), else the checked loop.

Whichever copy runs, the RunResult must be the interpreter's: r0, memory, region
access counts, the fault (pc, address) of an access that leaves its region at some
iteration, and the budget's stop at the very instruction.  The generated loops sit
at the edges the guard must catch: steps that wrap a 32-bit value, bounds the
induction variable jumps over, spans that end one byte past their region.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_jit import both
from xsim.isa import interp as ip
from xsim.isa.asm import assemble
from xsim.jit import cfg, engine, loops
from xsim.runtime import Program
from xsim.runtime.source import read_code


def found(code: bytes) -> list[loops.Loop]:
    prog = Program.from_bytes(code)
    lowered, consts = prog._code, prog._st[ip.C_BASE:]
    (fn,) = cfg.functions(lowered)
    blocks = cfg.blocks(fn, lowered)
    checkpoints = {t for s, b in blocks.items() for t in b.succs if t <= s}
    return loops.find(fn, lowered, consts, blocks, checkpoints)


def test_checksum_loop_is_proven(bench_progs) -> None:
    (lp,) = found(read_code(bench_progs / "checksum_1500.bpf.o").code)
    assert lp.steps == {2: loops.const(2)}
    test = lp.test
    assert test.op == "<" and test.bound == loops.const(1498) and test.width == 64
    (group,) = lp.groups          # the two byte loads at r1 + r2 and r1 + r2 + 1
    assert (group.lo, group.hi, group.perm) == (0, 2, int(ip.PERM_R))


def test_sieve_inner_loop_has_a_register_step(bench_progs) -> None:
    lps = {lp.header: lp for lp in found(read_code(bench_progs / "stack_sieve.bpf.o").code)}
    assert set(lps) == {3, 21}    # the zeroing loop and the marking loop, not the outer one
    inner = lps[21]
    assert inner.steps == {9: loops.header(2)}      # j += i, i invariant in the loop
    # two exit tests (j < n, j < 400): the one with the constant bound
    assert inner.test.width == 32 and inner.test.bound == loops.const(400)
    assert [g.pcs for g in inner.groups] == [[23]]


def test_versioned_copy_is_in_the_ir(bench_progs) -> None:
    prog = Program.from_bytes(read_code(bench_progs / "checksum_1500.bpf.o").code)
    text = engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], "prog", optimized=False)
    assert "unchecked2:" in text and "loop2:" in text


def test_innermost_loops_are_aligned_to_64_bytes(bench_progs) -> None:
    """checksum_1500's loop starts a 64-byte line on x86-64 (the engine's option), so
    its speed does not depend on where the code before it ends."""
    if not engine.host_triple().startswith("x86_64"):
        pytest.skip("an option of the x86-64 back end")
    prog = Program.from_bytes(read_code(bench_progs / "checksum_1500.bpf.o").code)
    tm = engine.target_machine()
    asm = tm.emit_assembly(engine.optimized_module(prog._code, prog._st[ip.C_BASE:],
                                                   "prog", tm))
    assert "\t.p2align\t6" in asm


def test_loops_with_calls_or_unknown_addresses_are_left_checked() -> None:
    calls = assemble("mov %r6, 0\nl:\ncall 5\nadd %r6, 1\njlt %r6, 4, l\nexit\n")
    assert found(calls) == []
    chase = assemble("mov %r6, 0\nmov %r2, %r1\nl:\nldxdw %r2, [%r2]\nadd %r6, 1\n"
                     "jlt %r6, 4, l\nexit\n")
    assert found(chase) == []


# -- generated loops, run on both tiers -----------------------------------------------------
JUMPS = ["jlt", "jle", "jne", "jlt32", "jle32", "jne32", "jgt", "jge", "jeq"]


@st.composite
def loop_programs(draw):
    start = draw(st.one_of(st.integers(0, 40), st.integers(-8, -1),
                           st.integers(2**32 - 40, 2**32 + 8)))
    step = draw(st.integers(1, 5))
    bound = draw(st.one_of(st.integers(0, 80), st.integers(2**32 - 20, 2**32 + 20),
                           st.integers(2**64 - 20, 2**64 - 1)))
    jump = draw(st.sampled_from(JUMPS))
    narrow = draw(st.booleans())          # the address from a 32-bit sum
    bias = draw(st.sampled_from([0, 2**32 - 48]))    # brings a high 32-bit sum back in
    on_stack = draw(st.booleans())
    off = draw(st.integers(-6, 12))
    size = draw(st.sampled_from(["b", "h", "w", "dw"]))
    store = draw(st.booleans())
    step_reg = draw(st.booleans())
    if step_reg:      # a step held in a register, none included (the budget stops it)
        step = draw(st.integers(0, 5))
    scaled = draw(st.sampled_from([0, 0, 1, 2]))     # the address moves 2**scaled as fast
    base = "%r10" if on_stack else "%r1"
    base_off = -64 if on_stack else 0
    lines = [f"lddw %r2, {start & (2**64 - 1):#x}", f"lddw %r3, {bound:#x}",
             f"mov %r7, {step}", "mov %r0, 0", "loop:"]
    if narrow:
        lines += ["mov32 %r4, %r2", "add32 %r4, 1", f"mov %r5, {base}", "add %r5, %r4",
                  f"lddw %r8, {-bias & (2**64 - 1):#x}", "add %r5, %r8"]
    elif scaled:
        lines += [f"mov %r5, {base}", "mov %r9, %r2", f"lsh %r9, {scaled}", "add %r5, %r9"]
    else:
        lines += [f"mov %r5, {base}", "add %r5, %r2"]
    lines += [f"add %r5, {base_off}", f"ldx{size} %r6, [%r5{off:+d}]", "add %r0, %r6"]
    # a second way out, on what was loaded: to where the loop's test leaves, or
    # elsewhere; its register written after it or not (its test made again on the
    # way out of a copy that derives its counts, or that copy not made)
    early = draw(st.sampled_from([None, "done", "other"]))
    if early:
        lines += [f"jeq %r6, {draw(st.sampled_from([5, 42, 79, 116]))}, {early}"]
        if draw(st.booleans()):
            lines += ["mov %r6, 1"]
    if store:
        lines += [f"stx{size} [%r5{off + 1:+d}], %r0"]
    lines += ["add %r2, %r7" if step_reg else f"add %r2, {step}",
              f"{jump} %r2, %r3, loop", "done:", "exit", "other:", "mov %r0, 7", "exit"]
    mem = draw(st.integers(1, 72))
    budget = draw(st.integers(1, 400) if step == 0 else
                  st.one_of(st.none(), st.integers(1, 400)))
    return "\n".join(lines) + "\n", mem, budget


@given(loop_programs())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_loops_agree_with_the_interpreter(case) -> None:
    text, mem, budget = case
    prog = Program.from_bytes(assemble(text, syntax="ubpf"))
    memory = bytes(np.arange(mem, dtype=np.uint8) * 37 + 5)
    both(prog, memory=memory, budget=budget)


# stack_sieve's inner loop in small: two ways out, to the same place or not, on a
# value that nothing writes between them (i + 1) or on one written after the first
TWO_EXITS = """ldxw %r3, [%r1]
ldxw %r4, [%r1+4]
mov %r2, 0
mov %r0, 0
loop:
mov %r6, %r2
add %r6, 1
mov %r5, %r10
add %r5, -64
add %r5, %r2
stxb [%r5], %r0
ldxb %r7, [%r5]
jge %r6, %r3, {first}
add %r2, 1
add %r0, 3
{clobber}
jlt %r6, %r4, loop
out:
exit
other:
mov %r0, 99
exit
"""


@pytest.mark.parametrize("first,clobber", [("out", ""), ("other", ""), ("out", "mov %r6, 0")],
                         ids=["same place", "elsewhere", "test's register written"])
@pytest.mark.parametrize("a,b", [(5, 9), (9, 5), (7, 7), (1, 1), (64, 64), (70, 80),
                                 (80, 66)])
@pytest.mark.parametrize("budget", [None, 30, 150])
def test_a_loop_with_two_ways_out(first: str, clobber: str, a: int, b: int,
                                  budget: int | None) -> None:
    """The unchecked copy counts only its iterations; on the way out the instructions
    and stack accesses follow from them and from which test left (made again), so each
    way out, at each iteration, and a budget that ends inside the loop or in the
    checked copy (the frame ends at i = 64: past it the guard fails) must give the
    interpreter's count, accesses and r0."""
    text = TWO_EXITS.format(first=first, clobber=clobber)
    prog = Program.from_bytes(assemble(text, syntax="ubpf"))
    ir_text = engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], "prog", optimized=False)
    assert ('%"n4" = alloca' in ir_text) == (not clobber)   # its counts derived, or not
    both(prog, memory=a.to_bytes(4, "little") + b.to_bytes(4, "little"), budget=budget)


def test_derived_counts_leave_the_unchecked_copy_without_counting(bench_progs) -> None:
    """checksum_1500's unchecked loop runs every block each iteration: it counts its
    iterations and nothing else (no budget word, no access counter), the rest made on
    the way out."""
    prog = Program.from_bytes(read_code(bench_progs / "checksum_1500.bpf.o").code)
    text = engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], "prog", optimized=False)
    body = re.split(r"\n[\w.]+:\n", text.split("\nunchecked2:\n", 1)[1], maxsplit=1)[0]
    assert '%"n2"' in body and '%"left"' not in body and '%"g2_0_reads"' not in body


@pytest.mark.parametrize("length,ok", [(64, True), (63, False)])
def test_last_byte_of_the_region(length: int, ok: bool) -> None:
    """The span of all iterations ends exactly at the region's end, or one past it:
    the guard fails and the checked loop faults at the interpreter's iteration."""
    text = "mov %r2, 0\nmov %r0, 0\nl:\nmov %r5, %r1\nadd %r5, %r2\nldxb %r6, [%r5]\n" \
           "add %r0, %r6\nadd %r2, 1\njlt %r2, 64, l\nexit\n"
    got = both(Program.from_bytes(assemble(text, syntax="ubpf")), memory=bytes(length))
    assert (got["error"] is None) == ok


@pytest.mark.parametrize("length,ok", [(64, True), (63, False), (127, True), (126, False)])
def test_register_step_at_the_last_byte(length: int, ok: bool) -> None:
    """A step held in a register (3), the address moving once or twice as fast as the
    exit test's value: the span of all iterations ends at byte 63 (or 126), and one
    byte less memory faults at the interpreter's iteration."""
    twice = length > 64
    text = ("mov %r7, 3\nmov %r2, 0\nmov %r0, 0\nl:\nmov %r5, %r1\nmov %r9, %r2\n"
            + ("lsh %r9, 1\n" if twice else "") + "add %r5, %r9\nldxb %r6, [%r5]\n"
            "add %r0, %r6\nadd %r2, %r7\njlt %r2, 64, l\nexit\n")
    memory = bytes(range(length))
    got = both(Program.from_bytes(assemble(text, syntax="ubpf")), memory=memory)
    assert (got["error"] is None) == ok
    if ok:
        assert got["r0"] == sum(memory[k * (2 if twice else 1)] for k in range(0, 64, 3))


WRAP32 = """lddw %r2, 0xffffffd6
lddw %r3, 0x10000000a
lddw %r8, 0xffffffff00000030
mov %r0, 0
l:
mov32 %r4, %r2
add32 %r4, 1
mov %r5, %r1
add %r5, %r4
add %r5, %r8
ldxb %r6, [%r5]
add %r0, %r6
add %r2, 1
jlt %r2, %r3, l
exit
"""
WRAP64 = """lddw %r2, 0xfffffffffffffff6
lddw %r3, 0xffffffffffffffff
mov %r0, 0
l:
mov %r5, %r1
add %r5, %r2
ldxb %r6, [%r5+12]
add %r0, %r6
add %r2, 4
jlt %r2, %r3, l
exit
"""


@pytest.mark.parametrize("text", [WRAP32, WRAP64], ids=["32-bit sum", "64-bit bound"])
def test_a_value_that_wraps_inside_the_loop(text: str) -> None:
    """The address (a 32-bit sum) or the exit test's value (64 bits, next to 2**64)
    wraps after a few iterations: the guard must not take the iteration count from
    the first few, and the checked loop faults where the interpreter does."""
    got = both(Program.from_bytes(assemble(text, syntax="ubpf")), memory=bytes(64))
    assert got["error"] is not None
