"""TC (``sched_cls``, ``sched_act``) and socket filters: ``struct __sk_buff`` as the
kernel rewrites it, the skb helpers, and BPF_PROG_TEST_RUN's rules for skb programs
(Linux 6.18, net/bpf/test_run.c ``bpf_prog_test_run_skb``, net/core/filter.c).

The packet lives in the ``packet`` region as the test run lays out its buffer:
NET_SKB_PAD (64) bytes of headroom, the frame, and room for ``skb_shared_info``.
A TC program sees the whole frame (``data`` is the MAC header); a socket filter
sees it from the network header (the test run's eth_type_trans pulled 14 bytes),
so offset 0 of LD_ABS and of the helpers is the IP header there.  The window the
program may touch is ``[data, data_end)``, which is also what the interpreter's
LD_ABS/LD_IND count from; their SKF_NET_OFF / SKF_LL_OFF offsets, constant or
computed (LD_IND), reach the network and MAC headers (a socket filter's MAC header
too, before ``data``), as bpf_internal_load_pointer_neg_helper does.

The context region holds the 192 visible bytes of ``struct __sk_buff`` (fields
the program reads are kept there as values) followed by the real ``data``,
``data_end`` and ``data_meta`` pointers; 32-bit loads of those three are
rewritten into 64-bit loads of the pointers, as ``bpf_convert_ctx_access`` does.
Accesses the verifier refuses (``tc_cls_act_is_valid_access``,
``sk_filter_is_valid_access``, ``bpf_skb_is_valid_access``) are refused with its
message.  Fields the kernel keeps narrower (protocol, tc_classid, ...) are loaded
at their real width, with the verifier's narrow-load rules.

``skb->sk`` (a 64-bit load; the verifier refuses any other) points at the socket
the test run gives every skb, in the ``sock`` region; that socket, what the verifier
allows through it and the helpers that take it are ``xsim.nic.sock``.
bpf_get_hash_recalc hashes the keys ``xsim.nic.flow``'s flow dissector takes from
the frame; the hash stays on the skb until bpf_set_hash_invalid or
BPF_F_INVALIDATE_HASH.

Not modeled: the SKF_NET_OFF / SKF_LL_OFF bases stay where the headers were, from
``data``, when the run started (the kernel's stay on the headers when a helper such
as bpf_skb_change_head moves ``data`` against them).
"""
from __future__ import annotations

import errno
import struct
import weakref
from dataclasses import dataclass, field

from ..elf.kinds import ProgType
from ..elf.spec import ProgramSpec
from ..isa import opcodes as oc
from ..isa.insn import Insn, decode
from ..isa.interp import (BPF_F_HDR_FIELD_MASK, BPF_F_INVALIDATE_HASH, BPF_F_IPV6,
                          BPF_F_MARK_ENFORCE, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR,
                          BPF_F_RECOMPUTE_CSUM, CSUM_MANGLED_0)
from ..errors import NativeUnsupported
from ..isa.verifier import ctx_accesses
from ..runtime.helpers import HelperCall, HelperFn, HelperRegistry
from ..runtime.hooks import Layouts, register_hook
from ..runtime.memory import AddressSpace, Region
from ..runtime.program import Tier
from ..runtime.testrun import TestRunOutput, TestRunRefused
from .ctx import place, rewrite_context
from .fib import fib_lookup
from .flow import ETH_HLEN, ETH_P_IP, ETH_P_IPV6, eth_type_trans, flow_dissect, flow_hash
from .sock import (BPF_SOCK_SIZE, SOCK_REGION, check_sockets, get_listener_sock, sk_fullsock,
                   sock_image, tcp_sock)

IPV4_MIN, IPV6_MIN = ETH_HLEN + 20, ETH_HLEN + 40
#: the shortest frame the test run takes, by ethertype (ETH_HLEN for the others)
FRAME_MIN = {ETH_P_IP: IPV4_MIN, ETH_P_IPV6: IPV6_MIN}
#: NET_SKB_PAD + NET_IP_ALIGN on x86-64
HEADROOM = 64
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
SHINFO_SIZE = 320
SKB_SIZE = 192                      # sizeof(struct __sk_buff)
PTRS = struct.Struct("<3Q")          # data, data_end, data_meta
PTRS_AT = SKB_SIZE
CTX_REGION_SIZE = PTRS_AT + PTRS.size
#: __sk_buff field -> offset of its 64-bit pointer in the context region
DATA, DATA_END, DATA_META = 76, 80, 140
POINTER_FIELDS = {DATA: PTRS_AT, DATA_END: PTRS_AT + 8, DATA_META: PTRS_AT + 16}
_LDX = {n: oc.BY_KEY[(oc.LDX | oc.MODE_MEM | oc.SIZES[k][0], 0)] for n, k in
        ((1, "b"), (2, "h"))}
_MOV64_IMM = decode(bytes([0xB7] + [0] * 7 + [0x95] + [0] * 7))[0].op
_NEG = 1 << 64
LOOPBACK_IFINDEX = 1
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
BPF_F_INGRESS = 1
BPF_HDR_START_MAC, BPF_HDR_START_NET = 0, 1
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000
GSO_MAX_SEGS, GSO_LEGACY_MAX_SIZE = 0xFFFF, 0x10000
#: BPF_SKB_MAX_LEN: SKB_MAX_ALLOC, four pages less skb_shared_info
BPF_SKB_MAX_LEN = 4 * 4096 - SHINFO_SIZE
VLAN_HLEN = 4
#: ETH_P_8021Q and ETH_P_8021AD as a program passes them (__be16) and reads them
ETH_P_8021Q_BE, ETH_P_8021AD_BE = 0x0081, 0xA888
PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 2, 3

# field offsets of struct __sk_buff
LEN, PKT_TYPE, MARK, QUEUE_MAPPING, PROTOCOL = 0, 4, 8, 12, 16
VLAN_PRESENT, VLAN_TCI, VLAN_PROTO = 20, 24, 28
PRIORITY, INGRESS_IFINDEX, IFINDEX, TC_INDEX, CB, HASH, TC_CLASSID = 32, 36, 40, 44, 48, 68, 72
FAMILY, LOCAL_PORT_END = 88, 140
FLOW_KEYS, TSTAMP, WIRE_LEN, GSO_SEGS, SK, GSO_SIZE, TSTAMP_TYPE, HWTSTAMP = (
    144, 152, 160, 164, 168, 176, 180, 184)
CB_END = CB + 20
#: the layout above by the kernel's member names (tests check it against vmlinux BTF)
LAYOUT = {"len": LEN, "pkt_type": PKT_TYPE, "mark": MARK, "queue_mapping": QUEUE_MAPPING,
          "protocol": PROTOCOL, "vlan_present": VLAN_PRESENT, "vlan_tci": VLAN_TCI,
          "vlan_proto": VLAN_PROTO, "priority": PRIORITY, "ingress_ifindex": INGRESS_IFINDEX,
          "ifindex": IFINDEX, "tc_index": TC_INDEX, "cb": CB, "hash": HASH,
          "tc_classid": TC_CLASSID, "data": 76, "data_end": 80, "family": FAMILY,
          "local_port": LOCAL_PORT_END - 4, "data_meta": 140, "tstamp": TSTAMP,
          "flow_keys": FLOW_KEYS, "wire_len": WIRE_LEN, "gso_segs": GSO_SEGS, "sk": SK,
          "gso_size": GSO_SIZE, "tstamp_type": TSTAMP_TYPE, "hwtstamp": HWTSTAMP}
#: fields the kernel keeps narrower than their 4 bytes here (convert_ctx_access's
#: target size): a load reads only that many bytes, and a narrow load at least that
#: wide gets the whole field, unshifted, wherever in the word it points
NARROW_FIELDS = {PKT_TYPE: 1, QUEUE_MAPPING: 2, PROTOCOL: 2, VLAN_TCI: 2, VLAN_PROTO: 2,
                 TC_INDEX: 2,
                 TC_CLASSID: 2, GSO_SEGS: 2, GSO_SIZE: 2, TSTAMP_TYPE: 1}
#: [start, end) of fields the program can only use at their full 4 bytes
_WORD_ONLY = [(92, 132), (DATA, DATA + 4), (DATA_END, DATA_END + 4), (DATA_META, DATA_META + 4)]
#: fields ctx_in may set (BPF_PROG_TEST_RUN refuses others non-zero), and ctx_out returns
CTX_IN_FIELDS = [(MARK, 4), (PRIORITY, 4), (INGRESS_IFINDEX, 4), (IFINDEX, 4), (CB, 20),
                 (TSTAMP, 8), (WIRE_LEN, 4), (GSO_SEGS, 4), (GSO_SIZE, 4), (HWTSTAMP, 8)]
#: and those the test run writes back (gso_size stays as ctx_in gave it)
CTX_OUT_FIELDS = [f for f in CTX_IN_FIELDS if f[0] != GSO_SIZE]


@dataclass
class SkbState:
    """What the helpers keep of one run's skb besides the context region."""

    sw_hash: bool = False
    redirect: tuple[int, int] | None = None      # (ifindex, flags)
    #: packets bpf_clone_redirect sent: (ifindex, the frame when it was cloned)
    clones: list[tuple[int, bytes]] = field(default_factory=list)
    #: where the network and MAC headers are, from data (TC: data is the MAC header)
    net_off: int = ETH_HLEN
    mac_off: int = 0


_STATES: weakref.WeakKeyDictionary[AddressSpace, SkbState] = weakref.WeakKeyDictionary()


def _in(off: int, lo: int, hi: int) -> bool:
    return lo <= off < hi


# -- context rewriting ------------------------------------------------------------------

def _skb_valid(off: int, size: int, write: bool) -> bool:
    """bpf_skb_is_valid_access: what every skb program type shares."""
    if not 0 <= off < SKB_SIZE or off % size:
        return False
    if _in(off, CB, CB_END):
        return off + size <= CB_END
    if any(_in(off, lo, hi) for lo, hi in _WORD_ONLY):
        return size == 4
    if _in(off, FLOW_KEYS, FLOW_KEYS + 8) or _in(off, TSTAMP_TYPE, HWTSTAMP):
        return False
    if _in(off, HWTSTAMP, HWTSTAMP + 8) or _in(off, SK, SK + 8):
        return not write and size == 8
    if _in(off, TSTAMP, TSTAMP + 8):
        return size == 8
    return size == 4 if write else size <= 4


_TC_WRITABLE = [(MARK, 4), (TC_INDEX, 4), (PRIORITY, 4), (TC_CLASSID, 4), (CB, 20),
                (TSTAMP, 8), (QUEUE_MAPPING, 4)]


def tc_valid(off: int, size: int, write: bool) -> bool:
    """tc_cls_act_is_valid_access."""
    if write and not any(_in(off, lo, lo + n) for lo, n in _TC_WRITABLE):
        return False
    if _in(off, FAMILY, LOCAL_PORT_END):
        return False
    if off == TSTAMP_TYPE:
        return size == 1
    return _skb_valid(off, size, write)


_SK_FILTER_NEVER = [(TC_CLASSID, TC_CLASSID + 4), (DATA, DATA + 4), (DATA_META, DATA_META + 4),
                    (DATA_END, DATA_END + 4), (FAMILY, LOCAL_PORT_END), (TSTAMP, TSTAMP + 8),
                    (WIRE_LEN, WIRE_LEN + 4), (HWTSTAMP, HWTSTAMP + 8)]


def sk_filter_valid(off: int, size: int, write: bool) -> bool:
    """sk_filter_is_valid_access: no packet pointers, writes only to cb."""
    if any(_in(off, lo, hi) for lo, hi in _SK_FILTER_NEVER):
        return False
    if write and not _in(off, CB, CB_END):
        return False
    return _skb_valid(off, size, write)


def _narrow_load(insn: Insn, off: int, target: int) -> Insn:
    """A load of a field the kernel keeps in ``target`` bytes, as the verifier converts
    it: the field itself when the load is at least as wide, else the shifted bytes
    (zero past the field)."""
    if insn.op.size >= target:
        return Insn(_LDX[target], insn.pc, insn.dst, insn.src, insn.off - off % 4)
    if off % 4 >= target:
        return Insn(_MOV64_IMM, insn.pc, insn.dst)
    return insn


def _convert(insn: Insn, off: int) -> Insn:
    """Loads of the fields the kernel keeps narrower than the __sk_buff field."""
    field_off = off - off % 4
    if field_off in NARROW_FIELDS:
        return _narrow_load(insn, off, NARROW_FIELDS[field_off])
    return insn


# -- helpers ----------------------------------------------------------------------------

class _Skb:
    """The skb behind a context pointer: its data pointers and the bytes between them."""

    def __init__(self, call: HelperCall) -> None:
        self.call, self.ctx = call, call.args[0]
        self.data, self.data_end, self.data_meta = PTRS.unpack(
            call.read(self.ctx + PTRS_AT, PTRS.size))
        region = call.space.by_name["packet"]
        self._host = region.host - region.vaddr

    @property
    def len(self) -> int:
        return self.data_end - self.data

    def read(self, off: int, n: int) -> bytes:
        h = self._host + self.data + off
        return self.call.space.mem[h:h + n].tobytes()

    def write(self, off: int, data: bytes) -> None:
        h = self._host + self.data + off
        self.call.space.mem[h:h + len(data)] = memoryview(data)

    def set_field(self, off: int, value: int) -> None:
        self.call.write(self.ctx + off, struct.pack("<I", value & 0xFFFFFFFF))

    def field(self, off: int) -> int:
        return int.from_bytes(self.call.read(self.ctx + off, 4), "little")

    def reshape(self, front: int, new_len: int) -> None:
        """Make the frame ``new_len`` bytes starting ``front`` bytes before the current
        data (negative: after it); bytes past the old end are whatever the buffer holds
        there (zeros, as the kernel's zeroed allocation has), and the buffer grows as
        pskb_expand_head would grow it."""
        space = self.call.space
        region = space.by_name["packet"]
        base = region.vaddr
        buf = bytearray(space.bytes_of("packet"))
        start = self.data - base - front
        if start < 0:                                   # more headroom
            buf[:0] = bytes(HEADROOM - start)
            start = HEADROOM
        if start + new_len + SHINFO_SIZE > len(buf):     # more tailroom
            buf += bytes(start + new_len + SHINFO_SIZE - len(buf))
        space.fill("packet", bytes(buf))
        self._host = region.host - base
        self.data, self.data_end = base + start, base + start + new_len
        self.call.write(self.ctx + PTRS_AT, PTRS.pack(self.data, self.data_end, self.data))
        self.set_field(LEN, new_len)
        space.set_window("packet", start, start + new_len)


def _state(call: HelperCall) -> SkbState:
    return _STATES.setdefault(call.space, SkbState())


def _load_bytes(call: HelperCall) -> int:
    """bpf_skb_load_bytes(skb, offset, to, len): the buffer is zeroed on failure."""
    skb = _Skb(call)
    off, to, n = call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3] & 0xFFFFFFFF
    if off > 0x7FFFFFFF or off + n > skb.len:
        call.write(to, bytes(n))
        return _NEG - errno.EFAULT
    call.write(to, skb.read(off, n))
    return 0


def _load_bytes_relative(call: HelperCall) -> int:
    """bpf_skb_load_bytes_relative(skb, offset, to, len, start): from the MAC header
    (BPF_HDR_START_MAC, before data in a socket filter) or the network header."""
    skb = _Skb(call)
    off, to, n, start = (call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3] & 0xFFFFFFFF,
                         call.args[4] & 0xFFFFFFFF)
    st = _state(call)
    base = {BPF_HDR_START_MAC: st.mac_off, BPF_HDR_START_NET: st.net_off}.get(start)
    if off > 0xFFFF or base is None or base + off + n > skb.len:
        call.write(to, bytes(n))
        return _NEG - errno.EFAULT
    call.write(to, skb.read(base + off, n))
    return 0


def _store_bytes(call: HelperCall) -> int:
    """bpf_skb_store_bytes(skb, offset, from, len, flags).  The test run's skb has no
    checksum state (CHECKSUM_NONE), so BPF_F_RECOMPUTE_CSUM changes nothing."""
    skb = _Skb(call)
    off, src, n, flags = (call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3] & 0xFFFFFFFF,
                          call.args[4])
    if flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return _NEG - errno.EINVAL
    if off > 0x7FFFFFFF or off + n > skb.len:
        return _NEG - errno.EFAULT
    skb.write(off, call.read(src, n))
    if flags & BPF_F_INVALIDATE_HASH:
        skb.set_field(HASH, 0)
        _state(call).sw_hash = False
    return 0


# ones' complement arithmetic exactly as include/net/checksum.h and csum_fold do it
def _csum_add(a: int, b: int) -> int:
    r = (a + b) & 0xFFFFFFFF
    return (r + (r < b)) & 0xFFFFFFFF


def _csum_sub(a: int, b: int) -> int:
    return _csum_add(a, ~b & 0xFFFFFFFF)


def _csum_fold(c: int) -> int:
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    return ~c & 0xFFFF


def _csum16_add(a: int, b: int) -> int:
    r = (a + b) & 0xFFFF
    return (r + (r < b)) & 0xFFFF


def _replace_by_diff(s: int, diff: int) -> int:
    return _csum_fold(_csum_add(diff & 0xFFFFFFFF, ~s & 0xFFFFFFFF))


def _replace4(s: int, old: int, new: int) -> int:
    return _csum_fold(_csum_add(_csum_sub(~s & 0xFFFFFFFF, old & 0xFFFFFFFF),
                                new & 0xFFFFFFFF))


def _replace2(s: int, old: int, new: int) -> int:
    return ~_csum16_add(_csum16_add(~s & 0xFFFF, ~old & 0xFFFF), new & 0xFFFF) & 0xFFFF


def _csum_target(skb: _Skb, off: int) -> int | None:
    """The 16-bit checksum at ``off``, or None where the kernel says EFAULT (past the
    end, or at an odd offset)."""
    if off > 0xFFFF or off & 1 or off + 2 > skb.len:
        return None
    return int.from_bytes(skb.read(off, 2), "little")


def _l3_csum_replace(call: HelperCall) -> int:
    """bpf_l3_csum_replace(skb, offset, from, to, size): size 2 or 4, or 0 for a diff."""
    skb = _Skb(call)
    off, old, new, flags = call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3], call.args[4]
    if flags & ~BPF_F_HDR_FIELD_MASK:
        return _NEG - errno.EINVAL
    s = _csum_target(skb, off)
    if s is None:
        return _NEG - errno.EFAULT
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0 and old == 0:
        s = _replace_by_diff(s, new)
    elif size == 2:
        s = _replace2(s, old, new)
    elif size == 4:
        s = _replace4(s, old, new)
    else:
        return _NEG - errno.EINVAL
    skb.write(off, s.to_bytes(2, "little"))
    return 0


def _l4_csum_replace(call: HelperCall) -> int:
    """bpf_l4_csum_replace(skb, offset, from, to, flags).  With no checksum offload in
    the test run (CHECKSUM_NONE) the pseudo-header flag changes nothing here."""
    skb = _Skb(call)
    off, old, new, flags = call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3], call.args[4]
    if flags & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR |
                 BPF_F_HDR_FIELD_MASK | BPF_F_IPV6):
        return _NEG - errno.EINVAL
    s = _csum_target(skb, off)
    if s is None:
        return _NEG - errno.EFAULT
    mangled0 = flags & BPF_F_MARK_MANGLED_0
    if mangled0 and not flags & BPF_F_MARK_ENFORCE and s == 0:
        return 0
    size = flags & BPF_F_HDR_FIELD_MASK
    if size == 0 and old == 0:
        s = _replace_by_diff(s, new)
    elif size in (2, 4):
        s = _replace4(s, old if size == 4 else old & 0xFFFF, new if size == 4 else new & 0xFFFF)
    else:
        return _NEG - errno.EINVAL
    if mangled0 and s == 0:
        s = CSUM_MANGLED_0
    skb.write(off, s.to_bytes(2, "little"))
    return 0


def _pull_data(call: HelperCall) -> int:
    """bpf_skb_pull_data(skb, len): the test run's skb is linear, so only the length
    check remains (ENOMEM past the end)."""
    return _NEG - errno.ENOMEM if call.args[1] & 0xFFFFFFFF > _Skb(call).len else 0


def _redirect(call: HelperCall) -> int:
    """bpf_redirect(ifindex, flags) in TC: TC_ACT_REDIRECT, or TC_ACT_SHOT on bad flags."""
    flags = call.args[1]
    if flags & ~BPF_F_INGRESS:
        return TC_ACT_SHOT
    _state(call).redirect = (call.args[0] & 0xFFFFFFFF, flags)
    return TC_ACT_REDIRECT


def _clone_redirect(call: HelperCall) -> int:
    """bpf_clone_redirect(skb, ifindex, flags): a copy goes out now, the program goes on.
    -EINVAL for flags other than BPF_F_INGRESS or a device that does not exist."""
    ifindex, flags = call.args[1] & 0xFFFFFFFF, call.args[2]
    net = call.env.net
    known = ifindex == LOOPBACK_IFINDEX or (net is not None and ifindex in net.devices)
    if flags & ~BPF_F_INGRESS or not known:
        return _NEG - errno.EINVAL
    skb = _Skb(call)
    _state(call).clones.append((ifindex, skb.read(0, skb.len)))
    return 0


def _set_hash(call: HelperCall) -> int:
    _Skb(call).set_field(HASH, call.args[1])
    _state(call).sw_hash = True
    return 0


def _set_hash_invalid(call: HelperCall) -> int:
    """bpf_set_hash_invalid(skb): skb_clear_hash; the next bpf_get_hash_recalc hashes
    the frame again."""
    _Skb(call).set_field(HASH, 0)
    _state(call).sw_hash = False
    return 0


def _get_hash_recalc(call: HelperCall) -> int:
    """bpf_get_hash_recalc(skb): skb_get_hash.  A hash the skb has (bpf_set_hash, or an
    earlier recalc: the kernel keeps it until something clears it) stays; otherwise the
    flow dissector's keys, hashed.  The kernel's hash is keyed with a secret drawn at
    boot, so its values cannot be reproduced; xsim keys its hash with the run
    environment's seed, and what it keeps are the kernel's equalities: every packet of a
    flow hashes alike whatever its payload, IP id or TTL, both directions alike,
    different flows (almost always) not (see :func:`flow_dissect`)."""
    skb = _Skb(call)
    st = _state(call)
    if st.sw_hash:
        return skb.field(HASH)
    proto = skb.field(PROTOCOL)
    vlan = None
    if skb.field(VLAN_PRESENT):
        vlan, proto = (skb.field(VLAN_TCI), _be16(proto)), skb.field(VLAN_PROTO)
    keys = flow_dissect(skb.read(0, skb.len), _be16(proto), st.net_off, vlan,
                        lambda: call.env.random.getrandbits(32))
    h = flow_hash(keys, call.env.seed)
    skb.set_field(HASH, h)
    st.sw_hash = True
    return h


def _be16(field_value: int) -> int:
    """A __be16 __sk_buff field (protocol, vlan_proto) as a number."""
    return int.from_bytes((field_value & 0xFFFF).to_bytes(2, "little"), "big")


def _min_len(call: HelperCall) -> int:
    """__bpf_skb_min_len: the frame may not lose its MAC header (no transport header is
    set in the test run)."""
    return _state(call).net_off


def _change_tail(call: HelperCall) -> int:
    """bpf_skb_change_tail(skb, len, flags): trim, or grow with the tailroom's bytes."""
    skb = _Skb(call)
    new_len, flags = call.args[1] & 0xFFFFFFFF, call.args[2]
    if flags or new_len > BPF_SKB_MAX_LEN or new_len < _min_len(call):
        return _NEG - errno.EINVAL
    skb.reshape(0, new_len)
    return 0


def _change_head(call: HelperCall) -> int:
    """bpf_skb_change_head(skb, room, flags): ``room`` zero bytes in front, the MAC header
    reset to them (the network header stays where it was)."""
    skb = _Skb(call)
    room, flags = call.args[1] & 0xFFFFFFFF, call.args[2]
    if flags or skb.len + room > BPF_SKB_MAX_LEN:
        return _NEG - errno.EINVAL
    skb.reshape(room, skb.len + room)
    skb.write(0, bytes(room))
    _state(call).net_off += room
    return 0


def _vlan_insert(skb: _Skb, proto: int, tci: int) -> None:
    """__vlan_insert_tag: 4 bytes after the MAC addresses."""
    macs = skb.read(0, 12)
    skb.reshape(VLAN_HLEN, skb.len + VLAN_HLEN)
    skb.write(0, macs + proto.to_bytes(2, "little") + tci.to_bytes(2, "big"))


def _vlan_push(call: HelperCall) -> int:
    """bpf_skb_vlan_push(skb, proto, tci): the tag goes into the skb's metadata
    (vlan_present/vlan_tci/vlan_proto); a tag already there moves into the frame."""
    skb = _Skb(call)
    proto, tci = call.args[1] & 0xFFFF, call.args[2] & 0xFFFF
    if proto not in (ETH_P_8021Q_BE, ETH_P_8021AD_BE):
        proto = ETH_P_8021Q_BE
    if skb.field(VLAN_PRESENT):
        old = skb.field(VLAN_PROTO)
        _vlan_insert(skb, old, skb.field(VLAN_TCI))
        skb.set_field(PROTOCOL, old)
        _state(call).net_off += VLAN_HLEN
    skb.set_field(VLAN_PRESENT, 1)
    skb.set_field(VLAN_TCI, tci)
    skb.set_field(VLAN_PROTO, proto)
    return 0


def _vlan_pop_inband(call: HelperCall, skb: _Skb) -> tuple[int, int] | None:
    """__skb_vlan_pop: take the frame's outer tag out; (its TCI, the error or 0)."""
    if skb.len < ETH_HLEN + VLAN_HLEN:
        return None
    macs, tci = skb.read(0, 12), int.from_bytes(skb.read(14, 2), "big")
    inner = int.from_bytes(skb.read(16, 2), "big")
    skb.reshape(-VLAN_HLEN, skb.len - VLAN_HLEN)
    skb.write(0, macs)
    if inner < 0x600:                                   # vlan_set_encap_proto
        inner = 0x0001 if skb.read(ETH_HLEN, 2) == b"\xff\xff" else 0x0004
    skb.set_field(PROTOCOL, int.from_bytes(inner.to_bytes(2, "big"), "little"))
    st = _state(call)
    st.net_off = max(st.net_off - VLAN_HLEN, ETH_HLEN)
    return tci, 0


def _vlan_pop(call: HelperCall) -> int:
    """bpf_skb_vlan_pop(skb): drop the metadata tag (or the frame's outer one), then move
    the frame's next tag, if any, into the metadata."""
    skb = _Skb(call)
    vlan = (ETH_P_8021Q_BE, ETH_P_8021AD_BE)
    if skb.field(VLAN_PRESENT):
        for off in (VLAN_PRESENT, VLAN_TCI, VLAN_PROTO):
            skb.set_field(off, 0)
    elif skb.field(PROTOCOL) not in vlan:
        return 0
    elif _vlan_pop_inband(call, skb) is None:
        return _NEG - errno.ENOMEM
    proto = skb.field(PROTOCOL)
    if proto not in vlan:
        return 0
    popped = _vlan_pop_inband(call, skb)
    if popped is None:
        return _NEG - errno.ENOMEM
    skb.set_field(VLAN_PRESENT, 1)
    skb.set_field(VLAN_TCI, popped[0])
    skb.set_field(VLAN_PROTO, proto)
    return 0


# bpf_skb_adjust_room's modes and flags
BPF_ADJ_ROOM_NET, BPF_ADJ_ROOM_MAC = 0, 1
ADJ_FIXED_GSO, ADJ_ENCAP_L3_IPV4, ADJ_ENCAP_L3_IPV6 = 1, 2, 4
ADJ_ENCAP_L4_GRE, ADJ_ENCAP_L4_UDP, ADJ_NO_CSUM_RESET, ADJ_ENCAP_L2_ETH = 8, 16, 32, 64
ADJ_DECAP_L3_IPV4, ADJ_DECAP_L3_IPV6 = 128, 256
ADJ_ENCAP_L3 = ADJ_ENCAP_L3_IPV4 | ADJ_ENCAP_L3_IPV6
ADJ_DECAP_L3 = ADJ_DECAP_L3_IPV4 | ADJ_DECAP_L3_IPV6
ADJ_ENCAP_L2_SHIFT = 56
ADJ_ALL = (ADJ_FIXED_GSO | ADJ_ENCAP_L3 | ADJ_ENCAP_L4_GRE | ADJ_ENCAP_L4_UDP |
           ADJ_ENCAP_L2_ETH | 0xFF << ADJ_ENCAP_L2_SHIFT | ADJ_DECAP_L3 | ADJ_NO_CSUM_RESET)
#: skb->protocol for IPv4 and IPv6 as the program reads it (__be16 in a u32)
PROTO_IP, PROTO_IPV6 = 0x0008, 0xDD86
ENOTSUPP = 524                      # the kernel's own "operation not supported" errno


def _adjust_room(call: HelperCall) -> int:
    """bpf_skb_adjust_room(skb, len_diff, mode, flags): room (zeros) inserted or removed
    after the MAC header (BPF_ADJ_ROOM_MAC) or after the base network header
    (BPF_ADJ_ROOM_NET); encap/decap flags set the new outer protocol.  The test run's
    skb has no GSO and no checksum state, so those flags change nothing else."""
    skb = _Skb(call)
    diff = call.args[1] & 0xFFFFFFFF
    diff = diff - (1 << 32) if diff >> 31 else diff
    mode, flags = call.args[2] & 0xFFFFFFFF, call.args[3]
    proto = skb.field(PROTOCOL)
    if flags & ~ADJ_ALL:
        return _NEG - errno.EINVAL
    if abs(diff) > 0xFFF:
        return _NEG - errno.EFAULT
    if proto not in (PROTO_IP, PROTO_IPV6):
        return _NEG - ENOTSUPP
    base = 20 if proto == PROTO_IP else 40
    net_off = _state(call).net_off
    if mode not in (BPF_ADJ_ROOM_NET, BPF_ADJ_ROOM_MAC):
        return _NEG - ENOTSUPP
    off = net_off + (base if mode == BPF_ADJ_ROOM_NET else 0)
    len_min = base
    shrink = diff < 0
    if flags & ADJ_DECAP_L3:
        if not shrink or flags & ADJ_DECAP_L3 == ADJ_DECAP_L3:
            return _NEG - errno.EINVAL
        len_min = 20 if flags & ADJ_DECAP_L3_IPV4 else 40
    len_cur = skb.len - net_off
    n = abs(diff)
    if shrink and (n >= len_cur or len_cur - n < len_min) or (
            not shrink and skb.len + n > BPF_SKB_MAX_LEN):
        return _NEG - ENOTSUPP
    frame = skb.read(0, skb.len)
    if shrink:
        if flags & ~(ADJ_FIXED_GSO | ADJ_DECAP_L3 | ADJ_NO_CSUM_RESET):
            return _NEG - errno.EINVAL
        skb.reshape(-n, skb.len - n)
        skb.write(0, frame[:off] + frame[off + n:])
        new_ip = flags & ADJ_DECAP_L3_IPV4
    else:
        if flags & ADJ_ENCAP_L3:
            inner_mac = flags >> ADJ_ENCAP_L2_SHIFT & 0xFF
            if (flags & ADJ_ENCAP_L3 == ADJ_ENCAP_L3
                    or flags & (ADJ_ENCAP_L4_GRE | ADJ_ENCAP_L4_UDP) ==
                    ADJ_ENCAP_L4_GRE | ADJ_ENCAP_L4_UDP
                    or flags & ADJ_ENCAP_L2_ETH and inner_mac != ETH_HLEN
                    or inner_mac > n):
                return _NEG - errno.EINVAL
        skb.reshape(n, skb.len + n)
        skb.write(0, frame[:off] + bytes(n) + frame[off:])
        new_ip = flags & ADJ_ENCAP_L3_IPV4
    if flags & (ADJ_DECAP_L3 if shrink else ADJ_ENCAP_L3):   # the new outer protocol
        skb.set_field(PROTOCOL, PROTO_IP if new_ip else PROTO_IPV6)
    return 0


def add_tc_helpers(registry: HelperRegistry) -> None:
    registry.ctx_ptrs = PTRS_AT
    registry.kernel("skb_load_bytes", core=True)(_load_bytes)
    registry.kernel("skb_load_bytes_relative")(_load_bytes_relative)
    registry.kernel("skb_store_bytes", core=True)(_store_bytes)
    registry.kernel("l3_csum_replace", core=True)(_l3_csum_replace)
    registry.kernel("l4_csum_replace", core=True)(_l4_csum_replace)
    registry.kernel("skb_pull_data")(_pull_data)
    registry.kernel("redirect")(_redirect)
    registry.kernel("fib_lookup")(lambda call: fib_lookup(call, _Skb(call).len))
    registry.kernel("clone_redirect")(_clone_redirect)
    registry.kernel("set_hash")(_set_hash)
    registry.kernel("get_hash_recalc")(_get_hash_recalc)
    registry.kernel("set_hash_invalid")(_set_hash_invalid)
    registry.kernel("sk_fullsock")(sk_fullsock)
    registry.kernel("tcp_sock")(tcp_sock)
    registry.kernel("get_listener_sock")(get_listener_sock)
    registry.kernel("skb_change_tail")(_change_tail)
    registry.kernel("skb_change_head")(_change_head)
    registry.kernel("skb_vlan_push")(_vlan_push)
    registry.kernel("skb_vlan_pop")(_vlan_pop)
    registry.kernel("skb_adjust_room")(_adjust_room)


def add_socket_filter_helpers(registry: HelperRegistry) -> None:
    registry.ctx_ptrs = PTRS_AT
    registry.kernel("skb_load_bytes", core=True)(_load_bytes)
    registry.kernel("skb_load_bytes_relative")(_load_bytes_relative)


# -- the test run -----------------------------------------------------------------------

def _pkt_type(dest: bytes) -> int:
    """eth_type_trans on loopback (address and broadcast address all zeros)."""
    if dest == bytes(6):
        return PACKET_HOST
    return PACKET_MULTICAST if dest[0] & 1 else PACKET_OTHERHOST


def _check_ctx_in(ctx_in: bytes, frame_len: int, l2: bool) -> bytearray:
    """The __sk_buff the run starts from, with bpf_ctx_init's and convert___skb_to_skb's
    refusals."""
    if any(ctx_in[SKB_SIZE:]):
        raise TestRunRefused("ctx_in: bytes past struct __sk_buff must be zero", errno.E2BIG)
    given = bytearray(ctx_in[:SKB_SIZE].ljust(SKB_SIZE, b"\0"))
    rest = bytearray(given)
    for off, n in CTX_IN_FIELDS:
        rest[off:off + n] = bytes(n)
    if any(rest):
        bad = next(i for i, b in enumerate(rest) if b)
        raise TestRunRefused(f"ctx_in: byte {bad} is non-zero; only mark, priority, "
                             "ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, "
                             "gso_size and hwtstamp may be set")
    ifindex, = struct.unpack_from("<I", given, IFINDEX)
    if ifindex > LOOPBACK_IFINDEX:
        raise TestRunRefused(f"ctx_in: no device with ifindex {ifindex} (xsim models "
                             "loopback, ifindex 1)", errno.ENODEV)
    skb_len = frame_len if l2 else frame_len - ETH_HLEN
    wire, segs = struct.unpack_from("<2I", given, WIRE_LEN)
    if wire == 0:
        wire = skb_len
    elif not skb_len <= wire <= GSO_LEGACY_MAX_SIZE:
        raise TestRunRefused(f"ctx_in: wire_len {wire} is below the packet's {skb_len} "
                             f"bytes or above {GSO_LEGACY_MAX_SIZE}")
    if segs > GSO_MAX_SEGS:
        raise TestRunRefused(f"ctx_in: gso_segs {segs} is above {GSO_MAX_SEGS}")
    struct.pack_into("<I", given, WIRE_LEN, wire)
    struct.pack_into("<I", given, GSO_SIZE, struct.unpack_from("<I", given, GSO_SIZE)[0]
                     & 0xFFFF)                          # skb_shared_info.gso_size is a u16
    if not ifindex:
        struct.pack_into("<I", given, IFINDEX, LOOPBACK_IFINDEX)
    return given


# -- the kernel's structs, for its JIT image ----------------------------------------------

#: what the kernel's code reads and writes of the context (bpf_convert_ctx_access,
#: tc_cls_act_convert_ctx_access): sk_buff members, the qdisc_skb_cb and
#: bpf_skb_data_end that sk_buff.cb holds, and the device's ifindex
KERNEL_STRUCTS = {"sk_buff": ("len", "__pkt_type_offset", "mark", "queue_mapping", "protocol",
                              "vlan_tci", "vlan_proto", "priority", "skb_iif", "tc_index",
                              "hash", "cb", "data", "dev"),
                  "qdisc_skb_cb": ("pkt_len", "tc_classid", "data"),
                  "bpf_skb_data_end": ("data_meta", "data_end"),
                  "net_device": ("ifindex",)}
#: __sk_buff field -> (struct, member, bytes the kernel keeps) of each mirrored field;
#: qdisc_skb_cb's and bpf_skb_data_end's members are inside sk_buff.cb.  vlan_present is
#: what the kernel reads it as: whether vlan_proto and vlan_tci (vlan_all) are non-zero
KERNEL_FIELDS = {LEN: ("sk_buff", "len", 4), PKT_TYPE: ("sk_buff", "__pkt_type_offset", 1),
                 MARK: ("sk_buff", "mark", 4), QUEUE_MAPPING: ("sk_buff", "queue_mapping", 2),
                 PROTOCOL: ("sk_buff", "protocol", 2), VLAN_TCI: ("sk_buff", "vlan_tci", 2),
                 VLAN_PROTO: ("sk_buff", "vlan_proto", 2), PRIORITY: ("sk_buff", "priority", 4),
                 INGRESS_IFINDEX: ("sk_buff", "skb_iif", 4), TC_INDEX: ("sk_buff", "tc_index", 2),
                 HASH: ("sk_buff", "hash", 4), CB: ("qdisc_skb_cb", "data", CB_END - CB),
                 TC_CLASSID: ("qdisc_skb_cb", "tc_classid", 2),
                 WIRE_LEN: ("qdisc_skb_cb", "pkt_len", 4), IFINDEX: ("net_device", "ifindex", 4)}
#: the pointers: data in sk_buff, data_end and data_meta in bpf_skb_data_end
KERNEL_POINTERS = {PTRS_AT: ("sk_buff", "data"), PTRS_AT + 8: ("bpf_skb_data_end", "data_end"),
                   PTRS_AT + 16: ("bpf_skb_data_end", "data_meta")}
#: skb->pkt_type is the low 3 bits of the byte at __pkt_type_offset (PKT_TYPE_MAX)
_PKT_TYPE_MASK = 7
_WIDE = (FLOW_KEYS, TSTAMP, SK, HWTSTAMP)
#: the __sk_buff fields (start, size) whose accesses run natively
_MIRRORED = {**{off: 4 for off in KERNEL_FIELDS}, CB: CB_END - CB, VLAN_PRESENT: 4, DATA: 4,
             DATA_END: 4, DATA_META: 4}


def _load_helper(size: int, cached: bool) -> HelperFn:
    """The kernel's bpf_skb_load_helper_{8,16,32}[_no_cache](skb, [data, headlen,] offset),
    which the verifier calls for LD_ABS/LD_IND: the big-endian bytes at ``offset`` from
    data (negative: from the SKF_NET_OFF / SKF_LL_OFF headers, inside [head, tail)), or
    -EFAULT, after which the program returns 0."""
    def load(call: HelperCall) -> int:
        skb = _Skb(call)
        st = _state(call)
        offset = call.args[3 if cached else 1] & 0xFFFFFFFF
        offset = offset - (1 << 32) if offset >> 31 else offset
        if cached:      # the linear part the code passed: data and its length
            data_off = call.args[1] - skb.data
            headlen = call.args[2] & 0xFFFFFFFF
        else:
            data_off, headlen = 0, skb.len
        if offset >= 0:
            if headlen - offset >= size:
                at = data_off + offset
            elif offset + size <= skb.len:     # skb_copy_bits of a linear skb
                at = offset
            else:
                return _NEG - errno.EFAULT
        else:
            if offset >= SKF_NET_OFF:
                at = st.net_off + offset - SKF_NET_OFF
            elif offset >= SKF_LL_OFF:
                at = st.mac_off + offset - SKF_LL_OFF
            else:
                return _NEG - errno.EFAULT
            head = call.space.by_name["packet"].vaddr
            if skb.data + at < head or at + size > skb.len:
                return _NEG - errno.EFAULT
        return int.from_bytes(skb.read(at, size), "big")
    return load


class SkbKernelContext:
    """``struct sk_buff`` (its cb holding qdisc_skb_cb and bpf_skb_data_end) and its
    device, built from the context region (__sk_buff, then the real pointers) and read
    back into it."""

    def __init__(self, layouts: Layouts) -> None:
        self.layouts = layouts
        skb = layouts["sk_buff"]
        (self._skb, self._dev), self.size = place([max(skb.values()) + 8,
                                                   layouts["net_device"]["ifindex"] + 4])
        self.functions: dict[str, HelperFn] = {
            f"bpf_skb_load_helper_{8 * n}{suffix}": _load_helper(n, not suffix)
            for n in (1, 2, 4) for suffix in ("", "_no_cache")}

    def _at(self, struct_name: str, member: str) -> int:
        """Where a member is in the native bytes."""
        off = self.layouts[struct_name][member]
        if struct_name == "net_device":
            return self._dev + off
        if struct_name == "sk_buff":
            return self._skb + off
        return self._skb + self.layouts["sk_buff"]["cb"] + off   # inside skb->cb

    def to_kernel(self, ctx: bytes, base: int) -> bytes:
        out = bytearray(self.size)
        for off, (name, member, n) in KERNEL_FIELDS.items():
            value = ctx[off:off + n]
            if off == PKT_TYPE:
                value = bytes([value[0] & _PKT_TYPE_MASK])
            out[self._at(name, member):self._at(name, member) + n] = value
        for off, (name, member) in KERNEL_POINTERS.items():
            out[self._at(name, member):self._at(name, member) + 8] = ctx[off:off + 8]
        struct.pack_into("<Q", out, self._at("sk_buff", "dev"), base + self._dev)
        return bytes(out)

    def from_kernel(self, native: bytes, ctx: bytes) -> bytes:
        out = bytearray(ctx)
        for off, (name, member, n) in KERNEL_FIELDS.items():
            at = self._at(name, member)
            value = native[at:at + n]
            if off == PKT_TYPE:
                value = bytes([value[0] & _PKT_TYPE_MASK])
            out[off:off + n] = value
        for off, (name, member) in KERNEL_POINTERS.items():
            at = self._at(name, member)
            out[off:off + 8] = native[at:at + 8]
        return bytes(out)


def kernel_context(layouts: Layouts, insns: list[Insn]) -> SkbKernelContext:
    """The mirror of the context; NativeUnsupported when the program touches a field it
    does not mirror (sk and the fields behind it, gso_*, tstamp, napi_id, ...)."""
    names = {v: k for k, v in LAYOUT.items()}
    for pc, off in sorted(ctx_accesses(insns).items()):
        start = max((f for f in _MIRRORED if f <= off), default=None)
        if start is None or off >= start + _MIRRORED[start]:
            name = names.get(off - off % 4) or names.get(off - off % 8 if off - off % 8 in
                                                          _WIDE else -1)
            field = f"__sk_buff field {name}" if name else "the __sk_buff field"
            raise NativeUnsupported(f"{field} at offset {off} (pc {pc})",
                                    "the native runner does not mirror it into struct sk_buff")
    return SkbKernelContext(layouts)


class SkbHook:
    """sched_cls / sched_act (``l2``: the program sees the MAC header) or
    socket_filter (it sees the frame from the network header)."""

    kernel_structs = KERNEL_STRUCTS

    def __init__(self, prog_types: tuple[ProgType, ...], l2: bool) -> None:
        self.prog_types, self.l2 = prog_types, l2
        #: where ``data`` starts in the buffer: the MAC header, or (a socket filter) the
        #: network header after it
        self.start = HEADROOM if l2 else HEADROOM + ETH_HLEN
        #: LD_ABS/LD_IND's SKF_NET_OFF / SKF_LL_OFF offsets: the network header, the MAC
        #: header and the buffer's head, from the window's start
        self.headers = (ETH_HLEN, 0, -self.start) if l2 else (0, -ETH_HLEN, -self.start)

    def state(self) -> SkbState:
        """A fresh run's helper state."""
        return SkbState() if self.l2 else SkbState(net_off=0, mac_off=-ETH_HLEN)

    @staticmethod
    def sock_region(space: AddressSpace) -> Region:
        """The region of the socket every skb gets (made on first use)."""
        return space.by_name.get(SOCK_REGION) or space.add(SOCK_REGION, BPF_SOCK_SIZE,
                                                           writable=False)

    def base_context(self, space: AddressSpace) -> bytearray:
        """The __sk_buff a test run without ctx_in starts from, before the frame's own
        fields (len, pkt_type, protocol) go in: loopback's ifindex and the socket."""
        skb = bytearray(SKB_SIZE)
        struct.pack_into("<I", skb, IFINDEX, LOOPBACK_IFINDEX)
        struct.pack_into("<Q", skb, SK, self.sock_region(space).vaddr)
        return skb

    def kernel_context(self, layouts: Layouts, insns: list[Insn]) -> SkbKernelContext:
        return kernel_context(layouts, insns)

    def add_helpers(self, registry: HelperRegistry) -> None:
        (add_tc_helpers if self.l2 else add_socket_filter_helpers)(registry)

    def rewrite(self, spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
        out = rewrite_context(spec, insns, tc_valid if self.l2 else sk_filter_valid,
                              POINTER_FIELDS, _convert)
        check_sockets(spec, insns, helpers_allowed=self.l2, sk_field=SK)
        return out

    def test_run(self, prog, *, data_in: bytes | None, ctx_in: bytes | None, repeat: int,
                 budget: int | None, tier: str | Tier = "interp") -> TestRunOutput:
        data = data_in or b""
        if len(data) < ETH_HLEN:
            raise TestRunRefused(f"data_in of {len(data)} bytes is shorter than an Ethernet "
                                 f"header ({ETH_HLEN})")
        proto = int.from_bytes(data[12:14], "big")
        need = FRAME_MIN.get(proto, ETH_HLEN)
        if len(data) < need:
            raise TestRunRefused(f"data_in of {len(data)} bytes is too short for its "
                                 f"ethertype {proto:#06x} (needs {need})")
        ctx = _check_ctx_in(ctx_in, len(data), self.l2) if ctx_in is not None else None
        program = prog.hooked()
        space = program.space
        skb = self.base_context(space) if ctx is None else ctx
        start_off = self.start
        end_off = HEADROOM + len(data)
        struct.pack_into("<2I", skb, LEN, end_off - start_off, _pkt_type(data[:6]))
        struct.pack_into("<I", skb, PROTOCOL,
                         int.from_bytes(eth_type_trans(data).to_bytes(2, "big"), "little"))
        buffer = bytearray(HEADROOM + len(data) + SHINFO_SIZE)
        buffer[HEADROOM:end_off] = data
        struct.pack_into("<Q", skb, SK, self.sock_region(space).vaddr)
        space.fill(SOCK_REGION, sock_image(data))
        _STATES[space] = self.state()
        base = space.by_name["packet"].vaddr
        image = bytes(skb) + PTRS.pack(base + start_off, base + end_off, base + start_off)
        res = program.run(image, packet=bytes(buffer), packet_window=(start_off, end_off),
                          packet_headers=self.headers, tier=tier, repeat=repeat, budget=budget)
        d, end = PTRS.unpack(res.memory[PTRS_AT:PTRS_AT + PTRS.size])[:2]
        after = space.bytes_of("packet")
        data_out = after[d - base:end - base]
        if not self.l2:
            data_out = bytes(ETH_HLEN) + data_out      # the test run zeroes the MAC header
        ctx_out = None
        if ctx is not None:              # convert_skb_to___skb, over what ctx_in gave
            out = bytearray(ctx_in[:SKB_SIZE].ljust(SKB_SIZE, b"\0"))
            for off, n in CTX_OUT_FIELDS:
                out[off:off + n] = res.memory[off:off + n]
            ctx_out = bytes(out)
        state = _STATES.get(space)
        redirect = None
        if state is not None and state.redirect is not None and res.retval == TC_ACT_REDIRECT:
            redirect = ("ifindex", state.redirect[0])
        return TestRunOutput(res, data_out=data_out, ctx_out=ctx_out, printk=res.printk,
                             redirect=redirect, clones=list(state.clones) if state else [])

    def verdict(self, retval: int) -> str:
        """TC: the kernel's TC_ACT_* name; a socket filter: how many bytes it keeps."""
        if not self.l2:
            return "drop" if retval == 0 else "keep"
        value = retval - (1 << 32) if retval >> 31 else retval
        return TC_ACTIONS.get(value, str(value))

    def output(self, verdict: str) -> str | None:
        """Which capture output a verdict's packets go to (None: they do not leave)."""
        return {"TC_ACT_OK": "pass", "TC_ACT_UNSPEC": "pass", "TC_ACT_PIPE": "pass",
                "keep": "pass"}.get(verdict)


#: the kernel's TC_ACT_* return codes by value
TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
              3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
              7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}


TC_HOOK = SkbHook((ProgType.SCHED_CLS, ProgType.SCHED_ACT), l2=True)
SOCKET_FILTER_HOOK = SkbHook((ProgType.SOCKET_FILTER,), l2=False)
HOOKS = (TC_HOOK, SOCKET_FILTER_HOOK)

for _hook in HOOKS:                 # importing xsim.nic registers these, as it does XDP
    register_hook(_hook)
