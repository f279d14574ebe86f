"""Calling native code from numba-compiled loops (the capture loop runs JIT code this way)."""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I64 = ir.IntType(64)


@intrinsic
def call_entry(typingctx, address, st, env, runs, fresh):
    """``xsim_entry(st, env, runs, fresh)`` at ``address``: an indirect call in the loop."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_I64, [_I64.as_pointer(), _I64.as_pointer(), _I64, _I64])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        ptrs = [builder.bitcast(context.make_array(t)(context, builder, a).data,
                                _I64.as_pointer())
                for t, a in ((signature.args[1], args[1]), (signature.args[2], args[2]))]
        return builder.call(fn, [*ptrs, args[3], args[4]])
    return types.int64(types.int64, st, env, types.int64, types.int64), codegen
