"""A change to any source of compiled code drops numba's cached code of every module."""
from __future__ import annotations

from pathlib import Path

from xsim import numba_cache


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    for package in numba_cache.SOURCES:
        (tmp_path / package / "__pycache__").mkdir(parents=True)
    (tmp_path / "isa" / "core.py").write_text("X = 1\n")
    cached = tmp_path / "nic" / "__pycache__" / "loop.f-1.py311.nbi"
    cached.write_bytes(b"index")
    return tmp_path / "isa" / "core.py", cached


def test_a_changed_source_drops_the_cached_code_of_every_module(tmp_path):
    source, cached = _tree(tmp_path)
    assert numba_cache.drop_stale(tmp_path) and not cached.exists()
    cached.write_bytes(b"index")                # compiled again from these sources
    assert not numba_cache.drop_stale(tmp_path) and cached.exists()
    source.write_text("X = 2\n")                # the core changed, the loop did not
    assert numba_cache.drop_stale(tmp_path) and not cached.exists()


def test_an_unwritable_tree_is_left_alone(tmp_path):
    source, cached = _tree(tmp_path)
    (tmp_path / "__pycache__").write_text("a file where the stamp's folder would be")
    assert not numba_cache.drop_stale(tmp_path)


def test_the_installed_tree_is_in_step():
    assert (numba_cache.ROOT / numba_cache.STAMP_NAME).read_text() == \
        numba_cache.sources_digest()
