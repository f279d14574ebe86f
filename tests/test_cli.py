"""The xsim command: asm, disasm, run, and the exit code of each kind of failure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from xsim.cli import (EXIT_BAD_INPUT, EXIT_CANNOT_LOAD, EXIT_NO_PROGRAM, EXIT_OK,
                      EXIT_PROGRAM_ERROR, main)


def test_asm_then_run(tmp_path: Path, capsys) -> None:
    src = tmp_path / "add.s"
    src.write_text("ldxw %r0, [%r1+0]\nadd32 %r0, 5\nexit\n")
    assert main(["asm", str(src), "-o", str(tmp_path / "add.bin")]) == EXIT_OK
    assert (tmp_path / "add.bin").read_bytes()[:1] == b"\x61"
    (tmp_path / "mem").write_bytes((37).to_bytes(4, "little"))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "add.bin"), "--mem", str(tmp_path / "mem"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["r0"] == 42 and data["insns"] == 3 and data["error"] is None


def test_run_assembly_text_directly(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = 7\nexit\n")
    assert main(["run", str(src)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("r0 = 0x7 (7)")


def test_disasm_raw_bytecode(tmp_path: Path, capsys) -> None:
    (tmp_path / "p.bin").write_bytes(bytes.fromhex("b700000007000000" "9500000000000000"))
    assert main(["disasm", str(tmp_path / "p.bin")]) == EXIT_OK
    lines = capsys.readouterr().out.split()
    assert lines == ["0:", "r0", "=", "7", "1:", "exit"]
    assert main(["disasm", "--syntax", "ubpf", str(tmp_path / "p.bin")]) == EXIT_OK
    assert "mov %r0, 7" in capsys.readouterr().out


def test_disasm_elf_object(bench_progs, capsys) -> None:
    assert main(["disasm", str(bench_progs / "alu_loop.bpf.o")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "xdp: <prog>" in out and "r1 = -7046029254386353131 ll" in out


def test_program_fault_exits_1(tmp_path: Path, capsys) -> None:
    src = tmp_path / "bad.s"
    src.write_text("mov %r1, 0\nldxw %r0, [%r1+0]\nexit\n")
    assert main(["run", str(src), "--json"]) == EXIT_PROGRAM_ERROR
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["type"] == "MemoryAccessError" and err["pc"] == 1 and err["region"] is None


def test_budget_from_the_command_line(tmp_path: Path, capsys) -> None:
    src = tmp_path / "loop.s"
    src.write_text("loop:\nja loop\n")
    assert main(["run", str(src), "--budget", "50"]) == EXIT_PROGRAM_ERROR
    assert "budget of 50 exhausted" in capsys.readouterr().out


@pytest.mark.parametrize("content, suffix, code, message", [
    (None, ".bin", EXIT_BAD_INPUT, "cannot open"),
    (b"\xff" * 8 + bytes.fromhex("9500000000000000"), ".bin", EXIT_CANNOT_LOAD, "unknown opcode"),
    (b"\x7fELF" + b"\x00" * 20, ".o", EXIT_CANNOT_LOAD, "ELF"),
    ("frobnicate %r0\n", ".s", EXIT_BAD_INPUT, "line 1"),
])
def test_bad_input_exit_codes(tmp_path: Path, capsys, content, suffix, code, message) -> None:
    path = tmp_path / f"input{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    assert main(["run", str(path)]) == code
    err = capsys.readouterr().err
    assert err.startswith("xsim: ") and message in err
    assert "Traceback" not in err


def test_no_such_program(bench_progs, capsys) -> None:
    assert main(["run", str(bench_progs / "alu_loop.bpf.o"), "--prog", "nope"]) == EXIT_NO_PROGRAM
    assert "no program 'nope' (programs: prog)" in capsys.readouterr().err


def test_disasm_with_source_lines(capsys) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "counter.o"
    assert main(["disasm", "--source", str(example)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "syscall: <count>"
    assert out[1] == "; ./examples/counter.c:35: int count(struct event *ev)"
    assert "<add_to>:" in out          # the linked subprogram, after the program
