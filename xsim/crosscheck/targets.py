"""The instruction sets the lifter compiles for and unicorn runs: what LLVM needs to
make their code, and what the emulator needs to call it (the C calling convention's
argument, return, stack and link registers)."""
from __future__ import annotations

from dataclasses import dataclass

import capstone
import unicorn
from unicorn import arm64_const as _a64
from unicorn import riscv_const as _rv
from unicorn import x86_const as _x86

from ..errors import XsimError


@dataclass(frozen=True)
class Isa:
    name: str
    triple: str
    cpu: str
    features: str
    #: LLVM's code model for position-independent code within one image
    code_model: str
    uc_arch: int
    uc_mode: int
    uc_cpu: int | None
    cs_arch: int
    cs_mode: int
    args: tuple[int, ...]         # integer argument registers, in order
    ret: int                      # the integer return register
    sp: int
    pc: int
    #: the register a call leaves its return address in (None: it is pushed on the stack)
    link: int | None
    #: ELF e_machine of its objects
    machine: str
    #: the machine code of a return (what a trampoline runs after its hook)
    ret_insn: bytes


ISAS: dict[str, Isa] = {
    "x86_64": Isa("x86_64", "x86_64-unknown-linux-gnu", "x86-64", "", "small",
                  unicorn.UC_ARCH_X86, unicorn.UC_MODE_64, None,
                  capstone.CS_ARCH_X86, capstone.CS_MODE_64,
                  (_x86.UC_X86_REG_RDI, _x86.UC_X86_REG_RSI, _x86.UC_X86_REG_RDX,
                   _x86.UC_X86_REG_RCX, _x86.UC_X86_REG_R8, _x86.UC_X86_REG_R9),
                  _x86.UC_X86_REG_RAX, _x86.UC_X86_REG_RSP, _x86.UC_X86_REG_RIP, None,
                  "EM_X86_64", bytes.fromhex("c3")),
    "aarch64": Isa("aarch64", "aarch64-unknown-linux-gnu", "cortex-a72", "", "small",
                   unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM, _a64.UC_CPU_ARM64_A72,
                   capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM,
                   tuple(getattr(_a64, f"UC_ARM64_REG_X{i}") for i in range(8)),
                   _a64.UC_ARM64_REG_X0, _a64.UC_ARM64_REG_SP, _a64.UC_ARM64_REG_PC,
                   _a64.UC_ARM64_REG_X30, "EM_AARCH64", bytes.fromhex("c0035fd6")),
    "riscv64": Isa("riscv64", "riscv64-unknown-linux-gnu", "generic-rv64",
                   "+m,+a,+f,+d,+c,-relax", "medium",
                   unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64, _rv.UC_CPU_RISCV64_SIFIVE_U54,
                   capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC,
                   tuple(getattr(_rv, f"UC_RISCV_REG_A{i}") for i in range(8)),
                   _rv.UC_RISCV_REG_A0, _rv.UC_RISCV_REG_SP, _rv.UC_RISCV_REG_PC,
                   _rv.UC_RISCV_REG_RA, "EM_RISCV", bytes.fromhex("67800000")),
}


def isa(name: str) -> Isa:
    """The ISA called ``name`` (x86_64, aarch64 or riscv64)."""
    try:
        return ISAS[name]
    except KeyError:
        raise XsimError(f"unknown ISA {name!r}: expected one of {', '.join(ISAS)}") from None
