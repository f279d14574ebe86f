"""XDP: the context as the kernel rewrites it, the adjust and redirect helpers, and
BPF_PROG_TEST_RUN's rules, each compared with the running kernel where bpf() works."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from conftest import kernel_or_skip
from xsim.elf.loader import load_spec
from xsim.isa import interp as ip
from xsim.runtime.hooks import VerifierError
from xsim.runtime import testrun
from xsim.runtime.testrun import TestRunRefused, apply_maps_in, report

DATA = Path(__file__).parent / "data" / "nic"
BASIC = DATA / "xdp_basic.o"
REFUSED = DATA / "xdp_refused.o"
PKT = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(range(50))
MD = struct.Struct("<6I")


kernel = kernel_or_skip


def sim(prog: str, data: bytes | None = PKT, ctx: bytes | None = None, maps_in=None,
        repeat: int = 1) -> dict:
    obj = xsim.load(BASIC)
    if maps_in:
        apply_maps_in(obj, maps_in)
    p = obj.programs[prog]
    return report(obj, p, testrun.test_run(p, data_in=data, ctx_in=ctx, repeat=repeat))


def same(prog: str, data: bytes | None = PKT, ctx: bytes | None = None, maps_in=None,
         repeat: int = 1) -> dict:
    """xsim's report, after checking it equals the kernel's (where the kernel can run)."""
    mine = sim(prog, data, ctx, maps_in, repeat)
    k = kernel()
    theirs = k.kernel_test_run(load_spec(BASIC), prog, data_in=data, ctx_in=ctx,
                               maps_in=maps_in, repeat=repeat)
    for key in theirs:
        if key not in ("duration_ns", "insns"):
            assert theirs[key] == mine[key], (key, theirs[key], mine[key])
    return mine


def seen(report_: dict) -> list[int]:
    out = []
    for e in report_["maps"]["seen"]["entries"]:
        v = int.from_bytes(bytes.fromhex(e["value"]), "little")
        out.append(v - (1 << 64) if v >> 63 else v)
    return out


def test_context_fields_and_verdict() -> None:
    r = same("lengths")
    assert r["retval"] == 2                                  # XDP_PASS: an IPv4 frame
    assert seen(r)[:5] == [64, 0, 1, 0, 64]                  # len, metadata, lo, queue 0
    assert r["data_out"] == PKT.hex() and r["ctx_out"] is None


def test_metadata_and_linear_length_from_ctx_in() -> None:
    r = same("lengths", ctx=MD.pack(8, 40, 0, 0, 0, 0))
    assert seen(r)[:5] == [32, 8, 1, 0, 56]                  # 8 bytes of metadata, 32 linear
    assert MD.unpack(bytes.fromhex(r["ctx_out"]))[:2] == (8, 40)


def test_metadata_may_take_the_headroom_down_to_an_xdp_frame() -> None:
    r = same("lengths", data=PKT * 4, ctx=MD.pack(216, 256, 0, 0, 0, 0))
    assert seen(r)[:2] == [40, 216]


def test_an_all_zero_ctx_means_no_linear_data() -> None:
    r = same("lengths", ctx=bytes(24))
    assert r["retval"] == 0 and seen(r)[0] == 0


def test_big_frames_are_split_into_linear_and_fragments() -> None:
    r = same("lengths", data=PKT * 70)                       # 4480 bytes
    assert seen(r)[0] == 3520 and seen(r)[4] == 4480
    assert r["data_out_len"] == 4480


def test_adjust_head_tail_meta() -> None:
    r = same("encap")
    assert r["retval"] == 3                                  # XDP_TX
    assert seen(r)[:4] == [0, 0, -22, 0]                     # the -300 adjust_head: -EINVAL
    out = bytes.fromhex(r["data_out"])
    assert out[:4] == struct.pack("<I", 0xABCD)              # metadata, in front of the data
    assert out[4 + 12:4 + 20] == struct.pack("<Q", 0x1122334455667788)
    assert out.endswith(bytes(4)) and len(out) == 4 + 8 + 64 + 4


def test_shrinking_the_tail() -> None:
    r = same("shrink")
    assert seen(r)[:2] == [0, -22] and r["data_out_len"] == 54


def test_load_and_store_bytes() -> None:
    r = same("bytes")
    assert seen(r)[:3] == [0, 0, -14]
    assert bytes.fromhex(r["data_out"])[:6] == PKT[6:12]


@pytest.mark.parametrize("mode, retval", [(0, 2), (1, 4), (2, 4), (3, 0), (4, 7)])
def test_redirects(mode: int, retval: int) -> None:
    maps_in = [{"map": "seen", "key": "00000000", "value": struct.pack("<Q", mode).hex()},
               {"map": "ports", "key": "02000000", "value": "01000000"}]
    assert same("redirects", maps_in=maps_in)["retval"] == retval


def test_devmap_lookups() -> None:
    """The interpreter's core answers them: the slot's ifindex, NULL for an empty slot
    and for one past the end, as the kernel's devmap does."""
    maps_in = [{"map": "ports", "key": "02000000", "value": "01000000"}]
    r = same("port_lookups", maps_in=maps_in)
    assert seen(r)[:5] == [-1, -1, 1, -1, -1]
    obj = xsim.load(BASIC)
    apply_maps_in(obj, maps_in)
    res = testrun.test_run(obj.programs["port_lookups"], data_in=PKT)
    assert res.result.helper_calls[1] == 5 and obj.programs["port_lookups"].hooked()._st[
        ip.S_FAST_LOOKUPS] == 5


def test_repeat_runs_on_the_same_buffer() -> None:
    r = same("shrink", repeat=3)
    assert r["data_out_len"] == 64 - 30


@pytest.mark.parametrize("data, ctx, errno_name", [
    (PKT[:13], None, "EINVAL"),                                      # shorter than Ethernet
    (PKT, MD.pack(0, 64, 4, 0, 0, 0), "EINVAL"),                     # data_meta set
    (PKT, MD.pack(6, 64, 0, 0, 0, 0), "EINVAL"),                     # metadata not /4
    (PKT * 4, MD.pack(220, 256, 0, 0, 0, 0), "EINVAL"),              # more than 216
    (PKT, MD.pack(0, 65, 0, 0, 0, 0), "EINVAL"),                     # data_end past the data
    (PKT, MD.pack(0, 64, 0, 0, 0, 3), "EINVAL"),                     # egress_ifindex
    (PKT, MD.pack(0, 64, 0, 0, 1, 0), "EINVAL"),                     # a queue, no device
    (PKT, MD.pack(0, 64, 0, 9999, 0, 0), "ENODEV"),                  # no such device
    (PKT, MD.pack(0, 64, 0, 0, 0, 0) + b"\x01", "E2BIG"),            # bytes past xdp_md
])
def test_refused_inputs(data: bytes, ctx: bytes | None, errno_name: str) -> None:
    obj = xsim.load(BASIC)
    with pytest.raises(TestRunRefused) as info:
        testrun.test_run(obj.programs["lengths"], data_in=data, ctx_in=ctx)
    assert info.value.errno_name == errno_name
    k = kernel()
    with pytest.raises(TestRunRefused) as theirs:
        k.kernel_test_run(load_spec(BASIC), "lengths", data_in=data, ctx_in=ctx)
    assert errno_name in str(theirs.value)


@pytest.mark.parametrize("prog, message", [
    ("writes_ctx", "invalid bpf_context access off=16 size=4"),
    ("narrow_load", "invalid bpf_context access off=12 size=2"),
    ("past_the_end", "invalid bpf_context access off=24 size=4"),
    ("egress_outside_devmap", "invalid bpf_context access off=20 size=4"),
])
def test_the_verifiers_refusals(prog: str, message: str) -> None:
    spec = load_spec(REFUSED)
    one = type(spec)(spec.path, tuple(p for p in spec.programs if p.name == prog), spec.maps,
                     spec.license)
    from xsim.runtime.object import Object
    obj = Object(one)                         # raw-memory runs need no context rewriting
    with pytest.raises(VerifierError, match=message):
        testrun.test_run(obj.programs[prog], data_in=PKT)
    k = kernel()
    with pytest.raises(k.KernelError) as info:
        k.KernelObject.load(spec, prog=prog)
    assert message.split(" size")[0] in info.value.log


def test_egress_ifindex_in_a_devmap_program() -> None:
    spec = load_spec(REFUSED)
    one = type(spec)(spec.path, tuple(p for p in spec.programs if p.name == "egress_in_devmap"),
                     spec.maps, spec.license)
    from xsim.runtime.object import Object
    obj = Object(one)
    assert testrun.test_run(obj.programs["egress_in_devmap"], data_in=PKT).retval == 2


def test_each_program_type_gets_its_own_helpers() -> None:
    """bpf_redirect with a bad flag: XDP_ABORTED (0) in XDP, TC_ACT_SHOT (2) in TC."""
    obj = xsim.load(DATA / "mixed.o")
    frame = PKT + bytes(40)
    assert testrun.test_run(obj.programs["xdp_redirect_flagged"], data_in=frame).retval == 0
    assert testrun.test_run(obj.programs["tc_redirect_flagged"], data_in=frame).retval == 2
    k = kernel()
    spec = load_spec(DATA / "mixed.o")
    for prog, want in (("xdp_redirect_flagged", 0), ("tc_redirect_flagged", 2)):
        assert k.kernel_test_run(spec, prog, data_in=frame)["retval"] == want


@pytest.mark.parametrize("delta", [100, 4000, -10, -904, -905, -2000, -4460, -4467])
def test_adjust_tail_of_a_multi_buffer_frame(delta: int) -> None:
    """A 4424-byte frame: 3520 linear bytes and one 904-byte fragment."""
    maps_in = [{"map": "seen", "key": "01000000",
                "value": struct.pack("<q", delta).hex()}]
    r = same("frags_tail", data=PKT * 69 + PKT[:8], maps_in=maps_in)
    assert r["retval"] == 2


def test_clone_redirect() -> None:
    obj = xsim.load(DATA / "mixed.o")
    frame = PKT + bytes(40)
    out = testrun.test_run(obj.programs["tc_clone"], data_in=frame)
    assert out.retval == 11 and out.clones == [(1, frame)]
    k = kernel()
    assert k.kernel_test_run(load_spec(DATA / "mixed.o"), "tc_clone",
                             data_in=frame)["retval"] == 11


TAIL = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
int second(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2);
         __uint(key_size, 4); __array(values, int (struct xdp_md *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&second },
};
SEC("xdp") int first(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_ABORTED;
}
/* reads the packet through the context: only right if the tail call's target is rewritten */
SEC("xdp") int second(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 15 > end)
        return XDP_DROP;
    data[0] = data[14] + 1;
    return XDP_TX;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_a_tail_call_goes_on_in_the_hooked_target(tmp_path: Path) -> None:
    from xsim.cc import compile_c
    src = tmp_path / "tail.c"
    src.write_text(TAIL)
    compile_c(src, tmp_path / "tail.o")
    obj = xsim.load(tmp_path / "tail.o")
    mine = report(obj, obj.programs["first"], testrun.test_run(obj.programs["first"],
                                                               data_in=PKT))
    assert mine["retval"] == 3 and bytes.fromhex(mine["data_out"])[0] == PKT[14] + 1
    k = kernel()
    theirs = k.kernel_test_run(load_spec(tmp_path / "tail.o"), "first", data_in=PKT)
    assert (theirs["retval"], theirs["data_out"]) == (mine["retval"], mine["data_out"])


TAIL_REDIRECT = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
int out(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1);
         __uint(key_size, 4); __array(values, int (struct xdp_md *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&out },
};
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4);
         __uint(key_size, 4); __uint(value_size, 4); } ports SEC(".maps");
SEC("xdp") int in(struct xdp_md *ctx)
{
    bpf_redirect(7, 0);                  /* overridden by the target's */
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_ABORTED;
}
SEC("xdp") int out(struct xdp_md *ctx)
{
    return bpf_redirect_map(&ports, 2, XDP_DROP);
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_a_tail_call_targets_redirect_is_the_runs(tmp_path: Path, tier: str) -> None:
    """The words of a redirect go along a tail call and back: the run's last call says
    where the packet goes, whichever program made it."""
    from xsim.cc import compile_c
    src = tmp_path / "tail.c"
    src.write_text(TAIL_REDIRECT)
    compile_c(src, tmp_path / "tail.o")
    obj = xsim.load(tmp_path / "tail.o")
    out = testrun.test_run(obj.programs["in"], data_in=PKT, tier=tier)
    assert out.result.r0 == 1 and out.redirect is None           # slot 2 empty: XDP_DROP
    obj.maps["ports"].update(2, (3).to_bytes(4, "little"))
    out = testrun.test_run(obj.programs["in"], data_in=PKT, tier=tier)
    assert out.result.r0 == 4 and out.redirect == ("ports", 2)
