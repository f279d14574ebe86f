"""Reading the code of a BPF ELF object: each function of each executable section.

This is the first, small piece of the loader (maps, relocations, BTF and
global data come later, on top of the same file handling).  It returns plain,
deterministic data: the same file gives the same :class:`ProgramCode` list on
any machine.  Anything pyelftools cannot parse, or that is not a
little-endian 64-bit BPF object, raises :class:`~xsim.errors.ElfError`.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.construct.core import ConstructError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import ElfError
from ..isa.insn import INSN_SIZE

#: What pyelftools raises on a malformed file (its own errors and the stdlib's).
_PARSE_ERRORS = (_PyElfError, ConstructError, struct.error, ValueError, IndexError, KeyError,
                 TypeError, AttributeError, UnicodeDecodeError, EOFError, OverflowError)


@dataclass(frozen=True)
class ProgramCode:
    """The bytecode of one function: ``offset`` is its byte offset in ``section``.

    ``function`` is None for an executable section without FUNC symbols, whose
    whole content is then one entry.
    """

    section: str
    function: str | None
    offset: int
    code: bytes


def open_elf(source: str | os.PathLike[str] | bytes) -> tuple[ELFFile, str | None]:
    """A checked little-endian 64-bit BPF ELF file (the whole file is read into memory)."""
    path = None if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    try:
        data = bytes(source) if path is None else open(path, "rb").read()
    except OSError as exc:
        raise ElfError(f"cannot read the file: {exc.strerror or exc}", path) from None
    with elf_errors(path):
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_BPF":
            raise ElfError(f"not a BPF object (machine {elf['e_machine']})", path)
        if elf.elfclass != 64 or not elf.little_endian:
            raise ElfError("only little-endian 64-bit BPF objects are supported", path)
    return elf, path


@contextlib.contextmanager
def elf_errors(path: str | None, section: str | None = None) -> Iterator[None]:
    """Turn whatever a malformed file makes pyelftools raise into an ElfError."""
    try:
        yield
    except ElfError:
        raise
    except _PARSE_ERRORS as exc:
        raise ElfError(f"malformed ELF object: {exc}", path, section) from None


def read_programs(source: str | os.PathLike[str] | bytes) -> list[ProgramCode]:
    """Every function of every executable PROGBITS section, in section then offset order."""
    elf, path = open_elf(source)
    with elf_errors(path):
        return _read(elf, path)


def _read(elf: ELFFile, path: str | None) -> list[ProgramCode]:
    funcs: dict[int, list[tuple[int, int, str]]] = {}
    for table in elf.iter_sections():
        if not isinstance(table, SymbolTableSection):
            continue
        for sym in table.iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and isinstance(sym["st_shndx"], int):
                funcs.setdefault(sym["st_shndx"], []).append(
                    (sym["st_value"], sym["st_size"], sym.name))
    out: list[ProgramCode] = []
    for index, section in enumerate(elf.iter_sections()):
        if section["sh_type"] != "SHT_PROGBITS" or not section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
            continue
        code = section.data()
        if not code:
            continue
        if len(code) % INSN_SIZE:
            raise ElfError(f"code size {len(code)} is not a multiple of {INSN_SIZE} bytes",
                           path, section.name)
        out += _split(section.name, code, funcs.get(index, []), path)
    return out


def _split(name: str, code: bytes, syms: list[tuple[int, int, str]],
           path: str | None) -> list[ProgramCode]:
    """One entry per FUNC symbol; a zero st_size runs to the next symbol or the end.

    Aliases (several symbols at one offset) keep the first name in sorted order.
    """
    if not syms:
        return [ProgramCode(name, None, 0, code)]
    syms = sorted(syms)
    starts = sorted({value for value, _, _ in syms}) + [len(code)]
    out: list[ProgramCode] = []
    for value, size, func in syms:
        if out and out[-1].offset == value:
            continue
        end = value + size if size else starts[starts.index(value) + 1]
        if value % INSN_SIZE or size % INSN_SIZE or end > len(code):
            raise ElfError(f"function {func!r} at offset {value} size {size} does not fit the "
                           f"{len(code)}-byte section in whole instructions", path, name)
        out.append(ProgramCode(name, func, value, code[value:end]))
    return out
