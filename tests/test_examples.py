"""Every shipped example loads and runs, and the README's commands print what it says."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import xsim

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.o")), ids=lambda p: p.name)
def test_every_example_object_loads(path: Path) -> None:
    obj = xsim.load(path)
    assert obj.programs


def _xsim(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "xsim.cli", *args], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_readme_packet_filter() -> None:
    out = _xsim("run", "examples/pkt_parse.bpf.o", "--mem", "examples/pkt_parse.mem")
    assert out.splitlines()[:2] == ["r0 = 0x2 (2)", "insns = 80"]


def test_readme_assembly_file() -> None:
    assert _xsim("run", "examples/fib.s").startswith("r0 = 0x6197ecb (102334155)")


def test_readme_counter() -> None:
    out = _xsim("run", "examples/counter.o", "--ctx-in", "examples/counter.ctx",
                "--maps-in", "examples/counter.maps.json").splitlines()
    assert out[:2] == ["printk: key 7 total 105", "r0 = 0x69 (105)"]


def test_examples_are_built_from_their_sources(tmp_path: Path) -> None:
    """examples/*.o are what `xsim cc` makes of examples/*.c today (byte for byte)."""
    from xsim.cc import compile_c    # debug paths are relative to the repository root
    for src in sorted(EXAMPLES.glob("*.c")):
        shipped = src.with_suffix(".o")
        if not shipped.exists():
            continue               # pkt_parse.c comes with its own .bpf.o (bench build)
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            out = compile_c(src.relative_to(ROOT), tmp_path / shipped.name)
        finally:
            os.chdir(cwd)
        assert out.read_bytes() == shipped.read_bytes(), src.name


def test_readme_firewall_over_a_capture(tmp_path: Path) -> None:
    out = _xsim("run", "examples/nic/firewall.o", "--pcap", "examples/nic/traffic.pcap",
                "--maps-in", "examples/nic/blocklist.json", "--out", str(tmp_path / "p.pcap"),
                "--json")
    import json
    data = json.loads(out)
    assert data["verdicts"] == {"XDP_PASS": 784, "XDP_DROP": 216}
    assert data["outputs"]["pass"]["packets"] == 784


def test_readme_dispatch_over_a_capture() -> None:
    import json
    data = json.loads(_xsim("run", "examples/nic/dispatch.o", "--prog", "dispatch", "--pcap",
                            "examples/nic/traffic.pcap", "--tier", "jit", "--json"))
    assert data["verdicts"] == {"XDP_PASS": 953, "XDP_DROP": 47}
    seen = [int.from_bytes(bytes.fromhex(e["value"]), "little")
            for e in data["maps"]["seen"]["entries"]]
    # every frame reaches dispatch; ARP has no stage; all the IPv4 frames are UDP
    assert seen[4] == 1000 and 0 < seen[0] + seen[1] < 1000 and seen[2] == seen[0]
