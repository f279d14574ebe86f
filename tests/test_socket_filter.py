"""Socket filters: __sk_buff from the network header, LD_ABS/LD_IND with the SKF_NET_OFF /
SKF_LL_OFF offsets, and the test run's output, compared with the running kernel where
bpf() works."""
from __future__ import annotations

from pathlib import Path

import pytest

from xsim.elf.loader import load_spec
from xsim.runtime import testrun
from xsim.runtime.hooks import VerifierError
from xsim.runtime.object import Object

from test_tc import PKT, ctx, kernel, seen
from test_tc import same as _same

DATA = Path(__file__).parent / "data" / "nic"
BASIC = DATA / "sock_basic.o"
REFUSED = DATA / "sock_refused.o"


def same(prog: str, **kw) -> dict:
    return _same(prog, path=BASIC, **kw)


def test_the_packet_starts_at_the_network_header() -> None:
    r = same("fields")
    s = seen(r)
    assert r["retval"] == 40 == s[0]                    # len: the frame less 14
    assert s[1:5] == [8, 3, 0, 1]                       # protocol, OTHERHOST, mark, lo
    assert s[6:10] == [0x45, 40, 0xC0A80001, PKT[-1]]   # LD_ABS at 0, NET_OFF, LL_OFF, LD_IND
    out = bytes.fromhex(r["data_out"])
    assert out == bytes(14) + PKT[14:]                  # the MAC header comes back zeroed


def test_ctx_in_fields() -> None:
    r = same("fields", ctx_in=ctx(mark=3, priority=4, cb0=5))
    assert seen(r)[3] == 3 and seen(r)[5] == 5 and seen(r)[10] == 4


def test_out_of_bounds_loads_end_the_program_with_0() -> None:
    r = same("out_of_bounds")
    assert r["retval"] == 0 and seen(r)[:2] == [1, 0]
    assert same("far_negative")["retval"] == 0


def test_load_bytes() -> None:
    r = same("load_bytes")
    assert r["retval"] == 0xFFFF
    assert seen(r)[:4] == [0, 0x0100A8C0, -14, 0]       # failure zeroes the buffer


def test_cb_writes_come_back_in_ctx_out() -> None:
    r = same("writes_cb", ctx_in=bytes(192))
    out = bytes.fromhex(r["ctx_out"])
    assert out[48] == 0x77 and out[64] == 40 and r["retval"] == 20


@pytest.mark.parametrize("prog, message", [
    ("read_data", "off=76 size=4"), ("write_mark", "off=8 size=4"),
    ("read_classid", "off=72 size=4"), ("read_tstamp", "off=152 size=8"),
    ("read_wire_len", "off=160 size=4"),
])
def test_the_verifiers_refusals(prog: str, message: str) -> None:
    spec = load_spec(REFUSED)
    one = type(spec)(spec.path, tuple(p for p in spec.programs if p.name == prog), spec.maps,
                     spec.license)
    with pytest.raises(VerifierError, match=f"invalid bpf_context access {message}"):
        testrun.test_run(Object(one).programs[prog], data_in=PKT)
    k = kernel()
    if k is not None:
        with pytest.raises(k.KernelError) as info:
            k.KernelObject.load(spec, prog=prog)
        assert f"invalid bpf_context access {message}" in info.value.log


@pytest.mark.parametrize("body, expected", [
    ("ldabsh -2097140", 0x0800),                     # SKF_LL_OFF + 12: the ethertype
    ("ldabsb -1048567", 17),                         # SKF_NET_OFF + 9: the IP protocol
    ("mov %r7, -2097152\nldindh %r7, 12", 0x0800),   # LD_IND into the MAC header
    ("mov %r7, -1048576\nldindb %r7, 9", 17),        # LD_IND from the network header
    ("ldabsb -3145728", 0),                          # below SKF_LL_OFF: the program ends, 0
])
def test_negative_packet_offsets(body: str, expected: int) -> None:
    """LD_ABS/LD_IND relative to the MAC and network headers, as the kernel places them."""
    from xsim.elf.kinds import ProgType
    from xsim.elf.spec import ObjectSpec, ProgramSpec
    from xsim.isa.asm import assemble
    from xsim.runtime.object import Object
    code = assemble(f"mov %r6, %r1\n{body}\nexit", syntax="ubpf")
    spec = ObjectSpec("raw.o", (ProgramSpec("neg", "socket", ProgType.SOCKET_FILTER, code),), ())
    frame = bytes(12) + b"\x08\x00" + bytes.fromhex("4500001c0000400040110000c0a80001c0a80002") \
        + bytes(8)
    assert testrun.test_run(Object(spec).programs["neg"], data_in=frame).retval == expected
    kernel = pytest.importorskip("xsim.kernel")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    assert kernel.kernel_test_run(spec, "neg", data_in=frame)["retval"] == expected


def test_load_bytes_relative_reaches_the_mac_header() -> None:
    r = same("relative")
    assert seen(r)[:7] == [0, 2, 0, 0x0100A8C0, -14, -14, 0]
