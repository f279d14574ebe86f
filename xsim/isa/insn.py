"""Instructions: the 8-byte encoding, decoding with every load-time check, encoding.

Encoding (RFC 9669 section 3, little-endian)::

    byte 0      opcode
    byte 1      dst (low nibble) | src (high nibble)
    bytes 2-3   off, signed 16-bit
    bytes 4-7   imm, signed 32-bit

LD_IMM64 takes two slots; the second has opcode 0, no registers, no offset,
and the upper 32 bits of the value in its imm.  :func:`decode` turns bytes
into :class:`Insn` rows (one per instruction, so an LD_IMM64 is one Insn at
the pc of its first slot) and refuses anything the kernel or RFC 9669 would
refuse with a :class:`~xsim.errors.DecodeError` naming the pc and the bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DecodeError
from . import opcodes as oc
from .opcodes import Field, Kind, Op

INSN_SIZE = 8
_FMT = struct.Struct("<BBhi")
#: The kernel's BPF_COMPLEXITY_LIMIT_INSNS is about instructions processed; this is
#: the program size limit of an unprivileged-free load (BPF_MAXINSNS * 1000).
MAX_INSNS = 1_000_000
NUM_REGS = 11


@dataclass(frozen=True)
class Insn:
    """One decoded instruction at slot ``pc``; ``next_imm`` is LD_IMM64's second half."""

    op: Op
    pc: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    next_imm: int = 0

    @property
    def slots(self) -> int:
        return 2 if self.op.kind is Kind.LDDW else 1

    @property
    def value(self) -> int:
        """LD_IMM64's 64-bit immediate (unsigned)."""
        return ((self.next_imm & 0xFFFFFFFF) << 32) | (self.imm & 0xFFFFFFFF)

    @property
    def target(self) -> int | None:
        """Absolute slot a jump or local call goes to, else None."""
        if self.op.off is Field.TARGET:
            return self.pc + 1 + self.off
        if self.op.imm is Field.TARGET:
            return self.pc + 1 + self.imm
        return None

    @property
    def mem_base(self) -> int | None:
        """The register a load, store or atomic takes its address from, else None."""
        kind = self.op.kind
        if kind is Kind.LDX:
            return self.src
        if kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
            return self.dst
        return None

    def encode(self) -> bytes:
        out = _FMT.pack(self.op.opcode, (self.src << 4) | self.dst, self.off, self.imm)
        if self.op.kind is Kind.LDDW:
            out += _FMT.pack(0, 0, 0, self.next_imm)
        return out


def make(op: Op, pc: int = 0, *, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
         next_imm: int = 0) -> Insn:
    """Build an Insn, filling the discriminating field from the row."""
    if op.disc == "off":
        off = op.disc_value
    elif op.disc == "imm":
        imm = op.disc_value
    elif op.disc == "src":
        src = op.disc_value
    return Insn(op, pc, dst, src, off, imm, next_imm)


def encode(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def split_raw(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """Bytes -> (opcode, dst, src, off, imm) per slot; length must be a multiple of 8."""
    if len(code) % INSN_SIZE:
        raise DecodeError(f"program length {len(code)} is not a multiple of {INSN_SIZE} "
                          "bytes", pc=len(code) // INSN_SIZE, raw=code[-(len(code) % INSN_SIZE):])
    out = []
    for i in range(0, len(code), INSN_SIZE):
        opcode, regs, off, imm = _FMT.unpack_from(code, i)
        out.append((opcode, regs & 0x0F, regs >> 4, off, imm))
    return out


def _check_fields(op: Op, pc: int, raw: bytes, dst: int, src: int, off: int, imm: int) -> None:
    for name, use, value in (("dst", op.dst, dst), ("src", op.src, src),
                             ("off", op.off, off), ("imm", op.imm, imm)):
        if use is Field.UNUSED and value != 0:
            raise DecodeError(f"{op.name}: reserved field {name} must be 0, is {value}", pc, raw)
        if use is Field.READ and value >= NUM_REGS:
            raise DecodeError(f"{op.name}: invalid register r{value} in {name}", pc, raw)
        if use is Field.WRITE:
            if value == 10:
                raise DecodeError(f"{op.name}: r10 is the read-only frame pointer", pc, raw)
            if value >= NUM_REGS:
                raise DecodeError(f"{op.name}: invalid register r{value} in {name}", pc, raw)


def decode(code: bytes) -> list[Insn]:
    """Decode and check a whole program; see the module docstring for the rules."""
    code = bytes(code)
    slots = split_raw(code)
    if not slots:
        raise DecodeError("empty program: no instructions")
    if len(slots) > MAX_INSNS:
        raise DecodeError(f"program has {len(slots)} instructions, more than {MAX_INSNS}")
    insns: list[Insn] = []
    second_half: set[int] = set()
    pc = 0
    while pc < len(slots):
        opcode, dst, src, off, imm = slots[pc]
        raw = code[pc * INSN_SIZE:(pc + 1) * INSN_SIZE]
        op = oc.lookup(opcode, src, off, imm)
        if op is None:
            raise DecodeError(_unknown(opcode, src, off, imm), pc, raw)
        _check_fields(op, pc, raw, dst, src, off, imm)
        next_imm = 0
        if op.kind is Kind.LDDW:
            if pc + 1 >= len(slots):
                raise DecodeError("lddw: truncated, its second slot is missing", pc, raw)
            o2, d2, s2, f2, next_imm = slots[pc + 1]
            if o2 or d2 or s2 or f2:
                raise DecodeError("lddw: second slot must have opcode, registers and offset 0",
                                  pc + 1, code[(pc + 1) * INSN_SIZE:(pc + 2) * INSN_SIZE])
            second_half.add(pc + 1)
        insns.append(Insn(op, pc, dst, src, off, imm, next_imm))
        pc += 2 if op.kind is Kind.LDDW else 1
    for insn in insns:
        target = insn.target
        if target is None:
            continue
        raw = insn.encode()[:INSN_SIZE]
        what = "call" if insn.op.kind is Kind.CALL else "jump"
        if not 0 <= target < len(slots):
            raise DecodeError(f"{insn.op.name}: {what} target {target} is outside the program "
                              f"(0..{len(slots) - 1})", insn.pc, raw)
        if target in second_half:
            raise DecodeError(f"{insn.op.name}: {what} target {target} is the middle of an "
                              "lddw", insn.pc, raw)
    last = insns[-1]
    if last.op.kind not in (Kind.EXIT, Kind.JA):
        raise DecodeError(f"{last.op.name}: the last instruction can fall through past the "
                          "end of the program (end with exit or ja)", last.pc,
                          last.encode()[:INSN_SIZE])
    return insns


def _unknown(opcode: int, src: int, off: int, imm: int) -> str:
    rows = oc.BY_OPCODE.get(opcode)
    if not rows:
        return f"unknown opcode {opcode:#04x}"
    field = rows[0].disc
    value = {"off": off, "imm": imm, "src": src}[field]
    allowed = ", ".join(f"{op.disc_value:#x} ({op.name})" for op in rows)
    return f"opcode {opcode:#04x} has no instruction with {field}={value:#x} (known: {allowed})"
