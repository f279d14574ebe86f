"""A generated corpus of 1,000 awkward frames per program, packet by packet against the kernel."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import xsim
from xsim.elf.loader import load_spec
from xsim.nic.corpus import corpus
from xsim.runtime import testrun

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    (ROOT / "examples" / "nic" / "firewall.o", "firewall", ROOT / "examples" / "nic" / "blocklist.json"),
    (ROOT / "examples" / "nic" / "l4_lb.o", "l4_lb", ROOT / "examples" / "nic" / "backends.json"),
    (ROOT / "examples" / "nic" / "ipip.o", "encap", None),
    (ROOT / "examples" / "nic" / "ipip.o", "decap", None),
    (ROOT / "examples" / "nic" / "tc_marker.o", "tc_marker", None),
    (ROOT / "examples" / "nic" / "dns_filter.o", "dns_filter", None),
    (ROOT / "examples" / "nic" / "dispatch.o", "dispatch", None),
    (ROOT / "tests" / "data" / "nic" / "xdp_basic.o", "lengths", None),
    (ROOT / "tests" / "data" / "nic" / "xdp_basic.o", "encap", None),
    (ROOT / "tests" / "data" / "nic" / "tc_basic.o", "headers", None),
    (ROOT / "tests" / "data" / "nic" / "sock_basic.o", "fields", None),
]


def test_the_corpus_is_varied() -> None:
    frames = corpus(1000)
    types = {f[12:14] for f in frames if len(f) >= 14}
    assert {b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x08\x06"} <= types
    assert sum(len(f) < 14 for f in frames) > 10
    assert corpus(50, seed=3) == corpus(50, seed=3)


@pytest.mark.parametrize("obj, prog, maps_in", CASES, ids=lambda c: getattr(c, "name", c))
def test_every_frame_agrees_with_the_kernel(obj: Path, prog: str, maps_in: Path | None) -> None:
    kernel = pytest.importorskip("xsim.kernel")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    from xsim.kernel.objects import pinned
    entries = json.loads(maps_in.read_text()) if maps_in else []
    # the kernel's CPUs, and its runs on CPU 0 as xsim's: per-CPU maps compare slot by slot
    mine = xsim.load(obj, ncpus=kernel.possible_cpus())
    testrun.apply_maps_in(mine, entries)
    with kernel.KernelObject.load(load_spec(obj), prog=prog) as theirs, pinned(0):
        testrun.apply_maps_in(theirs, entries)
        kp = theirs.programs[prog]
        refused = 0
        for i, frame in enumerate(corpus(1000)):
            try:
                out = testrun.test_run(mine.programs[prog], data_in=frame)
            except testrun.TestRunRefused:
                refused += 1
                with pytest.raises(kernel.KernelError):
                    kp.test_run(data_in=frame)
                continue
            k = kp.test_run(data_in=frame)
            assert (k.retval, k.data_out) == (out.retval, out.data_out), (prog, i, frame.hex())
        for name in theirs.maps:
            assert testrun.dump_map(theirs.maps[name]) == testrun.dump_map(mine.maps[name]), name
    assert refused < 200
