"""Programs, the address space, helpers and run results."""
from .helpers import Helper, HelperCall, HelperRegistry
from .memory import AddressSpace, Region
from .program import DEFAULT_BUDGET, Program
from .result import RunResult

__all__ = ["AddressSpace", "DEFAULT_BUDGET", "Helper", "HelperCall", "HelperRegistry",
           "Program", "Region", "RunResult"]
