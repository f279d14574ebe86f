"""The assembler against encodings worked out by hand from RFC 9669, and its errors.

Each expected encoding is written as the RFC lays an instruction out:
opcode, dst | src << 4, off (16-bit LE), imm (32-bit LE); an LD_IMM64 has a
second slot with the upper half in its imm.
"""
from __future__ import annotations

import re
import struct

import pytest

from xsim.errors import AsmError
from xsim.isa.asm import assemble, assemble_insns, detect_syntax


def slot(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


EXIT = slot(0x95)

# (uBPF text, llvm text, encoding). None: that syntax has no such spelling in the table.
CASES = [
    ("mov32 %r0, 1", "w0 = 1", slot(0xB4, 0, imm=1)),
    ("mov %r0, 1", "r0 = 1", slot(0xB7, 0, imm=1)),
    ("mov %r1, %r2", "r1 = r2", slot(0xBF, 1, 2)),
    ("add %r1, %r2", "r1 += r2", slot(0x0F, 1, 2)),
    ("add64 %r1, %r2", None, slot(0x0F, 1, 2)),
    ("add32 %r1, 2", "w1 += 2", slot(0x04, 1, imm=2)),
    ("sub32 %r1, %r2", "w1 -= w2", slot(0x1C, 1, 2)),
    ("neg %r0", "r0 = -r0", slot(0x87, 0)),
    ("neg32 %r3", "w3 = -w3", slot(0x84, 3)),
    ("sdiv32 %r1, %r2", "w1 s/= w2", slot(0x3C, 1, 2, off=1)),
    ("smod %r1, 3", "r1 s%= 3", slot(0x97, 1, off=1, imm=3)),
    ("div %r1, 3", "r1 /= 3", slot(0x37, 1, imm=3)),
    ("arsh %r0, 3", "r0 s>>= 3", slot(0xC7, 0, imm=3)),
    ("lsh32 %r0, %r9", "w0 <<= w9", slot(0x6C, 0, 9)),
    ("movsx832 %r0, %r1", "w0 = (s8)w1", slot(0xBC, 0, 1, off=8)),
    ("movsx1664 %r0, %r1", "r0 = (s16)r1", slot(0xBF, 0, 1, off=16)),
    ("movsx3264 %r0, %r1", "r0 = (s32)r1", slot(0xBF, 0, 1, off=32)),
    ("be16 %r4", "r4 = be16 r4", slot(0xDC, 4, imm=16)),
    ("le32 %r4", "r4 = le32 r4", slot(0xD4, 4, imm=32)),
    ("bswap64 %r4", "r4 = bswap64 r4", slot(0xD7, 4, imm=64)),
    ("swap16 %r4", None, slot(0xD7, 4, imm=16)),
    ("ldxw %r0, [%r1+4]", "r0 = *(u32 *)(r1 + 4)", slot(0x61, 0, 1, off=4)),
    (None, "r0 = *(u32 *)(r1 + 0x4)", slot(0x61, 0, 1, off=4)),
    (None, "w0 = *(u32 *)(r1 + 4)", slot(0x61, 0, 1, off=4)),
    ("ldxdw %r0, [%r1]", "r0 = *(u64 *)(r1 + 0)", slot(0x79, 0, 1)),
    ("ldxsh %r0, [%r1-2]", "r0 = *(s16 *)(r1 - 2)", slot(0x89, 0, 1, off=-2)),
    ("stxdw [%r10-8], %r1", "*(u64 *)(r10 - 8) = r1", slot(0x7B, 10, 1, off=-8)),
    ("stxb [%r4], %r3", "*(u8 *)(r4 + 0) = r3", slot(0x73, 4, 3)),
    ("stw [%r10-8], 7", "*(u32 *)(r10 - 8) = 7", slot(0x62, 10, off=-8, imm=7)),
    ("lock add [%r10-8], %r1", "lock *(u64 *)(r10 - 8) += r1", slot(0xDB, 10, 1, -8, 0x00)),
    ("lock xor32 [%r10-4], %r1", "lock *(u32 *)(r10 - 4) ^= r1", slot(0xC3, 10, 1, -4, 0xA0)),
    ("lock fetch add [%r10-8], %r1", "r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)",
     slot(0xDB, 10, 1, -8, 0x01)),
    ("lock fetch or32 [%r10-4], %r2", "w2 = atomic_fetch_or((u32 *)(r10 - 4), w2)",
     slot(0xC3, 10, 2, -4, 0x41)),
    ("lock xchg [%r10-8], %r1", "r1 = xchg_64(r10 - 8, r1)", slot(0xDB, 10, 1, -8, 0xE1)),
    ("lock xchg32 [%r10-4], %r1", "w1 = xchg32_32(r10 - 4, w1)", slot(0xC3, 10, 1, -4, 0xE1)),
    ("lock cmpxchg [%r10-8], %r1", "r0 = cmpxchg_64(r10 - 8, r0, r1)",
     slot(0xDB, 10, 1, -8, 0xF1)),
    ("lock cmpxchg32 [%r10-8], %r1", "w0 = cmpxchg32_32(r10 - 8, w0, w1)",
     slot(0xC3, 10, 1, -8, 0xF1)),
    ("jeq %r1, 0, +2", "if r1 == 0 goto +2", slot(0x15, 1, off=2)),
    ("jgt %r1, 5, +2", "if r1 > 0x5 goto +2 <prog+0x18>", slot(0x25, 1, off=2, imm=5)),
    ("jsgt32 %r1, %r2, -3", "if w1 s> w2 goto -3", slot(0x6E, 1, 2, off=-3)),
    ("jset %r1, %r2, +0", "if r1 & r2 goto +0", slot(0x4D, 1, 2)),
    ("jslt32 %r1, -1, +1", "if w1 s< -1 goto +1", slot(0xC6, 1, off=1, imm=-1)),
    ("ja +3", "goto +3", slot(0x05, off=3)),
    ("ja32 +3", "gotol +3", slot(0x06, imm=3)),
    ("call 5", "call 5", slot(0x85, imm=5)),
    ("call local +3", "call local +3", slot(0x85, src=1, imm=3)),
    ("call kfunc 1234", "call kfunc 1234", slot(0x85, src=2, imm=1234)),
    ("call kfunc 1234, 1", "call kfunc 1234, 1", slot(0x85, src=2, off=1, imm=1234)),
    ("call runtime 7", None, slot(0x85, src=2, imm=7)),
    ("call %r2", "callx r2", slot(0x8D, 2)),
    ("callx %r2", None, slot(0x8D, 2)),
    ("exit", "exit", EXIT),
    ("lddw %r0, 0x123456789", "r0 = 0x123456789 ll",
     slot(0x18, 0, imm=0x23456789) + slot(0, imm=1)),
    ("lddw %r1, 0xffffffffffffffff", "r1 = -1 ll", slot(0x18, 1, imm=-1) + slot(0, imm=-1)),
    ("lddw %r1, map_fd 5", "r1 = map_fd 5 ll", slot(0x18, 1, 1, imm=5) + slot(0)),
    ("lddw %r1, map_value 5, 8", "r1 = map_value 5, 8 ll",
     slot(0x18, 1, 2, imm=5) + slot(0, imm=8)),
    ("lddw %r1, btf_id 77", "r1 = btf_id 77 ll", slot(0x18, 1, 3, imm=77) + slot(0)),
    ("lddw %r1, func +3", "r1 = func +3 ll", slot(0x18, 1, 4, imm=3) + slot(0)),
    ("lddw %r1, map_idx 0", "r1 = map_idx 0 ll", slot(0x18, 1, 5) + slot(0)),
    ("lddw %r1, map_idx_value 2, 16", "r1 = map_idx_value 2, 16 ll",
     slot(0x18, 1, 6, imm=2) + slot(0, imm=16)),
    ("ldabsw 12", "r0 = *(u32 *)skb[12]", slot(0x20, imm=12)),
    ("ldabsb -4", "r0 = *(u8 *)skb[-4]", slot(0x30, imm=-4)),
    ("ldindh %r1, 4", "r0 = *(u16 *)skb[r1 + 4]", slot(0x48, src=1, imm=4)),
    ("ldindw %r1, 0", "r0 = *(u32 *)skb[r1]", slot(0x40, src=1)),
    # a 32-bit imm in hex is the bit pattern; in decimal a signed value
    ("mov32 %r0, 0xffffffff", "w0 = 0xffffffff", slot(0xB4, 0, imm=-1)),
    ("mov %r0, -2147483648", "r0 = -2147483648", slot(0xB7, 0, imm=-(1 << 31))),
    ("jeq %r1, 0x80000000, +1", "if r1 == 0x80000000 goto +1",
     slot(0x15, 1, off=1, imm=-(1 << 31))),
    ("ldxb %r0, [%r1+0xffff]", None, slot(0x71, 0, 1, off=-1)),
]


@pytest.mark.parametrize("ubpf, llvm, code", CASES, ids=[c[0] or c[1] for c in CASES])
def test_encoding(ubpf: str | None, llvm: str | None, code: bytes) -> None:
    """Both syntaxes give the RFC 9669 encoding, and 'auto' recognises which one it is."""
    for syntax, text in (("ubpf", ubpf), ("llvm", llvm)):
        if text is None:
            continue
        assert assemble(text, syntax).hex(" ") == code.hex(" "), (syntax, text)
        assert assemble(text).hex(" ") == code.hex(" "), ("auto", text)


def test_labels_resolve_to_relative_targets() -> None:
    """A label is the slot of the next instruction; lddw takes two slots."""
    text = """
        jeq %r1, 0, out      # forward: off = 2 - 0 - 1
        lddw %r0, 1
    out:
        ja32 top             # back to 0: imm = 0 - 3 - 1
    top2: call local top2    # a label may share the line of its instruction
    top:  exit
    """
    insns = assemble_insns(text, "ubpf")
    assert [(i.pc, i.off, i.imm) for i in insns] == [(0, 2, 0), (1, 0, 1), (3, 0, 1), (4, 0, -1),
                                                     (5, 0, 0)]


def test_label_func_lddw_is_relative() -> None:
    """A subprogram address is pc + 1 + imm from the lddw's first slot, as the kernel's
    add_subprog(env, i + insn->imm + 1) reads it (not from the end of the two slots)."""
    insns = assemble_insns("lddw %r1, func f\nexit\nf: exit", "ubpf")
    assert insns[0].imm == 3 - 0 - 1


def test_implicit_exit_label() -> None:
    """bpf_conformance programs jump to 'exit' without defining it: the first exit."""
    code = assemble("ja exit\nmov %r0, 1\nexit\nexit", "ubpf")
    assert code[:8] == slot(0x05, off=1)


def test_explicit_exit_label_wins() -> None:
    code = assemble("ja exit\nexit\nmov %r0, 1\nexit:\nexit", "ubpf")
    assert code[:8] == slot(0x05, off=2)


def test_llvm_objdump_listing_assembles() -> None:
    """Headers, the pc column and the <sym+0x..> annotations of llvm-objdump are ignored."""
    text = """0000000000000000 <prog>:
           0:\tr3 = 0
           1:\tif r2 == 99999 goto +1 <prog+0x18>
           2:\tgoto -3 <prog>
           3:\texit
    """
    assert assemble(text) == (slot(0xB7, 3) + slot(0x15, 2, off=1, imm=99999)
                              + slot(0x05, off=-3) + EXIT)


def test_llvm_labels_and_comments() -> None:
    text = "loop: r1 += -1 // count down\nif r1 != 0 goto loop ; again\nexit # done"
    assert assemble(text, "llvm") == slot(0x07, 1, imm=-1) + slot(0x55, 1, off=-2) + EXIT


@pytest.mark.parametrize("text, syntax", [
    ("mov %r0, 1", "ubpf"), ("r0 = 1", "llvm"), ("exit", "ubpf"), ("call 1\nexit", "ubpf"),
    ("call 1\nlock *(u64 *)(r1 + 0) += r2", "llvm"), ("lock add [%r1], %r2", "ubpf"),
    ("# comment\nstart:\n  ja +0", "ubpf"), ("start:\n  goto +0", "llvm"),
    ("callx %r1", "ubpf"), ("callx r1", "llvm"), ("*(u8 *)(r1 + 0) = 1", "llvm"),
])
def test_detect_syntax(text: str, syntax: str) -> None:
    assert detect_syntax(text) == syntax


def test_unknown_syntax_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="unknown syntax 'gas'"):
        assemble("exit", "gas")


# -- errors: each names the line, says why, and keeps the text -----------------------

ERRORS = [
    ("ubpf", "exit\nfoo %r0, 1", 2, r"unknown mnemonic 'foo'"),
    ("ubpf", "lock frob [%r1], %r2", 1, r"unknown mnemonic 'lock frob'"),
    ("ubpf", "lddw map_fd %r1, 5", 1, r"bad register 'map_fd %r1'"),
    ("llvm", "r0 = 1\nr0 ?= 1", 2, r"unknown operator '\?='"),
    ("llvm", "frob r0", 1, r"unknown instruction 'frob r0'"),
    ("llvm", "w1 = (s32)w2", 1, r"unknown sign extension \(s32\)"),
    ("ubpf", "mov %r11, 1", 1, r"bad register %r11: the registers are r0\.\.r10"),
    ("ubpf", "mov %x1, 1", 1, r"bad register '%x1': expected %r0\.\.%r10"),
    ("ubpf", "\n\nmov %r10, 1", 3, r"bad register r10: mov writes its dst and r10 is the "
                                   r"read-only frame pointer"),
    ("ubpf", "ldxw %r10, [%r1]", 1, r"bad register r10: ldxw writes its dst"),
    ("llvm", "r11 = 1", 1, r"bad register r11"),
    ("llvm", "r10 = 1", 1, r"bad register r10: mov writes its dst"),
    ("llvm", "r1 += w2", 1, r"mixed register widths: w2 in a 64-bit instruction"),
    ("llvm", "r1 = *(u32 *)(w1 + 0)", 1, r"bad address 'w1 \+ 0'"),
    ("ubpf", "mov %r0, 0x100000000", 1, r"imm 0x100000000 is out of range: hex takes "
                                        r"0\.\.0xffffffff"),
    ("ubpf", "mov %r0, 2147483648", 1, r"imm 2147483648 is out of range "
                                       r"-2147483648\.\.2147483647 \(signed 32-bit\)"),
    ("llvm", "exit\nw0 = -2147483649", 2, r"imm -2147483649 is out of range"),
    ("ubpf", "ldxw %r0, [%r1+32768]", 1, r"offset \+32768 is out of range -32768\.\.32767"),
    ("llvm", "*(u8 *)(r1 + 0x10000) = 1", 1, r"offset \+0x10000 is out of range: hex takes "
                                             r"0\.\.0xffff"),
    ("ubpf", "jeq %r1, 0, +32768", 1, r"jump offset \+32768 is out of range"),
    ("ubpf", "lddw %r0, 0x10000000000000000", 1, r"64-bit immediate .* is out of range"),
    ("ubpf", "mov %r0, one", 1, r"expected a number for the imm, got 'one'"),
    ("ubpf", "exit\nja nowhere", 2, r"undefined label 'nowhere'"),
    ("llvm", "goto nowhere\nexit", 1, r"undefined label 'nowhere'"),
    ("ubpf", "ja +1\n*bad", 2, r"unknown mnemonic '\*bad'"),
    ("ubpf", "jeq %r1, 0, (x)", 1, r"bad jump target '\(x\)'"),
    ("ubpf", "a:\nexit\na:\nexit", 3, r"duplicate label 'a' \(first defined on line 1\)"),
    ("llvm", "a: exit\n a: exit", 2, r"duplicate label 'a'"),
    ("ubpf", "mov %r0", 1, r"mov takes 2 operands, got 1"),
    ("ubpf", "exit %r0", 1, r"exit takes 0 operands, got 1"),
    ("ubpf", "neg %r0, 1", 1, r"neg takes 1 operand, got 2"),
    ("ubpf", "jeq %r1, 0", 1, r"jeq takes 3 operands, got 2"),
    ("ubpf", "call kfunc 1, 2, 3", 1, r"call kfunc takes 1 or 2 operands, got 3"),
    ("ubpf", "lddw %r0, 1, 2", 1, r"lddw takes 2 operands, got 3"),
    ("ubpf", "ldxw %r0, %r1", 1, r"bad memory operand '%r1'"),
    ("llvm", "r2 = atomic_fetch_add((u64 *)(r10 - 8), r1)", 1,
     r"atomic_fetch_add returns into its value register"),
    ("llvm", "r1 = cmpxchg_64(r10 - 8, r0, r1)", 1, r"cmpxchg_64 compares with and writes r0"),
    ("llvm", "r1 = -r2", 1, r"negation writes its own register"),
    ("llvm", "r0 = *(u8 *)skb[r1 + 4]\nr1 = *(u8 *)skb[4]", 2, r"legacy packet loads write r0"),
]


@pytest.mark.parametrize("syntax, text, line, reason", ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_errors(syntax: str, text: str, line: int, reason: str) -> None:
    with pytest.raises(AsmError) as info:
        assemble(text, syntax)
    err = info.value
    assert err.line == line
    assert err.text == text.splitlines()[line - 1]
    assert re.match(reason, err.reason), err.reason
    assert str(err).startswith(f"line {line}: {err.reason}")
