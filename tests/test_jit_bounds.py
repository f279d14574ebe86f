"""Accesses the program's own bounds checks prove (xsim/jit/bounds.py): one guard per
run checks the region of [s, e), the proven accesses go unchecked.

Whatever the guard finds, the RunResult must be the interpreter's: r0, memory, region
access counts, the fault of an access the program's checks do not cover (one byte
short, a check on the wrong side), and the interpreter's own run when the guard fails
(an end past the region: the JIT hands the run over at the guard).
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_jit import both
from xsim.isa import interp as ip
from xsim.isa.asm import assemble
from xsim.jit import bounds, cfg, engine
from xsim.runtime import Program
from xsim.runtime.source import read_code


def proof(code: bytes) -> bounds.Proof:
    prog = Program.from_bytes(code)
    lowered, consts = prog._code, prog._st[ip.C_BASE:]
    fn = cfg.functions(lowered)[0]
    return bounds.prove(fn, lowered, consts, cfg.blocks(fn, lowered))


def accesses(code: bytes) -> set[int]:
    lowered = Program.from_bytes(code)._code
    return {pc for pc in range(len(lowered)) if int(lowered[pc, 0]) < len(cfg.NAMES)
            and cfg.access(lowered, pc) is not None}


def test_every_access_of_pkt_parse_is_proven_by_one_guard(bench_progs) -> None:
    code = read_code(bench_progs / "pkt_parse.bpf.o").code
    p = proof(code)
    assert p.proven == accesses(code) and len(p.proven) == 12
    assert list(p.guards) == [2] and p.guards[2].add_s    # [r1, r1 + r2): a length
    assert p.perms == {2: int(ip.PERM_R)}


def test_the_guard_is_in_the_ir(bench_progs) -> None:
    prog = Program.from_bytes(read_code(bench_progs / "pkt_parse.bpf.o").code)
    text = engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], "prog", optimized=False)
    assert "proved2:" in text and "unproven2:" in text


CHECKED = """mov %r3, %r1
add %r3, 14
mov %r4, %r1
add %r4, %r2
jgt %r3, %r4, drop
ldxh %r0, [%r1+12]
exit
drop:
mov %r0, 1
exit
"""


def test_a_check_proves_only_what_it_covers() -> None:
    ok = assemble(CHECKED)
    assert proof(ok).proven == {5}
    short = assemble(CHECKED.replace("ldxh %r0, [%r1+12]", "ldxh %r0, [%r1+13]"))
    assert proof(short).proven == set()
    wrong_side = assemble(CHECKED.replace("jgt %r3, %r4, drop", "jle %r3, %r4, drop"))
    assert proof(wrong_side).proven == set()
    after_call = assemble(CHECKED.replace("ldxh", "call 5\nldxh"))
    assert proof(after_call).proven == set()


def test_a_guard_over_the_entry_registers_is_made_on_entry() -> None:
    """[r1, r1 + r2) on entry: the check moves to the function's entry (where a loop
    of runs makes it once); when it fails there, the interpreter runs the whole
    function and reports what it finds (here, the program's check passes on a length
    the memory does not have, and the load faults)."""
    code = assemble(CHECKED)
    p = proof(code)
    assert p.at_entry == {5: (1, (1, 2))}
    assert proof(assemble(CHECKED.replace("mov %r4, %r1", "mov %r4, %r1\nadd %r4, 1")
                          )).at_entry == {}                   # the end is not r1 + r2
    prog = Program.from_bytes(code)
    assert both(prog, memory=bytes(range(20)))["r0"] == 0x0d0c
    both(prog, memory=bytes(10))                  # the program's own check drops it
    prog._st[ip.S_INIT_R2] = 100                  # a length past the memory region
    got = both(prog, memory=bytes(10))
    assert got["error"]["message"].startswith("pc 5: invalid read")


@given(st.integers(0, 40), st.integers(0, 255))
@settings(max_examples=60, deadline=None)
def test_a_loaded_end_past_the_region_hands_the_run_over(length: int, first: int) -> None:
    """The end is r1 plus the first byte: past the region, the guard fails and the
    interpreter goes on from the guard; inside it, the JIT runs unchecked."""
    text = ("ldxb %r2, [%r1]\nmov %r4, %r1\nadd %r4, %r2\nmov %r3, %r1\nadd %r3, 20\n"
            "jgt %r3, %r4, drop\nldxw %r0, [%r1+16]\nexit\ndrop:\nmov %r0, 1\nexit\n")
    assert proof(assemble(text)).proven == {6}
    memory = bytes([first]) + bytes(range(1, length))[: max(length - 1, 0)]
    both(Program.from_bytes(assemble(text)), memory=memory[:length])


# -- generated parsers, run on both tiers ---------------------------------------------------
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}


@st.composite
def parsers(draw):
    lines = []
    end = draw(st.sampled_from(["len", "loaded", "shifted"]))
    if end == "loaded":
        lines.append("ldxb %r2, [%r1]")
    elif end == "shifted":
        lines.append(f"add %r2, {draw(st.integers(-3, 3))}")
    lines += ["mov %r9, %r1", "add %r9, %r2", "mov %r0, 0"]
    for k in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["len", "ptr", "read", "read", "var", "store"]))
        n = draw(st.integers(0, 40))
        if kind == "len":
            op = draw(st.sampled_from(["jlt", "jle", "jgt", "jge"]))
            lines.append(f"{op} %r2, {n}, drop")
        elif kind == "ptr":
            op = draw(st.sampled_from(["jgt", "jge", "jlt", "jle"]))
            lines += ["mov %r3, %r1", f"add %r3, {n}"]
            lines.append(f"{op} %r3, %r9, drop" if draw(st.booleans())
                         else f"{op} %r9, %r3, drop")
        elif kind in ("read", "store"):
            size = draw(st.sampled_from(list(SIZES)))
            if kind == "read":
                lines += [f"ldx{size} %r4, [%r1+{n}]", "add %r0, %r4"]
            else:
                lines.append(f"stx{size} [%r1+{n}], %r0")
        else:
            mask = draw(st.sampled_from([3, 7, 12, 60, 255]))
            check = draw(st.integers(0, 12))
            off = draw(st.integers(0, 12))
            lines += [f"ldxb %r5, [%r1+{n}]", f"and %r5, {mask}", "mov %r6, %r1",
                      "add %r6, %r5", "mov %r7, %r6", f"add %r7, {check}",
                      "jgt %r7, %r9, drop", f"ldxh %r4, [%r6+{off}]", "add %r0, %r4"]
    lines += ["exit", "drop:", "mov %r0, 1", "exit"]
    length = draw(st.integers(0, 48))
    budget = draw(st.one_of(st.none(), st.integers(1, 30)))
    return "\n".join(lines) + "\n", length, budget


@given(parsers())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_parsers_agree_with_the_interpreter(case) -> None:
    text, length, budget = case
    prog = Program.from_bytes(assemble(text))
    memory = bytes(np.arange(length, dtype=np.uint8) * 29 + 3)
    both(prog, memory=memory, budget=budget)
