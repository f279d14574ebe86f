"""The on-disk layout of .BTF and .BTF.ext, as data (private: :mod:`xsim.elf.btf` is the model).

Each layout is declared once here, after the kernel's ``Documentation/bpf/btf.rst``
and ``include/uapi/linux/btf.h``; only little-endian BTF is read (BPF objects
for ``bpfel``, and the kernel's own BTF on little-endian hosts).

.BTF::

    struct btf_header   magic u16 = 0xeB9F, version u8 = 1, flags u8, hdr_len u32,
                        type_off u32, type_len u32, str_off u32, str_len u32
                        (offsets counted from the end of the header)
    struct btf_type     name_off u32, info u32, size_or_type u32, then kind data

    info:  bit 31 kind_flag | bits 24-28 kind | bits 0-15 vlen

.BTF.ext::

    struct btf_ext_header  magic u16, version u8, flags u8, hdr_len u32,
                           func_info_off u32, func_info_len u32,
                           line_info_off u32, line_info_len u32,
                           [core_relo_off u32, core_relo_len u32]  (hdr_len >= 32)
    each sub-section:      rec_size u32, then blocks of
                           { sec_name_off u32, num_info u32, num_info * rec_size bytes }
"""
from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ..errors import BtfError

MAGIC = 0xEB9F
VERSION = 1


class Kind(IntEnum):
    """BTF_KIND_*: the kind bits of ``btf_type.info``.  VOID (0, the kernel's UNKN) is type id 0."""

    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class CoreReloKind(IntEnum):
    """enum bpf_core_relo_kind (include/uapi/linux/bpf.h): what a CO-RE relocation patches."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


#: struct btf_header (24 bytes; a longer hdr_len must be zero-filled, as the kernel requires).
HEADER = struct.Struct("<HBBIIIII")
#: struct btf_type: name_off, info, size_or_type (12 bytes).
TYPE_WORDS = 3

#: u32 words after struct btf_type: (fixed, per vlen entry), by kind.
#:   INT        u32 encoding<<24 | offset<<16 | bits
#:   ARRAY      struct btf_array      { type, index_type, nelems }
#:   STRUCT/UNION struct btf_member   { name_off, type, offset } * vlen
#:   ENUM       struct btf_enum       { name_off, s32 val } * vlen
#:   FUNC_PROTO struct btf_param      { name_off, type } * vlen
#:   VAR        struct btf_var        { linkage }
#:   DATASEC    struct btf_var_secinfo { type, offset, size } * vlen
#:   DECL_TAG   struct btf_decl_tag   { s32 component_idx }
#:   ENUM64     struct btf_enum64     { name_off, val_lo32, val_hi32 } * vlen
TRAILER_WORDS: dict[Kind, tuple[int, int]] = {
    Kind.INT: (1, 0), Kind.PTR: (0, 0), Kind.ARRAY: (3, 0), Kind.STRUCT: (0, 3),
    Kind.UNION: (0, 3), Kind.ENUM: (0, 2), Kind.FWD: (0, 0), Kind.TYPEDEF: (0, 0),
    Kind.VOLATILE: (0, 0), Kind.CONST: (0, 0), Kind.RESTRICT: (0, 0), Kind.FUNC: (0, 0),
    Kind.FUNC_PROTO: (0, 2), Kind.VAR: (1, 0), Kind.DATASEC: (0, 3), Kind.FLOAT: (0, 0),
    Kind.DECL_TAG: (1, 0), Kind.TYPE_TAG: (0, 0), Kind.ENUM64: (0, 3),
}
_TRAILERS = [TRAILER_WORDS.get(k) for k in range(32)]  # type: ignore[call-overload]


class Header(NamedTuple):
    """struct btf_header, with the sections' absolute offsets in the blob."""

    version: int
    flags: int
    hdr_len: int
    type_start: int
    type_len: int
    str_start: int
    str_len: int


class RawType(NamedTuple):
    """One struct btf_type and its kind data, undecoded; ``offset`` is its byte in the blob."""

    offset: int
    name_off: int
    kind: Kind
    kind_flag: bool
    vlen: int
    size_or_type: int
    extra: tuple[int, ...]


def read_header(data: bytes) -> Header:
    """Check struct btf_header the way the kernel's btf_parse_hdr does."""
    if len(data) < 8:
        raise BtfError(f"only {len(data)} bytes, too short for a BTF header", offset=0)
    magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != MAGIC:
        hint = " (big-endian BTF is not supported)" if magic == 0x9FEB else ""
        raise BtfError(f"bad magic {magic:#06x}, expected {MAGIC:#06x}{hint}", offset=0)
    if version != VERSION:
        raise BtfError(f"unsupported BTF version {version}", offset=2)
    if flags:
        raise BtfError(f"unsupported BTF flags {flags:#x}", offset=3)
    if hdr_len < HEADER.size or hdr_len > len(data):
        raise BtfError(f"header length {hdr_len} is outside {HEADER.size}..{len(data)}",
                       offset=4)
    if any(data[HEADER.size:hdr_len]):
        raise BtfError("unknown non-zero fields in the header tail", offset=HEADER.size)
    _, _, _, _, type_off, type_len, str_off, str_len = HEADER.unpack_from(data)
    body = len(data) - hdr_len
    if type_off % 4:
        raise BtfError(f"type section offset {type_off} is not 4-byte aligned", offset=8)
    for what, off, size, at in (("type", type_off, type_len, 8), ("string", str_off, str_len, 16)):
        if off + size > body:
            raise BtfError(f"{what} section {off}+{size} runs past the {body} bytes after "
                           "the header", offset=at)
    if type_len and str_len and type_off < str_off + str_len and str_off < type_off + type_len:
        raise BtfError("type and string sections overlap", offset=8)
    if type_len % 4:
        raise BtfError(f"type section length {type_len} is not a multiple of 4", offset=12)
    return Header(version, flags, hdr_len, hdr_len + type_off, type_len,
                  hdr_len + str_off, str_len)


def split_types(data: bytes, start: int, length: int) -> list[RawType]:
    """Cut the type section into records; offsets (``RawType.offset`` too) count from the
    start of ``data``, like every offset a BtfError carries."""
    words = struct.unpack_from(f"<{length // 4}I", data, start)
    out: list[RawType] = []
    append = out.append
    i, n = 0, len(words)
    trailers = _TRAILERS
    kinds = list(Kind)
    while i < n:
        if i + TYPE_WORDS > n:
            raise BtfError("type section ends inside a struct btf_type", offset=start + i * 4)
        name_off, info, sot = words[i], words[i + 1], words[i + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        trailer = trailers[kind]
        if trailer is None:
            raise BtfError(f"unknown BTF kind {kind}", type_id=len(out) + 1, offset=start + i * 4)
        if info & 0x60FF0000:
            raise BtfError(f"unused bits set in info {info:#010x}", type_id=len(out) + 1,
                           offset=start + i * 4 + 4)
        j = i + TYPE_WORDS + trailer[0] + trailer[1] * vlen
        if j > n:
            raise BtfError(f"{kinds[kind].name} data runs past the end of the type section",
                           type_id=len(out) + 1, offset=start + i * 4)
        append(RawType(start + i * 4, name_off, kinds[kind], bool(info >> 31), vlen, sot,
                       words[i + TYPE_WORDS:j]))
        i = j
    return out


# --- .BTF.ext -------------------------------------------------------------------------------

#: struct btf_ext_header without (24) and with (32) the CO-RE relocation fields.
EXT_HEADER = struct.Struct("<HBBIIIII")
EXT_HEADER_CORE = struct.Struct("<HBBIIIIIII")
#: The smallest record each sub-section may use; a larger rec_size (newer producers) is
#: allowed, and its known prefix read, as libbpf does.
FUNC_INFO = struct.Struct("<II")      # bpf_func_info { insn_off (bytes), type_id }
LINE_INFO = struct.Struct("<IIII")    # bpf_line_info { insn_off, file_name_off, line_off,
                                      #                 line_col = line << 10 | col }
CORE_RELO = struct.Struct("<IIII")    # bpf_core_relo { insn_off, type_id, access_str_off, kind }


class ExtHeader(NamedTuple):
    """struct btf_ext_header: each sub-section as (absolute offset, length); (0, 0) when absent."""

    func_info: tuple[int, int]
    line_info: tuple[int, int]
    core_relo: tuple[int, int]


def read_ext_header(data: bytes) -> ExtHeader:
    """Check struct btf_ext_header the way libbpf's btf_ext__new does."""
    sec = ".BTF.ext"
    if len(data) < 8:
        raise BtfError(f"only {len(data)} bytes, too short for a BTF.ext header", sec, offset=0)
    magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != MAGIC:
        raise BtfError(f"bad magic {magic:#06x}, expected {MAGIC:#06x}", sec, offset=0)
    if version != VERSION:
        raise BtfError(f"unsupported BTF.ext version {version}", sec, offset=2)
    if flags:
        raise BtfError(f"unsupported BTF.ext flags {flags:#x}", sec, offset=3)
    if hdr_len < EXT_HEADER.size or hdr_len > len(data):
        raise BtfError(f"header length {hdr_len} is outside {EXT_HEADER.size}..{len(data)}",
                       sec, offset=4)
    if hdr_len >= EXT_HEADER_CORE.size:
        fields = EXT_HEADER_CORE.unpack_from(data)[4:]
    else:
        fields = EXT_HEADER.unpack_from(data)[4:] + (0, 0)
    body = len(data) - hdr_len
    parts = []
    for k, what in enumerate(("func_info", "line_info", "core_relo")):
        off, size = fields[2 * k], fields[2 * k + 1]
        if size and (off + size > body or off % 4):
            raise BtfError(f"{what} {off}+{size} is misaligned or runs past the {body} bytes "
                           "after the header", sec, offset=8 + 8 * k)
        parts.append((hdr_len + off, size) if size else (0, 0))
    return ExtHeader(*parts)


def split_ext(data: bytes, where: tuple[int, int], rec: struct.Struct,
              what: str) -> list[tuple[int, int, list[tuple[int, ...]]]]:
    """One sub-section's blocks as (byte offset, sec_name_off, records); see the module doc."""
    start, size = where
    if not size:
        return []
    sec = ".BTF.ext"
    end = start + size
    if size < 4:
        raise BtfError(f"{what} is {size} bytes, too short for its record size", sec,
                       offset=start)
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < rec.size or rec_size % 4:
        raise BtfError(f"{what} record size {rec_size} is not a multiple of 4 of at least "
                       f"{rec.size}", sec, offset=start)
    pos = start + 4
    out = []
    while pos < end:
        if pos + 8 > end:
            raise BtfError(f"{what} ends inside a section header", sec, offset=pos)
        name_off, count = struct.unpack_from("<II", data, pos)
        if not count:
            raise BtfError(f"{what} block has no records", sec, offset=pos)
        body = pos + 8
        if count > (end - body) // rec_size:
            raise BtfError(f"{what} block of {count} records of {rec_size} bytes runs past "
                           "the sub-section", sec, offset=pos)
        recs = [rec.unpack_from(data, body + r * rec_size) for r in range(count)]
        out.append((pos, name_off, recs))
        pos = body + count * rec_size
    return out
