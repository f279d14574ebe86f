"""The eBPF opcode table: the single source of truth for every instruction.

One row (:class:`Op`) per distinct instruction of RFC 9669 (ISA v1 to v4):
an opcode byte plus, where several instructions share that byte, the value
of the field that tells them apart (``off`` for sdiv/smod and movsx, ``imm``
for byte swaps and atomics, ``src`` for the kinds of call and of 64-bit
immediate load).  The decoder, encoder, both assemblers, both disassemblers
and the interpreter read these rows; nothing else lists opcodes.

Opcode byte layout (RFC 9669 section 3)::

    ALU/JMP:   | op (4 bits) | source (1 bit) | class (3 bits) |
    LD/ST:     | mode (3 bits) | size (2 bits) | class (3 bits) |

Rows are built from the field constants below rather than typed one by one,
so a new instruction is one entry in one of the small tables.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

# -- instruction classes (RFC 9669 3.1) -----------------------------------
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# -- source bit -------------------------------------------------------------
K, X = 0x00, 0x08

# -- sizes and modes of load/store instructions (RFC 9669 5) ----------------
SIZES = {"w": (0x00, 4), "h": (0x08, 2), "b": (0x10, 1), "dw": (0x18, 8)}
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

#: Interpreter's view of the stack: one frame per call, as in the kernel.
STACK_FRAME_SIZE = 512
#: The kernel's MAX_CALL_FRAMES: the main program plus seven nested calls.
MAX_CALL_FRAMES = 8

# ALU operations: name -> (code, llvm operator). neg, end and movsx are extra rows.
ALU_OPS = {
    "add": (0x00, "+="), "sub": (0x10, "-="), "mul": (0x20, "*="), "div": (0x30, "/="),
    "or": (0x40, "|="), "and": (0x50, "&="), "lsh": (0x60, "<<="), "rsh": (0x70, ">>="),
    "mod": (0x90, "%="), "xor": (0xA0, "^="), "mov": (0xB0, "="), "arsh": (0xC0, "s>>="),
}
ALU_NEG, ALU_END = 0x80, 0xD0
# Signed division and modulo: div/mod with offset 1 (ISA v4).
SIGNED_ALU = {"sdiv": ("div", "s/="), "smod": ("mod", "s%=")}
MUL_DIV_GROUP = ("mul", "div", "mod", "sdiv", "smod")

# Conditional jumps: name -> (code, llvm operator, ISA version of the 64-bit form).
JMP_CONDS = {
    "jeq": (0x10, "==", 1), "jgt": (0x20, ">", 1), "jge": (0x30, ">=", 1),
    "jset": (0x40, "&", 1), "jne": (0x50, "!=", 1), "jsgt": (0x60, "s>", 1),
    "jsge": (0x70, "s>=", 1), "jlt": (0xA0, "<", 2), "jle": (0xB0, "<=", 2),
    "jslt": (0xC0, "s<", 2), "jsle": (0xD0, "s<=", 2),
}
JMP_JA, JMP_CALL, JMP_EXIT = 0x00, 0x80, 0x90

# Atomic operations (imm of STX|ATOMIC): name -> (imm, llvm operator or None).
ATOMIC_FETCH = 0x01
ATOMIC_OPS = {"add": (0x00, "+="), "or": (0x40, "|="), "and": (0x50, "&="), "xor": (0xA0, "^=")}
ATOMIC_XCHG, ATOMIC_CMPXCHG = 0xE0 | ATOMIC_FETCH, 0xF0 | ATOMIC_FETCH

# Kinds of LD_IMM64 (the src field; RFC 9669 5.4): name -> (src, what imm refers to).
LDDW_KINDS = {
    0: ("", "64-bit immediate"),
    1: ("map_fd", "map by file descriptor"),
    2: ("map_value", "address of a map value (map fd, offset in the next imm)"),
    3: ("btf_id", "kernel variable by BTF id"),
    4: ("func", "address of a subprogram (pc-relative)"),
    5: ("map_idx", "map by index"),
    6: ("map_idx_value", "address of a map value (map index, offset in the next imm)"),
}

# Kinds of call (the src field): 0 helper by id, 1 BPF-to-BPF call, 2 kfunc by BTF id.
CALL_HELPER, CALL_LOCAL, CALL_KFUNC = 0, 1, 2


class Kind(enum.Enum):
    """What an instruction does, as far as its operands' shape goes."""

    ALU = "alu"          # dst op= src/imm (also neg, movsx)
    END = "end"          # byte swap of dst
    JA = "ja"            # unconditional jump (off, or imm for gotol)
    JCOND = "jcond"      # conditional jump
    CALL = "call"        # helper, local or kfunc call (src tells which)
    CALLX = "callx"      # call through a register
    EXIT = "exit"
    LDDW = "lddw"        # 64-bit immediate load (two slots)
    LDPKT = "ldpkt"      # legacy LD_ABS / LD_IND packet load
    LDX = "ldx"          # dst = *(size *)(src + off), sign-extending for MEMSX
    ST = "st"            # *(size *)(dst + off) = imm
    STX = "stx"          # *(size *)(dst + off) = src
    ATOMIC = "atomic"    # read-modify-write at dst + off


class Field(enum.Enum):
    """How a row uses one field of the encoding; unused fields must be zero."""

    UNUSED = "-"         # must be 0
    READ = "r"           # register read (0..10)
    WRITE = "w"          # register written (0..9: r10 is read-only)
    VALUE = "v"          # free value (offset or immediate)
    TARGET = "t"         # pc-relative jump or call target
    DISC = "d"           # fixed value that selects this row


@dataclass(frozen=True)
class Op:
    """One instruction of the ISA.

    ``name`` is the bpf_conformance/uBPF mnemonic; ``llvm`` is the operator the
    llvm-objdump syntax writes (``+=``, ``s>``, ...), or ``None`` where that
    syntax uses a word.  ``exec`` names the interpreter's semantic routine:
    the ``K`` and ``X`` forms of an operation share one.
    """

    name: str
    opcode: int
    kind: Kind
    version: int
    group: str
    dst: Field
    src: Field
    off: Field
    imm: Field
    exec: str
    disc: str | None = None       # "off", "imm" or "src"
    disc_value: int = 0
    llvm: str | None = None
    width: int = 64               # operand width of ALU/JMP rows
    size: int = 0                 # access size in bytes of memory rows
    operation: str = ""           # base operation: "add", "jeq", "fetch add", ...

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    @property
    def source(self) -> int:
        return self.opcode & 0x08

    @property
    def key(self) -> tuple[int, int]:
        """(opcode, discriminating value): unique per row."""
        return (self.opcode, self.disc_value if self.disc else 0)


def _alu_rows() -> list[Op]:
    rows: list[Op] = []
    for cls, width in ((ALU64, 64), (ALU, 32)):
        suffix = "" if width == 64 else "32"
        base = "base64" if width == 64 else "base32"
        divmul = "divmul64" if width == 64 else "divmul32"
        for name, (code, llvm) in ALU_OPS.items():
            group = divmul if name in MUL_DIV_GROUP else base
            for src in (K, X):
                # movsx shares mov's X opcode, told apart by off like sdiv/smod
                disc = "off" if name in ("div", "mod") or (name == "mov" and src == X) else None
                rows.append(Op(
                    name + suffix, cls | code | src, Kind.ALU, 1, group,
                    Field.WRITE, Field.READ if src == X else Field.UNUSED,
                    Field.DISC if disc else Field.UNUSED,
                    Field.UNUSED if src == X else Field.VALUE,
                    exec=f"{name}{width}", disc=disc, disc_value=0, llvm=llvm,
                    width=width, operation=name))
        for name, (unsigned, llvm) in SIGNED_ALU.items():
            code = ALU_OPS[unsigned][0]
            for src in (K, X):
                rows.append(Op(
                    name + suffix, cls | code | src, Kind.ALU, 4, divmul,
                    Field.WRITE, Field.READ if src == X else Field.UNUSED, Field.DISC,
                    Field.UNUSED if src == X else Field.VALUE,
                    exec=f"{name}{width}", disc="off", disc_value=1, llvm=llvm,
                    width=width, operation=name))
        rows.append(Op("neg" + suffix, cls | ALU_NEG | K, Kind.ALU, 1, base,
                       Field.WRITE, Field.UNUSED, Field.UNUSED, Field.UNUSED,
                       exec=f"neg{width}", llvm="= -", width=width, operation="neg"))
        for bits in ((8, 16, 32) if width == 64 else (8, 16)):
            rows.append(Op(
                f"movsx{bits}{width}", cls | ALU_OPS["mov"][0] | X, Kind.ALU, 4, base,
                Field.WRITE, Field.READ, Field.DISC, Field.UNUSED,
                exec=f"movsx{bits}_{width}", disc="off", disc_value=bits, llvm="= (s%d)" % bits,
                width=width, operation="movsx"))
    # byte swaps: le/be (ALU class, source bit = target byte order), bswap (ALU64)
    for prefix, opcode, version in (("le", ALU | K | ALU_END, 1), ("be", ALU | X | ALU_END, 1),
                                    ("bswap", ALU64 | K | ALU_END, 4)):
        for bits in (16, 32, 64):
            rows.append(Op(
                f"{prefix}{bits}", opcode, Kind.END, version, "base64" if bits == 64 else "base32",
                Field.WRITE, Field.UNUSED, Field.UNUSED, Field.DISC,
                exec=f"{prefix if prefix != 'bswap' else 'be'}{bits}", disc="imm",
                disc_value=bits, width=bits, operation=prefix))
    return rows


def _jmp_rows() -> list[Op]:
    rows: list[Op] = []
    for cls, width in ((JMP, 64), (JMP32, 32)):
        suffix = "" if width == 64 else "32"
        for name, (code, llvm, version) in JMP_CONDS.items():
            for src in (K, X):
                rows.append(Op(
                    name + suffix, cls | code | src, Kind.JCOND,
                    version if width == 64 else 3, "base64" if width == 64 else "base32",
                    Field.READ, Field.READ if src == X else Field.UNUSED, Field.TARGET,
                    Field.UNUSED if src == X else Field.VALUE,
                    exec=f"{name}{width}", llvm=llvm, width=width, operation=name))
    rows += [
        Op("ja", JMP | JMP_JA, Kind.JA, 1, "base32", Field.UNUSED, Field.UNUSED,
           Field.TARGET, Field.UNUSED, exec="ja", operation="ja"),
        # gotol: the 32-bit target lives in imm (ISA v4)
        Op("ja32", JMP32 | JMP_JA, Kind.JA, 4, "base32", Field.UNUSED, Field.UNUSED,
           Field.UNUSED, Field.TARGET, exec="ja", operation="ja"),
        Op("call", JMP | JMP_CALL, Kind.CALL, 1, "base32", Field.UNUSED, Field.DISC,
           Field.UNUSED, Field.VALUE, exec="call_helper", disc="src", disc_value=CALL_HELPER,
           operation="helper"),
        Op("call local", JMP | JMP_CALL, Kind.CALL, 3, "base32", Field.UNUSED, Field.DISC,
           Field.UNUSED, Field.TARGET, exec="call_local", disc="src", disc_value=CALL_LOCAL,
           operation="local"),
        Op("call kfunc", JMP | JMP_CALL, Kind.CALL, 3, "base32", Field.UNUSED, Field.DISC,
           Field.VALUE, Field.VALUE, exec="call_kfunc", disc="src", disc_value=CALL_KFUNC,
           operation="kfunc"),
        # callx: the register in dst holds the helper id (uBPF / bpf_conformance meaning)
        Op("callx", JMP | JMP_CALL | X, Kind.CALLX, 1, "callx", Field.READ, Field.UNUSED,
           Field.UNUSED, Field.UNUSED, exec="callx", operation="callx"),
        Op("exit", JMP | JMP_EXIT, Kind.EXIT, 1, "base32", Field.UNUSED, Field.UNUSED,
           Field.UNUSED, Field.UNUSED, exec="exit", operation="exit"),
    ]
    return rows


def _mem_rows() -> list[Op]:
    rows: list[Op] = []
    for src, (kind, _) in LDDW_KINDS.items():
        rows.append(Op(
            "lddw" + (f" {kind}" if kind else ""), LD | MODE_IMM | SIZES["dw"][0], Kind.LDDW,
            1, "base64", Field.WRITE, Field.DISC, Field.UNUSED,
            Field.TARGET if kind == "func" else Field.VALUE,
            exec="lddw" if src == 0 else "lddw_unresolved", disc="src", disc_value=src,
            size=8, operation=kind or "imm"))
    for sfx in ("b", "h", "w"):
        code, size = SIZES[sfx]
        rows.append(Op(f"ldabs{sfx}", LD | MODE_ABS | code, Kind.LDPKT, 1, "packet",
                       Field.UNUSED, Field.UNUSED, Field.UNUSED, Field.VALUE,
                       exec=f"ldabs{size}", size=size, operation="abs"))
        rows.append(Op(f"ldind{sfx}", LD | MODE_IND | code, Kind.LDPKT, 1, "packet",
                       Field.UNUSED, Field.READ, Field.UNUSED, Field.VALUE,
                       exec=f"ldind{size}", size=size, operation="ind"))
    for sfx, (code, size) in SIZES.items():
        group = "base64" if size == 8 else "base32"
        rows.append(Op(f"ldx{sfx}", LDX | MODE_MEM | code, Kind.LDX, 1, group,
                       Field.WRITE, Field.READ, Field.VALUE, Field.UNUSED,
                       exec=f"ldx{size}", size=size, operation="ldx"))
        if size != 8:
            rows.append(Op(f"ldxs{sfx}", LDX | MODE_MEMSX | code, Kind.LDX, 4, "base32",
                           Field.WRITE, Field.READ, Field.VALUE, Field.UNUSED,
                           exec=f"ldxs{size}", size=size, operation="ldxs"))
        rows.append(Op(f"st{sfx}", ST | MODE_MEM | code, Kind.ST, 1, group,
                       Field.READ, Field.UNUSED, Field.VALUE, Field.VALUE,
                       exec=f"st{size}", size=size, operation="st"))
        rows.append(Op(f"stx{sfx}", STX | MODE_MEM | code, Kind.STX, 1, group,
                       Field.READ, Field.READ, Field.VALUE, Field.UNUSED,
                       exec=f"st{size}", size=size, operation="stx"))
    for sfx, width in (("w", 32), ("dw", 64)):
        code, size = SIZES[sfx]
        suffix = "32" if width == 32 else ""
        group = f"atomic{width}"
        ops = [(name, imm, llvm) for name, (imm, llvm) in ATOMIC_OPS.items()]
        ops += [(f"fetch {name}", imm | ATOMIC_FETCH, None) for name, (imm, _) in ATOMIC_OPS.items()]
        ops += [("xchg", ATOMIC_XCHG, None), ("cmpxchg", ATOMIC_CMPXCHG, None)]
        for name, imm, llvm in ops:
            # fetching forms and xchg write the old value back into src (cmpxchg: into r0)
            writes_src = imm & ATOMIC_FETCH and imm != ATOMIC_CMPXCHG
            rows.append(Op(
                f"lock {name}{suffix}", STX | MODE_ATOMIC | code, Kind.ATOMIC, 3, group,
                Field.READ, Field.WRITE if writes_src else Field.READ, Field.VALUE, Field.DISC,
                exec=f"atomic_{name.replace(' ', '_')}{width}", disc="imm", disc_value=imm,
                llvm=llvm, width=width, size=size, operation=name))
    return rows


#: Every instruction, in a fixed order.
OPS: tuple[Op, ...] = tuple(_alu_rows() + _jmp_rows() + _mem_rows())

#: (opcode, discriminating value) -> row.
BY_KEY: dict[tuple[int, int], Op] = {op.key: op for op in OPS}
#: opcode byte -> the rows that share it.
BY_OPCODE: dict[int, tuple[Op, ...]] = {}
for _op in OPS:
    BY_OPCODE[_op.opcode] = BY_OPCODE.get(_op.opcode, ()) + (_op,)
#: uBPF mnemonic -> row (unique: the discriminated rows have their own names).
BY_NAME: dict[str, Op] = {}
for _op in OPS:
    BY_NAME.setdefault(_op.name, _op)  # K form first; the operand picks X

#: The interpreter's semantic routines, numbered densely in table order.
EXEC_NAMES: tuple[str, ...] = tuple(dict.fromkeys(op.exec for op in OPS))
EXEC_ID: dict[str, int] = {name: i for i, name in enumerate(EXEC_NAMES)}

OPCODE_LDDW = LD | MODE_IMM | SIZES["dw"][0]

assert len(BY_KEY) == len(OPS), "two rows share an (opcode, discriminator) key"


def lookup(opcode: int, src: int, off: int, imm: int) -> Op | None:
    """The row for one raw instruction's fields, or None if it is no known instruction."""
    rows = BY_OPCODE.get(opcode)
    if not rows:
        return None
    fields = {"off": off, "imm": imm, "src": src}
    for op in rows:
        if op.disc is None or fields[op.disc] == op.disc_value:
            return op
    return None
