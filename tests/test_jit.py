"""The JIT tier (xsim/jit): the interpreter's RunResult, from native code.

Every conformance program, every bench program and the object examples run
on both tiers and must give the same r0, instruction counts, error (type,
pc, address), memory, region access counts and helper calls.  The budget is
counted per basic block yet stops at the interpreter's instruction (the
interpreter finishes the block where the budget runs out).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import xsim
from conftest import conformance_dir
from xsim.conformance import HELPERS, run_jit
from xsim.conformance.datafile import read_data_file
from xsim.isa import interp as ip
from xsim.isa import opcodes as oc
from xsim.isa.asm import assemble
from xsim.jit import engine, lift
from xsim.runtime import Program
from xsim.runtime.source import read_code

DATA = sorted(conformance_dir().glob("*.data"))
needs_suite = pytest.mark.skipif(not DATA, reason=f"no conformance files in {conformance_dir()}")


def outcome(res) -> dict:
    d = res.to_dict()
    d.pop("duration_ns")
    d["memory"] = res.memory
    d["region_counts"] = res.region_counts
    return d


def both(prog: Program, **kw) -> dict:
    a = outcome(prog.run(**kw))
    b = outcome(prog.run(tier="jit", **kw))
    assert a == b
    return a


def test_every_exec_name_is_lifted() -> None:
    assert set(oc.EXEC_NAMES) <= lift.HANDLED


@needs_suite
@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_conformance_file_on_both_tiers(path: Path) -> None:
    case = read_data_file(path)
    if case.asm is None and case.raw is None:
        pytest.skip("file has no program")
    code = case.raw if case.raw is not None else assemble(case.asm, syntax="ubpf")
    got = both(Program.from_bytes(code, helpers=HELPERS), memory=case.memory)
    if case.error is None:
        assert got["error"] is None and got["r0"] == case.result
        assert run_jit(code, case.memory) == case.result


@pytest.mark.parametrize("name", ["alu_loop", "pkt_parse", "checksum_1500", "stack_sieve"])
def test_bench_programs(bench_progs, name: str) -> None:
    source = read_code(bench_progs / f"{name}.bpf.o")
    memory = (bench_progs / f"{name}.mem").read_bytes()
    got = both(Program.from_bytes(source.code), memory=memory, repeat=3)
    assert got["error"] is None and got["runs"] == 3


LOOP = """
mov %r0, 0
mov %r1, 10
lbl:
add %r0, %r1
sub %r1, 1
jne %r1, 0, lbl
exit
"""


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 6, 19, 20, 21, 32, 33, 34])
def test_the_budget_stops_at_the_interpreters_instruction(budget: int) -> None:
    got = both(Program.from_bytes(assemble(LOOP)), budget=budget)
    assert (got["error"] is None) == (budget >= 33)


FAULTS = {
    "read past memory": "ldxdw %r0, [%r1+8]\nexit",
    "write to a read-only context": "mov %r2, 0\nstxdw [%r2+0], %r1\nexit",
    "below the stack frame": "stxdw [%r10-520], %r1\nexit",
    "atomic out of bounds": "mov %r2, 1\nlock add [%r1+4], %r2\nexit",
}


@pytest.mark.parametrize("text", FAULTS.values(), ids=FAULTS.keys())
def test_faults_give_the_same_error(text: str) -> None:
    got = both(Program.from_bytes(assemble(text)), memory=bytes(8))
    assert got["error"]["type"] == "MemoryAccessError"


CALLS = """
mov %r6, 7
mov %r1, 5
call local local
add %r0, %r6
exit
local:
stxdw [%r10-8], %r1
mov %r6, 100
ldxdw %r0, [%r10-8]
mul %r0, 3
exit
"""


def test_local_calls_keep_their_frames() -> None:
    got = both(Program.from_bytes(assemble(CALLS)))
    assert got["r0"] == 22


DEEP = """
call local f1
exit
f1:
call local f2
exit
f2:
call local f3
exit
f3:
call local f4
exit
f4:
call local f5
exit
f5:
call local f6
exit
f6:
call local f7
exit
f7:
call local f8
exit
f8:
mov %r0, 1
exit
"""


def test_the_call_depth_limit() -> None:
    got = both(Program.from_bytes(assemble(DEEP)))
    assert got["error"]["type"] == "CallDepthExceeded"


def test_maps_and_helpers_of_an_object() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    obj = xsim.load(root / "counter.o")
    prog = obj.programs[next(iter(obj.programs))]
    ctx = (root / "counter.ctx").read_bytes() if (root / "counter.ctx").exists() else bytes(64)
    a = outcome(prog.run(ctx, repeat=5))
    maps_a = {n: m.items() for n, m in obj.maps.items()}
    obj = xsim.load(root / "counter.o")
    prog = obj.programs[next(iter(obj.programs))]
    b = outcome(prog.run(ctx, repeat=5, tier="jit"))
    assert a == b
    assert maps_a == {n: m.items() for n, m in obj.maps.items()}


@pytest.mark.parametrize("budget", [10**6, 25])
def test_the_histogram(bench_progs, budget: int) -> None:
    """A profiling build counts what the interpreter counts, also when the budget ends."""
    for name in ("stack_sieve", "checksum_1500"):
        source = read_code(bench_progs / f"{name}.bpf.o")
        memory = (bench_progs / f"{name}.mem").read_bytes()
        got = both(Program.from_bytes(source.code), memory=memory, repeat=2, histogram=True,
                   budget=budget)
        assert sum(got["histogram"].values()) == got["insns_total"]


def test_cli_shows_llvm_and_annotated_assembly(capsys) -> None:
    from xsim.cli import main
    firewall = Path(__file__).resolve().parents[1] / "examples" / "nic" / "firewall.o"
    assert main(["jit", str(firewall), "--emit", "asm"]) == 0
    asm = capsys.readouterr().out
    pcs = {int(line.split()[-1]) for line in asm.splitlines() if line.strip().startswith("; pc")}
    assert 0 in pcs and len(pcs) > 10
    assert main(["jit", str(firewall), "--emit", "llvm", "--unoptimized"]) == 0
    ir = capsys.readouterr().out
    assert "define i64 @\"xsim_entry\"" in ir and "fast0:" in ir and "handoff0:" in ir


def test_the_auto_tier_compiles_repeated_runs(bench_progs) -> None:
    source = read_code(bench_progs / "pkt_parse.bpf.o")
    memory = (bench_progs / "pkt_parse.mem").read_bytes()
    prog = Program.from_bytes(source.code)
    once = prog.run(memory=memory, tier="auto")
    assert getattr(prog, "_native", None) is None           # one run: the interpreter
    many = prog.run(memory=memory, tier="auto", repeat=100)
    assert prog._native is not None and (once.r0, once.insns) == (many.r0, many.insns)


def test_xdp_test_runs_on_the_jit_tier() -> None:
    from xsim.runtime.testrun import report, test_run
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    frames = [p.data for p in __import__("xsim.nic.pcap", fromlist=["read_packets"])
              .read_packets(root / "traffic.pcap")][:50]
    reports = {}
    for tier in ("interp", "jit"):
        obj = xsim.load(root / "ipip.o")
        out = [report(obj, obj.programs["encap"], test_run(obj.programs["encap"], data_in=f,
                                                             tier=tier, repeat=2))
               for f in frames]
        for r in out:
            r.pop("duration_ns")
        reports[tier] = out
    assert reports["interp"] == reports["jit"]


def test_cli_runs_on_the_jit_tier(capsys, bench_progs) -> None:
    import json as _json
    from xsim.cli import main
    args = ["run", str(bench_progs / "pkt_parse.bpf.o"), "--mem",
            str(bench_progs / "pkt_parse.mem"), "--json", "--repeat", "3"]
    results = []
    for tier in ("interp", "jit", "auto"):
        assert main(args + ["--tier", tier]) == 0
        d = _json.loads(capsys.readouterr().out)
        d.pop("duration_ns")
        jit = d.pop("jit", None)
        assert (jit is None) == (tier != "jit")          # auto: 3 runs are interpreted
        results.append(d)
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("prog", ["chain", "again"])
def test_tail_calls_on_the_jit_tier(prog: str) -> None:
    """A chain through a prog array and a program that tail-calls itself to the limit."""
    tail = Path(__file__).parent / "data" / "diff" / "tail.o"
    ctx = (7).to_bytes(8, "little")
    seen = []
    for tier in ("interp", "jit"):
        obj = xsim.load(tail)
        res = outcome(obj.programs[prog].run(ctx, tier=tier, repeat=2))
        seen.append((res, {n: m.items() for n, m in obj.maps.items()
                           if m.type.value != "prog_array"}))
    assert seen[0] == seen[1]
    assert seen[0][0]["error"] is None


@pytest.mark.parametrize("example, prog", [("tc_marker.o", "tc_marker"),
                                           ("dns_filter.o", "dns_filter")])
def test_tc_and_socket_examples_over_their_capture(tmp_path: Path, example: str,
                                                    prog: str) -> None:
    """The examples the capture loop does not run: one test run per packet, each tier."""
    import io
    from xsim.nic.pcaprun import run_pcap
    from xsim.runtime.testrun import dump_map
    root = Path(__file__).resolve().parents[1] / "examples" / "nic"
    seen = []
    for tier in ("interp", "jit"):
        obj = xsim.load(root / example)
        rec = io.StringIO()
        name = next(iter(obj.programs)) if prog not in obj.programs else prog
        s = run_pcap(obj, obj.programs[name], root / "traffic.pcap",
                     out=tmp_path / f"{tier}.pcap", records=rec, tier=tier)
        d = s.to_dict(obj)
        d.pop("elapsed_s"), d.pop("pps")
        files = {p.name.replace(tier, "T"): p.read_bytes() for p in tmp_path.glob(f"{tier}*")}
        seen.append((d, rec.getvalue(), files, {n: dump_map(m) for n, m in obj.maps.items()}))
    assert seen[0] == seen[1]
    assert seen[0][0]["packets"] == 1000


def test_a_compiler_crash_takes_down_only_its_child(monkeypatch, tmp_path: Path) -> None:
    """LLVM compiles in a forked child: an abort there is an error here, and the auto
    tier falls back to the interpreter."""
    import os as _os
    if not hasattr(_os, "fork"):
        pytest.skip("no fork on this OS: compiling happens in-process")
    monkeypatch.setenv("XSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(engine, "optimized_text", lambda *a: _os.abort())
    engine.stop_compiler()          # the next compiler process is forked with the patch
    prog = Program.from_bytes(assemble("mov %r0, 7\nexit"))
    with pytest.raises(engine.CompilerCrashed, match="signal 6"):
        prog.run(tier="jit")
    res = prog.run(tier="auto", repeat=100)
    assert res.r0 == 7 and getattr(prog, "_native", None) is None
    assert engine._COMPILER is None      # each crash took its compiler process with it


def test_one_compiler_process_serves_every_compile(tmp_path: Path, monkeypatch) -> None:
    """Compiles go to one forked compiler process, which stays for the next one."""
    import os as _os
    if not hasattr(_os, "fork"):
        pytest.skip("no fork on this OS: compiling happens in-process")
    monkeypatch.setenv("XSIM_CACHE_DIR", str(tmp_path))
    engine.stop_compiler()
    got = [Program.from_bytes(assemble(f"mov %r0, {k}\nexit")).run(tier="jit").r0
           for k in (3, 4)]
    pid = engine._COMPILER.pid
    assert got == [3, 4] and pid != _os.getpid()
    assert Program.from_bytes(assemble("mov %r0, 5\nexit")).run(tier="jit").r0 == 5
    assert engine._COMPILER.pid == pid
    engine.stop_compiler()
    assert engine._COMPILER is None


@pytest.fixture
def compiler_pid(tmp_path: Path, monkeypatch) -> int:
    """The pid of this process's compiler process, after one compile through it."""
    import os as _os
    if not hasattr(_os, "fork"):
        pytest.skip("no fork on this OS: compiling happens in-process")
    monkeypatch.setenv("XSIM_CACHE_DIR", str(tmp_path))
    assert Program.from_bytes(assemble("mov %r0, 6\nexit")).run(tier="jit").r0 == 6
    return engine._COMPILER.pid


def test_a_compiler_process_gone_between_compiles_is_replaced(compiler_pid: int) -> None:
    """A compiler process that died while idle (killed from outside) costs the next
    compile nothing but a new fork: only a death on the program itself is an error."""
    import os as _os
    import signal
    _os.kill(compiler_pid, signal.SIGKILL)
    _os.waitpid(compiler_pid, 0)    # dead before the next compile sends it anything
    assert Program.from_bytes(assemble("mov %r0, 8\nexit")).run(tier="jit").r0 == 8
    assert engine._COMPILER.pid != compiler_pid


def test_the_compiler_process_leaves_ctrl_c_to_its_host(compiler_pid: int) -> None:
    """A SIGINT (a terminal's Ctrl-C reaches the whole process group) does not end the
    compiler process: the host decides what an interrupt means."""
    import os as _os
    import signal
    import time
    _os.kill(compiler_pid, signal.SIGINT)
    time.sleep(0.05)
    assert _os.waitpid(compiler_pid, _os.WNOHANG) == (0, 0)          # still there
    assert Program.from_bytes(assemble("mov %r0, 2\nexit")).run(tier="jit").r0 == 2
    assert engine._COMPILER.pid == compiler_pid


def test_a_compile_puts_the_heap_out_of_the_collectors_reach(monkeypatch,
                                                             tmp_path: Path) -> None:
    """A compile that is not a cache hit freezes the objects alive before it (once per
    process), so a full collection during lifting does not walk the imports."""
    import gc
    monkeypatch.setenv("XSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(engine, "_FROZEN", False)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    res = Program.from_bytes(assemble("mov %r0, 9\nexit")).run(tier="jit")
    assert res.r0 == 9 and gc.get_freeze_count() > 0 and engine._FROZEN


@pytest.mark.parametrize("prog, ctx", [("loop_prog", (10, 100)), ("loop_prog", (10, 4)),
                                       ("loop_prog", (0, 0))])
def test_helpers_that_call_back_into_the_program(prog: str, ctx: tuple) -> None:
    """bpf_loop from native code: its callback runs on the interpreter, on the same
    registers, frames and counts, and the run goes on natively after it."""
    import struct
    path = Path(__file__).parent / "data" / "loader" / "callbacks.o"
    got = []
    for tier in ("interp", "jit"):
        obj = xsim.load(path)
        got.append(outcome(obj.programs[prog].run(struct.pack("<II", *ctx), tier=tier,
                                                   repeat=2)))
    assert got[0] == got[1] and got[0]["error"] is None


def test_a_callback_writes_the_native_callers_stack() -> None:
    """The callback (run by the interpreter) writes the native caller's frame through
    its ctx pointer; the caller reads it back after bpf_loop."""
    from xsim import HelperRegistry
    from xsim.runtime.callback_helpers import register_callback_helpers
    helpers = HelperRegistry()
    register_callback_helpers(helpers)
    from test_callbacks import _loop_program
    code = _loop_program("ldxdw %r3, [%r2+0]\nadd %r3, %r1\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit")
    got = both(Program.from_bytes(code, helpers=helpers), repeat=2)
    assert got["error"] is None and got["r0"] == 3 + (0 + 1 + 2) * 10


def _branch_weights(text: str, taken: str, other: str) -> tuple[int, int] | None:
    """The weights of the (one) branch to blocks ``taken`` and ``other`` in lifted IR,
    None if it has none."""
    m = re.search(rf'br i1 %"[.0-9]+", label %"{taken}", label %"{other}"(, !prof !(\d+))?',
                  text)
    assert m is not None, (taken, other)
    if m.group(2) is None:
        return None
    w = re.search(rf'!{m.group(2)} = !{{ !"branch_weights", i32 (\d+), i32 (\d+) }}', text)
    return int(w.group(1)), int(w.group(2))


def test_early_returns_are_predicted_unlikely(bench_progs) -> None:
    """pkt_parse's jumps to its exit (a failed bounds check, a packet it lets by) are
    weighted against, so LLVM lays out the parse straight; a loop's exit (the sieve's
    `i < n`) is left to LLVM's loop heuristics."""
    parse = Program.from_bytes(read_code(bench_progs / "pkt_parse.bpf.o").code)
    text = engine.llvm_ir(parse._code, parse._st[ip.C_BASE:], "prog", optimized=False)
    assert _branch_weights(text, "b87", "b2") == (1, lift.EARLY_RETURN_ODDS)
    sieve = Program.from_bytes(read_code(bench_progs / "stack_sieve.bpf.o").code)
    text = engine.llvm_ir(sieve._code, sieve._st[ip.C_BASE:], "prog", optimized=False)
    assert _branch_weights(text, "b36", "b31") is None          # pc 30, in the loop
    assert _branch_weights(text, "b36", "b13") == (1, lift.EARLY_RETURN_ODDS)   # pc 12
