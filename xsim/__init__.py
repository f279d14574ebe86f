"""xsim: run eBPF programs without a kernel.

The public names are listed in ``__all__`` (and in docs/api.md); everything
else lives in the subpackages and may change.
"""
from .errors import (AsmError, BudgetExceeded, CallDepthExceeded, DecodeError, HelperError,
                     MemoryAccessError, RunError, UnresolvedReference, XsimError)
from .runtime import Helper, HelperCall, HelperRegistry, Program, RunResult

__all__ = [
    "Program", "RunResult", "Helper", "HelperCall", "HelperRegistry",
    "XsimError", "DecodeError", "AsmError", "RunError", "MemoryAccessError", "BudgetExceeded",
    "CallDepthExceeded", "HelperError", "UnresolvedReference",
]
