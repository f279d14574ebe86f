"""What the loader returns: plain, deterministic specs of an object's programs and maps.

The same file gives the same specs on any machine (ARCHITECTURE.md, contract
8); the runtime, the kernel backend and the JIT build what they run from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .kinds import MapType, ProgType


@dataclass(frozen=True)
class MapSpec:
    """One map: from ``.maps`` (BTF), the legacy ``maps`` section, or global data.

    ``init`` holds initial contents: for global data the section bytes as the
    value of key 0; for a prog array or map-in-map, ``(slot, name)`` pairs
    naming the program or inner map to put there.
    """

    name: str
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    pinning: int = 0
    numa_node: int = 0
    map_extra: int = 0
    inner: MapSpec | None = None
    data: bytes | None = None                       # global data: the initial value
    init: tuple[tuple[int, str], ...] = ()          # prog_array / map-in-map slots
    section: str = ""                               # ".maps", "maps", ".data", ...
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    readonly: bool = False                          # .rodata / .kconfig: frozen
    #: for the .kconfig map: (name, offset, size, kind, weak) of each extern it holds,
    #: kind being "bool", "tristate", "int", "uint" or "char[]"; values come at load time
    externs: tuple[tuple[str, int, int, str, bool], ...] = ()


@dataclass(frozen=True)
class Reloc:
    """A reference the loader resolves at instantiation: at instruction slot ``slot``."""

    slot: int
    kind: str          # "map" (map pointer), "map_value" (address in a map), "call", "func", "extern"
    target: str        # map name, function name or extern symbol
    offset: int = 0    # byte offset into the map value, for "map_value"


@dataclass(frozen=True)
class ProgramSpec:
    """One program, with its subprograms already appended and call targets fixed up."""

    name: str
    section: str
    prog_type: ProgType
    code: bytes
    relocs: tuple[Reloc, ...] = ()
    expected_attach_type: int = 0
    attach_to: str = ""                     # the part after the section prefix, if any
    func_names: tuple[tuple[int, str], ...] = ()   # (slot, function) for each function
    #: (slot, file, line number, source text) from BTF line info, in slot order
    lines: tuple[tuple[int, str, int, str], ...] = ()
    #: CO-RE relocations applied (against xsim's model of kernel structs), as
    #: (slot, "struct s.field (KIND)")
    core_relos: tuple[tuple[int, str], ...] = ()
    #: instructions that cannot run: (slot, why), e.g. a CO-RE read of a field xsim
    #: does not model; executing one stops the run with that reason
    unresolved: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ObjectSpec:
    path: str
    programs: tuple[ProgramSpec, ...]
    maps: tuple[MapSpec, ...]
    license: str = ""
    kern_version: int = 0
    externs: dict[str, str] = field(default_factory=dict)   # name -> "kconfig" / "ksym"
