"""Program: decoded bytecode plus the driver that runs it on the interpreter core.

``Program.run`` lays out the address space (input memory as region
``memory`` with r1 pointing at it and r2 holding its length, the stack, and
an optional ``packet`` region for LD_ABS/LD_IND), runs the compiled loop,
serves helper calls written in Python when the loop stops for them, and
turns the loop's status into a :class:`RunResult`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import (BudgetExceeded, CallDepthExceeded, HelperError, RunError,
                      UnresolvedReference, XsimError)
from ..isa import interp as ip
from ..isa import opcodes as oc
from ..isa.insn import INSN_SIZE, Insn, decode
from ..isa.opcodes import Kind
from .env import RunEnv
from .helper_table import BY_ID, BY_NAME
from .helpers import KEEP_R0, HelperCall, HelperRegistry
from .kernel_helpers import csum_diff_scratchpad
from .memory import AddressSpace, run_space
from .result import RunResult

if TYPE_CHECKING:
    from .tailcall import LinkedProgram

DEFAULT_BUDGET = 100_000_000
# the state words run() reads on every call, bound once (module attribute lookups add up)
_R0, _INSNS, _TOTAL, _RUNS_DONE = ip.R_BASE, ip.S_INSNS, ip.S_TOTAL, ip.S_RUNS_DONE
_DONE, _FRESH = ip.DONE, ip.FRESH
_COUNTS = slice(ip.RG_READS, ip.RG_WRITES + 1)
#: the state words prepare() sets from the input's shape
_SETUP = [ip.S_CPU, ip.S_PKT_NET, ip.S_PKT_MAC, ip.S_PKT_HEAD, ip.S_INIT_R1, ip.S_INIT_R2,
          ip.S_STACK_HOST, ip.S_PKT_REGION]
#: the words of a run's redirect, which a tail call carries into its target
_REDIRECT = ip.S_REDIRECT_WORDS
TAIL_CALL_ID = BY_NAME["tail_call"].id
_CSUM_DIFF_BIT = 1 << (ip.CORE_BIT + ip.CORE_IDS.index(ip.CSUM_DIFF))
run_core = ip.run_core
#: the interpreter here; the JIT tier's driver lives above this layer, in xsim.jit;
#: "auto" is the JIT for runs that repeat at least AUTO_JIT_REPEAT times, else the interpreter
#: an ISA's name is the JIT's code for that ISA, run under unicorn (xsim.crosscheck)
ISA_TIERS = ("x86_64", "aarch64", "riscv64")
TIERS = ("interp", "jit", "auto") + ISA_TIERS
AUTO_JIT_REPEAT = 64
#: "auto" compiles programs of at most this many slots (BPF_MAXINSNS): compile time grows
#: with size, and a larger program would wait seconds for its first run
AUTO_JIT_MAX_SLOTS = 4096
_MASK = (1 << 64) - 1


def _unlinked() -> None:
    """``Program.linked`` of a program outside an object: it links with nothing."""
    return None


class Tier(Protocol):
    """A tier from a layer above the runtime that runs a prepared Program its own way
    (``xsim.crosscheck.native``: the kernel's JIT image under unicorn)."""

    def drive(self, prog: Program, repeat: int, budget: int, histogram: bool,
              calls: dict[int, int]) -> tuple:
        """``repeat`` runs on the inputs ``prog.prepare`` laid out: the outcome tuple of
        ``Program._drive`` (last program, status, error, insns, total, runs, programs
        used, r0, the helper calls the core served by id: ``ip.core_calls``)."""


class Program:
    """An eBPF program: checked at construction, runnable many times."""

    #: where a linked program's members start (xsim.runtime.tailcall); () for others
    starts: tuple[int, ...] = ()

    def __init__(self, insns: list[Insn], n_slots: int, *, name: str = "prog",
                 helpers: HelperRegistry | None = None, space: AddressSpace | None = None,
                 env: RunEnv | None = None, unresolved: dict[int, str] | None = None,
                 lines: tuple[tuple[int, str, int, str], ...] = ()) -> None:
        """``space``: the address space to run in (an object's, with its maps); by
        default the program gets one of its own with the stack, memory and packet."""
        self.insns = insns
        self.n_slots = n_slots
        self.name = name
        self.helpers = helpers if helpers is not None else HelperRegistry()
        self.space = space if space is not None else run_space()
        self.env = env if env is not None else RunEnv()
        #: slot -> what the reference there names, for the error if it is executed
        self.unresolved = unresolved or {}
        #: BTF line info: (slot, file, line number, text), in slot order
        self.lines = lines
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
        self._setup: tuple | None = None
        self._core = self._core_word()
        # tail calls switch programs mid-run: such programs run linked with their
        # object's others (xsim.runtime.tailcall), or else one run at a time
        self._tail_calls = any(i.op.kind is Kind.CALL and i.src == oc.CALL_HELPER
                               and i.imm == TAIL_CALL_ID for i in insns)
        #: the object's linked program this one runs in (None: it does not link)
        self.linked: Callable[[], LinkedProgram | None] = _unlinked

    def _core_word(self) -> int:
        """``ip.S_CORE`` for this registry: the helpers of ip.CORE_IDS the core may serve
        (those registered with ``core``; those of the context's packet pointers where
        the hook's context has them), and where that context keeps them."""
        ptrs = self.helpers.ctx_ptrs
        word = ptrs & ip.PTRS_MASK
        for k, helper_id in enumerate(ip.CORE_IDS):
            h = self.helpers.get(helper_id)
            if h is not None and h.core and (ptrs or helper_id not in ip.PTRS_CORE_IDS):
                word |= 1 << (ip.CORE_BIT + k)
        return word

    def _core_state(self) -> int:
        """``ip.S_CORE`` for this run: bpf_csum_diff of a kernel before 6.13 (the
        kconfig's LINUX_KERNEL_VERSION) is Python's, which has that form too."""
        word = self._core
        if word & _CSUM_DIFF_BIT and csum_diff_scratchpad(self.env):
            word &= ~_CSUM_DIFF_BIT
        return word

    @classmethod
    def from_bytes(cls, code: bytes, *, name: str = "prog", helpers: HelperRegistry | None = None,
                   space: AddressSpace | None = None, env: RunEnv | None = None) -> Program:
        """Decode raw little-endian bytecode; raises DecodeError if it is not a valid program."""
        insns = decode(code)
        return cls(insns, len(code) // INSN_SIZE, name=name, helpers=helpers, space=space,
                   env=env)

    @property
    def code(self) -> bytes:
        return b"".join(i.encode() for i in self.insns)

    def run(self, memory: bytes | bytearray | memoryview = b"", *, packet: bytes | None = None,
            repeat: int = 1, tier: str | Tier = "interp", budget: int | None = DEFAULT_BUDGET,
            histogram: bool = False, packet_window: tuple[int, int] | None = None,
            packet_headers: tuple[int, int, int] = (0, 0, 0)) -> RunResult:
        """Run ``repeat`` times on the same memory (r1 = memory, r2 = its length).

        ``packet`` fills the ``packet`` region (LD_ABS/LD_IND read it; hooks put
        their packet buffer there), and ``packet_window`` narrows what of it the
        program may touch to ``[start, end)`` offsets.  ``packet_headers`` are the
        network header, the MAC header and the start of the buffer as offsets from
        the window's start, for LD_ABS/LD_IND's SKF_NET_OFF and SKF_LL_OFF offsets.

        ``tier`` is a name of TIERS or a :class:`Tier` object.  Never raises for what the
        program does: a fault, a runaway loop or a missing helper comes back as
        ``RunResult.error``.
        """
        if isinstance(tier, str) and tier not in TIERS:
            raise XsimError(f"tier {tier!r} is not available; this build has: "
                            f"{', '.join(TIERS)}")
        budget = DEFAULT_BUDGET if budget is None else budget      # None: the default
        if repeat < 1 or budget < 1:
            raise XsimError(f"repeat and budget must be at least 1 (got {repeat}, {budget})")
        space = self.space
        self.prepare(memory, packet, packet_window, packet_headers)
        if histogram:
            self._counts[:] = 0
        calls: dict[int, int] = {}
        printed = len(self.env.printk)
        self._st[_REDIRECT] = 0
        if tier == "auto":
            tier = "jit" if repeat >= AUTO_JIT_REPEAT and not histogram and self.compiles() \
                else "interp"
        if tier == "jit":           # compiling (or loading) is not the run's time
            _jit_driver().native(self.runner(), histogram)
        elif tier in ISA_TIERS:
            _emulator().emulated(self.runner(), tier, histogram)
        t0 = time.perf_counter_ns()
        if isinstance(tier, str):
            outcome = self.drive_tier(tier, repeat, budget, histogram, calls)
        else:
            outcome = tier.drive(self, repeat, budget, histogram, calls)
        elapsed = time.perf_counter_ns() - t0
        last, status, error, insns, total, runs, used, r0, served = outcome
        if last is not self:            # where a tail-called program redirected to
            self._st[_REDIRECT] = last._st[_REDIRECT]
        if error is None and status != _DONE:
            error = last.error_of(status)
        elif isinstance(error, RunError) and error.pc >= 0:
            error.source = last.source_at(error.pc)
        for helper_id, n in served.items():
            calls[helper_id] = calls.get(helper_id, 0) + n
        result = RunResult(
            r0=r0, insns=insns, duration_ns=elapsed / (runs or 1),
            runs=runs, insns_total=total, error=error, helper_calls=calls,
            region_names=space.names,
            region_counts=space.table[1:, _COUNTS].tolist(),
            memory=space.bytes_of("memory"),
            packet=space.bytes_of("packet") if packet is not None else None,
            printk=self.env.printk[printed:] if len(self.env.printk) > printed else [])
        if histogram:
            result.histogram = _histogram(used)
        return result

    def drive_tier(self, tier: str, repeat: int, budget: int, histogram: bool,
                   calls: dict[int, int]) -> tuple:
        """``repeat`` runs on the inputs ``prepare`` laid out, on the named tier ("auto"
        resolved): the outcome tuple of :meth:`Tier.drive`.  A Tier of a layer above
        calls it to run a tier its own way (with the histogram on, say)."""
        link = self._link()
        if link is not None:
            return link.drive_for(self, tier, repeat, budget, histogram, calls)
        if tier == "jit":
            return _jit_driver().drive(self, repeat, budget, histogram, calls)
        if tier in ISA_TIERS:
            return _emulator().drive(self, repeat, budget, histogram, calls, tier)
        if self._tail_calls:
            return self._drive_each(repeat, budget, histogram, calls)
        return self._drive(repeat, budget, histogram, calls)

    def _link(self) -> LinkedProgram | None:
        """The linked program a run of this one goes through (it tail calls, and links)."""
        return self.linked() if self._tail_calls else None

    def runner(self) -> Program:
        """The program whose code a run of this one runs: its linked program, or itself."""
        return self._link() or self

    def compiles(self) -> bool:
        """Whether the "auto" tier compiles this program (compiling what runs, if so):
        not too large, and nothing in it the JIT cannot lift."""
        runner = self.runner()
        if runner.n_slots > AUTO_JIT_MAX_SLOTS:
            return False
        try:
            _jit_driver().native(runner)
        except XsimError:
            return False
        return True

    def prepare(self, memory: bytes | bytearray | memoryview = b"", packet: bytes | None = None,
                packet_window: tuple[int, int] | None = None,
                packet_headers: tuple[int, int, int] = (0, 0, 0)) -> None:
        """Lay out the run's input regions and the state words that follow their shape
        (what ``run`` does before it starts the loop; a batch loop calls it once)."""
        space, st = self.space, self._st
        space.fill("memory", memory)
        if packet is not None or self._packet.size:
            space.fill("packet", b"" if packet is None else packet)
        if packet_window is not None:
            # a hook's packet: the program may touch only [start, end) of the buffer
            # (the kernel's data_meta..data_end); its helpers move the window
            space.set_window("packet", *packet_window)
        core = self._core_state() if self._core & _CSUM_DIFF_BIT else self._core
        setup = (self._memory.size, self._stack.host, packet is not None, self.env.cpu,
                 packet_headers, core)
        if setup != self._setup:   # the words below change only with the input's shape
            self._setup = setup
            st[ip.S_CORE] = core
            st[ip.S_CPU] = self.env.cpu
            st[ip.S_PKT_NET:ip.S_PKT_HEAD + 1] = [v & _MASK for v in packet_headers]
            st[ip.S_INIT_R2] = self._memory.size
            st[ip.S_STACK_HOST] = self._stack.host + self._stack.capacity - oc.STACK_FRAME_SIZE
            st[ip.S_PKT_REGION] = self._packet.index if packet is not None else 0

    def tail_call_to(self, target: Program, used: list[Program], histogram: bool) -> Program:
        """Go on in ``target`` after this program's tail call, on this run's inputs (the
        same context, packet and stack): its set-up words from here, and its counters
        zeroed when the run first enters it (``used`` lists the programs entered)."""
        self.share_inputs(target)
        if target not in used:
            used.append(target)
            target._st[ip.CORE_WORDS] = 0
            target._st[ip.S_CORE] = target._core_state()
            if histogram:
                target._counts[:] = 0
        return target

    def share_inputs(self, other: Program) -> None:
        """Give ``other`` this program's run inputs: the set-up words prepare() laid out
        (it shares the address space) and the redirect so far."""
        other._st[_SETUP] = self._st[_SETUP]
        other._st[_REDIRECT] = self._st[_REDIRECT]
        other._setup = self._setup

    def error_of(self, status: int) -> XsimError:
        """The error for a status the loop stopped with (not DONE or HELPER), with the C
        source line where the object has line info."""
        error = self._explain(status)
        if isinstance(error, RunError) and error.pc >= 0:
            error.source = self.source_at(error.pc)
        return error

    def _drive(self, repeat: int, budget: int, histogram: bool,
               calls: dict[int, int]) -> tuple:
        """All runs inside the compiled loop (no tail calls possible): the fast path."""
        space, st = self.space, self._st
        code, counts = self._code, self._counts
        status = run_core(code, st, space.mem, space.table, counts, _FRESH, repeat, budget,
                          histogram)
        status, error, _ = self.serve_helpers(status, calls, 0)
        words = st[:ip.OUTCOME_WORDS].tolist()
        insns = words[_INSNS]
        total = words[_TOTAL] + (0 if status == _DONE else insns)
        return (self, status, error, insns, total, words[_RUNS_DONE], [self], words[_R0],
                ip.core_calls(words))

    def _drive_each(self, repeat: int, budget: int, histogram: bool, calls: dict[int, int],
                    segment=None) -> tuple:
        """One run at a time, following tail calls from program to program.

        ``segment(prog, fresh, budget, chain, histogram, calls) -> (status, error, tail
        call target)`` runs one program of the chain from its start (with its counters
        zeroed when ``fresh``); the interpreter's by default, the JIT tier gives its own."""
        segment = segment or Program._segment
        used = [self]
        total = insns = runs = 0
        cur, status, error = self, ip.DONE, None
        for run in range(repeat):
            cur, chain, insns = self, 0, 0
            status, error, target = segment(cur, run == 0, budget, chain, histogram, calls)
            while target is not None:
                chain += 1
                insns += int(cur._st[ip.S_INSNS])
                cur = cur.tail_call_to(target, used, histogram)
                if insns >= budget:     # the budget counts the whole chain's instructions
                    cur._st[[ip.S_PC, ip.S_INSNS, ip.R_BASE]] = 0   # (r0 as a run starts)
                    status, error = ip.BUDGET, None
                    break
                status, error, target = segment(cur, False, budget - insns, chain,
                                                histogram, calls)
            if status == ip.BUDGET:     # its error tells the chain's count and budget
                cur._st[ip.S_INSNS] += insns
                cur._st[ip.S_BUDGET] = budget
                insns = int(cur._st[ip.S_INSNS])
            else:
                insns += int(cur._st[ip.S_INSNS])
            total += insns
            if status != ip.DONE or error is not None:
                break
            runs += 1
        served: dict[int, int] = {}
        for p in used:
            for helper_id, n in ip.core_calls(p._st[:ip.OUTCOME_WORDS].tolist()).items():
                served[helper_id] = served.get(helper_id, 0) + n
        return cur, status, error, insns, total, runs, used, int(cur._st[ip.R_BASE]), served

    def _segment(self, fresh: bool, budget: int, chain: int, histogram: bool,
                 calls: dict[int, int]) -> tuple[int, XsimError | None, Program | None]:
        """One program of a tail-call chain on the interpreter, Python helpers served,
        until it ends, fails or tail-calls."""
        space = self.space
        status = run_core(self._code, self._st, space.mem, space.table, self._counts,
                          ip.FRESH if fresh else ip.FRESH_KEEP_COUNTS, 1, budget, histogram)
        return self.serve_helpers(status, calls, chain)

    def serve_helpers(self, status: int, calls: dict[int, int],
                      chain: int) -> tuple[int, XsimError | None, Program | None]:
        """While the loop stops for a Python helper: serve it and resume.  Ends with the
        loop's status, or a helper's error, or a tail call's target."""
        space = self.space
        while status == ip.HELPER:
            error, target = self._call_helper(calls, chain)
            if error is not None or target is not None:
                return status, error, target
            # a helper may have grown a region: fetch the arrays again
            status = run_core(self._code, self._st, space.mem, space.table, self._counts,
                              ip.RESUME, 0, 0, False)
        return status, None, None

    def _call_helper(self, calls: dict[int, int],
                     chain: int) -> tuple[XsimError | None, Program | None]:
        """Serve the helper call the loop stopped at; a tail call returns its target."""
        st = self._st
        pc, helper_id = int(st[ip.S_PC]), int(st[ip.S_HELPER])
        helper = self.helpers.get(helper_id)
        if helper is None:
            known = BY_ID.get(helper_id)
            if known is None:
                return HelperError(pc, helper_id, "the kernel has no helper with this id"), None
            return HelperError(pc, helper_id, "xsim does not provide this helper here",
                               f"bpf_{known.name}"), None
        calls[helper_id] = calls.get(helper_id, 0) + 1
        args = tuple(st[ip.R_BASE + 1:ip.R_BASE + 6].tolist())
        call = HelperCall(args, pc, self.space, self.env, chain,  # type: ignore[arg-type]
                          lambda ptr, *a: self._invoke(ptr, a, calls, pc, helper_id), st)
        try:
            r0 = helper.fn(call)
        except XsimError as exc:
            return exc, None
        except Exception as exc:  # a helper's own bug must not look like the program's
            return HelperError(pc, helper_id, f"the helper raised {type(exc).__name__}: {exc}",
                               helper.name), None
        if call.tail_target is not None:
            depth = int(st[ip.S_DEPTH])
            if depth:       # its exit returns to the subprogram's caller, in this program
                return HelperError(pc, helper_id, f"a tail call from a subprogram (call depth"
                                   f" {depth}) runs only in linked code (the object's "
                                   "programs do not link)", helper.name), None
            return None, call.tail_target
        if r0 is not KEEP_R0:
            st[ip.R_BASE] = int(r0) & _MASK
        st[ip.S_PC] = pc + 1
        if call.stop_value is not None:
            st[ip.R_BASE] = call.stop_value
            st[ip.S_STOP] = 1
        return None, None

    def _invoke(self, pointer: int, args: tuple[int, ...], calls: dict[int, int], pc: int,
                helper_id: int) -> int:
        """Run the subprogram at ``pointer`` as a callback of a helper (bpf_loop & co): a
        new frame below the caller's, its exit returning here with r0."""
        slot = ip.function_slot(pointer, self.n_slots)
        if slot is None:
            raise HelperError(pc, helper_id, f"callback {pointer:#x} is no function of this "
                              "program")
        st, table, stack = self._st, self.space.table, self._stack.index
        depth = int(st[ip.S_DEPTH])
        if depth + 1 >= oc.MAX_CALL_FRAMES:
            raise CallDepthExceeded(pc, oc.MAX_CALL_FRAMES)
        saved = st[:ip.C_BASE].copy()
        saved_row = table[stack, :ip.RG_PERM].copy()
        frame = oc.STACK_FRAME_SIZE
        for i, value in enumerate(args):
            st[ip.R_BASE + 1 + i] = value & _MASK
        st[ip.R_BASE + 10] -= frame
        st[ip.S_PC], st[ip.S_DEPTH], st[ip.S_BASE_DEPTH] = slot, depth + 1, depth + 1
        st[ip.S_RUNS_LEFT], st[ip.S_STOP] = 1, 0
        table[stack, ip.RG_VBASE] -= frame
        table[stack, ip.RG_SIZE] += frame
        table[stack, ip.RG_HOST] -= frame
        status = run_core(self._code, st, self.space.mem, self.space.table, self._counts,
                          ip.RESUME, 0, 0, False)
        status, error, target = self.serve_helpers(status, calls, 0)
        if error is not None:
            raise error
        if target is not None:
            raise HelperError(pc, helper_id, "a callback may not tail call")
        if status != ip.DONE:
            raise self._explain(status)
        r0, insns, served = int(st[ip.R_BASE]), int(st[ip.S_INSNS]), st[ip.CORE_WORDS]
        st[:ip.C_BASE] = saved
        st[ip.S_INSNS] = insns          # the callback's instructions count against the budget
        st[ip.CORE_WORDS] = served      # and the calls the core served in it are the run's
        self.space.table[stack, :ip.RG_PERM] = saved_row
        return r0

    def where(self, pc: int) -> str:
        """``pc`` for people: a linked program's names its member too."""
        return str(pc)

    def source_at(self, pc: int) -> str | None:
        """``file:line: text`` of the source line the instruction at ``pc`` comes from."""
        best = None
        for slot, file, num, text in self.lines:
            if slot > pc:
                break
            best = f"{file}:{num}: {text.strip()}"
        return best

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
        if pc in self.unresolved:
            return UnresolvedReference(pc, self.unresolved[pc], None)
        if insn is not None and insn.op.kind is Kind.CALL:
            return UnresolvedReference(pc, f"kfunc call (BTF id {insn.imm})")
        if insn is not None and insn.op.kind is Kind.LDDW:
            kind = oc.LDDW_KINDS[insn.src][1]
            return UnresolvedReference(pc, f"lddw of {kind} ({insn.imm})")
        return XsimError(f"pc {pc}: interpreter stopped with status {status}")



_JIT_DRIVER = None


def _emulator():
    """xsim.crosscheck.emulate, imported on first use (it needs unicorn)."""
    import importlib
    return importlib.import_module("xsim.crosscheck.emulate")


def _jit_driver():
    """xsim.jit.driver, imported on first use (llvmlite is not needed until then)."""
    global _JIT_DRIVER
    if _JIT_DRIVER is None:
        import importlib
        _JIT_DRIVER = importlib.import_module("xsim.jit.driver")
    return _JIT_DRIVER


def _histogram(programs: list[Program]) -> dict[str, int]:
    """Instructions executed per class, over every program the run went through."""
    hist: dict[str, int] = {}
    for prog in programs:
        for insn in prog.insns:
            n = int(prog._counts[insn.pc])
            if n:
                name = oc.CLASS_NAMES[insn.op.cls]
                hist[name] = hist.get(name, 0) + n
    return hist
