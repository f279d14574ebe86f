"""Where a program's bytecode comes from: an ELF object, raw bytecode, or assembly text.

One function for the CLI, the benches and tests, so that "which program of
this file" is decided in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..elf import read_programs
from ..errors import ProgramNotFound, XsimError
from ..isa.asm import assemble

ELF_MAGIC = b"\x7fELF"
ASM_SUFFIXES = (".s", ".asm")


@dataclass(frozen=True)
class CodeSource:
    """The bytecode of one program and where it was found."""

    name: str
    code: bytes
    section: str | None = None
    function: str | None = None


def read_code(path: str | os.PathLike[str], prog: str | None = None,
              syntax: str = "auto") -> CodeSource:
    """The program in ``path``; ``prog`` picks one of an ELF object's by function or section."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XsimError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.startswith(ELF_MAGIC):
        return _from_elf(path, prog)
    if prog is not None:
        raise ProgramNotFound(f"{path}: --prog needs an ELF object", [])
    if path.suffix in ASM_SUFFIXES:
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise XsimError(f"{path}: assembly text is not UTF-8: {exc}") from None
        return CodeSource(path.stem, assemble(text, syntax=syntax))
    return CodeSource(path.stem, data)


def elf_programs(path: str | os.PathLike[str]) -> list[CodeSource]:
    """Every function of an ELF object's executable sections."""
    return [CodeSource(p.function or p.section, p.code, p.section, p.function)
            for p in read_programs(path)]


def _from_elf(path: Path, prog: str | None) -> CodeSource:
    progs = elf_programs(path)
    names = [p.name for p in progs]
    if prog is None:
        if len(progs) == 1:
            return progs[0]
        raise ProgramNotFound(f"{path} has {len(progs)} programs: choose one with --prog", names)
    for p in progs:
        if prog in (p.function, p.section):
            return p
    raise ProgramNotFound(f"{path} has no program {prog!r}", names)
