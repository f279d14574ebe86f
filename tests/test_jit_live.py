"""Register liveness for the JIT's handoffs (xsim/jit/live.py): a handoff writes to
``st`` only the registers the interpreter will read from there on, and the run must
still be the interpreter's whatever the budget."""
from __future__ import annotations

import re

import pytest

from test_jit import both
from xsim.isa import interp as ip
from xsim.isa.asm import assemble
from xsim.jit import cfg, engine, live
from xsim.runtime import Program
from xsim.runtime.source import read_code


def liveness(prog: Program) -> live.Liveness:
    (fn,) = cfg.functions(prog._code)
    return live.Liveness(fn, cfg.blocks(fn, prog._code), prog._code, top=True)


def test_sieve_checkpoint_after_the_marking_loop(bench_progs) -> None:
    """At pc 29 (i += 1, after the inner loop) the inner loop's index r9, its address
    r6 and the array's base r8 are written again before any read: not passed on."""
    prog = Program.from_bytes(read_code(bench_progs / "stack_sieve.bpf.o").code)
    lv = liveness(prog)
    assert lv.at(29) == {0, 1, 2, 3, 4, 5, 7, 10}
    assert lv.at(0) == {1, 10}          # n is read through r1, and the frame through r10


def test_calls_read_every_register() -> None:
    prog = Program.from_bytes(assemble("mov %r6, 1\ncall 5\nexit\n", syntax="ubpf"))
    assert live.effect(prog._code, 1, True) == (set(live.ALL), set())
    assert liveness(prog).at(0) >= {1, 2, 3, 4, 5, 7, 8, 9}


LOOP = """mov %r9, 12345
mov %r0, 0
mov %r2, 0
l:
add %r0, %r2
mov %r9, %r2
add %r9, 1
mov %r2, %r9
jlt %r2, 20, l
exit
"""


def test_a_handoff_passes_on_what_is_read() -> None:
    """r9 is written before it is read in every iteration: the checkpoint's handoff at
    the loop's head leaves it out, r0 and r2 it writes."""
    prog = Program.from_bytes(assemble(LOOP, syntax="ubpf"))
    text = engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], "prog", optimized=False)
    stub = re.split(r"\n[\w.]+:\n", text.split("\nhandoff3:\n", 1)[1], maxsplit=1)[0]
    assert '%"r0"' in stub and '%"r2"' in stub and '%"r9"' not in stub


@pytest.mark.parametrize("budget", [1, 3, 4, 9, 10, 40, 87, 88, 200])
def test_runs_handed_over_anywhere_agree(budget: int) -> None:
    both(Program.from_bytes(assemble(LOOP, syntax="ubpf")), budget=budget, repeat=2)


def test_a_stop_right_after_a_handoff_reports_r0() -> None:
    """A guard that fails hands over at the store through r10 + 0 (one byte past the
    frame), which faults at once: r0, dead by the program's own reads (pc 5 writes it),
    is what the fault reports, so the handoff passes it on (a generated program found
    this)."""
    text = ("mov %r0, 1\nldxsw %r8, [%r1]\njge %r8, 1, +1\nstxb [%r1], %r9\n"
            "stxb [%r10], %r6\nmov %r0, 0\nexit\n")
    got = both(Program.from_bytes(assemble(text, syntax="ubpf")),
               memory=bytes([0x80]) + bytes(15), budget=42)
    assert got["error"] is not None and got["r0"] == 1
