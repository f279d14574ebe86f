"""An installed xsim (a wheel, away from the source tree) carries its hardware profiles,
which live in the repository's ``targets/`` and are copied in at build time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_target_profiles(tmp_path: Path) -> None:
    src = tmp_path / "src"            # a copy: the build writes build/ beside its sources
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("xsim", "targets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("xsim-*.whl")
    shipped = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "targets").rglob("*.toml"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {f"xsim/{p}" for p in shipped} <= names
        z.extractall(tmp_path / "site")
    # the unpacked wheel, run from elsewhere, lists the shipped profiles from itself
    out = subprocess.run([sys.executable, "-m", "xsim.cli", "targets", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    listed = {t["name"]: Path(t["file"]) for t in json.loads(out.stdout)}
    assert set(listed) >= {"host-e5-1650v4", "hxdp-sume", "nfp-4000", "bluefield2"}
    assert all(f.is_relative_to(tmp_path / "site" / "xsim" / "targets") for f in listed.values())
