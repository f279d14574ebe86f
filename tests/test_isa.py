"""The JIT's code for x86-64, aarch64 and riscv64 under unicorn (xsim/crosscheck/emulate.py).

Each ISA must give the interpreter's whole RunResult: r0, counts, the error with
its pc and address, memory, region access counts and helper calls.  What the
checked code can never do (touch memory outside every region, run an illegal
instruction, run past its budget) comes back as a JitDefect, never a crash.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import xsim
from conftest import conformance_dir
from test_jit import outcome
from test_native import CASES as NATIVE_CASES, PROGRAM_OF
from xsim.cli import main
from xsim.conformance import HELPERS
from xsim.conformance.datafile import read_data_file
from xsim.crosscheck import emulate
from xsim.isa.asm import assemble
from xsim.runtime import Program
from xsim.nic.pcap import PcapReader
from xsim.runtime.source import read_code
from xsim.runtime import testrun

ISAS = ["x86_64", "aarch64", "riscv64"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA = sorted(conformance_dir().glob("*.data"))


def same(prog: Program, isa: str, **kw) -> dict:
    a = outcome(prog.run(**kw))
    b = outcome(prog.run(tier=isa, **kw))
    assert a == b
    return a


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", ["alu_loop", "pkt_parse", "checksum_1500", "stack_sieve"])
def test_bench_programs(bench_progs, name: str, isa: str) -> None:
    source = read_code(bench_progs / f"{name}.bpf.o")
    memory = (bench_progs / f"{name}.mem").read_bytes()
    got = same(Program.from_bytes(source.code), isa, memory=memory, repeat=2)
    assert got["error"] is None and got["runs"] == 2


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_conformance_suite(path: Path, isa: str) -> None:
    case = read_data_file(path)
    if case.asm is None and case.raw is None:
        pytest.skip("file has no program")
    code = case.raw if case.raw is not None else assemble(case.asm, syntax="ubpf")
    got = same(Program.from_bytes(code, helpers=HELPERS), isa, memory=case.memory)
    if case.error is None:
        assert got["error"] is None and got["r0"] == case.result


FAULTS = {
    "wild read": "lddw %r2, 0x123456789\nldxdw %r0, [%r2]\nexit\n",
    "stack overflow": "stxdw [%r10-520], %r1\nmov %r0, 0\nexit\n",
    "budget": "mov %r0, 0\nl:\nadd %r0, 1\nja l\n",
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kind", FAULTS)
def test_faults_are_the_interpreters(isa: str, kind: str) -> None:
    got = same(Program.from_bytes(assemble(FAULTS[kind], syntax="ubpf")), isa,
               memory=bytes(16), budget=1000)
    assert got["error"] is not None


@pytest.mark.parametrize("isa", ISAS)
def test_firewall_example_on_its_hook(isa: str) -> None:
    """An object program behind the XDP hook: map lookups and the hook's context."""
    obj = xsim.load(EXAMPLES / "nic" / "firewall.o")
    testrun.apply_maps_in(obj, json.loads((EXAMPLES / "nic" / "blocklist.json").read_text()))
    prog = obj.programs["firewall"]
    for pkt in list(PcapReader(EXAMPLES / "nic" / "traffic.pcap"))[:12]:
        a = testrun.test_run(prog, data_in=pkt.data)
        b = testrun.test_run(prog, data_in=pkt.data, tier=isa)
        assert (a.result.r0, a.data_out, a.redirect) == (b.result.r0, b.data_out, b.redirect)
        assert outcome(a.result) == outcome(b.result)


def _facts(obj, prog, tier: str, run) -> dict:
    """What one test run leaves: its result, what it writes out and every map."""
    out = testrun.test_run(prog, data_in=run.data_in, ctx_in=run.ctx_in, tier=tier)
    return {"result": outcome(out.result), "data_out": out.data_out, "ctx_out": out.ctx_out,
            "redirect": out.redirect, "printk": out.printk,
            "maps": {name: testrun.dump_map(m) for name, m in obj.maps.items()}}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", sorted(NATIVE_CASES))
def test_every_example_program_on_its_inputs(case: str, isa: str) -> None:
    """Each example program (the kernel-image cases: every shipped example but the raw
    pkt_parse, which test_bench_programs runs, and two programs that read every context
    field) over the first frames of its capture, each tier on its own load of the object
    so that the maps carry over from frame to frame as in a capture run."""
    path, maps, runs = NATIVE_CASES[case]
    sides = []
    for tier in ("interp", isa):
        obj = xsim.load(path)
        if maps:
            testrun.apply_maps_in(obj, json.loads(maps.read_text()))
        sides.append((tier, obj, obj.programs[PROGRAM_OF.get(case, case)]))
    for k, run in enumerate(runs[:32]):
        (ta, oa, pa), (tb, ob, pb) = sides
        assert _facts(oa, pa, ta, run) == _facts(ob, pb, tb, run), f"{case}, run {k}"


# -- what checked code never does: a defect, not a crash ---------------------------------------
def _emulated(isa: str, text: str) -> tuple[Program, emulate.Emulated]:
    prog = Program.from_bytes(assemble(text, syntax="ubpf"))
    return prog, emulate.emulated(prog, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_an_access_past_the_checks_is_a_defect(isa: str, monkeypatch) -> None:
    """The guest's table is made to lie (memory's row points far away): the checked code
    then touches unmapped memory, and that is reported with the native pc."""
    prog, emu = _emulated(isa, "mov %r0, 1\nadd %r0, 2\nldxdw %r0, [%r1]\nexit\n")
    real = emu._sync_in

    def lying() -> None:
        real()
        table = prog.space.table.copy()
        table[:, 2] = table[:, 0]
        row = prog._memory.index
        table[row, 2] = 0x5000_0000_0000
        emu._uc.mem_write(emu.env[xsim.jit.lift.ENV_RG], table.tobytes())
    monkeypatch.setattr(emu, "_sync_in", lying)
    res = prog.run(memory=bytes(16), tier=isa)
    assert isinstance(res.error, emulate.JitDefect)
    # the first byte the code touches of the eight (riscv64 loads them one by one)
    at = re.search(r"unmapped (0x[0-9a-f]+)", str(res.error))
    assert at and 0 <= int(at.group(1), 16) - 0x5000_0000_0000 < 8 and res.error.native_pc > 0
    assert res.error.pc == 2 and "eBPF pc 2" in str(res.error)     # the ldxdw


@pytest.mark.parametrize("isa", ISAS)
def test_an_illegal_instruction_is_a_defect(isa: str) -> None:
    prog, emu = _emulated(isa, "mov %r0, 1\nexit\n")
    emu._uc.mem_write(emu.code.entry, b"\xff" * 16)
    res = prog.run(tier=isa)
    assert isinstance(res.error, emulate.JitDefect)
    assert res.error.native_pc >= emu.code.entry


@pytest.mark.parametrize("isa", ISAS)
def test_a_runaway_past_the_cap_is_a_defect(isa: str, monkeypatch) -> None:
    """Code that lost its budget checks would run forever: the instruction cap stops it.
    (A loop whose sum LLVM can close, like ``r0 += 1``, ends at once whatever the
    budget: its iterations are counted, not run.)"""
    prog, emu = _emulated(isa, "mov %r0, 1\nl:\nmul %r0, 3\nxor %r0, 5\nja l\n")
    monkeypatch.setattr(emulate, "INSNS_PER_EBPF", 0)
    monkeypatch.setattr(emulate, "MIN_INSNS", 100)
    res = prog.run(tier=isa, budget=10**12)
    assert isinstance(res.error, emulate.JitDefect) and "still running" in str(res.error)


def test_cli_runs_on_an_isa(capsys, bench_progs) -> None:
    path = str(bench_progs / "checksum_1500.bpf.o")
    mem = str(bench_progs / "checksum_1500.mem")
    assert main(["run", path, "--mem", mem, "--isa", "riscv64", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["retval"] == 0xb7f1
