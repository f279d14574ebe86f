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

Run alone, it prints for each bench program the floor beside gcc -O2 (measured in the
same run) and the floor with one piece of the JIT's exact counting built in
(COUNTING): what that piece costs before any check or count of the JIT's own.

    python benches/jit_floor.py [--json] [--seconds S]
"""
from __future__ import annotations

import ctypes
import json
import sys
import time
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

import xsim
from xsim.isa import interp as ip
from xsim.jit.engine import host_features
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


#: what exact counting adds to the floor, one piece at a time (``floor_ir``'s ``extra``):
#: each kept in a register and stored to a global at the exit, so that LLVM keeps it
COUNTING = {
    "block counts": "the instructions left, less each block's length as it runs",
    "budget checks": "block counts, and a compare of them at every backward jump's target",
    "loop counter": "one counter, one more at every backward jump's target",
    "access count": "one counter, one more at every load and store",
}


def floor_ir(prog: xsim.Program, extra: str | None = None) -> str:
    """``i64 @floor(ptr mem, i64 len)`` and ``i64 @floor_loop(ptr mem, i64 len, i64 n)``
    (``n`` runs, the sum of r0) for a bench program, as LLVM IR text; ``extra``: one
    piece of exact counting (a key of COUNTING) built in."""
    if extra is not None and extra not in COUNTING:
        raise ValueError(f"no counting piece {extra!r}: one of {sorted(COUNTING)}")
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
    counter = b.alloca(I64, name="counter")
    b.store(f.const(1 << 40), counter)
    counted = ir.GlobalVariable(module, I64, "counted")
    counted.initializer = f.const(0)
    heads = {fn.entry} | {t for st in fn.leaders for t in blocks[st].succs if t <= st}
    bbs = {pc: llfn.append_basic_block(f"b{pc}") for pc in fn.leaders}
    b.branch(bbs[fn.entry])

    def bump(by: int) -> None:
        b.store(b.add(b.load(counter), f.const(by)), counter)

    def counting(start: int) -> None:
        """The piece of counting at the top of the block at ``start``."""
        if extra == "budget checks" and start in heads:
            over = llfn.append_basic_block(f"over{start}")
            body = llfn.append_basic_block(f"body{start}")
            b.cbranch(b.icmp_unsigned(">=", b.load(counter), f.const(64)), body, over)
            b.position_at_end(over)
            b.ret(f.const(-1))
            b.position_at_end(body)
        if extra in ("block counts", "budget checks"):
            bump(-len(blocks[start].pcs))
        elif extra == "loop counter" and start in heads:
            bump(1)

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
        counting(start)
        for pc in blocks[start].pcs:
            e, a, bslot, c = code[pc].tolist()
            name = cfg.NAMES[e]
            if extra == "access count" and (name in cfg.LOADS or name in cfg.STORES):
                bump(1)
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
                if extra is not None:       # a store, not an add: no chain from run to run
                    b.store(b.load(counter), counted)
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
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    # the engine owns its target machine (and frees it when closed): one each
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=host_features(), opt=3)
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


def _label(level: int, vectorize: bool, unroll: bool) -> str:
    return f"-O{level}" + ("" if vectorize else " no-vec") + ("" if unroll else " no-unroll")


def _one_run(engine, buf) -> int:
    """r0 of one run of a floor build's ``floor`` on ``buf``."""
    one = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_char_p, ctypes.c_int64)(
        engine.get_function_address("floor"))
    return one(buf, len(buf))


def fastest(texts: dict, memory: bytes, seconds: float, rounds: int = 3
            ) -> tuple[dict, int]:
    """{key: (ns per run, pipeline)} of the fastest build of each floor IR text in
    ``texts`` on ``memory``, and the r0 they all gave: every text built with each of
    PIPELINES, then ``rounds`` rounds that time each build in turn (so that a slow
    spell of a shared machine falls on all of them alike), ``seconds`` in all."""
    buf = ctypes.create_string_buffer(memory, len(memory))
    builds, r0s = [], set()
    for key, text in texts.items():
        for pipeline in PIPELINES:
            engine = _build(text, *pipeline)
            loop = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_char_p, ctypes.c_int64,
                                    ctypes.c_int64)(engine.get_function_address("floor_loop"))
            r0s.add(_one_run(engine, buf))
            t0 = time.perf_counter()
            loop(buf, len(memory), 100)
            per = seconds / len(PIPELINES) / len(texts) / rounds
            n = max(1, int(per / max(time.perf_counter() - t0, 1e-9) * 100))
            builds.append((key, _label(*pipeline), engine, loop, n))
    best: dict = {key: (float("inf"), "") for key in texts}
    for _ in range(rounds):
        for key, label, _engine, loop, n in builds:
            t0 = time.perf_counter()
            loop(buf, len(memory), n)
            ns = (time.perf_counter() - t0) / n * 1e9
            if ns < best[key][0]:
                best[key] = (ns, label)
    for _key, _label_, engine, _loop, _n in builds:
        engine.close()
    if len(r0s) != 1:
        raise RuntimeError(f"the floor builds disagree on r0: {sorted(r0s)}")
    return best, r0s.pop()


def floor_ns(prog: xsim.Program, memory: bytes, seconds: float) -> tuple[float, int, str]:
    """(ns per run, r0 of one run, which pipeline) of the fastest floor build of ``prog``
    on ``memory``: the best of three timings of a native loop of runs for each of
    PIPELINES, ``seconds`` in all."""
    best, r0 = fastest({None: floor_ir(prog)}, memory, seconds)
    ns, which = best[None]
    return ns, r0, which


def counted(prog: xsim.Program, memory: bytes, piece: str) -> tuple[int, int]:
    """(r0, the counter at the exit) of one run of the floor with ``piece`` built in
    (the block counts' counter starts at 2**40 and goes down)."""
    engine = _build(floor_ir(prog, piece), *PIPELINES[-1])
    try:
        r0 = _one_run(engine, ctypes.create_string_buffer(memory, len(memory)))
        return r0, ctypes.c_int64.from_address(engine.get_global_value_address("counted")).value
    finally:
        engine.close()


def counting_costs(prog: xsim.Program, memory: bytes, seconds: float) -> dict:
    """{None: the floor, piece: what the floor with that piece of COUNTING built in
    takes}, each (ns per run, pipeline), timed side by side."""
    texts = {None: floor_ir(prog)} | {piece: floor_ir(prog, piece) for piece in COUNTING}
    return fastest(texts, memory, seconds, rounds=6)[0]


def main(argv: list[str] | None = None) -> int:
    """What exact counting costs on the floor, for each bench program beside gcc -O2."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_interp import PROGRAMS, bench_program, bench_setup, native_harness
    args, progs = bench_setup(__doc__, argv)
    if progs is None:
        return 2
    rows = {}
    with native_harness(progs) as gcc:
        for name in PROGRAMS:
            prog, memory = bench_program(progs, name)
            # gcc's time before and after the floor builds', the better kept (slow spells)
            before = gcc(args.seconds / 2)[name] if gcc else None
            costs = counting_costs(prog, memory, args.seconds)
            nat = min(before, gcc(args.seconds / 2)[name]) if gcc else None
            floor = costs[None][0]
            print(f"{name}: gcc -O2 {nat:.1f} ns" if nat else f"{name}: (no gcc)")
            for piece, (ns, build) in costs.items():
                what = "floor" if piece is None else f"+ {piece}"
                of_native = f" {ns / nat:5.2f}x of gcc" if nat else ""
                print(f"  {what:17} {ns:10.1f} ns {ns / floor:5.2f}x of the floor{of_native} "
                      f"({build})")
            rows[name] = {"native_ns": nat, **{piece or "floor": {"ns": ns, "build": build}
                                               for piece, (ns, build) in costs.items()}}
    for piece, what in COUNTING.items():
        print(f"+ {piece}: {what}")
    if args.json:
        print(json.dumps({"bench": "jit_floor", "programs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
