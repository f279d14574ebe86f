"""bpf_fib_lookup against devices, addresses, routes and neighbours the user describes.

The kernel answers from its FIB and neighbour tables; xsim answers from a
``NetConfig`` (``RunEnv.net``), read from JSON with :meth:`NetConfig.load`::

    {"devices": [{"ifindex": 1, "mac": "00:00:00:00:00:00", "mtu": 65536,
                  "addresses": ["127.0.0.1/8", "::1/128"]},
                 {"ifindex": 2, "mac": "02:00:00:00:00:02", "mtu": 1500,
                  "forwarding": true, "ipv6_forwarding": true,
                  "addresses": ["192.168.1.1/24", "2001:db8:1::1/64"]}],
     "routes": [{"dst": "10.0.0.0/8", "ifindex": 2, "gateway": "192.168.1.254"},
                {"dst": "10.1.0.0/16", "gateway": "192.168.1.253", "metric": 10,
                 "src": "192.168.1.1", "mtu": 1400, "table": 100},
                {"dst": "203.0.113.0/24", "type": "blackhole"}],
     "neighbours": [{"ip": "192.168.1.254", "mac": "02:00:00:00:00:fe", "ifindex": 2,
                     "state": "permanent"}]}

What each field means, as the kernel's state it stands for:

- **devices**: ``ifindex`` (1 is loopback), ``mac``, ``mtu``; ``forwarding`` is
  ``net.ipv4.conf.DEV.forwarding`` and ``ipv6_forwarding`` (default: the same as
  ``forwarding``) ``net.ipv6.conf.DEV.forwarding``.  ``addresses`` are
  ``ip addr add`` prefixes in the order they were added.  Like the kernel, each
  address brings its routes: IPv4 ``local ADDR`` and (for prefixes shorter than
  /31) ``broadcast`` routes, and the ``PREFIX dev DEV src ADDR`` route (a
  ``local`` one on loopback); IPv6 ``local ADDR``, the ``PREFIX dev DEV metric
  256`` route and, on a forwarding device, the subnet-router ``anycast`` route.
  A device with an MTU below 1280 has no IPv6 (the kernel drops it), below 68 no
  IPv4.  Devices are assumed up.
- **routes**: ``dst``; ``type`` (``unicast``, ``blackhole``, ``unreachable``,
  ``prohibit``, ``throw``, ``local``, ``broadcast``, ``anycast``, ``multicast``);
  ``ifindex`` (for a unicast route with a ``gateway`` it may be left out: the
  device whose address prefix holds the gateway); ``gateway`` (an IPv6 gateway
  on an IPv4 route is ``via inet6``); ``metric`` (default 0 for IPv4 and 1024
  for IPv6, as ``ip route`` adds them); ``table`` (254 main, 255 local, 253
  default, or any other id); ``src`` (the route's preferred source,
  ``ip route ... src``); ``mtu`` (``ip route ... mtu lock N``: only a locked
  route MTU changes bpf_fib_lookup's MTU); ``scope`` (IPv4: ``link`` by default
  for routes without a gateway, ``global`` otherwise; used to pick a source).
- **neighbours**: ``ip``, ``mac`` (not needed for an invalid state), ``ifindex``
  (without one the entry answers on every device), ``state`` (``ip neigh ... nud
  STATE``, default ``permanent``; ``incomplete``, ``failed`` and ``none`` are not
  valid, so NO_NEIGH).

Lookups follow net/core/filter.c's bpf_ipv4_fib_lookup and bpf_ipv6_fib_lookup
with no policy-routing rules: the checks in their order (link-local IPv6
addresses, the device, its forwarding sysctl), the tables (IPv4's local table
is merged into main, and the default table is tried when main has no route; IPv6
looks in local, then main; BPF_FIB_LOOKUP_DIRECT looks in main only, or in
``tbid`` with BPF_FIB_LOOKUP_TBID), route choice (longest prefix, then lowest
metric; BPF_FIB_LOOKUP_OUTPUT makes IPv4 skip routes out of other devices,
IPv6 only prefers the device among equal routes), the MTU check before any
field is written, and what is written back: ``rt_metric``, ``ifindex``, the
source with BPF_FIB_LOOKUP_SRC (inet_select_addr, and IPv6's RFC 6724
selection), the gateway as destination, ``smac``/``dmac`` from the neighbour
(not with BPF_FIB_LOOKUP_SKIP_NEIGH), the VLAN fields zeroed and ``mtu_result``
on success.  TC programs check the MTU as bpf_skb_fib_lookup does: against
``tot_len`` when it is set, else the frame against the egress device.

Not modelled: policy routing rules (BPF_FIB_LOOKUP_MARK changes nothing),
routes with a ``tos``, multipath routes, lightweight tunnels, VRFs, PMTU
exceptions, devices that are down, a per-device IPv6 MTU other than the
device's (``net.ipv6.conf.DEV.mtu``), and IPv6 address flags (tentative,
deprecated, temporary addresses).
"""
from __future__ import annotations

import errno
import ipaddress
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import XsimError
from ..isa.interp import ETH_HLEN
from ..runtime.helpers import HelperCall

FIB = struct.Struct("<BBHHHII16s16sI6s6s")     # struct bpf_fib_lookup, 64 bytes
AF_INET, AF_INET6 = 2, 10
(SUCCESS, BLACKHOLE, UNREACHABLE, PROHIBIT, NOT_FWDED, FWD_DISABLED, UNSUPP_LWT, NO_NEIGH,
 FRAG_NEEDED, NO_SRC_ADDR) = range(10)
LOOKUP_DIRECT, LOOKUP_OUTPUT, LOOKUP_SKIP_NEIGH, LOOKUP_TBID, LOOKUP_SRC, LOOKUP_MARK = (
    1, 2, 4, 8, 16, 32)
_ALL_FLAGS = 63
_NEG = 1 << 64

# offsets in struct bpf_fib_lookup
_TOT_LEN, _IFINDEX, _METRIC, _SRC, _DST, _TBID, _SMAC, _DMAC = 6, 8, 12, 16, 32, 48, 52, 58

RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL = 253, 254, 255
_TABLES = {"default": RT_TABLE_DEFAULT, "main": RT_TABLE_MAIN, "local": RT_TABLE_LOCAL}
SCOPE_UNIVERSE, SCOPE_LINK, SCOPE_HOST = 0, 253, 254
_SCOPES = {"global": SCOPE_UNIVERSE, "universe": SCOPE_UNIVERSE, "link": SCOPE_LINK,
           "host": SCOPE_HOST}
LOOPBACK_IFINDEX = 1
IPV4_MIN_MTU, IP_MAX_MTU = 68, 0xFFFF
IPV6_MIN_MTU, IP6_MAX_MTU = 1280, 0xFFFF + 40
VLAN_HLEN = 4

_ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "throw", "local",
                "broadcast", "anycast", "multicast")
#: route types that answer with an error rather than a next hop
_REJECT = {"blackhole": BLACKHOLE, "unreachable": UNREACHABLE, "prohibit": PROHIBIT,
           "throw": NOT_FWDED}
#: NUD_VALID
_VALID_STATES = ("permanent", "noarp", "reachable", "stale", "delay", "probe")
_STATES = _VALID_STATES + ("incomplete", "failed", "none")

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Interface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]


@dataclass(frozen=True)
class Device:
    ifindex: int
    mac: bytes
    mtu: int = 1500
    forwarding: bool = True
    #: net.ipv6.conf.DEV.forwarding; None: as ``forwarding``
    ipv6_forwarding: bool | None = None
    #: addresses in the order they were added
    addresses: tuple[Interface, ...] = ()

    @property
    def has_ipv4(self) -> bool:
        return self.mtu >= IPV4_MIN_MTU

    @property
    def has_ipv6(self) -> bool:
        return self.mtu >= IPV6_MIN_MTU

    def forwards(self, version: int) -> bool:
        """IN_DEV_FORWARD / idev->cnf.forwarding (False where the family is absent)."""
        if version == 4:
            return self.has_ipv4 and self.forwarding
        fwd = self.forwarding if self.ipv6_forwarding is None else self.ipv6_forwarding
        return self.has_ipv6 and fwd


@dataclass(frozen=True)
class Route:
    dst: Network
    type: str = "unicast"
    ifindex: int = 0
    gateway: Address | None = None
    #: None: 0 for IPv4, 1024 for IPv6 (what ``ip route add`` gives)
    metric: int | None = None
    table: int = RT_TABLE_MAIN
    #: the preferred source (``ip route ... src``)
    src: Address | None = None
    #: a locked route MTU (``mtu lock N``); 0 for none
    mtu: int = 0
    #: IPv4 route scope; None: link without a gateway, universe with one
    scope: int | None = None

    @property
    def priority(self) -> int:
        if self.metric is not None:
            return self.metric
        return 0 if self.dst.version == 4 else 1024

    @property
    def route_scope(self) -> int:
        if self.scope is not None:
            return self.scope
        if self.type == "local":
            return SCOPE_HOST
        if self.type in ("broadcast", "anycast") or (self.type == "unicast"
                                                      and self.gateway is None):
            return SCOPE_LINK
        return SCOPE_UNIVERSE


@dataclass(frozen=True)
class Neighbour:
    ip: Address
    mac: bytes
    #: 0: on every device
    ifindex: int = 0
    state: str = "permanent"

    @property
    def valid(self) -> bool:
        return self.state in _VALID_STATES


def _loopback() -> dict[int, Device]:
    return {LOOPBACK_IFINDEX: Device(LOOPBACK_IFINDEX, bytes(6), 65536, False)}


@dataclass
class NetConfig:
    """Devices, routes and neighbours; by default only loopback, which forwards nothing."""

    devices: dict[int, Device] = field(default_factory=_loopback)
    routes: list[Route] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> NetConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise XsimError(f"{path}: not a network description: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = "network description") -> NetConfig:
        """The config a JSON document (as :meth:`load` reads it) describes."""
        try:
            cfg = cls()
            for d in data.get("devices", []):
                fwd6 = d.get("ipv6_forwarding")
                cfg.devices[int(d["ifindex"])] = Device(
                    int(d["ifindex"]), _mac(d.get("mac", "00:00:00:00:00:00")),
                    int(d.get("mtu", 1500)), bool(d.get("forwarding", True)),
                    None if fwd6 is None else bool(fwd6),
                    tuple(ipaddress.ip_interface(a) for a in d.get("addresses", [])))
            for r in data.get("routes", []):
                cfg.routes.append(_route(r, cfg))
            for n in data.get("neighbours", []):
                state = n.get("state", "permanent")
                if state not in _STATES:
                    raise ValueError(f"neighbour state {state!r} is none of {list(_STATES)}")
                cfg.neighbours.append(Neighbour(ipaddress.ip_address(n["ip"]),
                                                _mac(n.get("mac", "00:00:00:00:00:00")),
                                                int(n.get("ifindex", 0)), state))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise XsimError(f"{where}: not a network description: {exc}") from None
        return cfg

    def compiled(self) -> _Tables:
        key = (tuple(self.devices.items()), tuple(self.routes), tuple(self.neighbours))
        if self._compiled is None or self._compiled[0] != key:
            self._compiled = (key, _Tables(self))
        return self._compiled[1]


def _mac(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return raw


def _table(value: object) -> int:
    if isinstance(value, str) and not value.isdigit():
        if value not in _TABLES:
            raise ValueError(f"table {value!r} is none of {list(_TABLES)} or a number")
        return _TABLES[value]
    table = int(value)  # type: ignore[call-overload]
    return RT_TABLE_MAIN if table == 0 else table


def _route(r: dict, cfg: NetConfig) -> Route:
    kind = r.get("type", "unicast")
    if kind not in _ROUTE_TYPES:
        raise ValueError(f"route type {kind!r} is none of {list(_ROUTE_TYPES)}")
    dst = ipaddress.ip_network(r["dst"])
    gateway = ipaddress.ip_address(r["gateway"]) if r.get("gateway") else None
    if gateway is not None and gateway.version != dst.version and dst.version == 6:
        raise ValueError(f"route {dst}: an IPv6 route's gateway must be IPv6")
    ifindex = int(r.get("ifindex", 0))
    if not ifindex and gateway is not None and kind == "unicast":
        ifindex = next((d.ifindex for d in cfg.devices.values() for a in d.addresses
                        if a.version == gateway.version and gateway in a.network), 0)
        if not ifindex:
            raise ValueError(f"route {dst}: no device's address prefix holds the gateway "
                             f"{gateway}; give the route an ifindex")
    scope = r.get("scope")
    if isinstance(scope, str):
        if scope not in _SCOPES:
            raise ValueError(f"route scope {scope!r} is none of {list(_SCOPES)}")
        scope = _SCOPES[scope]
    return Route(dst, kind, ifindex, gateway,
                 None if r.get("metric") is None else int(r["metric"]),
                 _table(r.get("table", RT_TABLE_MAIN)),
                 ipaddress.ip_address(r["src"]) if r.get("src") else None,
                 int(r.get("mtu", 0)), None if scope is None else int(scope))


# -- the tables, as the kernel builds them -----------------------------------------------

def _v4_scope(addr: ipaddress.IPv4Interface) -> int:
    """The scope `ip addr add` gives an IPv4 address."""
    return SCOPE_HOST if addr.ip in ipaddress.IPv4Network("127.0.0.0/8") else SCOPE_UNIVERSE


class _Tables:
    """The routes a config amounts to (its own and those its addresses bring), by
    family and table, in the order the kernel's lookups visit them."""

    def __init__(self, net: NetConfig) -> None:
        self.devices = net.devices
        derived: list[Route] = []
        #: per device, its IPv4 primary addresses in list order with their scopes
        self.primaries4: dict[int, list[tuple[ipaddress.IPv4Interface, int]]] = {}
        #: per device, its IPv6 addresses in the kernel's list order (by scope, newest
        #: first within a scope)
        self.addrs6: dict[int, list[ipaddress.IPv6Interface]] = {}
        for dev in sorted(net.devices.values(), key=lambda d: d.ifindex):
            prim: list[tuple[ipaddress.IPv4Interface, int]] = []
            six: list[ipaddress.IPv6Interface] = []
            for a in dev.addresses:
                if isinstance(a, ipaddress.IPv4Interface) and dev.has_ipv4:
                    secondary = any(p.network == a.network for p, _ in prim)
                    derived += self._v4_routes(dev, a, secondary, prim)
                    if not secondary:
                        prim.append((a, _v4_scope(a)))
                elif isinstance(a, ipaddress.IPv6Interface) and dev.has_ipv6:
                    six.insert(0, a)
                    derived += self._v6_routes(dev, a)
            six.sort(key=lambda a: -_src_scope(a.ip))      # stable: newest first
            self.primaries4[dev.ifindex], self.addrs6[dev.ifindex] = prim, six
        self.v4: dict[int, list[Route]] = {}
        self.v6: dict[int, list[Route]] = {}
        for r in derived + list(net.routes):
            if r.dst.version == 4:
                # without rules the local table is merged into main
                table = RT_TABLE_MAIN if r.table == RT_TABLE_LOCAL else r.table
                self.v4.setdefault(table, []).append(r)
            else:
                self.v6.setdefault(r.table, []).append(r)
        for routes in self.v4.values():
            routes.sort(key=lambda r: (-r.dst.prefixlen, r.priority))   # stable
        self.v4.setdefault(RT_TABLE_MAIN, [])
        self.v4[RT_TABLE_LOCAL] = self.v4[RT_TABLE_MAIN]
        self.v6.setdefault(RT_TABLE_MAIN, [])
        self.v6.setdefault(RT_TABLE_LOCAL, [])
        self.neighbours: dict[tuple[int, Address], Neighbour] = {}
        for n in net.neighbours:
            self.neighbours[(n.ifindex, n.ip)] = n

    @staticmethod
    def _v4_routes(dev: Device, a: ipaddress.IPv4Interface, secondary: bool,
                   prim: list[tuple[ipaddress.IPv4Interface, int]]) -> list[Route]:
        """fib_add_ifaddr."""
        src = a.ip if not secondary else next(p.ip for p, _ in prim if p.network == a.network)
        out = [Route(ipaddress.ip_network(f"{a.ip}/32"), "local", dev.ifindex, metric=0,
                     table=RT_TABLE_LOCAL, src=src)]
        net = a.network
        if net.network_address != ipaddress.IPv4Address(0) and not secondary and (
                net.network_address != a.ip or net.prefixlen < 32):
            if dev.ifindex == LOOPBACK_IFINDEX:
                out.append(Route(net, "local", dev.ifindex, metric=0, table=RT_TABLE_LOCAL,
                                 src=src))
            else:
                out.append(Route(net, "unicast", dev.ifindex, metric=0, src=src,
                                 scope=SCOPE_LINK))
            if net.prefixlen < 31:
                out.append(Route(ipaddress.ip_network(f"{net.broadcast_address}/32"),
                                 "broadcast", dev.ifindex, metric=0, table=RT_TABLE_LOCAL,
                                 src=src))
        return out

    @staticmethod
    def _v6_routes(dev: Device, a: ipaddress.IPv6Interface) -> list[Route]:
        """addrconf: the local route, the prefix route, the subnet-router anycast."""
        out = [Route(ipaddress.ip_network(f"{a.ip}/128"), "local", dev.ifindex, metric=0,
                     table=RT_TABLE_LOCAL)]
        if not a.ip.is_loopback:
            out.append(Route(a.network, "unicast", dev.ifindex, metric=256))
        if dev.forwards(6) and a.network.prefixlen < 127 and int(a.network.network_address):
            out.append(Route(ipaddress.ip_network(f"{a.network.network_address}/128"),
                             "anycast", dev.ifindex, metric=0, table=RT_TABLE_LOCAL))
        return out

    def neighbour(self, ifindex: int, ip: Address) -> Neighbour | None:
        return self.neighbours.get((ifindex, ip)) or self.neighbours.get((0, ip))


def _lookup4(routes: list[Route], dst: ipaddress.IPv4Address, oif: int) -> Route | None:
    """fib_table_lookup: the first route holding dst in prefix-then-metric order; a
    reject route answers at once, one out of a device other than ``oif`` is passed over."""
    for r in routes:
        if dst not in r.dst:
            continue
        if r.type in _REJECT:
            return r
        if oif and r.ifindex != oif:
            continue
        return r
    return None


def _lookup6(routes: list[Route], dst: ipaddress.IPv6Address, oif: int) -> Route | None:
    """fib6_table_lookup + rt6_select: the longest prefix, its lowest metric, and among
    those the first out of ``oif``, else the first."""
    best: list[Route] = []
    for r in routes:
        if dst not in r.dst:
            continue
        if not best or (r.dst.prefixlen, -r.priority) > (best[0].dst.prefixlen,
                                                          -best[0].priority):
            best = [r]
        elif (r.dst.prefixlen, r.priority) == (best[0].dst.prefixlen, best[0].priority):
            best.append(r)
    if not best:
        return None
    return next((r for r in best if r.ifindex == oif), best[0])


# -- source address selection ------------------------------------------------------------

def _inet_select_addr(t: _Tables, ifindex: int, dst: int, scope: int) -> bytes:
    """inet_select_addr: a primary address of the device (one on dst's prefix first),
    else the first fitting one of any device."""
    addr = None
    for a, a_scope in t.primaries4.get(ifindex, []):
        if min(a_scope, SCOPE_HOST) > scope:
            continue
        if not dst or (dst ^ int(a.ip)) & int(a.netmask) == 0:
            return a.ip.packed
        if addr is None:
            addr = a.ip.packed
    if addr is not None:
        return addr
    for index in sorted(t.primaries4):
        for a, a_scope in t.primaries4[index]:
            if min(a_scope, SCOPE_HOST) <= scope:
                return a.ip.packed
    return bytes(4)


# __ipv6_addr_type, reduced to what source selection needs
_V6_GLOBAL, _V6_LINK, _V6_SITE = 0x0E, 0x02, 0x05
_LABELS = [(ipaddress.IPv6Network(p), label) for p, label in (
    ("::1/128", 0), ("::/96", 3), ("::ffff:0:0/96", 4), ("2001::/32", 6),
    ("2001:10::/28", 7), ("2002::/16", 2), ("3ffe::/16", 12), ("fec0::/10", 11),
    ("fc00::/7", 5), ("::/0", 1))]


def _src_scope(a: ipaddress.IPv6Address) -> int:
    """__ipv6_addr_src_scope(__ipv6_addr_type(a)); -1 for the unspecified address."""
    v = int(a)
    top = v >> 96
    if top & 0xE0000000 not in (0, 0xE0000000):
        return _V6_GLOBAL
    if top >> 24 == 0xFF:
        return (v >> 112) & 0xF                      # multicast: its scope field
    if top & 0xFFC00000 == 0xFE800000:
        return _V6_LINK
    if top & 0xFFC00000 == 0xFEC00000:
        return _V6_SITE
    if v == 0:
        return -1
    if v == 1:
        return _V6_LINK                              # loopback: addr-select 3.4
    return _V6_GLOBAL


def _label(a: ipaddress.IPv6Address) -> int:
    return max((n.prefixlen, label) for n, label in _LABELS if a in n)[1]


def _orchid(a: ipaddress.IPv6Address) -> bool:
    return int(a) >> 100 == 0x20010010 >> 4


def _ipv6_dev_get_saddr(t: _Tables, ifindex: int, dst: ipaddress.IPv6Address) -> bytes | None:
    """ipv6_dev_get_saddr's RFC 6724 choice: the first candidate best by the rules in
    order (same address, scope, outgoing device, label, longest matching prefix)."""
    d_scope, d_label = _src_scope(dst), _label(dst)
    if dst.is_multicast or d_scope <= _V6_LINK:
        devices = [ifindex]
    else:
        devices = sorted(t.addrs6)
    best, best_key = None, None
    for index in devices:
        for a in t.addrs6.get(index, []):
            if a.ip.is_multicast or int(a.ip) == 0:
                continue
            scope = _src_scope(a.ip)
            scopedist = -scope if scope >= d_scope else scope - 128
            common = 128 - (int(a.ip) ^ int(dst)).bit_length()
            key = (a.ip == dst, scopedist, index == ifindex, _label(a.ip) == d_label,
                   _orchid(a.ip) == _orchid(dst), min(common, a.network.prefixlen))
            if best_key is None or key > best_key:
                best, best_key = a.ip.packed, key
    return best


# -- the helper ----------------------------------------------------------------------------

def fib_lookup(call: HelperCall, skb_len: int | None = None) -> int:
    """bpf_fib_lookup(ctx, params, plen, flags): bpf_xdp_fib_lookup, or with the frame's
    ``skb_len`` (the TC hook passes it) bpf_skb_fib_lookup."""
    ptr, plen, flags = call.args[1], call.args[2] & 0xFFFFFFFF, call.args[3] & 0xFFFFFFFF
    if plen < FIB.size or flags & ~_ALL_FLAGS:
        return _NEG - errno.EINVAL
    p = bytearray(call.read(ptr, FIB.size))
    net: NetConfig = call.env.net if call.env.net is not None else NetConfig()
    check_mtu = skb_len is None or _u16(p, _TOT_LEN) != 0
    if p[0] == AF_INET:
        rc, mtu = _ipv4(net.compiled(), p, flags, check_mtu)
    elif p[0] == AF_INET6:
        rc, mtu = _ipv6(net.compiled(), p, flags, check_mtu)
    else:
        return _NEG - errno.EAFNOSUPPORT
    if rc == SUCCESS:
        struct.pack_into("<I", p, _TBID, 0)               # h_vlan_proto, h_vlan_TCI
        if mtu:
            struct.pack_into("<H", p, _TOT_LEN, mtu & 0xFFFF)
        if skb_len is not None and not check_mtu:
            # the frame against the egress device: is_skb_forwardable
            out = net.devices[struct.unpack_from("<I", p, _IFINDEX)[0]]
            if skb_len > out.mtu + ETH_HLEN + VLAN_HLEN:
                rc = FRAG_NEEDED
            struct.pack_into("<H", p, _TOT_LEN, out.mtu & 0xFFFF)
    call.write(ptr, bytes(p))
    return rc if rc >= 0 else _NEG + rc


def _u16(p: bytearray, off: int) -> int:
    return struct.unpack_from("<H", p, off)[0]


def _ingress_refusal(t: _Tables, ifindex: int, family: int) -> int | None:
    """-ENODEV for no such device, FWD_DISABLED where it does not forward ``family``."""
    dev = t.devices.get(ifindex)
    if dev is None:
        return -errno.ENODEV
    return None if dev.forwards(family) else FWD_DISABLED


def _direct_table(p: bytearray, flags: int) -> int:
    """The table BPF_FIB_LOOKUP_DIRECT looks in: main, or with BPF_FIB_LOOKUP_TBID the
    one ``params->tbid`` names (0 meaning main), a field the kernel then zeroes."""
    if not flags & LOOKUP_TBID:
        return RT_TABLE_MAIN
    tbid = struct.unpack_from("<I", p, _TBID)[0] or RT_TABLE_MAIN
    struct.pack_into("<I", p, _TBID, 0)
    return tbid


def _out_device(t: _Tables, route: Route | None) -> Device | int:
    """The device a route sends out of, or the lookup's return code where it sends
    nothing: no route, a reject route (a throw route is NOT_FWDED), not unicast."""
    if route is None:
        return NOT_FWDED
    if route.type in _REJECT:
        return _REJECT[route.type]
    out = t.devices.get(route.ifindex)
    return out if route.type == "unicast" and out is not None else NOT_FWDED


def _ipv4(t: _Tables, p: bytearray, flags: int, check_mtu: bool) -> tuple[int, int]:
    """bpf_ipv4_fib_lookup: (return code, the MTU for bpf_fib_set_fwd_params)."""
    ifindex = struct.unpack_from("<I", p, _IFINDEX)[0]
    refused = _ingress_refusal(t, ifindex, 4)
    if refused is not None:
        return refused, 0
    oif = ifindex if flags & LOOKUP_OUTPUT else 0
    dst = ipaddress.IPv4Address(bytes(p[_DST:_DST + 4]))
    if flags & LOOKUP_DIRECT:
        tbid = _direct_table(p, flags)
        if tbid not in t.v4:
            return NOT_FWDED, 0
        route = _lookup4(t.v4[tbid], dst, oif)
    else:
        # fib_lookup without rules: main (local merged in), then default if main had
        # no route (-EAGAIN: none at all, or a throw route)
        route = _lookup4(t.v4[RT_TABLE_MAIN], dst, oif)
        if (route is None or route.type == "throw") and RT_TABLE_DEFAULT in t.v4:
            route = _lookup4(t.v4[RT_TABLE_DEFAULT], dst, oif)
    out = _out_device(t, route)
    if isinstance(out, int):
        return out, 0
    mtu = 0
    if check_mtu:
        mtu = route.mtu or min(out.mtu, IP_MAX_MTU)      # ip_mtu_from_fib_result
        if _u16(p, _TOT_LEN) > mtu:
            struct.pack_into("<H", p, _TOT_LEN, mtu)
            return FRAG_NEEDED, 0
    struct.pack_into("<II", p, _IFINDEX, out.ifindex, route.priority)
    gw = route.gateway
    if flags & LOOKUP_SRC:
        if route.src is not None:
            p[_SRC:_SRC + 4] = route.src.packed
        else:
            gw4 = int.from_bytes(gw.packed[:4], "big") if gw is not None else 0
            p[_SRC:_SRC + 4] = _inet_select_addr(t, out.ifindex, gw4, route.route_scope)
    nexthop: Address = dst
    if isinstance(gw, ipaddress.IPv4Address):
        p[_DST:_DST + 4] = gw.packed
        nexthop = gw
    elif gw is not None:                               # via inet6: the frame goes out as IPv6
        p[0] = AF_INET6
        p[_DST:_DST + 16] = gw.packed
        nexthop = gw
    return _neighbour(t, p, flags, out, nexthop), mtu


def _ipv6(t: _Tables, p: bytearray, flags: int, check_mtu: bool) -> tuple[int, int]:
    """bpf_ipv6_fib_lookup: (return code, the MTU for bpf_fib_set_fwd_params)."""
    src = ipaddress.IPv6Address(bytes(p[_SRC:_SRC + 16]))
    dst = ipaddress.IPv6Address(bytes(p[_DST:_DST + 16]))
    if any(a.is_multicast or a.is_link_local or a.is_loopback for a in (dst, src)):
        return NOT_FWDED, 0                            # rt6_need_strict
    ifindex = struct.unpack_from("<I", p, _IFINDEX)[0]
    refused = _ingress_refusal(t, ifindex, 6)
    if refused is not None:
        return refused, 0
    if flags & LOOKUP_DIRECT:
        tbid = _direct_table(p, flags)
        if tbid not in t.v6:
            return NOT_FWDED, 0
        route = _lookup6(t.v6[tbid], dst, ifindex)
    else:
        route = (_lookup6(t.v6[RT_TABLE_LOCAL], dst, ifindex)
                 or _lookup6(t.v6[RT_TABLE_MAIN], dst, ifindex))
    out = _out_device(t, route)
    if isinstance(out, int):
        return out, 0
    mtu = 0
    if check_mtu:
        # ip6_mtu_from_fib6: a locked route MTU, else the device's mtu6
        mtu = route.mtu or min(max(IPV6_MIN_MTU, out.mtu), IP6_MAX_MTU)
        if _u16(p, _TOT_LEN) > mtu:
            struct.pack_into("<H", p, _TOT_LEN, mtu & 0xFFFF)
            return FRAG_NEEDED, 0
    nexthop = route.gateway or dst
    p[_DST:_DST + 16] = nexthop.packed
    struct.pack_into("<II", p, _IFINDEX, out.ifindex, route.priority)
    if flags & LOOKUP_SRC:
        if route.src is not None:
            p[_SRC:_SRC + 16] = route.src.packed
        else:
            chosen = _ipv6_dev_get_saddr(t, out.ifindex, dst)
            if chosen is None:
                return NO_SRC_ADDR, 0
            p[_SRC:_SRC + 16] = chosen
    return _neighbour(t, p, flags, out, nexthop), mtu


def _neighbour(t: _Tables, p: bytearray, flags: int, out: Device, nexthop: Address) -> int:
    """The neighbour lookup that ends both: NO_NEIGH, or the MACs written."""
    if flags & LOOKUP_SKIP_NEIGH:
        return SUCCESS
    n = t.neighbour(out.ifindex, nexthop)
    if n is None or not n.valid:
        return NO_NEIGH
    p[_DMAC:_DMAC + 6] = n.mac
    p[_SMAC:_SMAC + 6] = out.mac
    return SUCCESS
