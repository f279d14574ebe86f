"""Every ALU and jump row of the opcode table against a big-integer model of RFC 9669.

The model below is written from the RFC's text (sections 4.1-4.3), not from
the interpreter: Python integers, explicit masking, truncating signed
division.  hypothesis draws operands with a bias to the edges (0, -1,
INT_MIN, shift counts at and past the width).
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from xsim import Program
from xsim.isa import opcodes as oc
from xsim.isa.insn import encode, make
from xsim.isa.opcodes import Field, Kind

M64 = (1 << 64) - 1


def signed(x: int, width: int) -> int:
    x &= (1 << width) - 1
    return x - (1 << width) if x >> (width - 1) else x


def tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def model_alu(op: oc.Op, a: int, b: int) -> int:
    """dst after ``dst op= b`` (b already the 64-bit operand: register or sign-extended imm)."""
    w = op.width
    m = (1 << w) - 1
    a, b = a & m, b & m
    sa, sb = signed(a, w), signed(b, w)
    name = op.operation
    if name == "movsx":
        bits = op.disc_value
        return signed(b, bits) & m
    r = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
        "div": lambda: a // b if b else 0, "mod": lambda: a % b if b else a,
        "sdiv": lambda: tdiv(sa, sb) if sb else 0,
        "smod": lambda: (sa - tdiv(sa, sb) * sb) if sb else a,
        "or": lambda: a | b, "and": lambda: a & b, "xor": lambda: a ^ b,
        "lsh": lambda: a << (b % w), "rsh": lambda: a >> (b % w), "arsh": lambda: sa >> (b % w),
        "mov": lambda: b, "neg": lambda: -a,
    }[name]()
    return r & m


def model_end(op: oc.Op, a: int) -> int:
    bits = op.width
    low = a & ((1 << bits) - 1)
    if op.operation == "le":
        return low
    return int.from_bytes(low.to_bytes(bits // 8, "little"), "big")


def model_cond(op: oc.Op, a: int, b: int) -> bool:
    w = op.width
    m = (1 << w) - 1
    a, b = a & m, b & m
    sa, sb = signed(a, w), signed(b, w)
    return {
        "jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b, "jle": a <= b,
        "jset": bool(a & b), "jsgt": sa > sb, "jsge": sa >= sb, "jslt": sa < sb, "jsle": sa <= sb,
    }[op.operation]


LDDW = oc.BY_KEY[(oc.OPCODE_LDDW, 0)]
EXIT = oc.BY_NAME["exit"]
MOV64_X = oc.BY_KEY[(oc.ALU64 | oc.X | oc.ALU_OPS["mov"][0], 0)]
MOV64_K = oc.BY_KEY[(oc.ALU64 | oc.K | oc.ALU_OPS["mov"][0], 0)]


def load64(reg: int, value: int) -> list:
    value &= M64
    lo, hi = value & 0xFFFFFFFF, value >> 32
    return [make(LDDW, dst=reg, imm=signed(lo, 32), next_imm=signed(hi, 32))]


def run_code(insns: list) -> int:
    res = Program.from_bytes(encode(insns)).run()
    res.raise_for_error()
    return res.r0


EDGES = [0, 1, 2, 7, 31, 32, 33, 63, 64, 65, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
         (1 << 63) - 1, 1 << 63, M64, M64 - 1]
u64s = hs.one_of(hs.sampled_from(EDGES), hs.integers(0, M64))
s32s = hs.one_of(hs.sampled_from([0, 1, -1, 31, 32, 63, 64, -(1 << 31), (1 << 31) - 1]),
                 hs.integers(-(1 << 31), (1 << 31) - 1))

ALU_ROWS = [op for op in oc.OPS if op.kind is Kind.ALU]
END_ROWS = [op for op in oc.OPS if op.kind is Kind.END]
JCOND_ROWS = [op for op in oc.OPS if op.kind is Kind.JCOND]


@pytest.mark.parametrize("op", ALU_ROWS, ids=lambda op: f"{op.name}-{op.opcode:#04x}")
@settings(max_examples=40, deadline=None)
@given(a=u64s, b=u64s, imm=s32s)
def test_alu(op: oc.Op, a: int, b: int, imm: int) -> None:
    if op.imm is Field.VALUE:      # K form: the operand is the sign-extended imm
        body = load64(1, a) + [make(op, dst=1, imm=imm)]
        operand = imm & M64
    elif op.src is Field.READ:
        body = load64(1, a) + load64(2, b) + [make(op, dst=1, src=2)]
        operand = b
    else:                          # neg: no operand
        body, operand = load64(1, a) + [make(op, dst=1)], 0
    got = run_code(body + [make(MOV64_X, dst=0, src=1), make(EXIT)])
    assert got == model_alu(op, a, operand), (op.name, hex(a), hex(operand))


@pytest.mark.parametrize("op", END_ROWS, ids=lambda op: op.name)
@given(a=u64s)
@settings(max_examples=40, deadline=None)
def test_byteswap(op: oc.Op, a: int) -> None:
    got = run_code(load64(0, a) + [make(op, dst=0), make(EXIT)])
    assert got == model_end(op, a)


@pytest.mark.parametrize("op", JCOND_ROWS, ids=lambda op: f"{op.name}-{op.opcode:#04x}")
@settings(max_examples=40, deadline=None)
@given(a=u64s, b=u64s, imm=s32s)
def test_jump(op: oc.Op, a: int, b: int, imm: int) -> None:
    # r0 = 1; if cond goto +1; r0 = 0; exit  -> r0 says whether the jump was taken
    if op.imm is Field.VALUE:
        setup, jump, operand = load64(1, a), make(op, dst=1, off=1, imm=imm), imm & M64
    else:
        setup, jump, operand = load64(1, a) + load64(2, b), make(op, dst=1, src=2, off=1), b
    got = run_code(setup + [make(MOV64_K, dst=0, imm=1), jump, make(MOV64_K, dst=0, imm=0),
                            make(EXIT)])
    assert got == int(model_cond(op, a, operand))
