"""Tail calls in linked code (xsim/runtime/tailcall.py): the core serves bpf_tail_call,
and every run must report what the unlinked path (one Python step per program of the
chain) reports: r0, counts, errors with the member's own pc, maps, packets; a
capture's per-packet loop must run the dispatch example's chains; the kernel decides
what the example's stages return."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import xsim
from conftest import kernel_or_skip
from xsim.elf.loader import load_spec
from xsim.errors import BudgetExceeded, UnresolvedReference
from xsim.jit.lift import TAIL_JUMP
from xsim.nic.batch import batchable
from xsim.nic.pcap import PcapWriter, read_packets
from xsim.nic.pcaprun import run_pcap
from xsim.runtime import testrun
from xsim.runtime.tailcall import LinkedProgram
from xsim.runtime.testrun import apply_maps_in, report

ROOT = Path(__file__).resolve().parents[1]
TAIL = ROOT / "tests" / "data" / "diff" / "tail.o"
MULTI = ROOT / "tests" / "data" / "loader" / "multi.o"
DISPATCH = ROOT / "examples" / "nic" / "dispatch.o"
TRAFFIC = ROOT / "examples" / "nic" / "traffic.pcap"
MACS = bytes.fromhex("020000000002" "020000000001")


class _NoLinks(dict):
    """An object's links where none is made: every program runs unlinked."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> None:
        return None


def unlink(obj) -> None:
    """Make every program of ``obj`` run its tail calls the unlinked way."""
    obj._links = _NoLinks()


def outcome(name: str, linked: bool, tier: str = "interp", maps_in=None, **kw) -> tuple:
    obj = xsim.load(TAIL)
    if not linked:
        unlink(obj)
    if maps_in:
        apply_maps_in(obj, maps_in)
    p = obj.programs[name].program
    assert (p.linked() is not None) == linked
    r = p.run(struct.pack("<Q", 7), tier=tier, **kw)
    return (r.r0, r.insns, r.insns_total, r.runs, str(r.error), type(r.error),
            getattr(r.error, "pc", None), getattr(r.error, "source", None), r.helper_calls,
            r.region_counts, r.memory, bytes(obj.maps[".bss"].lookup(0)),
            bytes(obj.maps[".data"].lookup(0)))


TIERS = ["interp", "jit", "aarch64", "riscv64"]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", ["chain", "step_a", "step_b", "again", "via_maps_in"])
def test_linked_runs_equal_unlinked_ones(name: str, tier: str) -> None:
    """A chain through a prog array, empty slots, an index out of range, the 33-call
    limit, repeated runs, on every tier (native code's tail calls are jumps too): all
    the run reports is what the interpreter reports unlinked."""
    for kw in ({}, {"repeat": 3}, {"repeat": 40}):
        assert outcome(name, True, tier, **kw) == outcome(name, False, **kw), kw


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_a_slot_filled_after_loading_is_linked_too(tier: str) -> None:
    """--maps-in's value_prog (a prog array update) writes where its program starts."""
    fill = [{"map": "jumps", "key": "04000000", "value_prog": "step_b"}]
    mine = outcome("via_maps_in", True, tier, fill)
    assert mine == outcome("via_maps_in", False, maps_in=fill)
    assert mine[0] != 77 and mine[8] == {12: 3}       # it went on in step_b (2 calls)


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("name", ["chain", "again"])
def test_the_budget_counts_the_whole_chain(name: str, tier: str) -> None:
    """Every budget from 1 up stops at the same instruction of the same member, with
    the chain's count and the whole budget in the error, and a chain whose tail call is
    the budget's last instruction stops at the target's first."""
    for budget in range(1, 70):
        mine = outcome(name, True, tier, budget=budget)
        assert mine == outcome(name, False, budget=budget), budget
        if mine[5] is BudgetExceeded:
            assert mine[1] == budget and f"budget of {budget} exhausted after {budget}" in mine[4]
    # chain's tail call is its 8th instruction (pc 9): the 9th is step_a's first, pc 0
    stopped = outcome("chain", True, budget=8)
    assert stopped[5] is BudgetExceeded and stopped[6] == 0 and stopped[1] == 8
    assert "tail.c" in stopped[7] and "trace * 10 + 2" in stopped[7]


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("name", ["chain", "step_b", "again"])
def test_the_histogram_of_a_linked_run(name: str, tier: str) -> None:
    """Counted in the linked code, each member's instructions are its own: the histogram
    and each program's counts per pc are the unlinked run's."""
    def run(linked: bool) -> tuple:
        obj = xsim.load(TAIL)
        if not linked:
            unlink(obj)
        r = obj.programs[name].program.run(struct.pack("<Q", 7), repeat=2, histogram=True,
                                           tier=tier if linked else "interp")
        counts = {n: op.program._counts.tolist() for n, op in obj.programs.items()}
        return r.histogram, r.insns_total, counts
    mine = run(True)
    assert mine == run(False) and sum(mine[0].values()) == mine[1]


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_linked_tail_calls_never_return_to_python(monkeypatch: pytest.MonkeyPatch,
                                                  tier: str) -> None:
    served = []
    original = LinkedProgram._call_helper
    monkeypatch.setattr(LinkedProgram, "_call_helper",
                        lambda self, *a: served.append(1) or original(self, *a))
    obj = xsim.load(TAIL)
    r = obj.programs["again"].program.run(struct.pack("<Q", 7), repeat=5, tier=tier)
    assert r.error is None and r.helper_calls == {12: 5 * 34} and served == []


def test_a_program_of_another_type_stops_the_run_with_the_reason() -> None:
    """multi.o mixes program types: the XDP programs' linked code holds the others as
    stand-ins that stop at once, saying why (a prog array holds one type)."""
    obj = xsim.load(MULTI)
    link = obj.programs["xdp_pass"].hooked().linked()
    assert link is not None
    k = [m.name for m in link.members].index("tc_prog")
    stand_in = link.members[k]
    assert stand_in is not obj.programs["tc_prog"].hooked()
    err = stand_in.run().error
    assert isinstance(err, UnresolvedReference) and "sched_cls" in str(err) and err.pc == 0
    # a raw-memory run links every program as it is
    raw = obj.programs["tail_caller"].program.linked()
    assert raw is not None and raw.members == [op.program for op in obj.programs.values()]


HELPERS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
int looped(__u64 *ctx);
int wild(__u64 *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2);
         __uint(key_size, 4); __array(values, int (__u64 *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&looped, [1] = (void *)&wild },
};
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } totals SEC(".maps");
static long add(__u64 i, void *sum) { *(__u64 *)sum += i * i; return 0; }
SEC("raw_tp") int entry(__u64 *ctx)
{
    bpf_tail_call(ctx, &jumps, ctx[0] & 1);
    return -1;
}
/* a callback (its pointer names a slot of this member) and Python's map update */
SEC("raw_tp") int looped(__u64 *ctx)
{
    __u64 sum = 0;
    __u32 k = 1;
    bpf_loop(ctx[0] & 15, add, &sum, 0);
    bpf_map_update_elem(&totals, &k, &sum, BPF_ANY);
    bpf_printk("sum %llu", sum);
    return sum;
}
/* reads past the context: the fault names this member's pc and source line */
SEC("raw_tp") int wild(__u64 *ctx)
{
    return ctx[(ctx[0] >> 1) & 0xffff];
}
char LICENSE[] SEC("license") = "GPL";
"""


def _built(factory: pytest.TempPathFactory, name: str, source: str) -> Path:
    """``source`` compiled to ``name``.o in a fresh directory."""
    from xsim.cc import compile_c
    d = factory.mktemp(name)
    (d / f"{name}.c").write_text(source)
    return compile_c(d / f"{name}.c", d / f"{name}.o")


@pytest.fixture(scope="module")
def helpers_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built(tmp_path_factory, "helpers", HELPERS)


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_python_helpers_callbacks_and_faults_in_a_member(helpers_o: Path, tier: str) -> None:
    """bpf_loop's callback, a Python map update and printk in a tail-called member, and a
    fault in another: the same results, errors and pcs (the member's own) as unlinked."""
    def run(linked: bool, seed: int) -> tuple:
        obj = xsim.load(helpers_o)
        if not linked:
            unlink(obj)
        p = obj.programs["entry"].program
        r = p.run(struct.pack("<Q", seed) + bytes(8), tier=tier if linked else "interp")
        totals = {bytes(k): bytes(v) for k, v in obj.maps["totals"].items()}
        return (r.r0, r.insns, str(r.error), getattr(r.error, "pc", None),
                getattr(r.error, "source", None), r.helper_calls, r.printk, totals)
    for seed in (0, 7, 14, 2, 3, 0x201):
        assert run(True, seed) == run(False, seed), seed
    fault = run(True, 0x201)
    assert "pc" in fault[2] and fault[3] is not None and "ctx[(ctx[0]" in (fault[4] or "")
    looped = run(True, 14)
    assert looped[0] == sum(i * i for i in range(14)) and looped[6] and looped[7]


def _frames() -> list[bytes]:
    """The shipped capture's kinds of frame, and TCP ones for the TCP stage."""
    def tcp(flags: int, port: int) -> bytes:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 0, 2]))
        return MACS + b"\x08\x00" + ip + struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 0x50,
                                                    flags, 8192, 0, 0)
    frames = [p.data for p in read_packets(TRAFFIC)]
    return frames + [tcp(0x02, 23), tcp(0x12, 23), tcp(0x02, 80), MACS + b"\x08\x00" + bytes(8)]


def _pcap(path: Path, frames: list[bytes]) -> Path:
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, i * 1000)
    return path


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_the_capture_loop_runs_the_chains(tmp_path: Path, tier: str) -> None:
    """dispatch.o over the shipped traffic and TCP frames: the compiled loop (linked)
    gives the verdicts, maps and output bytes of one unlinked test run per packet."""
    pcap = _pcap(tmp_path / "in.pcap", _frames())
    runs = []
    for linked, batch in ((True, True), (False, False)):
        obj = xsim.load(DISPATCH)
        if not linked:
            unlink(obj)
        prog = obj.programs["dispatch"]
        assert batchable(prog) == linked
        out = tmp_path / f"out{linked}"
        summary = run_pcap(obj, prog, pcap, out=out, batch=batch, tier=tier)
        data = summary.to_dict(obj)
        del data["elapsed_s"], data["pps"]
        written = sorted((p.name[len(out.name):], p.read_bytes())
                         for p in tmp_path.glob(f"{out.name}*"))
        runs.append((data, written))
    assert runs[0] == runs[1]
    seen = [int(e["value"], 16) for e in runs[0][0]["maps"]["seen"]["entries"]]
    assert runs[0][0]["verdicts"]["XDP_DROP"] > 1 and all(seen)


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_a_capture_with_records_numbers_the_chains_paths(tmp_path: Path, tier: str) -> None:
    """Records of dispatch.o: the loop numbers each packet's path over the members'
    counts, as one counted test run per packet does, linked or not."""
    import io
    import json
    pcap = _pcap(tmp_path / "in.pcap", _frames())
    runs = []
    for linked, batch in ((True, True), (True, False), (False, False)):
        obj = xsim.load(DISPATCH)
        if not linked:
            unlink(obj)
        records = io.StringIO()
        run_pcap(obj, obj.programs["dispatch"], pcap, records=records, batch=batch,
                 tier=tier if linked else "interp")
        runs.append([json.loads(line) for line in records.getvalue().splitlines()])
    assert runs[0] == runs[1] == runs[2]
    firsts = [r["counts"] for r in runs[0] if "counts" in r]
    assert len(firsts) >= 5 and any("stage_tcp" in c and "stage_ipv4" in c for c in firsts)


kernel = kernel_or_skip


def test_the_dispatch_stages_answer_as_the_kernel_does() -> None:
    """Each kind of frame through the kernel's own tail calls: the verdict, the bytes
    and the stages' counters are xsim's (linked, on the interpreter).  The per-CPU
    scratch map is left out: the kernel's test run uses the CPU it is on."""
    k = kernel()
    spec = load_spec(DISPATCH)
    # one frame of each kind: ethertype, the IPv4 protocol byte, the TCP flags byte
    kinds = {f[12:14] + f[23:24] + f[47:48]: f for f in _frames()}
    assert len(kinds) >= 5
    for frame in kinds.values():
        obj = xsim.load(DISPATCH)
        mine = report(obj, obj.programs["dispatch"],
                      testrun.test_run(obj.programs["dispatch"], data_in=frame))
        theirs = k.kernel_test_run(spec, "dispatch", data_in=frame)
        assert (theirs["retval"], theirs["data_out"], theirs["maps"]["seen"]) == \
            (mine["retval"], mine["data_out"], mine["maps"]["seen"]), frame.hex()


def test_xsim_jit_shows_the_linked_code(capsys: pytest.CaptureFixture[str]) -> None:
    """`xsim jit` of a program that tail calls shows what runs: every stage's code, each
    pc named by its member, and the jump out of each tail call."""
    from xsim.cli import main
    assert main(["jit", str(DISPATCH), "--prog", "dispatch", "--emit", "asm"]) == 0
    text = capsys.readouterr().out
    for name in ("dispatch", "stage_ipv4", "stage_ipv6", "stage_udp", "stage_tcp"):
        assert f"({name} pc 0)" in text
    assert main(["jit", str(DISPATCH), "--prog", "dispatch", "--emit", "llvm",
                 "--unoptimized"]) == 0
    ir = capsys.readouterr().out
    assert "member0:" in ir and "jumped:" in ir and f"ret i64 {TAIL_JUMP}" in ir


FROM_SUBPROGRAM = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
int target(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2);
         __uint(key_size, 4); __array(values, int (struct xdp_md *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&target },
};
__u64 hits, after;
SEC("xdp") int target(struct xdp_md *ctx)
{
    hits++;
    return XDP_TX;
}
/* the tail call unwinds this frame: the target's exit returns to entry */
static __attribute__((noinline)) int sub(struct xdp_md *ctx, int slot)
{
    volatile int ret = 1;
    bpf_tail_call(ctx, &jumps, slot);
    return ret;
}
SEC("xdp") int entry(struct xdp_md *ctx)
{
    int a = sub(ctx, ctx->ingress_ifindex == 12345), b = sub(ctx, 1);
    after = a * 10 + b;
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def from_subprogram_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built(tmp_path_factory, "sub", FROM_SUBPROGRAM)


def test_a_tail_call_from_a_subprogram_returns_to_its_caller(from_subprogram_o: Path) -> None:
    """As the kernel's JIT runs it: the target's exit returns to the subprogram's caller
    with the target's r0, on the interpreter and on native code; unlinked, a clear
    error (the target is another program's code)."""
    frame = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(50)
    reports = []
    for tier in ("interp", "jit", "aarch64"):
        obj = xsim.load(from_subprogram_o)
        out = testrun.test_run(obj.programs["entry"], data_in=frame, tier=tier)
        mine = report(obj, obj.programs["entry"], out)
        assert mine["retval"] == 2 and out.result.error is None, tier
        reports.append((mine["retval"], mine["maps"]["sub.bss"]))
    assert reports[0] == reports[1] == reports[2]
    bss = bytes.fromhex(reports[0][1]["entries"][0]["value"])
    assert struct.unpack("<QQ", bss) == (1, 31)     # a = XDP_TX, the target's r0; b = 1
    theirs = kernel().kernel_test_run(load_spec(from_subprogram_o), "entry", data_in=frame)
    assert (theirs["retval"], theirs["maps"]["sub.bss"]) == reports[0]
    obj = xsim.load(from_subprogram_o)
    unlink(obj)
    err = testrun.test_run(obj.programs["entry"], data_in=frame).result.error
    assert err is not None and "from a subprogram" in str(err)


@pytest.mark.parametrize("tier", ["interp", "jit"])
def test_a_slot_word_past_the_code_is_an_error_not_a_jump(tier: str) -> None:
    """A slot word only a poke into xsim's memory can make: a clear error, no jump."""
    obj = xsim.load(TAIL)
    jumps = obj.maps["jumps"]
    space = obj.space
    space.mem[jumps.region.host:jumps.region.host + 8] = np.frombuffer(
        (1 << 40).to_bytes(8, "little"), dtype=np.uint8)
    r = obj.programs["chain"].program.run(struct.pack("<Q", 7), tier=tier)
    assert r.error is not None and "names no member" in str(r.error)
    assert r.error.pc == 9


HANDED = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
int slow(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1);
         __uint(key_size, 4); __array(values, int (struct xdp_md *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&slow },
};
struct { __uint(type, BPF_MAP_TYPE_DEVMAP_HASH); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u32); } ports SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");
SEC("xdp") int fast(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_ABORTED;
}
/* a lookup the core leaves to Python: native code hands the rest of the run over */
SEC("xdp") int slow(struct xdp_md *ctx)
{
    __u32 k = 0, slot = (ctx->data_end - ctx->data) & 1, *ifindex;
    __u64 *n = bpf_map_lookup_elem(&seen, &k);
    ifindex = bpf_map_lookup_elem(&ports, &slot);
    if (n)
        *n += 1 + (ifindex ? *ifindex : 100);
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_a_handed_over_run_in_a_chain(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The target's lookup goes to Python: native code hands the rest of that run to the
    interpreter and goes on with the next one (repeat and a capture) as it does
    unlinked."""
    path = _built(tmp_path_factory, "handed", HANDED)
    frame = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(50)

    def run(tier: str, linked: bool) -> tuple:
        obj = xsim.load(path)
        if not linked:
            unlink(obj)
        apply_maps_in(obj, [{"map": "ports", "key": "00000000", "value": "07000000"}])
        out = testrun.test_run(obj.programs["fast"], data_in=frame, repeat=5, tier=tier)
        return (out.retval, out.result.insns, out.result.runs, out.result.helper_calls,
                bytes(obj.maps["seen"].lookup(0)))
    mine = run("jit", True)
    assert mine == run("interp", True) == run("interp", False)
    assert int.from_bytes(mine[4], "little") == 5 * 8 and mine[2] == 5
