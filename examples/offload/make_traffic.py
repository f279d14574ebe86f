"""Write the captures of the offload studies: 60-byte frames (64 B on the wire).

* ``udp64.pcap``: 4,096 UDP frames to the virtual service 10.0.0.1:80 from 256 flows
  (the drop, tx, redirect and katran studies);
* ``firewall.pcap``: 4,096 UDP frames of 256 flows through the firewall: a quarter
  from inside hosts (10.0.0.0/8, which open their flow), half the replies of open
  flows, a quarter from outside flows never opened.

Deterministic; run from the repository root: ``python examples/offload/make_traffic.py``.
"""
from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xsim.nic.pcap import PcapWriter  # noqa: E402

HERE = Path(__file__).parent
MACS = bytes.fromhex("020000000002020000000001")
VIP = bytes([10, 0, 0, 1])
PAYLOAD = 60 - 14 - 20 - 8
T0 = 1_700_000_000_000_000_000


def csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def udp_frame(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + PAYLOAD, 0) + bytes(PAYLOAD)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0, src, dst)
    return MACS + b"\x08\x00" + hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + udp


def write(name: str, frames: list[bytes]) -> None:
    with PcapWriter(HERE / name) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i * 1000)


def main() -> None:
    rng = random.Random(10)
    flows = [(bytes([192, 168, rng.randrange(256), rng.randrange(1, 255)]),
              rng.randrange(1024, 65535)) for _ in range(256)]
    write("udp64.pcap", [udp_frame(src, VIP, sport, 80)
                         for src, sport in (rng.choice(flows) for _ in range(4096))])
    inside = [(bytes([10, 1, rng.randrange(256), rng.randrange(1, 255)]),
               rng.randrange(1024, 65535)) for _ in range(128)]
    outside = [(bytes([198, 51, 100, rng.randrange(1, 255)]), rng.randrange(1024, 65535))
               for _ in range(128)]
    server = bytes([203, 0, 113, 7])
    frames = []
    for i in range(4096):
        kind = i % 4
        if kind == 0:                                  # an inside host opens its flow
            src, port = rng.choice(inside)
            frames.append(udp_frame(src, server, port, 443))
        elif kind in (1, 2):                           # a reply on an open flow
            src, port = rng.choice(inside[:max(1, min(len(inside), i // 8))])
            frames.append(udp_frame(server, src, 443, port))
        else:                                          # an outside flow nobody opened
            src, port = rng.choice(outside)
            frames.append(udp_frame(src, server, port, 443))
    write("firewall.pcap", frames)


if __name__ == "__main__":
    main()
