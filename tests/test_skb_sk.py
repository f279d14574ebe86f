"""skb->sk (the socket BPF_PROG_TEST_RUN gives the skb) and the flow hash of
bpf_get_hash_recalc, for TC and socket filters, compared with the running kernel where
bpf() works (the xsim side is checked everywhere)."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from xsim.elf.kinds import ProgType
from xsim.elf.loader import load_spec
from xsim.elf.spec import ObjectSpec, ProgramSpec
from xsim.isa.asm import assemble
from xsim.nic import flow, sock
from xsim.runtime import testrun
from xsim.runtime.env import RunEnv
from xsim.runtime.hooks import VerifierError
from xsim.runtime.object import Object

from test_tc import PKT, kernel, same, seen

SK = Path(__file__).parent / "data" / "nic" / "tc_sk.o"
BASIC = Path(__file__).parent / "data" / "nic" / "tc_basic.o"


# -- frames -------------------------------------------------------------------------------

def eth(proto: int, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    b = bytes.fromhex("020000000002" "020000000001")
    for tpid, tci in tags:
        b += struct.pack(">HH", tpid, tci)
    return b + struct.pack(">H", proto)


def ip4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1, ttl: int = 64,
        frag: int = 0, ihl: int = 5) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), ident, frag,
                       ttl, proto, 0, src, dst) + bytes(4 * (ihl - 5)) + payload


def ip6(src: bytes, dst: bytes, nexthdr: int, payload: bytes, label: int = 0,
        hop_limit: int = 64) -> bytes:
    return struct.pack(">IHBB16s16s", 0x60000000 | label, len(payload), nexthdr, hop_limit,
                       src, dst) + payload


def l4(sport: int, dport: int, payload: bytes = bytes(range(12))) -> bytes:
    return struct.pack(">HHI", sport, dport, 0) + payload


A, B, C = bytes([192, 168, 0, 1]), bytes([192, 168, 0, 2]), bytes([10, 0, 0, 9])
A6, B6 = bytes(range(1, 17)), bytes(range(0x21, 0x31))
TCP, UDP, SCTP, ICMP, IPIP, GRE = 6, 17, 132, 1, 4, 47


def udp4(src: bytes = A, dst: bytes = B, sport: int = 1000, dport: int = 53, proto: int = UDP,
         tags: tuple = (), payload: bytes = bytes(range(12)), **ip) -> bytes:
    return eth(0x0800, tags) + ip4(src, dst, proto, l4(sport, dport, payload), **ip)


def udp6(src: bytes = A6, dst: bytes = B6, sport: int = 1000, dport: int = 53,
         payload: bytes = bytes(12), **ip) -> bytes:
    return eth(0x86DD) + ip6(src, dst, UDP, l4(sport, dport, payload), **ip)


V6_PKT = udp6()
ARP = bytes.fromhex("ffffffffffff" "020000000001" "0806") + bytes(28)
VLAN_PKT = PKT[:12] + bytes.fromhex("81000789") + PKT[12:]
LLC = eth(0x0040) + bytes(range(40))


def be32(b: bytes) -> int:
    return int.from_bytes(b, "little")      # a __be32 as a u32 load reads it


# -- skb->sk ------------------------------------------------------------------------------

def test_sk_fields_ipv4() -> None:
    s = seen(same("sk_fields", path=SK))
    assert s[0] == 1 and s[1] == 0 and s[2] == 2                # a socket; AF_INET
    assert s[3] == be32(PKT[26:30]) and s[10] == be32(PKT[30:34])   # rcv_saddr, daddr
    assert s[4:8] == [0] * 4 and s[11:15] == [0] * 4            # no IPv6 addresses
    assert s[8] == s[9] == 0 and s[15] == sock.TCP_CLOSE and s[16] == -1
    assert s[17:21] == [2, 2, PKT[27], int.from_bytes(PKT[28:30], "little")]
    assert s[31:35] == [7, 0xFFFF, 0xFFFFFFFF, 0]               # the u32 load: no sign
    assert s[40] == 1 and s[41:45] == [0, 0, 0, 0] and s[47:50] == [2, s[10], 1]
    assert s[50] == s[51] == 0                                  # not TCP, not listening


def test_sk_fields_ipv6() -> None:
    s = seen(same("sk_fields", data=V6_PKT, path=SK))
    assert s[2] == 10 and s[3] == 0 and s[10] == 0              # AF_INET6
    assert s[4:8] == [be32(A6[i:i + 4]) for i in range(0, 16, 4)]
    assert s[11:15] == [be32(B6[i:i + 4]) for i in range(0, 16, 4)]
    assert s[21] == A6[3] and s[25] == B6[15] and s[26] == int.from_bytes(B6[0:2], "little")


@pytest.mark.parametrize("data", [ARP, VLAN_PKT, LLC], ids=["arp", "vlan", "llc"])
def test_sk_fields_without_ip(data: bytes) -> None:
    """Other ethertypes (a VLAN tag too: skb->protocol is 802.1Q) leave the socket as
    sk_alloc made it: AF_UNSPEC, no addresses."""
    s = seen(same("sk_fields", data=data, path=SK))
    assert s[0] == 1 and s[2] == 0 and s[3:15] == [0] * 12 and s[15] == sock.TCP_CLOSE


def test_sk_into_the_packet() -> None:
    out = bytes.fromhex(same("sk_into_packet", path=SK)["data_out"])
    assert out[:16] == struct.pack("<3I", 2, 7, be32(PKT[26:30])) + bytes(4)
    out = bytes.fromhex(same("sk_into_packet", data=V6_PKT, path=SK)["data_out"])
    assert out[:16] == struct.pack("<2I", 10, 7) + bytes(4) + B6[12:]


@pytest.mark.parametrize("data", [PKT, V6_PKT, ARP], ids=["ipv4", "ipv6", "arp"])
def test_socket_filters_read_sk(data: bytes) -> None:
    r = same("sock_sk_fields", data=data, path=SK)
    s = seen(r)
    assert r["retval"] == len(data) - 14 and s[0] == 1
    assert s[2] == {PKT: 2, V6_PKT: 10, ARP: 0}[data] and s[15] == sock.TCP_CLOSE


def test_repeat_keeps_the_socket() -> None:
    same("sk_fields", path=SK, repeat=3)


def test_sock_image_matches_the_layout() -> None:
    img = sock.sock_image(PKT)
    assert len(img) == sock.BPF_SOCK_SIZE
    assert img[sock.SOCK_SRC_IP4:sock.SOCK_SRC_IP4 + 4] == PKT[26:30]
    assert img[sock.SOCK_DST_IP4:sock.SOCK_DST_IP4 + 4] == PKT[30:34]
    img6 = sock.sock_image(V6_PKT)
    assert img6[sock.SOCK_SRC_IP6:sock.SOCK_SRC_IP6 + 16] == A6
    assert img6[sock.SOCK_DST_IP6:sock.SOCK_DST_IP6 + 16] == B6


def test_the_bpf_sock_layout_is_the_kernels() -> None:
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("no kernel BTF to compare with")
    from xsim.elf.btf import Kind, parse_btf
    btf = parse_btf(vmlinux.read_bytes())
    st = btf.by_name("bpf_sock", Kind.STRUCT)
    assert st.size == sock.BPF_SOCK_SIZE
    theirs = {m.name: m.byte_offset for m in st.members if m.name}
    assert {n: theirs[n] for n in sock.SOCK_LAYOUT} == sock.SOCK_LAYOUT


def test_llc_frames_get_eth_type_trans_protocols() -> None:
    """802.3 length fields: skb->protocol is ETH_P_802_2, or ETH_P_802_3 for raw IPX."""
    assert seen(same("fields", data=LLC, path=BASIC))[4] == 0x0400
    raw = eth(0x0040) + b"\xff\xff" + bytes(38)
    assert seen(same("fields", data=raw, path=BASIC))[4] == 0x0100


# -- what the verifier refuses ------------------------------------------------------------

def raw(code: str, prog_type: ProgType = ProgType.SCHED_CLS) -> ObjectSpec:
    section = "tc" if prog_type is ProgType.SCHED_CLS else "socket"
    insns = assemble(code, syntax="llvm")
    return ObjectSpec("raw.o", (ProgramSpec("p", section, prog_type, insns),), ())


SK_LOAD = "r2 = *(u64 *)(r1 + 168)\nr0 = 0\n"


def field(off: int, size: int, reg: str = "r2") -> str:
    width = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
    at = f"+ {off}" if off >= 0 else f"- {-off}"
    return (f"{reg} = *(u64 *)(r1 + 168)\nr0 = 0x1234\nif {reg} == 0 goto +1\n"
            f"r0 = *({width} *)({reg} {at})\nexit")


def via(helper: int, body: str) -> str:
    """``body`` with r0 the socket the helper returned for skb->sk, NULL-checked."""
    return (f"r6 = *(u64 *)(r1 + 168)\nr0 = 0x1234\nif r6 == 0 goto +5\nr1 = r6\n"
            f"call {helper}\nif r0 == 0 goto +2\n{body}\nexit\nr0 = 0xbeef\nexit")


REFUSED = {
    "no NULL check": ("r2 = *(u64 *)(r1 + 168)\nr0 = *(u32 *)(r2 + 4)\nexit",
                      "R2 invalid mem access 'sock_common_or_null'"),
    "NULL check on w2": (SK_LOAD + "if w2 == 0 goto +1\nr0 = *(u32 *)(r2 + 4)\nexit",
                         "R2 invalid mem access 'sock_common_or_null'"),
    "NULL check against r3": (SK_LOAD + "r3 = 0\nif r2 == r3 goto +1\nr0 = *(u32 *)(r2 + 4)\n"
                              "exit", "R2 invalid mem access 'sock_common_or_null'"),
    "not-5 check": (SK_LOAD + "if r2 == 5 goto +1\nr0 = *(u32 *)(r2 + 4)\nexit",
                    "R2 invalid mem access 'sock_common_or_null'"),
    "store before the check": (SK_LOAD + "*(u32 *)(r2 + 4) = 1\nexit",
                               "R2 invalid mem access 'sock_common_or_null'"),
    "write": (SK_LOAD + "if r2 == 0 goto +1\n*(u32 *)(r2 + 4) = r1\nexit",
              "R2 cannot write into sock_common"),
    "write imm": (SK_LOAD + "if r2 == 0 goto +1\n*(u32 *)(r2 + 4) = 1\nexit",
                  "R2 cannot write into sock_common"),
    "atomic": (SK_LOAD + "if r2 == 0 goto +2\nr3 = 1\nlock *(u32 *)(r2 + 4) += r3\nexit",
               "BPF_ATOMIC stores into R2 sock_common is not allowed"),
    "add before the check": (SK_LOAD + "r2 += 4\nexit",
                             "R2 pointer arithmetic on sock_common_or_null prohibited, "
                             "null-check it first"),
    "add": (SK_LOAD + "if r2 == 0 goto +1\nr2 += 4\nexit",
            "R2 pointer arithmetic on sock_common prohibited"),
    "and": (SK_LOAD + "if r2 == 0 goto +1\nr2 &= 4\nexit",
            "R2 pointer arithmetic on sock_common prohibited"),
    "sub": (SK_LOAD + "if r2 == 0 goto +1\nr2 -= 4\nexit",
            "R2 pointer arithmetic on sock_common prohibited"),
    "scalar plus pointer": (SK_LOAD + "if r2 == 0 goto +2\nr3 = 4\nr3 += r2\nexit",
                            "R3 pointer arithmetic on sock_common prohibited"),
    "pointer plus pointer": (SK_LOAD + "if r2 == 0 goto +2\nr3 = r2\nr3 += r2\nexit",
                             "R3 pointer += pointer prohibited"),
    "32-bit add": (SK_LOAD + "if r2 == 0 goto +1\nw2 += 4\nexit",
                   "R2 32-bit pointer arithmetic prohibited"),
    "32-bit source": (SK_LOAD + "if r2 == 0 goto +2\nw3 = 1\nw3 += w2\nexit",
                      "R3 32-bit pointer arithmetic prohibited"),
    "type through sock_common": (field(8, 4), "R2 invalid sock_common access off=8 size=4"),
    "priority through sock_common": (field(20, 4),
                                     "R2 invalid sock_common access off=20 size=4"),
    "padding after dst_port": (field(50, 2), "R2 invalid sock_common access off=50 size=2"),
    "a u64 load": (field(48, 8), "R2 invalid sock_common access off=48 size=8"),
    "bound_dev_if narrow": (field(0, 2), "R2 invalid sock_common access off=0 size=2"),
    "family's second byte": (field(5, 1), "R2 invalid sock_common access off=5 size=1"),
    "state's second byte": (field(73, 1), "R2 invalid sock_common access off=73 size=1"),
    "past the end": (field(80, 4), "R2 invalid sock_common access off=80 size=4"),
    "before the start": (field(-4, 4), "R2 invalid sock_common access off=-4 size=4"),
    "skb->sk as a u32": ("r2 = *(u32 *)(r1 + 168)\nr0 = 0\nexit",
                         "invalid bpf_context access off=168 size=4"),
    "skb->sk's upper half": ("r2 = *(u32 *)(r1 + 172)\nr0 = 0\nexit",
                             "invalid bpf_context access off=172 size=4"),
    "skb->sk written": ("*(u64 *)(r1 + 168) = r1\nr0 = 0\nexit",
                        "invalid bpf_context access off=168 size=8"),
    "fullsock before the check": ("r1 = *(u64 *)(r1 + 168)\ncall 95\nr0 = 0\nexit",
                                  "R1 type=sock_common_or_null expected=sock_common, sock, "
                                  "tcp_sock, xdp_sock"),
    "listener before the check": ("r1 = *(u64 *)(r1 + 168)\ncall 98\nr0 = 0\nexit",
                                  "R1 type=sock_common_or_null expected=sock_common, sock, "
                                  "tcp_sock, xdp_sock"),
    "fullsock unchecked": ("r1 = *(u64 *)(r1 + 168)\nif r1 == 0 goto +3\ncall 95\n"
                           "r0 = *(u32 *)(r0 + 8)\nexit\nr0 = 0\nexit",
                           "R0 invalid mem access 'sock_or_null'"),
    "fullsock write": (via(95, "*(u32 *)(r0 + 8) = 1"), "R0 cannot write into sock"),
    "fullsock past the end": (via(95, "r0 = *(u32 *)(r0 + 80)"),
                              "R0 invalid sock access off=80 size=4"),
    "fullsock narrow mark": (via(95, "r0 = *(u16 *)(r0 + 16)"),
                             "R0 invalid sock access off=16 size=2"),
    "fullsock arithmetic": (via(95, "r0 += 1"), "R0 pointer arithmetic on sock prohibited"),
    "tcp_sock narrow": (via(96, "r0 = *(u8 *)(r0 + 0)"),
                        "R0 invalid tcp_sock access off=0 size=1"),
    "tcp_sock u32 of a u64": (via(96, "r0 = *(u32 *)(r0 + 80)"),
                              "R0 invalid tcp_sock access off=80 size=4"),
    "tcp_sock past the end": (via(96, "r0 = *(u32 *)(r0 + 112)"),
                              "R0 invalid tcp_sock access off=112 size=4"),
    "tcp_sock write": (via(96, "*(u32 *)(r0 + 0) = 1"), "R0 cannot write into tcp_sock"),
    "subprogram reads type": ("r1 = *(u64 *)(r1 + 168)\nr0 = 0\nif r1 == 0 goto +1\n"
                              "call local f\nexit\nf:\nr0 = *(u32 *)(r1 + 8)\nexit",
                              "R1 invalid sock_common access off=8 size=4"),
}

ACCEPTED = {
    "NULL check with jne": SK_LOAD + "if r2 != 0 goto +1\nexit\nr0 = *(u32 *)(r2 + 4)\nexit",
    "a copy checked": ("r2 = *(u64 *)(r1 + 168)\nr3 = r2\nr0 = 0\nif r2 == 0 goto +1\n"
                       "r0 = *(u32 *)(r3 + 4)\nexit"),
    "a spill checked": ("r2 = *(u64 *)(r1 + 168)\n*(u64 *)(r10 - 8) = r2\nr0 = 0\n"
                        "if r2 == 0 goto +2\nr3 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r3 + 4)\nexit"),
    "kept across a helper": ("r6 = *(u64 *)(r1 + 168)\nr0 = 0\nif r6 == 0 goto +2\ncall 7\n"
                             "r0 = *(u32 *)(r6 + 4)\nexit"),
    "checked twice": SK_LOAD + "if r2 == 0 goto +3\nif r2 == 0 goto +1\n"
                               "r0 = *(u32 *)(r2 + 4)\nexit\nexit",
    "compared after the check": SK_LOAD + "if r2 == 0 goto +2\nif r2 > 5 goto +0\n"
                                          "r0 = *(u32 *)(r2 + 4)\nexit",
    "negated": SK_LOAD + "if r2 == 0 goto +1\nr2 = -r2\nexit",
    "32-bit copy": SK_LOAD + "if r2 == 0 goto +1\nw3 = w2\nexit",
    "32-bit sub": SK_LOAD + "if r2 == 0 goto +1\nw2 -= 4\nexit",
    "pointer minus pointer": SK_LOAD + "if r2 == 0 goto +2\nr3 = r2\nr3 -= r2\nexit",
    "byte swap": SK_LOAD + "if r2 == 0 goto +1\nr2 = be16 r2\nexit",
    "subprogram reads family": ("r1 = *(u64 *)(r1 + 168)\nr0 = 0\nif r1 == 0 goto +1\n"
                                "call local f\nexit\nf:\nr0 = *(u32 *)(r1 + 4)\nexit"),
    "fullsock type": via(95, "r0 = *(u32 *)(r0 + 8)"),
    "fullsock type byte": via(95, "r0 = *(u8 *)(r0 + 8)"),
    "fullsock protocol half": via(95, "r0 = *(u16 *)(r0 + 12)"),
    "fullsock mark": via(95, "r0 = *(u32 *)(r0 + 16)"),
    "fullsock state": via(95, "r0 = *(u32 *)(r0 + 72)"),
    "fullsock is skb->sk": via(95, "r0 -= r6"),
    "tcp_sock: NULL": via(96, "r0 = *(u32 *)(r0 + 0)"),
    "tcp_sock u64": via(96, "r0 = *(u64 *)(r0 + 88)"),
    "listener: NULL": via(98, "r0 = *(u32 *)(r0 + 8)"),
}


def kernel_refuses(spec: ObjectSpec, message: str) -> None:
    k = kernel()
    if k is not None:
        with pytest.raises(k.KernelError) as info:
            k.KernelObject.load(spec, prog="p")
        assert message in info.value.log


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SOCKET_FILTER],
                         ids=["tc", "socket"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_the_verifiers_refusals(name: str, prog_type: ProgType) -> None:
    code, message = REFUSED[name]
    helper = next((h for h in sock.SOCK_HELPERS if f"call {h}\n" in code), None)
    if prog_type is ProgType.SOCKET_FILTER and helper is not None:
        message = ("program of this type cannot use helper "
                   f"{sock.SOCK_HELPERS[helper][0]}#{helper}")
    spec = raw(code, prog_type)
    with pytest.raises(VerifierError) as info:
        testrun.test_run(Object(spec).programs["p"], data_in=PKT)
    assert info.value.reason == message
    kernel_refuses(spec, message)


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SOCKET_FILTER],
                         ids=["tc", "socket"])
@pytest.mark.parametrize("name", list(ACCEPTED))
def test_what_the_verifier_accepts(name: str, prog_type: ProgType) -> None:
    code = ACCEPTED[name]
    if prog_type is ProgType.SOCKET_FILTER and any(f"call {h}\n" in code
                                                   for h in sock.SOCK_HELPERS):
        pytest.skip("a TC helper")
    spec = raw(code, prog_type)
    mine = testrun.test_run(Object(spec).programs["p"], data_in=PKT)
    assert mine.result.error is None
    k = kernel()
    if k is not None:
        assert k.kernel_test_run(spec, "p", data_in=PKT)["retval"] == mine.retval


@pytest.mark.parametrize("prog_type", [ProgType.SCHED_CLS, ProgType.SOCKET_FILTER],
                         ids=["tc", "socket"])
@pytest.mark.parametrize("data", [PKT, V6_PKT, ARP], ids=["ipv4", "ipv6", "arp"])
def test_every_offset_and_size(data: bytes, prog_type: ProgType) -> None:
    """Each load through skb->sk, 1 to 8 bytes at -4..83: refused with the verifier's
    message or read as the kernel reads it (the upper 32 bits too)."""
    k = kernel()
    for off in range(-4, 84):
        for size in (1, 2, 4, 8):
            code = field(off, size)
            ok = sock.sock_valid(off, size, common=True)
            spec = raw(code, prog_type)
            try:
                mine = testrun.test_run(Object(spec).programs["p"], data_in=data)
            except VerifierError as exc:
                assert not ok
                assert exc.reason == f"R2 invalid sock_common access off={off} size={size}"
                if k is not None:
                    kernel_refuses(spec, exc.reason)
                continue
            assert ok, (off, size)
            want = int.from_bytes(sock.sock_image(data)[off:off + size], "little")
            assert mine.retval == want & 0xFFFFFFFF
            if k is not None:
                assert k.kernel_test_run(spec, "p", data_in=data)["retval"] == mine.retval
                hi = raw(code.replace("goto +1", "goto +2").replace("\nexit", "\nr0 >>= 32\nexit"),
                         prog_type)
                assert k.kernel_test_run(hi, "p", data_in=data)["retval"] == want >> 32


# -- the flow hash ------------------------------------------------------------------------

def gre(flags: int, extra: bytes, inner: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack(">HH", flags, proto) + extra + inner


INNER = ip4(C, A, UDP, l4(5, 6))
#: frames by name; the kernel's hashes of them fall into the groups FLOWS names
FRAMES = {
    "udp": udp4(), "udp payload": udp4(payload=bytes(range(40))),
    "udp id ttl": udp4(ident=77, ttl=3), "udp reverse": udp4(B, A, 53, 1000),
    "udp ports swapped": udp4(sport=53, dport=1000), "udp other port": udp4(sport=1001),
    "udp options": udp4(ihl=6), "udp DF": udp4(frag=0x4000),
    "tcp": udp4(proto=TCP), "tcp reverse": udp4(B, A, 53, 1000, proto=TCP),
    "sctp": udp4(proto=SCTP), "sctp reverse": udp4(B, A, 53, 1000, proto=SCTP),
    "first fragment": udp4(frag=0x2000), "later fragment": udp4(sport=7, dport=8, frag=0x10),
    "later fragment reverse": udp4(B, A, 7, 8, frag=0x10), "ports 0": udp4(sport=0, dport=0),
    "no transport header": eth(0x0800) + ip4(A, B, UDP, b""),
    "far apart": udp4(bytes([0, 0, 0, 1]), bytes([0, 0, 0, 200]), 1, 2),
    "far apart reverse": udp4(bytes([0, 0, 0, 200]), bytes([0, 0, 0, 1]), 2, 1),
    "icmp echo": udp4(proto=ICMP, sport=0x0800, dport=0x1111),
    "icmp reply": udp4(B, A, 0x0000, 0x2222, proto=ICMP),
    "esp": udp4(proto=50, sport=0x1234, dport=0x5678),
    "esp other spi": udp4(proto=50, sport=0x1234, dport=0x5679),
    "vlan 5": udp4(tags=((0x8100, 5),)), "vlan 5 reverse": udp4(B, A, 53, 1000,
                                                               tags=((0x8100, 5),)),
    "vlan 5 dei": udp4(tags=((0x8100, 0x1005),)), "vlan 5 pcp 1": udp4(tags=((0x8100, 0x2005),)),
    "vlan 6": udp4(tags=((0x8100, 6),)), "802.1ad 5": udp4(tags=((0x88A8, 5),)),
    "qinq": udp4(tags=((0x88A8, 5), (0x8100, 7))), "qinq inner 8": udp4(tags=((0x88A8, 5),
                                                                            (0x8100, 8))),
    "qinq inner 802.1ad": udp4(tags=((0x88A8, 5), (0x88A8, 7))),
    "16 tags": udp4(tags=((0x8100, 5),) * 16), "16 tags other ports": udp4(sport=3, dport=4,
                                                                         tags=((0x8100, 5),) * 16),
    "udp6": udp6(), "udp6 reverse": udp6(B6, A6, 53, 1000),
    "udp6 hop limit": udp6(payload=bytes(30), hop_limit=3),
    "udp6 label": udp6(label=0x12345), "udp6 label other ports": udp6(sport=9, dport=9,
                                                                   label=0x12345),
    "udp6 label reverse": udp6(B6, A6, 53, 1000, label=0x12345),
    "udp6 other label": udp6(label=0x54321),
    "udp6 hop-by-hop": eth(0x86DD) + ip6(A6, B6, 0, bytes([17, 0]) + bytes(6) + l4(1000, 53,
                                                                                  bytes(12))),
    "udp6 fragment": eth(0x86DD) + ip6(A6, B6, 44, bytes([17, 0, 0, 1]) + bytes(4) + l4(1000, 53)),
    "udp6 later fragment": eth(0x86DD) + ip6(A6, B6, 44, bytes([17, 0, 0, 0x10]) + bytes(4)
                                             + l4(9, 9)),
    "udp6 ports 0": udp6(sport=0, dport=0),
    "inner": eth(0x0800) + INNER, "ipip": eth(0x0800) + ip4(A, B, IPIP, INNER),
    "gre": eth(0x0800) + ip4(A, B, GRE, gre(0, b"", INNER)),
    "gre key 7": eth(0x0800) + ip4(A, B, GRE, gre(0x2000, b"\0\0\0\7", INNER)),
    "gre csum key 7": eth(0x0800) + ip4(A, B, GRE, gre(0xA000, bytes(4) + b"\0\0\0\7", INNER)),
    "gre key 8": eth(0x0800) + ip4(A, B, GRE, gre(0x2000, b"\0\0\0\x08", INNER)),
    "gre ethernet": eth(0x0800) + ip4(A, B, GRE, gre(0, b"", eth(0x0800) + INNER, 0x6558)),
    "gre routing": eth(0x0800) + ip4(A, B, GRE, gre(0x4000, b"", INNER)),
    "pppoe": eth(0x8864) + bytes([0x11, 0, 0, 1, 0, 30]) + b"\x00\x21" + INNER,
    "6in4": eth(0x0800) + ip4(A, B, 41, ip6(A6, B6, UDP, l4(1000, 53, bytes(12)))),
    "arp": ARP, "arp other": eth(0x0806) + bytes(range(28)),
    "llc": LLC, "llc other length": eth(0x0041) + bytes(40),
    "raw 802.3": eth(0x0040) + b"\xff\xff" + bytes(38),
    "mpls": eth(0x8847) + bytes([0, 1, 0x11, 64]) + INNER,
    "mpls other label": eth(0x8847) + bytes([0, 2, 0x11, 64]) + INNER,
    "ethertype 0x1234": eth(0x1234) + bytes(30), "ethertype 0x1234 other": eth(0x1234)
    + bytes(range(30)), "ethertype 0x1235": eth(0x1235) + bytes(30),
    "short ihl": eth(0x0800) + bytes([0x44]) + ip4(A, B, UDP, l4(1, 2))[1:],
    "short ihl other": eth(0x0800) + bytes([0x44]) + ip4(C, B, TCP, l4(3, 2))[1:],
}
#: what the kernel showed: frames whose hashes are equal (every other pair differs)
FLOWS = [
    {"udp", "udp payload", "udp id ttl", "udp reverse", "udp ports swapped", "udp options",
     "udp DF"},
    {"tcp", "tcp reverse"}, {"sctp", "sctp reverse"},
    {"first fragment", "later fragment", "later fragment reverse", "ports 0",
     "no transport header"},
    {"far apart", "far apart reverse"}, {"icmp echo", "icmp reply"},
    {"vlan 5", "vlan 5 reverse", "vlan 5 dei"}, {"qinq", "qinq inner 8"},
    {"16 tags", "16 tags other ports"},
    {"udp6", "udp6 reverse", "udp6 hop limit", "udp6 hop-by-hop", "6in4"},
    {"udp6 label", "udp6 label other ports", "udp6 label reverse"},
    {"udp6 fragment", "udp6 later fragment", "udp6 ports 0"},
    {"inner", "ipip", "gre", "gre ethernet", "pppoe"}, {"gre key 7", "gre csum key 7"},
    {"arp", "arp other"}, {"llc", "llc other length"}, {"mpls", "mpls other label"},
    {"ethertype 0x1234", "ethertype 0x1234 other"}, {"short ihl", "short ihl other"},
]


def groups(hashes: dict[str, int]) -> list[set[str]]:
    out: dict[int, set[str]] = {}
    for name, h in hashes.items():
        out.setdefault(h, set()).add(name)
    return sorted((g for g in out.values() if len(g) > 1), key=sorted)


def xsim_hashes(env: RunEnv | None = None) -> dict[str, int]:
    prog = xsim.load(SK, env=env).programs["flow_hash"]
    return {n: testrun.test_run(prog, data_in=f).retval for n, f in FRAMES.items()}


def test_the_flow_hash_has_the_kernels_equalities() -> None:
    mine = xsim_hashes()
    assert groups(mine) == sorted(FLOWS, key=sorted)
    assert 0 not in mine.values()
    k = kernel()
    if k is not None:
        spec = load_spec(SK)
        theirs = {n: k.kernel_test_run(spec, "flow_hash", data_in=f)["retval"]
                  for n, f in FRAMES.items()}
        assert groups(theirs) == groups(mine)


def test_the_flow_hash_follows_the_seed() -> None:
    zero, again, other = xsim_hashes(), xsim_hashes(RunEnv(seed=0)), xsim_hashes(RunEnv(seed=7))
    assert zero == again and groups(other) == groups(zero)
    assert all(zero[n] != other[n] for n in FRAMES)


def test_flows_of_one_host_pair_spread() -> None:
    """Different flows get different hashes (32 bits: no collision among a few
    hundred), every packet of each flow the same one, both directions alike."""
    prog = xsim.load(SK).programs["flow_hash"]

    def h(frame: bytes) -> int:
        return testrun.test_run(prog, data_in=frame).retval
    flows = {}
    for sport in range(1000, 1300):
        fwd = h(udp4(sport=sport))
        assert h(udp4(sport=sport, payload=b"x" * 30, ident=sport, ttl=9)) == fwd
        assert h(udp4(B, A, 53, sport)) == fwd
        flows[sport] = fwd
    assert len(set(flows.values())) == len(flows)


def test_a_hash_is_kept_until_cleared() -> None:
    """skb_get_hash hashes once; set_hash_invalid and BPF_F_INVALIDATE_HASH clear it."""
    s = seen(same("hash_cache", path=SK))
    assert s[:8] == [1, 1, 1, 0, 0, 0, 1, 7]
    same("hash_cache", path=SK, repeat=3)


def test_the_hash_comes_from_the_metadata_vlan_tag() -> None:
    """After bpf_skb_vlan_push the tag is in the skb, not the frame: the dissector reads
    it there (as the outer VLAN key)."""
    tagged = udp4(tags=((0x8100, 5),))
    keys = flow.flow_dissect(udp4(), 0x8100, 14, (5, 0x0800))
    assert keys == flow.flow_dissect(tagged, 0x8100, 14)
