"""bpf_fib_lookup, xsim against the kernel, field by field.

A throwaway network namespace gets veth devices (fixed MACs and MTUs), IPv4
and IPv6 addresses, forwarding sysctls, routes (via a gateway, direct, more
specific prefixes, metrics, blackhole / unreachable / prohibit, a locked MTU,
a preferred source, a second table, an IPv6 gateway for an IPv4 route) and
neighbours (in valid and invalid states).  The same topology is written as
xsim's NetConfig JSON, with the ifindexes the kernel assigned.  Then
tests/data/nic/fib_params.o, which takes the lookup's parameters and flags from
the frame and writes the struct and the return code back into it, runs for each
case through the kernel's BPF_PROG_TEST_RUN inside the namespace (XDP with an
ingress device of the namespace, TC with one as skb->dev) and through xsim, and
the two answers are compared: the return code and every field of struct
bpf_fib_lookup.

Skipped, with the reason, where bpf() is not permitted or a namespace, veth
devices or the sysctls cannot be made.  The namespace is deleted at the end,
whatever happens.
"""
from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

import xsim
from xsim.nic.fib import (BLACKHOLE, FRAG_NEEDED, FWD_DISABLED, LOOKUP_DIRECT, LOOKUP_MARK,
                          LOOKUP_OUTPUT, LOOKUP_SKIP_NEIGH, LOOKUP_SRC, LOOKUP_TBID, NO_NEIGH,
                          NOT_FWDED, PROHIBIT, SUCCESS, UNREACHABLE, NetConfig)
from xsim.runtime import testrun

DATA = Path(__file__).parent / "data" / "nic"
OBJ = DATA / "fib_params.o"
NS = f"xsim-fib-{os.getpid()}"
CLONE_NEWNET = 0x40000000
ENODEV, EINVAL, EAFNOSUPPORT = -19, -22, -97

# -- the topology --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dev:
    """One end of a veth pair (the other end, NAME with 1 for 0, has no addresses)."""
    name: str
    mac: str
    mtu: int = 1500
    forwarding: bool = True
    ipv6_forwarding: bool = True
    addresses: tuple[str, ...] = ()

    @property
    def peer(self) -> str:
        return self.name[:-1] + "1"

    @property
    def peer_mac(self) -> str:
        return self.mac[:-1] + "1"


DEVICES = (
    Dev("a0", "02:00:00:00:0a:00", addresses=("192.168.1.1/24", "2001:db8:1::1/64")),
    # a secondary address, a second IPv4 prefix and a second IPv6 prefix
    Dev("b0", "02:00:00:00:0b:00", addresses=(
        "192.168.2.1/24", "192.168.2.2/24", "192.168.20.1/24", "2001:db8:2::1/64",
        "2001:db8:10:ff::1/64")),
    Dev("c0", "02:00:00:00:0c:00", 1300, addresses=("192.168.3.1/24", "2001:db8:3::1/64")),
    Dev("d0", "02:00:00:00:0d:00", forwarding=False, ipv6_forwarding=False,
        addresses=("192.168.4.1/24", "2001:db8:4::1/64")),
    # below IPv6's minimum MTU: the kernel gives it no IPv6 at all
    Dev("e0", "02:00:00:00:0e:00", 1000, addresses=("192.168.5.1/24",)),
    # no address of its own (only the IPv6 link-local one), no IPv6 forwarding
    Dev("f0", "02:00:00:00:0f:00", ipv6_forwarding=False),
)

#: routes as NetConfig JSON, with "dev" for the device's name
ROUTES: tuple[dict, ...] = (
    {"dst": "10.0.0.0/8", "gateway": "192.168.2.254", "dev": "b0"},
    {"dst": "10.11.0.0/16", "gateway": "192.168.2.253", "dev": "b0"},      # no neighbour
    {"dst": "10.2.0.0/16", "dev": "b0"},                                   # direct
    {"dst": "10.3.0.0/16", "gateway": "192.168.3.254", "dev": "c0"},      # MTU 1300
    {"dst": "10.4.0.0/16", "gateway": "192.168.2.254", "dev": "b0", "mtu": 1000},
    {"dst": "10.5.0.0/24", "gateway": "192.168.2.254", "dev": "b0", "metric": 10},
    {"dst": "10.5.0.0/24", "gateway": "192.168.1.254", "dev": "a0", "metric": 5},
    {"dst": "10.7.0.0/16", "gateway": "192.168.2.254", "dev": "b0", "src": "192.168.1.1"},
    {"dst": "10.8.0.0/16", "gateway": "2001:db8:2::fe", "dev": "b0"},    # via inet6
    {"dst": "10.9.0.0/16", "dev": "c0"},                       # its neighbour is on b0
    {"dst": "10.10.0.0/16", "dev": "f0"},                      # f0 has no IPv4 address
    {"dst": "10.16.0.0/16", "gateway": "192.168.5.254", "dev": "e0"},     # MTU 1000
    {"dst": "10.19.0.0/16", "gateway": "192.168.20.254", "dev": "b0"},
    {"dst": "10.0.0.0/8", "gateway": "192.168.3.254", "dev": "c0", "table": 100},
    {"dst": "203.0.113.0/24", "type": "blackhole"},
    {"dst": "203.0.113.128/25", "gateway": "192.168.2.254", "dev": "b0"},
    {"dst": "198.51.100.0/24", "type": "unreachable"},
    {"dst": "192.0.2.0/24", "type": "prohibit"},
    {"dst": "198.18.0.0/15", "gateway": "192.168.2.254", "dev": "b0", "table": 253},
    {"dst": "198.18.5.0/24", "type": "throw"},
    {"dst": "198.19.0.0/16", "type": "blackhole"},
    {"dst": "2001:db8:10::/48", "gateway": "2001:db8:2::fe", "dev": "b0"},
    {"dst": "2001:db8:11::/48", "gateway": "2001:db8:2::fd", "dev": "b0"},
    {"dst": "2001:db8:12::/48", "dev": "b0"},
    {"dst": "2001:db8:13::/48", "gateway": "2001:db8:3::fe", "dev": "c0"},
    {"dst": "2001:db8:14::/48", "gateway": "fe80::fe", "dev": "b0"},
    {"dst": "2001:db8:15::/48", "gateway": "2001:db8:2::fe", "dev": "b0", "metric": 10},
    {"dst": "2001:db8:15::/48", "gateway": "2001:db8:1::fe", "dev": "a0", "metric": 5},
    {"dst": "2001:db8:16::/48", "dev": "b0"},
    {"dst": "2001:db8:16::/48", "dev": "c0", "append": True},  # same prefix and metric
    {"dst": "2001:db8:17::/48", "gateway": "2001:db8:2::fe", "dev": "b0",
     "src": "2001:db8:1::1"},
    {"dst": "2001:db8:18::/48", "dev": "f0"},
    {"dst": "2001:db8:19::/48", "gateway": "2001:db8:2::fe", "dev": "b0", "mtu": 1400},
    {"dst": "2001:db8:10::/48", "gateway": "2001:db8:3::fe", "dev": "c0", "table": 100},
    {"dst": "2001:db8:dead::/48", "type": "blackhole"},
    {"dst": "2001:db8:dead:1::/64", "gateway": "2001:db8:2::fe", "dev": "b0"},
    {"dst": "2001:db8:beef::/48", "type": "unreachable"},
    {"dst": "2001:db8:f00d::/48", "type": "prohibit"},
    {"dst": "2001:db8:7::/48", "type": "throw"},
)

#: neighbours as NetConfig JSON, with "dev"
NEIGHBOURS: tuple[dict, ...] = (
    {"ip": "192.168.2.254", "dev": "b0", "mac": "02:00:00:00:02:fe"},
    {"ip": "192.168.1.254", "dev": "a0", "mac": "02:00:00:00:01:fe"},
    {"ip": "192.168.3.254", "dev": "c0", "mac": "02:00:00:00:03:fe"},
    {"ip": "192.168.5.254", "dev": "e0", "mac": "02:00:00:00:05:fe"},
    {"ip": "10.2.0.5", "dev": "b0", "mac": "02:00:00:00:02:05"},
    {"ip": "10.9.0.1", "dev": "b0", "mac": "02:00:00:00:09:01"},
    {"ip": "192.168.2.250", "dev": "b0", "mac": "02:00:00:00:02:fa", "state": "stale"},
    {"ip": "192.168.2.249", "dev": "b0", "state": "incomplete"},
    {"ip": "192.168.2.248", "dev": "b0", "state": "failed"},
    {"ip": "192.168.2.247", "dev": "b0", "mac": "02:00:00:00:02:f7", "state": "noarp"},
    {"ip": "192.168.2.246", "dev": "b0", "mac": "02:00:00:00:02:f6", "state": "reachable"},
    {"ip": "2001:db8:2::fe", "dev": "b0", "mac": "02:00:00:00:02:ef"},
    {"ip": "2001:db8:1::fe", "dev": "a0", "mac": "02:00:00:00:01:ef"},
    {"ip": "2001:db8:3::fe", "dev": "c0", "mac": "02:00:00:00:03:ef"},
    {"ip": "2001:db8:12::5", "dev": "b0", "mac": "02:00:00:00:12:05"},
    {"ip": "fe80::fe", "dev": "b0", "mac": "02:00:00:00:02:ee"},
    {"ip": "2001:db8:16::1", "dev": "b0", "mac": "02:00:00:00:16:0b"},
    {"ip": "2001:db8:16::1", "dev": "c0", "mac": "02:00:00:00:16:0c"},
    {"ip": "2001:db8:2::f0", "dev": "b0", "state": "failed"},
)


# -- the namespace ---------------------------------------------------------------------------

def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside(name: str) -> Iterator[None]:
    """This thread in network namespace ``name`` for the block, back in its own after."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
    finally:
        os.close(home)


def ip(*args: str, check: bool = True) -> str:
    res = subprocess.run(["ip", "-n", NS, *args], capture_output=True, text=True, timeout=30)
    if check and res.returncode:
        raise RuntimeError(f"ip -n {NS} {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def sysctl(key: str, value: int) -> None:
    with inside(NS):
        Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")


def _route_cmd(r: dict) -> list[str]:
    dst = ipaddress.ip_network(r["dst"])
    cmd = ["-6" if dst.version == 6 else "-4", "route", "append" if r.get("append") else "add"]
    if r.get("type", "unicast") != "unicast":
        cmd.append(r["type"])
    cmd.append(str(dst))
    if "gateway" in r:
        gw = ipaddress.ip_address(r["gateway"])
        cmd += ["via"] + (["inet6"] if gw.version != dst.version else []) + [str(gw)]
    if "dev" in r:
        cmd += ["dev", r["dev"]]
    for key, word in (("metric", "metric"), ("table", "table"), ("src", "src")):
        if key in r:
            cmd += [word, str(r[key])]
    if "mtu" in r:
        cmd += ["mtu", "lock", str(r["mtu"])]
    return cmd


def _neigh_cmd(n: dict) -> list[str]:
    cmd = ["neigh", "add", n["ip"], "dev", n["dev"]]
    if "mac" in n:
        cmd += ["lladdr", n["mac"]]
    return cmd + ["nud", n.get("state", "permanent")]


@dataclass
class Topology:
    ifindex: dict[str, int]
    json_path: Path
    link_local: dict[str, list[str]] = field(default_factory=dict)


class Unavailable(Exception):
    """This machine cannot make the namespace's devices or set its sysctls."""


def _build(json_path: Path) -> Topology:
    """Make the devices, addresses, sysctls, routes and neighbours; read back what the
    kernel assigned; the NetConfig JSON that says the same."""
    try:
        # no DAD and no router solicitations: no traffic between the veth ends makes
        # neighbour entries; forwarding on everywhere (all.* also sets default.*), then
        # off where a device says
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad",
                    "net.ipv6.conf.all.router_solicitations",
                    "net.ipv6.conf.default.router_solicitations"):
            sysctl(key, 0)
        sysctl("net.ipv4.conf.all.forwarding", 1)
        sysctl("net.ipv6.conf.all.forwarding", 1)
        ip("link", "set", "lo", "up")
        for d in DEVICES:
            ip("link", "add", d.name, "address", d.mac, "mtu", str(d.mtu), "type", "veth",
               "peer", "name", d.peer, "address", d.peer_mac)
    except (RuntimeError, OSError) as exc:
        raise Unavailable(str(exc)) from None
    for d in DEVICES:
        ip("link", "set", d.peer, "up")
        ip("link", "set", d.name, "up")
        if not d.forwarding:
            sysctl(f"net.ipv4.conf.{d.name}.forwarding", 0)
        if not d.ipv6_forwarding and d.mtu >= 1280:
            sysctl(f"net.ipv6.conf.{d.name}.forwarding", 0)
        for a in d.addresses:
            if ipaddress.ip_interface(a).version == 6:
                ip("-6", "addr", "add", a, "dev", d.name, "nodad")
            else:
                ip("-4", "addr", "add", a, "dev", d.name)
    links = _wait_for_link_local()
    for r in ROUTES:
        ip(*_route_cmd(r))
    for n in NEIGHBOURS:
        ip(*_neigh_cmd(n))
    info = {link["ifname"]: link for link in json.loads(ip("-j", "addr", "show"))}
    ifindex = {name: link["ifindex"] for name, link in info.items()}
    assert ifindex["lo"] == 1
    for d in DEVICES:                                  # what the kernel took is the spec
        assert info[d.name]["address"] == d.mac and info[d.name]["mtu"] == d.mtu
        assert info[d.peer]["address"] == d.peer_mac
    devices = [{"ifindex": 1, "mac": "00:00:00:00:00:00", "mtu": 65536,
                "addresses": ["127.0.0.1/8", "::1/128"]}]
    for d in DEVICES:
        devices.append({"ifindex": ifindex[d.name], "mac": d.mac, "mtu": d.mtu,
                        "forwarding": d.forwarding, "ipv6_forwarding": d.ipv6_forwarding,
                        "addresses": list(d.addresses) + links[d.name]})
        devices.append({"ifindex": ifindex[d.peer], "mac": d.peer_mac,
                        "mtu": info[d.peer]["mtu"], "addresses": links[d.peer]})
    routes = []
    for r in ROUTES:
        r = dict(r)
        r.pop("append", None)
        if "dev" in r:
            r["ifindex"] = ifindex[r.pop("dev")]
        routes.append(r)
    neighbours = []
    for n in NEIGHBOURS:
        n = dict(n)
        n["ifindex"] = ifindex[n.pop("dev")]
        neighbours.append(n)
    json_path.write_text(json.dumps({"devices": devices, "routes": routes,
                                     "neighbours": neighbours}, indent=1))
    return Topology(ifindex, json_path, links)


def _wait_for_link_local(timeout: float = 15.0) -> dict[str, list[str]]:
    """The fe80:: addresses the kernel gives each IPv6 device once its carrier is up."""
    want = [d.name for d in DEVICES if d.mtu >= 1280] + [d.peer for d in DEVICES]
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, list[str]] = {}
        for link in json.loads(ip("-j", "addr", "show")):
            got[link["ifname"]] = [f"{a['local']}/{a['prefixlen']}"
                                   for a in link.get("addr_info", [])
                                   if a["family"] == "inet6" and a["scope"] == "link"
                                   and not a.get("tentative")]
        if all(got.get(name) for name in want):
            return {name: got.get(name, []) for name in got}
        if time.monotonic() > deadline:
            raise RuntimeError(f"no IPv6 link-local addresses after {timeout} s: {got}")
        time.sleep(0.1)


def _why_not() -> str | None:
    """Why this machine cannot run the kernel side, or None."""
    try:
        import xsim.kernel as k
    except ImportError as exc:
        return f"xsim.kernel unusable: {exc}"
    ok, why = k.available()
    if not ok:
        return why
    if shutil.which("ip") is None:
        return "no ip(8) (iproute2) to make a network namespace"
    if not hasattr(_libc(), "setns"):
        return "libc has no setns"
    return None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    why = _why_not()
    if why:
        pytest.skip(why)
    res = subprocess.run(["ip", "netns", "add", NS], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot make a network namespace: {res.stderr.strip()}")
    try:
        try:
            topo = _build(tmp_path_factory.mktemp("fib") / "net.json")
        except Unavailable as exc:
            pytest.skip(f"cannot make the test network in namespace {NS}: {exc}")
        yield topo
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


@pytest.fixture(scope="module")
def progs(net: Topology) -> Iterator[dict]:
    """The program loaded into the kernel (both hooks) and into xsim with the JSON."""
    from xsim.elf.loader import load_spec
    from xsim.kernel import KernelObject
    spec = load_spec(OBJ)
    kobj = KernelObject.load(spec)
    try:
        mine = xsim.load(OBJ, env=xsim.RunEnv(net=NetConfig.load(net.json_path)))
        yield {"kernel": kobj, "xsim": mine}
    finally:
        kobj.close()


# -- the cases -------------------------------------------------------------------------------

REQ_AT = 16                 # struct req in the frame, after Ethernet and 2 bytes
PARAMS_AT = REQ_AT + 8      # struct bpf_fib_lookup
RC_AT = PARAMS_AT + 64
FRAME_LEN = RC_AT + 8
VLAN = bytes.fromhex("81000123")               # h_vlan_proto, h_vlan_TCI sentinels
SMAC, DMAC = bytes.fromhex("aaaaaaaaaaaa"), bytes.fromhex("bbbbbbbbbbbb")


@dataclass(frozen=True)
class Case:
    name: str
    dst: str
    want: int | dict                 # the kernel's return code ({"xdp": .., "tc": ..})
    via: str | int = "a0"            # params->ifindex: a device name or a number
    flags: int = 0
    tot_len: int = 0
    tbid: int | None = None          # written over the VLAN fields
    src: str = ""
    family: int | None = None
    frame_len: int = FRAME_LEN       # TC checks the frame against the egress MTU

    def params(self, ifindex: dict[str, int]) -> bytes:
        dst = ipaddress.ip_address(self.dst)
        family = self.family if self.family is not None else (2 if dst.version == 4 else 10)
        src = ipaddress.ip_address(self.src or ("192.168.1.10" if dst.version == 4
                                                else "2001:db8:1::10"))
        dev = ifindex[self.via] if isinstance(self.via, str) else self.via
        vlan = struct.pack("<I", self.tbid) if self.tbid is not None else VLAN
        return (struct.pack("<BBHHHII", family, 17, 0x3412, 0x5000, self.tot_len, dev,
                            0x28)
                + src.packed.ljust(16, b"\0") + dst.packed.ljust(16, b"\0") + vlan
                + SMAC + DMAC)

    def frame(self, ifindex: dict[str, int]) -> bytes:
        head = bytes.fromhex("020000000001" "020000000002" "88b5") + bytes(2)
        req = struct.pack("<II", self.flags, 0) + self.params(ifindex) + bytes(8)
        return (head + req).ljust(self.frame_len, b"\x5a")

    def expected(self, hook: str) -> int:
        return self.want[hook] if isinstance(self.want, dict) else self.want


D, O, S, T, SRC, M = (LOOKUP_DIRECT, LOOKUP_OUTPUT, LOOKUP_SKIP_NEIGH, LOOKUP_TBID,
                      LOOKUP_SRC, LOOKUP_MARK)
CASES = (
    # IPv4: each return code
    Case("v4 via gateway", "10.1.2.3", SUCCESS),
    Case("v4 gateway without neighbour", "10.11.0.1", NO_NEIGH),
    Case("v4 direct route", "10.2.0.5", SUCCESS),
    Case("v4 direct route without neighbour", "10.2.0.6", NO_NEIGH),
    Case("v4 neighbour on another device", "10.9.0.1", NO_NEIGH),
    Case("v4 connected, stale neighbour", "192.168.2.250", SUCCESS),
    Case("v4 connected, reachable neighbour", "192.168.2.246", SUCCESS),
    Case("v4 connected, noarp neighbour", "192.168.2.247", SUCCESS),
    Case("v4 connected, incomplete neighbour", "192.168.2.249", NO_NEIGH),
    Case("v4 connected, failed neighbour", "192.168.2.248", NO_NEIGH),
    Case("v4 blackhole", "203.0.113.7", BLACKHOLE),
    Case("v4 more specific than the blackhole", "203.0.113.200", SUCCESS),
    Case("v4 unreachable", "198.51.100.1", UNREACHABLE),
    Case("v4 prohibit", "192.0.2.1", PROHIBIT),
    Case("v4 no route", "8.8.8.8", NOT_FWDED),
    Case("v4 no route in main: the default table", "198.18.0.1", SUCCESS),
    Case("v4 throw: on to the default table", "198.18.5.1", SUCCESS),
    Case("v4 a blackhole in main is final", "198.19.0.1", BLACKHOLE),
    Case("v4 direct: main only", "198.18.0.1", NOT_FWDED, flags=D),
    Case("v4 direct: a throw route", "198.18.5.1", NOT_FWDED, flags=D),
    Case("v4 table default", "198.18.5.1", SUCCESS, flags=D | T, tbid=253),
    Case("v4 own address", "192.168.2.1", NOT_FWDED),
    Case("v4 own address, direct", "192.168.2.1", NOT_FWDED, flags=D),
    Case("v4 subnet broadcast", "192.168.2.255", NOT_FWDED),
    Case("v4 loopback prefix", "127.0.0.5", NOT_FWDED),
    Case("v4 forwarding off", "10.1.2.3", FWD_DISABLED, via="d0"),
    Case("v4 forwarding off, output", "10.1.2.3", FWD_DISABLED, via="d0", flags=O),
    Case("v4 forwarding on, IPv6 forwarding off", "10.1.2.3", SUCCESS, via="f0"),
    Case("v4 no IPv6 is no matter", "10.1.2.3", SUCCESS, via="e0"),
    Case("v4 from loopback", "10.1.2.3", SUCCESS, via="lo"),
    Case("v4 no such device", "10.1.2.3", ENODEV, via=999),
    Case("v4 over the MTU", "10.3.0.1", FRAG_NEEDED, tot_len=1301),
    Case("v4 at the MTU", "10.3.0.1", SUCCESS, tot_len=1300),
    Case("v4 over a locked route MTU", "10.4.0.1", FRAG_NEEDED, tot_len=1001),
    Case("v4 a locked route MTU", "10.4.0.1", SUCCESS),
    Case("v4 TC frame at the egress MTU", "10.16.0.1", SUCCESS, frame_len=1018),
    Case("v4 TC frame over the egress MTU", "10.16.0.1", {"xdp": SUCCESS, "tc": FRAG_NEEDED},
         frame_len=1019),
    Case("v4 TC frame over the MTU, tot_len under", "10.16.0.1", SUCCESS, frame_len=1019,
         tot_len=1000),
    Case("v4 lower metric", "10.5.0.1", SUCCESS),
    Case("v4 output: only routes out of the device", "10.5.0.1", SUCCESS, via="b0", flags=O),
    Case("v4 output: none out of the device", "10.5.0.1", NOT_FWDED, via="c0", flags=O),
    Case("v4 output via gateway", "10.1.2.3", SUCCESS, via="b0", flags=O),
    Case("v4 output, route out of another device", "10.1.2.3", NOT_FWDED, flags=O),
    Case("v4 IPv6 gateway", "10.8.0.1", SUCCESS),
    Case("v4 IPv6 gateway, skip neighbour", "10.8.0.1", SUCCESS, flags=S),
    # flags
    Case("v4 direct", "10.1.2.3", SUCCESS, flags=D),
    Case("v4 direct blackhole", "203.0.113.7", BLACKHOLE, flags=D),
    Case("v4 table 100", "10.1.2.3", SUCCESS, flags=D | T, tbid=100),
    Case("v4 table 100, no route", "192.168.2.250", NOT_FWDED, flags=D | T, tbid=100),
    Case("v4 table 0 is main", "10.1.2.3", SUCCESS, flags=D | T, tbid=0),
    Case("v4 table local is main", "10.1.2.3", SUCCESS, flags=D | T, tbid=255),
    Case("v4 no table 200", "10.1.2.3", NOT_FWDED, flags=D | T, tbid=200),
    Case("v4 tbid without direct", "10.11.0.1", NO_NEIGH, flags=T, tbid=100),
    Case("v4 skip neighbour", "10.1.2.3", SUCCESS, flags=S),
    Case("v4 skip a missing neighbour", "10.11.0.1", SUCCESS, flags=S),
    Case("v4 source: gateway's prefix", "10.1.2.3", SUCCESS, flags=SRC),
    Case("v4 source: second prefix", "10.19.0.1", NO_NEIGH, flags=SRC),
    Case("v4 source: connected route", "192.168.2.250", SUCCESS, flags=SRC),
    Case("v4 source: route src", "10.7.0.1", SUCCESS, flags=SRC),
    Case("v4 source: device without address", "10.10.0.1", NO_NEIGH, flags=SRC),
    Case("v4 source, skip neighbour", "10.2.0.6", SUCCESS, flags=SRC | S),
    Case("v4 mark", "10.1.2.3", SUCCESS, flags=M),
    Case("v4 all flags", "10.1.2.3", SUCCESS, flags=D | O | S | SRC | M, via="b0"),
    Case("v4 unknown flag", "10.1.2.3", EINVAL, flags=64),
    Case("v4 family 0", "10.1.2.3", EAFNOSUPPORT, family=0),
    # IPv6
    Case("v6 via gateway", "2001:db8:10::1", SUCCESS),
    Case("v6 gateway without neighbour", "2001:db8:11::1", NO_NEIGH),
    Case("v6 direct route", "2001:db8:12::5", SUCCESS),
    Case("v6 direct route without neighbour", "2001:db8:12::6", NO_NEIGH),
    Case("v6 link-local gateway", "2001:db8:14::1", SUCCESS),
    Case("v6 connected, failed neighbour", "2001:db8:2::f0", NO_NEIGH),
    Case("v6 blackhole", "2001:db8:dead::1", BLACKHOLE),
    Case("v6 more specific than the blackhole", "2001:db8:dead:1::1", SUCCESS),
    Case("v6 unreachable", "2001:db8:beef::1", UNREACHABLE),
    Case("v6 prohibit", "2001:db8:f00d::1", PROHIBIT),
    Case("v6 no route", "2001:db8:ffff::1", NOT_FWDED),
    Case("v6 throw", "2001:db8:7::1", NOT_FWDED),
    Case("v6 own address", "2001:db8:2::1", NOT_FWDED),
    Case("v6 own address, direct: main only", "2001:db8:2::1", NO_NEIGH, flags=D),
    Case("v6 subnet-router anycast", "2001:db8:2::", NOT_FWDED),
    Case("v6 subnet-router anycast, direct", "2001:db8:2::", NO_NEIGH, flags=D),
    Case("v6 no anycast without forwarding", "2001:db8:4::", NO_NEIGH),
    Case("v6 link-local destination", "fe80::fe", NOT_FWDED),
    Case("v6 link-local destination, no device", "fe80::fe", NOT_FWDED, via=999),
    Case("v6 link-local source", "2001:db8:10::1", NOT_FWDED, src="fe80::1"),
    Case("v6 multicast destination", "ff02::1", NOT_FWDED),
    Case("v6 loopback destination", "::1", NOT_FWDED),
    Case("v6 forwarding off", "2001:db8:10::1", FWD_DISABLED, via="d0"),
    Case("v6 forwarding off, IPv4 on", "2001:db8:10::1", FWD_DISABLED, via="f0"),
    Case("v6 no IPv6 on the device", "2001:db8:10::1", FWD_DISABLED, via="e0"),
    Case("v6 from loopback", "2001:db8:10::1", SUCCESS, via="lo"),
    Case("v6 no such device", "2001:db8:10::1", ENODEV, via=999),
    Case("v6 over the MTU", "2001:db8:13::1", FRAG_NEEDED, tot_len=1301),
    Case("v6 at the MTU", "2001:db8:13::1", SUCCESS, tot_len=1300),
    Case("v6 over a locked route MTU", "2001:db8:19::1", FRAG_NEEDED, tot_len=1401),
    Case("v6 a locked route MTU", "2001:db8:19::1", SUCCESS),
    Case("v6 TC frame at the egress MTU", "2001:db8:13::1", SUCCESS, frame_len=1318),
    Case("v6 TC frame over the egress MTU", "2001:db8:13::1",
         {"xdp": SUCCESS, "tc": FRAG_NEEDED}, frame_len=1319),
    Case("v6 lower metric", "2001:db8:15::1", SUCCESS),
    Case("v6 output does not restrict", "2001:db8:15::1", SUCCESS, via="b0", flags=O),
    Case("v6 equal routes: the first", "2001:db8:16::1", SUCCESS),
    Case("v6 equal routes: the device's", "2001:db8:16::1", SUCCESS, via="c0"),
    Case("v6 equal routes: output device", "2001:db8:16::1", SUCCESS, via="c0", flags=O),
    Case("v6 direct", "2001:db8:10::1", SUCCESS, flags=D),
    Case("v6 table 100", "2001:db8:10::1", SUCCESS, flags=D | T, tbid=100),
    Case("v6 table local", "2001:db8:10::1", NOT_FWDED, flags=D | T, tbid=255),
    Case("v6 no table 200", "2001:db8:10::1", NOT_FWDED, flags=D | T, tbid=200),
    Case("v6 skip neighbour", "2001:db8:10::1", SUCCESS, flags=S),
    Case("v6 skip a missing neighbour", "2001:db8:11::1", SUCCESS, flags=S),
    Case("v6 source: longest matching prefix", "2001:db8:10::1", SUCCESS, flags=SRC),
    Case("v6 source: longest prefix on the device", "2001:db8:12::5", SUCCESS, flags=SRC),
    Case("v6 source: the outgoing device first", "2001:db8:13::1", SUCCESS, flags=SRC),
    Case("v6 source: route src", "2001:db8:17::1", SUCCESS, flags=SRC),
    Case("v6 source: device with link-local only", "2001:db8:18::1", NO_NEIGH, flags=SRC),
    Case("v6 source: own address, direct", "2001:db8:2::1", NO_NEIGH, flags=SRC | D),
    Case("v6 mark", "2001:db8:10::1", SUCCESS, flags=M),
    Case("v6 all flags", "2001:db8:10::1", SUCCESS, flags=D | O | S | SRC | M, via="b0"),
)

FIELDS = struct.Struct("<BBHHHII16s16s4s6s6s")
NAMES = ("family", "l4_protocol", "sport", "dport", "tot_len/mtu_result", "ifindex",
         "tos/flowinfo/rt_metric", "src", "dst", "vlan/tbid", "smac/mark", "dmac")


def decode(out: bytes) -> dict:
    """The struct bpf_fib_lookup and the return code from a frame the program wrote."""
    values = FIELDS.unpack(out[PARAMS_AT:RC_AT])
    d = {n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(NAMES, values)}
    d["rc"] = struct.unpack_from("<q", out, RC_AT)[0]
    return d


def kernel_answer(net: Topology, progs: dict, case: Case, hook: str) -> tuple[int, dict]:
    frame = case.frame(net.ifindex)
    ingress = net.ifindex["a0"]
    if hook == "xdp":
        # struct xdp_md: the linear data is all of it; the ingress device is in the netns
        ctx = struct.pack("<6I", 0, len(frame), 0, ingress, 0, 0)
    else:
        skb = bytearray(192)
        struct.pack_into("<I", skb, 40, ingress)       # __sk_buff.ifindex: skb->dev
        ctx = bytes(skb)
    with inside(NS):
        res = progs["kernel"].programs[f"fib_{hook}"].test_run(data_in=frame, ctx_in=ctx)
    return res.retval, decode(res.data_out)


def xsim_answer(net: Topology, progs: dict, case: Case, hook: str) -> tuple[int, dict]:
    # xsim's test runs take no ingress device but loopback; the program does not look
    out = testrun.test_run(progs["xsim"].programs[f"fib_{hook}"],
                           data_in=case.frame(net.ifindex))
    assert out.data_out is not None
    return out.retval, decode(out.data_out)


@pytest.mark.parametrize("hook", ["xdp", "tc"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fib_lookup_matches_the_kernel(net: Topology, progs: dict, case: Case,
                                       hook: str) -> None:
    k_ret, theirs = kernel_answer(net, progs, case, hook)
    m_ret, mine = xsim_answer(net, progs, case, hook)
    assert theirs["rc"] == case.expected(hook), (
        f"the kernel says {theirs['rc']}, the case means {case.expected(hook)}: {theirs}")
    assert k_ret == m_ret
    diff = {k: (theirs[k], mine[k]) for k in theirs if theirs[k] != mine[k]}
    assert not diff, f"kernel vs xsim: {diff}"


def test_the_kernel_kept_the_neighbours_we_gave(net: Topology, progs: dict) -> None:
    """No neighbour entry appeared that the JSON does not have (stray traffic between the
    veth ends would make one), so the comparisons above compared like with like."""
    seen = set()
    for n in json.loads(ip("-j", "neigh", "show", "nud", "all")):
        if not ipaddress.ip_address(n["dst"]).is_multicast:   # MLD's, never looked up
            seen.add((n["dst"], n["dev"]))
    want = {(str(ipaddress.ip_address(n["ip"])), n["dev"]) for n in NEIGHBOURS}
    assert seen == want, (seen - want, want - seen)


def test_the_original_network_namespace_is_back(net: Topology, progs: dict) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    with inside(NS):
        inner = os.readlink("/proc/thread-self/ns/net")
    assert inner != before and os.readlink("/proc/thread-self/ns/net") == before


def test_fib_o_matches_the_kernel(net: Topology) -> None:
    """tests/data/nic/fib.o (an IPv4 router on the frame's destination, params.ifindex
    from ctx->ingress_ifindex: loopback in both) in the same namespace."""
    from xsim.kernel import kernel_test_run
    from xsim.elf.loader import load_spec
    path = DATA / "fib.o"
    for dst, length in (("10.1.2.3", 84), ("10.11.0.1", 84), ("8.8.8.8", 84),
                        ("203.0.113.7", 84), ("10.3.0.1", 1400), ("10.3.0.1", 1300)):
        ip4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, 17, 0,
                          bytes([192, 168, 1, 10]), ipaddress.IPv4Address(dst).packed)
        frame = bytes.fromhex("020000000001" "02000000000a" "0800") + ip4 + bytes(length - 20)
        with inside(NS):
            theirs = kernel_test_run(load_spec(path), "route", data_in=frame)
        obj = xsim.load(path, env=xsim.RunEnv(net=NetConfig.load(net.json_path)))
        mine = testrun.report(obj, obj.programs["route"],
                              testrun.test_run(obj.programs["route"], data_in=frame))
        for key in ("retval", "data_out", "maps"):
            assert theirs[key] == mine[key], (dst, length, key, theirs[key], mine[key])
