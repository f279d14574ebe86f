"""bpf_conformance entry points: ``run(program, memory) -> r0`` and a plugin command.

The suite's only helper is id 5 with uBPF's "unwind" meaning: it returns its
first argument, and when that is 0 the program stops there with r0 = 0
(``call_unwind_fail.data``).  Nothing else is registered, so a test that
calls any other helper fails as it should.
"""
from __future__ import annotations

from ..runtime import HelperCall, HelperRegistry, Program

UNWIND_HELPER_ID = 5
HELPERS = HelperRegistry()


@HELPERS.register(UNWIND_HELPER_ID, "unwind")
def _unwind(call: HelperCall) -> int:
    if call.args[0] == 0:
        call.stop(0)
    return call.args[0]


def run(program: bytes, memory: bytes) -> int:
    """Run one conformance test program; an error raises its XsimError."""
    result = Program.from_bytes(program, helpers=HELPERS).run(memory=memory)
    result.raise_for_error()
    return result.r0


def run_jit(program: bytes, memory: bytes, tier: str = "jit") -> int:
    """``run`` on the JIT tier: the same program through native code (``tier``: an
    ISA's name runs that ISA's code under unicorn)."""
    result = Program.from_bytes(program, helpers=HELPERS).run(memory=memory, tier=tier)
    result.raise_for_error()
    return result.r0


def run_isa_x86_64(program: bytes, memory: bytes) -> int:
    """``run_jit`` with the x86-64 code under unicorn."""
    return run_jit(program, memory, "x86_64")


def run_isa_aarch64(program: bytes, memory: bytes) -> int:
    """``run_jit`` with the aarch64 code under unicorn."""
    return run_jit(program, memory, "aarch64")


def run_isa_riscv64(program: bytes, memory: bytes) -> int:
    """``run_jit`` with the riscv64 (rv64gc) code under unicorn."""
    return run_jit(program, memory, "riscv64")
