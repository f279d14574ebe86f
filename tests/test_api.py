"""The public names: xsim.__all__ and docs/api.md list the same ones."""
from __future__ import annotations

import re
from pathlib import Path

import xsim


def test_all_matches_the_api_page() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.M))
    assert documented == set(xsim.__all__)
    for name in xsim.__all__:
        assert hasattr(xsim, name), name
