"""Load-time checks: every malformed program is a DecodeError naming the pc and bytes."""
from __future__ import annotations

import struct

import pytest

from xsim import DecodeError, Program


def raw(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)


EXIT = raw(0x95)
MOV_R0_1 = raw(0xB7, 0, 0, 0, 1)


@pytest.mark.parametrize("code, pc, reason", [
    (b"", None, "empty program"),
    (MOV_R0_1 + EXIT + b"\x95\x00", 2, "not a multiple of 8"),
    (raw(0xFF) + EXIT, 0, "unknown opcode 0xff"),
    (raw(0xBF, 0, 11) + EXIT, 0, "invalid register r11"),
    (raw(0xB7, 12) + EXIT, 0, "invalid register r12"),
    (raw(0xB7, 10, 0, 0, 1) + EXIT, 0, "r10 is the read-only frame pointer"),
    (raw(0x61, 10, 1, 0) + EXIT, 0, "r10 is the read-only frame pointer"),
    (raw(0x05, off=5) + EXIT, 0, "jump target 6 is outside the program"),
    (raw(0x15, 1, 0, -2, 0) + EXIT, 0, "jump target -1 is outside the program"),
    (raw(0x85, src=1, imm=7) + EXIT, 0, "call target 8 is outside the program"),
    (raw(0x05, off=1) + raw(0x18, 0, 0, 0, 1) + raw(0, imm=2) + EXIT, 0, "middle of an lddw"),
    (MOV_R0_1 + raw(0x18, 0, 0, 0, 1), 1, "truncated"),
    (raw(0x18, 0, 0, 0, 1) + raw(0x07, imm=2) + EXIT, 1, "second slot"),
    (MOV_R0_1, 0, "fall through past the end"),
    (MOV_R0_1 + raw(0x15, 1, 0, -2, 0), 1, "fall through past the end"),
    (raw(0xB7, 0, 1, 0, 1) + EXIT, 0, "reserved field src must be 0"),
    (raw(0x0F, 0, 1, 0, 5) + EXIT, 0, "reserved field imm must be 0"),
    (raw(0x95, 0, 0, 1) , 0, "reserved field off must be 0"),
    (raw(0x3F, 0, 1, 2) + EXIT, 0, "no instruction with off=0x2"),
    (raw(0xDB, 10, 1, -8, 0x02) + EXIT, 0, "no instruction with imm=0x2"),
    (raw(0xDC, 0, 0, 0, 8) + EXIT, 0, "no instruction with imm=0x8"),
    (raw(0x18, 1, 7, 0, 1) + raw(0) + EXIT, 0, "no instruction with src=0x7"),
    (raw(0x85, src=3, imm=1) + EXIT, 0, "no instruction with src=0x3"),
])
def test_decode_errors(code: bytes, pc: int | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        Program.from_bytes(code)
    err = info.value
    assert reason in str(err)
    assert err.pc == pc
    if pc is not None and len(code) >= 8 * (pc + 1):
        assert err.raw  # the offending bytes are part of the error


def test_error_message_names_pc_and_bytes() -> None:
    with pytest.raises(DecodeError, match=r"^pc 1: unknown opcode 0xfe \(bytes fe 00 00 00 00 00 00 00\)$"):
        Program.from_bytes(MOV_R0_1 + raw(0xFE) + EXIT)


def test_valid_lddw_and_jump_over_it() -> None:
    code = raw(0x05, off=2) + raw(0x18, 0, 0, 0, 1) + raw(0, imm=2) + MOV_R0_1 + EXIT
    assert Program.from_bytes(code).run().r0 == 1
