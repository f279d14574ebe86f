"""A generated packet corpus for differential tests: the frames programs trip over.

Valid IPv4/IPv6 TCP and UDP, and the odd ones: IP options, VLAN and QinQ
tags, IPv6 extension headers, fragments, bad lengths and checksums,
truncated headers and runts.  Deterministic for a seed.
"""
from __future__ import annotations

import random
import struct

MACS = bytes.fromhex("020000000002020000000001")


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s >> 16) + (s & 0xFFFF)
    return ~s & 0xFFFF


def _l4(rng: random.Random, proto: int) -> bytes:
    payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 32, 200])))
    sport, dport = rng.randrange(65536), rng.choice([53, 80, 443, 9000, rng.randrange(65536)])
    if proto == 6:
        opts = rng.choice([b"", b"\x02\x04\x05\xb4", b"\x01\x01\x04\x02\x02\x04\x05\xb4"])
        off = (20 + len(opts)) // 4
        return struct.pack("!HHIIBBHHH", sport, dport, rng.randrange(1 << 32), 0, off << 4,
                           rng.choice([0x02, 0x10, 0x18, 0x11]), 65535, 0, 0) + opts + payload
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ipv4(rng: random.Random) -> bytes:
    proto = rng.choice([6, 17, 1])
    body = _l4(rng, proto) if proto != 1 else b"\x08\x00\x00\x00" + bytes(8)
    options = rng.choice([b"", b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00" + b"\x01" * 4])
    ihl = 5 + len(options) // 4
    frag = rng.choice([0x4000, 0x4000, 0x2000, 0x0010, 0])      # DF, MF, an offset
    total = 20 + len(options) + len(body)
    if rng.random() < 0.05:
        total = rng.choice([0, 19, total + 100])                  # a lying length
    src = bytes([rng.choice([10, 192, 203, 198, 127]), rng.randrange(256), rng.randrange(256),
                 rng.randrange(1, 255)])
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total & 0xFFFF, rng.randrange(65536),
                      frag, rng.choice([64, 1, 0]), proto, 0, src, bytes([192, 168, 1, 1]))
    hdr += options
    if rng.random() > 0.05:
        hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return b"\x08\x00" + hdr + body


def _ipv6(rng: random.Random) -> bytes:
    proto = rng.choice([6, 17])
    body = _l4(rng, proto)
    ext = b""
    nxt = proto
    for _ in range(rng.choice([0, 0, 1, 2])):
        kind = rng.choice([0, 43, 44, 60])                       # hop-by-hop, routing, frag, dest
        if kind == 44:
            ext = struct.pack("!BBHI", nxt, 0, rng.choice([0, 1, 8]), rng.randrange(1 << 32)) + ext
        else:
            ext = struct.pack("!BB", nxt, 0) + bytes(6) + ext
        nxt = kind
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(body), nxt, 64,
                      bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(11) + bytes([rng.randrange(256)]),
                      bytes([0xfe, 0x80]) + bytes(13) + b"\x01")
    return b"\x86\xdd" + hdr + ext + body


def frame(rng: random.Random) -> bytes:
    """One Ethernet frame (a few are deliberately broken)."""
    kind = rng.random()
    if kind < 0.03:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 14)))   # runt
    if kind < 0.06:
        return MACS + b"\x08\x06" + bytes(28)                                   # ARP
    body = _ipv6(rng) if kind < 0.30 else _ipv4(rng)
    tags = b""
    if rng.random() < 0.15:
        tags = b"\x81\x00" + struct.pack("!H", rng.randrange(4096))
    if rng.random() < 0.05:
        tags = b"\x88\xa8" + struct.pack("!H", rng.randrange(4096)) + b"\x81\x00" + \
            struct.pack("!H", rng.randrange(4096))
    out = MACS + tags + body
    if rng.random() < 0.05:                                                     # truncated
        out = out[:rng.randrange(14, len(out))]
    return out


def corpus(n: int = 1000, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [frame(rng) for _ in range(n)]
