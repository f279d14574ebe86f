"""bpf_fib_lookup against devices, routes and neighbours the user describes.

The kernel answers from its FIB and neighbour tables; xsim answers from a
``NetConfig`` (``RunEnv.net``), read from JSON::

    {"devices": [{"ifindex": 2, "mac": "02:00:00:00:00:02", "mtu": 1500,
                  "forwarding": true}],
     "routes": [{"dst": "10.0.0.0/8", "ifindex": 2, "gateway": "192.168.1.254"},
                {"dst": "203.0.113.0/24", "type": "blackhole"}],
     "neighbours": [{"ip": "192.168.1.254", "mac": "02:00:00:00:00:fe"}]}

Routes are matched longest prefix first.  The return codes and the fields
written back (ifindex, smac, dmac, the destination becoming the gateway,
mtu_result) follow net/core/filter.c's bpf_ipv4/ipv6_fib_lookup.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import XsimError
from ..runtime.helpers import HelperCall

FIB = struct.Struct("<BBHHHII16s16sI6s6s")     # struct bpf_fib_lookup, 64 bytes
AF_INET, AF_INET6 = 2, 10
(SUCCESS, BLACKHOLE, UNREACHABLE, PROHIBIT, NOT_FWDED, FWD_DISABLED, UNSUPP_LWT, NO_NEIGH,
 FRAG_NEEDED, NO_SRC_ADDR) = range(10)
LOOKUP_DIRECT, LOOKUP_OUTPUT, LOOKUP_SKIP_NEIGH, LOOKUP_TBID, LOOKUP_SRC, LOOKUP_MARK = (
    1, 2, 4, 8, 16, 32)
_ALL_FLAGS = 63
_ROUTE_TYPES = {"unicast": SUCCESS, "blackhole": BLACKHOLE, "unreachable": UNREACHABLE,
                "prohibit": PROHIBIT}
_NEG = 1 << 64


@dataclass(frozen=True)
class Device:
    ifindex: int
    mac: bytes
    mtu: int = 1500
    forwarding: bool = True


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network | ipaddress.IPv6Network
    type: str = "unicast"
    ifindex: int = 0
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


@dataclass
class NetConfig:
    """Devices, routes and neighbours; by default only loopback, which forwards nothing."""

    devices: dict[int, Device] = field(default_factory=lambda: {1: Device(1, bytes(6), 65536,
                                                                         False)})
    routes: list[Route] = field(default_factory=list)
    neighbours: dict[object, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> NetConfig:
        try:
            data = json.loads(Path(path).read_text())
            cfg = cls()
            for d in data.get("devices", []):
                cfg.devices[int(d["ifindex"])] = Device(
                    int(d["ifindex"]), _mac(d.get("mac", "00:00:00:00:00:00")),
                    int(d.get("mtu", 1500)), bool(d.get("forwarding", True)))
            for r in data.get("routes", []):
                if r.get("type", "unicast") not in _ROUTE_TYPES:
                    raise ValueError(f"route type {r['type']!r} is none of {list(_ROUTE_TYPES)}")
                cfg.routes.append(Route(ipaddress.ip_network(r["dst"]), r.get("type", "unicast"),
                                        int(r.get("ifindex", 0)),
                                        ipaddress.ip_address(r["gateway"])
                                        if r.get("gateway") else None))
            for n in data.get("neighbours", []):
                cfg.neighbours[ipaddress.ip_address(n["ip"])] = _mac(n["mac"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise XsimError(f"{path}: not a network description: {exc}") from None
        cfg.routes.sort(key=lambda r: -r.dst.prefixlen)
        return cfg


def _mac(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return raw


def fib_lookup(call: HelperCall) -> int:
    """bpf_fib_lookup(ctx, params, plen, flags)."""
    ptr, plen, flags = call.args[1], call.args[2] & 0xFFFFFFFF, call.args[3]
    if plen < FIB.size or flags & ~_ALL_FLAGS:
        return _NEG - errno.EINVAL
    (family, l4, sport, dport, tot_len, ifindex, tos, src, dst, vlan, smac,
     dmac) = FIB.unpack(call.read(ptr, FIB.size))
    if family == AF_INET:
        addr = ipaddress.IPv4Address(dst[:4])
    elif family == AF_INET6:
        addr = ipaddress.IPv6Address(dst)
    else:
        return _NEG - errno.EAFNOSUPPORT
    net: NetConfig = call.env.net if call.env.net is not None else NetConfig()
    dev = net.devices.get(ifindex)
    if dev is None:
        return _NEG - errno.ENODEV
    if not flags & LOOKUP_OUTPUT and not dev.forwarding:
        return FWD_DISABLED
    route = next((r for r in net.routes if r.dst.version == addr.version and addr in r.dst),
                 None)
    if route is None:
        return NOT_FWDED
    if route.type != "unicast":
        return _ROUTE_TYPES[route.type]
    out = net.devices.get(route.ifindex)
    if out is None:
        return NOT_FWDED
    nexthop = route.gateway or addr
    if family == AF_INET:
        dst = nexthop.packed + dst[4:]
    else:
        dst = nexthop.packed
    if tot_len and tot_len > out.mtu:
        call.write(ptr + 6, struct.pack("<H", out.mtu))
        return FRAG_NEEDED
    neigh = net.neighbours.get(nexthop)
    if neigh is None and not flags & LOOKUP_SKIP_NEIGH:
        call.write(ptr, FIB.pack(family, l4, sport, dport, tot_len, out.ifindex, tos, src, dst,
                                 vlan, smac, dmac))
        return NO_NEIGH
    call.write(ptr, FIB.pack(family, l4, sport, dport, tot_len, out.ifindex, tos, src, dst,
                             vlan, out.mac, neigh if neigh is not None else dmac))
    return SUCCESS
