"""Program: decoded bytecode plus the driver that runs it on the interpreter core.

``Program.run`` lays out the address space (input memory as region
``memory`` with r1 pointing at it and r2 holding its length, the stack, and
an optional ``packet`` region for LD_ABS/LD_IND), runs the compiled loop,
serves helper calls written in Python when the loop stops for them, and
turns the loop's status into a :class:`RunResult`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import (BudgetExceeded, CallDepthExceeded, HelperError, UnresolvedReference,
                      XsimError)
from ..isa import interp as ip
from ..isa import opcodes as oc
from ..isa.insn import INSN_SIZE, Insn, decode
from ..isa.opcodes import Kind
from .env import RunEnv
from .helpers import HelperCall, HelperRegistry
from .memory import AddressSpace, run_space
from .result import RunResult

DEFAULT_BUDGET = 100_000_000
run_core = ip.run_core
TIERS = ("interp",)
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class RunOptions:
    """Settings of a run, kept in one place."""

    repeat: int = 1
    budget: int = DEFAULT_BUDGET
    histogram: bool = False
    tier: str = "interp"


class Program:
    """An eBPF program: checked at construction, runnable many times."""

    def __init__(self, insns: list[Insn], n_slots: int, *, name: str = "prog",
                 helpers: HelperRegistry | None = None, space: AddressSpace | None = None,
                 env: RunEnv | None = None) -> None:
        """``space``: the address space to run in (an object's, with its maps); by
        default the program gets one of its own with the stack, memory and packet."""
        self.insns = insns
        self.n_slots = n_slots
        self.name = name
        self.helpers = helpers if helpers is not None else HelperRegistry()
        self.space = space if space is not None else run_space()
        self.env = env if env is not None else RunEnv()
        ip.ensure_compiled()
        self._code, consts = ip.lower(insns, n_slots)
        self._by_pc = {i.pc: i for i in insns}
        self._st = np.zeros(ip.STATE_WORDS + n_slots, dtype=np.uint64)
        self._st[ip.C_BASE:] = consts
        self._counts = np.zeros(n_slots, dtype=np.uint64)
        regions = self.space.by_name
        self._memory, self._packet, self._stack = regions["memory"], regions["packet"], regions["stack"]
        self._st[ip.S_INIT_R1] = self._memory.vaddr
        self._st[ip.S_STACK_TOP] = self._stack.end
        self._st[ip.S_STACK_REGION] = self._stack.index
        self._setup: tuple[int, int, bool] | None = None

    @classmethod
    def from_bytes(cls, code: bytes, *, name: str = "prog",
                   helpers: HelperRegistry | None = None) -> Program:
        """Decode raw little-endian bytecode; raises DecodeError if it is not a valid program."""
        insns = decode(code)
        return cls(insns, len(code) // INSN_SIZE, name=name, helpers=helpers)

    @property
    def code(self) -> bytes:
        return b"".join(i.encode() for i in self.insns)

    def run(self, memory: bytes | bytearray | memoryview = b"", *, packet: bytes | None = None,
            repeat: int = 1, tier: str = "interp", budget: int = DEFAULT_BUDGET,
            histogram: bool = False) -> RunResult:
        """Run ``repeat`` times on the same memory (r1 = memory, r2 = its length).

        Never raises for what the program does: a fault, a runaway loop or a
        missing helper comes back as ``RunResult.error``.
        """
        if tier not in TIERS:
            raise XsimError(f"tier {tier!r} is not available; this build has: "
                            f"{', '.join(TIERS)}")
        if repeat < 1 or budget < 1:
            raise XsimError(f"repeat and budget must be at least 1 (got {repeat}, {budget})")
        space, st = self.space, self._st
        space.fill("memory", memory)
        if packet is not None or self._packet.size:
            space.fill("packet", b"" if packet is None else packet)
        setup = (self._memory.size, self._stack.host, packet is not None)
        if setup != self._setup:   # the words below change only with the input's shape
            self._setup = setup
            st[ip.S_INIT_R2] = self._memory.size
            st[ip.S_STACK_HOST] = self._stack.host + self._stack.capacity - oc.STACK_FRAME_SIZE
            st[ip.S_PKT_REGION] = self._packet.index if packet is not None else 0
        if histogram:
            self._counts[:] = 0
        helper_calls: dict[int, int] = {}
        error: XsimError | None = None
        code, mem, table, counts = self._code, space.mem, space.table, self._counts
        t0 = time.perf_counter_ns()
        status = run_core(code, st, mem, table, counts, True, repeat, budget, histogram)
        while status == ip.HELPER:
            error = self._call_helper(helper_calls)
            if error is not None:
                break
            mem, table = space.mem, space.table     # a helper may have grown a region
            status = run_core(code, st, mem, table, counts, False, 0, 0, False)
        elapsed = time.perf_counter_ns() - t0
        if error is None and status != ip.DONE:
            error = self._explain(status)
        words = st[:ip.R_BASE + 1].tolist()
        runs = words[ip.S_RUNS_DONE]
        insns = words[ip.S_INSNS]
        accesses = table[1:, ip.RG_READS:ip.RG_WRITES + 1].tolist()
        result = RunResult(
            r0=words[ip.R_BASE], insns=insns, duration_ns=elapsed / (runs or 1), runs=runs,
            insns_total=words[ip.S_TOTAL] + (0 if status == ip.DONE else insns),
            error=error, helper_calls=helper_calls,
            region_names=space.names, region_counts=accesses,
            memory=space.bytes_of("memory"),
            packet=space.bytes_of("packet") if packet is not None else None)
        if histogram:
            result.histogram = self._histogram(self._counts)
        return result

    def _call_helper(self, calls: dict[int, int]) -> XsimError | None:
        st = self._st
        pc, helper_id = int(st[ip.S_PC]), int(st[ip.S_HELPER])
        helper = self.helpers.get(helper_id)
        if helper is None:
            return HelperError(pc, helper_id, "no such helper is registered")
        calls[helper_id] = calls.get(helper_id, 0) + 1
        args = tuple(int(v) for v in st[ip.R_BASE + 1:ip.R_BASE + 6])
        call = HelperCall(args, pc, self.space, self.env)  # type: ignore[arg-type]
        try:
            r0 = helper.fn(call)
        except XsimError as exc:
            return exc
        except Exception as exc:  # a helper's own bug must not look like the program's
            return HelperError(pc, helper_id, f"the helper raised {type(exc).__name__}: {exc}",
                               helper.name)
        st[ip.R_BASE] = int(r0) & _MASK
        st[ip.S_PC] = pc + 1
        if call.stop_value is not None:
            st[ip.R_BASE] = call.stop_value
            st[ip.S_STOP] = 1
        return None

    def _explain(self, status: int) -> XsimError:
        st = self._st
        pc = int(st[ip.S_PC])
        if status == ip.FAULT:
            return self.space.explain_fault(pc, int(st[ip.S_FAULT_ADDR]), int(st[ip.S_FAULT_SIZE]),
                                          int(st[ip.S_FAULT_KIND]))
        if status == ip.BUDGET:
            return BudgetExceeded(pc, int(st[ip.S_INSNS]), int(st[ip.S_BUDGET]))
        if status == ip.DEPTH:
            return CallDepthExceeded(pc, oc.MAX_CALL_FRAMES)
        insn = self._by_pc.get(pc)
        if insn is not None and insn.op.kind is Kind.CALL:
            return UnresolvedReference(pc, f"kfunc call (BTF id {insn.imm})")
        if insn is not None and insn.op.kind is Kind.LDDW:
            kind = oc.LDDW_KINDS[insn.src][1]
            return UnresolvedReference(pc, f"lddw of {kind} ({insn.imm})")
        return XsimError(f"pc {pc}: interpreter stopped with status {status}")

    def _histogram(self, counts: np.ndarray) -> dict[str, int]:
        hist: dict[str, int] = {}
        for insn in self.insns:
            n = int(counts[insn.pc])
            if n:
                name = oc.CLASS_NAMES[insn.op.cls]
                hist[name] = hist.get(name, 0) + n
        return hist
