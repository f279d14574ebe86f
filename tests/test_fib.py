"""bpf_fib_lookup against a user's devices, routes and neighbours (xsim.nic.fib)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

import xsim
from xsim.cli import main
from xsim.nic import fib
from xsim.nic.fib import NetConfig
from xsim.runtime import testrun

DATA = Path(__file__).parent / "data" / "nic"


def frame(dst: str, length: int = 84) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, 17, 0,
                     bytes([192, 168, 1, 10]), bytes(int(x) for x in dst.split(".")))
    return bytes.fromhex("020000000001" "02000000000a" "0800") + ip + bytes(length - 20)


def run(dst: str, length: int = 84):
    obj = xsim.load(DATA / "fib.o", env=xsim.RunEnv(net=NetConfig.load(DATA / "net.json")))
    out = testrun.test_run(obj.programs["route"], data_in=frame(dst, length))
    return out, obj.maps["last"].lookup(bytes(4))


def test_a_route_via_a_gateway() -> None:
    out, p = run("10.1.2.3")
    assert out.retval == 4 and out.redirect == ("ifindex", 2)         # XDP_REDIRECT
    assert struct.unpack_from("<I", p, 8)[0] == 2                      # egress ifindex
    assert p[32:36] == bytes([192, 168, 1, 254])                       # dst = the gateway
    assert out.data_out[:12] == bytes.fromhex("0200000000fe" "020000000002")


@pytest.mark.parametrize("dst, length, verdict, why", [
    ("10.9.1.1", 84, 1, "on-link route, no neighbour: BPF_FIB_LKUP_RET_NO_NEIGH"),
    ("8.8.8.8", 84, 2, "no route: NOT_FWDED, up the stack (XDP_PASS)"),
    ("203.0.113.7", 84, 1, "blackhole"),
    ("172.16.0.1", 200, 1, "FRAG_NEEDED: over the egress MTU of 100"),
])
def test_the_kernels_failures(dst: str, length: int, verdict: int, why: str) -> None:
    out, _ = run(dst, length)
    assert out.retval == verdict, why


def test_mtu_result_and_forwarding_disabled() -> None:
    _, p = run("172.16.0.1", 200)
    assert struct.unpack_from("<H", p, 6)[0] == 100                    # mtu_result
    obj = xsim.load(DATA / "fib.o")                                    # loopback: no forwarding
    assert testrun.test_run(obj.programs["route"], data_in=frame("10.1.2.3")).retval == 1


def test_bad_network_description(tmp_path: Path) -> None:
    bad = tmp_path / "net.json"
    bad.write_text(json.dumps({"routes": [{"dst": "10.0.0.0/33"}]}))
    with pytest.raises(xsim.XsimError, match="not a network description"):
        NetConfig.load(bad)


def test_cli_net_option(tmp_path: Path, capsys) -> None:
    (tmp_path / "f.bin").write_bytes(frame("10.1.2.3"))
    assert main(["run", str(DATA / "fib.o"), "--data-in", str(tmp_path / "f.bin"),
                 "--net", str(DATA / "net.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retval"] == 4


# -- fib_params.o: the parameters and flags come in the frame, the struct goes back in it

NET = {"devices": [
    {"ifindex": 2, "mac": "02:00:00:00:00:02", "addresses": ["192.168.1.1/24",
                                                             "2001:db8:1::1/64"]},
    {"ifindex": 3, "mac": "02:00:00:00:00:03", "mtu": 1300, "ipv6_forwarding": False,
     "addresses": ["192.168.3.1/24", "2001:db8:3::1/64"]}],
    "routes": [{"dst": "10.0.0.0/8", "gateway": "192.168.3.254"},     # ifindex from the prefix
               {"dst": "2001:db8:10::/48", "gateway": "2001:db8:3::fe"}],
    "neighbours": [{"ip": "192.168.3.254", "mac": "02:00:00:00:03:fe", "ifindex": 3},
                   {"ip": "192.168.1.7", "mac": "02:00:00:00:01:07", "ifindex": 3},
                   {"ip": "2001:db8:3::fe", "mac": "02:00:00:00:03:ef"}]}


def lookup(dst: str, flags: int = 0, ifindex: int = 2, tot_len: int = 0, hook: str = "xdp",
           net: dict = NET) -> tuple[int, bytes]:
    """(return code, struct bpf_fib_lookup) from fib_params.o."""
    import ipaddress
    a = ipaddress.ip_address(dst)
    src = ipaddress.ip_address("192.168.1.10" if a.version == 4 else "2001:db8:1::10")
    params = (struct.pack("<BBHHHII", 2 if a.version == 4 else 10, 17, 0, 0, tot_len, ifindex,
                          0) + src.packed.ljust(16, b"\0") + a.packed.ljust(16, b"\0")
              + bytes.fromhex("81000123") + b"\xaa" * 6 + b"\xbb" * 6)
    frame = bytes(12) + b"\x88\xb5" + bytes(2) + struct.pack("<II", flags, 0) + params + bytes(8)
    obj = xsim.load(DATA / "fib_params.o", env=xsim.RunEnv(net=NetConfig.from_dict(net)))
    out = testrun.test_run(obj.programs[f"fib_{hook}"], data_in=frame).data_out
    return struct.unpack_from("<q", out, 88)[0], out[24:88]


def test_addresses_bring_their_routes() -> None:
    assert lookup("192.168.1.1")[0] == fib.NOT_FWDED                  # local
    assert lookup("192.168.3.255")[0] == fib.NOT_FWDED                # broadcast
    assert lookup("192.168.3.7")[0] == fib.NO_NEIGH                   # connected, no neighbour
    assert lookup("192.168.1.7")[0] == fib.NO_NEIGH                   # its neighbour is on 3
    assert lookup("2001:db8:3::1")[0] == fib.NOT_FWDED                # local
    assert lookup("2001:db8:3::1", fib.LOOKUP_DIRECT)[0] == fib.NO_NEIGH   # main only
    assert lookup("2001:db8:1::")[0] == fib.NOT_FWDED                 # subnet-router anycast
    assert lookup("2001:db8:3::")[0] == fib.NO_NEIGH                  # not forwarding: none


def test_what_success_writes() -> None:
    rc, p = lookup("10.1.2.3", fib.LOOKUP_SRC)
    assert rc == fib.SUCCESS
    assert struct.unpack_from("<HII", p, 6) == (1300, 3, 0)          # mtu_result, ifindex, metric
    assert p[16:20] == bytes([192, 168, 3, 1]) and p[32:36] == bytes([192, 168, 3, 254])
    assert p[48:52] == bytes(4)                                       # VLAN fields zeroed
    assert p[52:64] == bytes.fromhex("020000000003" "0200000003fe")
    rc, p = lookup("2001:db8:10::1", fib.LOOKUP_SKIP_NEIGH)
    assert rc == fib.SUCCESS and struct.unpack_from("<I", p, 12)[0] == 1024   # ip -6's metric
    assert p[52:64] == b"\xaa" * 6 + b"\xbb" * 6          # no MACs without the neighbour


def test_tc_checks_the_frame_not_tot_len() -> None:
    assert lookup("10.1.2.3", tot_len=1301)[0] == fib.FRAG_NEEDED
    assert lookup("10.1.2.3", tot_len=1301, hook="tc")[0] == fib.FRAG_NEEDED
    locked = dict(NET, routes=[{"dst": "10.0.0.0/8", "gateway": "192.168.3.254", "mtu": 1000}])
    assert struct.unpack_from("<H", lookup("10.1.2.3", net=locked)[1], 6)[0] == 1000
    # TC without tot_len: the frame against the device, and the device's MTU back
    assert struct.unpack_from("<H", lookup("10.1.2.3", net=locked, hook="tc")[1], 6)[0] == 1300


def test_forwarding_per_family() -> None:
    assert lookup("10.1.2.3", ifindex=3)[0] == fib.SUCCESS
    assert lookup("2001:db8:10::1", ifindex=3)[0] == fib.FWD_DISABLED
    assert lookup("2001:db8:10::1", ifindex=3, flags=fib.LOOKUP_OUTPUT)[0] == fib.FWD_DISABLED
    assert lookup("fe80::1", ifindex=99)[0] == fib.NOT_FWDED           # before the device
    assert lookup("10.1.2.3", ifindex=99)[0] == -19                    # ENODEV


@pytest.mark.parametrize("bad, why", [
    ({"neighbours": [{"ip": "10.0.0.1", "state": "lost"}]}, "neighbour state"),
    ({"routes": [{"dst": "10.0.0.0/8", "type": "nat"}]}, "route type"),
    ({"routes": [{"dst": "10.0.0.0/8", "gateway": "10.9.9.9"}]}, "no device's address"),
    ({"routes": [{"dst": "10.0.0.0/8", "table": "mine"}]}, "table"),
    ({"routes": [{"dst": "2001:db8::/32", "gateway": "10.0.0.1", "ifindex": 1}]}, "IPv6"),
])
def test_bad_network_descriptions(bad: dict, why: str) -> None:
    with pytest.raises(xsim.XsimError, match=why):
        NetConfig.from_dict(bad)
