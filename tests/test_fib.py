"""bpf_fib_lookup against a user's devices, routes and neighbours (xsim.nic.fib)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

import xsim
from xsim.cli import main
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
