"""Saved differences (``xsim crosscheck --gen N --save tests/data/regressions``): each
``.data`` file runs on the interpreter, the host JIT and every ISA, which must agree
with each other and with the result the file records."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from xsim.conformance.datafile import read_data_file
from xsim.crosscheck import diff

FILES = sorted((Path(__file__).parent / "data" / "regressions").glob("*.data"))
TIERS = ("interp", "jit", "x86_64", "aarch64", "riscv64")


@pytest.mark.skipif(not FILES, reason="no saved differences in tests/data/regressions")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_saved_difference(path: Path) -> None:
    case = read_data_file(path)
    budget = re.search(r"budget (\d+)", path.read_text())
    ref, d = diff._first(case.raw, case.memory, TIERS, int(budget[1]) if budget else 10_000, 1)
    assert d is None, str(d)
    if case.error is None:
        assert ref["error"] is None and ref["r0"] == case.result
    else:
        assert ref["error"] is not None
