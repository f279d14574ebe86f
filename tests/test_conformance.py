"""The bpf_conformance suite: every test file through xsim's assembler and interpreter.

Read from ``../shared/conformance`` (or ``$XSIM_CONFORMANCE_DIR``); skipped with
the reason when the files are not there.  The suite's own runner is also
driven once, in both of its modes, as the issue's acceptance check.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import conformance_dir, shared_dir
from xsim.conformance import run
from xsim.conformance.datafile import read_data_file
from xsim.isa.asm import assemble

DATA = sorted(conformance_dir().glob("*.data"))
needs_suite = pytest.mark.skipif(not DATA, reason=f"no conformance files in {conformance_dir()}")


@needs_suite
@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_conformance_file(path: Path) -> None:
    case = read_data_file(path)
    if case.asm is None and case.raw is None:
        pytest.skip("file has no program")
    code = case.raw if case.raw is not None else assemble(case.asm, syntax="ubpf")
    if case.error is not None:
        with pytest.raises(Exception, match=case.error):
            run(code, case.memory)
        return
    assert run(code, case.memory) == case.result


def _runner(*plugin: str, files: list[str] | None = None) -> str:
    tool = shared_dir() / "tools" / "conformance_run.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not found")
    args = [sys.executable, str(tool), "--cpu_version", "v4", "--include_groups", "callx",
            "packet", "-j", "2", "--quiet", *plugin]
    args += [a for f in files for a in ("--test_file_path", f)] if files else [
        "--test_file_directory", str(conformance_dir())]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


@needs_suite
def test_suite_runner_with_callable() -> None:
    last = _runner("--callable", "xsim.conformance:run")
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 312, last


@needs_suite
def test_suite_runner_with_plugin_command() -> None:
    files = [str(conformance_dir() / n) for n in ("lddw.data", "callx.data", "mem-len.data",
                                                   "call_unwind_fail.data", "lock_cmpxchg32.data")]
    last = _runner("--plugin", f"{sys.executable} -m xsim.conformance", files=files)
    assert last.startswith(f"{len(files)} passed, 0 failed"), last
