"""eBPF -> LLVM IR: one LLVM function per eBPF function, with the interpreter's checks.

The lifter reads what the interpreter runs: the lowered code of
:func:`xsim.isa.interp.lower` (exec id, operand slots, offset or target per
slot) and the exec names of the opcode table, so there is no second list of
instructions or operand rules.  The generated code works on the
interpreter's own arrays (``st`` state words, ``mem`` host memory, ``rg``
region table), so a run can stop in native code and be explained, resumed
into Python helpers and checked exactly as the interpreter's:

* every load, store and atomic goes through the region table as
  ``interp._translate`` does (bounds, permissions, access counters), and a
  violation stops with the same fault words (pc, address, size, kind);
* the instruction budget is checked at checkpoints (a function's entry, the
  targets of backward jumps, the blocks after calls) for the longest path to
  the next one: where that does not fit, the run is handed to the
  interpreter (registers, call frames and counts are in its own words), which
  stops it at the very instruction;
* bpf-to-bpf calls are LLVM calls with their own 512-byte stack frame (the
  stack region row moves as in the interpreter) and the 8-frame limit;
* ``bpf_map_lookup_elem`` on array, hash and LPM maps calls the
  interpreter's own compiled lookup; every other helper calls back into
  Python through one function pointer, with the registers spilled to ``st``.

The target triple is a parameter: the same IR is what the cross-ISA checker
compiles for aarch64 and riscv64.
"""
from __future__ import annotations

import bisect
import contextlib
import gc
from collections.abc import Iterator

import numpy as np
from llvmlite import ir

from ..isa import interp as ip
from ..isa import opcodes as oc

from . import bounds, cfg, frame, live, loops, plant
from .guard import guard
from .irbuild import Builder
from .cfg import (ENDS, FRAME, JCONDS, LOADS, NAMES, PKT, STORES, Function, JitUnsupported,
                  functions)
from .semantics import ALU, END, I8, I16, I32, I64, jcond

I64P, I8P = I64.as_pointer(), I8.as_pointer()
#: the integer type of a memory access of each size, and its pointer type
_ACCESS = {ty.width // 8: (ty, ty.as_pointer()) for ty in (I8, I16, I32, I64)}

# -- the env words: what the driver gives the native code, reread after each call out --
ENV_MEM, ENV_RG, ENV_ROWS, ENV_MEM_LEN, ENV_ST_LEN, ENV_HELPER, ENV_LOOKUP, ENV_BUDGET = range(8)
ENV_PY_CALLS = 8      # Python helper calls served since the driver last cleared it
ENV_COUNTS = 9        # a profiling build's per-pc execution counts (the Program's counts)
ENV_CORE = 10         # the interpreter's other helpers (interp.serve_core), for native code
ENV_TAIL = 11         # the interpreter's bpf_tail_call of linked code (interp.tail_call)
ENV_WORDS = 12

# -- statuses: the interpreter's (ip.DONE ... ip.UNRESOLVED), and these of the JIT -----
RETURNED = 0          # inside: a function returned normally
STOP_RUN = 100        # the run ends here, r0 in st (LD_ABS out of bounds, a helper's stop)
HELPER_FAILED = 101   # the Python helper failed: the driver holds the error
TAIL_CALL = 102       # a helper asked for a tail call: the driver holds the target
#: how much likelier the side of a jump that goes on is than one that returns at once
EARLY_RETURN_ODDS = 16
HANDOFF = 103         # the budget ends within a block: the interpreter goes on from st
HANDOFF_RUN = 104     # a lookup the core cannot serve: the interpreter does this run's rest,
                      # then native code the runs left (entered with ENTER_GO_ON)
TAIL_JUMP = 105       # inside, linked code: a tail call to the member starting at st[S_PC]
# the entry's ``fresh``: counts kept and r0 = 0 (a tail call's target); counts zeroed and
# r0 = 0; counts kept and r0 as the last run left it in st (after a HANDOFF_RUN)
ENTER_KEEP, ENTER_FRESH, ENTER_GO_ON = 0, 1, 2
# what the Python helper callback returns
CB_GO_ON, CB_FAILED, CB_TAIL_CALL, CB_STOP = 0, 1, 2, 3

ENTRY = "xsim_entry"
_MASK = (1 << 64) - 1
#: helpers the interpreter's core serves, and the words counting those served
_CORE_HELPERS = dict(ip.CORE_COUNTS)
_CALL_COUNTS = [(h, w) for h, w in ip.CORE_COUNTS if h in ip.CORE_IDS]
#: where a tail call's target starts (TAIL_JUMP) and its first r1 and r2
_JUMP_WORDS = (ip.S_PC, ip.S_INIT_R1, ip.S_INIT_R2)
#: instructions that can neither fault nor leave the function: no count to make for them
_COUNTLESS = set(ALU) | set(END) | JCONDS | {"lddw", "ja"}


class _Reload:
    """The shared miss block of one function: phis for what each access brings (its
    address, size, permission, fault kind, pc and count) and a switch back to it."""

    def __init__(self, f: _Fn) -> None:
        self.f = f
        self.b = b = f.b
        e = f.cache
        self.block = f.llfn.append_basic_block("reload")
        with b.goto_block(self.block):
            saved = b.debug_metadata
            b.debug_metadata = None if f.scope is None else f._no_pc
            self.phis = [b.phi(I64, name=n) for n in
                         ("addr", "size", "perm", "kind", "pc", "count")]
            self.case = b.phi(I32, name="case")
            addr, size, perm, kind, pc, count = self.phis
            fault = f.llfn.append_basic_block("fault")
            load = f.llfn.append_basic_block("load_row")
            rows_ok = f.llfn.append_basic_block("row_ok")
            rid = b.lshr(addr, f.const(ip.REGION_SHIFT))
            # the cached row itself: a fault; another one: load it, if the table has it
            b.cbranch(b.icmp_unsigned("==", rid, b.load(e["rid"])), fault, rows_ok)
            b.position_at_end(rows_ok)
            b.cbranch(b.icmp_unsigned("<", rid, b.load(f.rows)), load, fault)
            b.position_at_end(load)
            f._load_entry(rid)
            sizes = {k: b.load(e[v]) for k, v in f._SIZE_OF.items()}
            r, w = int(ip.PERM_R), int(ip.PERM_W)
            entry_size = b.select(b.icmp_unsigned("==", perm, f.const(r)), sizes[r], b.select(
                b.icmp_unsigned("==", perm, f.const(w)), sizes[w], sizes[r | w]))
            dispatch = self.dispatch = f.llfn.append_basic_block("back")
            b.cbranch(f._out_of(entry_size, b.sub(addr, b.load(e["vbase"])), size), fault,
                      dispatch)
            b.position_at_end(dispatch)
            nowhere = f.llfn.append_basic_block("nowhere")
            self.switch = b.switch(self.case, nowhere)
            b.position_at_end(nowhere)
            b.unreachable()
            b.position_at_end(fault)
            st = f.st
            f.word(st, ip.S_STATUS, f.const(ip.FAULT))
            f.word(st, ip.S_PC, pc)
            f.word(st, ip.S_INSNS, count)
            for word, v in zip((ip.S_FAULT_ADDR, ip.S_FAULT_SIZE, ip.S_FAULT_KIND),
                               (addr, size, kind)):
                f.word(st, word, v)
            b.branch(f._exit_block())
            b.debug_metadata = saved
        self.cases = 0

    def here(self, came: ir.Block, addr):
        """At the start of the block an access goes on at: its address, come either way."""
        phi = self.b.phi(I64)
        phi.add_incoming(addr, came)
        phi.add_incoming(self.phis[0], self.dispatch)
        return phi

    def arrive(self, came: ir.Block, back: ir.Block, addr, size: int, perm: int, kind: int,
               pc: int, count) -> None:
        """An access in ``came`` misses the cached row; it goes on at ``back``."""
        c = self.f.const
        for phi, v in zip(self.phis, (addr, c(size), c(perm), c(kind), c(pc), count)):
            phi.add_incoming(v, came)
        case = self.f.l.constant(I32, self.cases)
        self.case.add_incoming(case, came)
        self.switch.add_case(case, back)
        self.cases += 1


class _Fn:
    """The IR builder state of one eBPF function."""

    def __init__(self, lifter: Lifter, fn: Function, llfn: ir.Function) -> None:
        self.l, self.fn, self.llfn = lifter, fn, llfn
        entry = llfn.append_basic_block("entry")
        b = self.b = Builder(entry)
        self.scope = lifter.subprogram(llfn, fn.entry + 1) if lifter.debug else None
        self._shared_blocks: dict[str, tuple] = {}
        #: the base register whose accesses its block's group check covered (or None)
        self.unchecked: int | None = None
        #: while a versioned loop's unchecked copy is built: (loop, rows, counts)
        self.fast: tuple | None = None
        #: while that copy derives its counts from its iterations (_derive): their counter
        self.iterations = None
        self.route: dict[int, ir.Block] = {}
        self._reload_at: _Reload | None = None
        #: pc -> its DILocation (debug builds)
        self._locations: dict[int, ir.DIValue] = {}
        if self.scope is not None:     # where code has no one pc (the shared exit)
            self._no_pc = lifter.module.add_debug_info(
                "DILocation", {"line": 0, "column": 0, "scope": self.scope})
        self.at(fn.entry)
        self.st, self.env, self.out = llfn.args[0], llfn.args[1], llfn.args[2]
        self.depth = llfn.args[14]
        self.regs = [b.alloca(I64, name=f"r{i}") for i in range(11)]
        for i in range(11):
            b.store(llfn.args[3 + i], self.regs[i])
        #: the budget left: budget - instructions counted, so that a checkpoint compares
        #: it with a constant and the budget itself stays out of the loops' registers
        self.left = b.alloca(I64, name="left")
        self.mem = b.alloca(I8P, name="mem")
        self.rg = b.alloca(I64P, name="rg")
        self.rows = b.alloca(I64, name="rows")
        #: where a callee leaves r0..r5
        self.callee_regs = b.alloca(I64, 6, name="callee_regs")
        #: which call site the Python-helper block goes back to
        self.py_site = b.alloca(I64, name="py_site")
        self.budget = self.word(self.env, ENV_BUDGET)
        self.set_count(self.word(self.st, ip.S_INSNS))
        self.reload_env()
        self.cfg = cfg.blocks(fn, lifter.code)
        #: the last pcs of the blocks inside some backward jump's span (every loop's
        #: blocks, and more)
        self.in_loop: set[int] = set()
        reach = -1          # the end of the spans merged so far, in pc order
        for t, u in sorted((t, s) for s, blk in self.cfg.items() for t in blk.succs if t <= s):
            lo = bisect.bisect_left(fn.leaders, max(t, reach + 1))
            self.in_loop.update(self.cfg[s].pcs[-1]
                                for s in fn.leaders[lo:bisect.bisect_right(fn.leaders, u)])
            reach = max(reach, u)
        self.live = live.Liveness(fn, self.cfg, lifter.code, fn.entry in lifter.top_only)
        # a planted bug would break the proof's premises (plant.py), as for loops
        self.proof = bounds.Proof() if plant.active() else bounds.prove(
            fn, lifter.code, lifter.consts, self.cfg)
        #: accesses through copies of r10 that stay in the frame (frame.py)
        self.in_frame = set() if plant.active() else frame.proven(
            fn, lifter.code, lifter.consts, self.cfg)
        self._cache_init()
        self.entry_guard = self._guard_on_entry()
        self.blocks = {pc: llfn.append_basic_block(f"b{pc}") for pc in fn.leaders}
        b.branch(self.blocks[fn.entry])

    # -- small pieces ---------------------------------------------------------------------
    def at(self, pc: int) -> None:
        """The instructions built from here on come from ``pc`` (debug builds only)."""
        if self.scope is not None:
            loc = self._locations.get(pc)
            if loc is None:     # add_debug_info would find it, after sorting its operands
                loc = self._locations[pc] = self.l.module.add_debug_info(
                    "DILocation", {"line": pc + 1, "column": 0, "scope": self.scope})
            self.b.debug_metadata = loc

    def word(self, base, index, value=None, tag: str | None = None):
        """Load (or store ``value`` into) word ``index`` of an i64 array; ``st`` and ``env``
        accesses get their alias class by themselves, others say theirs in ``tag``."""
        ptr = self.b.gep(base, [index if isinstance(index, ir.Value) else self.const(index)])
        tag = tag or ("st" if base is self.st else "env" if base is self.env else None)
        if value is None:
            instr = self.b.load(ptr, align=8)
            ret = instr
        else:
            instr = self.b.store(value, ptr, align=8)
            ret = None
        if tag is not None:
            instr.set_metadata("tbaa", self.l.tbaa[tag])
        return ret

    def rgword(self, rg, row, col: int, value=None):
        """Word ``col`` of the region table's row that starts at word ``row``.  The
        access counts have an alias class of their own: adding to them never changes a
        row's bounds, so LLVM may keep those in registers (or out of a repeat loop)."""
        tag = "rg_count" if col in (ip.RG_READS, ip.RG_WRITES) else "rg"
        return self.word(rg, self.b.add(row, self.const(col)), value, tag)

    def reload_env(self) -> None:
        b = self.b
        b.store(b.inttoptr(self.word(self.env, ENV_MEM), I8P), self.mem)
        b.store(b.inttoptr(self.word(self.env, ENV_RG), I64P), self.rg)
        b.store(self.word(self.env, ENV_ROWS), self.rows)

    def reg(self, i: int):
        return self.b.load(self.regs[i])

    def set_reg(self, i: int, v) -> None:
        self.b.store(v, self.regs[i])

    def operand(self, slot: int):
        """An operand slot of the lowered code: a register, or an instruction's constant."""
        if slot >= ip.C_BASE:
            return self.const(int(self.l.consts[slot - ip.C_BASE]))
        return self.reg(slot - ip.R_BASE)

    def const(self, v: int) -> ir.Constant:
        """The i64 constant ``v`` (modulo 2**64), one object per value and module."""
        return self.l.i64(v)

    def _shared(self, name: str, build):
        """A block built once per function, that code from many places jumps to (it has no
        pc of its own in the debug info); ``build`` emits its body and returns what the
        callers need besides the block.  (block, that) is returned."""
        if name not in self._shared_blocks:
            bb = self.llfn.append_basic_block(name)
            saved = self.b.debug_metadata
            with self.b.goto_block(bb):
                self.b.debug_metadata = None if self.scope is None else self._no_pc
                extra = build()
            self.b.debug_metadata = saved
            self._shared_blocks[name] = (bb, extra)
        return self._shared_blocks[name]

    def _exit_block(self) -> ir.Block:
        """The function's one way out for a stop, after a stub has written what stopped it
        (status, pc, count, the fault's words): the counts owed and r0 go to ``st``."""
        def build():
            self.flush()
            # r0 is what a stopped run reports (RunResult.r0); the other registers
            # matter only to a helper, which gets them all spilled before its call
            self.word(self.st, ip.R_BASE, self.reg(0))
            self.word(self.st, ip.S_DEPTH, self.depth)
            self.b.ret(self.word(self.st, ip.S_STATUS))
        return self._shared("exit", build)[0]

    def _handoff_block(self, status: int = HANDOFF, spill: bool = True) -> ir.Block:
        """Where the interpreter takes over (S_PC and S_INSNS written; ``status``
        HANDOFF or HANDOFF_RUN): everything to ``st``, for it to go on from there (the
        registers unless ``spill`` is false: the site wrote those it needs)."""
        def build():
            self.flush()
            if spill:
                self.spill()
            self.word(self.st, ip.S_DEPTH, self.depth)
            self.b.ret(self.const(status))
        name = "handoff" if status == HANDOFF else "handoff_run"
        return self._shared(name if spill else f"{name}_spilled", build)[0]

    def hand_over(self, pc: int, insns) -> None:
        """The interpreter goes on at ``pc`` with ``insns`` counted: the registers it will
        read (live.py) to ``st`` here, not every one in a shared block, so that nothing
        else is kept alive for it; and r0, which a stop anywhere on (a fault, the
        budget's end) reports, and r10, the frame's."""
        self.word(self.st, ip.S_PC, self.const(pc))
        self.word(self.st, ip.S_INSNS, insns)
        for i in sorted(self.live.at(pc) | {0, 10}):
            self.word(self.st, ip.R_BASE + i, self.reg(i))
        self.b.branch(self._handoff_block(spill=False))

    def _stub(self, status: int, pc: int, count, fault: tuple | None) -> ir.Block:
        """A cold block that writes the stop's words and jumps to the exit block (its
        stores keep the constants off the hot path)."""
        bb = self._exit_block()
        stub = self.llfn.append_basic_block(f"stop{pc}")
        with self.b.goto_block(stub):
            st = self.st
            self.word(st, ip.S_STATUS, self.const(status))
            self.word(st, ip.S_PC, self.const(pc))
            self.word(st, ip.S_INSNS, count)
            if fault is not None:
                for word, v in zip((ip.S_FAULT_ADDR, ip.S_FAULT_SIZE, ip.S_FAULT_KIND), fault):
                    self.word(st, word, v)
            self.b.branch(bb)
        return stub

    def exit(self, status: int, pc: int, count, fault: tuple | None = None) -> None:
        """Stop the run with ``status`` at ``pc`` (``fault``: address, size, kind)."""
        self.b.branch(self._stub(status, pc, count, fault))

    def cbranch(self, cond, then: ir.Block, other: ir.Block, weights: tuple[int, int]) -> None:
        """A conditional branch with branch weights (``then``'s, ``other``'s)."""
        self.b.cbranch(cond, then, other).set_metadata("prof", self.l.weights(*weights))

    def cold_exit(self, cond, status: int, pc: int, count, fault: tuple | None = None) -> None:
        """If ``cond``, stop with ``status``; go on in a new block otherwise."""
        good = self.llfn.append_basic_block(f"go{pc}")
        self.cbranch(cond, self._stub(status, pc, count, fault), good, (1, 1000))
        self.b.position_at_end(good)

    # -- the region cache: the row of the last region this function touched, and the
    # access counts it owes it, in registers; flushed to the table before anything that
    # reads the counts or moves a row (a call, a Python helper, a stop, a return) -------
    #: the sizes are the region's size for the accesses its permissions allow (reads,
    #: writes, both: atomics) and 0 for the others, so one compare checks both
    _ENTRY = ("rid", "vbase", "host", "size_r", "size_w", "size_rw", "reads", "writes")
    _SIZE_OF = {int(ip.PERM_R): "size_r", int(ip.PERM_W): "size_w",
                int(ip.PERM_R | ip.PERM_W): "size_rw"}

    def _cache_init(self) -> None:
        b = self.b
        self.cache = {k: b.alloca(I64, name=f"c_{k}") for k in self._ENTRY}
        self.invalidate()
        # the stack's row: the same while this function runs (a callee moves it and moves
        # it back), but its host bytes move when a helper grows the address space, so
        # host = stack_host + address is read again after every call out
        self.stack_row = b.mul(self.word(self.st, ip.S_STACK_REGION), self.const(ip.RG_COLS))
        self._stack_host = b.alloca(I64, name="stack_host")
        self.load_stack_host()
        self.stack = {k: b.alloca(I64, name=f"s_{k}") for k in ("reads", "writes")}
        for v in self.stack.values():
            b.store(self.const(0), v)
        # the row a bounds guard (bounds.py) showed [s, e) inside: its id, host - vbase,
        # and the counts its proven accesses owe it
        self.proved = {k: b.alloca(I64, name=f"p_{k}") for k in
                       ("rid", "delta", "reads", "writes")} if self.proof.guards else None
        for v in (self.proved or {}).values():
            b.store(self.const(0), v)

    def load_stack_host(self) -> None:
        b = self.b
        rg = b.load(self.rg)
        b.store(b.sub(self.rgword(rg, self.stack_row, ip.RG_HOST),
                      self.rgword(rg, self.stack_row, ip.RG_VBASE)),
                self._stack_host)

    def invalidate(self) -> None:
        """The entry names region 0 ("no region": size 0, no permissions): an access
        through it faults, as one through row 0 does."""
        for v in self.cache.values():
            self.b.store(self.const(0), v)

    def flush(self, stack: bool = True) -> None:
        """Add the counts owed to the table (the entry for region 0 owes none); those of
        the stack too unless ``stack`` is false (a miss changes only the entry)."""
        b, e = self.b, self.cache
        rg = b.load(self.rg)
        owing = [(b.mul(b.load(e["rid"]), self.const(ip.RG_COLS)), e)]
        if stack:
            owing.append((self.stack_row, self.stack))
        if self.proved is not None:
            owing.append((b.mul(b.load(self.proved["rid"]), self.const(ip.RG_COLS)),
                          self.proved))
        for row, owed in owing:
            for k, col in (("reads", ip.RG_READS), ("writes", ip.RG_WRITES)):
                self.rgword(rg, row, col, b.add(self.rgword(rg, row, col), b.load(owed[k])))
                b.store(self.const(0), owed[k])

    def translate(self, addr, size: int, perm: int, pc: int, count, kind: int,
                  base: tuple[int, int] | None = None):
        """Host pointer for ``[addr, addr+size)`` with ``perm``, or a fault exit: the
        checks of interp._translate on the cached row (loaded on a miss).

        ``base``: (register, offset) the address came from.  r10 plus an offset inside
        [-512, 0) needs no check: r10 is read-only and the stack region always covers
        exactly [r10 - 512, r10) of the running function, readable and writable."""
        b, e = self.b, self.cache
        if self._in_frame(pc, base, size):
            if self.iterations is None:
                self._count(self.stack, perm)
            return b.gep(b.load(self.mem), [b.add(b.load(self._stack_host), addr)])
        if pc in self.proof.proven:     # inside the row its guard checked
            self._count(self.proved, perm)
            return b.gep(b.load(self.mem), [b.add(b.load(self.proved["delta"]), addr)])
        if self.fast is not None:       # proven on the loop's entry
            lp, rows, counts = self.fast
            g = lp.group_of[pc]
            if self.iterations is None:
                self._count(counts[g], perm)
            return b.gep(b.load(self.mem), [b.add(rows[g][1], addr)])
        if base is not None and self.unchecked is not None and base[0] == self.unchecked:
            # checked with its block's group: the entry is its region's row
            self._count(e, perm)
            return b.gep(b.load(self.mem), [b.add(b.load(e["host"]),
                                                 b.sub(addr, b.load(e["vbase"])))])
        have = self.llfn.append_basic_block(f"have{pc}")
        reload = self._reload()
        self.cbranch(self._out_of(b.load(e[self._SIZE_OF[perm]]), b.sub(addr, b.load(e["vbase"])),
                                  self.const(size)), reload.block, have, (1, 1000))
        came = b.block
        reload.arrive(came, have, addr, size, perm, kind, pc, count)
        b.position_at_end(have)
        # the shared block comes back here too: what it brought, not this block's value
        addr = reload.here(came, addr)
        self._count(e, perm)
        return b.gep(b.load(self.mem), [b.add(b.load(e["host"]),
                                             b.sub(addr, b.load(e["vbase"])))])

    def _in_frame(self, pc: int, base: tuple[int, int] | None, size: int) -> bool:
        """Whether the access at ``pc`` through ``base`` (register, offset) goes through r10
        inside the frame, or through a copy of r10 that frame.py proved in it."""
        if pc in self.in_frame:
            return True
        if base is None or base[0] != 10:
            return False
        off = base[1] - (1 << 64) if base[1] >> 63 else base[1]
        return -FRAME <= off and off + size <= 0

    def _out_of(self, entry_size, off, size):
        """interp._translate's refusal: ``[off, off + size)`` is not inside
        ``[0, entry_size)`` (an ``off`` below the row wraps, and so is caught)."""
        b = self.b
        end = b.add(off, size)
        return b.or_(b.icmp_unsigned("<", end, off), b.icmp_unsigned(">", end, entry_size))

    def _reload(self) -> _Reload:
        """The function's one block for an access outside the cached row (built on first
        use): the row of the address's region becomes the entry (its counts owed go to
        the table first), or the access faults; every access's miss comes here, so
        each costs a compare and a branch on its hot path and a switch case."""
        if self._reload_at is None:
            self._reload_at = _Reload(self)
        return self._reload_at

    def _count(self, owed: dict, perm: int) -> None:
        """One more access of ``perm`` owed in ``owed`` (its "reads" and "writes")."""
        b = self.b
        for flag, k in ((int(ip.PERM_W), "writes"), (int(ip.PERM_R), "reads")):
            if perm & flag:
                b.store(b.add(b.load(owed[k]), self.const(1)), owed[k])

    def load_mem(self, ptr, size: int):
        v = self.b.load(self.b.bitcast(ptr, _ACCESS[size][1]), align=1)
        v.set_metadata("tbaa", self.l.tbaa["mem"])
        return v

    def store_mem(self, ptr, size: int, value) -> None:
        ty, ptr_ty = _ACCESS[size]
        v = value if size == 8 else self.b.trunc(value, ty)
        self.b.store(v, self.b.bitcast(ptr, ptr_ty), align=1).set_metadata(
            "tbaa", self.l.tbaa["mem"])

    def spill(self) -> None:
        for i in range(11):
            self.word(self.st, ip.R_BASE + i, self.reg(i))

    # -- blocks -----------------------------------------------------------------------------
    def _budget_plan(self) -> dict[int, int]:
        """Where the budget is checked, and for how much: checkpoint block -> the most
        instructions any path from it runs before the next checkpoint or an exit.

        Checkpoints are the function's entry, every block a jump reaches backwards (so
        every cycle has one) and every block after a call that may run instructions of
        its own (a callee, a Python helper's callback; not one that native code serves
        or hands to the interpreter with the rest of the run, Lifter.hands_over).  Between
        checkpoints control only moves forward, so the longest path is a sum over a
        DAG; a checkpoint whose path does not fit hands the run to the interpreter,
        which stops at the very instruction."""
        fn, code = self.fn, self.l.code
        checkpoints = {fn.entry}
        for start, blk in self.cfg.items():
            e, _a, _b, c = code[blk.pcs[-1]].tolist()
            if NAMES[e] in cfg.CALLS and blk.succs and not self.l.hands_over(NAMES[e], c):
                checkpoints.add(blk.succs[-1])
            checkpoints.update(t for t in blk.succs if t <= start)
        longest: dict[int, int] = {}
        for start in reversed(fn.leaders):
            blk = self.cfg[start]
            tail = [longest[t] for t in blk.succs if t > start and t not in checkpoints]
            longest[start] = len(blk.pcs) + max(tail, default=0)
        return {cp: longest[cp] for cp in checkpoints}

    def lift(self) -> None:
        fn = self.fn
        plan = self._budget_plan()
        # a planted bug would break the loop proof's premises (plant.py): no versioning
        found = [] if plant.active() else loops.find(fn, self.l.code, self.l.consts,
                                                     self.cfg, set(plan))
        #: the checked copy of each versioned loop's header (its b{pc} block is the guard)
        self.checked_head = {lp.header: self.llfn.append_basic_block(f"loop{lp.header}")
                             for lp in found}
        inside = {pc: lp.header for lp in found for pc in lp.blocks}
        for start in fn.leaders:
            h = inside.get(start)
            # the checked copy of a loop goes round its own header, not through the guard
            self.route = {} if h is None else {h: self.checked_head[h]}
            self._block(start, self.checked_head.get(start, self.blocks[start]),
                        plan.get(start))
        for lp in found:
            self._version(lp, plan[lp.header])
        self.route = {}

    def target(self, pc: int) -> ir.Block:
        """The block a jump to ``pc`` goes to from the code being built."""
        return self.route.get(pc, self.blocks[pc])

    def _block(self, start: int, bb: ir.Block, budget: int | None) -> None:
        """Build the block at ``start`` into ``bb``, checking first that ``budget`` more
        instructions fit (a checkpoint's)."""
        blk, b = self.cfg[start], self.b
        pcs = blk.pcs
        b.position_at_end(bb)
        self.at(start)
        # (a copy that derives its counts has no checkpoint: loops.py allows none inside)
        left0 = b.load(self.left) if self.iterations is None else None
        if budget is not None:
            fits = b.icmp_unsigned(">=", left0, self.const(budget))
            body = self.llfn.append_basic_block(f"fast{start}")
            over = self.llfn.append_basic_block(f"handoff{start}")
            self.cbranch(fits, body, over, (1000, 1))
            # the budget may run out before the next checkpoint: the interpreter takes
            # over from here and stops at the very instruction (registers, frames and
            # words are its own)
            b.position_at_end(over)
            self.hand_over(start, b.sub(self.budget, left0))
            b.position_at_end(body)
        k = self.fn.leaders.index(start)
        nxt = self.fn.leaders[k + 1] if k + 1 < len(self.fn.leaders) else None
        if self.iterations is None:
            b.store(b.sub(left0, self.const(len(pcs))), self.left)
        elif start == self.fast[0].header:
            b.store(b.add(b.load(self.iterations), self.const(1)), self.iterations)
        group = None if self.fast is not None else self._group(pcs)
        first = pcs.index(group[0]) if group else 0
        for k2, pc in enumerate(pcs[:first]):
            self.insn(pc, self._count_at(pc, len(pcs) - k2 - 1), nxt)
        if group:
            fast = self.llfn.append_basic_block(f"grouped{group[0]}")
            slow = self.llfn.append_basic_block(f"checked{group[0]}")
            self._probe(group, fast, slow)
            tails = ((fast, group[1]), (slow, None))
        else:
            tails = ((b.block, None),)
        for bb, unchecked in tails:
            b.position_at_end(bb)
            self.unchecked = unchecked
            ended = False
            for k2 in range(first, len(pcs)):
                ended = self.insn(pcs[k2], self._count_at(pcs[k2], len(pcs) - k2 - 1), nxt)
            self.unchecked = None
            if not ended:
                if nxt is None:   # running off the end of a function: the decoder's job
                    raise JitUnsupported(f"pc {pcs[-1]}: the function falls off its end")
                b.branch(self.target(nxt))

    def _count_at(self, pc: int, left: int):
        """The count after the instruction at ``pc`` with ``left`` more to come in its
        block (None where nothing reads it, as in a loop copy that derives its counts,
        which has nothing that stops): read from ``self.left`` (which holds the
        block's end), not kept from the block's start, since an access's miss goes
        through the function's shared block and comes back."""
        if self.iterations is not None or pc not in self.proof.guards and \
                NAMES[int(self.l.code[pc, 0])] in _COUNTLESS:
            return None
        return self.b.sub(self.count(), self.const(left))

    def count(self):
        """The instructions counted so far (the interpreter's ``icount``)."""
        return self.b.sub(self.budget, self.b.load(self.left))

    def set_count(self, count) -> None:
        self.b.store(self.b.sub(self.budget, count), self.left)

    # -- loops whose checks are made once, on entry (loops.py has the proof) -------------------
    def _version(self, lp: loops.Loop, budget: int) -> None:
        """The guard of ``lp`` in its header's block, and the copy without checks it goes
        to when it holds: no budget checks (all iterations fit), no region checks (each
        group's span over all iterations is inside one row), the access counts kept
        apart per group and added to their rows on the way out."""
        b, h = self.b, lp.header
        b.position_at_end(self.blocks[h])
        self.at(h)
        perms = [[k for flag, k in ((int(ip.PERM_R), "reads"), (int(ip.PERM_W), "writes"))
                  if g.perm & flag] for g in lp.groups]
        with b.goto_entry_block():
            counts = [{k: b.alloca(I64, name=f"g{h}_{i}_{k}") for k in ks}
                      for i, ks in enumerate(perms)]
        chain = self._chain(lp)
        if chain is not None:
            with b.goto_entry_block():
                iterations = b.alloca(I64, name=f"n{h}")
            b.store(self.const(0), iterations)
        ok, rows = guard(self, lp, budget)
        for c in counts:
            for v in c.values():
                b.store(self.const(0), v)
        fast = {pc: self.llfn.append_basic_block(f"unchecked{pc}") for pc in lp.blocks}
        self.cbranch(ok, fast[h], self.checked_head[h], (1000, 1))
        route = dict(fast)
        for t in lp.exits:         # on the way out: the counts to their rows
            leave = route[t] = self.llfn.append_basic_block(f"leave{h}_{t}")
            b.position_at_end(leave)
            if chain is not None:
                self._derive(lp, chain, t, iterations, counts)
            rg = b.load(self.rg)
            for (rid, _delta), c in zip(rows, counts):
                for k, v in c.items():
                    col = ip.RG_READS if k == "reads" else ip.RG_WRITES
                    row = b.mul(rid, self.const(ip.RG_COLS))
                    self.rgword(rg, row, col, b.add(self.rgword(rg, row, col), b.load(v)))
            b.branch(self.blocks[t])
        self.route = route
        self.fast = (lp, rows, counts)
        self.iterations = None if chain is None else iterations
        for pc in lp.blocks:
            self._block(pc, fast[pc], None)
        self.fast = self.iterations = None

    def _chain(self, lp: loops.Loop) -> list[int] | None:
        """The blocks of ``lp`` in the order each iteration runs them all, if it does: then
        its unchecked copy counts only its iterations, and _derive the rest on the way
        out.  None where an iteration may skip a block, or where the way out could not
        tell which block left (below)."""
        body, h = set(lp.blocks), lp.header
        chain = [h]
        while True:
            inside = [s for s in self.cfg[chain[-1]].succs if s in body]
            if inside == [h]:
                break
            if len(inside) != 1 or inside[0] in chain:
                return None
            chain.append(inside[0])
        if set(chain) != body or any(pc in self.proof.proven for n in chain
                                     for pc in self.cfg[n].pcs):
            return None         # (the bounds proof covers no loop: kept out all the same)
        for t in lp.exits:
            leaving = [n for n in chain if t in self.cfg[n].succs]
            for n in leaving[:-1]:
                # its exit test, made again on the way out, must see what it saw
                reads = live.effect(self.l.code, self.cfg[n].pcs[-1], False)[0]
                later = chain[chain.index(n) + 1:chain.index(leaving[-1]) + 1]
                if any(reads & self._written(pc) for m in later for pc in self.cfg[m].pcs):
                    return None
        return chain

    def _taken(self, pc: int, opaque: bool = False):
        """Whether the conditional jump at ``pc`` is taken, on the registers as they are
        now (its first operand through :meth:`_opaque` if ``opaque``)."""
        e, a, bslot, _c = self.l.code[pc].tolist()
        name = NAMES[e]
        x = self.reg(a - ip.R_BASE)
        return jcond(self, name, self._opaque(x) if opaque else x,
                     _imm_zext(name, self.operand(bslot)))

    def _opaque(self, v):
        """``v`` through a copy no optimizer sees through (an empty inline asm): it costs
        no instruction and makes LLVM forget what it knows of ``v``."""
        return self.b.asm(ir.FunctionType(I64, [I64]), "", "=r,0", [v], False)

    def _derive(self, lp: loops.Loop, chain: list[int], t: int, iterations, counts) -> None:
        """On the way out of ``lp``'s unchecked copy to ``t``: the instructions and the
        accesses it made, from the iterations it began (every one ran the whole chain but
        the last, which ran up to the block that left).  Where several blocks go to
        ``t``, which one left is the first whose exit test holds again (_chain showed it
        reads what it read then): so every way out brings the same values, and LLVM
        can merge their tests into one (stack_sieve's inner loop: two exits, one test)."""
        b, code = self.b, self.l.code
        # the counters, and each one's amount per block of the chain
        keys = ["insns", ("stack", "reads"), ("stack", "writes")] + [
            (g, k) for g, c in enumerate(counts) for k in c]
        per: dict[int, dict] = {}
        for n in chain:
            amounts = dict.fromkeys(keys, 0)
            amounts["insns"] = len(self.cfg[n].pcs)
            for pc in self.cfg[n].pcs:
                e, a, bslot, c = code[pc].tolist()
                name = NAMES[e]
                if name in LOADS:
                    base, size, k = (bslot - ip.R_BASE, c), LOADS[name][0], "reads"
                elif name in STORES:
                    base, size, k = (a - ip.R_BASE, c), STORES[name], "writes"
                else:
                    continue
                where = "stack" if self._in_frame(pc, base, size) else lp.group_of[pc]
                amounts[(where, k)] += 1
            per[n] = amounts
        total = {key: sum(per[n][key] for n in chain) for key in keys}
        leaving = [n for n in chain if t in self.cfg[n].succs]
        done = {}           # key -> what the chain up to each leaving block adds
        for n in leaving:
            upto = chain[:chain.index(n) + 1]
            done[n] = {key: sum(per[m][key] for m in upto) for key in keys}
        tests = []
        for n in leaving[:-1]:
            pc = self.cfg[n].pcs[-1]
            # through a copy LLVM cannot see through: else it would know the test's
            # answer on each way out, and bring back the phi this is here to avoid
            taken = self._taken(pc, opaque=True)
            tests.append((n, taken if int(code[pc, 3]) == t else b.not_(taken)))
        # seen through, the iterations would become one induction variable per count
        began = self._opaque(b.load(iterations))

        def amount(key):
            v = self.const(done[leaving[-1]][key] - total[key])
            for n, left_here in reversed(tests):
                v = b.select(left_here, self.const(done[n][key] - total[key]), v)
            return b.add(b.mul(began, self.const(total[key])), v)

        b.store(b.sub(b.load(self.left), amount("insns")), self.left)
        for key in keys[1:]:
            if not total[key]:
                continue
            where, k = key
            owed = self.stack[k] if where == "stack" else counts[where][k]
            b.store(b.add(b.load(owed), amount(key)), owed)

    # -- one check for a block's accesses -----------------------------------------------------
    def _access(self, pc: int):
        return cfg.access(self.l.code, pc)

    def _written(self, pc: int) -> set[int]:
        """The registers the instruction at ``pc`` writes (within a block)."""
        e, a, bslot, c = self.l.code[pc].tolist()
        name = NAMES[e]
        if name in ALU or name in END or name in LOADS or name == "lddw":
            return {a - ip.R_BASE}
        if name in PKT:
            return {0}
        if name.startswith("atomic_"):
            op = name[len("atomic_"):-2]
            return {0} if op == "cmpxchg" else (
                {bslot - ip.R_BASE} if op.startswith("fetch_") or op == "xchg" else set())
        return set()

    def _group(self, pcs: list[int]):
        """``(first pc, base register, lowest offset, span, permission)`` when every
        region access of the block from its first one on goes through one base register
        that nothing writes in between (two at least): one check of the span they cover
        then stands for all of theirs.  None otherwise."""
        accesses = [(pc, acc) for pc in pcs if (acc := self._access(pc)) is not None
                    and pc not in self.proof.proven and pc not in self.in_frame]
        if len(accesses) < 2 or len({acc[0] for _, acc in accesses}) != 1:
            return None
        base = accesses[0][1][0]
        first, last = accesses[0][0], accesses[-1][0]
        if any(base in self._written(pc) for pc in pcs if first <= pc < last):
            return None
        lo = min(acc[1] for _, acc in accesses)
        hi = max(acc[1] + acc[2] for _, acc in accesses)
        perm = 0
        for _, acc in accesses:
            perm |= acc[3]
        return first, base, lo, hi - lo, perm

    def _probe(self, group, fast: ir.Block, slow: ir.Block) -> None:
        """Go to ``fast`` if the span the group covers is inside one region row with its
        permissions (then that row is the cache entry), to ``slow`` (every access
        checked on its own, as without the group) otherwise."""
        b, e = self.b, self.cache
        _pc, base, lo, span, perm = group
        addr = b.add(self.reg(base), self.const(lo))
        which = self._SIZE_OF[perm]

        def inside():
            off = b.sub(addr, b.load(e["vbase"]))
            end = b.add(off, self.const(span))
            return b.and_(b.icmp_unsigned(">=", end, off),
                          b.icmp_unsigned("<=", end, b.load(e[which])))
        other = self.llfn.append_basic_block(f"probe{_pc}")
        self.cbranch(inside(), fast, other, (1000, 1))
        b.position_at_end(other)
        rid = b.lshr(addr, self.const(ip.REGION_SHIFT))
        reload = self.llfn.append_basic_block(f"probemiss{_pc}")
        b.cbranch(b.icmp_unsigned("==", rid, b.load(e["rid"])), slow, reload)
        b.position_at_end(reload)
        valid = self.llfn.append_basic_block(f"probeload{_pc}")
        b.cbranch(b.icmp_unsigned("<", rid, b.load(self.rows)), valid, slow)
        b.position_at_end(valid)
        self._load_entry(rid)
        b.cbranch(inside(), fast, slow)

    def _load_entry(self, rid) -> None:
        """The cache entry becomes region ``rid``'s row (its counts owed flushed first)."""
        b, e = self.b, self.cache
        self.flush(stack=False)
        rg = b.load(self.rg)
        row = b.mul(rid, self.const(ip.RG_COLS))
        b.store(rid, e["rid"])
        for k, col in (("vbase", ip.RG_VBASE), ("host", ip.RG_HOST)):
            b.store(self.rgword(rg, row, col), e[k])
        rsize = self.rgword(rg, row, ip.RG_SIZE)
        rperm = self.rgword(rg, row, ip.RG_PERM)
        for need, k in self._SIZE_OF.items():
            ok = b.icmp_unsigned("==", b.and_(rperm, self.const(need)), self.const(need))
            b.store(b.select(ok, rsize, self.const(0)), e[k])

    # -- the region of [s, e) checked once for the accesses bounds.py proves inside it --------
    def bounds_guard(self, pc: int, count) -> None:
        """Check that ``[s, e)`` lies inside one row with the permissions its proven
        accesses need, and make that row the proof's entry; if it does not, the
        interpreter runs on from ``pc`` (it checks each access itself)."""
        if pc == self.entry_guard:
            return                          # made on the function's entry
        b, g = self.b, self.proof.guards[pc]
        s = b.sub(self.reg(g.base), self.const(g.base_k))
        e = b.sub(self.reg(g.end), self.const(g.end_k))
        if g.add_s:
            e = b.add(e, s)
        self._check_span(pc, s, e, pc, b.sub(count, self.const(1)))

    def _guard_on_entry(self) -> int | None:
        """The function's one guard, made on its entry where bounds.py shows its span as
        the entry registers (``Proof.at_entry``): in a loop of runs over the same
        registers it is then loop-invariant, and LLVM makes it once.  If it fails the
        interpreter runs the function from its entry.  Its pc, or None."""
        if len(self.proof.perms) != 1:
            return None
        (pc,) = self.proof.perms
        terms = self.proof.at_entry.get(pc)
        if terms is None:
            return None
        b, args = self.b, self.llfn.args
        first, summed = terms
        e = args[3 + summed[0]]
        for r in summed[1:]:
            e = b.add(e, args[3 + r])
        self._check_span(pc, args[3 + first], e, self.fn.entry, self.count())
        return pc

    def _check_span(self, pc: int, s, e, resume: int, insns) -> None:
        """The guard at ``pc`` on ``[s, e)``; where it fails, the interpreter goes on at
        ``resume`` with ``insns`` counted."""
        b = self.b
        stub = self.llfn.append_basic_block(f"unproven{pc}")
        with b.goto_block(stub):
            self.hand_over(resume, insns)
        inside, rid, delta = self.span_row(s, e, self.proof.perms[pc])
        inside = b.and_(inside, b.and_(b.icmp_unsigned("<=", s, e), b.icmp_unsigned(
            "<", e, self.const(bounds.GUARD_LIMIT))))
        good = self.llfn.append_basic_block(f"proved{pc}")
        self.cbranch(inside, good, stub, (1000, 1))
        b.position_at_end(good)
        p, rg = self.proved, b.load(self.rg)
        old = b.mul(b.load(p["rid"]), self.const(ip.RG_COLS))
        for k, col in (("reads", ip.RG_READS), ("writes", ip.RG_WRITES)):
            self.rgword(rg, old, col, b.add(self.rgword(rg, old, col), b.load(p[k])))
            b.store(self.const(0), p[k])
        b.store(rid, p["rid"])
        b.store(delta, p["delta"])

    def span_row(self, lo, hi, need: int) -> tuple:
        """Whether ``[lo, hi)`` lies inside the row of ``lo``'s region with permissions
        ``need``: (i1, row id, host - vbase).  The row is read with no branch before it
        (no such row reads row 0, which holds nothing), so a check on loop-invariant
        values is loop-invariant whole and LLVM makes it once."""
        b, c = self.b, self.const
        rid = b.lshr(lo, c(ip.REGION_SHIFT))
        rid = b.select(b.icmp_unsigned("<", rid, b.load(self.rows)), rid, c(0))
        rg, row = b.load(self.rg), b.mul(rid, c(ip.RG_COLS))
        vbase, size, host, perm = (self.rgword(rg, row, col) for col in (
            ip.RG_VBASE, ip.RG_SIZE, ip.RG_HOST, ip.RG_PERM))
        off, end = b.sub(lo, vbase), b.sub(hi, vbase)
        inside = b.and_(b.icmp_unsigned("==", b.and_(perm, c(need)), c(need)),
                        b.and_(b.icmp_unsigned("<=", off, end),
                               b.icmp_unsigned("<=", end, size)))
        return inside, rid, b.sub(host, vbase)

    def _count_pc(self, pc: int, op) -> None:
        """A profiling build's execution count of ``pc``, one up (``op`` the builder's add)
        or down (its sub: the interpreter counts a handed-over call again)."""
        counts = self.b.inttoptr(self.word(self.env, ENV_COUNTS), I64P)
        self.word(counts, pc, op(self.word(counts, pc, tag="mem"), self.const(1)), tag="mem")

    # -- one instruction; True if it ended the block ---------------------------------------------
    def insn(self, pc: int, count, nxt: int | None) -> bool:
        self.at(pc)
        if pc in self.proof.guards:
            self.bounds_guard(pc, count)
        if self.l.profile:          # the interpreter's histogram: count it before it runs
            self._count_pc(pc, self.b.add)
        e, a, bslot, c = self.l.code[pc].tolist()
        name = NAMES[e]
        b = self.b
        if name in ALU:
            dst = a - ip.R_BASE
            x = self.reg(dst)
            self.set_reg(dst, ALU[name](self, x, _imm_zext(name, self.operand(bslot))))
            return False
        if name in END:
            dst = a - ip.R_BASE
            self.set_reg(dst, END[name](self, self.reg(dst)))
            return False
        if name == "lddw":
            self.set_reg(a - ip.R_BASE, self.operand(bslot))
            return False
        if name in LOADS:
            size, signed = LOADS[name]
            addr = b.add(self.operand(bslot), self.const(c))
            ptr = self.translate(addr, size, int(ip.PERM_R), pc, count, ip.ACCESS_READ,
                                 (bslot - ip.R_BASE, c))
            v = self.load_mem(ptr, size)
            if signed and plant.active() == "ldx_sign":
                signed = False
            self.set_reg(a - ip.R_BASE, (b.sext if signed else b.zext)(v, I64) if size < 8 else v)
            return False
        if name in STORES:
            size = STORES[name]
            addr = b.add(self.reg(a - ip.R_BASE), self.const(c))
            ptr = self.translate(addr, size, int(ip.PERM_W), pc, count, ip.ACCESS_WRITE,
                                 (a - ip.R_BASE, c))
            self.store_mem(ptr, size, self.operand(bslot))
            return False
        if name.startswith("atomic_"):
            self.atomic(name, a, bslot, c, pc, count)
            return False
        if name in PKT:
            self.packet_load(name, bslot, c, pc, count)
            return False
        if name == "ja":
            b.branch(self.target(c))
            return True
        if name in JCONDS:
            taken = self._taken(pc)
            other = self.target(nxt) if nxt is not None else self._fell_off(pc)
            weights = self._early_return(pc, c, nxt)
            if weights is None:
                b.cbranch(taken, self.target(c), other)
            else:
                self.cbranch(taken, self.target(c), other, weights)
            return True
        if name == "exit":
            self.flush()
            self.set_count(count)
            self.word(self.st, ip.S_INSNS, count)
            # a caller sees r1-r5 as the callee left them; the run loop only r0
            for i in range(1 if self.fn.entry in self.l.top_only else 6):
                self.word(self.out, i, self.reg(i))
            b.ret(self.const(RETURNED))
            return True
        if name == "call_helper" and int(c) == ip.TAIL_CALL and self.l.entries:
            self.tail_call(pc, count)
        elif name in ("call_helper", "callx"):
            helper = self.const(c) if name == "call_helper" else self.reg(a - ip.R_BASE)
            core = int(c) if name == "call_helper" and int(c) in _CORE_HELPERS else None
            self.helper_call(helper, core, pc, count)
        elif name == "call_local":
            self.local_call(c, pc, count)
        else:                       # kfunc calls and lddw of what the loader did not resolve
            self.exit(ip.UNRESOLVED, pc, count)
            return True
        if nxt is None:
            self.b.branch(self._fell_off(pc))
        else:
            self.b.branch(self.target(nxt))
        return True

    def _early_return(self, pc: int, taken: int, nxt: int | None) -> tuple[int, int] | None:
        """Branch weights for the jump at ``pc`` (to ``taken``, else ``nxt``) with one
        side that returns at once (a block that ends in ``exit``) and one that goes on: the side that goes on is the likely one,
        as compilers predict an early return (a failed bounds check, a packet a parser
        lets by), so that LLVM lays it out straight and the returns out of line:
        pkt_parse 6.6 -> 5.2 ns a run.  Not in a loop, whose exit LLVM already predicts
        less likely than this would say (stack_sieve 625 -> 690 ns with it there)."""
        def returns(start: int | None) -> bool:
            blk = self.cfg.get(start)
            return blk is not None and not blk.succs and NAMES[
                int(self.l.code[blk.pcs[-1], 0])] == "exit"
        if returns(taken) == returns(nxt) or pc in self.in_loop:
            return None         # (a loop's exits: LLVM's own loop heuristics weigh them)
        return (1, EARLY_RETURN_ODDS) if returns(taken) else (EARLY_RETURN_ODDS, 1)

    def _fell_off(self, pc: int):
        bb = self.llfn.append_basic_block(f"off{pc}")
        with self.b.goto_block(bb):
            self.b.unreachable()
        raise JitUnsupported(f"pc {pc}: the function falls off its end")

    def atomic(self, name: str, a: int, bslot: int, c: int, pc: int, count) -> None:
        b = self.b
        size = 4 if name.endswith("32") else 8
        op = name[len("atomic_"):-2]
        addr = b.add(self.reg(a - ip.R_BASE), self.const(c))
        ptr = self.translate(addr, size, int(ip.PERM_R | ip.PERM_W), pc, count,
                             ip.ACCESS_ATOMIC, (a - ip.R_BASE, c))
        old = self.load_mem(ptr, size)
        old64 = b.zext(old, I64) if size == 4 else old
        src = bslot - ip.R_BASE
        v = self.reg(src)
        base = op[len("fetch_"):] if op.startswith("fetch_") else op
        if base == "add":
            new = b.add(old64, v)
        elif base == "or":
            new = b.or_(old64, v)
        elif base == "and":
            new = b.and_(old64, v)
        elif base == "xor":
            new = b.xor(old64, v)
        elif base == "xchg":
            new = v
        else:   # cmpxchg: compare with r0 (its low half for 32 bits); r0 gets the old value
            r0 = self.reg(0)
            cmp = b.and_(r0, self.const(0xFFFFFFFF)) if size == 4 else r0
            new = b.select(b.icmp_unsigned("==", old64, cmp), v, old64)
        self.store_mem(ptr, size, new)
        if base == "cmpxchg":
            if plant.active() != "cmpxchg_no_r0":
                self.set_reg(0, old64)
        elif op.startswith("fetch_") and plant.active() == "fetch_returns_new":
            self.set_reg(src, b.and_(new, self.const(0xFFFFFFFF)) if size == 4 else new)
        elif op.startswith("fetch_") or base == "xchg":
            self.set_reg(src, old64)

    def packet_load(self, name: str, bslot: int, c: int, pc: int, count) -> None:
        """LD_ABS / LD_IND as interp.run_core does them (no access counting)."""
        b = self.b
        size, indirect = PKT[name]
        imm = self.const(c)
        if indirect:
            off = b.sext(b.trunc(b.add(self.reg(bslot - ip.R_BASE), imm), I32), I64)
        else:
            off = b.sext(b.trunc(imm, I32), I64)
        prid = self.word(self.st, ip.S_PKT_REGION)
        self.cold_exit(b.icmp_unsigned("==", prid, self.const(0)), ip.FAULT, pc, count,
                       (off, self.const(size), self.const(ip.ACCESS_READ)))
        neg = b.icmp_signed("<", off, self.const(0))
        head = self.word(self.st, ip.S_PKT_HEAD)
        net = b.add(self.word(self.st, ip.S_PKT_NET), b.sub(off, self.const(ip.SKF_NET_OFF)))
        mac = b.add(self.word(self.st, ip.S_PKT_MAC), b.sub(off, self.const(ip.SKF_LL_OFF)))
        below = b.sub(head, self.const(1))
        moved = b.select(b.icmp_signed(">=", off, self.const(ip.SKF_NET_OFF)), net,
                         b.select(b.icmp_signed(">=", off, self.const(ip.SKF_LL_OFF)), mac, below))
        off = b.select(neg, moved, off)
        lo = b.select(neg, head, self.const(0))
        rg = b.load(self.rg)
        row = b.mul(prid, self.const(ip.RG_COLS))
        rsize = self.rgword(rg, row, ip.RG_SIZE)
        out = b.or_(b.icmp_signed("<", off, lo),
                    b.icmp_signed(">", b.add(off, self.const(size)), rsize))
        oob = self.llfn.append_basic_block(f"pktend{pc}")
        ok = self.llfn.append_basic_block(f"pkt{pc}")
        b.cbranch(out, oob, ok)
        b.position_at_end(oob)            # out of bounds: the program ends, returning 0
        self.flush()
        self.word(self.st, ip.R_BASE, self.const(0))
        self.word(self.st, ip.S_INSNS, count)
        b.ret(self.const(STOP_RUN))
        b.position_at_end(ok)
        host = b.add(self.rgword(rg, row, ip.RG_HOST), off)
        v = self.load_mem(b.gep(b.load(self.mem), [host]), size)
        if size > 1:
            v = b.call(self.l.bswap(size * 8), [v])
        self.set_reg(0, b.zext(v, I64))

    def helper_call(self, helper, core: int | None, pc: int, count) -> None:
        """A helper call; ``core``: the id of a helper the interpreter's core serves
        (the map lookup, one of ip.CORE_IDS), called here first."""
        b = self.b
        st = self.st
        after = self.llfn.append_basic_block(f"after{pc}")
        if core in ip.CORE_IDS:     # the interpreter's skb, xdp and checksum helpers first
            moves = core == ip.XDP_ADJUST_HEAD      # it moves the packet row's window
            if moves:
                self.flush()
            for i in range(1, 6):
                self.word(st, ip.R_BASE + i, self.reg(i))
            self.word(st, ip.S_HELPER, helper)
            served = self._core_call(ENV_CORE)
            done = self.llfn.append_basic_block(f"core{pc}")
            other = self.llfn.append_basic_block(f"nocore{pc}")
            b.cbranch(b.icmp_unsigned("==", served, self.const(ip.LOOKUP_SERVED)), done, other)
            b.position_at_end(done)
            if moves:
                self.invalidate()
            self.set_reg(0, self.word(st, ip.R_BASE))
            b.branch(after)
            b.position_at_end(other)
            if self.l.hands_over("call_helper", core):
                # a call it leaves to Python (a pointer that would fault, a flag whose
                # state Python keeps): the interpreter does the rest of this run
                self._hand_run(pc, count)
                b.position_at_end(after)
                return
        if core == ip.MAP_LOOKUP_ELEM:  # the interpreter's own lookup first: array, hash, LPM
            self.word(st, ip.R_BASE + 1, self.reg(1))
            self.word(st, ip.R_BASE + 2, self.reg(2))
            served = self._core_call(ENV_LOOKUP)
            done = self.llfn.append_basic_block(f"looked{pc}")
            other = self.llfn.append_basic_block(f"nolook{pc}")
            fault = self.llfn.append_basic_block(f"lookfault{pc}")
            sw = b.switch(served, other)
            sw.add_case(self.const(ip.LOOKUP_SERVED), done)
            sw.add_case(self.const(ip.LOOKUP_FAULT), fault)
            b.position_at_end(fault)
            self.exit(ip.FAULT, pc, count, (self.word(st, ip.S_FAULT_ADDR),
                                            self.word(st, ip.S_FAULT_SIZE),
                                            self.const(ip.ACCESS_READ)))
            b.position_at_end(done)
            self.set_reg(0, self.word(st, ip.R_BASE))
            b.branch(after)
            # a map the core does not serve (a devmap_hash, a CPU or socket map), a per-CPU
            # map on a CPU it lacks, or no map at all
            b.position_at_end(other)
            self._hand_run(pc, count)
            b.position_at_end(after)
            return
        self._call_python(helper, pc, count, after)

    def _hand_run(self, pc: int, count) -> None:
        """The interpreter does the rest of this run from the call at ``pc``, which it
        makes (and counts) again.  Without a way back from Python after such calls the
        function's code is smaller: the firewall's object by a fifth, and a program
        that calls no other helper has no Python block at all."""
        b = self.b
        self.word(self.st, ip.S_PC, self.const(pc))
        self.word(self.st, ip.S_INSNS, b.sub(count, self.const(1)))
        if self.l.profile:
            self._count_pc(pc, b.sub)
        b.branch(self._handoff_block(HANDOFF_RUN))

    def _call_python(self, helper, pc: int, count, after: ir.Block) -> None:
        """The words of this call, then the function's one block that calls Python; it
        comes back to ``after`` (everything after a call is read from st and allocas)."""
        b, st = self.b, self.st
        self.word(st, ip.S_HELPER, helper)
        self.word(st, ip.S_PC, self.const(pc))
        self.word(st, ip.S_INSNS, count)
        block, switch = self._python_block()
        site = len(switch.cases)
        b.store(self.const(site), self.py_site)
        switch.add_case(self.const(site), after)
        b.branch(block)
        b.position_at_end(after)

    def tail_call(self, pc: int, count) -> None:
        """bpf_tail_call in linked code, decided by the interpreter's interp.tail_call: a
        jump returns TAIL_JUMP through every frame, the target's pc in S_PC, and the
        run loop starts it; a failed call goes on after it; no prog array in r2 calls
        the Python helper (its error)."""
        b, st = self.b, self.st
        after = self.llfn.append_basic_block(f"after{pc}")
        jump = self.llfn.append_basic_block(f"tail{pc}")
        python = self.llfn.append_basic_block(f"notail{pc}")
        for i in (2, 3):
            self.word(st, ip.R_BASE + i, self.reg(i))
        to = self._core_call(ENV_TAIL)
        sw = b.switch(to, jump)
        sw.add_case(self.const(0), after)
        sw.add_case(self.const(-1), python)
        b.position_at_end(jump)
        self.word(st, ip.S_PC, b.sub(to, self.const(1)))
        self.word(st, ip.S_INSNS, count)
        self.flush()
        b.ret(self.const(TAIL_JUMP))
        b.position_at_end(python)
        self._call_python(self.const(ip.TAIL_CALL), pc, count, after)

    def _core_call(self, env_word: int):
        """A call of the interpreter's helper whose address is in ``env_word``:
        ``(st, mem, rg, st words, mem bytes, rows)``, its LOOKUP_* answer."""
        b = self.b
        fnty = ir.FunctionType(I64, [I64P, I8P, I64P, I64, I64, I64])
        fp = b.inttoptr(self.word(self.env, env_word), fnty.as_pointer())
        return b.call(fp, [self.st, b.load(self.mem), b.load(self.rg),
                           self.word(self.env, ENV_ST_LEN),
                           self.word(self.env, ENV_MEM_LEN), b.load(self.rows)])

    def _python_block(self):
        """The function's call of a Python helper (its words written by the call site):
        counts owed to the table, registers to st, the callback; then a stop, or a
        switch on ``py_site`` back to the site.  (block, that switch) is returned."""
        def build():
            b, st = self.b, self.st
            self.flush()
            self.spill()
            if plant.active() == "helper_arg_reg":     # the helper's r1 and r2 swapped
                self.word(st, ip.R_BASE + 1, self.reg(2))
                self.word(st, ip.R_BASE + 2, self.reg(1))
            self.word(st, ip.S_DEPTH, self.depth)
            fnty = ir.FunctionType(I64, [])
            res = b.call(b.inttoptr(self.word(self.env, ENV_HELPER), fnty.as_pointer()), [])
            self.reload_env()
            self.invalidate()       # a helper may move rows (a packet window, a relayout)
            self.load_stack_host()
            self.set_count(self.word(st, ip.S_INSNS))
            go = self.llfn.append_basic_block("helped")
            failed = self.llfn.append_basic_block("helper_failed")
            tail = self.llfn.append_basic_block("tail_call")
            stop = self.llfn.append_basic_block("helper_stopped")
            sw = b.switch(res, failed)
            sw.add_case(self.const(CB_GO_ON), go)
            sw.add_case(self.const(CB_TAIL_CALL), tail)
            sw.add_case(self.const(CB_STOP), stop)
            for blk, status in ((failed, HELPER_FAILED), (tail, TAIL_CALL), (stop, STOP_RUN)):
                b.position_at_end(blk)
                b.ret(self.const(status))
            b.position_at_end(go)
            self.set_reg(0, self.word(st, ip.R_BASE))
            unreachable = self.llfn.append_basic_block("python_nowhere")
            back = b.switch(b.load(self.py_site), unreachable)
            b.position_at_end(unreachable)
            b.unreachable()
            return back
        return self._shared("python_helper", build)

    def local_call(self, target: int, pc: int, count) -> None:
        b = self.b
        self.cold_exit(b.icmp_unsigned(">=", b.add(self.depth, self.const(1)),
                                       self.const(oc.MAX_CALL_FRAMES)), ip.DEPTH, pc, count)
        self.word(self.st, ip.S_INSNS, count)
        # the interpreter's frame words too, so that a handoff below can return here
        f = b.add(self.const(ip.F_BASE), b.mul(self.depth, self.const(ip.F_SIZE)))
        self.word(self.st, f, self.const(pc + 1))
        for i in range(4):
            self.word(self.st, b.add(f, self.const(1 + i)), self.reg(6 + i))
        self.flush()
        self.invalidate()           # the stack row moves
        self._move_stack(-FRAME)
        out = self.callee_regs
        args = [self.st, self.env, out] + [self.reg(i) for i in range(10)]
        args += [b.sub(self.reg(10), self.const(FRAME)), b.add(self.depth, self.const(1))]
        status = b.call(self.l.llfns[target], args)
        if self.l.entries:          # a tail call in the callee goes on in its frame
            status = self.l.tail_jumps(b, status, self.st, self.env, out, args[13], args[14],
                                       lambda: [self.word(self.st, w) for w in _JUMP_WORDS])
        self.reload_env()
        self.cold_exit_status(status)
        self._move_stack(FRAME)
        self.load_stack_host()
        for i in range(6):
            self.set_reg(i, self.word(out, i))
        self.set_count(self.word(self.st, ip.S_INSNS))

    def cold_exit_status(self, status) -> None:
        """Return ``status`` at once unless the callee returned normally."""
        bad = self.llfn.append_basic_block("callstop")
        good = self.llfn.append_basic_block("callgo")
        self.cbranch(self.b.icmp_unsigned("!=", status, self.const(RETURNED)), bad, good,
                     (1, 1000))
        self.b.position_at_end(bad)
        self.b.ret(status)
        self.b.position_at_end(good)

    def _move_stack(self, delta: int) -> None:
        """Grow (delta < 0) or shrink the stack region by one frame, as the interpreter."""
        b = self.b
        rg = b.load(self.rg)
        row = b.mul(self.word(self.st, ip.S_STACK_REGION), self.const(ip.RG_COLS))
        for col, sign in ((ip.RG_VBASE, 1), (ip.RG_SIZE, -1), (ip.RG_HOST, 1)):
            moved = b.add(self.rgword(rg, row, col), self.const(sign * delta))
            self.rgword(rg, row, col, moved)


def _imm_zext(name: str, y):
    """The operand ``y`` of ALU or jump ``name``; with the imm_zext plant, a 64-bit
    instruction's immediate zero-extended from its 32 bits."""
    if plant.active() == "imm_zext" and isinstance(y, ir.Constant) and name.endswith("64"):
        return ir.Constant(I64, int(y.constant) & 0xFFFFFFFF)
    return y


def _jumps_off_by_one(code: np.ndarray) -> np.ndarray:
    """The jump_off_by_one plant: lowered code whose conditional jumps each go one slot
    past their target, where that slot is an instruction of the jump's function."""
    code = code.copy()
    for fn in functions(code):
        for pc in range(fn.entry, fn.end):
            if int(code[pc, 0]) < len(NAMES) and NAMES[int(code[pc, 0])] in JCONDS:
                t = int(code[pc, 3]) + 1
                if t < fn.end and int(code[t, 0]) < len(NAMES):
                    code[pc, 3] = t
    return code


#: every exec name of the opcode table and how the lifter handles it (the test checks)
HANDLED = (set(ALU) | set(END) | set(LOADS) | set(STORES) | set(PKT) | ENDS
           | {"lddw"} | {n for n in NAMES if n.startswith("atomic_")})


class Lifter:
    """Builds the LLVM module of one program's lowered code."""

    def __init__(self, code: np.ndarray, consts: np.ndarray, name: str = "prog",
                 triple: str = "", debug: bool = False, profile: bool = False,
                 entries: tuple[int, ...] = (), core: int = 0) -> None:
        if plant.active() == "jump_off_by_one":
            code = _jumps_off_by_one(code)
        self.code, self.consts = code, consts
        #: count executions per pc (the instruction histogram), as run_core's ``prof``
        self.profile = profile
        #: linked code (xsim.runtime.tailcall): where its members start, a run at
        #: st[S_ENTRY], and bpf_tail_call a jump from one to another
        self.entries = entries
        #: the helpers of ip.CORE_IDS the core may serve (S_CORE's bits, as the program's
        #: registry gives them): a call of one of those it declines goes no further in
        #: native code (see hands_over); of the others, to Python and back
        self.core = helper_bits(core)
        self.module = ir.Module(name=name)
        if triple:
            self.module.triple = triple
        self.fns = functions(code, entries)
        self.debug = self._debug_unit(name) if debug else None
        fnty = ir.FunctionType(I64, [I64P, I64P, I64P] + [I64] * 11 + [I64])
        called_at = {int(t) for e, t in zip(code[:, 0], code[:, 3])
                     if int(e) < len(NAMES) and NAMES[int(e)] == "call_local"}
        #: the count words of the helpers of ip.CORE_IDS that this program calls
        called = {int(h) for e, h in zip(code[:, 0], code[:, 3])
                  if int(e) < len(NAMES) and NAMES[int(e)] == "call_helper"}
        self.core_counts = [w for h, w in _CALL_COUNTS if h in called]
        if entries:
            self.core_counts.append(ip.S_TAIL_CALLS)
        #: a call can hand a run over (HANDOFF_RUN): only then does the entry need the
        #: words for it (so the IR of a program without one is what it was)
        self.hands_runs = any(self.hands_over("call_helper", h) for h in called)
        self.llfns: dict[int, ir.Function] = {}
        #: functions only the run loop calls
        self.top_only: set[int] = set()
        for fn in self.fns:
            f = ir.Function(self.module, fnty, name=f"bpf_fn_{fn.entry}")
            f.linkage = "internal"     # st and env are not noalias: helpers write both
            if fn.entry == 0 and 0 not in called_at and not entries:
                self.top_only.add(0)     # only the entry calls it: inline it
                f.attributes.add("alwaysinline")
            self.llfns[fn.entry] = f
        self._bswaps: dict[int, ir.Function] = {}
        self._dispatcher: ir.Function | None = None
        self._constants: dict[tuple[int, int], ir.Constant] = {}
        self._weights: dict[tuple[int, int], ir.MDValue] = {}
        self.tbaa = self._alias_classes()

    def hands_over(self, name: str, helper: int) -> bool:
        """Whether a call is served in native code or else hands the rest of the run to
        the interpreter, never coming back from Python: the map lookup, and a helper
        of ip.CORE_IDS that the core may serve.  (The bits of S_CORE can change after
        the lift only by a kconfig's kernel version, for bpf_csum_diff: its calls are
        then handed over, slower but the same.)"""
        if name != "call_helper":
            return False
        if helper == ip.MAP_LOOKUP_ELEM:
            return True
        return helper in ip.CORE_IDS and \
            bool(self.core >> (ip.CORE_BIT + ip.CORE_IDS.index(helper)) & 1)

    def constant(self, ty: ir.IntType, v: int) -> ir.Constant:
        """The constant ``v`` (an int, not a bool) of type ``ty``, one object per value:
        a constant is immutable, and a shared one formats its text once."""
        key = (ty.width, v)
        c = self._constants.get(key)
        if c is None:
            c = self._constants[key] = ir.Constant(ty, v)
        return c

    def i64(self, v: int) -> ir.Constant:
        """The i64 constant ``v`` modulo 2**64."""
        return self.constant(I64, v & _MASK)

    def weights(self, taken: int, other: int) -> ir.MDValue:
        """The branch weights node of a cbranch: what ``set_weights([taken, other])``
        attaches, which builds the node's operands and looks it up again each time."""
        key = (taken, other)
        md = self._weights.get(key)
        if md is None:
            md = self._weights[key] = self.module.add_metadata(
                [ir.MetaDataString(self.module, "branch_weights"),
                 ir.Constant(I32, taken), ir.Constant(I32, other)])
        return md

    def _alias_classes(self) -> dict[str, ir.MDValue]:
        """TBAA tags that tell LLVM the four arrays never overlap (they are separate
        numpy allocations): state words, env words, region table, host memory; and that
        the table's access counts are never its other columns.  With them it can keep
        region rows and counters in registers across program stores."""
        m = self.module
        root = m.add_metadata([ir.MetaDataString(m, "xsim arrays")])
        tags = {}
        for name in ("st", "env", "rg", "rg_count", "mem"):
            node = m.add_metadata([ir.MetaDataString(m, name), root, ir.Constant(I64, 0)])
            tags[name] = m.add_metadata([node, node, ir.Constant(I64, 0)])
        return tags

    def _debug_unit(self, name: str):
        """DWARF whose line numbers are eBPF pcs + 1 (line 0 means "no line"), so that
        native code can be annotated with the instruction it came from."""
        m = self.module
        file = m.add_debug_info("DIFile", {"filename": f"{name}.bpf", "directory": "."})
        cu = m.add_debug_info("DICompileUnit", {
            "language": ir.DIToken("DW_LANG_C99"), "file": file, "producer": "xsim jit",
            "runtimeVersion": 0, "isOptimized": True,
            "emissionKind": ir.DIToken("FullDebug")}, is_distinct=True)
        m.add_named_metadata("llvm.dbg.cu", cu)
        m.add_named_metadata("llvm.module.flags",
                             [ir.Constant(I32, 2), "Debug Info Version", ir.Constant(I32, 3)])
        m.add_named_metadata("llvm.module.flags",
                             [ir.Constant(I32, 2), "Dwarf Version", ir.Constant(I32, 4)])
        sub = m.add_debug_info("DISubroutineType", {"types": m.add_metadata([])})
        return file, cu, sub

    def subprogram(self, fn: ir.Function, line: int):
        file, cu, sub = self.debug
        sp = self.module.add_debug_info("DISubprogram", {
            "name": fn.name, "file": file, "line": line, "type": sub, "scopeLine": line,
            "unit": cu, "spFlags": ir.DIToken("DISPFlagDefinition | DISPFlagOptimized")},
            is_distinct=True)
        fn.set_metadata("dbg", sp)
        return sp

    def bswap(self, bits: int) -> ir.Function:
        if bits not in self._bswaps:
            ty = ir.IntType(bits)
            self._bswaps[bits] = self.module.declare_intrinsic("llvm.bswap", [ty])
        return self._bswaps[bits]

    def build(self) -> ir.Module:
        for fn in self.fns:
            _Fn(self, fn, self.llfns[fn.entry]).lift()
        self._entry()
        return self.module

    def _entry(self) -> None:
        """``xsim_entry(st, env, runs, fresh)``: what run_core does with FRESH (or
        FRESH_KEEP_COUNTS when ``fresh`` is ENTER_KEEP): ``runs`` runs of the program;
        with ENTER_GO_ON, the runs left after an interpreted one (a HANDOFF_RUN)."""
        fnty = ir.FunctionType(I64, [I64P, I64P, I64, I64])
        f = ir.Function(self.module, fnty, name=ENTRY)
        st, env, runs, fresh = f.args
        b = Builder(f.append_basic_block("entry"))
        if self.debug:      # line 0: no eBPF pc, but a scope for what is inlined here
            b.debug_metadata = self.module.add_debug_info(
                "DILocation", {"line": 0, "column": 0, "scope": self.subprogram(f, 0)})
        c = self.i64

        def word(base, i, value=None, tag="rg"):
            ptr = b.gep(base, [i if isinstance(i, ir.Value) else c(i)])
            instr = b.load(ptr, align=8) if value is None else b.store(value, ptr, align=8)
            instr.set_metadata("tbaa", self.tbaa["st" if base is st else "env" if base is env
                                                  else tag])
            return instr

        def reset_stack():
            """interp._reset_stack: the stack row covers the one frame below the top (r10
            on entry), which it returns."""
            rg = b.inttoptr(word(env, ENV_RG), I64P)
            srow = b.mul(word(st, ip.S_STACK_REGION), c(ip.RG_COLS))
            top = word(st, ip.S_STACK_TOP)
            word(rg, b.add(srow, c(ip.RG_VBASE)), b.sub(top, c(FRAME)))
            word(rg, b.add(srow, c(ip.RG_SIZE)), c(FRAME))
            word(rg, b.add(srow, c(ip.RG_HOST)), word(st, ip.S_STACK_HOST))
            return top

        rg = b.inttoptr(word(env, ENV_RG), I64P)
        rows = word(env, ENV_ROWS)
        zero_counts = f.append_basic_block("zero_counts")
        loop = f.append_basic_block("zero_loop")
        start = f.append_basic_block("start")
        zero = (b.icmp_unsigned("==", fresh, c(ENTER_FRESH)) if self.hands_runs
                else b.icmp_unsigned("!=", fresh, c(ENTER_KEEP)))
        b.cbranch(zero, zero_counts, start)
        b.position_at_end(zero_counts)
        word(st, ip.S_FAST_LOOKUPS, c(0))
        for w in self.core_counts:
            word(st, w, c(0))
        b.branch(loop)
        b.position_at_end(loop)
        r = b.phi(I64)
        r.add_incoming(c(0), zero_counts)
        base = b.mul(r, c(ip.RG_COLS))
        word(rg, b.add(base, c(ip.RG_READS)), c(0), "rg_count")
        word(rg, b.add(base, c(ip.RG_WRITES)), c(0), "rg_count")
        r1 = b.add(r, c(1))
        r.add_incoming(r1, loop)
        b.cbranch(b.icmp_unsigned("<", r1, rows), loop, start)
        b.position_at_end(start)
        for w in (ip.S_DEPTH, ip.S_BASE_DEPTH, ip.S_STOP):
            word(st, w, c(0))
        word(st, ip.S_PROF, c(int(self.profile)))     # the interpreter counts after a handoff
        r0_first = c(0)
        if self.hands_runs:
            r0_first = b.select(b.icmp_unsigned("==", fresh, c(ENTER_GO_ON)),
                                word(st, ip.R_BASE), r0_first)
        word(st, ip.R_BASE, r0_first)
        # each run starts with the stack row over one frame (interp._reset_stack); a
        # program that calls nothing never moves it, so it is set once, and the row
        # reads of its checks may then leave the loop of runs
        calls = any(int(e) < len(NAMES) and NAMES[int(e)].startswith("call")
                    for e in self.code[:, 0])
        if not calls:
            top = reset_stack()
        run = f.append_basic_block("run")
        before = b.block
        b.branch(run)
        b.position_at_end(run)
        # the runs done and the total in registers, written (never read back) for the
        # helpers and a handoff to see: no loop-carried chain through memory
        done = b.phi(I64, name="done")
        total = b.phi(I64, name="total")
        # r0 too: each run starts with the last one's, passed in a register (the word
        # is still written after each run, for the driver and the interpreter)
        r0 = b.phi(I64, name="r0")
        done.add_incoming(c(0), before)
        total.add_incoming(c(0), before)
        r0.add_incoming(r0_first, before)
        word(st, ip.S_RUNS_DONE, done)
        word(st, ip.S_TOTAL, total)
        word(st, ip.S_INSNS, c(0))
        if calls:
            top = reset_stack()
        # what the program leaves in r1-r5 at its exit is seen by nothing
        with b.goto_entry_block():
            out = b.alloca(I64, 6, name="out")
        if self.entries:
            status = self._members(f, b, word, out, r0, top)
        else:
            args = [st, env, out, r0, word(st, ip.S_INIT_R1),
                    word(st, ip.S_INIT_R2)] + [c(0)] * 7 + [top, c(0)]
            status = b.call(self.llfns[0], args)
        finished = f.append_basic_block("finished")
        stopped = f.append_basic_block("stopped")
        ok = b.or_(b.icmp_unsigned("==", status, c(RETURNED)),
                   b.icmp_unsigned("==", status, c(STOP_RUN)))
        b.cbranch(ok, finished, stopped)
        b.position_at_end(stopped)
        # a handoff: the interpreter does this run's rest, then the runs left (only this
        # run's rest after a HANDOFF_RUN: native code goes on with the others)
        left = b.sub(runs, done)
        if self.hands_runs:
            left = b.select(b.icmp_unsigned("==", status, c(HANDOFF_RUN)), c(1), left)
        word(st, ip.S_RUNS_LEFT, left)
        b.ret(status)
        b.position_at_end(finished)
        returned = f.append_basic_block("returned")
        left_off = f.append_basic_block("left_off")
        ran = f.append_basic_block("ran")
        b.cbranch(b.icmp_unsigned("==", status, c(RETURNED)), returned, left_off)
        b.position_at_end(returned)
        r0_returned = b.load(out)
        b.branch(ran)
        b.position_at_end(left_off)
        r0_stopped = word(st, ip.R_BASE)            # a stop left it there
        b.branch(ran)
        b.position_at_end(ran)
        r0_next = b.phi(I64)
        r0_next.add_incoming(r0_returned, returned)
        r0_next.add_incoming(r0_stopped, left_off)
        total1 = b.add(total, word(st, ip.S_INSNS))
        done1 = b.add(done, c(1))
        done.add_incoming(done1, ran)
        total.add_incoming(total1, ran)
        r0.add_incoming(r0_next, ran)
        word(st, ip.R_BASE, r0_next)
        last = f.append_basic_block("last")
        b.cbranch(b.icmp_unsigned(">=", done1, runs), last, run)
        b.position_at_end(last)
        word(st, ip.S_TOTAL, total1)
        word(st, ip.S_RUNS_DONE, done1)
        word(st, ip.S_RUNS_LEFT, c(0))
        word(st, ip.S_DEPTH, c(0))
        word(st, ip.S_STATUS, c(ip.DONE))
        b.ret(c(ip.DONE))

    def _members(self, f: ir.Function, b: Builder, word, out, r0, top):
        """One run of linked code: from the member at st[S_ENTRY], then the tail calls'
        targets (tail_jumps).  The run's status."""
        c = self.i64
        st, env = f.args[0], f.args[1]
        word(st, ip.S_CHAIN, c(0))
        r1, r2 = word(st, ip.S_INIT_R1), word(st, ip.S_INIT_R2)
        status = b.call(self.dispatcher(), [word(st, ip.S_ENTRY), st, env, out, r0, r1, r2]
                        + [c(0)] * 7 + [top, c(0)])
        return self.tail_jumps(b, status, st, env, out, top, c(0),
                               lambda: [word(st, ip.S_PC), r1, r2])

    def tail_jumps(self, b: Builder, status, st, env, out, top, depth, read):
        """After a call whose status may be TAIL_JUMP: the target in the same frame
        (``top``, ``depth``), as long as it tail calls; the last one's status.  ``read()``
        gives the target's pc and its r1 and r2 (st's _JUMP_WORDS), in the cold block."""
        c = self.i64
        f = b.function
        before = b.block
        jump = f.append_basic_block("tail_jump")
        done = f.append_basic_block("tail_jumped")
        cond = b.icmp_unsigned("==", status, c(TAIL_JUMP))
        b.cbranch(cond, jump, done).set_metadata("prof", self.weights(1, 1000))
        b.position_at_end(jump)
        target, r1, r2 = read()
        again = b.call(self.dispatcher(), [target, st, env, out, c(0), r1, r2]
                       + [c(0)] * 7 + [top, depth])
        b.cbranch(b.icmp_unsigned("==", again, c(TAIL_JUMP)), jump, done)
        b.position_at_end(done)
        result = b.phi(I64, name="jumped_status")
        result.add_incoming(status, before)
        result.add_incoming(again, jump)
        return result

    def dispatcher(self) -> ir.Function:
        """``bpf_members(at, st, env, out, r0..r10, depth)``: the member of linked code that
        starts at ``at`` called with those registers; at a pc that is no member's start,
        HANDOFF with the registers in st (the interpreter goes on there)."""
        if self._dispatcher is not None:
            return self._dispatcher
        c = self.i64
        fnty = ir.FunctionType(I64, [I64, I64P, I64P, I64P] + [I64] * 11 + [I64])
        f = self._dispatcher = ir.Function(self.module, fnty, name="bpf_members")
        f.linkage = "internal"
        at, st, env, out, *regs = f.args
        depth = regs.pop()
        b = Builder(f.append_basic_block("entry"))
        if self.debug:
            b.debug_metadata = self.module.add_debug_info(
                "DILocation", {"line": 0, "column": 0, "scope": self.subprogram(f, 0)})
        nowhere = f.append_basic_block("no_member")
        sw = b.switch(at, nowhere)
        for start in self.entries:
            blk = f.append_basic_block(f"member{start}")
            sw.add_case(c(start), blk)
            b.position_at_end(blk)
            b.ret(b.call(self.llfns[start], [st, env, out, *regs, depth]))
        b.position_at_end(nowhere)
        for r, value in enumerate(regs):
            b.store(value, b.gep(st, [c(ip.R_BASE + r)])).set_metadata("tbaa", self.tbaa["st"])
        b.store(depth, b.gep(st, [c(ip.S_DEPTH)])).set_metadata("tbaa", self.tbaa["st"])
        b.ret(c(HANDOFF))
        return f


def helper_bits(core: int) -> int:
    """What the lifter reads of a program's S_CORE word: the helpers' bits, not where
    the context keeps its packet pointers (so a build, and its cache key, depend on
    these alone)."""
    return core & ~ip.PTRS_MASK


def lift_module(code: np.ndarray, consts: np.ndarray, name: str = "prog",
                triple: str = "", debug: bool = False, profile: bool = False,
                entries: tuple[int, ...] = (), core: int = 0) -> ir.Module:
    """The LLVM module of a program's lowered code, with the entry ``xsim_entry``;
    ``debug`` adds line info whose lines are eBPF pcs + 1, ``profile`` counts
    executions per pc, ``entries`` are a linked program's members' first pcs, ``core``
    its S_CORE word (Lifter.core)."""
    with _gc_paused():
        return Lifter(code, consts, name, triple, debug, profile, entries, core).build()


def lift_text(code: np.ndarray, consts: np.ndarray, name: str = "prog", **options) -> str:
    """``lift_module``'s module as IR text, the module then taken apart.

    A module is a web of cycles (blocks and their function, instructions and their
    block, phis and the values they merge), which only the cyclic GC can free; emptied,
    it goes as soon as the last reference does.  Generated 50-instruction programs
    lift and print in 11.3 ms so, 15.3 ms with the collections (80 programs, medians
    of 3 rounds)."""
    module = lift_module(code, consts, name, **options)
    text = str(module)
    for fn in module.functions:
        for block in fn.blocks:
            for insn in block.instructions:
                insn.__dict__.clear()
            block.__dict__.clear()
        fn.__dict__.clear()
    module.__dict__.clear()
    return text


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while a module is built.  A module is thousands of linked
    objects made at once, and every collection that runs meanwhile walks those made so
    far, again as they age (0.8 ms of the firewall's first lift).  The module is
    collected like any other once it is garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
