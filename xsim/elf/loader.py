"""ELF object -> ObjectSpec: programs with their subprograms linked in, maps, global data.

What it does, the way libbpf does it:

* every global function of an executable section is a program; ``.text``
  and static functions are subprograms, appended to each program that calls
  them (only those it reaches, as the kernel refuses unreachable code), with
  the calls' pc-relative immediates fixed up;
* ``R_BPF_64_64`` on an LD_IMM64 refers to a map (symbol in ``.maps`` or
  ``maps``), to global data (``.data*``, ``.bss*``, ``.rodata*``: a map value
  plus an offset), to a function (``lddw func``) or to an extern
  (``.kconfig`` / ``.ksyms``); ``R_BPF_64_32`` is a call to a subprogram;
  ``R_BPF_64_ABS64/ABS32`` in ``.maps`` initialise prog arrays and maps of maps;
* maps come from BTF (``.maps``) or ``struct bpf_map_def`` (legacy ``maps``);
  global-data maps are named as libbpf names them.

The result is plain data (see :mod:`xsim.elf.spec`): nothing here depends on
the machine.
"""
from __future__ import annotations

import os
import struct
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from ..errors import ElfError
from ..isa import opcodes as oc
from .kinds import MapType, ProgType
from .objfile import elf_errors, open_elf
from .spec import MapSpec, ObjectSpec, ProgramSpec, Reloc

INSN = 8
# ELF relocation types of the BPF target (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 1, 2, 3, 4, 10
#: struct bpf_map_def of the legacy "maps" section: type, key_size, value_size, max_entries, flags
_BPF_MAP_DEF = struct.Struct("<IIIII")
BPF_OBJ_NAME_LEN = 16
BPF_F_RDONLY_PROG, BPF_F_MMAPABLE = 1 << 7, 1 << 10

_SECTION_TYPES = tomllib.loads(
    (Path(__file__).with_name("section_types.toml")).read_text())["rows"]


def prog_type_of(section: str) -> tuple[ProgType, str] | None:
    """(program type, what it attaches to) for a section name, or None if it names no program."""
    for prefix, type_name in _SECTION_TYPES:
        if section == prefix:
            return ProgType[type_name.upper()], ""
        if section.startswith(prefix + "/"):
            return ProgType[type_name.upper()], section[len(prefix) + 1:]
    return None


def data_map_name(obj_path: str, section: str) -> str:
    """libbpf's name for a global-data map: 8 characters of the object name, then the
    section; a section with a second dot (``.rodata.cst16``) keeps its own name alone."""
    base = os.path.basename(obj_path).split(".", 1)[0]
    prefix = "" if "." in section[1:] else base[:8]
    return (prefix + section)[:BPF_OBJ_NAME_LEN - 1]


def is_data_section(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in (".data", ".bss", ".rodata"))


@dataclass(frozen=True)
class _Sym:
    name: str
    value: int
    size: int
    type: str
    bind: str
    shndx: int | str


@dataclass
class _Func:
    """A function of an executable section, before linking."""

    section: int
    name: str
    start: int           # byte offset in the section
    end: int
    bind: str


@dataclass
class _Obj:
    path: str
    elf: ELFFile
    names: dict[int, str] = field(default_factory=dict)        # section index -> name
    syms: list[_Sym] = field(default_factory=list)
    funcs: dict[int, list[_Func]] = field(default_factory=dict)
    code: dict[int, bytes] = field(default_factory=dict)
    relocs: dict[int, dict[int, tuple[int, _Sym]]] = field(default_factory=dict)  # sec -> off -> (type, sym)
    data_maps: dict[int, str] = field(default_factory=dict)     # section index -> map name
    kconfig: dict[str, int] = field(default_factory=dict)       # extern -> offset in .kconfig
    kconfig_map: str = ""
    btf: object = None
    _ext: object = None
    map_syms: dict[tuple[int, int], str] = field(default_factory=dict)  # (sec, value) -> map name

    def error(self, reason: str, section: int | str | None = None) -> ElfError:
        name = self.names.get(section, section) if isinstance(section, int) else section
        return ElfError(reason, self.path, name)


def load_spec(source: str | os.PathLike[str] | bytes, name: str | None = None) -> ObjectSpec:
    """Read an object file into an ObjectSpec; a malformed or unsupported one is an ElfError."""
    elf, path = open_elf(source)
    obj = _Obj(path or name or "object.o", elf)
    with elf_errors(path):
        _index(obj)
        maps = _maps(obj)
        programs = _programs(obj, {m.name for m in maps})
        license_, version = _license(obj), _version(obj)
    return ObjectSpec(obj.path, tuple(programs), tuple(maps), license_, version)


def _index(obj: _Obj) -> None:
    for i, sec in enumerate(obj.elf.iter_sections()):
        obj.names[i] = sec.name
    for sec in obj.elf.iter_sections():
        if isinstance(sec, SymbolTableSection):
            for s in sec.iter_symbols():
                obj.syms.append(_Sym(s.name, s["st_value"], s["st_size"], s["st_info"]["type"],
                                     s["st_info"]["bind"], s["st_shndx"]))
    for i, sec in enumerate(obj.elf.iter_sections()):
        if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
            data = sec.data()
            if len(data) % INSN:
                raise obj.error(f"code size {len(data)} is not a multiple of {INSN}", i)
            obj.code[i] = data
    for sym in obj.syms:
        if sym.type == "STT_FUNC" and isinstance(sym.shndx, int) and sym.shndx in obj.code:
            obj.funcs.setdefault(sym.shndx, []).append(
                _Func(sym.shndx, sym.name, sym.value, sym.value + sym.size, sym.bind))
    for i, funcs in obj.funcs.items():
        funcs.sort(key=lambda f: f.start)
        for f, nxt in zip(funcs, funcs[1:] + [None]):
            if f.end == f.start:      # no size: up to the next function or the end
                f.end = nxt.start if nxt else len(obj.code[i])
            if f.start % INSN or f.end % INSN or f.end > len(obj.code[i]):
                raise obj.error(f"function {f.name!r} does not fit its section in whole "
                                "instructions", i)
    symtab = None
    for sec in obj.elf.iter_sections():
        if isinstance(sec, SymbolTableSection):
            symtab = sec
    for sec in obj.elf.iter_sections():
        if not isinstance(sec, RelocationSection) or symtab is None:
            continue
        target = sec["sh_info"]
        table = obj.relocs.setdefault(target, {})
        syms = list(symtab.iter_symbols())
        for rel in sec.iter_relocations():
            index = rel["r_info_sym"]
            if index >= len(syms):
                raise obj.error(f"relocation at {rel['r_offset']:#x} names symbol {index}, "
                                "which does not exist", sec.name)
            s = syms[index]
            table[rel["r_offset"]] = (rel["r_info_type"], _Sym(
                s.name, s["st_value"], s["st_size"], s["st_info"]["type"],
                s["st_info"]["bind"], s["st_shndx"]))


# -- maps -------------------------------------------------------------------------

def _maps(obj: _Obj) -> list[MapSpec]:
    maps: list[MapSpec] = []
    by_name = {n: i for i, n in obj.names.items()}
    if "maps" in by_name:
        maps += _legacy_maps(obj, by_name["maps"])
    if ".maps" in by_name:
        maps += _btf_maps(obj, by_name[".maps"])
    for i, sec_name in sorted(obj.names.items()):
        if not is_data_section(sec_name):
            continue
        sec = obj.elf.get_section(i)
        size = sec["sh_size"]
        if size == 0:
            continue
        data = bytes(size) if sec["sh_type"] == "SHT_NOBITS" else sec.data()
        name = data_map_name(obj.path, sec_name)
        obj.data_maps[i] = name
        readonly = sec_name.startswith(".rodata")
        # libbpf's flags for global data: mmapable, and read-only for programs if .rodata
        flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0)
        maps.append(MapSpec(name, MapType.ARRAY, 4, size, 1, flags, data=data, section=sec_name,
                            readonly=readonly))
    kconfig = _kconfig_map(obj)
    if kconfig is not None:
        maps.append(kconfig)
    names = [m.name for m in maps]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise obj.error(f"two maps are named {sorted(dup)[0]!r}")
    return maps


def _btf(obj: _Obj):
    """The object's BTF, parsed once (None without a .BTF section)."""
    if obj.btf is None:
        from . import btf as btf_mod
        sec = obj.elf.get_section_by_name(".BTF")
        obj.btf = False if sec is None else btf_mod.parse_btf(sec.data())
    return obj.btf or None


def _kconfig_map(obj: _Obj) -> MapSpec | None:
    """The .kconfig map libbpf makes for ``extern ... __kconfig`` variables: their
    layout here, their values when the object is instantiated."""
    from . import btf as btf_mod

    btf = _btf(obj)
    if btf is None:
        return None
    secs = btf.find(".kconfig", btf_mod.Kind.DATASEC)
    if not secs:
        return None
    weak = {s.name for s in obj.syms if s.bind == "STB_WEAK" and s.shndx == "SHN_UNDEF"}
    externs, offset = [], 0
    for var in secs[0].vars:
        name = btf.types[var.type].name
        t = btf.resolve(btf.types[var.type].type)
        size = btf.size_of(var.type)
        if t.kind is btf_mod.Kind.INT and t.encoding & btf_mod.IntEncoding.BOOL:
            kind = "bool"
        elif t.kind is btf_mod.Kind.ENUM:
            kind = "tristate"
        elif t.kind is btf_mod.Kind.INT:
            kind = "int" if t.encoding & btf_mod.IntEncoding.SIGNED else "uint"
        elif t.kind is btf_mod.Kind.ARRAY:
            kind = "char[]"
        else:
            raise obj.error(f"extern {name!r} __kconfig has a type xsim cannot fill "
                            f"({btf.format(var.type)})", ".kconfig")
        align = min(size, 8) if size & (size - 1) == 0 else 1
        offset = (offset + align - 1) // align * align
        externs.append((name, offset, size, kind, name in weak))
        obj.kconfig[name] = offset
        offset += size
    obj.kconfig_map = data_map_name(obj.path, ".kconfig")
    return MapSpec(obj.kconfig_map, MapType.ARRAY, 4, max(offset, 1), 1,
                   BPF_F_MMAPABLE | BPF_F_RDONLY_PROG, section=".kconfig", readonly=True,
                   externs=tuple(externs))


def _legacy_maps(obj: _Obj, index: int) -> list[MapSpec]:
    data = obj.elf.get_section(index).data()
    syms = sorted((s for s in obj.syms if s.shndx == index and s.type in ("STT_OBJECT",
                                                                           "STT_NOTYPE")
                   and s.name), key=lambda s: s.value)
    if not syms:
        return []
    size = len(data) // len(syms)
    if size < _BPF_MAP_DEF.size:
        raise obj.error(f"map definitions of {size} bytes are smaller than struct bpf_map_def",
                        index)
    out = []
    for s in syms:
        raw = data[s.value:s.value + _BPF_MAP_DEF.size]
        if len(raw) < _BPF_MAP_DEF.size:
            raise obj.error(f"map {s.name!r} runs past the end of the section", index)
        mtype, key, value, entries, flags = _BPF_MAP_DEF.unpack(raw)
        out.append(MapSpec(s.name, _map_type(obj, mtype, s.name, index), key, value, entries,
                           flags, section="maps"))
        obj.map_syms[(index, s.value)] = s.name
    return out


def _map_type(obj: _Obj, value: int, name: str, section: int) -> MapType:
    try:
        return MapType(value)
    except ValueError:
        raise obj.error(f"map {name!r} has unknown map type {value}", section) from None


def _btf_maps(obj: _Obj, index: int) -> list[MapSpec]:
    from . import btf as btf_mod

    btf = _btf(obj)
    if btf is None:
        raise obj.error("the .maps section needs BTF, and the object has no .BTF section", index)
    defs = btf_mod.map_defs_from_btf(btf)
    # where each map definition lies in .maps: its ELF symbol (BTF leaves offsets to the loader)
    syms = {s.name: s for s in obj.syms if s.shndx == index and s.name}
    relocs = obj.relocs.get(index, {})
    out = []
    for d in defs:
        if d.type is None:
            raise obj.error(f"map {d.name!r} has no type", index)
        sym = syms.get(d.name)
        if sym is None:
            raise obj.error(f"map {d.name!r} has BTF but no symbol in .maps", index)
        obj.map_syms[(index, sym.value)] = d.name
        init = []
        values_at = _values_offset(btf, d.name)
        if values_at is not None:
            for off, (_rtype, target) in sorted(relocs.items()):
                if sym.value + values_at <= off < sym.value + sym.size:
                    init.append(((off - sym.value - values_at) // 8, target.name))
        inner = _spec_of(obj, d.inner, index, d.inner.name) if d.inner is not None else None
        spec = _spec_of(obj, d, index, d.name)
        out.append(MapSpec(**{**spec.__dict__, "inner": inner, "init": tuple(init)}))
    return out


def _values_offset(btf, map_name: str) -> int | None:
    """Byte offset of the ``values`` member in a map definition's struct, if it has one."""
    from . import btf as btf_mod

    found = btf.find(map_name, btf_mod.Kind.VAR)
    if len(found) != 1:
        return None
    struct_type = btf.resolve(found[0].type)
    for m in getattr(struct_type, "members", ()):
        if m.name == "values":
            return m.byte_offset
    return None


def _spec_of(obj: _Obj, d, index: int, name: str) -> MapSpec:
    mtype = _map_type(obj, d.type, name, index)
    return MapSpec(name, mtype, d.key_size or 0, d.value_size or 0, d.max_entries or 0,
                   d.map_flags or 0, d.pinning or 0, d.numa_node or 0, d.map_extra or 0,
                   section=".maps", btf_key_type_id=d.key_type_id or 0,
                   btf_value_type_id=d.value_type_id or 0)


# -- programs -----------------------------------------------------------------------

def _programs(obj: _Obj, map_names: set[str]) -> list[ProgramSpec]:
    out = []
    for index, funcs in sorted(obj.funcs.items()):
        section = obj.names[index]
        if section == ".text":
            continue
        kind = prog_type_of(section)
        if kind is None:
            raise obj.error(f"section {section!r} names no program type xsim knows "
                            "(libbpf's SEC() names)", index)
        prog_type, attach = kind
        for func in funcs:
            if func.bind == "STB_LOCAL":
                continue          # a static function: a subprogram of its section's programs
            code, relocs, names, placed = _link(obj, func)
            patched = bytearray(code)
            lines, core, unresolved = _ext_records(obj, placed, patched)
            out.append(ProgramSpec(func.name, section, prog_type, bytes(patched),
                                   tuple(relocs), attach_to=attach, func_names=tuple(names),
                                   lines=lines, core_relos=core, unresolved=unresolved))
    return out


def _btf_ext(obj: _Obj):
    """The object's BTF.ext records (None without .BTF.ext), parsed once."""
    if obj._ext is None:
        from . import btf as btf_mod
        sec = obj.elf.get_section_by_name(".BTF.ext")
        btf = _btf(obj)
        obj._ext = False if sec is None or btf is None else btf_mod.parse_btf_ext(sec.data(), btf)
    return obj._ext or None


def _ext_records(obj: _Obj, placed: list[tuple[_Func, int]],
                 code: bytearray) -> tuple[tuple, tuple, tuple]:
    """Line info and CO-RE relocations of the linked program, by slot; the relocations
    are applied to ``code`` against xsim's model of kernel structs."""
    from . import core as core_mod

    ext = _btf_ext(obj)
    if ext is None:
        return (), (), ()
    lines, core, unresolved = [], [], []
    btf = _btf(obj)
    for func, base in placed:
        sec = obj.names[func.section]
        for li in ext.line_info.get(sec, ()):
            if func.start <= li.insn_off < func.end:
                lines.append((base + (li.insn_off - func.start) // INSN, li.file, li.line_num,
                              li.line))
        for cr in ext.core_relos.get(sec, ()):
            if func.start <= cr.insn_off < func.end:
                slot = base + (cr.insn_off - func.start) // INSN
                try:
                    why = core_mod.apply(code, slot, btf, cr)
                except ElfError as exc:
                    raise obj.error(f"program {placed[0][0].name}: {exc.reason}",
                                    func.section) from None
                core.append((slot, f"{_core_field(btf, cr)} ({cr.kind.name})"))
                if why is not None:
                    unresolved.append((slot, why))
    return tuple(sorted(lines)), tuple(sorted(core)), tuple(sorted(unresolved))


def _core_field(btf, relo) -> str:
    """A CO-RE access string as C: ``struct outer.in.b`` for ``0:1:1`` and so on."""
    from . import btf as btf_mod

    text = btf.format(relo.type_id)
    t = btf.resolve(relo.type_id)
    try:
        parts = [int(x) for x in relo.access.split(":")]
    except ValueError:
        return f"{text} (access {relo.access})"
    if parts[0]:
        text += f"[{parts[0]}]"
    for index in parts[1:]:
        if t.kind in (btf_mod.Kind.STRUCT, btf_mod.Kind.UNION) and index < len(t.members):
            member = t.members[index]
            text += f".{member.name}" if member.name else ""
            t = btf.resolve(member.type)
        elif t.kind is btf_mod.Kind.ARRAY:
            text += f"[{index}]"
            t = btf.resolve(t.type)
        else:
            return f"{btf.format(relo.type_id)} (access {relo.access})"
    return text


def _func_at(obj: _Obj, section: int, offset: int, what: str) -> _Func:
    for f in obj.funcs.get(section, []):
        if f.start <= offset < f.end:
            return f
    raise obj.error(f"{what} at byte {offset} is inside no function", section)


def _link(obj: _Obj, main: _Func) -> tuple[bytes, list[Reloc], list[tuple[int, str]]]:
    """The program's code with every subprogram it reaches appended; relocations by slot."""
    placed: dict[tuple[int, int], int] = {(main.section, main.start): 0}
    order = [main]
    code = bytearray()
    relocs: list[Reloc] = []
    calls: list[tuple[int, _Func, int]] = []     # (slot of the call, target function, slot in it)
    i = 0
    while i < len(order):
        func = order[i]
        base = len(code) // INSN
        body = bytearray(obj.code[func.section][func.start:func.end])
        table = obj.relocs.get(func.section, {})
        for slot in range(len(body) // INSN):
            off = func.start + slot * INSN
            opcode, regs = body[slot * INSN], body[slot * INSN + 1]
            imm = struct.unpack_from("<i", body, slot * INSN + 4)[0]
            rel = table.get(off)
            is_call = opcode == oc.JMP | oc.JMP_CALL and regs >> 4 == oc.CALL_LOCAL
            if rel is not None:
                rtype, sym = rel
                target = _reloc(obj, func, off, rtype, sym, imm, opcode, base + slot, relocs)
                if target is None:
                    continue
                tsec, toff = target
            elif is_call:
                tsec, toff = func.section, off + (imm + 1) * INSN
            else:
                continue
            callee = _func_at(obj, tsec, toff, f"call target of {func.name}")
            if (callee.section, callee.start) not in placed:
                placed[(callee.section, callee.start)] = -1
                order.append(callee)
            calls.append((base + slot, callee, (toff - callee.start) // INSN))
            if opcode == oc.OPCODE_LDDW:
                body[slot * INSN + 1] = (regs & 0x0F) | (4 << 4)   # src = BPF_PSEUDO_FUNC
        placed[(func.section, func.start)] = base
        code += body
        i += 1
    for slot, callee, inner in calls:
        target = placed[(callee.section, callee.start)] + inner
        struct.pack_into("<i", code, slot * INSN + 4, target - slot - 1)
    names = [(placed[(f.section, f.start)], f.name) for f in order]
    return bytes(code), relocs, names, [(f, placed[(f.section, f.start)]) for f in order]


def _reloc(obj: _Obj, func: _Func, off: int, rtype: int, sym: _Sym, imm: int, opcode: int,
           slot: int, relocs: list[Reloc]) -> tuple[int, int] | None:
    """Record a relocation; for calls and function addresses return (section, byte offset)."""
    where = f"relocation at byte {off} of {func.name}"
    if rtype == R_BPF_64_32:
        if not isinstance(sym.shndx, int) or sym.shndx not in obj.code:
            raise obj.error(f"{where}: call to {sym.name!r}, which is not a function here "
                            "(an extern kfunc call?)", func.section)
        return sym.shndx, sym.value + (imm + 1) * INSN
    if rtype != R_BPF_64_64 or opcode != oc.OPCODE_LDDW:
        raise obj.error(f"{where}: relocation type {rtype} on an instruction with opcode "
                        f"{opcode:#04x} is not supported", func.section)
    if sym.shndx == "SHN_UNDEF":
        if not sym.name:
            raise obj.error(f"{where}: against a symbol with no name", func.section)
        if sym.name in obj.kconfig:
            relocs.append(Reloc(slot, "map_value", obj.kconfig_map, obj.kconfig[sym.name] + imm))
        else:
            relocs.append(Reloc(slot, "extern", sym.name))
        return None
    if not isinstance(sym.shndx, int):
        raise obj.error(f"{where}: symbol {sym.name!r} is in section {sym.shndx}", func.section)
    if sym.shndx in obj.code:
        return sym.shndx, sym.value + imm
    if sym.shndx in obj.data_maps:
        relocs.append(Reloc(slot, "map_value", obj.data_maps[sym.shndx], sym.value + imm))
        return None
    name = obj.map_syms.get((sym.shndx, sym.value))
    if name is None:
        raise obj.error(f"{where}: symbol {sym.name!r} in section "
                        f"{obj.names.get(sym.shndx)!r} is no map, data or function",
                        func.section)
    relocs.append(Reloc(slot, "map", name))
    return None


def _license(obj: _Obj) -> str:
    sec = obj.elf.get_section_by_name("license")
    return sec.data().split(b"\0", 1)[0].decode(errors="replace") if sec is not None else ""


def _version(obj: _Obj) -> int:
    sec = obj.elf.get_section_by_name("version")
    if sec is None:
        return 0
    data = sec.data()
    if len(data) != 4:
        raise obj.error(f"version section has {len(data)} bytes, not 4", "version")
    return struct.unpack("<I", data)[0]
