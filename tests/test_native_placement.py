"""benches/native_placement.py: the gcc -O2 baseline built at several placements."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
import bench_interp  # noqa: E402
import native_placement  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _offset(obj: Path, symbol: str) -> int:
    with obj.open("rb") as f:
        (sym,) = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(symbol)
        return sym["st_value"]


def test_a_placement_is_an_offset_that_any_link_keeps(bench_progs, tmp_path) -> None:
    """The function's offset from its section's start is the pad, and the section is
    aligned to the span, so objects linked before it (other programs) cannot move it."""
    gcc = shutil.which("gcc")
    for pad in (0, 48, 112):
        out = tmp_path / str(pad)
        out.mkdir()
        obj = bench_interp.native_object(gcc, bench_progs, "stack_sieve", out, pad)
        with obj.open("rb") as f:
            text = ELFFile(f).get_section_by_name(".text")
            assert text["sh_addralign"] % bench_interp.PLACEMENT_SPAN == 0
        assert _offset(obj, "native_stack_sieve") == pad


def test_every_placement_times_every_program(bench_progs) -> None:
    best = native_placement.placements(bench_progs, [0, 16], 0.004, rounds=1)
    assert set(best) == {0, 16}
    for times in best.values():
        assert set(times) == set(bench_interp.PROGRAMS) and all(ns > 0 for ns in times.values())
