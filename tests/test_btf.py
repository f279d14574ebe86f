"""BTF and BTF.ext parsing (xsim.elf.btf) against objects compiled from tests/data/btf/*.c.

The objects are committed (rebuild with tests/data/btf/build.sh); the expected
values below were read off the C sources and checked against llvm-readelf.  The
kernel's own BTF (/sys/kernel/btf/vmlinux) is the check against a real producer,
and a hypothesis test mutates real sections to pin "BtfError or a result, never
another exception".
"""
from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsim.elf.btf import (
    Array, Btf, BtfExt, Const, CoreRelo, CoreReloKind, Datasec, DeclTag, Enum, Enum64,
    EnumValue, Float, FuncInfo, FuncLinkage, FuncProto, Fwd, Int, IntEncoding, Kind, LineInfo,
    MapDef, Member, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Var, VarLinkage,
    VarSecinfo, Volatile, fixup_datasecs, map_defs_from_btf, parse_btf, parse_btf_ext,
)
from xsim.errors import BtfError, ElfError

DATA = Path(__file__).parent / "data" / "btf"
VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _sections(name: str) -> dict[str, bytes]:
    with open(DATA / name, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections() if s.name}


def _layout(name: str) -> tuple[dict[str, int], dict[str, int]]:
    """Section sizes and global OBJECT symbol values: what fixup_datasecs needs."""
    with open(DATA / name, "rb") as f:
        elf = ELFFile(f)
        sizes = {s.name: s["sh_size"] for s in elf.iter_sections() if s.name}
        syms = {sym.name: sym["st_value"] for s in elf.iter_sections()
                if isinstance(s, SymbolTableSection) for sym in s.iter_symbols()
                if sym["st_info"]["type"] == "STT_OBJECT"}
    return sizes, syms


def _load(name: str) -> tuple[Btf, BtfExt]:
    secs = _sections(name)
    btf = parse_btf(secs[".BTF"])
    return btf, parse_btf_ext(secs[".BTF.ext"], btf)


@pytest.fixture(scope="module")
def types_o() -> tuple[Btf, BtfExt]:
    return _load("types.o")


# --- types.c: every kind -------------------------------------------------------------------


def test_structs_with_bitfields_have_bit_offsets_and_sizes(types_o):
    btf, _ = types_o
    bits = btf.by_name("bits", Kind.STRUCT)
    u32, uchar, u64 = (btf.by_name(n).id for n in ("u32", "unsigned char", "u64"))
    assert bits == Struct(bits.id, "bits", 16, (
        Member("a", u32, 0, 3), Member("b", u32, 3, 5), Member("c", u32, 32, 0),
        Member("d", uchar, 64, 1), Member("e", u64, 65, 40)))
    assert bits.members[2].byte_offset == 4


def test_union_members_share_offset_zero(types_o):
    btf, _ = types_o
    either = btf.by_name("either", Kind.UNION)
    assert isinstance(either, Union) and either.size == 8
    assert [(m.name, m.bit_offset, btf.format(m.type)) for m in either.members] == [
        ("word", 0, "u32"), ("bytes", 0, "unsigned char[4]"), ("wide", 0, "u64")]


def test_enums_signed_unsigned_and_64_bit(types_o):
    btf, _ = types_o
    color = btf.by_name("color")
    assert isinstance(color, Enum) and (color.size, color.signed) == (4, False)
    assert color.values == (EnumValue("RED", 0), EnumValue("GREEN", 1), EnumValue("BLUE", 7))
    neg = btf.by_name("neg")
    assert isinstance(neg, Enum) and neg.signed
    assert neg.values == (EnumValue("MINUS_ONE", -1), EnumValue("ZERO", 0))
    wide = btf.by_name("wide64")
    assert isinstance(wide, Enum64) and (wide.size, wide.signed) == (8, False)
    assert wide.values == (EnumValue("SMALL", 1), EnumValue("HUGE", 0x123456789A))


def test_typedef_chain_resolves_to_the_int(types_o):
    btf, _ = types_o
    chain = btf.by_name("chain_t")
    assert isinstance(chain, Typedef)
    assert [btf.types[i].name for i in (chain.type, btf.types[chain.type].type)] == [
        "my_u32", "u32"]
    target = btf.resolve(chain.id)
    assert target == Int(target.id, "unsigned int", 4, IntEncoding.NONE, 0, 32)
    assert btf.size_of(chain.id) == 4
    assert btf.by_name("int").encoding is IntEncoding.SIGNED


def test_holder_layout_arrays_pointers_and_qualifiers(types_o):
    btf, _ = types_o
    holder = btf.by_name("holder", Kind.STRUCT)
    got = [(m.name, m.byte_offset, btf.format(m.type), btf.size_of(m.type))
           for m in holder.members]
    assert got == [
        ("id", 0, "chain_t", 4),
        ("u", 8, "union either", 8),
        ("col", 16, "enum color", 4),
        ("grid", 20, "int[2][3]", 24),
        ("cb", 48, "handler_t", 8),
        ("cvp", 56, "const volatile int *", 8),
        ("bf", 64, "struct bits", 16),
        ("tg", 80, "struct tagged", 24),
        ("w", 104, "enum wide64", 8),
        ("n", 112, "enum neg", 4),
        ("f", 116, "float", 4),
    ]
    assert btf.size_of(holder.id) == holder.size == 120
    grid = btf.types[holder.members[3].type]
    assert isinstance(grid, Array) and grid.nelems == 2
    assert btf.types[grid.index_type].name == "__ARRAY_SIZE_TYPE__"
    cvp = btf.types[holder.members[5].type]
    assert isinstance(cvp, Ptr)
    assert isinstance(btf.types[cvp.type], Const)
    assert isinstance(btf.types[btf.types[cvp.type].type], Volatile)
    assert isinstance(btf.resolve(cvp.type), Int)


def test_function_pointer_fwd_and_float(types_o):
    btf, _ = types_o
    handler = btf.by_name("handler_t")
    assert btf.format(handler.type) == "int (*)(int, struct fwd_only *)"
    proto = btf.types[btf.types[handler.type].type]
    assert isinstance(proto, FuncProto) and [p.name for p in proto.params] == ["", ""]
    fwd = btf.by_name("fwd_only")
    assert fwd == Fwd(fwd.id, "fwd_only", False)
    with pytest.raises(BtfError, match=r"^ELF object: section '\.BTF': type id \d+: a FWD "
                                       r"has no size$"):
        btf.size_of(fwd.id)
    assert btf.by_name("float") == Float(btf.by_name("float").id, "float", 4)


def test_type_tag_and_decl_tag(types_o):
    btf, _ = types_o
    tagged = btf.by_name("tagged", Kind.STRUCT)
    uptr = btf.types[tagged.members[1].type]
    assert isinstance(uptr, Ptr)
    tag = btf.types[uptr.type]
    assert isinstance(tag, TypeTag) and tag.name == "user"
    assert btf.resolve(tag.id) == btf.by_name("int")
    assert btf.format(uptr.id) == '__attribute__((btf_type_tag("user"))) int *'
    note = btf.by_name("note")
    assert note == DeclTag(note.id, "note", tagged.id, 2)
    assert tagged.members[note.component_idx].name == "marked"


def test_functions_linkage_and_restrict(types_o):
    btf, _ = types_o
    helper = btf.by_name("helper_add", Kind.FUNC)
    assert helper.linkage is FuncLinkage.STATIC
    assert btf.by_name("prog_main").linkage is FuncLinkage.GLOBAL
    proto = btf.types[helper.type]
    assert isinstance(proto, FuncProto)
    assert [p.name for p in proto.params] == ["a", "b"]
    assert isinstance(btf.types[proto.params[0].type], Restrict)
    assert btf.format(helper.id) == "int helper_add(int *restrict, int)"
    assert btf.format(btf.by_name("prog_main").id) == "int prog_main(void *)"
    assert btf.format(0) == "void"


def test_global_variables_and_datasecs(types_o):
    btf, _ = types_o
    table = btf.by_name("g_table")
    assert table == Var(table.id, "g_table", table.type, VarLinkage.GLOBAL)
    assert btf.format(table.id) == "const int g_table[4]"
    assert btf.size_of(table.id) == 16

    def layout(b: Btf) -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
        return {t.name: (t.size, [(b.types[v.type].name, v.offset, v.size) for v in t.vars])
                for t in b.types if isinstance(t, Datasec)}

    # As compiled: clang leaves sizes and global offsets to the loader (.rel.BTF).
    assert layout(btf) == {
        ".bss": (0, [("g_counter", 0, 4)]),
        ".data": (0, [("g_holder", 0, 120), ("g_seen", 0, 8)]),
        ".rodata": (0, [("g_table", 0, 16)]),
    }
    fixed = fixup_datasecs(btf, *_layout("types.o"))
    assert layout(fixed) == {
        ".bss": (4, [("g_counter", 0, 4)]),
        ".data": (128, [("g_holder", 0, 120), ("g_seen", 120, 8)]),
        ".rodata": (16, [("g_table", 0, 16)]),
    }
    assert fixed.by_name(".data").vars[1] == VarSecinfo(btf.by_name("g_seen").id, 120, 8)
    with pytest.raises(BtfError, match=r"no ELF symbol for VAR 'g_seen'"):
        fixup_datasecs(btf, _layout("types.o")[0], {"g_holder": 0, "g_counter": 0,
                                                    "g_table": 0})


def test_func_info_names_each_function(types_o):
    btf, ext = types_o
    assert {sec: [(f.insn_off, f.name) for f in fs] for sec, fs in ext.func_info.items()} == {
        "xdp": [(0, "prog_main")], ".text": [(0, "helper_add")], "tc": [(0, "prog_other")]}
    f = ext.func_info["xdp"][0]
    assert f == FuncInfo(0, btf.by_name("prog_main").id, "prog_main")


def test_line_info_gives_source_lines(types_o):
    _, ext = types_o
    src = (DATA / "types.c").read_text().splitlines()
    for sec, lines in ext.line_info.items():
        for li in lines:
            assert li.file == "./types.c"
            assert li.line == src[li.line_num - 1], (sec, li)
    assert ext.line_info["tc"] == (
        LineInfo(0, "./types.c", "\treturn g_counter;", 70, 9),
        LineInfo(24, "./types.c", "\treturn g_counter;", 70, 2))
    assert [li.insn_off for li in ext.line_info["xdp"]] == [
        0, 8, 32, 40, 64, 72, 80, 104, 128, 136]
    assert ext.core_relos == {}


def test_types_parse_the_same_twice(types_o):
    btf, _ = types_o
    again, _ = _load("types.o")
    assert again.types == btf.types


# --- core.c: CO-RE relocations -------------------------------------------------------------


def test_core_relocations():
    btf, ext = _load("core.o")
    s, outer = btf.by_name("s", Kind.STRUCT), btf.by_name("outer", Kind.STRUCT)
    assert ext.core_relos == {"kprobe/x": (
        CoreRelo(0, s.id, "0:1", CoreReloKind.FIELD_BYTE_OFFSET),
        CoreRelo(8, outer.id, "0:1:1:0", CoreReloKind.FIELD_BYTE_OFFSET))}
    assert ext.core_relos["kprobe/x"][1].accessors == (0, 1, 1, 0)
    assert [f.name for f in ext.func_info["kprobe/x"]] == ["core_read"]
    assert CoreReloKind.TYPE_MATCHES == 12 and CoreReloKind.ENUMVAL_VALUE == 11


# --- maps.c: BTF-defined maps --------------------------------------------------------------


def test_map_defs_the_libbpf_way():
    btf, _ = _load("maps.o")
    key, val = btf.by_name("key", Kind.STRUCT), btf.by_name("val", Kind.STRUCT)
    int_, uint = btf.by_name("int").id, btf.by_name("unsigned int").id
    llong = btf.by_name("long long").id
    inner = MapDef("outer.inner", type=2, key_size=4, value_size=8, max_entries=4,
                   key_type_id=int_, value_type_id=llong)
    assert map_defs_from_btf(btf) == [
        MapDef("inner_a", type=2, key_size=4, value_size=8, max_entries=4,
               key_type_id=int_, value_type_id=llong),
        MapDef("outer", type=12, key_size=4, value_size=4, max_entries=2, key_type_id=int_,
               inner=inner, values_len=1),
        MapDef("jumps", type=3, key_size=4, value_size=4, max_entries=3, key_type_id=uint,
               values_len=2),
        MapDef("flows", type=1, key_size=8, value_size=16, max_entries=1024, map_flags=1,
               pinning=1, key_type_id=key.id, value_type_id=val.id),
        MapDef("stats", type=2, key_size=4, value_size=16, max_entries=8),
    ]


def test_no_maps_section_gives_no_maps(types_o):
    assert map_defs_from_btf(types_o[0]) == []


# --- hand-made BTF: each kind of malformed input ---------------------------------------------


def _info(kind: Kind, vlen: int = 0, kflag: int = 0) -> int:
    return kflag << 31 | int(kind) << 24 | vlen


def _blob(words: list[int], strings: bytes = b"\0int\0", hdr: dict | None = None) -> bytes:
    body = struct.pack(f"<{len(words)}I", *words)
    h = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0, type_len=len(body),
             str_off=len(body), str_len=len(strings)) | (hdr or {})
    return struct.pack("<HBBIIIII", *h.values()) + body + strings


INT32 = [1, _info(Kind.INT), 4, 0x01000020]  # "int", signed, 32 bits


def test_hand_made_blob_parses():
    btf = parse_btf(_blob(INT32 + [0, _info(Kind.PTR), 1]))
    assert btf.types[1:] == (Int(1, "int", 4, IntEncoding.SIGNED, 0, 32), Ptr(2, "", 1))
    assert btf.format(2) == "int *" and btf.size_of(2) == 8


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb", r"only 2 bytes, too short for a BTF header"),
    (b"\x9f\xeb\x01\x00\x18", r"only 5 bytes, too short"),  # once a struct.error
    (_blob(INT32, hdr={"magic": 0x1234}), r"bad magic 0x1234, expected 0xeb9f"),
    (_blob(INT32, hdr={"magic": 0x9FEB}), r"bad magic .* \(big-endian BTF is not supported\)"),
    (_blob(INT32, hdr={"version": 2}), r"unsupported BTF version 2"),
    (_blob(INT32)[:-3], r"string section 16\+5 runs past the 18 bytes after the header"),
    (_blob(INT32, hdr={"type_len": 12}), r"type id 1: INT data runs past the end"),
    (_blob(INT32, hdr={"type_len": 15}), r"type section length 15 is not a multiple of 4"),
    (_blob([1, 20 << 24, 4]), r"type id 1: unknown BTF kind 20"),
    (_blob([1, _info(Kind.INT) | 0x10000, 4, 32]), r"type id 1: unused bits set in info"),
    (_blob([99, _info(Kind.INT), 4, 32]), r"type id 1: string offset 99 is outside"),
    (_blob(INT32 + [0, _info(Kind.PTR), 7]), r"type id 2: refers to type id 7, but there are "
                                             r"only 3 types"),
    (_blob(INT32 + [0, _info(Kind.FUNC), 1]), r"type id 2: FUNC '' has type 1, which is not a "
                                              r"FUNC_PROTO"),
    (_blob(INT32 + [0, _info(Kind.VAR), 1, 7]), r"type id 2: unknown VAR linkage 7"),
    (_blob(INT32, strings=b"int\0"), r"the string section must start and end with a NUL"),
    (_blob([]), r"no types \(pass strings_only_ok=True to accept that\)"),
])
def test_malformed_btf_raises_btf_error(data, message):
    with pytest.raises(BtfError, match=message) as info:
        parse_btf(data)
    assert isinstance(info.value, ElfError) and info.value.section == ".BTF"
    assert re.match(r"^ELF object: section '\.BTF': ", str(info.value))


def test_strings_only_ok_accepts_no_types():
    btf = parse_btf(_blob([]), strings_only_ok=True)
    assert len(btf.types) == 1 and btf.string_at(1) == "int"


def test_loops_are_caught_by_queries():
    # 1: typedef "int" -> 2, 2: const -> 1 ; 3: ptr -> 4, 4: array of 3 ; 5: array of 5
    btf = parse_btf(_blob([1, _info(Kind.TYPEDEF), 2, 0, _info(Kind.CONST), 1,
                           0, _info(Kind.PTR), 4, 0, _info(Kind.ARRAY), 0, 3, 0, 1,
                           0, _info(Kind.ARRAY), 0, 5, 0, 2]))
    for query in (btf.resolve, btf.size_of):
        with pytest.raises(BtfError, match=r"\(a loop\?\)$") as info:
            query(1)
        assert info.value.type_id == 1
    assert btf.format(2) == "const int"  # a typedef is spelled by its name: no loop followed
    with pytest.raises(BtfError, match=r"a loop"):
        btf.format(3)
    with pytest.raises(BtfError, match=r"a loop"):
        btf.size_of(5)
    with pytest.raises(BtfError, match=r"^ELF object: section '\.BTF': type id 9: no such type"):
        btf.resolve(9)


def test_by_name_wants_exactly_one(types_o):
    btf, _ = types_o
    with pytest.raises(BtfError, match=r"no STRUCT named 'nope'"):
        btf.by_name("nope", Kind.STRUCT)
    assert btf.find("", Kind.FUNC_PROTO) == []  # anonymous types are not indexed by name
    btf2 = parse_btf(_blob(INT32 + INT32))
    with pytest.raises(BtfError, match=r"2 types named 'int' \(ids 1, 2\): pass a kind"):
        btf2.by_name("int")
    assert [t.id for t in btf2.find("int", Kind.INT)] == [1, 2]


def _ext(func: bytes = b"", line: bytes = b"", core: bytes = b"") -> bytes:
    off, parts, fields = 0, [], []
    for p in (func, line, core):
        fields += [off, len(p)]
        parts.append(p)
        off += len(p)
    return struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, *fields) + b"".join(parts)


def test_malformed_btf_ext_raises_btf_error():
    btf = parse_btf(_blob(INT32, strings=b"\0int\0" + b"0:1\0"))  # "int" at 1, "0:1" at 5

    def core(insn_off: int = 0, access: int = 5, kind: int = 0) -> bytes:
        return _ext(core=struct.pack("<IIIIIII", 16, 1, 1, insn_off, 1, access, kind))

    cases = [
        (b"\0" * 4, r"too short for a BTF.ext header"),
        (_ext(func=struct.pack("<III", 8, 1, 0)), r"func_info block has no records"),
        (_ext(func=struct.pack("<IIIII", 8, 1, 1, 0, 1)),
         r"func_info type id 1 is not a FUNC"),
        (_ext(func=struct.pack("<IIIII", 8, 99, 1, 0, 1)), r"string offset 99 is outside"),
        (_ext(func=struct.pack("<IIIII", 6, 1, 1, 0, 1)), r"record size 6 is not"),
        (_ext(line=struct.pack("<IIIIIII", 16, 1, 2, 0, 1, 1, 0)),
         r"line_info block of 2 records of 16 bytes runs past"),
        (core(insn_off=4), r"core_relo instruction offset 4 is not a multiple of 8"),
        (core(access=1), r"CO-RE access string 'int' is not like '0:1:2'"),
        (core(kind=13), r"unknown CO-RE relocation kind 13"),
    ]
    for data, message in cases:
        with pytest.raises(BtfError, match=message) as info:
            parse_btf_ext(data, btf)
        assert info.value.section == ".BTF.ext"
    ok = parse_btf_ext(core(kind=9), btf)
    assert ok.core_relos == {"int": (CoreRelo(0, 1, "0:1", CoreReloKind.TYPE_SIZE),)}
    assert ok.func_info == ok.line_info == {}


class _Maps:
    """Builds a .maps DATASEC by hand: one VAR per map, members as (name, type id)."""

    def __init__(self) -> None:
        self.strings, self.words, self.maps, self.count = bytearray(b"\0"), [], [], 0
        self.int_ = self.add(Kind.INT, "int", 4, 0x01000020)
        self.long = self.add(Kind.INT, "long", 8, 0x01000040)

    def name(self, text: str) -> int:
        self.strings += text.encode() + b"\0"
        return len(self.strings) - len(text) - 1

    def add(self, kind: Kind, name: str, sot: int, *extra: int, vlen: int = 0) -> int:
        """Append one btf_type with its kind data; returns its type id."""
        self.words += [self.name(name) if name else 0, _info(kind, vlen), sot, *extra]
        self.count += 1
        return self.count

    def uint(self, value: int) -> int:
        arr = self.add(Kind.ARRAY, "", 0, self.int_, self.int_, value)
        return self.add(Kind.PTR, "", arr)

    def ptr(self, target: int) -> int:
        return self.add(Kind.PTR, "", target)

    def map(self, name: str, *members: tuple[str, int]) -> None:
        extra = [w for k, (n, t) in enumerate(members) for w in (self.name(n), t, 64 * k)]
        st = self.add(Kind.STRUCT, "", 8 * len(members), *extra, vlen=len(members))
        self.maps.append((self.add(Kind.VAR, name, st, 1), 8 * len(members)))

    def btf(self) -> Btf:
        extra = [w for k, (var, size) in enumerate(self.maps) for w in (var, 0, size)]
        self.add(Kind.DATASEC, ".maps", 0, *extra, vlen=len(self.maps))
        return parse_btf(_blob(self.words, bytes(self.strings)))


def test_hand_made_maps_parse():
    b = _Maps()
    b.map("m", ("type", b.uint(1)), ("key", b.ptr(b.long)), ("value_size", b.uint(8)),
          ("max_entries", b.uint(10)), ("numa_node", b.uint(2)), ("map_extra", b.uint(5)))
    assert map_defs_from_btf(b.btf()) == [MapDef("m", type=1, key_size=8, value_size=8,
                                                 max_entries=10, numa_node=2, map_extra=5,
                                                 key_type_id=b.long)]


@pytest.mark.parametrize("build, message", [
    (lambda b: b.map("m", ("type", b.uint(1)), ("bogus", b.ptr(b.int_))),
     r"map 'm': unknown field 'bogus'"),
    (lambda b: b.map("m", ("key_size", b.uint(4)), ("key", b.ptr(b.long))),
     r"map 'm': key_size 4 conflicts with the size 8 of its __type"),
    (lambda b: b.map("m", ("type", b.int_)), r"map 'm': field 'type' is a INT, not __uint"),
    (lambda b: b.map("m", ("key", b.int_)), r"map 'm': key is a INT, not __type\(key, T\)"),
    (lambda b: b.map("m", ("type", b.uint(1)), ("type", b.uint(2))),
     r"map 'm': field 'type' appears twice"),
    (lambda b: b.map("m", ("type", b.uint(1)),
                     ("values", b.add(Kind.ARRAY, "", 0, b.ptr(b.int_), b.int_, 0))),
     r"map 'm': 'values' needs a prog array or a map of maps, not map type 1"),
    (lambda b: b.map("m", ("type", b.uint(3)),
                     ("values", b.add(Kind.ARRAY, "", 0, b.ptr(b.int_), b.int_, 0))),
     r"map 'm': prog array 'values' point to a INT, not a function"),
    (lambda b: b.map("m", ("type", b.uint(12)), ("value_size", b.uint(8)),
                     ("values", b.add(Kind.ARRAY, "", 0, b.ptr(b.int_), b.int_, 0))),
     r"map 'm.inner': the definition is a INT, not a struct"),
])
def test_map_def_errors_name_the_map(build, message):
    b = _Maps()
    build(b)
    with pytest.raises(BtfError, match=r"^ELF object: section '\.maps': type id \d+: "
                       + message) as info:
        map_defs_from_btf(b.btf())
    assert info.value.section == ".maps"


# --- the kernel's own BTF ------------------------------------------------------------------


@pytest.mark.skipif(not VMLINUX.exists(), reason=f"{VMLINUX} not present (no kernel BTF)")
def test_vmlinux_xdp_md_and_parse_time():
    data = VMLINUX.read_bytes()
    start = time.perf_counter()
    btf = parse_btf(data)
    elapsed = time.perf_counter() - start
    print(f"parsed {len(data)} bytes, {len(btf.types)} types of vmlinux BTF in {elapsed:.2f} s")
    xdp_md = btf.by_name("xdp_md", Kind.STRUCT)
    assert [(m.name, m.byte_offset, btf.size_of(m.type)) for m in xdp_md.members] == [
        ("data", 0, 4), ("data_end", 4, 4), ("data_meta", 8, 4), ("ingress_ifindex", 12, 4),
        ("rx_queue_index", 16, 4), ("egress_ifindex", 20, 4)]
    assert btf.size_of(xdp_md.id) == 24
    assert btf.format(xdp_md.members[0].type) == "__u32"
    assert btf.resolve(xdp_md.members[0].type).name == "unsigned int"
    for t in btf.types:  # every type of a real producer formats without error
        btf.format(t.id)
    assert elapsed < 5, f"parsing vmlinux BTF took {elapsed:.2f} s"


# --- fuzz: mutated real sections give BtfError or a result ---------------------------------


def _seeds() -> list[tuple[bytes, bytes, tuple[dict[str, int], dict[str, int]]]]:
    out = []
    for name in ("types.o", "core.o", "maps.o"):
        secs = _sections(name)
        out.append((secs[".BTF"], secs[".BTF.ext"], _layout(name)))
    return out


SEEDS = _seeds()


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, val in ops:
        if not buf:
            break
        pos %= len(buf)
        if op == 0:
            del buf[pos:]
        elif op == 1:
            buf[pos] ^= 1 << (val % 8)
        elif op == 2:
            buf[pos] = val & 0xFF
        else:
            pos -= pos % 4
            buf[pos:pos + 4] = struct.pack("<I", val)[:len(buf) - pos]
    return bytes(buf)


def _exercise(btf: Btf, layout: tuple[dict[str, int], dict[str, int]]) -> None:
    """Every query on every type, the map definitions and the DATASEC fixup."""
    for t in btf.types:
        for query in (btf.resolve, btf.size_of, btf.format):
            try:
                query(t.id)
            except BtfError:
                pass
    for step in (map_defs_from_btf, lambda b: fixup_datasecs(b, *layout)):
        try:
            step(btf)
        except BtfError:
            pass


_OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16),
                          st.sampled_from([0, 1, 2, 3, 7, 8, 16, 19, 20, 0xFF, 0xFFFF,
                                           0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                                           0x0D000002, 0x84000002, 0x13000001])
                          | st.integers(0, 0xFFFFFFFF)),
                min_size=1, max_size=4)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))), ops=_OPS, which=st.sampled_from(["btf", "ext"]))
def test_fuzz_mutated_sections_raise_only_btf_error(seed, ops, which):
    raw_btf, raw_ext, layout = SEEDS[seed]
    try:
        if which == "btf":
            btf = parse_btf(_mutate(raw_btf, ops))
            _exercise(btf, layout)
            parse_btf_ext(raw_ext, btf)
        else:
            parse_btf_ext(_mutate(raw_ext, ops), parse_btf(raw_btf))
    except BtfError:
        pass
