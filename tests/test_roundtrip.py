"""assemble(disassemble(code)) == code, in both syntaxes, over the whole opcode table.

Three corpora: random valid programs drawn from opcodes.OPS (hypothesis),
every row of OPS at the edges of its fields, and the `-- asm` section of
every bpf_conformance test file (asm -> bytes -> asm -> bytes).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import conformance_dir
from xsim.conformance.datafile import read_data_file
from xsim.isa import opcodes as oc
from xsim.isa.asm import assemble
from xsim.isa.disasm import SYNTAXES, disassemble
from xsim.isa.insn import NUM_REGS, Insn, decode, encode, make
from xsim.isa.opcodes import Field, Kind, Op

EXIT = next(op for op in oc.OPS if op.kind is Kind.EXIT)
S16 = (-(1 << 15), (1 << 15) - 1)
S32 = (-(1 << 31), (1 << 31) - 1)


def build(rows: list[Op], choose) -> bytes:
    """A program of ``rows`` then exit; ``choose(op, field, use, starts, pc)`` fills each
    field the row uses (make() fills the discriminating one)."""
    rows = rows + [EXIT]
    starts, pc = [], 0
    for op in rows:
        starts.append(pc)
        pc += 2 if op.kind is Kind.LDDW else 1
    insns: list[Insn] = []
    for op, pc in zip(rows, starts):
        fields = {name: choose(op, name, getattr(op, name), starts, pc)
                  for name in ("dst", "src", "off", "imm")
                  if getattr(op, name) not in (Field.UNUSED, Field.DISC)}
        if op.kind is Kind.LDDW:
            fields["next_imm"] = choose(op, "next_imm", Field.VALUE, starts, pc)
        insns.append(make(op, pc, **fields))
    code = encode(insns)
    decode(code)          # the generator only makes programs that load
    return code


def check(code: bytes) -> None:
    for syntax in SYNTAXES:
        text = disassemble(code, syntax)
        assert assemble(text, syntax).hex(" ") == code.hex(" "), (syntax, text)
        assert assemble(text) == code, ("auto", syntax, text)


@st.composite
def programs(draw) -> bytes:
    rows = draw(st.lists(st.sampled_from(oc.OPS), min_size=1, max_size=6))

    def choose(op: Op, name: str, use: Field, starts: list[int], pc: int) -> int:
        if use is Field.READ:
            return draw(st.integers(0, NUM_REGS - 1))
        if use is Field.WRITE:
            return draw(st.integers(0, NUM_REGS - 2))
        if use is Field.TARGET:
            return draw(st.sampled_from(starts)) - pc - 1
        lo, hi = S16 if name == "off" else S32
        return draw(st.integers(lo, hi))

    return build(rows, choose)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_round_trip(code: bytes) -> None:
    check(code)


def edge(high: bool):
    """Every field at one end of its range: registers 0 or r10/r9, values min or max,
    targets the first or the last instruction."""
    def choose(op: Op, name: str, use: Field, starts: list[int], pc: int) -> int:
        if use is Field.READ:
            return NUM_REGS - 1 if high else 0
        if use is Field.WRITE:
            return NUM_REGS - 2 if high else 0
        if use is Field.TARGET:
            return (starts[-1] if high else starts[0]) - pc - 1
        lo, hi = S16 if name == "off" else S32
        return hi if high else lo
    return choose


@pytest.mark.parametrize("op", oc.OPS,
                         ids=[f"{op.name.replace(' ', '_')}-{op.opcode:02x}-{op.disc_value}"
                              for op in oc.OPS])
@pytest.mark.parametrize("high", [False, True], ids=["low", "high"])
def test_every_row_round_trips(op: Op, high: bool) -> None:
    check(build([op], edge(high)))


# -- the bpf_conformance corpus ----------------------------------------------------------

CONFORMANCE = conformance_dir()
DATA_FILES = sorted(CONFORMANCE.glob("*.data"))


@pytest.mark.skipif(not DATA_FILES, reason=f"no bpf_conformance files in {CONFORMANCE} "
                                           "(set XSIM_SHARED_DIR)")
@pytest.mark.parametrize("path", DATA_FILES or [None], ids=[p.name for p in DATA_FILES] or ["none"])
def test_conformance_asm_round_trips(path: Path) -> None:
    text = read_data_file(path).asm
    if not text or not text.strip():
        pytest.skip(f"{path.name} has no asm section")
    code = assemble(text, "ubpf")
    assert assemble(text) == code          # 'auto' recognises the suite's syntax
    check(code)
