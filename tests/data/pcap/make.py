"""Regenerates sample.pcap: 20 Ethernet frames of the kinds XDP programs meet.

Built with dpkt and written with dpkt's own pcap writer (not xsim's), so the
reader is tested on a file it did not write.  Fixed addresses, ports and
timestamps (1700000000 s + i ms): the same frames on every run.

    python tests/data/pcap/make.py     # rewrites tests/data/pcap/sample.pcap
"""
from __future__ import annotations

import socket
from pathlib import Path

import dpkt

BASE_TS = 1_700_000_000
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
V4_A, V4_B = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
V6_A = socket.inet_pton(socket.AF_INET6, "fd00::1")
V6_B = socket.inet_pton(socket.AF_INET6, "fd00::2")
# MSS 1460, SACK permitted, timestamps, NOP, window scale 7: a Linux SYN's options
TCP_OPTS = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01" "030307")


def _eth(data: dpkt.Packet, etype: int, vlan: int | None = None) -> bytes:
    if vlan is None:
        return bytes(dpkt.ethernet.Ethernet(dst=MAC_B, src=MAC_A, type=etype, data=data))
    tag = dpkt.ethernet.VLANtag8021Q(id=vlan, pri=3, type=etype)
    return bytes(dpkt.ethernet.Ethernet(dst=MAC_B, src=MAC_A, vlan_tags=[tag], data=data))


def _udp4(sport: int, dport: int, payload: bytes) -> dpkt.ip.IP:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    return dpkt.ip.IP(src=V4_A, dst=V4_B, p=dpkt.ip.IP_PROTO_UDP, ttl=64, id=1, data=udp)


def _tcp4(flags: int, seq: int, ack: int, payload: bytes = b"") -> dpkt.ip.IP:
    tcp = dpkt.tcp.TCP(sport=40000, dport=80, seq=seq, ack=ack, flags=flags, win=64240,
                       opts=TCP_OPTS, data=payload)
    tcp.off = (20 + len(TCP_OPTS)) // 4
    return dpkt.ip.IP(src=V4_A, dst=V4_B, p=dpkt.ip.IP_PROTO_TCP, ttl=64, id=2, data=tcp)


def _udp6(sport: int, dport: int, payload: bytes) -> dpkt.ip6.IP6:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    return dpkt.ip6.IP6(src=V6_A, dst=V6_B, nxt=dpkt.ip.IP_PROTO_UDP, hlim=64,
                        plen=len(udp), data=udp)


def _arp(op: int) -> dpkt.arp.ARP:
    return dpkt.arp.ARP(op=op, sha=MAC_A, spa=V4_A, tha=MAC_B if op == 2 else b"\0" * 6,
                        tpa=V4_B)


def frames() -> list[bytes]:
    """The 20 frames, in file order."""
    ip, ip6, arp, vlan = (dpkt.ethernet.ETH_TYPE_IP, dpkt.ethernet.ETH_TYPE_IP6,
                          dpkt.ethernet.ETH_TYPE_ARP, 100)
    syn, ack, psh = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH
    return [
        _eth(_udp4(5000, 53, b"\x12\x34\x01\x00" + b"\0" * 8), ip),
        _eth(_udp4(5001, 9, b""), ip),
        _eth(_udp4(5002, 4789, b"x" * 64), ip),
        _eth(_udp4(5003, 12345, bytes(range(256)) * 5), ip),       # 1280-byte payload
        _eth(_tcp4(syn, 1000, 0), ip),
        _eth(_tcp4(syn | ack, 5000, 1001), ip),
        _eth(_tcp4(ack, 1001, 5001), ip),
        _eth(_tcp4(psh | ack, 1001, 5001, b"GET / HTTP/1.1\r\n\r\n"), ip),
        _eth(_udp6(6000, 53, b"\x56\x78\x01\x00" + b"\0" * 8), ip6),
        _eth(_udp6(6001, 443, b"q" * 100), ip6),
        _eth(_udp6(6002, 9, b""), ip6),
        _eth(_udp4(7000, 7, b"tagged"), ip, vlan),
        _eth(_udp6(7001, 7, b"tagged6"), ip6, vlan),
        _eth(_arp(dpkt.arp.ARP_OP_REQUEST), arp),
        _eth(_arp(dpkt.arp.ARP_OP_REPLY), arp),
        MAC_B + MAC_A[:4],                                             # a 10-byte runt
        _eth(_udp4(8000, 8001, b"a"), ip),
        _eth(_tcp4(ack, 2000, 6000, b"z" * 1000), ip),
        _eth(_udp6(8002, 8003, b"b" * 1400), ip6),
        _eth(_udp4(8004, 8005, b"last"), ip),
    ]


def write(path: Path) -> None:
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535)
        for i, frame in enumerate(frames()):
            writer.writepkt_time(frame, BASE_TS + i / 1000)


if __name__ == "__main__":
    write(Path(__file__).with_name("sample.pcap"))
