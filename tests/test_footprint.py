"""The porting report (xsim.crosscheck.footprint): facts checked by hand against the
example sources and their disassembly, small assembled programs for the call graph and
the ISA features, and the ``footprint`` subcommand through its parser."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

import xsim
from xsim.crosscheck import footprint as fp
from xsim.crosscheck import targets
from xsim.elf.kinds import MapType, ProgType
from xsim.elf.spec import MapSpec, ObjectSpec, ProgramSpec, Reloc
from xsim.errors import ProgramNotFound, XsimError
from xsim.isa.asm import assemble
from xsim.isa.disasm import disassemble
from xsim.jit import engine
from xsim.isa import interp as ip
from xsim.runtime import Program
from xsim.runtime.object import Object

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def program(text: str, name: str = "prog") -> Program:
    return Program.from_bytes(assemble(text, syntax="ubpf"), name=name)


def report_of(text: str, isas=()) -> dict:
    """The one report of an assembled program; no native code unless ``isas``."""
    (r,) = fp.footprint(program(text), isas=isas)
    return r


@pytest.fixture(scope="module")
def firewall() -> dict:
    """examples/nic/firewall.o on all three ISAs (the only report here that compiles
    every ISA: about half a second, or the disk cache)."""
    (r,) = fp.footprint(xsim.load(EXAMPLES / "nic/firewall.o"))
    return r


@pytest.fixture(scope="module")
def counter() -> dict:
    (r,) = fp.footprint(xsim.load(EXAMPLES / "counter.o"), isas=())
    return r


# -- examples: firewall.c and counter.c -----------------------------------------------

def test_firewall_stack_is_its_deepest_r10_offset(firewall: dict) -> None:
    obj = xsim.load(EXAMPLES / "nic/firewall.o")
    text = disassemble(obj.programs["firewall"].program.code, syntax="llvm")
    deepest = max(int(n) for n in re.findall(r"r10 - (\d+)", text))
    assert deepest == 16                                   # *(u32 *)(r10 - 16) = r1
    assert [f["frame"] for f in firewall["functions"]] == [16]
    assert firewall["stack"]["max_depth"] == 16
    assert firewall["stack"]["max_frames"] == 1
    assert firewall["stack"]["problems"] == [] and firewall["stack"]["error"] is None


def test_firewall_maps_are_sized_from_the_c_source(firewall: dict) -> None:
    maps = {m["name"]: m for m in firewall["maps"]}
    assert {n: (m["type"], m["key_size"], m["value_size"], m["max_entries"], m["bytes"])
            for n, m in maps.items()} == {
        "blocklist": ("lpm_trie", 8, 4, 1024, 1024 * (8 + 4)),   # struct lpm_v4 -> __u32
        "rule_hits": ("array", 4, 8, 64, 64 * 8),
        "verdicts": ("array", 4, 8, 2, 2 * 8),
    }
    assert firewall["map_bytes"] == 12288 + 512 + 16
    assert firewall["global_data"] == {"sections": [], "bytes": 0, "object_bytes": 0}


def test_firewall_helpers_and_isa(firewall: dict) -> None:
    # count() is inlined at each of its 7 returns, plus the blocklist and rule_hits lookups
    assert firewall["helpers"] == [{"id": 1, "name": "bpf_map_lookup_elem", "calls": 8,
                                    "xsim": True}]
    assert firewall["kfuncs"] == []
    isa = firewall["isa"]
    assert isa["features"]["atomics"] == ["lock fetch add"]    # __sync_fetch_and_add
    assert isa["features"]["jmp32"] and isa["features"]["alu32"]
    assert isa["version"] == 3 and "lock fetch add" in isa["version_ops"]
    assert isa["features"]["signed_division"] == isa["features"]["sign_extension"] == []


def test_native_code_on_every_isa_differs(firewall: dict) -> None:
    native = firewall["native"]
    assert list(native) == list(targets.ISAS)
    for n in native.values():
        assert n["text"] > 0
        assert n["allocated"] == n["text"] + n["rodata"] + n["data"]
        assert n["sections"][".text"] == n["text"]
    assert len({n["text"] for n in native.values()}) == 3


def test_native_code_is_the_hooked_programs() -> None:
    """An XDP program's context accesses are rewritten before the JIT compiles it: the
    report measures that code (the disk cache makes this compile free)."""
    op = xsim.load(EXAMPLES / "nic/firewall.o").programs["firewall"]
    t = targets.isa("x86_64")
    hooked = op.hooked()
    obj, _, _ = engine.object_for(hooked._code, hooked._st[ip.C_BASE:], hooked.name,
                                  t.triple, t.cpu, t.features, t.code_model)
    (r,) = fp.footprint(xsim.load(EXAMPLES / "nic/firewall.o"), isas=["x86_64"])
    assert r["native"]["x86_64"]["text"] == fp.section_sizes(obj)["text"]
    assert (r["native_form"], r["hook_error"]) == ("hooked", None)


def test_a_program_its_hook_refuses_is_measured_raw() -> None:
    """pkt_parse.c is an "xdp" program written for raw memory (``run --mem``): it reads
    16 bits at offset 12 of its context, which the kernel's verifier refuses."""
    (r,) = fp.footprint(xsim.load(EXAMPLES / "pkt_parse.bpf.o"), isas=["x86_64"])
    assert r["native_form"] == "raw"
    assert "invalid bpf_context access off=12 size=2" in r["hook_error"]
    assert r["native"]["x86_64"]["text"] > 0


def test_counter_sums_the_frames_of_its_call(counter: dict) -> None:
    # count() keeps nothing on the stack; add_to() has key at r10-4 and amount at r10-16
    assert [(f["name"], f["slot"], f["frame"]) for f in counter["functions"]] == [
        ("count", 0, 0), ("add_to", 23, 16)]
    assert counter["functions"][0]["calls"] == [{"name": "add_to", "slot": 23,
                                                 "kind": "call"}]
    st = counter["stack"]
    assert (st["max_depth"], st["path"], st["max_frames"]) == (16, ["count", "add_to"], 2)
    assert st["reserved"] == 2 * 512
    assert (counter["insns"], counter["slots"]) == (41, 46)     # 5 lddw take 2 slots


def test_counter_maps_global_data_and_helpers(counter: dict) -> None:
    assert [(m["name"], m["type"], m["bytes"]) for m in counter["maps"]] == [
        ("totals", "hash", 128 * (4 + 8))]
    g = counter["global_data"]
    # .rodata: max_amount (4) + "key %u total %llu\0" (18); .bss: events (8)
    assert [(d["section"], d["bytes"], d["readonly"], d["used"]) for d in g["sections"]] == [
        (".rodata", 22, True, True), (".bss", 8, False, True)]
    assert g["bytes"] == g["object_bytes"] == 30
    assert [(h["id"], h["name"]) for h in counter["helpers"]] == [
        (1, "bpf_map_lookup_elem"), (2, "bpf_map_update_elem"), (6, "bpf_trace_printk")]


def test_tc_marker_frame_rounds_up_to_a_slot() -> None:
    """new_tos lives at r10-5, a byte: the deepest byte is 5, its frame 8."""
    (r,) = fp.footprint(xsim.load(EXAMPLES / "nic/tc_marker.o"), isas=())
    assert (r["functions"][0]["deepest"], r["functions"][0]["frame"]) == (5, 8)
    assert [h["name"] for h in r["helpers"]] == [
        "bpf_map_lookup_elem", "bpf_skb_store_bytes", "bpf_l3_csum_replace", "bpf_redirect"]


def test_every_program_or_one_by_section() -> None:
    obj = xsim.load(EXAMPLES / "nic/ipip.o")
    assert [r["program"] for r in fp.footprint(obj, isas=())] == ["encap", "decap"]
    (one,) = fp.footprint(xsim.load(EXAMPLES / "nic/l4_lb.o"), "xdp", isas=())
    assert one["program"] == "l4_lb" and one["prog_type"] == "xdp"
    with pytest.raises(ProgramNotFound):
        fp.footprint(obj, "nope", isas=())


# -- assembled programs: the call graph ---------------------------------------------------

CHAIN = """
stdw [%r10-24], 1
call local f
exit
f:
stdw [%r10-40], 2
call local g
call local h
exit
g:
mov %r1, %r10
add %r1, -64
stdw [%r1+8], 3
mov %r0, 0
exit
h:
stb [%r10-1], 0
exit
"""


def test_a_call_chain_sums_its_frames() -> None:
    r = report_of(CHAIN)
    assert [(f["name"], f["frame"]) for f in r["functions"]] == [
        ("prog", 24), ("prog+3", 40), ("prog+7", 64), ("prog+12", 8)]
    st = r["stack"]
    assert st["max_depth"] == 24 + 40 + 64
    assert st["path"] == ["prog", "prog+3", "prog+7"]
    assert st["max_frames"] == 3


def test_a_pointer_spilled_and_filled_is_followed() -> None:
    r = report_of("""
        mov %r1, %r10
        add %r1, -100
        stxdw [%r10-8], %r1
        mov %r1, 0
        ldxdw %r2, [%r10-8]
        stb [%r2-20], 0
        mov %r0, 0
        exit
        """)
    assert (r["functions"][0]["deepest"], r["functions"][0]["frame"]) == (120, 120)


def test_a_stack_pointer_passed_to_a_helper_counts() -> None:
    """bpf_get_current_comm(buf, 16) writes a buffer the program never touches itself."""
    r = report_of("mov %r1, %r10\nadd %r1, -48\nmov %r2, 16\ncall 16\nexit")
    assert r["functions"][0]["frame"] == 48
    assert r["helpers"] == [{"id": 16, "name": "bpf_get_current_comm", "calls": 1,
                             "xsim": False}]


def test_limits_over_the_kernels_are_reported() -> None:
    calls = "".join(f"call local f{k}\nexit\nf{k}:\nstdw [%r10-128], 0\n" for k in range(8))
    r = report_of("stdw [%r10-128], 0\n" + calls + "exit")
    st = r["stack"]
    assert st["max_frames"] == 9 and st["max_depth"] == 9 * 128
    assert any("combined 512" in p for p in st["problems"])
    assert any("MAX_CALL_FRAMES (8)" in p for p in st["problems"])


def test_recursion_is_an_error_not_a_loop() -> None:
    r = report_of("call local f\nexit\nf:\ncall local g\nexit\ng:\ncall local f\nexit")
    st = r["stack"]
    assert st["max_depth"] is None
    assert st["error"].startswith("recursion: prog+2 -> prog+4 -> prog+2")


def test_a_callback_is_a_frame_below_its_caller() -> None:
    """bpf_loop(n, cb, ctx, 0) runs cb in a frame of its own, as a call does."""
    r = report_of("""
        stdw [%r10-8], 0
        mov %r1, 4
        lddw %r2, func cb
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        cb:
        stdw [%r10-32], 0
        mov %r0, 0
        exit
        """)
    assert r["functions"][0]["calls"] == [{"name": "prog+8", "slot": 8, "kind": "callback"}]
    assert r["stack"]["max_depth"] == 8 + 32


def test_what_the_lifter_refuses_is_reported_per_isa() -> None:
    r = report_of("mov %r0, 1\ncall local f\nexit\nf:\nja -4", isas=tuple(targets.ISAS))
    for isa, n in r["native"].items():
        assert "text" not in n
        assert n["error"].startswith(f"the JIT cannot compile it for {isa}: ")
        assert "leaves its function" in n["error"]


# -- assembled programs: instructions and ISA features ------------------------------------

V4 = """
lddw %r1, 0x100000000
sdiv %r0, 3
smod32 %r0, 3
movsx864 %r0, %r1
ldxsb %r0, [%r10-1]
bswap16 %r0
ja32 +0
le16 %r0
mul %r0, 3
div32 %r0, 3
call kfunc 1234
call 9999
exit
"""


def test_v4_features_and_the_instruction_count() -> None:
    r = report_of(V4)
    assert (r["insns"], r["slots"]) == (13, 14)
    isa = r["isa"]
    assert isa["version"] == 4
    assert isa["version_ops"] == ["bswap16", "ja32", "ldxsb", "movsx864", "sdiv", "smod32"]
    f = isa["features"]
    assert f["signed_division"] == ["sdiv", "smod32"]
    assert f["sign_extension"] == ["ldxsb", "movsx864"]
    assert f["byte_swaps"] == ["bswap16", "le16"]
    assert f["long_jumps"] == ["ja32"]
    assert (f["mul64"], f["div64"], f["mod64"]) == (["mul"], ["sdiv"], [])
    assert f["alu32"] == ["div32", "smod32"]
    assert f["atomics"] == f["jmp32"] == []
    assert r["kfuncs"] == [{"btf_id": 1234, "off": 0, "calls": 1}]
    assert r["helpers"] == [{"id": 9999, "name": None, "calls": 1, "xsim": False}]


def test_a_v1_program() -> None:
    isa = report_of("mov %r0, 1\nadd %r0, %r1\nexit")["isa"]
    assert isa["version"] == 1 and not any(isa["features"].values())


# -- maps: the formula table -------------------------------------------------------------

def test_every_map_type_has_a_formula_or_a_reason() -> None:
    for t in MapType:
        assert (t in fp.MAP_FAMILY) != (t in fp.UNSIZED_MAPS), t


@pytest.mark.parametrize("type_, expected, formula", [
    (MapType.HASH, 10 * (4 + 16), "max_entries × (key_size + value_size)"),
    (MapType.PERCPU_HASH, 10 * (4 + 16 * 4), "max_entries × (key_size + value_size × ncpus)"),
    (MapType.ARRAY, 10 * 16, "max_entries × value_size"),
    (MapType.PERCPU_ARRAY, 10 * 16 * 4, "max_entries × value_size × ncpus"),
    (MapType.RINGBUF, 10, "max_entries × 1"),
    (MapType.TASK_STORAGE, None, ""),
])
def test_map_bytes(type_: MapType, expected: int | None, formula: str) -> None:
    size, got, note = fp.map_bytes(MapSpec("m", type_, 4, 16, 10), ncpus=4)
    assert (size, got) == (expected, formula)
    assert note


def test_inner_maps_of_a_map_of_maps_count() -> None:
    code = assemble("lddw %r1, 0\nmov %r0, 0\nexit", syntax="ubpf")
    inner = MapSpec("inner", MapType.HASH, 4, 16, 10)
    outer = MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner=inner, init=((0, "inner"),))
    prog = ProgramSpec("p", "syscall", ProgType.SYSCALL, code, relocs=(Reloc(0, "map", "outer"),))
    spare = MapSpec("spare", MapType.PERCPU_ARRAY, 4, 8, 3)
    obj = Object(ObjectSpec("t.o", (prog,), (inner, outer, spare)))
    (r,) = fp.footprint(obj, isas=(), ncpus=4)
    assert [(m["name"], m["via"], m["bytes"]) for m in r["maps"]] == [
        ("outer", None, 2 * 4), ("inner", "outer", 10 * 20)]
    assert r["ncpus"] == 4 and r["map_bytes"] == 208


# -- the command ----------------------------------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str]:
    ap = argparse.ArgumentParser(prog="xsim")
    fp.add_parser(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["footprint", *argv])
    code = args.func(args)
    return code, capsys.readouterr().out


def test_cli_json(capsys) -> None:
    code, out = run_cli(capsys, str(EXAMPLES / "counter.o"), "--isa", "aarch64", "--json")
    assert code == 0
    (r,) = json.loads(out)
    assert set(r) == {"program", "section", "prog_type", "insns", "slots", "functions",
                      "stack", "native", "native_form", "hook_error", "ncpus", "maps",
                      "map_bytes", "global_data",
                      "helpers", "kfuncs", "isa"}
    assert list(r["native"]) == ["aarch64"] and r["native"]["aarch64"]["text"] > 0
    assert r["stack"]["max_depth"] == 16


def test_cli_text(capsys) -> None:
    code, out = run_cli(capsys, str(EXAMPLES / "nic/firewall.o"), "--prog", "firewall",
                        "--isa", "x86_64,riscv64")
    assert code == 0
    assert out.startswith("program firewall (xdp, section xdp)\n")
    assert "stack: 16 bytes over the deepest call chain (firewall)" in out
    assert re.search(r"^\s+x86_64\s+\d+", out, re.M) and re.search(r"^\s+riscv64\s+\d+",
                                                                   out, re.M)
    assert "aarch64" not in out
    assert re.search(r"blocklist\s+lpm_trie\s+8\s+4\s+1024\s+12288", out)
    assert "helpers: 1 bpf_map_lookup_elem ×8" in out


def test_cli_assembly_file(tmp_path: Path, capsys) -> None:
    src = tmp_path / "chain.s"
    src.write_text(CHAIN)
    code, out = run_cli(capsys, str(src), "--isa", "riscv64", "--json", "--cpus", "2")
    (r,) = json.loads(out)
    assert code == 0 and r["program"] == "chain" and r["ncpus"] == 2
    assert r["stack"]["max_depth"] == 128


def test_cli_refuses_an_unknown_isa(capsys) -> None:
    with pytest.raises(XsimError, match="unknown ISA 'mips'.*x86_64, aarch64, riscv64"):
        run_cli(capsys, str(EXAMPLES / "counter.o"), "--isa", "x86_64,mips")
