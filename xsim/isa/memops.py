"""Unaligned little-endian loads and stores on a byte array, for numba code.

numba indexes arrays element by element; eBPF loads 2, 4 and 8 bytes at any
address (pkt_parse reads the IPv4 source address at offset 26).  These
intrinsics emit one unaligned LLVM load or store.  They do **no bounds
check**: the caller must have checked the host index against the region
table first (``interp._translate``).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _make_load(bits: int):
    @intrinsic
    def load(typingctx, arr, idx):
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(bits).as_pointer())
            value = builder.load(ptr, align=1)
            return builder.zext(value, ir.IntType(64)) if bits < 64 else value
        return types.uint64(arr, idx), codegen
    return load


def _make_store(bits: int):
    @intrinsic
    def store(typingctx, arr, idx, value):
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(bits).as_pointer())
            data = args[2]
            if bits < 64:
                data = builder.trunc(data, ir.IntType(bits))
            builder.store(data, ptr, align=1)
            return context.get_dummy_value()
        return types.none(arr, idx, value), codegen
    return store


load8, load16, load32, load64 = (_make_load(b) for b in (8, 16, 32, 64))
store8, store16, store32, store64 = (_make_store(b) for b in (8, 16, 32, 64))


def _byte_pointer(context, builder, sig_arg, arr, idx):
    ary = context.make_array(sig_arg)(context, builder, arr)
    return builder.gep(ary.data, [idx])


@intrinsic
def copy_bytes(typingctx, dst, dpos, src, spos, n):
    """``dst[dpos:dpos+n] = src[spos:spos+n]`` as one memmove (no bounds check)."""
    def codegen(context, builder, signature, args):
        d = _byte_pointer(context, builder, signature.args[0], args[0], args[1])
        s = _byte_pointer(context, builder, signature.args[2], args[2], args[3])
        cgutils.raw_memmove(builder, d, s, args[4], 1)
        return context.get_dummy_value()
    return types.none(dst, dpos, src, spos, n), codegen


@intrinsic
def zero_bytes(typingctx, dst, pos, n):
    """``dst[pos:pos+n] = 0`` as one memset (no bounds check)."""
    def codegen(context, builder, signature, args):
        d = _byte_pointer(context, builder, signature.args[0], args[0], args[1])
        cgutils.memset(builder, d, args[2], 0)
        return context.get_dummy_value()
    return types.none(dst, pos, n), codegen
