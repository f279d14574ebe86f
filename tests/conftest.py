"""Shared fixtures: where ../shared is, and small program builders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    env = os.environ.get("XSIM_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def conformance_dir() -> Path:
    env = os.environ.get("XSIM_CONFORMANCE_DIR")
    return Path(env) if env else shared_dir() / "conformance"


@pytest.fixture(scope="session")
def bench_progs() -> Path:
    path = shared_dir() / "bench-progs"
    if not path.is_dir():
        pytest.skip(f"bench programs not found at {path} (set XSIM_SHARED_DIR)")
    return path
