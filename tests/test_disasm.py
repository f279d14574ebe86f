"""The disassembler against llvm-objdump, and the minimal ELF reader it is fed from.

../shared/bench-progs/disasm.txt is `llvm-objdump -d` of the four benchmark
objects (clang 22); xsim's llvm syntax must match it instruction for
instruction, whitespace aside.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from conftest import shared_dir
from xsim.elf import ProgramCode, read_programs
from xsim.errors import DecodeError, ElfError
from xsim.isa.asm import assemble
from xsim.isa.disasm import disassemble, disassemble_lines, format_insn
from xsim.isa.insn import decode


BENCH = shared_dir() / "bench-progs"
OBJECTS = sorted(p.name for p in BENCH.glob("*.bpf.o"))
needs_bench = pytest.mark.skipif(not (BENCH / "disasm.txt").is_file(),
                                 reason=f"shared benchmark programs not found in {BENCH} "
                                        "(set XSIM_SHARED_DIR)")


def objdump_listing(name: str) -> list[tuple[int, str]]:
    """The (pc, text) lines of one object's block in disasm.txt, whitespace-normalised."""
    text = (BENCH / "disasm.txt").read_text()
    blocks = re.split(r"^== (\S+) ==$", text, flags=re.M)
    body = blocks[blocks.index(name) + 1]
    return [(int(m[1]), " ".join(m[2].split()))
            for m in re.finditer(r"^\s*(\d+):\t(.*)$", body, re.M)]


def prog_of(name: str) -> ProgramCode:
    (prog,) = [p for p in read_programs(BENCH / name) if p.function == "prog"]
    return prog


@needs_bench
@pytest.mark.parametrize("name", OBJECTS or ["(none)"])
def test_matches_llvm_objdump(name: str) -> None:
    want = objdump_listing(name)
    got = [(pc, " ".join(text.split()))
           for pc, text in disassemble_lines(prog_of(name).code, "llvm", symbol="prog")]
    assert got == want


@needs_bench
@pytest.mark.parametrize("name", OBJECTS or ["(none)"])
def test_objdump_listing_assembles_to_the_object(name: str) -> None:
    """The llvm assembler reads llvm-objdump's own output (pc column, annotations)."""
    text = (BENCH / "disasm.txt").read_text()
    block = re.split(r"^== (\S+) ==$", text, flags=re.M)
    listing = block[block.index(name) + 1]
    assert assemble(listing, "llvm") == prog_of(name).code


@needs_bench
@pytest.mark.parametrize("name", OBJECTS or ["(none)"])
def test_read_programs_finds_prog_in_xdp(name: str) -> None:
    path = BENCH / name
    programs = read_programs(path)
    assert [(p.section, p.function, p.offset) for p in programs] == [("xdp", "prog", 0)]
    assert len(programs[0].code) == 8 * (objdump_listing(name)[-1][0] + 1)
    assert read_programs(path.read_bytes()) == programs       # bytes in, same specs out
    assert read_programs(str(path)) == programs


def test_show_pc_and_annotations() -> None:
    code = assemble("if r1 == 1 goto +1\ngoto -2\nexit", "llvm")
    assert disassemble(code, "llvm", symbol="f", show_pc=True) == (
        "       0:\tif r1 == 1 goto +1 <f+0x10>\n"
        "       1:\tgoto -2 <f>\n"
        "       2:\texit\n")
    assert disassemble(code, "llvm") == "if r1 == 1 goto +1\ngoto -2\nexit\n"
    assert disassemble(code) == "jeq %r1, 1, +1\nja -2\nexit\n"


def test_lddw_takes_two_slots() -> None:
    code = assemble("lddw %r1, 0x8000000000000000\nexit", "ubpf")
    assert disassemble_lines(code, "llvm") == [(0, "r1 = -9223372036854775808 ll"), (2, "exit")]
    assert disassemble_lines(code) == [(0, "lddw %r1, 0x8000000000000000"), (2, "exit")]


def test_accepts_decoded_insns() -> None:
    code = assemble("stxdw [%r10-8], %r1\nexit", "ubpf")
    assert disassemble(decode(code), "llvm") == "*(u64 *)(r10 - 8) = r1\nexit\n"
    assert format_insn(decode(code)[0]) == "stxdw [%r10-8], %r1"


def test_invalid_bytes_raise_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown opcode 0xff"):
        disassemble(bytes([0xFF]) + bytes(7) + bytes([0x95]) + bytes(7))
    with pytest.raises(DecodeError, match="not a multiple of 8"):
        disassemble(b"\x95\x00")


def test_unknown_syntax() -> None:
    with pytest.raises(ValueError, match="unknown syntax 'att'"):
        disassemble(bytes([0x95]) + bytes(7), "att")


# -- ELF errors ------------------------------------------------------------------------

@pytest.mark.parametrize("data, reason", [
    (b"", r"malformed ELF object"),
    (b"\x7fELF", r"malformed ELF object"),
    (b"MZ" + bytes(100), r"malformed ELF object: Magic number does not match"),
])
def test_malformed_elf(data: bytes, reason: str) -> None:
    with pytest.raises(ElfError, match=reason) as info:
        read_programs(data)
    assert info.value.path is None


@needs_bench
def test_truncated_and_foreign_objects() -> None:
    data = (BENCH / OBJECTS[0]).read_bytes()
    with pytest.raises(ElfError, match="malformed ELF object"):
        read_programs(data[:300])
    x86 = data[:18] + struct.pack("<H", 62) + data[20:]          # e_machine = EM_X86_64
    with pytest.raises(ElfError, match=r"not a BPF object \(machine EM_X86_64\)"):
        read_programs(x86)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.o"
    with pytest.raises(ElfError, match="cannot read the file") as info:
        read_programs(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(str(path))


def tiny_elf(sections: list[tuple[str, bytes]], symbols: list[tuple[str, int, int, int]]) -> bytes:
    """A minimal little-endian ELF64 BPF relocatable: null, .strtab, the given executable
    sections (indexes 2..), .symtab with global FUNC symbols (name, shndx, value, size)."""
    names = b"\0"

    def name(text: str) -> int:
        nonlocal names
        names += text.encode() + b"\0"
        return len(names) - len(text) - 1

    sec_names = [name(s) for s in [".strtab"] + [n for n, _ in sections] + [".symtab"]]
    syms = bytes(24) + b"".join(struct.pack("<IBBHQQ", name(n), 0x12, 0, shndx, value, size)
                                for n, shndx, value, size in symbols)
    blobs = [names] + [code for _, code in sections] + [syms]
    offset, body, headers = 64, b"", [bytes(64)]
    for i, blob in enumerate(blobs):
        if i == 0:
            kind, flags, link, info, entsize = 3, 0, 0, 0, 0              # SHT_STRTAB
        elif i == len(blobs) - 1:
            kind, flags, link, info, entsize = 2, 0, 1, 1, 24             # SHT_SYMTAB
        else:
            kind, flags, link, info, entsize = 1, 6, 0, 0, 0              # PROGBITS, AX
        headers.append(struct.pack("<IIQQQQIIQQ", sec_names[i], kind, flags, 0,
                                   offset + len(body), len(blob), link, info, 8, entsize))
        body += blob
    shoff = 64 + len(body)
    header = (b"\x7fELF\x02\x01\x01" + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                            len(headers), 1))
    return header + body + b"".join(headers)


def test_functions_split_by_symbol() -> None:
    """Several FUNC symbols split a section (a zero size runs to the next symbol);
    a section without FUNC symbols is one entry with function None."""
    text = assemble("r0 = 1\nexit\nr0 = 2\nexit\nr0 = 3\nexit", "llvm")
    xdp = assemble("r0 = 2\nexit", "llvm")
    data = tiny_elf([(".text", text), ("xdp", xdp)],
                    [("g", 2, 16, 0), ("f", 2, 0, 16), ("h", 2, 32, 16)])
    assert read_programs(data) == [
        ProgramCode(".text", "f", 0, text[:16]),
        ProgramCode(".text", "g", 16, text[16:32]),
        ProgramCode(".text", "h", 32, text[32:]),
        ProgramCode("xdp", None, 0, xdp),
    ]


def test_function_past_its_section() -> None:
    data = tiny_elf([("xdp", assemble("exit", "llvm"))], [("f", 2, 0, 64)])
    with pytest.raises(ElfError, match="function 'f' at offset 0 size 64 does not fit") as info:
        read_programs(data)
    assert info.value.section == "xdp"


def test_code_size_not_whole_instructions() -> None:
    with pytest.raises(ElfError, match="code size 12 is not a multiple of 8") as info:
        read_programs(tiny_elf([("xdp", bytes(12))], []))
    assert info.value.section == "xdp"
