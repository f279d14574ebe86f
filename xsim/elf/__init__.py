"""ELF object loader: sections, and (later) relocations, BTF, maps, global data."""
from .objfile import ProgramCode, read_programs

__all__ = ["ProgramCode", "read_programs"]
