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


def bpf_fds() -> set[str]:
    """This process's open bpf map, program and BTF fds."""
    fds = set()
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        try:
            if "bpf" in os.readlink(f"/proc/self/fd/{fd}"):
                fds.add(fd)
        except OSError:
            pass
    return fds


@pytest.fixture()
def no_fd_leaks():
    """Fails the test if it leaves a bpf map, program or BTF fd open."""
    before = bpf_fds()
    yield
    assert bpf_fds() <= before, "a test left a bpf map, program or btf fd open"


def kernel_or_skip():
    """xsim.kernel where bpf() works here; the test is skipped, with the reason, where
    it does not."""
    mod = pytest.importorskip("xsim.kernel")
    ok, why = mod.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    return mod
