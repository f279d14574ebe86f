"""Cross-checking the tiers: random programs, differential runs, a minimizer.

:mod:`.generate` builds random, always-decodable eBPF programs from the
opcode table (and shrinks a program while a predicate holds); :mod:`.diff`
runs one program on several tiers and describes the first difference;
:mod:`.campaign` runs many seeds in logged chunks that a later run goes on from.
"""
from __future__ import annotations

from .diff import compare, differences, shrink_difference
from .generate import CLAIMED_EXECS, MEMORY_SIZE, generate, minimize, random_memory

__all__ = ["CLAIMED_EXECS", "MEMORY_SIZE", "compare", "differences", "generate", "minimize",
           "random_memory", "shrink_difference"]
