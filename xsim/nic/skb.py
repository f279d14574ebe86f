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

``skb->sk`` (a 64-bit load; the verifier refuses any other) is the socket the test
run gives every skb, for TC and socket filters alike: the ``sock`` region, read-only,
holds its ``struct bpf_sock`` with the values bpf_sock_convert_ctx_access yields
(:func:`sock_image`: AF_INET or AF_INET6 and the addresses of the frame's IP header,
AF_UNSPEC for anything else; TCP_CLOSE; no ports; rx_queue_mapping -1), so loads
through it need no rewriting.  What the verifier refuses about it (a dereference
before the NULL check, writes, atomics, arithmetic, the fields
bpf_sock_common_is_valid_access refuses) is refused with its message
(:func:`check_sockets`), and so are those of the sockets bpf_sk_fullsock (which
returns the same socket, type..priority readable), bpf_tcp_sock and
bpf_get_listener_sock (both NULL here: the socket is neither TCP nor listening)
return; socket filters may not call those three.

bpf_get_hash_recalc hashes what the kernel's flow dissector takes from the frame
(:func:`flow_dissect`: VLAN, IPv4/IPv6, tunnels, ports; fragments without ports),
made direction-independent, with a key derived from the run environment's seed.
The kernel keys its siphash with a secret drawn at boot, so the values are not the
kernel's and cannot be; the equalities are (same flow, same hash, whatever the
payload, IP id or TTL; the reverse direction the same; other flows different), and
the hash stays on the skb until bpf_set_hash_invalid or BPF_F_INVALIDATE_HASH.

Not modeled: the SKF_NET_OFF / SKF_LL_OFF bases stay where the headers were, from
``data``, when the run started (the kernel's stay on the headers when a helper such
as bpf_skb_change_head moves ``data`` against them).  The flow dissector's random key
for TIPC keepalives comes from the run environment's generator, and a BPF flow
dissector attached to the network namespace (the test machine's kernel has none)
would replace the kernel's dissection.
"""
from __future__ import annotations

import errno
import hashlib
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from ..elf.kinds import ProgType
from ..elf.spec import ProgramSpec
from ..isa import opcodes as oc
from ..isa.insn import Insn, decode
from ..isa.opcodes import Field
from ..isa.verifier import ctx_accesses
from ..runtime.helpers import HelperCall, HelperRegistry
from ..runtime.hooks import VerifierError, register_hook
from ..runtime.memory import AddressSpace
from ..runtime.testrun import TestRunOutput, TestRunRefused
from .ctx import rewrite_context
from .fib import fib_lookup

ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IPV4_MIN, IPV6_MIN = ETH_HLEN + 20, ETH_HLEN + 40
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
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
BPF_F_HDR_FIELD_MASK, BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0 = 0xF, 1 << 4, 1 << 5
BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 1 << 6, 1 << 7
CSUM_MANGLED_0 = 0xFFFF
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


# -- skb->sk: the socket the test run gives the skb ---------------------------------------

#: the read-only region holding the struct bpf_sock the program reads through skb->sk
SOCK_REGION = "sock"
BPF_SOCK_SIZE = 80
# struct bpf_sock field offsets
(SOCK_BOUND_DEV_IF, SOCK_FAMILY, SOCK_TYPE, SOCK_PROTOCOL, SOCK_MARK, SOCK_PRIORITY,
 SOCK_SRC_IP4, SOCK_SRC_IP6, SOCK_SRC_PORT, SOCK_DST_PORT, SOCK_DST_IP4, SOCK_DST_IP6,
 SOCK_STATE, SOCK_RX_QUEUE_MAPPING) = 0, 4, 8, 12, 16, 20, 24, 28, 44, 48, 52, 56, 72, 76
#: struct bpf_sock by the kernel's member names (tests check it against vmlinux BTF)
SOCK_LAYOUT = {"bound_dev_if": SOCK_BOUND_DEV_IF, "family": SOCK_FAMILY, "type": SOCK_TYPE,
               "protocol": SOCK_PROTOCOL, "mark": SOCK_MARK, "priority": SOCK_PRIORITY,
               "src_ip4": SOCK_SRC_IP4, "src_ip6": SOCK_SRC_IP6, "src_port": SOCK_SRC_PORT,
               "dst_port": SOCK_DST_PORT, "dst_ip4": SOCK_DST_IP4, "dst_ip6": SOCK_DST_IP6,
               "state": SOCK_STATE, "rx_queue_mapping": SOCK_RX_QUEUE_MAPPING}
AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10
TCP_CLOSE = 7
#: the end of struct bpf_tcp_sock's fields (offsetofend icsk_retransmits), and its u64s
BPF_TCP_SOCK_END, TCP_SOCK_U64S = 112, (80, 88)
#: fields a load may read narrower, from their first byte (bpf_sock_is_valid_access)
_SOCK_NARROW_AT = (SOCK_FAMILY, SOCK_TYPE, SOCK_PROTOCOL, SOCK_SRC_PORT, SOCK_STATE,
                   SOCK_RX_QUEUE_MAPPING)
#: ... and the address fields, from any byte
_SOCK_NARROW_IN = ((SOCK_SRC_IP4, SOCK_SRC_PORT), (SOCK_DST_IP4, SOCK_STATE))


def sock_image(frame: bytes) -> bytes:
    """The struct bpf_sock the program reads through skb->sk, as
    bpf_sock_convert_ctx_access produces it from the test run's socket: sk_alloc'd
    (zeroed, AF_UNSPEC) and sock_init_data'd (TCP_CLOSE, no rx queue), then given the
    IPv4 or IPv6 header's family and addresses (rcv_saddr = the source, daddr = the
    destination).  Nothing binds or connects it: the ports (src_port in host order,
    dst_port a __be16), type, protocol, mark, priority and bound_dev_if are 0, and
    rx_queue_mapping is -1 (NO_QUEUE_MAPPING)."""
    family, ip4, ip6 = AF_UNSPEC, bytes(8), bytes(32)
    proto = _eth_type_trans(frame)
    if proto == ETH_P_IP:
        family, ip4 = AF_INET, frame[ETH_HLEN + 12:ETH_HLEN + 20]
    elif proto == ETH_P_IPV6:
        family, ip6 = AF_INET6, frame[ETH_HLEN + 8:ETH_HLEN + 40]
    return (struct.pack("<6I", 0, family, 0, 0, 0, 0) + ip4[:4] + ip6[:16]
            + struct.pack("<IHH", 0, 0, 0) + ip4[4:] + ip6[16:]
            + struct.pack("<Ii", TCP_CLOSE, -1))


def sock_valid(off: int, size: int, common: bool) -> bool:
    """bpf_sock_is_valid_access (PTR_TO_SOCKET, from bpf_sk_fullsock), and
    bpf_sock_common_is_valid_access (PTR_TO_SOCK_COMMON, skb->sk), which also refuses
    type..priority."""
    if common and _in(off, SOCK_TYPE, SOCK_SRC_IP4):
        return False
    if not 0 <= off < BPF_SOCK_SIZE or off % size:
        return False
    if off in _SOCK_NARROW_AT or any(_in(off, lo, hi) for lo, hi in _SOCK_NARROW_IN):
        return size <= 4
    if _in(off, SOCK_DST_PORT, SOCK_DST_PORT + 2):    # a __be16, or the u32 it was
        return size == 4 or size <= 2
    return size == 4


def tcp_sock_valid(off: int, size: int) -> bool:
    """bpf_tcp_sock_is_valid_access."""
    if not 0 <= off < BPF_TCP_SOCK_END or off % size:
        return False
    return size == (8 if off in TCP_SOCK_U64S else 4)


# The verifier's view of socket pointers: enough of it to refuse what it refuses.  A
# register holds (type, id): the type as reg_type_str spells it, the id shared by the
# copies of one pointer, which one NULL check makes non-NULL (or drops) together.
_COMMON, _SOCK, _TCP = "sock_common", "sock", "tcp_sock"
_OR_NULL = "_or_null"
#: helpers that take a socket and return one or NULL: id -> (name, what they return)
SOCK_HELPERS = {95: ("bpf_sk_fullsock", _SOCK), 96: ("bpf_tcp_sock", _TCP),
                98: ("bpf_get_listener_sock", _SOCK)}
_SOCK_ARG = "expected=sock_common, sock, tcp_sock, xdp_sock"
_WIDEN_AFTER = 8
_FP = 10


def _sock_access(name: str, insn: Insn, kind: str, reg: int, write: bool) -> None:
    """check_mem_access through a socket pointer of ``kind`` in register ``reg``."""
    def refuse(reason: str) -> None:
        raise VerifierError(name, insn.pc, reason)
    if kind.endswith(_OR_NULL):
        refuse(f"R{reg} invalid mem access '{kind}'")
    if insn.op.kind is oc.Kind.ATOMIC:
        refuse(f"BPF_ATOMIC stores into R{reg} {kind} is not allowed")
    if write:
        refuse(f"R{reg} cannot write into {kind}")
    size, off = insn.op.size, insn.off
    ok = tcp_sock_valid(off, size) if kind == _TCP else sock_valid(off, size, kind == _COMMON)
    if not ok:
        refuse(f"R{reg} invalid {kind} access off={off} size={size}")


def _sock_alu(name: str, insn: Insn, regs: dict) -> None:
    """adjust_reg_min_max_vals / adjust_ptr_min_max_vals: no arithmetic on socket
    pointers.  A register this analysis does not follow may be a scalar or another
    pointer; where that decides between refusing and allowing (a subtraction: pointer
    minus pointer is allowed), nothing is refused."""
    op = insn.op
    if op.kind is not oc.Kind.ALU or op.operation in ("mov", "movsx", "neg"):
        return
    dst = regs.get(insn.dst)
    src = regs.get(insn.src) if op.src is Field.READ else None
    ptr = dst or src
    if ptr is None:
        return
    sub = op.operation == "sub"

    def refuse(reason: str) -> None:
        raise VerifierError(name, insn.pc, reason)
    if dst is not None and src is not None:
        if not sub:
            refuse(f"R{insn.dst} pointer {op.llvm} pointer prohibited")
        return
    if sub and (op.width == 32 or op.src is Field.READ):
        return
    if op.width == 32:
        refuse(f"R{insn.dst} 32-bit pointer arithmetic prohibited")
    suffix = ", null-check it first" if ptr[0].endswith(_OR_NULL) else ""
    refuse(f"R{insn.dst} pointer arithmetic on {ptr[0]} prohibited{suffix}")


def check_sockets(spec: ProgramSpec, insns: list[Insn], helpers_allowed: bool) -> None:
    """Refuse what the verifier refuses about skb->sk and the sockets helpers return:
    a dereference before the NULL check, a write, an atomic, arithmetic, a field the
    access rules refuse; and, where ``helpers_allowed`` is false (socket filters), a
    call of bpf_sk_fullsock / bpf_tcp_sock / bpf_get_listener_sock.  Reads need no
    rewriting: the sock region holds the fields as the kernel's conversion yields
    them.  Like :func:`xsim.isa.verifier.ctx_accesses` this follows registers, spills
    and calls; what it cannot follow it leaves alone (it never refuses a program for
    a pointer it lost track of)."""
    by_pc = {i.pc: i for i in insns}
    ctx = ctx_accesses(insns)
    work: list[tuple[int, tuple, tuple]] = [(0, (), ())]
    seen: dict[int, set] = {}
    while work:
        pc, regs_t, spills_t = work.pop()
        visits = seen.setdefault(pc, set())
        if (regs_t, spills_t) in visits:
            continue
        if len(visits) >= _WIDEN_AFTER:
            regs_t, spills_t = (), ()
            if (regs_t, spills_t) in visits:
                continue
        visits.add((regs_t, spills_t))
        insn = by_pc.get(pc)
        if insn is None:
            continue
        for nxt, regs, spills in _sock_step(spec.name, insn, dict(regs_t), dict(spills_t),
                                            ctx, helpers_allowed):
            work.append((nxt, tuple(sorted(regs.items())), tuple(sorted(spills.items()))))


def _null_checked(regs: dict, spills: dict, ident: int, null: bool) -> tuple[dict, dict]:
    """mark_ptr_or_null_regs: every copy of pointer ``ident`` is NULL (dropped) or not."""
    def one(v):
        return v if v[1] != ident else (None if null else (v[0][:-len(_OR_NULL)], v[1]))
    regs = {r: w for r, v in regs.items() if (w := one(v)) is not None}
    spills = {o: w for o, v in spills.items() if (w := one(v)) is not None}
    return regs, spills


def _sock_step(name: str, insn: Insn, regs: dict, spills: dict, ctx: dict,
               helpers_allowed: bool):
    """(next pc, registers, spills) for each way ``insn`` goes on, after its checks."""
    op, k = insn.op, insn.op.kind
    nxt = insn.pc + insn.slots
    if k is oc.Kind.LDX and insn.src in regs:
        _sock_access(name, insn, regs[insn.src][0], insn.src, False)
    elif k in (oc.Kind.ST, oc.Kind.STX, oc.Kind.ATOMIC) and insn.dst in regs:
        _sock_access(name, insn, regs[insn.dst][0], insn.dst, True)
    elif k is oc.Kind.ALU:
        _sock_alu(name, insn, regs)
    if k is oc.Kind.EXIT:
        return []
    if k is oc.Kind.JA:
        return [(insn.target, regs, spills)]
    if k is oc.Kind.JCOND:
        v = regs.get(insn.dst)
        if (v is not None and op.width == 64 and op.src is not Field.READ and insn.imm == 0
                and op.operation in ("jeq", "jne")):
            taken_if_null = op.operation == "jeq"
            if not v[0].endswith(_OR_NULL):          # a non-NULL pointer: one way only
                return [(nxt if taken_if_null else insn.target, regs, spills)]
            null = _null_checked(regs, spills, v[1], True)
            live = _null_checked(regs, spills, v[1], False)
            return [(insn.target, *(null if taken_if_null else live)),
                    (nxt, *(live if taken_if_null else null))]
        return [(nxt, regs, spills), (insn.target, regs, spills)]
    if k is oc.Kind.CALL and op.disc_value == oc.CALL_LOCAL:   # r1-r5 go along
        callee = {r: v for r, v in regs.items() if 1 <= r <= 5}
        after = {r: v for r, v in regs.items() if 6 <= r <= 9}
        return [(insn.target, callee, {}), (nxt, after, spills)]
    if k in (oc.Kind.CALL, oc.Kind.CALLX, oc.Kind.LDPKT):
        after = {r: v for r, v in regs.items() if 6 <= r <= 9}
        helper = (SOCK_HELPERS.get(insn.imm)
                  if k is oc.Kind.CALL and op.disc_value == oc.CALL_HELPER else None)
        if helper is not None:
            if not helpers_allowed:
                raise VerifierError(name, insn.pc, f"program of this type cannot use "
                                                   f"helper {helper[0]}#{insn.imm}")
            arg = regs.get(1)
            if arg is not None and arg[0].endswith(_OR_NULL):
                raise VerifierError(name, insn.pc, f"R1 type={arg[0]} {_SOCK_ARG}")
            after[0] = (helper[1] + _OR_NULL, -insn.pc - 1)   # ids of skb->sk loads: >= 0
        return [(nxt, after, spills)]
    if k is oc.Kind.STX and insn.dst == _FP and op.size == 8:
        spills = dict(spills)
        if insn.src in regs:
            spills[insn.off] = regs[insn.src]
        else:
            spills.pop(insn.off, None)
        return [(nxt, regs, spills)]
    if k in (oc.Kind.ST, oc.Kind.STX, oc.Kind.ATOMIC) and insn.dst == _FP:
        spills = {o: v for o, v in spills.items() if not o - 8 < insn.off < o + 8}
    regs = dict(regs)
    if k is oc.Kind.LDX and insn.src == _FP and op.size == 8 and insn.off in spills:
        regs[insn.dst] = spills[insn.off]
        return [(nxt, regs, spills)]
    if k is oc.Kind.LDX and op.size == 8 and ctx.get(insn.pc) == SK:
        regs[insn.dst] = (_COMMON + _OR_NULL, insn.pc)
        return [(nxt, regs, spills)]
    if k is oc.Kind.ALU and op.operation == "mov" and op.width == 64 and op.src is Field.READ:
        if insn.src in regs:
            regs[insn.dst] = regs[insn.src]
        else:
            regs.pop(insn.dst, None)
        return [(nxt, regs, spills)]
    if op.dst is Field.WRITE:
        regs.pop(insn.dst, None)
    if k is oc.Kind.ATOMIC and (op.src is Field.WRITE or op.operation == "cmpxchg"):
        regs.pop(insn.src if op.src is Field.WRITE else 0, None)
    return [(nxt, regs, spills)]


# -- the flow hash: skb_get_hash's flow dissector and keys --------------------------------

ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD, ETH_P_PPP_SES = 0x0806, 0x8100, 0x88A8, 0x8864
ETH_P_MPLS_UC, ETH_P_MPLS_MC, ETH_P_TIPC, ETH_P_BATMAN, ETH_P_TEB = (
    0x8847, 0x8848, 0x88CA, 0x4305, 0x6558)
IPPROTO_HOPOPTS, IPPROTO_IPIP, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 0, 4, 43, 44
IPPROTO_GRE, IPPROTO_DSTOPTS, IPPROTO_IPV6, IPPROTO_MPLS = 47, 60, 41, 137
#: proto_ports_offset: where the 32 bits the dissector takes as ports start (ESP, AH:
#: the SPI)
PORTS_OFFSET = {6: 0, 17: 0, 33: 0, 50: 0, 132: 0, 136: 0, 51: 4}
MAX_FLOW_DISSECT_HDRS = 15
GRE_CSUM, GRE_ROUTING, GRE_KEY, GRE_SEQ, GRE_ACK, GRE_VERSION = (
    0x8000, 0x4000, 0x2000, 0x1000, 0x0080, 0x0007)
GRE_PROTO_PPP, PPP_IP, PPP_IPV6, PPP_MPLS_UC, PPP_MPLS_MC = 0x880B, 0x21, 0x57, 0x281, 0x283
TIPC_KEEPALIVE_MASK = 0x0E080000
BATADV_COMPAT_VERSION, BATADV_UNICAST = 15, 0x40
#: __skb_flow_dissect's flow_dissect_ret values
_GOOD, _BAD, _AGAIN, _IP_AGAIN, _CONTINUE = (
    "out good", "out bad", "proto again", "ipproto again", "continue")


@dataclass
class FlowKeys:
    """The struct flow_keys members skb_get_hash hashes (flow_keys_dissector's keys);
    byte strings are as on the wire, numbers in host order."""

    n_proto: int = 0
    ip_proto: int = 0
    flow_label: int = 0
    #: the outer VLAN tag: (vlan_id, vlan_priority, vlan_tpid, vlan_eth_type), or None
    vlan: tuple[int, int, int, int] | None = None
    keyid: bytes = bytes(4)
    ports: bytes = bytes(4)
    #: "v4" (8 bytes: source, destination), "v6" (32), "tipc" (4), or None
    addr_type: str | None = None
    addrs: bytes = b""
    is_fragment: bool = False

    def consistentify(self) -> None:
        """__flow_hash_consistentify: both directions of a flow get the same keys.  The
        addresses are ordered (IPv4 as little-endian u32s, IPv6 by memcmp), and the ports
        on their own (as little-endian u16s), so A:1 -> B:2 and A:2 -> B:1 hash alike."""
        if self.addr_type not in ("v4", "v6"):
            return
        half = len(self.addrs) // 2
        src, dst = self.addrs[:half], self.addrs[half:]
        if (int.from_bytes(dst, "little") < int.from_bytes(src, "little")
                if self.addr_type == "v4" else dst < src):
            self.addrs = dst + src
        sport, dport = self.ports[:2], self.ports[2:]
        if int.from_bytes(dport, "little") < int.from_bytes(sport, "little"):
            self.ports = dport + sport

    def hashed_bytes(self) -> bytes:
        """struct flow_keys from its ``basic`` member on, as far as the addresses go
        (flow_keys_hash_start / flow_keys_hash_length)."""
        vid, prio, tpid, eth_type = self.vlan or (0, 0, 0, 0)
        return (struct.pack(">HBx", self.n_proto, self.ip_proto)
                + struct.pack("<IH", self.flow_label, vid | prio << 13)
                + struct.pack(">HHxx", tpid, eth_type) + bytes(8)       # vlan, cvlan
                + self.keyid + self.ports + bytes(4) + self.addrs)      # icmp: not a key


class _Frame:
    """__skb_header_pointer over the linear data: None past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get(self, off: int, n: int) -> bytes | None:
        return self.data[off:off + n] if 0 <= off and off + n <= len(self.data) else None


def _dissect_gre(f: _Frame, keys: FlowKeys, proto: int, nhoff: int) -> tuple[str, int, int]:
    """__skb_flow_dissect_gre: (result, proto, nhoff); the GRE key is a flow key."""
    hdr = f.get(nhoff, 4)
    if hdr is None:
        return _BAD, proto, nhoff
    flags, inner = struct.unpack(">HH", hdr)
    version = flags & GRE_VERSION
    if flags & GRE_ROUTING or version > 1:
        return _GOOD, proto, nhoff
    proto = inner
    if version and not (proto == GRE_PROTO_PPP and flags & GRE_KEY):
        return _GOOD, proto, nhoff
    off = 4 + (4 if flags & GRE_CSUM else 0)
    if flags & GRE_KEY:
        keyid = f.get(nhoff + off, 4)
        if keyid is None:
            return _BAD, proto, nhoff
        keys.keyid = keyid if version == 0 else bytes(2) + keyid[2:]
        off += 4
    if flags & GRE_SEQ:
        off += 4
    if version == 0:
        if proto == ETH_P_TEB:
            eth = f.get(nhoff + off, ETH_HLEN)
            if eth is None:
                return _BAD, proto, nhoff
            proto = int.from_bytes(eth[12:14], "big")
            off += ETH_HLEN
    else:                                       # PPTP: a PPP header follows
        off += 4 if flags & GRE_ACK else 0
        ppp = f.get(nhoff + off, 4)
        if ppp is None:
            return _BAD, proto, nhoff
        proto = {PPP_IP: ETH_P_IP, PPP_IPV6: ETH_P_IPV6}.get(
            int.from_bytes(ppp[2:4], "big"), proto)
        off += 4
    return _AGAIN, proto, nhoff + off


def flow_dissect(data: bytes, proto: int, nhoff: int,
                 vlan_meta: tuple[int, int] | None = None,
                 rand: Callable[[], int] | None = None) -> FlowKeys:
    """__skb_flow_dissect with flow_keys_dissector and FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL
    (what skb_get_hash asks for), over ``data`` from the skb's data, the network header
    at ``nhoff``: ``proto`` is skb->protocol, or skb->vlan_proto when the skb carries
    a tag in its metadata, ``vlan_meta`` = (its TCI, skb->protocol).  VLAN tags (the
    outer one is a key), PPPoE, IPv4, IPv6 and its extension headers (a non-zero flow label ends
    the walk: the label is the key, not the ports), GRE (its key is a key), IP-in-IP,
    batman-adv; then ports (TCP, UDP, UDP-Lite, DCCP, SCTP; ESP's and AH's SPI), except
    in fragments (first or not, so every fragment of a datagram hashes alike).  Frames
    it cannot read on keep what was dissected until then; other ethertypes (ARP, MPLS,
    FCoE, LLC, ...) are their protocol alone."""
    f, keys = _Frame(data), FlowKeys()
    rand = rand or (lambda: 0)
    ip_proto, headers, vlans = 0, 0, 0
    while True:                                          # proto_again
        result = _CONTINUE
        if proto == ETH_P_IP:
            iph = f.get(nhoff, 20)
            if iph is None or iph[0] & 0xF < 5:
                break
            nhoff += (iph[0] & 0xF) * 4
            ip_proto = iph[9]
            keys.addr_type, keys.addrs = "v4", iph[12:20]
            if int.from_bytes(iph[6:8], "big") & 0x3FFF:     # MF or an offset
                keys.is_fragment = True
                break
        elif proto == ETH_P_IPV6:
            iph = f.get(nhoff, 40)
            if iph is None:
                break
            ip_proto = iph[6]
            nhoff += 40
            keys.addr_type, keys.addrs = "v6", iph[8:40]
            label = int.from_bytes(iph[0:4], "big") & 0xFFFFF
            if label:
                keys.flow_label = label
                break
        elif proto in (ETH_P_8021Q, ETH_P_8021AD):
            tpid = proto
            if vlans == 0 and vlan_meta is not None:
                tci, proto = vlan_meta
            else:
                tag = f.get(nhoff, 4)
                if tag is None:
                    break
                tci, proto = struct.unpack(">HH", tag)
                nhoff += 4
            if vlans == 0:
                keys.vlan = (tci & 0xFFF, tci >> 13, tpid, proto)
            vlans += 1
            result = _AGAIN
        elif proto == ETH_P_PPP_SES:
            hdr = f.get(nhoff, 8)
            if hdr is None or hdr[0] != 0x11 or hdr[1] != 0:    # version 1, type 1, code 0
                break
            ppp = int.from_bytes(hdr[6:8], "big")
            if ppp & 0x100:                     # a compressed protocol field
                ppp, nhoff = ppp >> 8, nhoff + 7
            else:
                nhoff += 8
            proto = {PPP_IP: ETH_P_IP, PPP_IPV6: ETH_P_IPV6, PPP_MPLS_UC: ETH_P_MPLS_UC,
                     PPP_MPLS_MC: ETH_P_MPLS_MC}.get(ppp, proto)
            if proto == ETH_P_PPP_SES:
                break
            result = _AGAIN
        elif proto == ETH_P_TIPC:
            hdr = f.get(nhoff, 16)
            if hdr is not None:                 # the source node (keepalives: random)
                w0 = int.from_bytes(hdr[:4], "big")
                keep = w0 & TIPC_KEEPALIVE_MASK == TIPC_KEEPALIVE_MASK
                keys.addr_type = "tipc"
                keys.addrs = struct.pack("<I", rand()) if keep else hdr[12:16]
            break
        elif proto == ETH_P_BATMAN:
            hdr = f.get(nhoff, 24)
            if hdr is None or hdr[1] != BATADV_COMPAT_VERSION or hdr[0] != BATADV_UNICAST:
                break
            proto = int.from_bytes(hdr[22:24], "big")
            nhoff += 24
            result = _AGAIN
        else:                   # MPLS, ARP, FCoE, ...: no key of theirs is hashed
            break
        if result == _AGAIN:
            headers += 1
            if headers <= MAX_FLOW_DISSECT_HDRS:
                continue
            break
        again = True
        while again:                                     # ip_proto_again
            again, result = False, _CONTINUE
            if ip_proto == IPPROTO_GRE:
                result, proto, nhoff = _dissect_gre(f, keys, proto, nhoff)
            elif ip_proto in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS) \
                    and proto == ETH_P_IPV6:
                opt = f.get(nhoff, 2)
                if opt is None:
                    result = _BAD
                else:
                    ip_proto, nhoff, result = opt[0], nhoff + (opt[1] + 1) * 8, _IP_AGAIN
            elif ip_proto == IPPROTO_FRAGMENT and proto == ETH_P_IPV6:
                frag = f.get(nhoff, 8)
                if frag is None:
                    result = _BAD
                else:
                    keys.is_fragment = True
                    ip_proto, nhoff, result = frag[0], nhoff + 8, _GOOD
            elif ip_proto in (IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_MPLS):
                proto = {IPPROTO_IPIP: ETH_P_IP, IPPROTO_IPV6: ETH_P_IPV6}.get(
                    ip_proto, ETH_P_MPLS_UC)
                result = _AGAIN
            if not keys.is_fragment:
                at = PORTS_OFFSET.get(ip_proto)
                ports = f.get(nhoff + at, 4) if at is not None else None
                keys.ports = ports if ports is not None else bytes(4)
            if result in (_AGAIN, _IP_AGAIN):
                headers += 1
                if headers > MAX_FLOW_DISSECT_HDRS:
                    result = _GOOD
            again = result == _IP_AGAIN
        if result != _AGAIN:
            break
    keys.n_proto, keys.ip_proto = proto, ip_proto
    return keys


@lru_cache(maxsize=64)
def _hash_key(seed: object) -> bytes:
    """The flow hash's key: the kernel draws its siphash key at boot; xsim derives one
    from the run environment's seed, so runs with one seed agree."""
    return hashlib.blake2b(f"xsim flow hash {seed!r}".encode(), digest_size=16).digest()


def flow_hash(keys: FlowKeys, seed: object = 0) -> int:
    """__flow_hash_from_keys: the keys made direction-independent, then a keyed hash of
    them (blake2b here, siphash in the kernel), 0 made 1."""
    keys.consistentify()
    h = hashlib.blake2b(keys.hashed_bytes(), digest_size=4, key=_hash_key(seed)).digest()
    return int.from_bytes(h, "little") or 1


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


def _sock_arg(call: HelperCall) -> int:
    """The socket a helper was given, if it is the test run's (the sock region); else 0."""
    region = call.space.by_name.get(SOCK_REGION)
    return call.args[0] if region is not None and call.args[0] == region.vaddr else 0


def _sk_fullsock(call: HelperCall) -> int:
    """bpf_sk_fullsock(sk): the test run's socket is a full one (TCP_CLOSE is neither
    TIME_WAIT nor NEW_SYN_RECV), so the same pointer, now PTR_TO_SOCKET."""
    return _sock_arg(call)


def _tcp_sock(call: HelperCall) -> int:
    """bpf_tcp_sock(sk): NULL; the test run's socket's protocol is 0, not TCP."""
    return 0


def _get_listener_sock(call: HelperCall) -> int:
    """bpf_get_listener_sock(sk): NULL; the test run's socket is not listening."""
    return 0


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
    registry.kernel("skb_load_bytes")(_load_bytes)
    registry.kernel("skb_load_bytes_relative")(_load_bytes_relative)
    registry.kernel("skb_store_bytes")(_store_bytes)
    registry.kernel("l3_csum_replace")(_l3_csum_replace)
    registry.kernel("l4_csum_replace")(_l4_csum_replace)
    registry.kernel("skb_pull_data")(_pull_data)
    registry.kernel("redirect")(_redirect)
    registry.kernel("fib_lookup")(fib_lookup)
    registry.kernel("clone_redirect")(_clone_redirect)
    registry.kernel("set_hash")(_set_hash)
    registry.kernel("get_hash_recalc")(_get_hash_recalc)
    registry.kernel("set_hash_invalid")(_set_hash_invalid)
    registry.kernel("sk_fullsock")(_sk_fullsock)
    registry.kernel("tcp_sock")(_tcp_sock)
    registry.kernel("get_listener_sock")(_get_listener_sock)
    registry.kernel("skb_change_tail")(_change_tail)
    registry.kernel("skb_change_head")(_change_head)
    registry.kernel("skb_vlan_push")(_vlan_push)
    registry.kernel("skb_vlan_pop")(_vlan_pop)
    registry.kernel("skb_adjust_room")(_adjust_room)


def add_socket_filter_helpers(registry: HelperRegistry) -> None:
    registry.kernel("skb_load_bytes")(_load_bytes)
    registry.kernel("skb_load_bytes_relative")(_load_bytes_relative)


# -- the test run -----------------------------------------------------------------------

ETH_P_802_3, ETH_P_802_2 = 0x0001, 0x0004


def _eth_type_trans(frame: bytes) -> int:
    """eth_type_trans's skb->protocol (host order): the ethertype; for an 802.3 length
    field, ETH_P_802_3 (raw IPX: the payload starts 0xFFFF) or ETH_P_802_2 (LLC)."""
    proto = int.from_bytes(frame[12:14], "big")
    if proto >= 0x600:
        return proto
    return ETH_P_802_3 if frame[14:16] == b"\xff\xff" else ETH_P_802_2


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


class SkbHook:
    """sched_cls / sched_act (``l2``: the program sees the MAC header) or
    socket_filter (it sees the frame from the network header)."""

    def __init__(self, prog_types: tuple[ProgType, ...], l2: bool) -> None:
        self.prog_types, self.l2 = prog_types, l2

    def add_helpers(self, registry: HelperRegistry) -> None:
        (add_tc_helpers if self.l2 else add_socket_filter_helpers)(registry)

    def rewrite(self, spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
        out = rewrite_context(spec, insns, tc_valid if self.l2 else sk_filter_valid,
                              POINTER_FIELDS, _convert)
        check_sockets(spec, insns, helpers_allowed=self.l2)
        return out

    def test_run(self, prog, *, data_in: bytes | None, ctx_in: bytes | None, repeat: int,
                 budget: int | None) -> TestRunOutput:
        data = data_in or b""
        if len(data) < ETH_HLEN:
            raise TestRunRefused(f"data_in of {len(data)} bytes is shorter than an Ethernet "
                                 f"header ({ETH_HLEN})")
        proto = int.from_bytes(data[12:14], "big")
        need = {ETH_P_IP: IPV4_MIN, ETH_P_IPV6: IPV6_MIN}.get(proto, ETH_HLEN)
        if len(data) < need:
            raise TestRunRefused(f"data_in of {len(data)} bytes is too short for its "
                                 f"ethertype {proto:#06x} (needs {need})")
        ctx = _check_ctx_in(ctx_in, len(data), self.l2) if ctx_in is not None else None
        skb = ctx if ctx is not None else bytearray(SKB_SIZE)
        if ctx is None:
            struct.pack_into("<I", skb, IFINDEX, LOOPBACK_IFINDEX)
        start_off = HEADROOM if self.l2 else HEADROOM + ETH_HLEN
        end_off = HEADROOM + len(data)
        struct.pack_into("<2I", skb, LEN, end_off - start_off, _pkt_type(data[:6]))
        struct.pack_into("<I", skb, PROTOCOL,
                         int.from_bytes(_eth_type_trans(data).to_bytes(2, "big"), "little"))
        buffer = bytearray(HEADROOM + len(data) + SHINFO_SIZE)
        buffer[HEADROOM:end_off] = data
        program = prog.hooked()
        space = program.space
        sock = space.by_name.get(SOCK_REGION) or space.add(SOCK_REGION, BPF_SOCK_SIZE,
                                                           writable=False)
        space.fill(SOCK_REGION, sock_image(data))
        struct.pack_into("<Q", skb, SK, sock.vaddr)
        _STATES[space] = (SkbState() if self.l2 else SkbState(net_off=0, mac_off=-ETH_HLEN))
        base = space.by_name["packet"].vaddr
        image = bytes(skb) + PTRS.pack(base + start_off, base + end_off, base + start_off)
        kw = {"repeat": repeat} if budget is None else {"repeat": repeat, "budget": budget}
        # LD_ABS/LD_IND's SKF_NET_OFF / SKF_LL_OFF offsets: the network header, the MAC
        # header and the buffer's head, from the window's start
        headers = (ETH_HLEN, 0, -start_off) if self.l2 else (0, -ETH_HLEN, -start_off)
        res = program.run(image, packet=bytes(buffer), packet_window=(start_off, end_off),
                          packet_headers=headers, **kw)
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
