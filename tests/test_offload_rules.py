"""xsim.nic.offload: every reason a target's toolchain refuses a program, from rule files.

The programs in tests/data/offload (rebuild with build.sh; the objects are committed)
each use one thing the NFP driver refuses, or nothing it refuses.  Each refusal is
pinned by (kind, pc, what) and a phrase of its reason that names the rule (the driver's
own log text where it has one).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import xsim
from xsim.errors import ProgramNotFound, XsimError
from xsim.nic.offload import (RULES_DIR, Refusal, RuleFileError, RuleSet, UnknownRules,
                              load_rules, parse_rules, refusals, rule_sets)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "offload"
NIC = ROOT / "examples" / "nic"


def _found(path: Path, rules: str | RuleSet, prog: str | None = None) -> list[tuple]:
    return [(r.kind, r.pc, r.what) for r in refusals(xsim.load(path), prog, rules)]


# -- the NFP: one program per reason ---------------------------------------------------

NFP_REFUSES = {
    "ktime": ("helper", 2, "bpf_ktime_get_ns", "nfp_bpf_check_helper_call"),
    "lru": ("map", None, "flows", "it is a lru_hash map"),
    "mul64": ("insn", 11, "mul", "multiplier is not within u32 value range"),
    "divreg": ("insn", 15, "div32", "divisor is not constant"),
    "mod": ("insn", 13, "mod32", "has no BPF_MOD"),
    "atomic_or": ("insn", 26, "lock fetch or", "imm must be BPF_ADD"),
    "bigstack": ("stack", None, "bigstack -> mix", "576 bytes"),
    "mapstore": ("insn", 12, "stxdw", "cannot store into a map value"),
    "tc_ok_code": ("exit", 4, "exit", "may return 0"),
    "pktkey": ("helper", 14, "bpf_map_lookup_elem", "its key (r2) points to the packet"),
    "ctxread": ("insn", 0, "ldxw", "this reads offset 12"),
    "wordmix": ("insn", 13, "lock add", "map value use type conflict"),
    "initcnt": ("helper", 30, "bpf_map_update_elem", "atomic counter at pc 19"),
    "globals": ("map", None, "globals.bss", "BPF_F_MMAPABLE"),
    "bigvalue": ("map", None, "flow_stats", "an element takes 72 bytes"),
    "bigmap": ("map", None, "huge", "4000000 entries"),
    "perf_flags": ("helper", 10, "bpf_perf_event_output", "BPF_F_CURRENT_CPU"),
}


@pytest.mark.parametrize("name", sorted(NFP_REFUSES))
def test_the_nfp_refuses_each_program_for_its_one_reason(name: str) -> None:
    kind, pc, what, phrase = NFP_REFUSES[name]
    got = refusals(xsim.load(DATA / f"{name}.o"), None, "nfp")
    assert [(r.kind, r.pc, r.what) for r in got] == [(kind, pc, what)]
    assert phrase in got[0].reason


@pytest.mark.parametrize("name", ["ok_xdp", "ok_tc", "ok_loops", "hxdp_subprog"])
def test_the_nfp_takes_what_its_driver_takes(name: str) -> None:
    """Hash and array maps keyed from the stack, a result-less atomic add, a 32-bit
    multiply and a division by a constant, perf events with BPF_F_CURRENT_CPU, TC codes
    it maps, bounded loops, a BPF-to-BPF call."""
    assert _found(DATA / f"{name}.o", "nfp") == []


def test_a_refusal_names_the_source_line() -> None:
    (r,) = refusals(xsim.load(DATA / "ktime.o"), "ktime", "nfp")
    assert r.line == "ktime.c:11"
    assert str(r).startswith("pc 2 (ktime.c:11): bpf_ktime_get_ns: the NFP offload supports "
                             "only the helpers bpf_get_prandom_u32, bpf_map_delete_elem, ")
    (m,) = refusals(xsim.load(DATA / "lru.o"), None, "nfp")
    assert m.line is None and str(m).startswith("flows: it is a lru_hash map")


def test_refusals_are_frozen_values() -> None:
    r = Refusal("helper", 2, "ktime.c:11", "bpf_ktime_get_ns", "why")
    with pytest.raises(AttributeError):
        r.pc = 3                                         # type: ignore[misc]
    assert r == Refusal("helper", 2, "ktime.c:11", "bpf_ktime_get_ns", "why")


# -- the NFP and the shipped examples --------------------------------------------------

def test_which_shipped_examples_the_nfp_takes() -> None:
    """Only ipip's decap (bpf_xdp_adjust_head and packet stores) is offloadable as built:
    the others use helpers the NFP lacks, an LPM trie with BPF_F_NO_PREALLOC, the
    fetching atomic add clang 22 emits for __sync_fetch_and_add, or are no XDP/TC."""
    assert _found(NIC / "ipip.o", "nfp", "decap") == []
    assert _found(NIC / "ipip.o", "nfp", "encap") == [("helper", 121, "bpf_csum_diff")]
    assert _found(NIC / "firewall.o", "nfp") == [
        ("map", None, "blocklist"), ("map", None, "blocklist"),
        ("insn", 43, "lock fetch add"), ("insn", 87, "lock fetch add"),
        ("insn", 97, "lock fetch add")]
    firewall = refusals(xsim.load(NIC / "firewall.o"), None, "nfp")
    assert "lpm_trie" in firewall[0].reason and "map_flags 0x1" in firewall[1].reason
    assert _found(NIC / "l4_lb.o", "nfp") == [("helper", 56, "bpf_csum_diff"),
                                              ("insn", 106, "lock fetch add")]
    assert _found(NIC / "dns_filter.o", "nfp") == [("program", None, "socket_filter")]
    assert _found(NIC / "tc_marker.o", "nfp") == [
        ("insn", 19, "lock fetch add"), ("exit", 21, "exit"), ("helper", 61, "bpf_redirect"),
        ("insn", 76, "stxw"), ("helper", 82, "bpf_l3_csum_replace"),
        ("helper", 90, "bpf_skb_store_bytes"), ("insn", 108, "lock fetch add")]
    marker = {r.pc: r for r in refusals(xsim.load(NIC / "tc_marker.o"), None, "nfp")}
    assert "mark (offset 8)" in marker[76].reason
    assert "not a known constant" in marker[21].reason


# -- hXDP ------------------------------------------------------------------------------

def test_hxdp_takes_its_artifacts_kind_of_program() -> None:
    """A hash map, a devmap redirect, bpf_csum_diff and a plain read-modify-write of a
    map value, built without 32-bit jumps; also what only the NFP refuses."""
    for name in ("hxdp_ok", "mapstore", "mul64", "bigvalue", "bigmap", "globals"):
        assert _found(DATA / f"{name}.o", "hxdp") == [], name


def test_hxdp_refuses_calls_size_helpers_maps_and_newer_instructions() -> None:
    assert _found(DATA / "hxdp_subprog.o", "hxdp") == [("call", 3, "bpf-to-bpf call")]
    (size,) = refusals(xsim.load(DATA / "hxdp_big.o"), None, "hxdp")
    assert (size.kind, size.pc, size.what) == ("size", None, "hxdp_big")
    assert "1152 eBPF instructions need at least 288 VLIW instruction rows" in size.reason
    assert _found(DATA / "ktime.o", "hxdp") == [("helper", 2, "bpf_ktime_get_ns")]
    assert _found(DATA / "lru.o", "hxdp") == [("map", None, "flows"), ("insn", 10, "jne32")]
    assert _found(DATA / "ok_tc.o", "hxdp") == [("program", None, "sched_cls"),
                                               ("insn", 9, "jne32"), ("insn", 12, "jgt32")]
    assert _found(NIC / "firewall.o", "hxdp") == [
        ("insn", 18, "jeq32"), ("insn", 19, "jne32"), ("insn", 33, "jeq32"),
        ("insn", 43, "lock fetch add"), ("insn", 87, "lock fetch add"),
        ("insn", 97, "lock fetch add")]


# -- rule sets and their files ---------------------------------------------------------

def test_the_shipped_rule_sets() -> None:
    assert rule_sets() == ["hxdp", "nfp"]
    nfp = load_rules("nfp")
    assert nfp.helpers == {"map_lookup_elem", "map_update_elem", "map_delete_elem",
                           "get_prandom_u32", "perf_event_output", "xdp_adjust_head",
                           "xdp_adjust_tail"}
    assert nfp.prog_types == {"xdp", "sched_cls"} and nfp.maps["types"] == {"hash", "array"}
    assert load_rules("hxdp").local_calls is False


def test_an_unknown_rule_set_is_a_typed_error_listing_the_others() -> None:
    with pytest.raises(UnknownRules) as e:
        refusals(xsim.load(DATA / "ok_xdp.o"), None, "bluefield")
    assert isinstance(e.value, XsimError)
    assert e.value.name == "bluefield" and e.value.available == ["hxdp", "nfp"]
    assert str(e.value).startswith("no offload rule set 'bluefield': choose one of hxdp, nfp")


def test_an_unknown_program_is_the_loaders_error() -> None:
    with pytest.raises(ProgramNotFound):
        refusals(xsim.load(DATA / "ok_xdp.o"), "nope", "nfp")


MINIMAL = """\
title = "a target"
short = "the target"
[program]
types = ["xdp"]
source = "somewhere"
"""


def test_a_minimal_rule_file_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(MINIMAL)
    rules = parse_rules(path)
    assert rules.name == "tiny" and rules.helpers == frozenset()
    assert _found(DATA / "ok_tc.o", rules) == [("program", None, "sched_cls")]


@pytest.mark.parametrize("text, field, phrase", [
    ("title = [", "", "is not valid TOML"),
    ('title = "t"\nshort = "s"\n', "program", "is missing"),
    (MINIMAL.replace('types = ["xdp"]', 'types = ["xdpp"]'), "program.types",
     "'xdpp' is no program type"),
    (MINIMAL + '[size]\nmax = "big"\nper = 1\nunit = "rows"\nsource = "x"\n', "size.max",
     "must be int, not str 'big'"),
    (MINIMAL + '[size]\nmax = 0\nper = 1\nunit = "rows"\nsource = "x"\n', "size.max",
     "must be at least 1"),
    (MINIMAL + '[helpers]\nallowed = ["ktime_get_nsec"]\nsource = "x"\n', "helpers.allowed",
     "'ktime_get_nsec' is no helper"),
    (MINIMAL + '[maps]\ntypes = ["hash"]\nmax_keysize = 4\nsource = "x"\n', "maps.max_keysize",
     "is no field of this table"),
    (MINIMAL + '[[insn]]\noperation = "modulo"\nreason = "r"\n', "insn[0].operation",
     "'modulo' is in no row of xsim's opcode table"),
    (MINIMAL + '[[insn]]\nreason = "r"\n', "insn[0]", "needs at least one of kind"),
    (MINIMAL + '[[insn]]\nkind = "atomic"\nwidth = 16\nreason = "r"\n', "insn[0]",
     "match no instruction"),
    (MINIMAL + '[memory]\nload = ["heap"]\nsource = "x"\n', "memory.load",
     "'heap' is no pointer kind"),
    (MINIMAL + '[exit]\nsource = "x"\n[exit.xdp]\nrefuse = ["0"]\n', "exit.xdp.refuse",
     "must list integers"),
])
def test_a_malformed_rule_file_names_the_file_and_field(tmp_path: Path, text: str,
                                                         field: str, phrase: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as e:
        parse_rules(path)
    assert e.value.path == str(path) and e.value.field == field
    assert phrase in e.value.reason
    assert str(e.value).startswith(f"{path}: ")


def test_every_shipped_rule_file_parses() -> None:
    for path in sorted(RULES_DIR.glob("*.toml")):
        assert parse_rules(path).title


def test_the_test_objects_are_built_from_their_sources(tmp_path: Path) -> None:
    """tests/data/offload/*.o are what build.sh makes of the sources today."""
    from xsim.cc import compile_c    # debug paths are relative to the repository root
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for src in sorted(DATA.glob("*.c")):
            flags = ["-mcpu=v2"] if src.name.startswith("hxdp_") else []
            out = compile_c(src.relative_to(ROOT), tmp_path / f"{src.stem}.o", cflags=flags)
            assert out.read_bytes() == src.with_suffix(".o").read_bytes(), src.name
    finally:
        os.chdir(cwd)
