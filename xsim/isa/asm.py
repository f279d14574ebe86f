"""Assembler: uBPF/bpf_conformance or llvm-objdump text -> eBPF bytecode.

Both syntaxes are the ones :mod:`xsim.isa.disasm` writes (see its docstring
for xsim's own forms), so ``assemble(disassemble(code, s), s) == code``.  The
lookup tables below are built from :data:`xsim.isa.opcodes.OPS` and the
disassembler's spelling helpers; no mnemonic or opcode is listed here.

Common to both syntaxes: one instruction per line; ``#``, ``;`` and ``//``
start a comment; ``name:`` defines a label (alone or before an instruction);
the first ``exit`` is also the label ``exit`` unless one is defined.  Jump and
call targets are ``+N``/``-N`` (slots after the next instruction) or labels.
A 32-bit imm is signed decimal or a hex 32-bit pattern (``0xffffffff`` is -1),
a 16-bit offset likewise; an LD_IMM64 value takes any 64-bit value.

uBPF syntax (bpf_conformance's): ``mov32 %r0, 1``, ``add``/``add64``,
``ldxw %r0, [%r1+4]``, ``stxdw [%r10-8], %r1``, ``lock fetch add [%r10-8], %r1``,
``jeq %r1, 0, +2``, ``ja32 L``, ``call 5``, ``call local f``, ``call %r2``
(= ``callx %r2``), ``call kfunc ID[, OFF]`` (``call runtime ID`` too),
``lddw %r0, 0x123456789``, ``be16 %r0``, ``swap16`` (= ``bswap16``).
Legacy packet loads take the source register first, then the imm:
``ldabsw 12``, ``ldindh %r1, 4``.  LD_IMM64 pseudo sources name their kind
before the imm: ``lddw %r1, map_fd 5``, ``lddw %r1, map_value 5, 8`` (second
imm: the offset), ``lddw %r1, func +3`` (or a label; pc-relative like a call).

llvm syntax (llvm-objdump's): ``r0 = 1``, ``w1 += w2``, ``r1 = (s8)r2``,
``if w1 s< w2 goto -3``, ``r0 = *(u32 *)(r1 + 0x4)``, ``*(u64 *)(r10 - 8) = r1``,
``lock *(u64 *)(r10 - 8) += r1``, ``r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)``,
``r0 = cmpxchg_64(r10 - 8, r0, r1)``, ``r1 = 0x123 ll``, ``r4 = be16 r4``,
``callx r2``; a leading ``N:`` (objdump's pc column), ``<sym>:`` headers and
trailing ``<sym+0x..>`` annotations are ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import AsmError
from . import opcodes as oc
from .disasm import JA_WORDS, LDDW_RELATIVE_KINDS, atomic_func, lddw_kind, size_name
from .insn import NUM_REGS, Insn, encode, make
from .opcodes import Field, Kind, Op

SYNTAXES = ("auto", "ubpf", "llvm")


class _Bad(Exception):
    """A problem with the current line; the driver adds the line number and text."""


# -- lookup tables, derived from the opcode table -----------------------------------

def _index(key, rows=oc.OPS) -> dict:
    out: dict = {}
    for op in rows:
        k = key(op)
        if k is not None:
            assert k not in out, f"spelling {k!r} of {op.name} is also {out[k].name}"
            out[k] = op
    return out


def _of(kind: Kind) -> list[Op]:
    return [op for op in oc.OPS if op.kind is kind]


#: uBPF mnemonic -> rows (the K and X forms of an operation share a name).  The LD_IMM64
#: pseudo rows are spelled ``lddw %rN, KIND ...``, so their names are no mnemonics.
_BY_NAME: dict[str, list[Op]] = {}
for _op in oc.OPS:
    if not (_op.kind is Kind.LDDW and _op.disc_value):
        _BY_NAME.setdefault(_op.name, []).append(_op)
_CALL = _index(lambda op: op.disc_value, _of(Kind.CALL))        # src -> call row
_CALLX = _of(Kind.CALLX)[0]
#: Spellings the bpf_conformance files also use: add64 = add, swap16 = bswap16,
#: call runtime = call kfunc.
_ALIASES = {op.name + "64": op.name for op in _of(Kind.ALU)
            if op.width == 64 and op.name == op.operation}
_ALIASES |= {"swap" + op.name[len(op.operation):]: op.name for op in _of(Kind.END)
             if op.operation == "bswap"}
_ALIASES["call runtime"] = _CALL[oc.CALL_KFUNC].name
_LDDW = _index(lddw_kind, _of(Kind.LDDW))                           # kind word -> row

_ALU = _index(lambda op: (op.llvm, op.width, op.src is Field.READ), _of(Kind.ALU))
_ALU_OPERATORS = {op.llvm for op in _of(Kind.ALU) if op.llvm.endswith("=")}
_JCOND = _index(lambda op: (op.llvm, op.width, op.src is Field.READ), _of(Kind.JCOND))
_JA = _index(lambda op: JA_WORDS[op.cls], _of(Kind.JA))
_END = _index(lambda op: op.name, _of(Kind.END))
_LOAD = _index(size_name, _of(Kind.LDX))
_PKT = _index(lambda op: (op.src is Field.READ, size_name(op)), _of(Kind.LDPKT))
_STORE = _index(lambda op: (size_name(op), op.kind is Kind.STX), _of(Kind.ST) + _of(Kind.STX))
_LOCK = _index(lambda op: (op.llvm, size_name(op)) if atomic_func(op) is None else None,
               _of(Kind.ATOMIC))
_ATOMIC_FUNC = _index(lambda op: (atomic_func(op), op.width) if atomic_func(op) else None,
                      _of(Kind.ATOMIC))
_EXIT = _of(Kind.EXIT)[0]

#: First words that both syntaxes use; any other uBPF first word means uBPF text.
_LOCK_WORD = _of(Kind.ATOMIC)[0].name.split()[0]      # both syntaxes start atomics with it
_SHARED_WORDS = {_CALL[oc.CALL_HELPER].name, _CALLX.name, _EXIT.name, _LOCK_WORD}
_UBPF_ONLY = {name.split()[0] for name in _BY_NAME | _ALIASES} - _SHARED_WORDS
_MULTIWORD = {name.split()[0] for name in _BY_NAME if " " in name}    # lock, call


# -- numbers, registers, targets ----------------------------------------------------

_NUM = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)$")
_LABEL = re.compile(r"[A-Za-z_.$][\w.$]*$")


def _number(text: str, what: str) -> tuple[int, bool]:
    m = _NUM.match(text.strip())
    if not m:
        raise _Bad(f"expected a number for the {what}, got {text.strip()!r}")
    digits = m.group(2)
    is_hex = digits[:2].lower() == "0x"
    value = int(digits, 16 if is_hex else 10)
    return (-value if m.group(1) == "-" else value), is_hex


def _signed(text: str, bits: int, what: str) -> int:
    """Decimal: a signed value; hex: a bits-wide pattern (or a negative signed value)."""
    value, is_hex = _number(text, what)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if is_hex and value > hi:
        if value >= 1 << bits:
            raise _Bad(f"{what} {text.strip()} is out of range: hex takes 0..{(1 << bits) - 1:#x}")
        return value - (1 << bits)
    if not lo <= value <= hi:
        raise _Bad(f"{what} {text.strip()} is out of range {lo}..{hi} (signed {bits}-bit)")
    return value


def _value64(text: str) -> int:
    value, _ = _number(text, "64-bit immediate")
    if not -(1 << 63) <= value < 1 << 64:
        raise _Bad(f"64-bit immediate {text.strip()} is out of range")
    return value & ((1 << 64) - 1)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _regno(digits: str, text: str) -> int:
    n = int(digits)
    if n >= NUM_REGS:
        raise _Bad(f"bad register {text}: the registers are r0..r{NUM_REGS - 1}")
    return n


@dataclass
class _Parsed:
    """One instruction before its labels are resolved."""

    op: Op
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    next_imm: int = 0
    label: str | None = None      # target label, resolved into label_field
    label_field: str = "off"


def _target(p: _Parsed, text: str, field: str) -> None:
    """A jump/call target: +N/-N (or a bare N) is relative, anything else a label."""
    text = text.strip()
    if _NUM.match(text):
        setattr(p, field, _signed(text, 16 if field == "off" else 32, "jump offset"))
    elif _LABEL.match(text):
        p.label, p.label_field = text, field
    else:
        raise _Bad(f"bad jump target {text!r}: expected +N, -N or a label")


def _need(name: str, args: list[str], *counts: int) -> None:
    if len(args) not in counts:
        want = " or ".join(map(str, counts))
        raise _Bad(f"{name} takes {want} operand{'s' if counts != (1,) else ''}, got {len(args)}")


def _call(p_name: str, args: list[str], reg) -> _Parsed:
    """The call rows, spelled alike in both syntaxes (``reg`` parses a register or None)."""
    if p_name == _CALL[oc.CALL_HELPER].name and len(args) == 1 and reg(args[0]) is not None:
        return _Parsed(_CALLX, dst=reg(args[0]))
    if p_name == _CALLX.name:
        _need(p_name, args, 1)
        r = reg(args[0])
        if r is None:
            raise _Bad(f"callx takes a register, got {args[0]!r}")
        return _Parsed(_CALLX, dst=r)
    op = next(o for o in _CALL.values() if o.name == p_name)
    p = _Parsed(op)
    if op.imm is Field.TARGET:
        _need(p_name, args, 1)
        _target(p, args[0], "imm")
    elif op.off is Field.VALUE:
        _need(p_name, args, 1, 2)
        p.imm = _signed(args[0], 32, "imm")
        p.off = _signed(args[1], 16, "offset") if len(args) == 2 else 0
    else:
        _need(p_name, args, 1)
        p.imm = _signed(args[0], 32, "imm")
    return p


def _lddw(p: _Parsed, text: str, extra: list[str]) -> None:
    """LD_IMM64's value: N, or KIND IMM[, NEXT_IMM] for the pseudo sources."""
    words = text.split(None, 1)
    if words and words[0] in _LDDW:
        p.op = _LDDW[words[0]]
        if len(words) < 2:
            raise _Bad(f"lddw {words[0]} needs a value")
        if words[0] in LDDW_RELATIVE_KINDS:
            _target(p, words[1], "imm")
        else:
            p.imm = _signed(words[1], 32, "imm")
        if len(extra) > 1:
            raise _Bad(f"lddw {words[0]} takes at most two values, got {len(extra) + 1}")
        p.next_imm = _signed(extra[0], 32, "second imm") if extra else 0
        return
    if extra:
        raise _Bad(f"lddw takes 2 operands, got {len(extra) + 2}")
    value = _value64(text)
    p.imm, p.next_imm = _s32(value), _s32(value >> 32)


# -- uBPF syntax ----------------------------------------------------------------------

_UREG = re.compile(r"%r(\d+)$")
_UMEM = re.compile(r"\[\s*%r(\d+)\s*(?:([+-])\s*(\w+))?\s*\]$")


def _ureg(text: str) -> int:
    m = _UREG.match(text.strip())
    if not m:
        raise _Bad(f"bad register {text.strip()!r}: expected %r0..%r{NUM_REGS - 1}")
    return _regno(m.group(1), text.strip())


def _umaybe_reg(text: str) -> int | None:
    return _ureg(text) if text.strip().startswith("%") else None


def _umem(text: str) -> tuple[int, int]:
    m = _UMEM.match(text.strip())
    if not m:
        raise _Bad(f"bad memory operand {text.strip()!r}: expected [%rN], [%rN+OFF] "
                   "or [%rN-OFF]")
    off = _signed(m.group(2) + m.group(3), 16, "offset") if m.group(2) else 0
    return _regno(m.group(1), f"%r{m.group(1)}"), off


def _split_mnemonic(body: str) -> tuple[str, str]:
    """The longest run of leading words that names a row (``lock fetch add32``)."""
    for n in (3, 2, 1):
        parts = body.split(None, n)
        name = " ".join(parts[:n])
        name = _ALIASES.get(name, name)
        if name in _BY_NAME and len(parts) >= n:
            return name, parts[n] if len(parts) > n else ""
    words = body.split()
    shown = " ".join(words[:2]) if words[0] in _MULTIWORD and words[0] not in _BY_NAME else words[0]
    raise _Bad(f"unknown mnemonic {shown!r}")


def _parse_ubpf(body: str) -> _Parsed:
    name, rest = _split_mnemonic(body)
    args = [a.strip() for a in rest.split(",")] if rest.strip() else []
    rows = _BY_NAME[name]
    op = rows[0]
    if len(rows) > 1:  # K and X forms: the second operand decides
        is_reg = len(args) > 1 and args[1].startswith("%")
        op = next(o for o in rows if (o.src is Field.READ) == is_reg)
    k, p = op.kind, _Parsed(op)
    if k in (Kind.ALU, Kind.JCOND):
        shape = ["dst"] + (["src"] if op.src is Field.READ else ["imm"] if op.imm is Field.VALUE
                           else []) + (["off"] if op.off is Field.TARGET else [])
        _need(name, args, len(shape))
        p.dst = _ureg(args[0])
        if "src" in shape:
            p.src = _ureg(args[1])
        elif "imm" in shape:
            p.imm = _signed(args[1], 32, "imm")
        if "off" in shape:
            _target(p, args[-1], "off")
    elif k is Kind.END:
        _need(name, args, 1)
        p.dst = _ureg(args[0])
    elif k is Kind.JA:
        _need(name, args, 1)
        _target(p, args[0], "off" if op.off is Field.TARGET else "imm")
    elif k in (Kind.CALL, Kind.CALLX):
        p = _call(name, args, _umaybe_reg)
    elif k is Kind.EXIT:
        _need(name, args, 0)
    elif k is Kind.LDDW:
        if len(args) < 2:
            _need(name, args, 2)
        p.dst = _ureg(args[0])
        _lddw(p, args[1], args[2:])
    elif k is Kind.LDPKT:
        if op.src is Field.READ:
            _need(name, args, 2)
            p.src, p.imm = _ureg(args[0]), _signed(args[1], 32, "imm")
        else:
            _need(name, args, 1)
            p.imm = _signed(args[0], 32, "imm")
    elif k is Kind.LDX:
        _need(name, args, 2)
        p.dst = _ureg(args[0])
        p.src, p.off = _umem(args[1])
    else:  # ST, STX, ATOMIC: [dst+off], src or imm
        _need(name, args, 2)
        p.dst, p.off = _umem(args[0])
        if op.kind is Kind.ST:
            p.imm = _signed(args[1], 32, "imm")
        else:
            p.src = _ureg(args[1])
    return p


# -- llvm syntax ----------------------------------------------------------------------

_LREG = re.compile(r"([rw])(\d+)$")
_IF = re.compile(r"if (\S+) (\S+) (\S+) goto (\S+)$")
_LOCK_RE = re.compile(r"lock \*\((\w+) \*\)\(([^()]*)\) (\S+) (\S+)$")
_STORE_RE = re.compile(r"\*\((\w+) \*\)\(([^()]*)\) = (\S+)$")
_ASSIGN = re.compile(r"(\S+) (\S*=) (.+)$")
_LOAD_RE = re.compile(r"\*\((\w+) \*\)\(([^()]*)\)$")
_PKT_RE = re.compile(r"\*\((\w+) \*\)skb\[([^\]]*)\]$")
_FUNC_RE = re.compile(r"(\w+)\((.*)\)$")
_TYPED_ADDR = re.compile(r"\((\w+) \*\)\(([^()]*)\)$")
_MOVSX = re.compile(r"(\(s\d+\))(\S+)$")
_LADDR = re.compile(r"(\w+)\s*(?:([+-])\s*(\w+))?$")


def _lreg(text: str) -> tuple[int, int]:
    """(register number, width 64 for rN / 32 for wN)."""
    m = _LREG.match(text.strip())
    if not m:
        raise _Bad(f"bad register {text.strip()!r}: expected r0..r{NUM_REGS - 1} "
                   f"or w0..w{NUM_REGS - 1}")
    return _regno(m.group(2), text.strip()), 32 if m.group(1) == "w" else 64


def _lmaybe_reg(text: str) -> int | None:
    return _lreg(text)[0] if _LREG.match(text.strip()) else None


def _laddr(text: str) -> tuple[int, int]:
    m = _LADDR.match(text.strip())
    if not m or not m.group(1).startswith("r"):
        raise _Bad(f"bad address {text.strip()!r}: expected rN, rN + OFF or rN - OFF")
    reg = _lreg(m.group(1))[0]
    off = _signed(m.group(2) + m.group(3), 16, "offset") if m.group(2) else 0
    return reg, off


def _same_width(width: int, *regs: str) -> None:
    for r in regs:
        if _LREG.match(r) and _lreg(r)[1] != width:
            raise _Bad(f"mixed register widths: {r} in a {width}-bit instruction")


def _pick(table: dict, key, what: str) -> Op:
    if key not in table:
        raise _Bad(f"unknown {what}")
    return table[key]


def _parse_llvm(body: str) -> _Parsed:
    word = body.split(None, 1)[0]
    if word in _JA:
        parts = body.split()
        _need(word, parts[1:], 1)
        op = _JA[word]
        p = _Parsed(op)
        _target(p, parts[1], "off" if op.off is Field.TARGET else "imm")
        return p
    if word == _EXIT.name:
        _need(word, body.split()[1:], 0)
        return _Parsed(_EXIT)
    if word in (_CALL[oc.CALL_HELPER].name, _CALLX.name):
        name, rest = _split_mnemonic(body)
        return _call(name, [a.strip() for a in rest.split(",")] if rest.strip() else [],
                     _lmaybe_reg)
    if m := _IF.match(body):
        a, operator, b, target = m.groups()
        dst, width = _lreg(a)
        is_reg = _LREG.match(b) is not None
        op = _pick(_JCOND, (operator, width, is_reg), f"comparison {operator!r}")
        _same_width(width, b)
        p = _operand(_Parsed(op, dst=dst), b, is_reg)
        _target(p, target, "off")
        return p
    if m := _LOCK_RE.match(body):
        size, addr, operator, src = m.groups()
        op = _pick(_LOCK, (operator, size), f"atomic operation 'lock *({size} *) {operator}'")
        dst, off = _laddr(addr)
        return _Parsed(op, dst=dst, off=off, src=_lreg(src)[0])
    if m := _STORE_RE.match(body):
        size, addr, value = m.groups()
        is_reg = _LREG.match(value) is not None
        op = _pick(_STORE, (size, is_reg), f"store size {size!r}")
        dst, off = _laddr(addr)
        return _operand(_Parsed(op, dst=dst, off=off), value, is_reg)
    if m := _ASSIGN.match(body):
        return _parse_assign(*m.groups())
    raise _Bad(f"unknown instruction {body!r}")


def _operand(p: _Parsed, text: str, is_reg: bool) -> _Parsed:
    """Fill the second operand: src for a register, imm for a number."""
    if is_reg:
        p.src = _lreg(text)[0]
    else:
        p.imm = _signed(text, 32, "imm")
    return p


def _parse_assign(lhs: str, operator: str, rhs: str) -> _Parsed:
    if operator != "=":
        if operator not in _ALU_OPERATORS:
            raise _Bad(f"unknown operator {operator!r}")
        dst, width = _lreg(lhs)
        is_reg = _LREG.match(rhs) is not None
        op = _pick(_ALU, (operator, width, is_reg), f"operator {operator!r}")
        _same_width(width, rhs)
        return _operand(_Parsed(op, dst=dst), rhs, is_reg)
    if rhs.endswith(" ll"):
        dst, width = _lreg(lhs)
        if width != 64:
            raise _Bad(f"a 64-bit immediate load needs an r register, got {lhs}")
        p = _Parsed(_LDDW[""], dst=dst)
        values = [v.strip() for v in rhs[:-3].split(",")]
        _lddw(p, values[0], values[1:])
        return p
    if m := _LOAD_RE.match(rhs):
        size, addr = m.groups()
        op = _pick(_LOAD, size, f"load type {size!r}")
        src, off = _laddr(addr)
        return _Parsed(op, dst=_lreg(lhs)[0], src=src, off=off)
    if m := _PKT_RE.match(rhs):
        size, index = m.groups()
        if _lreg(lhs)[0] != 0:
            raise _Bad(f"legacy packet loads write r0, not {lhs}")
        im = _LADDR.match(index.strip())
        is_reg = bool(im and _LREG.match(im.group(1)))
        op = _pick(_PKT, (is_reg, size), f"packet load type {size!r}")
        if not is_reg:
            return _Parsed(op, imm=_signed(index, 32, "imm"))
        imm = _signed(im.group(2) + im.group(3), 32, "imm") if im.group(2) else 0
        return _Parsed(op, src=_lreg(im.group(1))[0], imm=imm)
    if m := _FUNC_RE.match(rhs):
        return _parse_atomic(lhs, m.group(1), [a.strip() for a in m.group(2).split(",")])
    dst, width = _lreg(lhs)
    if rhs.startswith("-") and _LREG.match(rhs[1:]):       # neg
        op = _pick(_ALU, ("= -", width, False), "negation")
        _same_width(width, rhs[1:])
        if _lreg(rhs[1:])[0] != dst:
            raise _Bad(f"negation writes its own register: expected {lhs} = -{lhs}")
        return _Parsed(op, dst=dst)
    if m := _MOVSX.match(rhs):                               # movsx
        op = _pick(_ALU, (f"= {m.group(1)}", width, True), f"sign extension {m.group(1)}")
        _same_width(width, m.group(2))
        return _Parsed(op, dst=dst, src=_lreg(m.group(2))[0])
    words = rhs.split()
    if len(words) == 2 and words[0] in _END:                 # byte swap
        if _lreg(words[1])[0] != dst:
            raise _Bad(f"{words[0]} swaps its own register: expected {lhs} = {words[0]} {lhs}")
        return _Parsed(_END[words[0]], dst=dst)
    is_reg = _LREG.match(rhs) is not None                    # mov
    op = _pick(_ALU, ("=", width, is_reg), "move")
    if is_reg:
        _same_width(width, rhs)
        return _Parsed(op, dst=dst, src=_lreg(rhs)[0])
    return _Parsed(op, dst=dst, imm=_signed(rhs, 32, "imm"))


def _parse_atomic(lhs: str, func: str, args: list[str]) -> _Parsed:
    """``r1 = atomic_fetch_add((u64 *)(addr), r1)``, ``r1 = xchg_64(addr, r1)``,
    ``r0 = cmpxchg_64(addr, r0, r1)``."""
    rows = {w: op for (f, w), op in _ATOMIC_FUNC.items() if f == func}
    if not rows:
        raise _Bad(f"unknown function {func!r}")
    typed = _TYPED_ADDR.match(args[0]) if args else None
    if typed:      # the pointer type gives the width
        width = int(typed.group(1).lstrip("u"))
    elif len(rows) == 1:
        width = next(iter(rows))
    else:
        width = _lreg(lhs)[1]
    op = _pick(rows, width, f"{func} on {width}-bit values")
    cmpxchg = op.operation == "cmpxchg"
    _need(func, args, 3 if cmpxchg else 2)
    dst, off = _laddr(typed.group(2) if typed else args[0])
    src, result = _lreg(args[-1])[0], _lreg(lhs)[0]
    if cmpxchg and (result != 0 or _lreg(args[1])[0] != 0):
        raise _Bad(f"{func} compares with and writes r0: expected r0 = {func}(addr, r0, src)")
    if not cmpxchg and result != src:
        raise _Bad(f"{func} returns into its value register: expected "
                   f"{args[-1]} = {func}(..., {args[-1]})")
    return _Parsed(op, dst=dst, off=off, src=src)


def _check_writes(p: _Parsed) -> None:
    """The row's Field usage says which registers are written; r10 may not be."""
    for name in ("dst", "src"):
        if getattr(p.op, name) is Field.WRITE and getattr(p, name) == NUM_REGS - 1:
            raise _Bad(f"bad register r{NUM_REGS - 1}: {p.op.name} writes its {name} and "
                       f"r{NUM_REGS - 1} is the read-only frame pointer")


# -- driver ----------------------------------------------------------------------------

_COMMENT = re.compile(r"#|//|;")
_LABEL_DEF = re.compile(r"\s*([A-Za-z_.$][\w.$]*)\s*:(?!\S)\s*(.*)$")
_PC_PREFIX = re.compile(r"\s*\d+:\s+")
_SYM_HEADER = re.compile(r"\s*[0-9a-fA-F]*\s*<[^<>]*>:\s*$")
_ANNOTATION = re.compile(r"\s*<[^<>]*>\s*$")
_LLVM_REG_WORD = re.compile(r"(?<![%\w])[rw]\d+\b")


def detect_syntax(text: str) -> str:
    """'ubpf' if the text uses %r registers or a uBPF-only mnemonic, else 'llvm'.

    Programs made only of ``exit`` and ``call`` lines read the same in both.
    """
    for line in text.splitlines():
        body = _COMMENT.split(line, 1)[0]
        if "%r" in body:
            return "ubpf"
        m = _LABEL_DEF.match(body)
        body = (m.group(2) if m else body).strip()
        if not body:
            continue
        first = body.split()[0]
        if first in _UBPF_ONLY:
            return "ubpf"
        if first == _LOCK_WORD:   # uBPF: lock add [%r10-8], ...; llvm: lock *(u64 *)(...) += ...
            return "llvm" if "*(" in body else "ubpf"
        if first not in _SHARED_WORDS or _LLVM_REG_WORD.search(body):
            return "llvm"
    return "ubpf"


def assemble_insns(text: str, syntax: str = "auto") -> list[Insn]:
    """Assemble text into :class:`Insn` rows; see the module docstring for the syntaxes."""
    if syntax == "auto":
        syntax = detect_syntax(text)
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown syntax {syntax!r}: expected one of {', '.join(SYNTAXES)}")
    llvm = syntax == "llvm"
    parse = _parse_llvm if llvm else _parse_ubpf
    insns: list[Insn] = []
    pending: list[tuple[int, str, str, int, str]] = []   # index, label, field, line, text
    labels: dict[str, tuple[int, int]] = {}              # name -> (slot, line)
    first_exit: int | None = None
    pc = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        body = _COMMENT.split(line, 1)[0]
        if llvm:
            if _SYM_HEADER.match(body):
                continue
            body = _ANNOTATION.sub("", _PC_PREFIX.sub("", body, count=1))
        while m := _LABEL_DEF.match(body):
            name = m.group(1)
            if name in labels:
                raise AsmError(f"duplicate label {name!r} (first defined on line "
                               f"{labels[name][1]})", lineno, line)
            labels[name] = (pc, lineno)
            body = m.group(2)
        body = " ".join(body.split())
        if not body:
            continue
        try:
            p = parse(body)
            _check_writes(p)
        except _Bad as exc:
            raise AsmError(str(exc), lineno, line) from None
        if p.label is not None:
            pending.append((len(insns), p.label, p.label_field, lineno, line))
        insn = make(p.op, pc, dst=p.dst, src=p.src, off=p.off, imm=p.imm, next_imm=p.next_imm)
        insns.append(insn)
        if insn.op.kind is Kind.EXIT and first_exit is None:
            first_exit = pc
        pc += insn.slots
    for index, label, field, lineno, line in pending:
        if label in labels:
            slot = labels[label][0]
        elif label == _EXIT.name and first_exit is not None:
            slot = first_exit         # the implicit label of the first exit
        else:
            raise AsmError(f"undefined label {label!r}", lineno, line)
        insn = insns[index]
        delta = slot - insn.pc - 1
        bits = 16 if field == "off" else 32
        if not -(1 << (bits - 1)) <= delta < 1 << (bits - 1):
            raise AsmError(f"label {label!r} is {delta} slots away, too far for a {bits}-bit "
                           "offset", lineno, line)
        insns[index] = replace(insn, **{field: delta})
    return insns


def assemble(text: str, syntax: str = "auto") -> bytes:
    """Assemble text (``syntax``: 'ubpf', 'llvm' or 'auto') into eBPF bytecode."""
    return encode(assemble_insns(text, syntax))
