"""pcap / pcapng input and pcap output of the nic hook (xsim.nic.pcap)."""
from __future__ import annotations

import importlib.util
import io
import struct
import tracemalloc
from pathlib import Path
from types import ModuleType

import dpkt
import pytest

from xsim.errors import XsimError
from xsim.nic.pcap import (ETHERNET, MAX_CAPLEN, Packet, PcapError, PcapReader, PcapWriter,
                           read_packets)

DATA = Path(__file__).parent / "data" / "pcap"
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC


def pcap_file(records: list[tuple[int, int, bytes, int]], order: str = "<",
              nano: bool = False, snaplen: int = 65535, linktype: int = 1) -> bytes:
    """A classic pcap file by hand: records are (seconds, fraction, data, orig_len)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for sec, frac, data, orig in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    return out


def block(order: str, btype: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, body padded to 4, total length again."""
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, snaplen: int = 0, tsresol: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = struct.pack(order + "HHB3x", 9, 1, tsresol) + struct.pack(order + "HH", 0, 0)
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, iface: int, ts: int, data: bytes, orig: int | None = None) -> bytes:
    head = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig)
    return block(order, 6, head + data)


def spb(order: str, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data)) + data)


def put(tmp_path: Path, content: bytes, name: str = "in.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- round trips through PcapWriter --------------------------------------------------

@pytest.mark.parametrize("nano", [False, True])
def test_round_trip(tmp_path: Path, nano: bool) -> None:
    sent: list[tuple[bytes, int, int | None]] = [
        (bytes([i]) * (14 + i * 7), T0 + i * 1_234_567_891, None) for i in range(40)]
    sent.append((b"\xab" * 60, T0 + 5, 1514))                       # snaplen-limited
    path = tmp_path / "rt.pcap"
    with PcapWriter(path, nanoseconds=nano) as w:
        for data, ts, orig in sent:
            w.write(data, timestamp_ns=ts, orig_len=orig)
    assert w.count == len(sent) and w.bytes == sum(len(d) for d, _, _ in sent)
    reader = PcapReader(path)
    got = list(reader)
    assert reader.format == "pcap" and reader.nanoseconds == nano
    assert reader.linktypes == [ETHERNET] and reader.errors == []
    expect = [Packet(i, ts if nano else ts // 1000 * 1000, data,
                     len(data) if orig is None else orig, ETHERNET, 0)
              for i, (data, ts, orig) in enumerate(sent)]
    assert got == expect
    assert list(reader) == expect                                     # re-iterable
    assert [p.truncated for p in got] == [False] * 40 + [True]


def test_writer_output_reads_in_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    with PcapWriter(path, linktype=101) as w:
        w.write(b"\x45" + b"\0" * 19, timestamp_ns=3 * SEC + 500_000)
    with open(path, "rb") as f:
        r = dpkt.pcap.Reader(f)
        assert r.datalink() == 101
        assert [(ts, d) for ts, d in r] == [(3.0005, b"\x45" + b"\0" * 19)]
    # other link types come out with their link type, not dropped
    assert [(p.linktype, len(p.data)) for p in read_packets(path)] == [(101, 20)]


def test_writer_refuses_bad_records(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "w.pcap", snaplen=100) as w:
        with pytest.raises(PcapError, match="snaplen 100"):
            w.write(b"x" * 101)
        with pytest.raises(PcapError, match="orig_len 5"):
            w.write(b"x" * 10, orig_len=5)
        with pytest.raises(PcapError, match="timestamp"):
            w.write(b"x", timestamp_ns=-1)
        assert w.count == 0
    assert list(read_packets(tmp_path / "w.pcap")) == []


# --- other writers' files -------------------------------------------------------------

@pytest.mark.parametrize("nano", [False, True])
def test_big_endian_pcap(tmp_path: Path, nano: bool) -> None:
    frac = 123_456_789 if nano else 123_456
    raw = pcap_file([(1_700_000_000, frac, b"\x11" * 20, 20),
                     (1_700_000_001, 0, b"\x22" * 30, 1500)], order=">", nano=nano,
                    linktype=1 | 0x10000000)                          # FCS bits ignored
    assert raw[:4] == (b"\xa1\xb2\x3c\x4d" if nano else b"\xa1\xb2\xc3\xd4")
    got = list(read_packets(put(tmp_path, raw)))
    assert got == [Packet(0, T0 + frac * (1 if nano else 1000), b"\x11" * 20, 20),
                   Packet(1, T0 + SEC, b"\x22" * 30, 1500)]
    assert got[1].truncated and not got[0].truncated


def test_dpkt_written_pcap(tmp_path: Path) -> None:
    f = io.BytesIO()
    w = dpkt.pcap.Writer(f, nano=True)
    w.writepkt_time(b"frame-one", 10.5)
    w.writepkt_time(b"frame-two", 11.25)
    got = list(read_packets(put(tmp_path, f.getvalue())))
    assert [(p.timestamp_ns, p.data) for p in got] == [(10_500_000_000, b"frame-one"),
                                                      (11_250_000_000, b"frame-two")]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_two_interfaces(tmp_path: Path, order: str) -> None:
    eth, ip = b"\x02" * 14 + b"payload", b"\x45" + b"\0" * 19
    raw = (shb(order)
           + idb(order, 1, snaplen=64)                                 # microseconds
           + idb(order, 101, tsresol=9)                                # raw IP, nanoseconds
           + block(order, 5, b"\0" * 20)                               # statistics: skipped
           + epb(order, 0, 1_700_000_000_000_001, eth)
           + epb(order, 1, T0 + 7, ip)
           + epb(order, 0, 5, b"\x03" * 64, orig=1514)                 # snaplen-limited
           + spb(order, eth))
    reader = PcapReader(put(tmp_path, raw, "in.pcapng"))
    got = list(reader)
    assert reader.format == "pcapng" and reader.linktypes == [1, 101]
    assert got == [Packet(0, T0 + 1000, eth, len(eth), 1, 0),
                   Packet(1, T0 + 7, ip, 20, 101, 1),
                   Packet(2, 5000, b"\x03" * 64, 1514, 1, 0),
                   Packet(3, 0, eth, len(eth), 1, 0)]                  # SPB: no timestamp
    assert [p.truncated for p in got] == [False, False, True, False]


def test_pcapng_sections_number_interfaces_across_the_file(tmp_path: Path) -> None:
    raw = (shb("<") + idb("<", 1) + epb("<", 0, 1, b"a" * 14)
           + shb(">") + idb(">", 113) + idb(">", 1) + epb(">", 1, 2, b"b" * 14)
           + epb(">", 0, 3, b"c" * 16))
    reader = PcapReader(put(tmp_path, raw))
    got = [(p.interface, p.linktype, p.data[:1]) for p in reader]
    assert reader.linktypes == [1, 113, 1]
    assert got == [(0, 1, b"a"), (2, 1, b"b"), (1, 113, b"c")]


def test_pcapng_written_by_dpkt(tmp_path: Path) -> None:
    f = io.BytesIO()
    w = dpkt.pcapng.Writer(f, idb=[dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=1),
                                   dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=12)])
    w.writepkt(dpkt.pcapng.EnhancedPacketBlockLE(iface_id=0, pkt_data=b"e" * 20), ts=1.5)
    w.writepkt(dpkt.pcapng.EnhancedPacketBlockLE(iface_id=1, pkt_data=b"\x45" * 20), ts=2.0)
    got = [(p.timestamp_ns, p.interface, p.linktype) for p in
           read_packets(put(tmp_path, f.getvalue()))]
    assert got == [(1_500_000_000, 0, 1), (2_000_000_000, 1, 12)]


# --- broken files ----------------------------------------------------------------------

@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"hello world, this is not a capture file", "not a pcap or pcapng file"),
    (b"\x1f\x8b\x08\x00" + b"\0" * 30, "gunzip"),
    (b"\x34\xcd\xb2\xa1" + b"\0" * 30, "editcap"),
])
def test_not_a_capture(tmp_path: Path, content: bytes, reason: str) -> None:
    with pytest.raises(PcapError, match=reason) as info:
        read_packets(put(tmp_path, content))
    assert info.value.index is None and info.value.offset == 0
    assert isinstance(info.value, XsimError)


@pytest.mark.parametrize("content", [
    pcap_file([])[:10],
    (shb("<") + idb("<", 1))[:20],
    shb("<")[:8] + b"\xde\xad\xbe\xef",                               # bad byte-order magic
])
def test_truncated_or_bad_file_header(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(PcapError) as info:
        PcapReader(put(tmp_path, content))
    assert info.value.index is None and info.value.path.endswith("in.pcap")
    assert "file header" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="cannot read the file"):
        PcapReader(tmp_path / "nope.pcap")


def _cut_pcap() -> tuple[bytes, list[int]]:
    """Three 100-byte records; returns the file and each record's offset."""
    raw = pcap_file([(1, i, bytes([i]) * 100, 100) for i in range(3)])
    return raw, [24 + 116 * i for i in range(3)]


@pytest.mark.parametrize("cut", [5, 16 + 40])   # into the record header, into the data
def test_cut_in_a_record_raises_after_good_packets(tmp_path: Path, cut: int) -> None:
    raw, offsets = _cut_pcap()
    path = put(tmp_path, raw[:offsets[2] + cut])
    seen: list[Packet] = []
    with pytest.raises(PcapError, match="cut short") as info:
        for p in read_packets(path):
            seen.append(p)
    assert [p.index for p in seen] == [0, 1]
    assert (info.value.index, info.value.offset) == (2, offsets[2])


def test_cut_in_a_record_stop_keeps_good_packets(tmp_path: Path) -> None:
    raw, offsets = _cut_pcap()
    path = put(tmp_path, raw[:-30])
    reader = PcapReader(path, on_error="stop")
    assert [p.index for p in reader] == [0, 1]
    assert len(reader.errors) == 1 and reader.errors[0].index == 2
    assert reader.errors[0].offset == offsets[2] and "ends after 70" in reader.errors[0].reason
    assert [p.index for p in read_packets(path, on_error="stop")] == [0, 1]
    with pytest.raises(ValueError):
        PcapReader(path, on_error="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("on_error", ["raise", "stop"])
def test_cut_pcapng_block(tmp_path: Path, on_error: str) -> None:
    head = shb("<") + idb("<", 1)
    raw = head + epb("<", 0, 1, b"a" * 60) + epb("<", 0, 2, b"b" * 60)
    path = put(tmp_path, raw[:-10])
    reader = PcapReader(path, on_error=on_error)  # type: ignore[arg-type]
    seen: list[Packet] = []
    if on_error == "raise":
        with pytest.raises(PcapError, match="runs past the end") as info:
            seen.extend(reader)
        err = info.value
    else:
        seen.extend(reader)
        [err] = reader.errors
    assert [p.data[:1] for p in seen] == [b"a"]
    assert (err.index, err.offset) == (1, len(head) + 92)


@pytest.mark.parametrize("caplen", [0x7FFFFFF0, MAX_CAPLEN + 1])
def test_huge_captured_length_is_not_allocated(tmp_path: Path, caplen: int) -> None:
    good = pcap_file([(1, 0, b"g" * 40, 40)], snaplen=0)              # snaplen 0: none given
    raw = good + struct.pack("<IIII", 2, 0, caplen, caplen) + b"tail"
    path = put(tmp_path, raw)
    tracemalloc.start()
    try:
        with pytest.raises(PcapError, match="limit") as info:
            list(read_packets(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert (info.value.index, info.value.offset) == (1, len(good))


def test_captured_length_over_snaplen(tmp_path: Path) -> None:
    raw = pcap_file([(1, 0, b"x" * 64, 64), (1, 1, b"y" * 65, 65)], snaplen=64)
    with pytest.raises(PcapError, match="snaplen 64") as info:
        list(read_packets(put(tmp_path, raw)))
    assert info.value.index == 1
    ng = shb("<") + idb("<", 1, snaplen=64) + epb("<", 0, 0, b"z" * 65)
    with pytest.raises(PcapError, match="snaplen 64"):
        list(read_packets(put(tmp_path, ng, "in.pcapng")))


def test_pcapng_huge_block_length(tmp_path: Path) -> None:
    raw = shb("<") + idb("<", 1) + struct.pack("<II", 6, 0x7FFFFFF0) + b"\0" * 40
    with pytest.raises(PcapError, match="runs past the end"):
        list(read_packets(put(tmp_path, raw)))


def test_pcapng_packet_before_its_interface(tmp_path: Path) -> None:
    raw = shb("<") + epb("<", 0, 0, b"x" * 20)
    with pytest.raises(PcapError, match="interface 0 but its section has 0"):
        list(read_packets(put(tmp_path, raw)))


# --- the committed sample ---------------------------------------------------------------

def _make_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pcap_make", DATA / "make.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_capture() -> None:
    packets = list(read_packets(DATA / "sample.pcap"))
    assert len(packets) == 20
    assert all(p.linktype == ETHERNET and not p.truncated for p in packets)
    assert [p.timestamp_ns for p in packets] == [T0 + i * 1_000_000 for i in range(20)]
    ethertypes = [int.from_bytes(p.data[12:14], "big") if len(p.data) >= 14 else None
                  for p in packets]
    assert ethertypes == [0x0800] * 8 + [0x86DD] * 3 + [0x8100] * 2 + [0x0806] * 2 + [None] \
        + [0x0800] * 2 + [0x86DD] + [0x0800]
    assert [int.from_bytes(p.data[16:18], "big") for p in packets[11:13]] == [0x0800, 0x86DD]
    assert len(packets[15].data) == 10
    syn = dpkt.ethernet.Ethernet(packets[4].data).data.data
    assert syn.flags == dpkt.tcp.TH_SYN and len(syn.opts) == 20
    assert [p.data for p in packets] == _make_module().frames()     # the file matches make.py
