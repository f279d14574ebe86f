"""Can it be offloaded?  Every reason a target's own toolchain would refuse a program.

A rule set is data: one TOML file per target toolchain under ``targets/rules/``
(``nfp.toml`` for the kernel's Netronome driver, ``hxdp.toml`` for hXDP's compiler),
each rule with its source in a comment; a target's profile names its rule set.  :func:`refusals` reads the program's instructions (rows of
the one opcode table, ``xsim.isa.opcodes``), its helper calls (the one helper table,
``xsim.runtime.helper_table``), its maps (the loader's specs) and its stack frames
(``xsim.crosscheck.footprint.frame_depth``), and says which rules it breaks, naming
the pc and the C source line (BTF line info).

Rules about values (a multiplier that must fit 32 bits, a key that must be on the
stack, a constant exit code) need what the kernel's verifier knows about registers.
The analysis (analysis.py, on the values of values.py) computes an approximation by abstract interpretation: it walks paths as
the verifier does (up to _PATHS states per pc, then joins them) and gives each
register its pointer kinds (context, stack, packet, map value, ...) with their
constant offsets, or an unsigned range / small set of constants for a number.  The
checks see, per instruction, the union over every path, as the driver's checks
accumulate over every visit.  Where the analysis cannot prove what the driver needs,
it refuses, and the message says what it derived; docs/offload.md lists what it
approximates.
"""
from __future__ import annotations

from .checks import Refusal, refusals
from .rules import RULES_DIR, RuleFileError, RuleSet, UnknownRules, load_rules, parse_rules, \
    rule_sets

__all__ = ["RULES_DIR", "Refusal", "RuleSet", "RuleFileError", "UnknownRules", "parse_rules",
           "load_rules", "rule_sets", "refusals"]
