"""What each ALU, byte-swap and conditional-jump exec name computes, as LLVM IR.

RFC 9669's semantics, as the interpreter computes them: division by zero gives 0
and modulo by zero the dividend, INT_MIN / -1 wraps, shift counts are masked to
the operand width, 32-bit results are zero-extended.  Each entry takes the
lifter's per-function state ``f`` (its builder ``f.b``, ``f.const`` and the
module's ``f.l.constant`` constants and ``f.l.bswap`` intrinsics) and the operand
values.  The ``plant.active()`` tests build a known JIT bug instead, for the
differential checker's tests (:mod:`.plant`).
"""
from __future__ import annotations

from llvmlite import ir

from . import plant

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))


def _m32(f, v):
    return f.b.and_(v, f.const(0xFFFFFFFF))


def _z32(f, v):
    """A 32-bit ALU result: its low half, zero-extended."""
    if plant.active() == "alu32_no_zext":
        return f.b.sext(f.b.trunc(v, I32), I64)
    return _m32(f, v)


def _divmod(f, x, y, signed: bool, mod: bool, width: int):
    """Division by zero gives 0, modulo by zero the dividend; INT_MIN / -1 wraps."""
    b = f.b
    if signed and plant.active() == "sdiv_as_udiv":
        signed = False
    ty = ir.IntType(width)
    x, y = b.trunc(x, ty) if width < 64 else x, b.trunc(y, ty) if width < 64 else y
    zero = f.l.constant(ty, 0)
    is_zero = b.icmp_unsigned("==", y, zero)
    safe = b.select(is_zero, f.l.constant(ty, 1), y)
    if signed:
        minus1 = b.icmp_signed("==", safe, f.l.constant(ty, -1))
        safe = b.select(minus1, f.l.constant(ty, 1), safe)
        q = b.srem(x, safe) if mod else b.sdiv(x, safe)
        q = b.select(minus1, zero if mod else b.neg(x), q)
    else:
        q = b.urem(x, safe) if mod else b.udiv(x, safe)
    if plant.active() != "divmod_zero":
        q = b.select(is_zero, x if mod else zero, q)
    return b.zext(q, I64) if width < 64 else q


def _shift(f, kind: str, x, y, width: int):
    b = f.b
    if kind == "arsh" and plant.active() == "arsh_as_rsh":
        kind = "rsh"
    ty = ir.IntType(width)
    xx = b.trunc(x, ty) if width < 64 else x
    yy = b.and_(b.trunc(y, ty) if width < 64 else y, f.l.constant(ty, width - 1))
    r = {"lsh": b.shl, "rsh": b.lshr, "arsh": b.ashr}[kind](xx, yy)
    if plant.active() == "shift_unmasked" and not isinstance(y, ir.Constant):
        # a count >= width shifts every bit out, as a shifter that does not mask it
        big = b.icmp_unsigned(">=", b.trunc(y, ty) if width < 64 else y, f.l.constant(ty, width))
        out = b.ashr(xx, f.l.constant(ty, width - 1)) if kind == "arsh" else f.l.constant(ty, 0)
        r = b.select(big, out, r)
    return b.zext(r, I64) if width < 64 else r


def _sx(f, v, bits: int, width: int):
    if plant.active() == "movsx_as_mov":
        r = v
    else:
        r = f.b.sext(f.b.trunc(v, ir.IntType(bits)), I64)
    return _m32(f, r) if width == 32 else r


def _alu_table() -> dict:
    t = {}
    for w in (64, 32):
        def fix(fn, w=w):
            return (lambda f, x, y: _z32(f, fn(f, x, y))) if w == 32 else fn
        t[f"add{w}"] = fix(lambda f, x, y: f.b.add(x, y))
        t[f"sub{w}"] = fix(lambda f, x, y: f.b.sub(x, y))
        t[f"mul{w}"] = fix(lambda f, x, y: f.b.mul(x, y))
        t[f"or{w}"] = fix(lambda f, x, y: f.b.or_(x, y))
        t[f"and{w}"] = fix(lambda f, x, y: f.b.and_(x, y))
        t[f"xor{w}"] = fix(lambda f, x, y: f.b.xor(x, y))
        t[f"mov{w}"] = fix(lambda f, x, y: y)
        t[f"neg{w}"] = fix(lambda f, x, y: f.b.neg(x))
        for k in ("lsh", "rsh", "arsh"):
            t[f"{k}{w}"] = (lambda f, x, y, k=k, w=w: _shift(f, k, x, y, w))
        t[f"div{w}"] = lambda f, x, y, w=w: _divmod(f, x, y, False, False, w)
        t[f"mod{w}"] = lambda f, x, y, w=w: _divmod(f, x, y, False, True, w)
        t[f"sdiv{w}"] = lambda f, x, y, w=w: _divmod(f, x, y, True, False, w)
        t[f"smod{w}"] = lambda f, x, y, w=w: _divmod(f, x, y, True, True, w)
        for bits in (8, 16, 32):
            if not (w == 32 and bits == 32):
                t[f"movsx{bits}_{w}"] = lambda f, x, y, bits=bits, w=w: _sx(f, y, bits, w)
    return t


ALU = _alu_table()


def _end_table() -> dict:
    t = {}
    for bits in (16, 32, 64):
        mask = (1 << bits) - 1
        t[f"le{bits}"] = (lambda f, x, mask=mask: f.b.and_(x, f.const(mask))) if bits < 64 \
            else (lambda f, x: x)
        t[f"be{bits}"] = lambda f, x, bits=bits: _bswap(f, x, bits)
    return t


def _bswap(f, x, bits: int):
    b = f.b
    if bits < 64 and plant.active() == "be_swap_width":
        bits *= 2
    v = b.trunc(x, ir.IntType(bits)) if bits < 64 else x
    v = b.call(f.l.bswap(bits), [v])
    return b.zext(v, I64) if bits < 64 else v


END = _end_table()


def jcond(f, name: str, x, y):
    b = f.b
    cond, width = name[:-2], int(name[-2:])
    if width == 32 and plant.active() != "jmp32_as_64":
        x, y = b.trunc(x, I32), b.trunc(y, I32)
    if cond == "jset":
        return b.icmp_unsigned("!=", b.and_(x, y), f.l.constant(x.type, 0))
    ops = {"jeq": ("==", False), "jne": ("!=", False), "jgt": (">", False),
           "jge": (">=", False), "jlt": ("<", False), "jle": ("<=", False),
           "jsgt": (">", True), "jsge": (">=", True), "jslt": ("<", True), "jsle": ("<=", True)}
    op, signed = ops[cond]
    return (b.icmp_signed if signed else b.icmp_unsigned)(op, x, y)
