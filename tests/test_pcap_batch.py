"""The compiled capture loop (xsim.nic.batch) against one test run per packet.

Both paths of ``run_pcap`` must give the same summary, the same output files,
the same per-packet records and the same maps, on captures that mix ordinary
frames with the ones the loop hands back to Python (runts, frames over one
page, snaplen-truncated records), on programs that call Python helpers,
redirect, change the frame's size, and fault.  The pcap reader's batches
must give the packets and errors that iterating gives.
"""
from __future__ import annotations

import io
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

import xsim
from xsim.cc import compile_c
from xsim.isa import interp as ip
from xsim.nic.corpus import corpus
from xsim.nic.pcap import PacketBatch, PcapError, PcapReader, PcapWriter
from xsim.nic.pcaprun import run_pcap
from xsim.runtime.testrun import apply_maps_in, dump_map

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "nic"
NIC = Path(__file__).parent / "data" / "nic"

FAULTY = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
/* reads byte 100 without a bounds check: faults on shorter frames */
SEC("xdp") int faulty(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    return data[100] & 1 ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"""

#: per-packet values the loop lays out (context fields, the socket, LD_ABS reaches),
#: spread over the verdicts and summed into a map, and context writes a next packet
#: must not see
SKB_MIX = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } acc SEC(".maps");

static __u32 mix(struct __sk_buff *skb)
{
    __u32 v = skb->len * 31 + skb->pkt_type * 7 + skb->protocol + skb->ifindex * 3
              + skb->mark + skb->cb[0] + skb->priority;
    struct bpf_sock *sk = skb->sk;
    if (sk)
        v += sk->family * 11 + sk->src_ip4 + sk->dst_ip4 * 5 + sk->src_ip6[1]
             + sk->dst_ip6[3] * 9 + sk->state + sk->rx_queue_mapping;
    v += load_byte(skb, 0) + load_byte(skb, -0x200000) * 13 + load_byte(skb, -0x100000 + 5);
    __u32 k = v & 3;
    __u64 *slot = bpf_map_lookup_elem(&acc, &k);
    if (slot)
        __sync_fetch_and_add(slot, v);
    skb->cb[0] = 5;
    return v;
}

SEC("tc") int tc_mix(struct __sk_buff *skb)
{
    __u32 v = mix(skb);
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (data + 24 <= end)
        v ^= *(__u32 *)(data + 20);
    skb->mark = v;
    skb->priority = 9;
    return v % 9;
}

SEC("socket") int sock_mix(struct __sk_buff *skb) { return mix(skb) & 1 ? 0 : 64; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def skb_mix(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("skb")
    (d / "mix.c").write_text(SKB_MIX)
    compile_c(d / "mix.c", d / "mix.o")
    return d / "mix.o"


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """The generated corpus, plus frames over one page, a truncated record, a runt, and
    an IPv4 frame too short for an skb's test run."""
    path = tmp_path_factory.mktemp("cap") / "mixed.pcap"
    frames = corpus(1200, seed=3)
    rng = random.Random(5)
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, i * 1000)
            if i % 300 == 7:
                w.write(f[:14] + bytes(rng.randrange(256) for _ in range(5000)), i * 1000 + 1)
            if i % 400 == 9:
                w.write(f, i * 1000 + 2, orig_len=len(f) + 10)
        w.write(b"\x01" * 9, 10**9)
        w.write(bytes(12) + b"\x08\x00" + bytes(6), 10**9 + 1)    # short for IPv4 (skb)
    return path


def _run(tmp_path: Path, obj_path: Path, prog: str, capture: Path, batch: bool,
         maps_in: Path | None = None, setup=None, tier: str = "interp") -> tuple:
    obj = xsim.load(obj_path)
    if maps_in is not None:
        apply_maps_in(obj, json.loads(maps_in.read_text()))
    if setup is not None:
        setup(obj)
    out = tmp_path / (("b" if batch else "s") + tier)
    out.mkdir(exist_ok=True)
    rec = io.StringIO()
    summary = run_pcap(obj, obj.programs[prog], capture, out=out / "o.pcap", records=rec,
                       batch=batch, tier=tier)
    d = summary.to_dict(obj)
    d.pop("elapsed_s"), d.pop("pps")
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    return d, files, rec.getvalue().splitlines(), {n: dump_map(m) for n, m in obj.maps.items()}


def _devmap(obj) -> None:
    obj.maps["ports"].update(2, (1).to_bytes(4, "little"))
    obj.maps["seen"].update(0, (1).to_bytes(8, "little"))


CASES = [
    (NIC / "xdp_basic.o", "lengths", None, None),
    (NIC / "xdp_basic.o", "encap", None, None),
    (NIC / "xdp_basic.o", "shrink", None, None),
    (NIC / "xdp_basic.o", "bytes", None, None),
    (NIC / "xdp_basic.o", "redirects", None, _devmap),
    (NIC / "xdp_basic.o", "frags_tail", None, None),
    (EXAMPLES / "firewall.o", "firewall", EXAMPLES / "blocklist.json", None),
    (EXAMPLES / "l4_lb.o", "l4_lb", EXAMPLES / "backends.json", None),
    (EXAMPLES / "ipip.o", "encap", None, None),
    (EXAMPLES / "ipip.o", "decap", None, None),
    (EXAMPLES / "tc_marker.o", "tc_marker", None, None),
    (EXAMPLES / "dns_filter.o", "dns_filter", None, None),
    (NIC / "tc_basic.o", "fields", None, None),
    (NIC / "tc_basic.o", "load_store", None, None),
    (NIC / "tc_basic.o", "csums", None, None),
    (NIC / "tc_basic.o", "hashes", None, None),
    (NIC / "tc_basic.o", "redirects", None, None),
    (NIC / "tc_basic.o", "ld_abs_oob", None, None),
    (NIC / "tc_resize.o", "change_tail", None, None),
    (NIC / "tc_resize.o", "change_head", None, None),
    (NIC / "tc_resize.o", "vlans", None, None),
    (NIC / "tc_resize.o", "adjust_room", None, None),
    (NIC / "tc_sk.o", "sk_into_packet", None, None),
    (NIC / "tc_sk.o", "sock_sk_fields", None, None),
    (NIC / "mixed.o", "tc_clone", None, None),
    (NIC / "sock_basic.o", "load_bytes", None, None),
    (NIC / "sock_basic.o", "out_of_bounds", None, None),
]


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("obj, prog, maps_in, setup", CASES,
                         ids=[f"{c[0].stem}-{c[1]}" for c in CASES])
def test_the_loop_gives_what_one_run_per_packet_gives(tmp_path: Path, capture: Path, obj,
                                                      prog, maps_in, setup, tier) -> None:
    fast = _run(tmp_path, obj, prog, capture, True, maps_in, setup, tier)
    slow = _run(tmp_path, obj, prog, capture, False, maps_in, setup)
    for what, a, b in zip(("summary", "files", "records", "maps"), fast, slow):
        assert a == b, what
    assert fast[0]["packets"] == 1200 + 4 + 3 + 2


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("prog", ["tc_mix", "sock_mix"])
def test_skb_fields_per_packet(tmp_path: Path, capture: Path, skb_mix: Path, prog: str,
                               tier: str) -> None:
    """Each packet's context, socket and headers as its own test run has them."""
    fast = _run(tmp_path, skb_mix, prog, capture, True, tier=tier)
    slow = _run(tmp_path, skb_mix, prog, capture, False)
    for what, a, b in zip(("summary", "files", "records", "maps"), fast, slow):
        assert a == b, what
    assert len(fast[0]["verdicts"]) >= 2 and any(fast[3]["acc"])


def test_faults_and_the_packets_after_them(tmp_path: Path, capture: Path) -> None:
    src = tmp_path / "faulty.c"
    src.write_text(FAULTY)
    compile_c(src, tmp_path / "faulty.o")
    fast = _run(tmp_path, tmp_path / "faulty.o", "faulty", capture, True)
    slow = _run(tmp_path, tmp_path / "faulty.o", "faulty", capture, False)
    jit = _run(tmp_path, tmp_path / "faulty.o", "faulty", capture, True, tier="jit")
    assert fast == slow == jit
    summary = fast[0]
    assert summary["verdicts"]["error"] > 100
    assert summary["verdicts"]["XDP_PASS"] + summary["verdicts"]["XDP_DROP"] > 100
    assert any("out of bounds" in e["message"] for e in summary["errors"])


def test_the_loop_is_used_and_counts_lookups(tmp_path: Path, capture: Path) -> None:
    """The firewall's lookups all run in the compiled core: no Python helper calls."""
    obj = xsim.load(EXAMPLES / "firewall.o")
    apply_maps_in(obj, json.loads((EXAMPLES / "blocklist.json").read_text()))
    rec = io.StringIO()
    run_pcap(obj, obj.programs["firewall"], capture, records=rec)
    calls = [json.loads(r).get("helper_calls") for r in rec.getvalue().splitlines()]
    assert all(c is None or set(c) <= {"1"} for c in calls)
    assert sum(int(c["1"]) for c in calls if c) > 1000


# -- the reader's batches ----------------------------------------------------------------

def _pcap_bytes(rng: random.Random) -> bytes:
    order = rng.choice("<>")
    nano = rng.random() < 0.5
    snaplen = rng.choice([0, 64, 65535])
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, 1)
    for _ in range(rng.randrange(0, 40)):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100)))
        cap = len(data) if rng.random() < 0.95 else rng.choice([70000, 1 << 30])
        out += struct.pack(order + "IIII", rng.randrange(1 << 32), rng.randrange(10**6),
                           cap, len(data) + rng.randrange(3)) + data
    if rng.random() < 0.3:
        out = out[:rng.randrange(24, len(out) + 1)]
    return out


@pytest.mark.parametrize("seed", range(40))
def test_batches_give_what_iterating_gives(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap_bytes(rng))
    reader = PcapReader(path, on_error="stop")
    one = list(reader)
    errors = [str(e) for e in reader.errors]
    size = rng.choice([1, 3, 1000])
    batched = [b.packet(i) for b in reader.batches(size) for i in range(len(b))]
    assert batched == one
    assert [str(e) for e in reader.errors] == errors
    if errors:
        with pytest.raises(PcapError, match=errors[0].split(": ", 2)[-1][:20]):
            list(PcapReader(path).batches(size))


def test_write_batch_equals_write(tmp_path: Path) -> None:
    frames = corpus(50, seed=1)
    batch = PacketBatch.of([xsim.nic.pcap.Packet(i, i * 1001, f, len(f))
                            for i, f in enumerate(frames)])
    with PcapWriter(tmp_path / "a.pcap") as w:
        w.write_batch(batch.data, batch.offset, batch.caplen, batch.timestamp_ns)
    with PcapWriter(tmp_path / "b.pcap") as w:
        for i, f in enumerate(frames):
            w.write(f, i * 1001)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    with PcapWriter(tmp_path / "c.pcap", snaplen=10) as w, pytest.raises(PcapError):
        w.write_batch(batch.data, batch.offset, batch.caplen, batch.timestamp_ns)
    assert np.all(batch.caplen >= 0)


def _frames_for_skb_fields() -> list[bytes]:
    rng = random.Random(11)
    out = list(corpus(200, seed=9))
    for dest in (bytes(6), b"\xff" * 6, b"\x01\x00\x5e\x00\x00\x01", b"\x02" + bytes(5)):
        for proto in (b"\x08\x00", b"\x86\xdd", b"\x00\x40", b"\x08\x06"):
            body = bytes(rng.randrange(256) for _ in range(60))
            out.append(dest + bytes(6) + proto + body)
    out += [bytes(12) + b"\x00\x20" + b"\xff\xff" + bytes(30), bytes(12) + b"\x00\x20",
            bytes(12) + b"\x00\x20\xff"]
    return [f for f in out if len(f) >= 14]     # the test run refuses shorter ones


def test_the_loops_skb_fields_are_the_test_runs() -> None:
    """The compiled copies of eth_type_trans, pkt_type and the socket's image."""
    from xsim.nic import batch, skb, sock
    from xsim.nic.flow import eth_type_trans
    for f in _frames_for_skb_fields():
        a = np.frombuffer(f, dtype=np.uint8)
        proto = batch._eth_protocol(a, 0, len(f))
        assert proto == eth_type_trans(f)
        assert batch._pkt_type(a, 0) == skb._pkt_type(f[:6])
        if len(f) >= skb.FRAME_MIN.get(int.from_bytes(f[12:14], "big"), 14):
            mem = np.full(100, 0xEE, dtype=np.uint8)
            batch._sock_fill(mem, 8, a, 0, proto)
            assert mem[8:8 + sock.BPF_SOCK_SIZE].tobytes() == sock.sock_image(f)
            assert (mem[:8] == 0xEE).all() and (mem[8 + sock.BPF_SOCK_SIZE:] == 0xEE).all()


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_devmap_redirects_stay_in_the_loop(tmp_path: Path, capture: Path, tier: str,
                                          monkeypatch) -> None:
    """bpf_redirect_map on a devmap is the core's: the redirect example's capture makes
    no Python helper call, and every packet it runs goes to the devmap's slot 0, as one
    test run per packet says."""
    from xsim.runtime.program import Program
    python_calls = []
    real = Program._call_helper

    def counted(self, calls, chain):
        python_calls.append(int(self._st[ip.S_HELPER]))
        return real(self, calls, chain)

    offload = EXAMPLES.parent / "offload"
    monkeypatch.setattr(Program, "_call_helper", counted)
    fast = _run(tmp_path, offload / "redirect.o", "redirect", capture, True,
                offload / "redirect.maps.json", None, tier)
    assert python_calls == []
    slow = _run(tmp_path, offload / "redirect.o", "redirect", capture, False,
                offload / "redirect.maps.json", None)
    assert fast == slow
    records = [json.loads(r) for r in fast[2]]
    ran = [r for r in records if r.get("verdict") == "XDP_REDIRECT"]
    assert len(ran) > 1000
    assert all(r.get("redirect") == ["tx_port", 0] for r in ran)


SPLIT = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4);
         __uint(key_size, 4); __uint(value_size, 4); } ports SEC(".maps");
SEC("xdp") int split(struct xdp_md *ctx)
{
    __u32 len = ctx->data_end - ctx->data;
    if (len % 3 == 0)
        return bpf_redirect(5, 0);
    return bpf_redirect_map(&ports, len % 3 == 1 ? 0 : 2, XDP_PASS);
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_redirects_to_several_targets(tmp_path: Path, capture: Path, tier: str) -> None:
    """Each packet goes to its own redirect's file (an ifindex, two devmap slots, one of
    them empty: XDP_PASS), in packet order, as one test run per packet says."""
    src = tmp_path / "split.c"
    src.write_text(SPLIT)
    compile_c(src, tmp_path / "split.o")
    maps = tmp_path / "ports.json"
    maps.write_text('[{"map": "ports", "key": "00000000", "value": "03000000"}]')
    fast = _run(tmp_path, tmp_path / "split.o", "split", capture, True, maps, None, tier)
    slow = _run(tmp_path, tmp_path / "split.o", "split", capture, False, maps, None)
    assert fast == slow
    assert {"o.redirect-if5.pcap", "o.redirect-ports-0.pcap", "o.pcap"} <= set(fast[1])
