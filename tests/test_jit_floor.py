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
