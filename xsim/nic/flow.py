"""The frame's headers as the kernel reads them for an skb: eth_type_trans's
skb->protocol, and bpf_get_hash_recalc's flow hash (Linux 6.18, net/ethernet/eth.c,
net/core/flow_dissector.c).

:func:`flow_dissect` takes from the frame what the kernel's flow dissector takes with
flow_keys_dissector (VLAN, PPPoE, IPv4/IPv6 and extension headers, GRE and its key,
IP-in-IP, batman-adv, TIPC; ports, except in fragments), and :func:`flow_hash` hashes
those keys made direction-independent, with a key derived from the run environment's
seed.  The kernel keys its siphash with a secret drawn at boot, so the values are not
the kernel's and cannot be; the equalities are (same flow, same hash, whatever the
payload, IP id or TTL; the reverse direction the same; other flows different).

Its own module because it is protocol parsing, not the __sk_buff context: it knows
nothing of regions or helpers, takes bytes and gives keys and numbers, and the skb
helpers (``xsim.nic.skb``) and the socket model (``xsim.nic.sock``) both use it.

Not modeled: the flow dissector's random key for TIPC keepalives comes from the run
environment's generator, and a BPF flow dissector attached to the network namespace
(the test machine's kernel has none) would replace the kernel's dissection.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ..isa.interp import ETH_HLEN

# -- the Ethernet header: skb->protocol ------------------------------------------------

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
ETH_P_802_3, ETH_P_802_2 = 0x0001, 0x0004


def eth_type_trans(frame: bytes) -> int:
    """eth_type_trans's skb->protocol (host order): the ethertype; for an 802.3 length
    field, ETH_P_802_3 (raw IPX: the payload starts 0xFFFF) or ETH_P_802_2 (LLC)."""
    proto = int.from_bytes(frame[12:14], "big")
    if proto >= 0x600:
        return proto
    return ETH_P_802_3 if frame[14:16] == b"\xff\xff" else ETH_P_802_2


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
