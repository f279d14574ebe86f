"""The JIT tier: eBPF lifted to LLVM IR with llvmlite, compiled for the host (and, with a
target triple, for other ISAs), with the interpreter's checks and answers."""
from __future__ import annotations

from .lift import JitUnsupported, lift_module

__all__ = ["JitUnsupported", "lift_module"]
