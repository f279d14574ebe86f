"""xsim run --pcap: every packet of a capture through the program, outputs written back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import xsim
from xsim.cli import main
from xsim.elf.loader import load_spec
from xsim.nic.pcap import read_packets
from xsim.nic.pcaprun import run_pcap

DATA = Path(__file__).parent / "data"
OBJ = DATA / "nic" / "xdp_basic.o"
SAMPLE = DATA / "pcap" / "sample.pcap"


def test_verdicts_outputs_and_errors(tmp_path: Path) -> None:
    obj = xsim.load(OBJ)
    summary = run_pcap(obj, obj.programs["lengths"], SAMPLE, out=tmp_path / "out.pcap")
    frames = list(read_packets(SAMPLE))
    ipv4 = [p for p in frames if len(p.data) >= 14 and p.data[12:14] == b"\x08\x00"]
    assert summary.packets == len(frames) == 20
    assert summary.verdicts["XDP_PASS"] == len(ipv4)
    assert summary.verdicts["XDP_DROP"] == len(frames) - len(ipv4) - 1
    assert [i for i, _ in summary.errors] == [15]            # the 10-byte runt
    written = [p.data for p in read_packets(tmp_path / "out.pcap")]
    assert written == [p.data for p in ipv4]
    assert summary.outputs["pass"] == [len(ipv4), sum(len(p.data) for p in ipv4)]


def test_cli_json_and_records(tmp_path: Path, capsys) -> None:
    rc = main(["run", str(OBJ), "--prog", "encap", "--pcap", str(SAMPLE), "--out",
               str(tmp_path / "o.pcap"), "--records", str(tmp_path / "r.jsonl"), "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["packets"] == 20 and data["verdicts"] == {"XDP_TX": 19}
    assert set(data) >= {"packets", "verdicts", "errors", "maps", "elapsed_s", "pps"}
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 20 and records[0]["verdict"] == "XDP_TX"
    tx = list(read_packets(tmp_path / "o.tx.pcap"))
    assert len(tx) == 19 and all(len(p.data) == r["len_out"] for p, r in
                                 zip(tx, [r for r in records if "verdict" in r]))


def test_every_packet_agrees_with_the_kernel() -> None:
    kernel = pytest.importorskip("xsim.kernel")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    from xsim.runtime.testrun import TestRunRefused, test_run
    spec = load_spec(OBJ)
    for prog in ("lengths", "encap", "bytes"):
        obj = xsim.load(OBJ)
        with kernel.KernelObject.load(spec, prog=prog) as kobj:
            kp = kobj.programs[prog]
            for pkt in read_packets(SAMPLE):
                try:
                    mine = test_run(obj.programs[prog], data_in=pkt.data)
                except TestRunRefused:
                    with pytest.raises(kernel.KernelError):
                        kp.test_run(data_in=pkt.data)
                    continue
                theirs = kp.test_run(data_in=pkt.data)
                assert (theirs.retval, theirs.data_out) == (mine.retval, mine.data_out), \
                    (prog, pkt.index)


def test_the_firewall_example_over_its_capture_agrees_with_the_kernel() -> None:
    """Packet by packet (verdict, bytes out) and in the maps after the whole capture."""
    kernel = pytest.importorskip("xsim.kernel")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    from xsim.runtime.testrun import apply_maps_in, dump_map, test_run
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    blocklist = json.loads((root / "blocklist.json").read_text())
    obj = xsim.load(root / "firewall.o")
    apply_maps_in(obj, blocklist)
    with kernel.KernelObject.load(load_spec(root / "firewall.o")) as kobj:
        apply_maps_in(kobj, blocklist)
        kp = kobj.programs["firewall"]
        drops = 0
        for pkt in read_packets(root / "traffic.pcap"):
            mine = test_run(obj.programs["firewall"], data_in=pkt.data)
            theirs = kp.test_run(data_in=pkt.data)
            assert (theirs.retval, theirs.data_out) == (mine.retval, mine.data_out), pkt.index
            drops += mine.retval == 1
        for name in ("rule_hits", "verdicts", "blocklist"):
            assert dump_map(kobj.maps[name]) == dump_map(obj.maps[name]), name
    assert drops > 100


@pytest.mark.parametrize("obj, prog, verdict", [
    ("tc_basic.o", "act", "TC_ACT_PIPE"), ("sock_basic.o", "fields", "keep")])
def test_tc_and_socket_filters_over_a_capture(obj: str, prog: str, verdict: str) -> None:
    o = xsim.load(DATA / "nic" / obj)
    summary = run_pcap(o, o.programs[prog], SAMPLE)
    assert summary.verdicts == {verdict: 19} and summary.outputs["pass"][0] == 19
    assert [i for i, _ in summary.errors] == [15]


def test_the_load_balancer_rewrites_to_valid_checksums(tmp_path: Path) -> None:
    import struct as _struct
    from xsim.runtime.testrun import apply_maps_in
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    obj = xsim.load(root / "l4_lb.o")
    apply_maps_in(obj, json.loads((root / "backends.json").read_text()))
    summary = run_pcap(obj, obj.programs["l4_lb"], root / "traffic.pcap", out=tmp_path / "o.pcap")
    assert summary.verdicts["XDP_TX"] > 100
    for pkt in read_packets(tmp_path / "o.tx.pcap"):
        ip = pkt.data[14:34] if pkt.data[12:14] == b"\x08\x00" else pkt.data[18:38]
        words = sum(_struct.unpack("!10H", ip))
        while words >> 16:
            words = (words >> 16) + (words & 0xFFFF)
        assert words == 0xFFFF                       # a valid IPv4 header checksum
        assert ip[16:18] == b"\x0a\x00"              # sent to a 10.0.0.x backend


def test_tc_redirects_go_to_their_own_output(tmp_path: Path) -> None:
    import struct as _struct
    from xsim.nic.pcap import PcapWriter
    ip = bytes.fromhex("45000028000040004006" "0000" "0a000001c0a80101")
    ssh = bytes(12) + b"\x08\x00" + ip + _struct.pack("!HHIIBBHHH", 40000, 22, 0, 0, 0x50, 2,
                                                       1024, 0, 0)
    with PcapWriter(tmp_path / "in.pcap") as w:
        w.write(ssh)
        w.write(ssh[:12] + b"\x86\xdd" + bytes(40))
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    obj = xsim.load(root / "tc_marker.o")
    summary = run_pcap(obj, obj.programs["tc_marker"], tmp_path / "in.pcap",
                       out=tmp_path / "out.pcap")
    assert summary.verdicts == {"TC_ACT_REDIRECT": 1, "TC_ACT_OK": 1}
    assert summary.outputs == {"redirect-if1": [1, len(ssh)], "pass": [1, 54]}
    assert [p.data for p in read_packets(tmp_path / "out.redirect-if1.pcap")] == [ssh]


def test_ipip_encap_then_decap_gives_the_frame_back() -> None:
    from xsim.runtime.testrun import test_run
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    obj = xsim.load(root / "ipip.o")
    wrapped = 0
    for pkt in read_packets(root / "traffic.pcap"):
        out = test_run(obj.programs["encap"], data_in=pkt.data)
        if out.retval != 3:                                  # not IPv4: passed as it is
            assert out.retval == 2 and out.data_out == pkt.data
            continue
        assert out.data_out[23] == 4 and len(out.data_out) == len(pkt.data) + 20
        back = test_run(obj.programs["decap"], data_in=out.data_out)
        assert (back.retval, back.data_out) == (2, pkt.data)
        wrapped += 1
    assert wrapped > 500
