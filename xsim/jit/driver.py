"""Running a Program on its native code: the JIT tier behind ``Program.run(tier="jit")``.

The native code runs on the Program's own state arrays, so this driver does
what the interpreter's driver (``Program._drive``) does with the native entry
in place of ``run_core``: all ``repeat`` runs inside native code, Python
helpers served through one ctypes callback, and the same outcome tuple.  A tail-
calling program runs its linked program's code (xsim.runtime.tailcall), whose tail
calls are jumps; unlinked, they go through ``Program._drive_each`` with this tier's
segment.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from ..errors import HelperError, XsimError
from ..isa import interp as ip
from ..runtime.program import Program
from . import engine, lift

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_int64)
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int64)


class Native:
    """A Program's native code and the words it runs with."""

    def __init__(self, prog: Program, profile: bool = False) -> None:
        self.prog = prog
        try:
            self.code = engine.compile_program(prog._code, prog._st[ip.C_BASE:], prog.name,
                                               profile, prog.starts, prog._core)
        except lift.JitUnsupported as exc:
            raise XsimError(f"program {prog.name!r} cannot run on the jit tier: {exc}; "
                            "tier 'interp' runs it") from None
        self.entry = _ENTRY(self.code.entry)
        self.env = np.zeros(lift.ENV_WORDS, dtype=np.int64)
        self.callback = _CALLBACK(self._helper)
        self.env[lift.ENV_HELPER] = ctypes.cast(self.callback, ctypes.c_void_p).value
        self.env[lift.ENV_LOOKUP] = engine.LOOKUP_ADDRESS
        self.env[lift.ENV_CORE] = engine.CORE_ADDRESS
        self.env[lift.ENV_TAIL] = engine.TAIL_ADDRESS
        self.env[lift.ENV_ST_LEN] = len(prog._st)
        self.env[lift.ENV_COUNTS] = prog._counts.ctypes.data
        self.calls: dict[int, int] = {}
        self.chain = 0
        self._mem = self._table = None     # the arrays env points at now
        self._st_at, self._env_at = prog._st.ctypes.data, self.env.ctypes.data
        self.error: XsimError | None = None
        self.target: Program | None = None

    def prepare(self, budget: int, calls: dict[int, int], chain: int = 0) -> None:
        """The words a run needs, for callers that call the entry themselves."""
        self.calls, self.chain, self.error, self.target = calls, chain, None, None
        self._refresh()
        if self.env[lift.ENV_BUDGET] != budget:
            self.env[lift.ENV_BUDGET] = budget
            self.prog._st[ip.S_BUDGET] = budget

    def _refresh(self) -> None:
        """Where memory and the region table are now (a helper may have moved them)."""
        space, env = self.prog.space, self.env
        mem, table = space.mem, space.table
        if mem is not self._mem or table is not self._table:
            self._mem, self._table = mem, table
            env[lift.ENV_MEM] = mem.ctypes.data
            env[lift.ENV_MEM_LEN] = len(mem)
            env[lift.ENV_RG] = table.ctypes.data
            env[lift.ENV_ROWS] = table.shape[0]

    def _helper(self) -> int:
        """The Python helper the native code stopped at (its words are in ``st``)."""
        st = self.prog._st
        self.env[lift.ENV_PY_CALLS] += 1
        try:
            error, target = self.prog._call_helper(self.calls, self.chain)
        except BaseException as exc:      # nothing may unwind through native frames
            error, target = HelperError(int(st[ip.S_PC]), int(st[ip.S_HELPER]),
                                        f"the helper raised {type(exc).__name__}: {exc}"), None
        self._refresh()
        if error is not None:
            self.error = error
            return lift.CB_FAILED
        if target is not None:
            self.target = target
            return lift.CB_TAIL_CALL
        if st[ip.S_STOP]:
            st[ip.S_STOP] = 0
            return lift.CB_STOP
        return lift.CB_GO_ON

    def call(self, runs: int, fresh: bool, budget: int, calls: dict[int, int],
             chain: int = 0) -> int:
        """Run ``runs`` runs; the status, as run_core's (HELPER when a helper failed)."""
        self.prepare(budget, calls, chain)
        st = self.prog._st
        status = self.enter(runs, lift.ENTER_FRESH if fresh else lift.ENTER_KEEP)
        done = total = 0      # the runs of the entries before the last, and their count
        while status in (lift.HANDOFF, lift.HANDOFF_RUN):
            handed, status = status, self._interpret()
            if handed == lift.HANDOFF or status != ip.DONE or \
                    done + int(st[ip.S_RUNS_DONE]) >= runs:
                break
            # the interpreter did one run's rest: native code goes on with the others
            done += int(st[ip.S_RUNS_DONE])
            total += int(st[ip.S_TOTAL])
            status = self.enter(runs - done, lift.ENTER_GO_ON)
        if done:        # (two numpy updates cost a short run a tenth of its call)
            st[ip.S_RUNS_DONE] += done
            st[ip.S_TOTAL] += total
        if status == lift.HELPER_FAILED:
            return ip.HELPER
        return status

    def enter(self, runs: int, fresh: int) -> int:
        """The native entry's status for ``runs`` runs, ``fresh`` one of lift.ENTER_* (the
        emulator runs it elsewhere)."""
        return self.entry(self._st_at, self._env_at, runs, fresh)

    def _interpret(self) -> int:
        """The rest of the run on the interpreter, from where native code handed it over
        (the budget ends within the block at S_PC, or a lookup there needs Python; then
        S_RUNS_LEFT is 1: this run only), with Python helpers served as the
        interpreter's driver serves them."""
        prog, space = self.prog, self.prog.space
        status = ip.run_core(prog._code, prog._st, space.mem, space.table, prog._counts,
                             ip.RESUME, 0, 0, False)
        status, self.error, self.target = prog.serve_helpers(status, self.calls, self.chain)
        if self.error is not None:
            return lift.HELPER_FAILED
        return lift.TAIL_CALL if self.target is not None else status


def native(prog: Program, profile: bool = False) -> Native:
    """The Program's native code (a profiling build with ``profile``), compiled on first
    use."""
    attr = "_native_profile" if profile else "_native"
    n = getattr(prog, attr, None)
    if n is None:
        n = Native(prog, profile)
        setattr(prog, attr, n)
    return n


def compile_report(*programs: Program) -> dict | None:
    """What making the native code of the first of ``programs`` that has any cost (a
    tail-calling program's is its linked program's): compile and load time, and
    whether it came from the disk cache."""
    for prog in programs:
        for p in {prog.runner(): None, prog: None}:
            for attr in ("_native", "_native_profile"):
                n = getattr(p, attr, None)
                if n is not None:
                    return {"compile_ms": round(n.code.compile_s * 1e3, 3),
                            "load_ms": round(n.code.load_s * 1e3, 3),
                            "from_cache": n.code.from_cache}
    return None


def drive(prog: Program, repeat: int, budget: int, histogram: bool,
          calls: dict[int, int], code_of=native) -> tuple:
    """``Program.run``'s outcome tuple, from native code (a profiling build for the
    instruction histogram); ``code_of(prog, profile)`` gives the code (the host's by
    default, the emulator's for another ISA)."""
    if prog._tail_calls:
        return prog._drive_each(repeat, budget, histogram, calls,
                                functools.partial(_segment, code_of=code_of))
    n = code_of(prog, histogram)
    status = n.call(repeat, True, budget, calls)
    st = prog._st
    words = st[:ip.OUTCOME_WORDS].tolist()
    insns = words[ip.S_INSNS]
    total = words[ip.S_TOTAL] + (0 if status == ip.DONE else insns)
    return (prog, status, n.error, insns, total, words[ip.S_RUNS_DONE], [prog], words[ip.R_BASE],
            ip.core_calls(words))


def _segment(prog: Program, fresh: bool, budget: int, chain: int, histogram: bool,
             calls: dict[int, int], code_of=native) -> tuple:
    """Program._segment on native code: one program of a tail-call chain."""
    n = code_of(prog, histogram)
    status = n.call(1, fresh, budget, calls, chain)
    if status == lift.TAIL_CALL:
        return status, None, n.target
    return status, n.error, None
