"""Where program types meet their hooks: the registry that hook packages fill.

A hook (``xsim.nic`` for XDP, TC and socket filters, and later the others)
owns its program types' context: it rewrites context accesses as the
kernel's verifier does (refusing what the verifier refuses) and runs a test
run as BPF_PROG_TEST_RUN does for those types.  The runtime only looks hooks
up here; it imports none of them (layers point down).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..elf.kinds import ProgType
from ..errors import XsimError

if TYPE_CHECKING:
    from ..elf.spec import ProgramSpec
    from ..isa.insn import Insn
    from .helpers import HelperRegistry
    from .object import ObjectProgram
    from .testrun import TestRunOutput


class VerifierError(XsimError):
    """An access the kernel's verifier refuses, with the verifier's reason (exit 3)."""

    def __init__(self, program: str, pc: int, reason: str) -> None:
        self.program, self.pc, self.reason = program, pc, reason
        super().__init__(f"program {program}: pc {pc}: {reason}")


class Hook(Protocol):
    prog_types: tuple[ProgType, ...]

    def add_helpers(self, registry: HelperRegistry) -> None:
        """Register the hook's helpers (called once per object)."""

    def rewrite(self, spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
        """The program with its context accesses rewritten; VerifierError if refused."""

    def test_run(self, prog: ObjectProgram, *, data_in: bytes | None, ctx_in: bytes | None,
                 repeat: int, budget: int | None) -> TestRunOutput:
        """BPF_PROG_TEST_RUN for this program type."""


HOOKS: dict[ProgType, Hook] = {}


def register_hook(hook: Hook) -> None:
    for t in hook.prog_types:
        HOOKS[t] = hook
