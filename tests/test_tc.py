"""TC (sched_cls, sched_act): __sk_buff as the kernel rewrites it, the skb helpers, and
BPF_PROG_TEST_RUN's rules for skb programs, each compared with the running kernel where
bpf() works (the xsim side is checked everywhere)."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from xsim.elf.loader import load_spec
from xsim.runtime import testrun
from xsim.runtime.hooks import VerifierError
from xsim.runtime.object import Object
from xsim.runtime.testrun import TestRunRefused, apply_maps_in, report

DATA = Path(__file__).parent / "data" / "nic"
BASIC = DATA / "tc_basic.o"
REFUSED = DATA / "tc_refused.o"
#: Ethernet + IPv4 (UDP, checksum 0) + UDP header + 12 bytes of payload
PKT = (bytes.fromhex("020000000002" "020000000001" "0800")
       + bytes.fromhex("45000028000100004011" "0000" "c0a80001c0a80002")
       + bytes.fromhex("1234567800140000") + bytes(range(12)))


def kernel():
    try:
        import xsim.kernel as mod
    except ImportError:
        return None
    ok, _ = mod.available()
    return mod if ok else None


def ctx(**fields: int) -> bytes:
    """A struct __sk_buff for ctx_in, by field name."""
    offs = {"len": 0, "mark": 8, "priority": 32, "ingress_ifindex": 36, "ifindex": 40,
            "tc_index": 44, "cb0": 48, "cb4": 64, "hash": 68, "wire_len": 160,
            "gso_segs": 164, "gso_size": 176}
    b = bytearray(192)
    for name, v in fields.items():
        if name in ("tstamp", "hwtstamp"):
            struct.pack_into("<Q", b, 152 if name == "tstamp" else 184, v)
        else:
            struct.pack_into("<I", b, offs[name], v)
    return bytes(b)


def same(prog: str, data: bytes | None = PKT, ctx_in: bytes | None = None, maps_in=None,
         repeat: int = 1, path: Path = BASIC) -> dict:
    """xsim's report, after checking it equals the kernel's where the kernel can run."""
    obj = xsim.load(path)
    if maps_in:
        apply_maps_in(obj, maps_in)
    p = obj.programs[prog]
    mine = report(obj, p, testrun.test_run(p, data_in=data, ctx_in=ctx_in, repeat=repeat))
    assert mine["error"] is None, mine["error"]
    k = kernel()
    if k is not None:
        theirs = k.kernel_test_run(load_spec(path), prog, data_in=data, ctx_in=ctx_in,
                                   maps_in=maps_in, repeat=repeat)
        for key in theirs:
            if key not in ("duration_ns", "insns"):
                assert theirs[key] == mine[key], (key, theirs[key], mine[key])
    return mine


def seen(r: dict) -> list[int]:
    out = []
    for e in r["maps"]["seen"]["entries"]:
        v = int.from_bytes(bytes.fromhex(e["value"]), "little")
        out.append(v - (1 << 64) if v >> 63 else v)
    return out


def test_fields_of_a_plain_run() -> None:
    r = same("fields")
    s = seen(r)
    assert r["retval"] == 0 and r["ctx_out"] is None and r["data_out"] == PKT.hex()
    assert s[0] == 54 and s[1] == 3                     # len: the whole frame; OTHERHOST
    assert s[4] == 8 and s[10] == 1                     # protocol (be16 0x0800); lo
    assert s[16] == 54 and s[17] == 0                   # data..data_end; no metadata
    assert s[20] == 0                                   # wire_len: 0 without ctx_in


def test_fields_from_ctx_in_and_ctx_out() -> None:
    c = ctx(mark=5, priority=6, cb0=7, cb4=11, tstamp=8, wire_len=100, gso_segs=2,
            gso_size=0x12345, hwtstamp=9, ingress_ifindex=1, ifindex=1)
    r = same("fields", ctx_in=c)
    s = seen(r)
    assert s[2] == 5 and s[8] == 6 and s[12] == 7 and s[13] == 11
    assert s[19:24] == [8, 100, 2, 0x2345, 9]           # gso_size is 16 bits in the skb
    assert bytes.fromhex(r["ctx_out"]) == c             # the same fields come back


def test_a_short_ctx_in_is_zero_filled() -> None:
    r = same("fields", ctx_in=bytes(20))
    out = bytes.fromhex(r["ctx_out"])
    assert len(out) == 192 and out[40] == 1 and out[160] == 54   # ifindex, wire_len = len


def test_writes_and_what_ctx_out_returns() -> None:
    r = same("writes", ctx_in=ctx(mark=1))
    assert r["retval"] == 2
    assert seen(r)[:4] == [0x1234, 2, 3, 99]            # tc_classid is 16 bits
    out = bytes.fromhex(r["ctx_out"])
    assert out[8:12] == struct.pack("<I", 0x1234) and out[72:76] == bytes(4)


@pytest.mark.parametrize("prog", ["narrow_reads", "classid_halves", "cb_wide", "narrow_fields"])
def test_narrow_loads(prog: str) -> None:
    same(prog, path=REFUSED)


@pytest.mark.parametrize("data, ok", [
    (PKT[:13], False), (PKT[:14], False), (PKT[:33], False), (PKT[:34], True),
    (PKT[:12] + b"\x86\xdd" + bytes(39), False), (PKT[:12] + b"\x86\xdd" + bytes(40), True),
    (PKT[:12] + b"\x12\x34", True), (b"\x01" + PKT[1:], True), (bytes(6) + PKT[6:], True),
], ids=["13", "ipv4-14", "ipv4-33", "ipv4-34", "ipv6-53", "ipv6-54", "other-14", "multicast",
        "to-host"])
def test_data_in_lengths_and_pkt_type(data: bytes, ok: bool) -> None:
    if ok:
        r = same("fields", data=data)
        assert seen(r)[0] == len(data)
        return
    with pytest.raises(TestRunRefused) as info:
        same("fields", data=data)
    assert info.value.errno_name == "EINVAL"


@pytest.mark.parametrize("c, errno_name", [
    (ctx(len=5), "EINVAL"), (ctx(tc_index=1), "EINVAL"), (ctx(hash=1), "EINVAL"),
    (ctx(wire_len=10), "EINVAL"), (ctx(wire_len=65537), "EINVAL"),
    (ctx(gso_segs=65536), "EINVAL"), (ctx(ifindex=99), "ENODEV"),
    (bytes(192) + b"\1", "E2BIG"),
], ids=["len", "tc_index", "hash", "wire_len-low", "wire_len-high", "gso_segs", "ifindex",
        "past-the-end"])
def test_ctx_in_refusals(c: bytes, errno_name: str) -> None:
    obj = xsim.load(BASIC)
    with pytest.raises(TestRunRefused) as info:
        testrun.test_run(obj.programs["fields"], data_in=PKT, ctx_in=c)
    assert info.value.errno_name == errno_name
    k = kernel()
    if k is not None:
        with pytest.raises(TestRunRefused) as theirs:
            k.kernel_test_run(load_spec(BASIC), "fields", data_in=PKT, ctx_in=c)
        assert theirs.value.errno_name == errno_name


@pytest.mark.parametrize("c", [ctx(wire_len=65536), ctx(gso_segs=65535), ctx(ingress_ifindex=99),
                               bytes(200)], ids=["wire_len", "gso_segs", "ingress", "long"])
def test_ctx_in_accepted_at_the_limits(c: bytes) -> None:
    same("fields", ctx_in=c)


def test_direct_access_and_ld_abs() -> None:
    r = same("headers")
    assert r["retval"] == 54 and seen(r)[:4] == [8, 0x0800, 0x45, 0xC0A80001]


def test_ld_abs_out_of_bounds_ends_the_program_with_0() -> None:
    r = same("ld_abs_oob")
    assert r["retval"] == 0 and seen(r)[:2] == [1, 0]


def test_load_and_store_bytes() -> None:
    r = same("load_store")
    assert seen(r)[:7] == [0, 0, -14, -22, 0, 0, -14]
    out = bytes.fromhex(r["data_out"])
    assert out[:6] == PKT[6:12] and out[30:34] == struct.pack("<I", 0xDEADBEEF)


def test_checksum_replace() -> None:
    r = same("csums")
    assert seen(r)[:9] == [0, 0, 0, 0, -22, -22, -14, 0, 0]
    out = bytes.fromhex(r["data_out"])
    assert out[26:30] == bytes.fromhex("0a000001") and out[24:26] != PKT[24:26]


def test_checksum_replace_edges() -> None:
    r = same("csum_edges")
    assert seen(r)[:8] == [-14, -14, 0, -14, -22, 0, -22, -22]   # odd offsets: EFAULT
    assert bytes.fromhex(r["data_out"])[40:42] == b"\xff\xff"     # CSUM_MANGLED_0


def test_hash_and_pull_data() -> None:
    r = same("hashes")
    assert seen(r)[:7] == [0, 0, 0x55AA, 0x55AA, 0, -12, 54]


@pytest.mark.parametrize("mode, retval", [(0, 7), (1, 7), (2, 2), (3, 0xFFFFFFFF)])
def test_redirect(mode: int, retval: int) -> None:
    maps_in = [{"map": "seen", "key": "00000000", "value": struct.pack("<Q", mode).hex()}]
    assert same("redirects", maps_in=maps_in)["retval"] == retval


def test_sched_act() -> None:
    r = same("act")
    assert r["retval"] == 3 and seen(r)[:2] == [54, 8]


def test_repeat_runs_on_the_same_skb() -> None:
    same("csums", repeat=3)
    same("writes", ctx_in=ctx(mark=1), repeat=2)


@pytest.mark.parametrize("prog, message", [
    ("write_len", "off=0 size=4"), ("narrow_write", "off=8 size=2"),
    ("read_family", "off=88 size=4"), ("wide_read", "off=8 size=8"),
    ("narrow_data", "off=76 size=2"), ("cb_overrun", "off=64 size=8"),
    ("short_tstamp", "off=152 size=4"), ("write_hwtstamp", "off=184 size=8"),
    ("read_padding", "off=181 size=1"), ("past_the_end", "off=192 size=4"),
    ("write_hash", "off=68 size=4"),
])
def test_the_verifiers_refusals(prog: str, message: str) -> None:
    refused(prog, f"invalid bpf_context access {message}")


def test_atomics_on_the_context_are_refused() -> None:
    refused("atomic_add", "BPF_ATOMIC stores into R1 ctx is not allowed")


def test_a_store_of_an_immediate_into_the_context() -> None:
    r = same("store_imm", ctx_in=ctx(), path=REFUSED)
    assert bytes.fromhex(r["ctx_out"])[8] == 5


def refused(prog: str, message: str) -> None:
    spec = load_spec(REFUSED)
    one = type(spec)(spec.path, tuple(p for p in spec.programs if p.name == prog), spec.maps,
                     spec.license)
    with pytest.raises(VerifierError, match=message):
        testrun.test_run(Object(one).programs[prog], data_in=PKT)
    k = kernel()
    if k is not None:
        with pytest.raises(k.KernelError) as info:
            k.KernelObject.load(spec, prog=prog)
        assert message in info.value.log


RESIZE = DATA / "tc_resize.o"
VLAN_PKT = PKT[:12] + bytes.fromhex("81000789") + PKT[12:]


def arg(v: int) -> list[dict]:
    return [{"map": "seen", "key": "00000000", "value": struct.pack("<Q", v).hex()}]


@pytest.mark.parametrize("new_len, ret", [(13, -22), (14, 0), (30, 0), (200, 0),
                                          (16064, 0), (16065, -22)])
def test_change_tail(new_len: int, ret: int) -> None:
    r = same("change_tail", maps_in=arg(new_len), path=RESIZE)
    length = new_len if ret == 0 else len(PKT)
    assert seen(r)[1:4] == [ret, length, length]
    out = bytes.fromhex(r["data_out"])
    assert out == (PKT + bytes(max(0, length - len(PKT))))[:length]


def test_change_tail_refuses_flags() -> None:
    assert seen(same("change_tail_flags", path=RESIZE))[1] == -22


@pytest.mark.parametrize("room, ret", [(0, 0), (4, 0), (100, 0), (16010, 0), (16011, -22)])
def test_change_head(room: int, ret: int) -> None:
    r = same("change_head", maps_in=arg(room), path=RESIZE)
    length = len(PKT) + (room if ret == 0 else 0)
    assert seen(r)[1:4] == [ret, length, -22]
    out = bytes.fromhex(r["data_out"])
    if ret == 0 and room >= 4:
        assert out == struct.pack("<I", 0x11223344) + bytes(room - 4) + PKT


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("data", [PKT, VLAN_PKT], ids=["untagged", "tagged"])
def test_vlan_push_and_pop(mode: int, data: bytes) -> None:
    r = same("vlans", data=data, maps_in=arg(mode), path=RESIZE)
    assert seen(r)[1:4] == [0, 1, 0x123]
    if mode == 1:                  # the first tag moved into the frame
        assert bytes.fromhex(r["data_out"])[12:16] == bytes.fromhex("81000123")


def test_resizing_repeats_on_the_same_skb() -> None:
    r = same("change_head", maps_in=arg(4), repeat=3, path=RESIZE)
    assert r["data_out_len"] == len(PKT) + 12
    same("vlans", maps_in=arg(1), repeat=2, path=RESIZE)


def room_args(diff: int, mode: int, flags: int) -> list[dict]:
    return [{"map": "seen", "key": struct.pack("<I", i + 1).hex(),
             "value": struct.pack("<Q", v & (2**64 - 1)).hex()}
            for i, v in enumerate((diff, mode, flags))]


V6_PKT = PKT[:12] + b"\x86\xdd" + bytes(range(60))


@pytest.mark.parametrize("diff, mode, flags, ret", [
    (8, 0, 0, 0), (8, 1, 0, 0), (-8, 0, 0, 0), (-8, 1, 0, 0),
    (-20, 0, 0, 0), (-21, 0, 0, -524), (-20, 1, 0, 0), (-21, 1, 0, -524),
    (0x1000, 0, 0, -14), (0xFFF, 0, 0, 0), (8, 2, 0, -524), (8, 0, 1 << 9, -22),
    (8, 0, 32, 0), (20, 1, 2, 0), (40, 1, 4, 0), (40, 1, 6, -22), (20, 1, 2 | 8 | 16, -22),
    (34, 1, 2 | 64 | 14 << 56, 0), (34, 1, 2 | 64 | 12 << 56, -22), (20, 1, 2 | 30 << 56, -22),
    (-20, 1, 128, 0), (-20, 1, 256, -524), (20, 1, 128, -22), (-20, 1, 384, -22), (-8, 0, 2, -22),
])
def test_adjust_room(diff: int, mode: int, flags: int, ret: int) -> None:
    r = same("adjust_room", maps_in=room_args(diff, mode, flags), path=RESIZE)
    assert seen(r)[4] == ret
    out = bytes.fromhex(r["data_out"])
    if ret == 0:
        off = 14 + (20 if mode == 0 else 0)
        assert len(out) == len(PKT) + diff and out[:off] == PKT[:off]


@pytest.mark.parametrize("diff, mode, flags", [(8, 0, 0), (-20, 1, 0), (20, 1, 2), (-20, 1, 128),
                                              (-40, 0, 0)])
def test_adjust_room_ipv6(diff: int, mode: int, flags: int) -> None:
    same("adjust_room", data=V6_PKT, maps_in=room_args(diff, mode, flags), path=RESIZE)


def test_adjust_room_needs_ip() -> None:
    r = same("adjust_room", data=PKT[:12] + b"\x12\x34" + bytes(40),
             maps_in=room_args(8, 0, 0), path=RESIZE)
    assert seen(r)[4] == -524


def test_load_bytes_relative() -> None:
    r = same("relative")
    assert seen(r)[:7] == [0, 2, 0, 0x0100A8C0, -14, -14, 0]


def test_the_layout_is_the_kernels() -> None:
    """xsim's __sk_buff table against the running kernel's BTF."""
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("no kernel BTF to compare with")
    from xsim.elf.btf import Kind, parse_btf
    from xsim.nic import skb
    btf = parse_btf(vmlinux.read_bytes())
    st = btf.by_name("__sk_buff", Kind.STRUCT)
    theirs = {}
    for m in st.members:        # __bpf_md_ptr members sit in anonymous unions
        inner = btf.type(m.type)
        names = [n.name for n in inner.members] if not m.name else [m.name]
        theirs.update({n: m.byte_offset for n in names})
    assert st.size == skb.SKB_SIZE
    assert {name: theirs[name] for name in skb.LAYOUT} == skb.LAYOUT


def test_the_jit_tier_gives_the_interpreters_results() -> None:
    """A TC program (skb helpers changing the frame) and a socket filter (LD_ABS/LD_IND
    from the network and MAC headers) give on tier="jit" what they give on the
    interpreter: retval, data_out, ctx_out, and what they saw of the skb."""
    for path, prog, ctx_in in ((BASIC, "load_store", ctx(mark=1, cb0=5)),
                               (DATA / "sock_basic.o", "fields", ctx(mark=3, priority=4, cb0=5))):
        out = {}
        for tier in ("interp", "jit"):
            obj = xsim.load(path)
            p = obj.programs[prog]
            r = testrun.test_run(p, data_in=PKT, ctx_in=ctx_in, tier=tier)
            assert r.result.error is None, (prog, tier, r.result.error)
            out[tier] = (r.retval, r.data_out, r.ctx_out, seen(report(obj, p, r)))
        assert out["jit"] == out["interp"], prog
        assert out["interp"][2] is not None, prog


@pytest.mark.parametrize("prog", ["change_tail", "change_tail_flags", "change_head", "vlans",
                                  "adjust_room"])
def test_frame_resizing_helpers_on_the_jit_tier(prog: str) -> None:
    """Helpers that grow the packet region (the address space relays out under the
    native code) give what the interpreter gives."""
    out = {}
    for tier in ("interp", "jit"):
        obj = xsim.load(DATA / "tc_resize.o")
        p = obj.programs[prog]
        r = testrun.test_run(p, data_in=PKT + bytes(200), tier=tier, repeat=2)
        out[tier] = (r.retval, r.data_out, r.ctx_out, str(r.result.error),
                     {n: m.items() for n, m in obj.maps.items()})
    assert out["jit"] == out["interp"]
