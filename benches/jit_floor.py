"""The floor under any checked JIT of a bench program: its eBPF code compiled by LLVM with
nothing but its own instructions, for bench_jit.py to print beside the JIT.

No region checks, no instruction budget, no access counts, no state words: registers
are SSA values, the 512-byte frame is an LLVM alloca (so LLVM sees the stack as
memory of its own), every other address is the host address itself, and LLVM's O3
pipeline optimizes the lot for the host CPU.  What a JIT adds to keep the interpreter's
RunResult (checks, the budget, counts) can only cost time on top of this, so a program
whose floor is above a target multiple of gcc -O2 cannot meet it through its eBPF code.

Only what the bench programs use: one function, no helpers, calls, atomics or maps.
The instruction semantics are the JIT's own (xsim.jit.semantics), read from the same
lowered code, so the floor and the JIT compute the same thing.
"""
from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm
from llvmlite import ir

import xsim
from xsim.isa import interp as ip
from xsim.jit import cfg
from xsim.jit.semantics import ALU, END, I64, jcond

_I8P = ir.IntType(8).as_pointer()


class _Lift:
    """The state semantics.py's builders read: ``b``, ``const`` and ``l``."""

    def __init__(self, module: ir.Module, fn: ir.Function) -> None:
        self.module, self.l = module, self
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self._bswaps: dict[int, ir.Function] = {}

    def const(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v & ((1 << 64) - 1))

    def constant(self, ty: ir.IntType, v: int) -> ir.Constant:
        return ir.Constant(ty, v)

    def bswap(self, bits: int) -> ir.Function:
        if bits not in self._bswaps:
            self._bswaps[bits] = self.module.declare_intrinsic("llvm.bswap", [ir.IntType(bits)])
        return self._bswaps[bits]


def _through_r10(fn: cfg.Function, code, blocks: dict[int, cfg.Block]) -> set[int]:
    """The loads and stores whose address is r10 plus or minus numbers on every path: a
    register is a frame pointer (True), a number (False) or either (None), joined over
    the control flow until nothing changes."""
    def step(regs: list, pc: int) -> None:
        e, a, bslot, _c = code[pc].tolist()
        name = cfg.NAMES[e]
        dst = a - ip.R_BASE
        src = regs[bslot - ip.R_BASE] if ip.R_BASE <= bslot < ip.C_BASE else False
        if name in ("mov64", "mov32"):
            regs[dst] = src if name == "mov64" else False
        elif name in ("add64", "sub64"):
            regs[dst] = None if regs[dst] is None or src is None else regs[dst] or src
        elif name in ALU or name in END or name in cfg.LOADS or name == "lddw":
            regs[dst] = False
    entry = [False] * 10 + [True]
    state = {fn.entry: entry}
    work = [fn.entry]
    while work:
        start = work.pop()
        regs = list(state[start])
        for pc in blocks[start].pcs:
            step(regs, pc)
        for s in blocks[start].succs:
            old = state.get(s)
            new = regs if old is None else [x if x == y else None for x, y in zip(old, regs)]
            if new != old:
                state[s] = new
                work.append(s)
    out = set()
    for start, regs_in in state.items():
        regs = list(regs_in)
        for pc in blocks[start].pcs:
            e, a, bslot, _c = code[pc].tolist()
            name = cfg.NAMES[e]
            base = bslot if name in cfg.LOADS else a if name in cfg.STORES else None
            if base is not None and regs[base - ip.R_BASE] is True:
                out.add(pc)
            step(regs, pc)
    return out


def floor_ir(prog: xsim.Program) -> str:
    """``i64 @floor(ptr mem, i64 len)`` and ``i64 @floor_loop(ptr mem, i64 len, i64 n)``
    (``n`` runs, the sum of r0) for a bench program, as LLVM IR text."""
    code, consts = prog._code, prog._st[ip.C_BASE:]
    (fn,) = cfg.functions(code)
    blocks = cfg.blocks(fn, code)
    in_frame = _through_r10(fn, code, blocks)
    module = ir.Module("floor")
    llfn = ir.Function(module, ir.FunctionType(I64, [_I8P, I64]), "floor")
    llfn.attributes.add("noinline")
    f = _Lift(module, llfn)
    b = f.b
    regs = [b.alloca(I64, name=f"r{i}") for i in range(11)]
    stack = b.alloca(ir.ArrayType(ir.IntType(8), cfg.FRAME), name="stack")
    base = b.ptrtoint(stack, I64)
    for i, v in enumerate((b.ptrtoint(llfn.args[0], I64), llfn.args[1])):
        b.store(v, regs[1 + i])
    b.store(b.add(base, f.const(cfg.FRAME)), regs[10])
    bbs = {pc: llfn.append_basic_block(f"b{pc}") for pc in fn.leaders}
    b.branch(bbs[fn.entry])

    def operand(slot: int):
        if slot >= ip.C_BASE:
            return f.const(int(consts[slot - ip.C_BASE]))
        return b.load(regs[slot - ip.R_BASE])

    def pointer(pc: int, addr, size: int):
        bits = ir.IntType(8 * size).as_pointer()
        if pc in in_frame:      # through a copy of r10: the alloca
            return b.bitcast(b.gep(stack, [f.const(0), b.sub(addr, base)]), bits)
        return b.inttoptr(addr, bits)

    for k, start in enumerate(fn.leaders):
        b.position_at_end(bbs[start])
        nxt = fn.leaders[k + 1] if k + 1 < len(fn.leaders) else None
        for pc in blocks[start].pcs:
            e, a, bslot, c = code[pc].tolist()
            name = cfg.NAMES[e]
            if name in ALU:
                b.store(ALU[name](f, b.load(regs[a - ip.R_BASE]), operand(bslot)),
                        regs[a - ip.R_BASE])
            elif name in END:
                b.store(END[name](f, b.load(regs[a - ip.R_BASE])), regs[a - ip.R_BASE])
            elif name == "lddw":
                b.store(operand(bslot), regs[a - ip.R_BASE])
            elif name in cfg.LOADS:
                size, signed = cfg.LOADS[name]
                v = b.load(pointer(pc, b.add(operand(bslot), f.const(c)), size), align=1)
                if size < 8:
                    v = (b.sext if signed else b.zext)(v, I64)
                b.store(v, regs[a - ip.R_BASE])
            elif name in cfg.STORES:
                size = cfg.STORES[name]
                ptr = pointer(pc, b.add(b.load(regs[a - ip.R_BASE]), f.const(c)), size)
                v = operand(bslot)
                b.store(v if size == 8 else b.trunc(v, ir.IntType(8 * size)), ptr, align=1)
            elif name == "ja":
                b.branch(bbs[c])
            elif name in cfg.JCONDS:
                taken = jcond(f, name, b.load(regs[a - ip.R_BASE]), operand(bslot))
                b.cbranch(taken, bbs[c], bbs[nxt])
            elif name == "exit":
                b.ret(b.load(regs[0]))
            else:
                raise ValueError(f"pc {pc}: {name} is beyond the floor lifter (bench programs only)")
        if not b.block.is_terminated:
            b.branch(bbs[nxt])
    loop = ir.Function(module, ir.FunctionType(I64, [_I8P, I64, I64]), "floor_loop")
    lb = ir.IRBuilder(loop.append_basic_block("entry"))
    head, done = loop.append_basic_block("head"), loop.append_basic_block("done")
    lb.branch(head)
    lb.position_at_end(head)
    i, total = lb.phi(I64), lb.phi(I64)
    # the runs are all alike: without this LLVM would make one
    lb.asm(ir.FunctionType(ir.VoidType(), [_I8P]), "", "r,~{memory}", [loop.args[0]],
           side_effect=True)
    r0 = lb.call(llfn, loop.args[:2])
    i2, total2 = lb.add(i, ir.Constant(I64, 1)), lb.add(total, r0)
    i.add_incoming(ir.Constant(I64, 0), loop.entry_basic_block)
    total.add_incoming(ir.Constant(I64, 0), loop.entry_basic_block)
    i.add_incoming(i2, head)
    total.add_incoming(total2, head)
    lb.cbranch(lb.icmp_unsigned("<", i2, loop.args[2]), head, done)
    lb.position_at_end(done)
    lb.ret(total2)
    return str(module)


#: LLVM pipelines the floor is built with (speed level, vectorize, unroll): LLVM's choices
#: for one loop are no better at -O3 than at -O1 (the sieve runs faster at -O1 without
#: unrolling, the checksum 3x slower vectorized), so the floor is the fastest of them
PIPELINES = ((3, True, True), (3, False, True), (2, False, True), (1, False, False))


def _build(text: str, level: int, vectorize: bool, unroll: bool):
    # the engine owns its target machine (and frees it when closed): one each
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    mod = llvm.parse_assembly(text)
    mod.verify()
    tuning = llvm.PipelineTuningOptions(speed_level=level)
    tuning.loop_vectorization = tuning.slp_vectorization = vectorize
    tuning.loop_unrolling = unroll
    pb = llvm.create_pass_builder(tm, tuning)
    pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return engine


def floor_ns(prog: xsim.Program, memory: bytes, seconds: float) -> tuple[float, int, str]:
    """(ns per run, r0 of one run, which pipeline) of the fastest floor build of ``prog``
    on ``memory``: for each of PIPELINES the best of three timings of a native loop of
    runs, ``seconds`` in all."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    text = floor_ir(prog)
    buf = ctypes.create_string_buffer(memory, len(memory))
    best, r0s, which = float("inf"), set(), ""
    for level, vectorize, unroll in PIPELINES:
        engine = _build(text, level, vectorize, unroll)
        one = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_char_p, ctypes.c_int64)(
            engine.get_function_address("floor"))
        loop = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_char_p, ctypes.c_int64,
                                ctypes.c_int64)(engine.get_function_address("floor_loop"))
        r0s.add(one(buf, len(memory)))
        t0 = time.perf_counter()
        loop(buf, len(memory), 100)
        per = seconds / len(PIPELINES) / 3
        n = max(1, int(per / max(time.perf_counter() - t0, 1e-9) * 100))
        for _ in range(3):
            t0 = time.perf_counter()
            loop(buf, len(memory), n)
            ns = (time.perf_counter() - t0) / n * 1e9
            if ns < best:
                best = ns
                which = f"-O{level}" + ("" if vectorize else " no-vec") + ("" if unroll else
                                                                           " no-unroll")
        engine.close()
    if len(r0s) != 1:
        raise RuntimeError(f"the floor builds disagree on r0: {sorted(r0s)}")
    return best, r0s.pop(), which
