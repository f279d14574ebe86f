"""xsim: run eBPF programs without a kernel.

The public names are listed in ``__all__`` (and in docs/api.md); everything
else lives in the subpackages and may change.
"""
from . import numba_cache  # noqa: F401  (first: drops stale compiled code before numba loads it)
from .errors import (AsmError, BudgetExceeded, CallDepthExceeded, DecodeError, ElfError,
                     HelperError, MemoryAccessError, ProgramNotFound, RunError,
                     UnresolvedReference, XsimError)
from .isa.asm import assemble
from .isa.disasm import disassemble
from .runtime import Helper, HelperCall, HelperRegistry, Program, RunResult
from .runtime.env import RunEnv
from .runtime.object import Object, load
from . import nic  # noqa: F401  (registers the XDP hook)

__all__ = [
    "Program", "RunResult", "load", "Object", "RunEnv", "assemble", "disassemble", "Helper", "HelperCall", "HelperRegistry",
    "XsimError", "DecodeError", "AsmError", "RunError", "MemoryAccessError", "BudgetExceeded",
    "CallDepthExceeded", "HelperError", "UnresolvedReference", "ElfError", "ProgramNotFound",
]
