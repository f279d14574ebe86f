"""The socket the test run gives every skb (``skb->sk``), for TC and socket filters
alike, and the verifier's rules for the socket pointers a program gets (Linux 6.18,
net/bpf/test_run.c, net/core/filter.c ``bpf_sock_*``, kernel/bpf/verifier.c).

The ``sock`` region, read-only, holds the socket's ``struct bpf_sock`` with the values
bpf_sock_convert_ctx_access yields (:func:`sock_image`: AF_INET or AF_INET6 and the
addresses of the frame's IP header, AF_UNSPEC for anything else; TCP_CLOSE; no ports;
rx_queue_mapping -1), so loads through it need no rewriting.  What the verifier
refuses about it (a dereference before the NULL check, writes, atomics, arithmetic,
the fields bpf_sock_common_is_valid_access refuses) is refused with its message
(:func:`check_sockets`), and so are those of the sockets bpf_sk_fullsock (which
returns the same socket, type..priority readable), bpf_tcp_sock and
bpf_get_listener_sock (both NULL here: the socket is neither TCP nor listening)
return; socket filters may not call those three.

Its own module because it is a second context with its own layout, access rules and
pointer tracking, next to ``struct __sk_buff`` (``xsim.nic.skb``), which puts the
region in place, loads its address into ``skb->sk`` and registers these helpers.
"""
from __future__ import annotations

import struct

from ..elf.spec import ProgramSpec
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.opcodes import Field
from ..isa.verifier import ctx_accesses
from ..runtime.helpers import HelperCall
from ..runtime.hooks import VerifierError
from .flow import ETH_HLEN, ETH_P_IP, ETH_P_IPV6, eth_type_trans


def _in(off: int, lo: int, hi: int) -> bool:
    return lo <= off < hi


# -- struct bpf_sock: what skb->sk points at ---------------------------------------------

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
    proto = eth_type_trans(frame)
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


# -- the verifier's socket pointers -----------------------------------------------------

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


def check_sockets(spec: ProgramSpec, insns: list[Insn], helpers_allowed: bool,
                  sk_field: int) -> None:
    """Refuse what the verifier refuses about skb->sk (the 64-bit context load at offset
    ``sk_field``) and the sockets helpers return: a dereference before the NULL check, a
    write, an atomic, arithmetic, a field the access rules refuse; and, where
    ``helpers_allowed`` is false (socket filters), a call of bpf_sk_fullsock /
    bpf_tcp_sock / bpf_get_listener_sock.  Reads need no rewriting: the sock region
    holds the fields as the kernel's conversion yields them.  Like
    :func:`xsim.isa.verifier.ctx_accesses` this follows registers, spills and calls;
    what it cannot follow it leaves alone (it never refuses a program for a pointer it
    lost track of)."""
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
                                            ctx, helpers_allowed, sk_field):
            work.append((nxt, tuple(sorted(regs.items())), tuple(sorted(spills.items()))))


def _null_checked(regs: dict, spills: dict, ident: int, null: bool) -> tuple[dict, dict]:
    """mark_ptr_or_null_regs: every copy of pointer ``ident`` is NULL (dropped) or not."""
    def one(v):
        return v if v[1] != ident else (None if null else (v[0][:-len(_OR_NULL)], v[1]))
    regs = {r: w for r, v in regs.items() if (w := one(v)) is not None}
    spills = {o: w for o, v in spills.items() if (w := one(v)) is not None}
    return regs, spills


def _sock_step(name: str, insn: Insn, regs: dict, spills: dict, ctx: dict,
               helpers_allowed: bool, sk_field: int):
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
    if k is oc.Kind.LDX and op.size == 8 and ctx.get(insn.pc) == sk_field:
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


# -- the sock helpers ------------------------------------------------------------------

def _sock_arg(call: HelperCall) -> int:
    """The socket a helper was given, if it is the test run's (the sock region); else 0."""
    region = call.space.by_name.get(SOCK_REGION)
    return call.args[0] if region is not None and call.args[0] == region.vaddr else 0


def sk_fullsock(call: HelperCall) -> int:
    """bpf_sk_fullsock(sk): the test run's socket is a full one (TCP_CLOSE is neither
    TIME_WAIT nor NEW_SYN_RECV), so the same pointer, now PTR_TO_SOCKET."""
    return _sock_arg(call)


def tcp_sock(call: HelperCall) -> int:
    """bpf_tcp_sock(sk): NULL; the test run's socket's protocol is 0, not TCP."""
    return 0


def get_listener_sock(call: HelperCall) -> int:
    """bpf_get_listener_sock(sk): NULL; the test run's socket is not listening."""
    return 0
