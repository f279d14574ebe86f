"""Where program types meet their hooks: the registry that hook packages fill.

A hook (``xsim.nic`` for XDP, TC and socket filters, and later the others)
owns its program types' context: it rewrites context accesses as the
kernel's verifier does (refusing what the verifier refuses) and runs a test
run as BPF_PROG_TEST_RUN does for those types.  The runtime only looks hooks
up here; it imports none of them (layers point down).

A hook may also describe its context as the kernel's own structs
(:class:`KernelContext`), so that the kernel's JIT image of a program, which reads
``struct xdp_buff`` or ``struct sk_buff`` where xsim's rewritten code reads its
context region, can run on xsim's inputs (``xsim crosscheck --native``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..elf.kinds import ProgType
from ..errors import XsimError

if TYPE_CHECKING:
    from ..elf.spec import ProgramSpec
    from ..isa.insn import Insn
    from .helpers import HelperFn, HelperRegistry
    from .object import ObjectProgram
    from .testrun import TestRunOutput


class VerifierError(XsimError):
    """An access the kernel's verifier refuses, with the verifier's reason (exit 3)."""

    def __init__(self, program: str, pc: int, reason: str) -> None:
        self.program, self.pc, self.reason = program, pc, reason
        super().__init__(f"program {program}: pc {pc}: {reason}")


#: kernel struct layouts as read from the kernel's BTF: struct name -> member -> byte offset
Layouts = Mapping[str, Mapping[str, int]]


class KernelContext(Protocol):
    """A hook's context as the kernel passes it to native code: its structs built from
    xsim's context region and read back into it, at a base address the runner picks."""

    #: bytes of native memory the structs take from the base address
    size: int
    #: kernel functions that are not helpers but that the kernel's code calls with this
    #: context (the LD_ABS loaders), by kallsyms name, served like helpers
    functions: Mapping[str, HelperFn]

    def to_kernel(self, ctx: bytes, base: int) -> bytes:
        """The kernel's structs, laid out from ``base``, for xsim's context region ``ctx``."""

    def from_kernel(self, native: bytes, ctx: bytes) -> bytes:
        """xsim's context region ``ctx`` updated from the kernel's structs ``native``."""


class Hook(Protocol):
    prog_types: tuple[ProgType, ...]

    def add_helpers(self, registry: HelperRegistry) -> None:
        """Register the hook's helpers (called once per object)."""

    def rewrite(self, spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
        """The program with its context accesses rewritten; VerifierError if refused."""

    def test_run(self, prog: ObjectProgram, *, data_in: bytes | None, ctx_in: bytes | None,
                 repeat: int, budget: int | None) -> TestRunOutput:
        """BPF_PROG_TEST_RUN for this program type."""

    # Optional, for running the kernel's JIT image (hooks without them cannot):
    #   kernel_structs: Mapping[str, tuple[str, ...]]  -- the struct members to record
    #   def kernel_context(self, layouts: Layouts, insns: list[Insn]) -> KernelContext
    #       (NativeUnsupported when the program reads context fields it does not mirror)


HOOKS: dict[ProgType, Hook] = {}


def register_hook(hook: Hook) -> None:
    for t in hook.prog_types:
        HOOKS[t] = hook
