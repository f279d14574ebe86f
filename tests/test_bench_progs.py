"""The four bench programs give their documented r0 and executed-instruction counts."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xsim import Program
from xsim.runtime.source import read_code

#: shared/bench-progs/README.md: expected r0 (low 32 bits) and instructions per run.
EXPECTED = {
    "alu_loop": (0x5505C72F, 2_000_008),
    "pkt_parse": (0x2, 80),
    "checksum_1500": (0xB7F1, 8_262),
    "stack_sieve": (0x4E, 12_540),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_api(bench_progs, name: str) -> None:
    source = read_code(bench_progs / f"{name}.bpf.o")
    assert (source.section, source.function) == ("xdp", "prog")
    memory = (bench_progs / f"{name}.mem").read_bytes()
    res = Program.from_bytes(source.code).run(memory=memory, repeat=2)
    assert res.ok, res.error
    assert (res.retval, res.insns) == EXPECTED[name]
    assert res.insns_total == 2 * EXPECTED[name][1]


@pytest.mark.parametrize("name", EXPECTED)
def test_cli(bench_progs, name: str) -> None:
    out = subprocess.run([sys.executable, "-m", "xsim.cli", "run", str(bench_progs / f"{name}.bpf.o"),
                          "--mem", str(bench_progs / f"{name}.mem"), "--json"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert (data["retval"], data["insns"], data["error"]) == (*EXPECTED[name], None)


def test_cli_text_output(bench_progs) -> None:
    out = subprocess.run([sys.executable, "-m", "xsim.cli", "run",
                          str(bench_progs / "pkt_parse.bpf.o"), "--mem",
                          str(bench_progs / "pkt_parse.mem"), "--repeat", "10"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "r0 = 0x2 (2)"
    assert "insns = 80" in out and "mean of 10 runs" in out
