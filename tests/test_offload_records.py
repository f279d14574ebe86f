"""`xsim offload --records`: the workload from a capture run's records file.

The records of ``xsim run --pcap F --records R`` must give the Workload that
``from_pcap`` gives for F (same paths, per-packet columns and verdicts) on every
tier and path of the capture run, and the same figures from ``xsim offload``; a
records file that does not fit the program is a WorkloadError naming the file
and the line (exit code 2), never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import xsim
from xsim.cc import compile_c
from xsim.cli import main
from xsim.nic.corpus import corpus
from xsim.nic.pcap import PcapWriter
from xsim.nic.pcaprun import run_pcap
from xsim.nic.workload import Workload, WorkloadError, from_pcap, from_records
from xsim.runtime.testrun import apply_maps_in

ROOT = Path(__file__).resolve().parents[1]
OFF = ROOT / "examples" / "offload"
NIC = ROOT / "examples" / "nic"

#: an entry that tail-calls by a header bit into two programs, one of which faults on
#: frames of 100 bytes or less: several programs in a path, and aborted packets; and a
#: program that faults after a lookup the compiled core served (the capture loop runs it)
TAIL = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } hits SEC(".maps");
SEC("xdp") int lookup_fault(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    __u32 key = 1;
    __u64 *n = bpf_map_lookup_elem(&hits, &key);
    if (n)
        *n += 1;
    return data[100] & 1 ? XDP_PASS : XDP_DROP;
}
int even(struct xdp_md *ctx);
int odd(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2);
         __uint(key_size, 4); __array(values, int (struct xdp_md *)); } next SEC(".maps") = {
    .values = { [0] = (void *)&even, [1] = (void *)&odd },
};
SEC("xdp") int entry(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 15 > end)
        return XDP_ABORTED;
    bpf_tail_call(ctx, &next, data[14] & 1);
    return XDP_PASS;
}
SEC("xdp") int even(struct xdp_md *ctx) { return XDP_TX; }
SEC("xdp") int odd(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    return data[100] & 1 ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def tail(tmp_path_factory) -> tuple[Path, Path]:
    """The tail-calling object and a capture of generated frames for it."""
    d = tmp_path_factory.mktemp("tail")
    (d / "tail.c").write_text(TAIL)
    compile_c(d / "tail.c", d / "tail.o")
    with PcapWriter(d / "mixed.pcap") as w:
        for i, f in enumerate(f for f in corpus(300, seed=11) if len(f) >= 15):
            w.write(f, i * 1000)
    return d / "tail.o", d / "mixed.pcap"


def _obj(path: Path, maps_in: Path | None):
    obj = xsim.load(path)
    if maps_in is not None:
        apply_maps_in(obj, json.loads(maps_in.read_text()))
    return obj


def _records(tmp_path: Path, obj_path: Path, capture: Path, maps_in: Path | None = None,
             prog: str | None = None, **kw) -> Path:
    """The records file of one capture run (fresh maps, as a command would have them)."""
    obj = _obj(obj_path, maps_in)
    out = tmp_path / "r.jsonl"
    with open(out, "w") as f:
        run_pcap(obj, obj.choose(prog), capture, records=f, **kw)
    return out


def _same(a: Workload, b: Workload) -> None:
    assert [p.to_dict() for p in a.paths] == [p.to_dict() for p in b.paths]
    for pa, pb in zip(a.paths, b.paths):
        assert pa.unattributed == pb.unattributed and list(pa.counts) == list(pb.counts)
        assert all(np.array_equal(pa.counts[n], pb.counts[n]) for n in pa.counts)
    for col in ("path", "verdict", "len_in", "len_out", "flow"):
        x, y = getattr(a, col), getattr(b, col)
        assert x.dtype == y.dtype and np.array_equal(x, y), col
    assert a.map_types == b.map_types and list(a.programs) == list(b.programs)
    assert a.verdict_counts() == b.verdict_counts()


EXAMPLES = [
    (OFF / "drop.o", OFF / "udp64.pcap", None),
    (OFF / "katran.o", OFF / "udp64.pcap", OFF / "katran.maps.json"),
    (OFF / "redirect.o", OFF / "udp64.pcap", OFF / "redirect.maps.json"),
    (OFF / "firewall.o", OFF / "firewall.pcap", None),
    (NIC / "firewall.o", NIC / "traffic.pcap", NIC / "blocklist.json"),
]


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("obj, capture, maps_in", EXAMPLES,
                         ids=[f"{e[0].parent.name}-{e[0].stem}" for e in EXAMPLES])
def test_records_give_the_workload_of_the_capture(tmp_path, obj, capture, maps_in,
                                                  tier) -> None:
    rec = _records(tmp_path, obj, capture, maps_in, tier=tier)
    o = _obj(obj, maps_in)
    want = from_pcap(o, o.choose(None), capture)
    o = _obj(obj, None)         # the records hold what the maps did: no --maps-in needed
    got = from_records(o, o.choose(None), rec)
    _same(want, got)
    assert got.source == str(rec) and len(got) == len(want) > 0


def test_one_test_run_per_packet_writes_the_same_records(tmp_path) -> None:
    fast = _records(tmp_path, NIC / "firewall.o", NIC / "traffic.pcap",
                    NIC / "blocklist.json").read_text()
    slow = _records(tmp_path, NIC / "firewall.o", NIC / "traffic.pcap",
                    NIC / "blocklist.json", batch=False).read_text()
    assert fast == slow
    lines = [json.loads(line) for line in fast.splitlines()]
    assert len({r["path"] for r in lines}) == sum("counts" in r for r in lines) == 5
    first = lines[0]
    assert set(first) == {"index", "verdict", "len_in", "len_out", "redirect",
                          "helper_calls", "insns", "flow", "regions", "path", "counts"}
    pcs = first["counts"]["firewall"]["pcs"]
    assert sum(n for _, n in pcs) == first["insns"]


def _both_ways(tmp_path, obj_path, capture, prog: str, tier: str):
    """The records of a capture run of ``prog`` and the workload read back from them,
    checked equal to the one ``from_pcap`` builds (each on a freshly loaded object)."""
    rec = _records(tmp_path, obj_path, capture, prog=prog, tier=tier)
    o = xsim.load(obj_path)
    want = from_pcap(o, o.programs[prog], capture)
    o = xsim.load(obj_path)
    got = from_records(o, o.programs[prog], rec)
    _same(want, got)
    return rec, got


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_tail_calls_and_faults(tmp_path, tail, tier) -> None:
    """Paths through several programs (one count entry each), faults as XDP_ABORTED."""
    obj_path, capture = tail
    rec, got = _both_ways(tmp_path, obj_path, capture, "entry", tier)
    assert set(got.programs) == {"entry", "even", "odd"} and len(got.paths) > 3
    assert {"tx", "aborted"} <= set(got.verdict_counts())
    lines = [json.loads(line) for line in rec.read_text().splitlines()]
    faults = [r for r in lines if r["verdict"] == "error"]
    assert faults and all(r["len_out"] == 0 for r in faults)
    assert all(got.len_out[i] == 0 for i in np.flatnonzero(got.verdict == 0))


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_faults_in_the_capture_loop_keep_their_lookups(tmp_path, tail, tier) -> None:
    obj_path, capture = tail
    _rec, got = _both_ways(tmp_path, obj_path, capture, "lookup_fault", tier)
    aborted = {got.paths[k].helpers.get(1) for k in got.path[got.verdict == 0]}
    assert aborted == {1}


def test_limit_takes_the_first_records(tmp_path) -> None:
    rec = _records(tmp_path, NIC / "firewall.o", NIC / "traffic.pcap", NIC / "blocklist.json")
    o = _obj(NIC / "firewall.o", NIC / "blocklist.json")
    want = from_pcap(o, o.choose(None), NIC / "traffic.pcap", limit=3)
    o = xsim.load(NIC / "firewall.o")
    _same(want, from_records(o, o.choose(None), rec, limit=3))


# -- the command -----------------------------------------------------------------------

def _offload(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["offload", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_records_prints_the_figures_of_the_pcap(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")          # the table's lines unwrapped
    rec = tmp_path / "k.jsonl"
    katran, maps = str(OFF / "katran.o"), str(OFF / "katran.maps.json")
    assert main(["run", katran, "--pcap", str(OFF / "udp64.pcap"), "--maps-in", maps,
                 "--records", str(rec), "--json"]) == 0
    capsys.readouterr()
    common = ["--target", "host-e5-1650v4", "--target", "hxdp-sume", "--sweep",
              "--packets", "20000"]
    outs = {}
    for name, source in (("pcap", ["--pcap", str(OFF / "udp64.pcap"), "--maps-in", maps]),
                         ("records", ["--records", str(rec)])):
        rc, out, err = _offload(capsys, katran, *source, *common, "--json")
        assert rc == 0, err
        outs[name] = json.loads(out)
    assert outs["records"]["workload"].pop("source") == str(rec)
    outs["pcap"]["workload"].pop("source")
    assert outs["records"] == outs["pcap"]
    assert outs["pcap"]["targets"]["hxdp-sume"]["static_ipc"]
    assert len(outs["pcap"]["targets"]["hxdp-sume"]["studies"]) == 10
    tables = [_offload(capsys, katran, *source, *common)[1].replace(str(where), "F")
              for source, where in ((["--records", str(rec)], rec),
                                    (["--pcap", str(OFF / "udp64.pcap"), "--maps-in", maps],
                                     OFF / "udp64.pcap"))]
    assert tables[0] == tables[1] and "offload study" in tables[0]


def test_cli_takes_one_workload(tmp_path, capsys) -> None:
    drop = str(OFF / "drop.o")
    rc, _, err = _offload(capsys, drop, "--target", "hxdp-sume")
    assert rc == 2 and "--records" in err
    rec = _records(tmp_path, OFF / "drop.o", OFF / "udp64.pcap")
    rc, _, err = _offload(capsys, drop, "--records", str(rec), "--maps-in", "m.json",
                          "--target", "hxdp-sume")
    assert rc == 2 and "--maps-in goes with --pcap" in err
    with pytest.raises(SystemExit) as info:
        main(["offload", drop, "--records", str(rec), "--pcap", "x.pcap", "--target", "t"])
    assert info.value.code == 2


# -- records that do not fit -----------------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[dict]:
    """The firewall example's records: 1,000 packets over five paths."""
    rec = _records(tmp_path_factory.mktemp("good"), NIC / "firewall.o", NIC / "traffic.pcap",
                   NIC / "blocklist.json")
    return [json.loads(line) for line in rec.read_text().splitlines()]


def _second_of_path(records: list[dict], path: int) -> int:
    return [i for i, r in enumerate(records) if r["path"] == path][1]


def _edit(records: list[dict], case: str) -> tuple[list, int]:
    """A copy of ``records`` broken as ``case`` says, and the (1-based) line it breaks."""
    r = json.loads(json.dumps(records))
    if case == "no field":
        del r[4]["len_in"]
        return r, 5
    if case == "wrong type":
        r[4]["len_out"] = "60"
        return r, 5
    if case == "bad verdict":
        r[2]["verdict"] = "TC_ACT_OK"
        return r, 3
    if case == "bad helper calls":
        r[2]["helper_calls"] = {"map_lookup_elem": 1}
        return r, 3
    if case == "bad regions":
        r[2]["regions"] = {"stack": [1]}
        return r, 3
    if case == "path before counts":
        line = next(i for i, x in enumerate(r) if x["path"] == 1)
        del r[line]["counts"]
        return r, line + 1
    if case == "counts out of order":
        line = next(i for i, x in enumerate(r) if x["path"] == 1)
        r[line]["path"] = 3
        return r, line + 1
    if case == "unknown program":
        r[0]["counts"]["nope"] = {"tag": "00", "pcs": [[0, 1]]}
        return r, 1
    if case == "another program":
        r[0]["counts"] = {"xdp_drop": r[0]["counts"]["firewall"]}
        return r, 1
    if case == "another build":
        r[0]["counts"]["firewall"]["tag"] = "0123456789abcdef"
        return r, 1
    if case == "pc past the end":
        r[0]["counts"]["firewall"]["pcs"].append([10_000, 1])
        return r, 1
    if case == "pcs out of order":
        r[0]["counts"]["firewall"]["pcs"][3] = [2, 1]
        return r, 1
    if case == "bad pcs":
        r[0]["counts"]["firewall"]["pcs"][0] = [1, 0]
        return r, 1
    if case == "bad verdict type":
        r[2]["verdict"] = ["XDP_PASS"]
        return r, 3
    if case == "not the path's calls":
        line = _second_of_path(r, 0)
        r[line]["helper_calls"] = {"1": 99}
        return r, line + 1
    if case == "old format":
        for x in r:
            for key in ("flow", "regions", "path", "counts"):
                x.pop(key, None)
        return r, 1
    if case == "not an object":
        r[6] = [1, 2, 3]
        return r, 7
    raise AssertionError(case)


BROKEN = {
    "no field": "no 'len_in' field",
    "wrong type": "'len_out' must be an integer",
    "bad verdict": "'TC_ACT_OK' is not an XDP action",
    "bad helper calls": "'helper_calls' must map helper ids to counts",
    "bad regions": r"'regions' must map region names to \[loads, stores\]",
    "path before counts": "path 1 before the record that gives its counts",
    "counts out of order": "counts for path 3: .* the next path, 1",
    "unknown program": "counts of program 'nope', which .*firewall.o does not have",
    "another program": "none of 'firewall': the records of another program's run",
    "another build": "recorded with tag '0123456789abcdef'.*another build",
    "pc past the end": r"counts of 'firewall': pc 10000 is past its \d+ slots",
    "pcs out of order": r"counts of 'firewall': pc 2 after pc \d+: the pcs go up",
    "bad pcs": r"\[1, 0\] is not \[pc, n\] with n >= 1",
    "bad verdict type": "verdict \\['XDP_PASS'\\] is not an XDP action",
    "not the path's calls": "not the ones path 0 was first recorded with",
    "old format": 'no "path": the records of an older xsim',
    "not an object": "a record is a JSON object",
}


def _check_refused(capsys, path: Path, match: str, line: int | None) -> None:
    o = xsim.load(NIC / "firewall.o")
    with pytest.raises(WorkloadError, match=match) as info:
        from_records(o, o.choose(None), path)
    assert info.value.path == str(path) and info.value.record == line
    if line is not None:
        assert info.value.unit == "line" and f"{path}: line {line}: " in str(info.value)
    rc, out, err = _offload(capsys, str(NIC / "firewall.o"), "--records", str(path),
                            "--target", "hxdp-sume")
    assert rc == 2 and not out and err.startswith(f"xsim: {path}")
    assert "Traceback" not in err and (line is None or f"line {line}:" in err)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_records_name_the_file_and_line(tmp_path, capsys, good, case) -> None:
    records, line = _edit(good, case)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    _check_refused(capsys, path, BROKEN[case], line)


def test_not_json_names_the_line(tmp_path, capsys, good) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in good[:5]]
    lines[2] = lines[2][:-10]
    path.write_text("\n".join(lines) + "\n")
    _check_refused(capsys, path, "not JSON", 3)


def test_empty_missing_and_binary_files(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    _check_refused(capsys, empty, "the records file has no records", None)
    _check_refused(capsys, tmp_path / "missing.jsonl", "cannot read it", None)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    _check_refused(capsys, binary, "not text", None)


def test_a_packet_the_run_could_not_take(tmp_path) -> None:
    """pcaprun writes {"index", "error"} for a frame it could not run; from_pcap refuses
    that frame, and from_records refuses its record the same way."""
    capture = tmp_path / "short.pcap"
    with PcapWriter(capture) as w:
        w.write(bytes(60), 0)
        w.write(bytes(10), 1000)          # shorter than an Ethernet header
    rec = _records(tmp_path, OFF / "drop.o", capture)
    assert json.loads(rec.read_text().splitlines()[1]).keys() == {"index", "error"}
    o = xsim.load(OFF / "drop.o")
    with pytest.raises(WorkloadError, match="packet 1"):
        from_pcap(o, o.choose(None), capture)
    with pytest.raises(WorkloadError, match=r"line 2: packet 1 did not run .*shorter"):
        from_records(o, o.choose(None), rec)
    assert len(from_records(o, o.choose(None), rec, limit=1)) == 1


def test_records_of_another_program_type(tmp_path) -> None:
    rec = _records(tmp_path, OFF / "drop.o", OFF / "udp64.pcap")
    o = xsim.load(NIC / "tc_marker.o")
    with pytest.raises(WorkloadError, match="the offload models take XDP programs"):
        from_records(o, o.choose(None), rec)
