"""max_ctx_offset: how far a program reaches into its context, as the kernel's verifier sees it."""
from __future__ import annotations

import pytest

from xsim.isa.asm import assemble
from xsim.isa.insn import decode
from xsim.isa.verifier import max_ctx_offset


def reach(text: str) -> int:
    return max_ctx_offset(decode(assemble(text, syntax="ubpf")))


@pytest.mark.parametrize("text, expected", [
    ("mov %r0, 0\nexit", 0),
    ("ldxw %r0, [%r1+4]\nexit", 8),
    ("mov %r2, %r1\nadd %r2, 16\nldxdw %r0, [%r2+8]\nexit", 32),          # copies and offsets
    ("stxdw [%r10-8], %r1\nmov %r1, 0\nldxdw %r3, [%r10-8]\nldxb %r0, [%r3+40]\nexit", 41),
    ("stw [%r1+60], 1\nmov %r0, 0\nexit", 64),                            # stores count
    ("mov %r6, %r1\ncall 5\nldxh %r0, [%r6+2]\nexit", 4),                 # r6 survives calls
    ("call 5\nldxh %r0, [%r1+2]\nexit", 0),                               # r1 does not
    ("call local f\nexit\nf:\nldxw %r0, [%r1+12]\nexit", 16),             # into subprograms
    ("jeq %r2, 0, +1\nldxw %r0, [%r1+20]\nldxw %r0, [%r1+0]\nexit", 24),  # every path
    ("mov %r3, 0\nlp:\nldxw %r0, [%r1+0]\nadd %r1, 4\nadd %r3, 1\njlt %r3, 100, lp\nexit",
     4 * 8),                                                              # loops: widened
    ("mov %r1, %r2\nldxw %r0, [%r1+0]\nexit", 0),                         # r1 overwritten
])
def test_max_ctx_offset(text: str, expected: int) -> None:
    assert reach(text) == expected
