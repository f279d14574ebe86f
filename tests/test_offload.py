"""Profiles, workloads, the VLIW scheduler, the simpy model and the offload CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xsim
from xsim.isa.insn import decode
from xsim.nic.study import StudyError, path_costs, run_study
from xsim.nic.workload import WorkloadError, from_pcap
from xsim.timing.model import Pipeline, Stage
from xsim.timing.profile import ProfileError, all_targets, find_target, load_profile
from xsim.timing.vliw import schedule, schedule_program, slot_of, transform

ROOT = Path(__file__).resolve().parents[1]
OFF = ROOT / "examples" / "offload"
HOST = ROOT / "targets" / "host-e5-1650v4.toml"


def _xsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xsim.cli", *args], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def drop_workload():
    obj = xsim.load(OFF / "drop.o")
    return from_pcap(obj, obj.choose(None), OFF / "udp64.pcap")


# -- profiles ---------------------------------------------------------------------------

def test_every_shipped_profile_loads_and_cites_its_numbers() -> None:
    """Schema test: every profile is valid, and every numeric line carries a comment."""
    profiles = all_targets()
    assert {p.name for p in profiles} >= {"host-e5-1650v4", "hxdp-sume", "nfp-4000",
                                          "bluefield2"}
    number = re.compile(r"^\s*[\w.]+\s*=\s*[0-9.]+\s*$")
    for p in profiles:
        for line in p.path.read_text().splitlines():
            if number.match(line.split("#")[0]):
                assert "#" in line, f"{p.path.name}: {line}"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = HOST.read_text()
    assert old in text
    out = tmp_path / "host-e5-1650v4.toml"
    out.write_text(text.replace(old, new, 1))
    return out


@pytest.mark.parametrize("old,new,field,why", [
    ("mhz = 3600", "", "clock.mhz", "missing field"),
    ("mhz = 3600", "mhz = 3600\nghz = 3.6", "clock.ghz", "unknown field"),
    ("count = 6 ", "count = 0 ", "cores.count", "out of range"),
    ("count = 6 ", 'count = "six" ', "cores.count", "must be int"),
    ('dispatch = "rss"', 'dispatch = "random"', "cores.dispatch", "is not one of"),
    ('[maps]\nmemory = "l2"', '[maps]\nmemory = "l3"', "maps.memory",
     r"no \[memory.l3\] section"),
    ("xdp_adjust_head = 12.0", "xdp_adjustt_head = 12.0", "helpers.xdp_adjustt_head",
     "no helper"),
])
def test_bad_profile_names_file_and_field(tmp_path, old, new, field, why) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(ProfileError, match=why) as info:
        load_profile(path)
    assert info.value.field == field and info.value.path == str(path)
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", "examples/offload/udp64.pcap",
                "--target", str(path))
    assert out.returncode == 2 and field in out.stderr and "Traceback" not in out.stderr


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="hxdp-sume"):
        find_target("no-such-card")


def test_user_profiles_from_xsim_targets(tmp_path, monkeypatch) -> None:
    """A user adds a target by writing a file into a directory of $XSIM_TARGETS; a file of
    a shipped name there replaces the shipped profile."""
    nfp = (ROOT / "targets" / "nfp-4000.toml").read_text()
    (tmp_path / "my-card.toml").write_text(nfp.replace('name = "nfp-4000"', 'name = "my-card"'))
    (tmp_path / "nfp-4000.toml").write_text(nfp.replace("\nmhz = 800.0", "\nmhz = 1000.0", 1))
    monkeypatch.setenv("XSIM_TARGETS", str(tmp_path))
    assert find_target("my-card").name == "my-card"
    mine = find_target("nfp-4000")
    assert str(mine.path) == str(tmp_path / "nfp-4000.toml") and mine.mhz == 1000
    names = [p.name for p in all_targets()]
    assert names.count("nfp-4000") == 1 and "my-card" in names and "hxdp-sume" in names
    out = _xsim("targets", "--json")
    listed = {t["name"]: t["file"] for t in json.loads(out.stdout)}
    assert listed["my-card"] == str(tmp_path / "my-card.toml")


# -- workload ---------------------------------------------------------------------------

def test_workload_counts_classes_helpers_and_maps() -> None:
    obj = xsim.load(OFF / "katran.o")
    from xsim.runtime.testrun import apply_maps_in
    apply_maps_in(obj, json.loads((OFF / "katran.maps.json").read_text()))
    w = from_pcap(obj, obj.choose(None), OFF / "udp64.pcap")
    assert w.verdict_counts() == {"tx": 4096}
    # the first frame of a flow misses the LRU table and fills it: two paths
    miss, hit = sorted(w.paths, key=lambda p: p.packets)
    assert hit.packets + miss.packets == 4096 and miss.packets == len(set(w.flow))
    assert miss.maps["conns"]["update"] == 1 and "update" not in hit.maps["conns"]
    assert hit.maps["vips"]["lookup"] == 1 and hit.maps["stats"]["store"] == 1
    assert sum(hit.classes.values()) + sum(hit.helpers.values()) == hit.insns
    assert set(w.len_out) == {80}            # IPIP: 20 bytes more than the 60 in


def test_capture_that_does_not_fit_names_the_packet(tmp_path) -> None:
    from xsim.nic.pcap import PcapWriter
    bad = tmp_path / "short.pcap"
    with PcapWriter(bad) as wr:
        wr.write(bytes(60), 0)
        wr.write(bytes(10), 1000)          # shorter than an Ethernet header
    obj = xsim.load(OFF / "drop.o")
    with pytest.raises(WorkloadError, match="packet 1") as info:
        from_pcap(obj, obj.choose(None), bad)
    assert info.value.record == 1
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", str(bad), "--target",
                "hxdp-sume")
    assert out.returncode == 2 and "packet 1" in out.stderr


def test_not_a_capture_is_a_clear_error(tmp_path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", str(junk), "--target",
                "hxdp-sume")
    assert out.returncode == 2 and str(junk) in out.stderr and "Traceback" not in out.stderr


# -- VLIW -------------------------------------------------------------------------------

def _slots(text: str):
    return [slot_of(i) for i in decode(xsim.assemble(text))]


def test_vliw_rows_follow_dependencies_and_resources() -> None:
    """Independent ALU ops share a row up to the lane count; a RAW dependency starts a
    new row; at most two memory accesses and one helper call per row."""
    four = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nexit"
    assert schedule(_slots(four), lanes=4, mem_ports=2, helpers_per_row=1) == 2
    assert schedule(_slots(four), lanes=2, mem_ports=2, helpers_per_row=1) == 3
    chain = "mov %r1, 1\nadd %r1, 2\nadd %r1, 3\nexit"
    assert schedule(_slots(chain), lanes=4, mem_ports=2, helpers_per_row=1) == 3
    loads = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nldxw %r4, [%r1+8]\nexit"
    assert schedule(_slots(loads), lanes=4, mem_ports=2, helpers_per_row=1) == 2
    assert schedule(_slots(loads), lanes=4, mem_ports=1, helpers_per_row=1) == 3


def test_vliw_six_byte_copy_is_one_load_and_one_store() -> None:
    """hXDP's 6-byte load/store (OSDI'20 Sec. 3.2): a 6-byte copy made of smaller loads
    and stores (a MAC address byte by byte, three halfwords, or 4 + 2 bytes) becomes
    one load and one store, unless a loaded register is read afterwards or the copy
    overlaps itself."""
    def fused(text: str, live=frozenset()) -> int:
        return transform(decode(xsim.assemble(text)), set(live))[1]

    bytewise = "\n".join(f"ldxb %r3, [%r1+{45 - i}]\nstxb [%r1+{5 - i}], %r3"
                         for i in range(6)) + "\nexit"
    slots, removed = transform(decode(xsim.assemble(bytewise)), set())
    assert removed == 10 and schedule(slots, lanes=4, mem_ports=2, helpers_per_row=1) == 2
    halves = ("ldxh %r3, [%r2+6]\nldxh %r4, [%r2+8]\nldxh %r5, [%r2+10]\n"
              "stxh [%r1+0], %r3\nstxh [%r1+2], %r4\nstxh [%r1+4], %r5\nexit")
    assert fused(halves) == 4
    assert fused("ldxw %r3, [%r7+30]\nstxw [%r10-24], %r3\nldxh %r3, [%r7+34]\n"
                 "stxh [%r10-20], %r3\nexit") == 2
    assert fused(bytewise, live={3}) == 0                 # r3 still needed after it
    assert fused(bytewise.replace("[%r1+45]", "[%r1+46]")) == 0   # not contiguous
    overlapping = "\n".join(f"ldxh %r3, [%r1+{2 + 2 * i}]\nstxh [%r1+{2 * i}], %r3"
                            for i in range(3)) + "\nexit"
    assert fused(overlapping) == 0
    assert fused("ldxw %r3, [%r2+0]\nstxw [%r1+0], %r3\nldxw %r3, [%r2+4]\n"
                 "stxw [%r1+4], %r3\nexit") == 0          # 8 bytes, not 6


def test_vliw_renames_rather_than_orders_writes() -> None:
    """Two writes of one register need no order (hXDP's compiler renames one, Sec. 3.4),
    and a helper call writes only r0: r1 for the next use is set in the call's row.
    The helper's r0 stays put: a later write of r0 comes after the call."""
    after_call = "call 1\nmov %r1, 5\nadd %r1, 1\nexit"
    assert schedule(_slots(after_call), lanes=4, mem_ports=2, helpers_per_row=1) == 2
    r0_after_call = "call 1\nmov %r0, 2\nexit"
    assert schedule(_slots(r0_after_call), lanes=4, mem_ports=2, helpers_per_row=1) == 3


def test_vliw_memory_dependencies_follow_locations() -> None:
    """Bernstein's conditions over memory locations (Sec. 3.3): a packet load need not
    wait for a stack store, nor a load of another stack slot; a load of the stored
    slot (through r10 or a copy of it) or through a pointer of unknown origin waits."""
    def rows(text: str) -> int:
        prog = xsim.Program.from_bytes(xsim.assemble(text))
        return schedule_program(prog, lanes=4, mem_ports=2, helpers_per_row=1,
                                optimize=False).rows

    base = ("ldxw %r2, [%r1+0]\nmov %r3, 7\nadd %r3, 1\nstxw [%r10-4], %r3\n"
            "ldxb %r4, [%r2+13]\nexit")
    assert rows(base) == 3
    assert rows(base.replace("ldxb %r4, [%r2+13]", "ldxw %r4, [%r10-8]")) == 3
    assert rows(base.replace("ldxb %r4, [%r2+13]", "ldxw %r4, [%r10-4]")) == 4
    assert rows(base.replace("ldxb %r4, [%r2+13]",
                             "mov %r5, %r10\nadd %r5, -4\nldxw %r4, [%r5+0]")) == 4
    assert rows(base.replace("ldxw %r2, [%r1+0]", "ldxdw %r2, [%r10-16]")) == 4


def test_hxdp_optimizations_cut_rows(drop_workload) -> None:
    obj = xsim.load(OFF / "firewall.o")
    w = from_pcap(obj, obj.choose(None), OFF / "firewall.pcap")
    hx = find_target("hxdp-sume")
    plain = path_costs(hx.__class__(**{**hx.__dict__, "vliw": {**hx.vliw, "optimize": False}}),
                       w).schedules["firewall"]
    tuned = path_costs(hx, w).schedules["firewall"]
    assert tuned.rows < plain.rows and tuned.insns == plain.insns == 70
    assert 1.0 < tuned.static_ipc <= hx.vliw["lanes"]
    # r0 = XDP_DROP; exit is one parametrized exit: one row
    assert path_costs(hx, drop_workload).schedules["drop"].rows == 1


# -- the simpy model --------------------------------------------------------------------

def test_fifo_stage_event_log() -> None:
    """Rule: a one-server FIFO starts each packet when it is ready and the server is
    free; a full queue (depth 1) drops; simpy sees one event per batch."""
    service = np.array([10.0, 10.0, 10.0, 10.0])
    stage = Stage("s", lambda i: service[i], depth=1)
    pipe = Pipeline([stage], {"s": lambda i: [(None, np.ones(len(i), dtype=bool))]}, "s",
                    4, log=True)
    pipe.run(np.array([0.0, 1.0, 2.0, 25.0]), batch=2)
    # packet 0 runs 0-10, packet 1 waits and runs 10-20, packet 2 finds the queue
    # full at t=2 and is dropped; packet 3 (next batch) runs 25-35
    assert list(pipe.finish[[0, 1, 3]]) == [10.0, 20.0, 35.0] and np.isnan(pipe.finish[2])
    assert stage.events == [(20.0, "s", 2), (35.0, "s", 1)]


def test_study_saturates_at_the_core_and_latency_grows(drop_workload) -> None:
    host = find_target("host-e5-1650v4")
    light = run_study(host, drop_workload, mpps=5.0, packets=20000)
    heavy = run_study(host, drop_workload, packets=20000)
    assert light.drop_rate == 0 and abs(light.mpps - 5.0) < 0.05
    assert heavy.drop_rate > 0.5 and heavy.bottleneck == "cores"
    assert heavy.latency_us["p50"] > 10 * light.latency_us["p50"]
    assert light.latency_us["p50"] <= light.latency_us["p99"] <= light.latency_us["p99.9"]


def test_rate_or_cores_the_target_cannot_take(drop_workload) -> None:
    hx = find_target("hxdp-sume")
    with pytest.raises(StudyError, match="cores.count"):
        run_study(hx, drop_workload, cores=2)
    with pytest.raises(StudyError, match="ports carry"):
        run_study(hx, drop_workload, mpps=100.0)
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", "examples/offload/udp64.pcap",
                "--target", "hxdp-sume", "--rate", "100")
    assert out.returncode == 2 and "hxdp-sume" in out.stderr and "Traceback" not in out.stderr
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", "examples/offload/udp64.pcap",
                "--target", "nfp-4000", "--cores", "51")
    assert out.returncode == 2 and "1 to 50" in out.stderr


def test_million_packets_in_seconds(drop_workload) -> None:
    """Batched events: a 10^6-packet study on the NFP (50 units) stays well under 20 s."""
    import time
    t0 = time.perf_counter()
    r = run_study(find_target("nfp-4000"), drop_workload, packets=1_000_000)
    assert r.completed > 0 and time.perf_counter() - t0 < 20


# -- CLI --------------------------------------------------------------------------------

def test_cli_targets_and_offload_json_and_plot(tmp_path) -> None:
    out = _xsim("targets", "--json")
    assert out.returncode == 0 and "nfp-4000" in {t["name"] for t in json.loads(out.stdout)}
    png = tmp_path / "study.png"
    out = _xsim("offload", "examples/offload/drop.o", "--pcap", "examples/offload/udp64.pcap",
                "--target", "host-e5-1650v4", "--target", "hxdp-sume", "--sweep",
                "--packets", "20000", "--json", "--plot", str(png))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    studies = data["targets"]["hxdp-sume"]["studies"]
    assert len(studies) == 10 and studies[0]["drop_rate"] == 0
    assert studies[-1]["mpps"] == pytest.approx(52, rel=0.05)
    assert png.stat().st_size > 10_000


def test_cli_check_uses_the_rule_checker() -> None:
    out = _xsim("offload", "examples/offload/drop.o", "--target", "nfp-4000", "--check")
    assert out.returncode in (0, 6), out.stderr
    assert "nfp-4000" in out.stdout
