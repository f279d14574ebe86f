"""Disassembler: eBPF bytecode -> text in the uBPF/bpf_conformance or llvm-objdump syntax.

Every spelling is derived from the rows of :mod:`xsim.isa.opcodes` (``name`` for
the uBPF syntax, ``llvm`` operators and ``operation`` words for the llvm one);
this module only adds the few syntax words the table does not hold (the size
names ``u8``..``u64``, ``goto``/``gotol``, register letters).  The assembler
(:mod:`xsim.isa.asm`) builds its lookup tables from the same helpers, so the
two cannot drift apart.

The llvm syntax is what ``llvm-objdump -d`` (LLVM 22, default features) prints:
decimal immediates and memory offsets, ``r`` registers in loads and stores,
``<sym+0x..>`` after jump targets when a symbol is given.  Where llvm-objdump
has no spelling for an encoding, or one that loses information, xsim writes its
own form so that text always assembles back to the same bytes:

* ``call local +N`` (BPF-to-BPF call; llvm-objdump prints ``call N``),
  ``call kfunc ID[, OFF]`` (llvm-objdump prints ``call ID``);
* ``r1 = map_fd 5 ll``, ``r1 = map_value 5, 8 ll``, ``r1 = func +3 ll`` for the
  LD_IMM64 pseudo sources 1..6 (llvm-objdump relies on relocations);
* ``r0 = *(u8 *)skb[r1 + 4]`` for an LD_IND with a non-zero imm;
* 32-bit fetch/xchg/cmpxchg atomics name ``w`` registers (the only spelling
  LLVM has for them, with ``+alu32``); the no-fetch forms name ``r`` registers
  like every other store.

The uBPF syntax writes immediates as signed decimal, memory operands as
``[%r1+4]``, jump targets as ``+N``/``-N`` and LD_IMM64 values as unsigned hex.
"""
from __future__ import annotations

from typing import Iterable

from . import opcodes as oc
from .insn import Insn, decode
from .opcodes import Field, Kind, Op

SYNTAXES = ("ubpf", "llvm")

#: llvm-objdump's words for the two unconditional jumps, by instruction class.
JA_WORDS = {oc.JMP: "goto", oc.JMP32: "gotol"}
#: LD_IMM64 kinds whose second imm is an offset into the map value: always written.
LDDW_OFFSET_KINDS = frozenset(name for name, _ in oc.LDDW_KINDS.values() if name.endswith("_value"))
#: LD_IMM64 kinds whose imm is pc-relative (a subprogram): written as +N / -N.
LDDW_RELATIVE_KINDS = frozenset({"func"})


def lddw_kind(op: Op) -> str:
    """The pseudo-source word of an LD_IMM64 row ('' for a plain 64-bit immediate)."""
    return oc.LDDW_KINDS[op.disc_value][0]


def size_name(op: Op) -> str:
    """llvm's name of a memory row's access type: u8..u64, s8..s32 for sign-extending loads."""
    return ("s" if op.operation == "ldxs" else "u") + str(op.size * 8)


def atomic_func(op: Op) -> str | None:
    """llvm's function-like spelling of a fetching atomic, None for the ``lock ... op=`` forms."""
    if op.operation.startswith("fetch "):
        return "atomic_" + op.operation.replace(" ", "_")
    if op.operation in ("xchg", "cmpxchg"):
        # xchg_64 / xchg32_32, cmpxchg_64 / cmpxchg32_32, as in LLVM's BPFInstrInfo.td
        return op.operation + ("32" if op.width == 32 else "") + f"_{op.width}"
    return None


def reg_letter(op: Op) -> str:
    """The llvm register letter of a row's value registers: 'w' for 32-bit operands."""
    if op.kind in (Kind.ALU, Kind.JCOND):
        return "w" if op.width == 32 else "r"
    if op.kind is Kind.ATOMIC and atomic_func(op) is not None:
        return "w" if op.width == 32 else "r"
    return "r"


def _rel(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _annot(insn: Insn, symbol: str | None) -> str:
    """llvm-objdump's ' <sym+0x..>' after a jump: the target's byte offset in the symbol."""
    target = insn.target
    if symbol is None or target is None:
        return ""
    disp = target * 8
    return f" <{symbol}+{disp:#x}>" if disp else f" <{symbol}>"


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


# -- uBPF / bpf_conformance syntax ------------------------------------------------

def _umem(reg: int, off: int) -> str:
    return f"[%r{reg}{off:+d}]" if off else f"[%r{reg}]"


def _ubpf(insn: Insn) -> str:
    op, k = insn.op, insn.op.kind
    d, s = f"%r{insn.dst}", f"%r{insn.src}"
    if k in (Kind.ALU, Kind.JCOND):
        args = [d]
        if op.src is Field.READ:
            args.append(s)
        elif op.imm is Field.VALUE:
            args.append(str(insn.imm))
        if op.off is Field.TARGET:
            args.append(_rel(insn.off))
        return f"{op.name} {', '.join(args)}"
    if k is Kind.END or k is Kind.CALLX:
        return f"{op.name} {d}"
    if k is Kind.JA:
        return f"{op.name} {_rel(insn.off if op.off is Field.TARGET else insn.imm)}"
    if k is Kind.CALL:
        return f"{op.name} {_call_args(insn)}"
    if k is Kind.EXIT:
        return op.name
    if k is Kind.LDDW:
        return f"lddw {d}, {_lddw_value(insn, hex_plain=True)}"
    if k is Kind.LDPKT:
        return f"{op.name} {s}, {insn.imm}" if op.src is Field.READ else f"{op.name} {insn.imm}"
    if k is Kind.LDX:
        return f"{op.name} {d}, {_umem(insn.src, insn.off)}"
    if k is Kind.ST:
        return f"{op.name} {_umem(insn.dst, insn.off)}, {insn.imm}"
    # STX and ATOMIC: [dst+off], src
    return f"{op.name} {_umem(insn.dst, insn.off)}, {s}"


def _call_args(insn: Insn) -> str:
    """Operands of the call rows, the same in both syntaxes: ID, +N (local), ID[, OFF] (kfunc)."""
    if insn.op.imm is Field.TARGET:
        return _rel(insn.imm)
    if insn.op.off is Field.VALUE and insn.off:
        return f"{insn.imm}, {insn.off}"
    return str(insn.imm)


def _lddw_value(insn: Insn, *, hex_plain: bool) -> str:
    kind = lddw_kind(insn.op)
    if not kind:
        return f"{insn.value:#x}" if hex_plain else str(_signed64(insn.value))
    imm = _rel(insn.imm) if kind in LDDW_RELATIVE_KINDS else str(insn.imm)
    if kind in LDDW_OFFSET_KINDS or insn.next_imm:
        return f"{kind} {imm}, {insn.next_imm}"
    return f"{kind} {imm}"


# -- llvm-objdump syntax ------------------------------------------------------------

def _lmem(reg: int, off: int) -> str:
    return f"r{reg} + {off}" if off >= 0 else f"r{reg} - {-off}"


def _llvm(insn: Insn, symbol: str | None) -> str:
    op, k = insn.op, insn.op.kind
    w = reg_letter(op)
    d, s = f"{w}{insn.dst}", f"{w}{insn.src}"
    if k is Kind.ALU:
        if op.src is Field.READ:
            operand = s
        elif op.imm is Field.VALUE:
            operand = str(insn.imm)
        else:  # neg: the operand is dst itself
            operand = d
        # "+=" and "=" take a space before the operand, "= -" and "= (s8)" do not
        sep = " " if op.llvm.endswith("=") else ""
        return f"{d} {op.llvm}{sep}{operand}"
    if k is Kind.END:
        return f"{d} = {op.name} {d}"
    if k is Kind.JCOND:
        operand = s if op.src is Field.READ else str(insn.imm)
        return f"if {d} {op.llvm} {operand} goto {_rel(insn.off)}{_annot(insn, symbol)}"
    if k is Kind.JA:
        rel = insn.off if op.off is Field.TARGET else insn.imm
        return f"{JA_WORDS[op.cls]} {_rel(rel)}{_annot(insn, symbol)}"
    if k is Kind.CALL:
        return f"{op.name} {_call_args(insn)}"
    if k is Kind.CALLX:
        return f"{op.name} {d}"
    if k is Kind.EXIT:
        return op.name
    if k is Kind.LDDW:
        return f"{d} = {_lddw_value(insn, hex_plain=False)} ll"
    if k is Kind.LDPKT:
        if op.src is Field.READ:
            index = f"r{insn.src}" + (f" + {insn.imm}" if insn.imm > 0 else
                                      f" - {-insn.imm}" if insn.imm < 0 else "")
        else:
            index = str(insn.imm)
        return f"r0 = *({size_name(op)} *)skb[{index}]"
    mem = _lmem(insn.dst, insn.off)
    if k is Kind.LDX:
        return f"{d} = *({size_name(op)} *)({_lmem(insn.src, insn.off)})"
    if k is Kind.ST:
        return f"*({size_name(op)} *)({mem}) = {insn.imm}"
    if k is Kind.STX:
        return f"*({size_name(op)} *)({mem}) = {s}"
    func = atomic_func(op)
    if func is None:
        return f"lock *({size_name(op)} *)({mem}) {op.llvm} {s}"
    if op.operation == "cmpxchg":
        return f"{w}0 = {func}({mem}, {w}0, {s})"
    if op.operation == "xchg":
        return f"{s} = {func}({mem}, {s})"
    return f"{s} = {func}(({size_name(op)} *)({mem}), {s})"


# -- public API ---------------------------------------------------------------------

def format_insn(insn: Insn, syntax: str = "ubpf", *, symbol: str | None = None) -> str:
    """One instruction as text; ``symbol`` adds llvm-objdump's jump target annotation."""
    if syntax == "ubpf":
        return _ubpf(insn)
    if syntax == "llvm":
        return _llvm(insn, symbol)
    raise ValueError(f"unknown syntax {syntax!r}: expected one of {', '.join(SYNTAXES)}")


def _insns(code: bytes | bytearray | memoryview | Iterable[Insn]) -> list[Insn]:
    if isinstance(code, (bytes, bytearray, memoryview)):
        return decode(bytes(code))
    return list(code)


def disassemble_lines(code: bytes | Iterable[Insn], syntax: str = "ubpf", *,
                      symbol: str | None = None) -> list[tuple[int, str]]:
    """(pc, text) per instruction, for consumers that lay the lines out themselves.

    Bytes are decoded with :func:`xsim.isa.insn.decode`, so an invalid program
    raises :class:`~xsim.errors.DecodeError`.
    """
    return [(i.pc, format_insn(i, syntax, symbol=symbol)) for i in _insns(code)]


def disassemble(code: bytes | Iterable[Insn], syntax: str = "ubpf", *,
                symbol: str | None = None, show_pc: bool = False) -> str:
    """The program as text, one instruction per line (``pc:<tab>`` first with show_pc)."""
    lines = disassemble_lines(code, syntax, symbol=symbol)
    if show_pc:
        return "".join(f"{pc:>8}:\t{text}\n" for pc, text in lines)
    return "".join(text + "\n" for _, text in lines)
