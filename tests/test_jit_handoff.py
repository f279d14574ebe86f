"""Lookups the interpreter's core does not serve (a devmap_hash's here): the JIT hands the
rest of that run to the interpreter, then goes on with the next run in native code.
Runs, counts, the histogram, the budget's stop, r0 carried from run to run, the maps
and a capture's verdicts must all be the interpreter's."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from test_jit import outcome
from xsim.jit import engine, lift
from xsim.runtime.testrun import dump_map

OBJ = Path(__file__).parent / "data" / "nic" / "python_lookup.o"
IFINDEX = 5             # in the ports devmap_hash at key 1; key 0 is not there
ROOT = Path(__file__).resolve().parents[1]


def load():
    obj = xsim.load(OBJ)
    obj.maps["ports"].update(1, IFINDEX.to_bytes(4, "little"))
    return obj


def both(**kw) -> tuple:
    """(outcome, maps) of a fresh load's run on each tier, the tiers' equal."""
    seen = []
    for tier in ("interp", "jit"):
        obj = load()
        res = outcome(obj.programs["carry"].run(struct.pack("<II", 0, 61), tier=tier, **kw))
        seen.append((res, {n: dump_map(m) for n, m in obj.maps.items()}))
    assert seen[0] == seen[1]
    return seen[0]


def counter(maps: dict, name: str, slot: int) -> int:
    entry = next(e for e in maps[name]["entries"] if e["key"] == f"{slot:02x}000000")
    return int.from_bytes(bytes.fromhex(entry["value"]), "little")


@pytest.mark.parametrize("repeat", [1, 2, 5])
def test_each_run_is_handed_over_and_the_next_is_native(repeat: int) -> None:
    res, maps = both(repeat=repeat)
    assert res["error"] is None and res["runs"] == repeat
    # r0 goes from run to run (0, 1, 2, 0, ...), through the interpreted rests too
    assert counter(maps, "seen", 1) == sum(k % 3 + 1 + IFINDEX for k in range(repeat))
    assert counter(maps, "seen", 0) == repeat
    assert res["r0"] == repeat % 3


def test_the_histogram_counts_the_handed_over_call_once() -> None:
    res, _ = both(repeat=3, histogram=True)
    assert sum(res["histogram"].values()) == res["insns_total"]


@pytest.mark.parametrize("budget", [8, 9, 10, 24, 25, 26, 30, 38, 39, 40])
def test_the_budget_stops_at_the_same_instruction(budget: int) -> None:
    res, _ = both(repeat=3, budget=budget)
    assert res["error"] is not None or res["runs"] == 3


def test_a_capture_hands_over_packet_by_packet(tmp_path: Path) -> None:
    from xsim.nic.pcap import read_packets
    from xsim.nic.pcaprun import run_pcap
    seen = []
    for tier in ("interp", "jit"):
        obj = load()
        s = run_pcap(obj, obj.programs["carry"], ROOT / "examples" / "nic" / "traffic.pcap",
                     tier=tier)
        d = s.to_dict(obj)
        d.pop("elapsed_s"), d.pop("pps")
        seen.append((d, {n: dump_map(m) for n, m in obj.maps.items()}))
    assert seen[0] == seen[1]
    d, maps = seen[0]
    assert d["packets"] == 1000 and d["verdicts"] == {"XDP_DROP": 1000}
    assert counter(maps, "seen", 0) == 1000
    odd = sum(len(p.data) & 1 for p in read_packets(ROOT / "examples" / "nic" / "traffic.pcap"))
    assert counter(maps, "seen", 1) == 1000 + odd * IFINDEX + (1000 - odd) * 100


def test_lookups_alone_leave_no_way_back_from_python() -> None:
    """The firewall calls only bpf_map_lookup_elem: its code hands over and has no
    call of the Python helper callback."""
    obj = xsim.load(ROOT / "examples" / "nic" / "firewall.o")
    prog = obj.programs["firewall"].hooked()
    text = lift.lift_text(prog._code, prog._st[engine.ip.C_BASE:], "firewall")
    assert "handoff_run:" in text and "python_helper:" not in text


def test_map_in_map_lookups_stay_in_native_code() -> None:
    """An array and a hash of maps, looked up and their inner maps changed: the core
    serves every lookup on both tiers, so nothing is handed over."""
    inner = Path(__file__).parent / "data" / "diff" / "inner.o"
    seen = []
    for tier in ("interp", "jit"):
        obj = xsim.load(inner)
        prog = obj.programs["map_in_map"]
        res = prog.run(struct.pack("<II", 2, 3) + bytes(48), tier=tier)
        seen.append((outcome(res), {n: dump_map(m) for n, m in obj.maps.items()}))
        assert res.error is None and res.helper_calls[1] == 6
        assert prog.program._st[engine.ip.S_FAST_LOOKUPS] == 6
    assert seen[0] == seen[1]


def test_a_budget_ending_anywhere_around_the_firewalls_lookups() -> None:
    """A served lookup runs no instructions of its own, so the block after it is no
    checkpoint: a budget that runs out anywhere in the firewall's runs (through its
    lookups, on a passed and a dropped packet) stops where the interpreter stops."""
    import json
    from xsim.nic.pcap import read_packets
    from xsim.runtime.testrun import apply_maps_in, test_run
    packets = [p.data for p in read_packets(ROOT / "examples" / "nic" / "traffic.pcap")]
    obj = xsim.load(ROOT / "examples" / "nic" / "firewall.o")
    apply_maps_in(obj, json.loads((ROOT / "examples" / "nic" / "blocklist.json").read_text()))
    prog = obj.programs["firewall"]
    verdicts = {test_run(prog, data_in=p).result.r0: p for p in packets[:200]}
    assert sorted(verdicts) == [1, 2]           # XDP_DROP and XDP_PASS
    for packet in verdicts.values():
        insns = test_run(prog, data_in=packet).result.insns
        for budget in range(1, insns + 2):      # the budget is each run's
            seen = [outcome(test_run(prog, data_in=packet, tier=tier, budget=budget,
                                     repeat=2).result) for tier in ("interp", "jit")]
            assert seen[0] == seen[1], budget
            assert (seen[0]["error"] is None) == (budget >= insns), budget
