"""BTF and BTF.ext as plain data: the types of a BPF object, its function and line info,
its CO-RE relocations, and the map definitions of its ``.maps`` section.

Modelled on the kernel's ``Documentation/bpf/btf.rst`` (the wire layouts live in
:mod:`xsim.elf._btf_wire`) and, for :func:`map_defs_from_btf`, on libbpf's
``parse_btf_map_def``.  Everything here is deterministic data: the same bytes give
the same model on any machine.  Malformed input raises :class:`~xsim.errors.BtfError`
and nothing else.

Known differences from the kernel: names are not checked to be C identifiers;
reference loops are found when a query follows them (the kernel's limit of 32
steps, MAX_RESOLVE_DEPTH), not at parse time.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag
from typing import ClassVar, NamedTuple, TypeVar

from ..errors import BtfError
from . import _btf_wire as wire
from ._btf_wire import CoreReloKind, Kind

__all__ = [
    "Kind", "CoreReloKind", "IntEncoding", "FuncLinkage", "VarLinkage",
    "Member", "EnumValue", "Param", "VarSecinfo",
    "Void", "Int", "Ptr", "Array", "Struct", "Union", "Enum", "Fwd", "Typedef", "Volatile",
    "Const", "Restrict", "Func", "FuncProto", "Var", "Datasec", "Float", "DeclTag", "TypeTag",
    "Enum64", "Type", "Btf", "parse_btf", "fixup_datasecs",
    "FuncInfo", "LineInfo", "CoreRelo", "BtfExt", "parse_btf_ext",
    "MapDef", "map_defs_from_btf",
]

#: The kernel's MAX_RESOLVE_DEPTH: longer chains of references are treated as loops.
MAX_RESOLVE_DEPTH = 32


class IntEncoding(IntFlag):
    """BTF_INT_* encoding bits of an INT (at most one is set)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class FuncLinkage(IntEnum):
    """enum btf_func_linkage, carried in a FUNC's vlen."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(IntEnum):
    """BTF_VAR_STATIC, BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_GLOBAL_EXTERN."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class Member(NamedTuple):
    """A struct/union member; ``bitfield_size`` is 0 unless it is a bitfield."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


class EnumValue(NamedTuple):
    name: str
    value: int


class Param(NamedTuple):
    """A FUNC_PROTO parameter; a trailing ``Param("", 0)`` marks a variadic function."""

    name: str
    type: int


class VarSecinfo(NamedTuple):
    """One DATASEC entry: the VAR (or FUNC) type id, and where it lies in the section."""

    type: int
    offset: int
    size: int


_dc = dataclass(frozen=True, slots=True)


@_dc
class Void:
    """Type id 0."""

    id: int = 0
    name: str = ""
    kind: ClassVar[Kind] = Kind.VOID


@_dc
class Int:
    id: int
    name: str
    size: int
    encoding: IntEncoding
    bit_offset: int
    bits: int
    kind: ClassVar[Kind] = Kind.INT


@_dc
class Ptr:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.PTR


@_dc
class Array:
    id: int
    name: str
    type: int
    index_type: int
    nelems: int
    kind: ClassVar[Kind] = Kind.ARRAY


@_dc
class Struct:
    id: int
    name: str
    size: int
    members: tuple[Member, ...]
    kind: ClassVar[Kind] = Kind.STRUCT


@_dc
class Union:
    id: int
    name: str
    size: int
    members: tuple[Member, ...]
    kind: ClassVar[Kind] = Kind.UNION


@_dc
class Enum:
    """An ENUM; ``signed`` is the kind_flag, and ``values`` are read with that sign."""

    id: int
    name: str
    size: int
    values: tuple[EnumValue, ...]
    signed: bool
    kind: ClassVar[Kind] = Kind.ENUM


@_dc
class Enum64:
    id: int
    name: str
    size: int
    values: tuple[EnumValue, ...]
    signed: bool
    kind: ClassVar[Kind] = Kind.ENUM64


@_dc
class Fwd:
    """A forward declaration; ``union`` is the kind_flag."""

    id: int
    name: str
    union: bool
    kind: ClassVar[Kind] = Kind.FWD


@_dc
class Typedef:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.TYPEDEF


@_dc
class Volatile:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.VOLATILE


@_dc
class Const:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.CONST


@_dc
class Restrict:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.RESTRICT


@_dc
class TypeTag:
    id: int
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.TYPE_TAG


@_dc
class Func:
    """A function; ``type`` is its FUNC_PROTO."""

    id: int
    name: str
    type: int
    linkage: FuncLinkage
    kind: ClassVar[Kind] = Kind.FUNC


@_dc
class FuncProto:
    id: int
    name: str
    return_type: int
    params: tuple[Param, ...]
    kind: ClassVar[Kind] = Kind.FUNC_PROTO


@_dc
class Var:
    id: int
    name: str
    type: int
    linkage: VarLinkage
    kind: ClassVar[Kind] = Kind.VAR


@_dc
class Datasec:
    id: int
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]
    kind: ClassVar[Kind] = Kind.DATASEC


@_dc
class Float:
    id: int
    name: str
    size: int
    kind: ClassVar[Kind] = Kind.FLOAT


@_dc
class DeclTag:
    """A tag on ``type``, or on its member/parameter ``component_idx`` (-1: the type itself)."""

    id: int
    name: str
    type: int
    component_idx: int
    kind: ClassVar[Kind] = Kind.DECL_TAG


Type = (Void | Int | Ptr | Array | Struct | Union | Enum | Fwd | Typedef | Volatile | Const
        | Restrict | Func | FuncProto | Var | Datasec | Float | DeclTag | TypeTag | Enum64)

_QUALIFIERS = {Kind.CONST: "const", Kind.VOLATILE: "volatile", Kind.RESTRICT: "restrict"}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


class _Strings:
    """The string section: NUL-terminated strings addressed by byte offset."""

    def __init__(self, data: bytes, section: str) -> None:
        self.data, self.section = data, section
        self.cache: dict[int, str] = {0: ""}

    def get(self, off: int, type_id: int | None = None, at: int | None = None) -> str:
        s = self.cache.get(off)
        if s is not None:
            return s
        data = self.data
        end = data.find(b"\0", off) if 0 <= off < len(data) else -1
        if end < 0:
            raise BtfError(f"string offset {off} is outside the {len(data)}-byte string "
                           "section", self.section, type_id=type_id, offset=at)
        s = self.cache[off] = data[off:end].decode("utf-8", "replace")
        return s


class _Decoder:
    """Turns RawType records into model types, checking each reference as it goes."""

    def __init__(self, raws: list[wire.RawType], strings: _Strings) -> None:
        self.raws, self.strings, self.count = raws, strings, len(raws) + 1
        self.kinds = [Kind.VOID] + [r.kind for r in raws]

    def ref(self, tid: int, ref: int, raw: wire.RawType) -> int:
        if ref >= self.count:
            raise BtfError(f"refers to type id {ref}, but there are only {self.count} types",
                           type_id=tid, offset=raw.offset)
        return ref

    def decode(self) -> list[Type]:
        out: list[Type] = [Void()]
        get = self.strings.get
        handlers = self.handlers
        for tid, raw in enumerate(self.raws, 1):
            name = get(raw.name_off, tid, raw.offset)
            out.append(handlers[raw.kind](self, tid, name, raw))
        return out

    def no_vlen(self, tid: int, raw: wire.RawType) -> None:
        if raw.vlen:
            raise BtfError(f"{raw.kind.name} with vlen {raw.vlen}", type_id=tid,
                           offset=raw.offset)

    def int_(self, tid: int, name: str, raw: wire.RawType) -> Int:
        self.no_vlen(tid, raw)
        word = raw.extra[0]
        enc, off, bits = word >> 24, (word >> 16) & 0xFF, word & 0xFF
        if enc not in (0, 1, 2, 4) or raw.size_or_type not in (1, 2, 4, 8, 16) or (
                bits > 128 or off + bits > raw.size_or_type * 8):
            raise BtfError(f"INT {name!r} has an invalid size {raw.size_or_type} or "
                           f"encoding word {word:#010x}", type_id=tid, offset=raw.offset)
        return Int(tid, name, raw.size_or_type, IntEncoding(enc), off, bits)

    def ref_kind(self, tid: int, name: str, raw: wire.RawType) -> Type:
        self.no_vlen(tid, raw)
        cls = _REF_CLASSES[raw.kind]
        return cls(tid, name, self.ref(tid, raw.size_or_type, raw))

    def array(self, tid: int, name: str, raw: wire.RawType) -> Array:
        self.no_vlen(tid, raw)
        elem, index, nelems = raw.extra
        return Array(tid, name, self.ref(tid, elem, raw), self.ref(tid, index, raw), nelems)

    def composite(self, tid: int, name: str, raw: wire.RawType) -> Struct | Union:
        get, x, count = self.strings.get, raw.extra, self.count
        members = []
        for k in range(0, len(x), 3):
            ref, off = x[k + 1], x[k + 2]
            if ref >= count:
                self.ref(tid, ref, raw)
            if raw.kind_flag:
                members.append(Member(get(x[k], tid, raw.offset), ref, off & 0xFFFFFF, off >> 24))
            else:
                members.append(Member(get(x[k], tid, raw.offset), ref, off, 0))
        cls = Struct if raw.kind is Kind.STRUCT else Union
        return cls(tid, name, raw.size_or_type, tuple(members))

    def enum(self, tid: int, name: str, raw: wire.RawType) -> Enum:
        self.enum_size(tid, raw)
        get, x = self.strings.get, raw.extra
        conv = _s32 if raw.kind_flag else int
        values = tuple(EnumValue(get(x[k], tid, raw.offset), conv(x[k + 1]))
                       for k in range(0, len(x), 2))
        return Enum(tid, name, raw.size_or_type, values, raw.kind_flag)

    def enum64(self, tid: int, name: str, raw: wire.RawType) -> Enum64:
        self.enum_size(tid, raw)
        get, x = self.strings.get, raw.extra
        values = []
        for k in range(0, len(x), 3):
            v = x[k + 1] | x[k + 2] << 32
            if raw.kind_flag and v >> 63:
                v -= 1 << 64
            values.append(EnumValue(get(x[k], tid, raw.offset), v))
        return Enum64(tid, name, raw.size_or_type, tuple(values), raw.kind_flag)

    def enum_size(self, tid: int, raw: wire.RawType) -> None:
        if raw.size_or_type not in (1, 2, 4, 8):
            raise BtfError(f"{raw.kind.name} of size {raw.size_or_type}", type_id=tid,
                           offset=raw.offset)

    def fwd(self, tid: int, name: str, raw: wire.RawType) -> Fwd:
        self.no_vlen(tid, raw)
        return Fwd(tid, name, raw.kind_flag)

    def func(self, tid: int, name: str, raw: wire.RawType) -> Func:
        proto = self.ref(tid, raw.size_or_type, raw)
        if self.kinds[proto] is not Kind.FUNC_PROTO:
            raise BtfError(f"FUNC {name!r} has type {proto}, which is not a FUNC_PROTO",
                           type_id=tid, offset=raw.offset)
        return Func(tid, name, proto, self.linkage(FuncLinkage, raw.vlen, tid, raw))

    def linkage(self, cls: type[FuncLinkage] | type[VarLinkage], value: int, tid: int,
                raw: wire.RawType) -> FuncLinkage | VarLinkage:
        try:
            return cls(value)
        except ValueError:
            raise BtfError(f"unknown {raw.kind.name} linkage {value}", type_id=tid,
                           offset=raw.offset) from None

    def func_proto(self, tid: int, name: str, raw: wire.RawType) -> FuncProto:
        get, x, count = self.strings.get, raw.extra, self.count
        params = []
        for k in range(0, len(x), 2):
            if x[k + 1] >= count:
                self.ref(tid, x[k + 1], raw)
            params.append(Param(get(x[k], tid, raw.offset), x[k + 1]))
        return FuncProto(tid, name, self.ref(tid, raw.size_or_type, raw), tuple(params))

    def var(self, tid: int, name: str, raw: wire.RawType) -> Var:
        self.no_vlen(tid, raw)
        return Var(tid, name, self.ref(tid, raw.size_or_type, raw),
                   self.linkage(VarLinkage, raw.extra[0], tid, raw))

    def datasec(self, tid: int, name: str, raw: wire.RawType) -> Datasec:
        x = raw.extra
        entries = []
        for k in range(0, len(x), 3):
            ref = self.ref(tid, x[k], raw)
            if self.kinds[ref] not in (Kind.VAR, Kind.FUNC):
                raise BtfError(f"DATASEC {name!r} lists type {ref}, which is not a VAR or "
                               "FUNC", type_id=tid, offset=raw.offset)
            entries.append(VarSecinfo(ref, x[k + 1], x[k + 2]))
        return Datasec(tid, name, raw.size_or_type, tuple(entries))

    def float_(self, tid: int, name: str, raw: wire.RawType) -> Float:
        self.no_vlen(tid, raw)
        if raw.size_or_type not in (2, 4, 8, 12, 16):
            raise BtfError(f"FLOAT of size {raw.size_or_type}", type_id=tid, offset=raw.offset)
        return Float(tid, name, raw.size_or_type)

    def decl_tag(self, tid: int, name: str, raw: wire.RawType) -> DeclTag:
        self.no_vlen(tid, raw)
        idx = _s32(raw.extra[0])
        if idx < -1:
            raise BtfError(f"DECL_TAG component index {idx}", type_id=tid, offset=raw.offset)
        return DeclTag(tid, name, self.ref(tid, raw.size_or_type, raw), idx)

    handlers = {
        Kind.INT: int_, Kind.PTR: ref_kind, Kind.ARRAY: array, Kind.STRUCT: composite,
        Kind.UNION: composite, Kind.ENUM: enum, Kind.FWD: fwd, Kind.TYPEDEF: ref_kind,
        Kind.VOLATILE: ref_kind, Kind.CONST: ref_kind, Kind.RESTRICT: ref_kind, Kind.FUNC: func,
        Kind.FUNC_PROTO: func_proto, Kind.VAR: var, Kind.DATASEC: datasec, Kind.FLOAT: float_,
        Kind.DECL_TAG: decl_tag, Kind.TYPE_TAG: ref_kind, Kind.ENUM64: enum64,
    }


_REF_CLASSES: dict[Kind, type] = {Kind.PTR: Ptr, Kind.TYPEDEF: Typedef, Kind.VOLATILE: Volatile,
                                  Kind.CONST: Const, Kind.RESTRICT: Restrict,
                                  Kind.TYPE_TAG: TypeTag}


_MODIFIER_CLASSES = (Typedef, Volatile, Const, Restrict, TypeTag)
_SIZED = (Int, Struct, Union, Enum, Enum64, Float, Datasec)


class Btf:
    """Parsed BTF: ``types[id]`` is the type with that id (``types[0]`` is void)."""

    __slots__ = ("types", "_strings", "_names")

    def __init__(self, types: tuple[Type, ...], strings: _Strings) -> None:
        self.types = types
        self._strings = strings
        self._names: dict[str, list[int]] | None = None

    def __repr__(self) -> str:
        return f"<Btf {len(self.types)} types>"

    def string_at(self, offset: int) -> str:
        """The string at ``offset`` of the string section (BTF.ext names its strings so)."""
        return self._strings.get(offset)

    def type(self, type_id: int) -> Type:
        """``types[type_id]``, but a bad id raises BtfError."""
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"no such type (there are {len(self.types)})", type_id=type_id)
        return self.types[type_id]

    def find(self, name: str, kind: Kind | None = None) -> list[Type]:
        """Every type called ``name`` (of ``kind``, when given), in id order."""
        if self._names is None:
            names: dict[str, list[int]] = {}
            for t in self.types:
                if t.name:
                    names.setdefault(t.name, []).append(t.id)
            self._names = names
        return [self.types[i] for i in self._names.get(name, ())
                if kind is None or self.types[i].kind == kind]

    def by_name(self, name: str, kind: Kind | None = None) -> Type:
        """The one type called ``name`` (of ``kind``); none or several raise BtfError."""
        found = self.find(name, kind)
        what = kind.name if kind is not None else "type"
        if not found:
            raise BtfError(f"no {what} named {name!r}")
        if len(found) > 1:
            ids = ", ".join(str(t.id) for t in found)
            raise BtfError(f"{len(found)} {what}s named {name!r} (ids {ids}): pass a kind "
                           "or use find()")
        return found[0]

    def resolve(self, type_id: int) -> Type:
        """The type behind typedefs, const, volatile, restrict and type tags."""
        t = self.type(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if not isinstance(t, _MODIFIER_CLASSES):
                return t
            t = self.types[t.type]
        raise BtfError(f"more than {MAX_RESOLVE_DEPTH} typedefs and modifiers (a loop?)",
                       type_id=type_id)

    def size_of(self, type_id: int) -> int:
        """Size in bytes, by the kernel's rules (btf_resolve_size): pointers are 8 bytes,
        arrays elem * nelems, VARs the size of their type; void, FUNC, FUNC_PROTO, FWD
        and DECL_TAG have none and raise BtfError."""
        mult, t = 1, self.resolve(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if isinstance(t, Array):
                mult *= t.nelems
            elif not isinstance(t, Var):
                break
            t = self.resolve(t.type)
        else:
            raise BtfError(f"more than {MAX_RESOLVE_DEPTH} nested arrays (a loop?)",
                           type_id=type_id)
        if isinstance(t, Ptr):
            size = 8
        elif isinstance(t, _SIZED):
            size = t.size
        else:
            raise BtfError(f"a {t.kind.name} has no size", type_id=type_id)
        if size * mult > 0xFFFFFFFF:
            raise BtfError(f"size {size} * {mult} does not fit in 32 bits", type_id=type_id)
        return size * mult

    def format(self, type_id: int) -> str:
        """A C-ish spelling: ``struct foo``, ``u32 *``, ``int[4]``, ``int (*)(int)``.

        Typedefs are spelled by their name; nothing is expanded."""
        return self._decl(self.type(type_id), "", 0, type_id)

    def _decl(self, t: Type, inner: str, depth: int, root: int) -> str:
        """C declarator syntax: ``inner`` is what has been built around the name so far."""
        if depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type nests more than {MAX_RESOLVE_DEPTH} levels deep (a loop?)",
                           type_id=root)
        types, depth = self.types, depth + 1
        if isinstance(t, Ptr):
            target = types[t.type]
            ptr = "*" + inner
            if isinstance(target, (Array, FuncProto)):
                ptr = f"({ptr})"
            return self._decl(target, ptr, depth, root)
        if isinstance(t, Array):
            return self._decl(types[t.type], f"{inner}[{t.nelems}]", depth, root)
        if isinstance(t, (Const, Volatile, Restrict, TypeTag)):
            q = (f'__attribute__((btf_type_tag("{t.name}")))' if isinstance(t, TypeTag)
                 else _QUALIFIERS[t.kind])
            target = types[t.type]
            if isinstance(target, Ptr):  # int *const: the qualifier follows the star
                return self._decl(target, q + (" " + inner if inner else ""), depth, root)
            return q + " " + self._decl(target, inner, depth, root)
        if isinstance(t, FuncProto):
            params = ", ".join("..." if p.type == 0 and not p.name else
                               self._decl(types[p.type], "", depth, root) for p in t.params)
            return self._decl(types[t.return_type], f"{inner}({params or 'void'})", depth, root)
        if isinstance(t, (Func, Var)):
            return self._decl(types[t.type], t.name + inner, depth, root)
        return _join(_base_name(t), inner)


def _base_name(t: Type) -> str:
    name = t.name or "<anon>"
    if isinstance(t, (Struct, Union)):
        return f"{t.kind.name.lower()} {name}"
    if isinstance(t, (Enum, Enum64)):
        return f"enum {name}"
    if isinstance(t, Fwd):
        return f"{'union' if t.union else 'struct'} {name}"
    if isinstance(t, Void):
        return "void"
    if isinstance(t, Datasec):
        return f'SEC("{name}")'
    if isinstance(t, DeclTag):
        return f'__attribute__((btf_decl_tag("{name}")))'
    return name


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    return base + inner if inner[0] == "[" else f"{base} {inner}"


def with_sections(data: bytes, sizes: Mapping[str, int],
                  offsets: Mapping[tuple[str, str], int]) -> bytes:
    """Raw .BTF with each DATASEC's size and its variables' offsets filled in, as libbpf
    fills them before the kernel sees the BTF (the compiler leaves them 0): ``sizes``
    by section name, ``offsets`` by (section, variable name).  Others stay as they are."""
    raw = bytearray(data)
    hdr = wire.read_header(data)
    types = wire.split_types(data, hdr.type_start, hdr.type_len)

    def name(off: int) -> str:
        start = hdr.str_start + off
        return raw[start:raw.index(0, start)].decode()
    for t in types:
        if t.kind is not Kind.DATASEC:
            continue
        section = name(t.name_off)
        struct.pack_into("<I", raw, t.offset + 8, sizes.get(section, t.size_or_type))
        for k in range(t.vlen):
            offset = offsets.get((section, name(types[t.extra[3 * k] - 1].name_off)))
            if offset is not None:       # struct btf_var_secinfo { type, offset, size }
                struct.pack_into("<I", raw, t.offset + 4 * wire.TYPE_WORDS + 12 * k + 4, offset)
    return bytes(raw)


def parse_btf(data: bytes, *, strings_only_ok: bool = False) -> Btf:
    """Parse a .BTF section (or /sys/kernel/btf/vmlinux).  A blob without types is an
    error, as the kernel's btf_parse_type_sec makes it, unless ``strings_only_ok``."""
    data = bytes(data)
    hdr = wire.read_header(data)
    strings = data[hdr.str_start:hdr.str_start + hdr.str_len]
    if strings and (strings[0] or strings[-1]):
        raise BtfError("the string section must start and end with a NUL byte",
                       offset=hdr.str_start)
    if not hdr.type_len and not strings_only_ok:
        raise BtfError("no types (pass strings_only_ok=True to accept that)", offset=8)
    raws = wire.split_types(data, hdr.type_start, hdr.type_len)
    table = _Strings(strings, ".BTF")
    return Btf(tuple(_Decoder(raws, table).decode()), table)


#: DATASECs that libbpf makes up itself: no ELF section backs them.
_VIRTUAL_SECTIONS = frozenset({".kconfig", ".ksyms"})


def fixup_datasecs(btf: Btf, section_sizes: Mapping[str, int],
                   symbols: Mapping[str, int]) -> Btf:
    """Fill in what the compiler leaves to the loader, as libbpf's btf_fixup_datasec does.

    clang writes DATASEC sizes and the offsets of global variables as 0 (with
    relocations against the symbols in ``.rel.BTF``); the real values are the ELF
    section's size and each variable's symbol value.  ``section_sizes`` maps section
    names to sizes, ``symbols`` global variable names to their st_value.  Static and
    extern variables keep their offsets.  Entries come out sorted by offset.
    """
    types = list(btf.types)
    for t in btf.types:
        if not isinstance(t, Datasec) or t.name in _VIRTUAL_SECTIONS:
            continue
        size = t.size
        if not size:
            if t.name not in section_sizes:
                raise BtfError(f"DATASEC {t.name!r} has no ELF section to take its size from",
                               type_id=t.id)
            size = section_sizes[t.name]
        entries = []
        for e in t.vars:
            var = btf.types[e.type]
            if isinstance(var, Var) and var.linkage is VarLinkage.GLOBAL:
                if var.name not in symbols:
                    raise BtfError(f"DATASEC {t.name!r}: no ELF symbol for VAR {var.name!r}",
                                   type_id=t.id)
                e = e._replace(offset=symbols[var.name])
            if e.offset + e.size > size:
                raise BtfError(f"DATASEC {t.name!r}: {var.name!r} at {e.offset}+{e.size} runs "
                               f"past the section's {size} bytes", type_id=t.id)
            entries.append(e)
        entries.sort(key=lambda e: e.offset)
        types[t.id] = replace(t, size=size, vars=tuple(entries))
    return Btf(tuple(types), btf._strings)


# --- .BTF.ext -----------------------------------------------------------------------------


@_dc
class FuncInfo:
    """A function starting at ``insn_off`` (bytes into its ELF section)."""

    insn_off: int
    type_id: int
    name: str


@_dc
class LineInfo:
    """The C source line of the instruction at ``insn_off`` (bytes into its section)."""

    insn_off: int
    file: str
    line: str
    line_num: int
    column: int


@_dc
class CoreRelo:
    """A CO-RE relocation of the instruction at ``insn_off``; ``access`` is e.g. "0:1:2"
    (field indices from the root type ``type_id``; for enum relocations the value index)."""

    insn_off: int
    type_id: int
    access: str
    kind: CoreReloKind

    @property
    def accessors(self) -> tuple[int, ...]:
        return tuple(int(a) for a in self.access.split(":"))


@dataclass(frozen=True)
class BtfExt:
    """Per ELF section name, in file order: function, line and CO-RE relocation records."""

    func_info: dict[str, tuple[FuncInfo, ...]]
    line_info: dict[str, tuple[LineInfo, ...]]
    core_relos: dict[str, tuple[CoreRelo, ...]]


_ACCESS = re.compile(r"[0-9]{1,10}(:[0-9]{1,10})*")
_R = TypeVar("_R")


class _ExtReader:
    """Decodes the records of one .BTF.ext blob against its .BTF."""

    section = ".BTF.ext"

    def __init__(self, data: bytes, btf: Btf) -> None:
        self.data, self.btf = data, btf

    def string(self, off: int, at: int) -> str:
        try:
            return self.btf._strings.get(off)
        except BtfError as exc:
            raise BtfError(exc.reason, self.section, offset=at) from None

    def blocks(self, where: tuple[int, int], rec: struct.Struct, what: str,
               make: Callable[[tuple[int, ...], int], _R]) -> dict[str, tuple[_R, ...]]:
        out: dict[str, list[_R]] = {}
        for pos, name_off, recs in wire.split_ext(self.data, where, rec, what):
            items = out.setdefault(self.string(name_off, pos), [])
            for r in recs:
                if r[0] % 8:
                    raise BtfError(f"{what} instruction offset {r[0]} is not a multiple of 8",
                                   self.section, offset=pos)
                items.append(make(r, pos))
        return {k: tuple(v) for k, v in out.items()}

    def func(self, r: tuple[int, ...], pos: int) -> FuncInfo:
        types = self.btf.types
        if not 0 < r[1] < len(types) or not isinstance(types[r[1]], Func):
            raise BtfError(f"func_info type id {r[1]} is not a FUNC", self.section, offset=pos)
        return FuncInfo(r[0], r[1], types[r[1]].name)

    def line(self, r: tuple[int, ...], pos: int) -> LineInfo:
        return LineInfo(r[0], self.string(r[1], pos), self.string(r[2], pos), r[3] >> 10,
                        r[3] & 0x3FF)

    def core(self, r: tuple[int, ...], pos: int) -> CoreRelo:
        if r[1] >= len(self.btf.types):
            raise BtfError(f"CO-RE relocation type id {r[1]} is out of range", self.section,
                           offset=pos)
        access = self.string(r[2], pos)
        if not _ACCESS.fullmatch(access):
            raise BtfError(f"CO-RE access string {access!r} is not like '0:1:2'", self.section,
                           offset=pos)
        try:
            kind = CoreReloKind(r[3])
        except ValueError:
            raise BtfError(f"unknown CO-RE relocation kind {r[3]}", self.section,
                           offset=pos) from None
        return CoreRelo(r[0], r[1], access, kind)


def parse_btf_ext(data: bytes, btf: Btf) -> BtfExt:
    """Parse a .BTF.ext section; its names are strings of ``btf``, its type ids its types.

    Instruction offsets stay in bytes, as in the ELF file (libbpf divides them by 8)."""
    data = bytes(data)
    hdr = wire.read_ext_header(data)
    r = _ExtReader(data, btf)
    return BtfExt(r.blocks(hdr.func_info, wire.FUNC_INFO, "func_info", r.func),
                  r.blocks(hdr.line_info, wire.LINE_INFO, "line_info", r.line),
                  r.blocks(hdr.core_relo, wire.CORE_RELO, "core_relo", r.core))


# --- .maps (libbpf's BTF-defined maps) ----------------------------------------------------


@dataclass(frozen=True)
class MapDef:
    """One map of the ``.maps`` section, as libbpf's parse_btf_map_def reads it.

    Fields a definition leaves out are None.  ``key_type_id``/``value_type_id`` come
    from ``__type(key, T)``, with the sizes of T.  A ``values`` member (prog arrays,
    maps of maps) sets value_size to 4, as libbpf does; ``inner`` is the inner map's
    definition (named ``<outer>.inner``) and ``values_len`` the number of slots of the
    ``.values = {...}`` initializer (which slots hold what is in the ELF relocations).
    """

    name: str
    type: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    max_entries: int | None = None
    map_flags: int | None = None
    pinning: int | None = None
    numa_node: int | None = None
    map_extra: int | None = None
    key_type_id: int | None = None
    value_type_id: int | None = None
    inner: MapDef | None = None
    values_len: int | None = None


_INT_FIELDS = frozenset({"type", "max_entries", "map_flags", "numa_node", "key_size",
                         "value_size", "pinning", "map_extra"})
_PROG_ARRAY, _ARRAY_OF_MAPS, _HASH_OF_MAPS = 3, 12, 13


def map_defs_from_btf(btf: Btf) -> list[MapDef]:
    """Each VAR of the ``.maps`` DATASEC, in section order; [] when there is none."""
    secs = [t for t in btf.find(".maps", Kind.DATASEC) if isinstance(t, Datasec)]
    if not secs:
        return []
    if len(secs) > 1:
        raise BtfError("more than one .maps DATASEC", ".maps")
    out = []
    for entry in secs[0].vars:
        var = btf.types[entry.type]
        if not isinstance(var, Var):
            raise BtfError(f"entry {var.name!r} is a {var.kind.name}, not a VAR", ".maps",
                           type_id=var.id)
        out.append(_MapReader(btf, var.name, var.type).read(entry, inner_ok=True))
    return out


class _MapReader:
    """Reads one map definition struct; errors name the map."""

    def __init__(self, btf: Btf, name: str, type_id: int) -> None:
        self.btf, self.name, self.type_id = btf, name, type_id

    def fail(self, reason: str) -> BtfError:
        return BtfError(f"map {self.name!r}: {reason}", ".maps", type_id=self.type_id)

    def read(self, entry: VarSecinfo | None, inner_ok: bool) -> MapDef:
        btf = self.btf
        st = btf.resolve(self.type_id)
        if not isinstance(st, Struct):
            raise self.fail(f"the definition is a {st.kind.name}, not a struct")
        ints: dict[str, int] = {}
        type_ids: dict[str, int] = {}
        sizes: dict[str, int] = {}
        inner: MapDef | None = None
        values_len: int | None = None
        seen: set[str] = set()
        for i, m in enumerate(st.members):
            if m.name in seen:
                raise self.fail(f"field {m.name!r} appears twice")
            seen.add(m.name)
            t = btf.resolve(m.type)
            if m.name in _INT_FIELDS:
                ints[m.name] = self.uint(m.name, t)
            elif m.name in ("key", "value"):
                if not isinstance(t, Ptr):
                    raise self.fail(f"{m.name} is a {t.kind.name}, not __type({m.name}, T)")
                type_ids[m.name] = t.type
                sizes[m.name] = btf.size_of(t.type)
            elif m.name == "values":
                if i != len(st.members) - 1:
                    raise self.fail("'values' must be the last field")
                if not inner_ok:
                    raise self.fail("an inner map definition cannot have 'values' itself")
                inner = self.values(ints.get("type"), t)
                if sizes.get("value", 4) != 4:
                    raise self.fail(f"__type(value, T) of size {sizes['value']} conflicts "
                                    "with 'values' (4)")
                sizes["value"] = 4
                values_len = self.slots(entry, m)
            else:
                raise self.fail(f"unknown field {m.name!r}")
        for field, size in sizes.items():
            given = ints.setdefault(field + "_size", size)
            if given != size:
                why = "'values' (4)" if field == "value" and values_len is not None else (
                    f"the size {size} of its __type")
                raise self.fail(f"{field}_size {given} conflicts with {why}")
        return MapDef(self.name, key_type_id=type_ids.get("key"),
                      value_type_id=type_ids.get("value"), inner=inner, values_len=values_len,
                      **ints)

    def uint(self, field: str, t: Type) -> int:
        """``__uint(f, v)`` is ``int (*f)[v]``; libbpf's ``__ulong(f, v)`` an enum of one value."""
        if isinstance(t, Ptr):
            arr = self.btf.resolve(t.type)
            if isinstance(arr, Array):
                return arr.nelems
        if isinstance(t, (Enum, Enum64)) and len(t.values) == 1:
            return t.values[0].value
        raise self.fail(f"field {field!r} is a {t.kind.name}, not __uint({field}, value)")

    def values(self, map_type: int | None, t: Type) -> MapDef | None:
        """``__array(values, T)``: a zero-length array of pointers to T; the inner map's
        definition when T is a struct (maps of maps), None for a prog array."""
        if map_type not in (_PROG_ARRAY, _ARRAY_OF_MAPS, _HASH_OF_MAPS):
            raise self.fail(f"'values' needs a prog array or a map of maps, not map type "
                            f"{map_type}")
        if not isinstance(t, Array) or t.nelems:
            raise self.fail("'values' is not a zero-length array (__array(values, T))")
        ptr = self.btf.resolve(t.type)
        if not isinstance(ptr, Ptr):
            raise self.fail("'values' is not an array of pointers")
        target = self.btf.resolve(ptr.type)
        if map_type == _PROG_ARRAY:
            if not isinstance(target, FuncProto):
                raise self.fail(f"prog array 'values' point to a {target.kind.name}, not a "
                                "function")
            return None
        return _MapReader(self.btf, f"{self.name}.inner", ptr.type).read(None, inner_ok=False)

    def slots(self, entry: VarSecinfo | None, m: Member) -> int:
        """How many pointers the initializer adds past the struct (its DATASEC entry size)."""
        if entry is None or entry.size <= m.byte_offset:
            return 0
        extra = entry.size - m.byte_offset
        if extra % 8:
            raise self.fail(f"the initializer of 'values' is {extra} bytes, not whole pointers")
        return extra // 8
