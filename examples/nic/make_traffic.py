"""Write traffic.pcap: 1,000 deterministic frames for the firewall example.

IPv4 UDP and TCP from sources in and out of the blocklist's prefixes, some
VLAN-tagged, some IPv6 and ARP.  Run from the repository root:
    python examples/nic/make_traffic.py
"""
from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xsim.nic.pcap import PcapWriter  # noqa: E402

OUT = Path(__file__).with_name("traffic.pcap")
MACS = bytes.fromhex("020000000002020000000001")


def csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                      src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def frame(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.05:
        return MACS + b"\x08\x06" + bytes(28)                             # ARP
    if kind < 0.10:
        return MACS + b"\x86\xdd" + bytes(40) + bytes(8)                  # IPv6
    src = bytes([rng.choice([10, 192, 203, 198]), rng.randrange(256), rng.randrange(256),
                 rng.randrange(1, 255)])
    udp = struct.pack("!HHHH", rng.randrange(1024, 65535), 53, 8 + 16, 0) + bytes(16)
    packet = ipv4(src, bytes([192, 168, 1, 1]), 17, udp)
    if kind < 0.25:
        return MACS + b"\x81\x00" + struct.pack("!H", 7) + b"\x08\x00" + packet
    return MACS + b"\x08\x00" + packet


def main() -> None:
    rng = random.Random(1)
    with PcapWriter(OUT) as w:
        for i in range(1000):
            w.write(frame(rng), 1_700_000_000_000_000_000 + i * 1000)


if __name__ == "__main__":
    main()
