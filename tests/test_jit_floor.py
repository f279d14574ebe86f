"""benches/jit_floor.py, the no-check build bench_jit.py prints as each program's floor:
it computes what the interpreter does, and knows which accesses are stack memory."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from xsim import Program
from xsim.jit import cfg
from xsim.runtime.source import read_code

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
import jit_floor  # noqa: E402


def _load(bench_progs: Path, name: str) -> tuple[Program, bytes]:
    prog = Program.from_bytes(read_code(bench_progs / f"{name}.bpf.o").code)
    return prog, (bench_progs / f"{name}.mem").read_bytes()


@pytest.mark.parametrize("name", ["alu_loop", "pkt_parse", "checksum_1500", "stack_sieve"])
def test_floor_gives_the_interpreters_r0(bench_progs, name: str) -> None:
    prog, memory = _load(bench_progs, name)
    ns, r0, build = jit_floor.floor_ns(prog, memory, 0.004)
    assert r0 == prog.run(memory=memory).r0
    assert ns > 0 and build.startswith("-O")


def test_stack_accesses_are_the_ones_through_r10(bench_progs) -> None:
    prog, _ = _load(bench_progs, "stack_sieve")
    (fn,) = cfg.functions(prog._code)
    # disasm.txt: every load and store but pc 1's (the context) goes through r10
    assert jit_floor._through_r10(fn, prog._code, cfg.blocks(fn, prog._code)) == \
        {6, 11, 13, 23, 36, 42, 44, 46}


def test_what_it_does_not_build_is_refused() -> None:
    prog = Program.from_bytes(bytes.fromhex("8500000001000000" "9500000000000000"))
    with pytest.raises(ValueError, match="beyond the floor lifter"):
        jit_floor.floor_ir(prog)


@pytest.mark.parametrize("name", ["alu_loop", "pkt_parse", "checksum_1500", "stack_sieve"])
def test_the_counting_pieces_count_what_the_interpreter_counts(bench_progs, name: str) -> None:
    """The floor with a piece of the JIT's counting built in (what main() times) still
    computes r0, and its counter counts the instructions or the accesses of the run."""
    prog, memory = _load(bench_progs, name)
    res = prog.run(memory=memory, histogram=True)
    assert jit_floor.counted(prog, memory, "block counts") == (res.r0, (1 << 40) - res.insns)
    assert jit_floor.counted(prog, memory, "budget checks") == (res.r0, (1 << 40) - res.insns)
    accesses = res.histogram.get("ldx", 0) + res.histogram.get("stx", 0) + \
        res.histogram.get("st", 0)
    assert jit_floor.counted(prog, memory, "access count") == (res.r0, (1 << 40) + accesses)
    r0, heads = jit_floor.counted(prog, memory, "loop counter")
    # the entry once, then each loop's header as often as it runs (pkt_parse has none)
    assert r0 == res.r0 and (heads - (1 << 40) == 1) == (name == "pkt_parse")


def test_an_unknown_counting_piece_is_refused(bench_progs) -> None:
    prog, _ = _load(bench_progs, "alu_loop")
    with pytest.raises(ValueError, match="no counting piece"):
        jit_floor.floor_ir(prog, "cycles")
