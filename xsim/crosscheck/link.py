"""A static linker for one relocatable object, so that code LLVM compiled for
x86_64, aarch64 or riscv64 can run under unicorn without a system linker.

:func:`link` lays out the object's allocated sections at a guest address,
resolves its undefined symbols from a table the caller gives, builds a GOT
for the relocations that need one, and applies every relocation.  It makes
no PLT, no veneers and no relaxations: a call must reach its target
directly, and a field a value does not fit in is a :class:`LinkError`, as
is any relocation type it does not know.  ``.eh_frame`` is laid out and
relocated like any other allocated section.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_RELOC_TYPE_AARCH64, ENUM_RELOC_TYPE_x64
from elftools.elf.sections import Symbol

from ..errors import XsimError
from . import targets

PAGE = 4096
_U64 = (1 << 64) - 1
_SHF_ALLOC, _SHF_EXECINSTR = 0x2, 0x4


@dataclass
class Image:
    """A linked object: ``data`` belongs at ``base`` in guest memory."""

    base: int                       # guest address of data[0] (page aligned)
    data: bytes                     # the allocated sections and the GOT, a whole number of pages
    symbols: dict[str, int]         # every defined named symbol -> guest address
    sizes: dict[str, int]           # st_size of those symbols
    text: list[tuple[int, int]]     # [start, end) guest ranges of executable sections


class LinkError(XsimError):
    """An object this linker cannot place: the message names the relocation type
    (number and name), section and offset, or the undefined symbol."""

    def __init__(self, reason: str, *, section: str | None = None, offset: int | None = None,
                 reloc_type: int | None = None, reloc_name: str | None = None,
                 symbol: str | None = None) -> None:
        self.reason, self.section, self.offset = reason, section, offset
        self.reloc_type, self.reloc_name, self.symbol = reloc_type, reloc_name, symbol
        where = ""
        if reloc_type is not None:
            where += f"relocation {reloc_type} ({reloc_name}) "
        if section is not None:
            where += f"at {section}+{offset or 0:#x} "
        super().__init__(f"{where.rstrip()}: {reason}" if where else reason)


# ---------------------------------------------------------------------------
# one relocation site, and the helpers that read, check and write its field

@dataclass
class _Site:
    """One relocation to apply, in the psABIs' terms (S, A, P, G)."""

    buf: bytearray
    off: int            # the field's offset in buf
    limit: int          # end of its section in buf: no field may cross it
    p: int              # the field's guest address
    s: int              # the symbol's guest address
    a: int              # the addend
    g: int              # the symbol's GOT slot (GOT relocations only)
    #: RISC-V: the pc-relative value of each PCREL_HI20/GOT_HI20, by its AUIPC's
    #: address, for the PCREL_LO12 relocations that name that AUIPC
    hi20: dict[int, int]
    error: Callable[[str], LinkError]   # a LinkError naming this relocation


def _read(site: _Site, size: int, at: int = 0) -> int:
    start = site.off + at
    if start + size > site.limit:
        raise site.error(f"a {size}-byte field does not fit in the section")
    return int.from_bytes(site.buf[start:start + size], "little")


def _write(site: _Site, size: int, value: int, at: int = 0) -> None:
    _read(site, size, at)
    start = site.off + at
    site.buf[start:start + size] = (value & (1 << 8 * size) - 1).to_bytes(size, "little")


def _patch(site: _Site, size: int, mask: int, bits: int, at: int = 0) -> None:
    """Replace the ``mask`` bits of an instruction (or byte) with ``bits``."""
    _write(site, size, _read(site, size, at) & ~mask | bits & mask, at)


def _s64(v: int) -> int:
    """v as the linker's 64-bit arithmetic sees it: an address at or above 2**63 is negative."""
    return (v + (1 << 63) & _U64) - (1 << 63)


def _fits(site: _Site, value: int, lo: int, hi: int) -> int:
    value = _s64(value)
    if not lo <= value < hi:
        raise site.error(f"value {value:#x} is out of range [{lo:#x}, {hi:#x})")
    return value


def _signed(site: _Site, value: int, bits: int) -> int:
    return _fits(site, value, -(1 << bits - 1), 1 << bits - 1)


def _aligned(site: _Site, value: int, align: int) -> int:
    if value % align:
        raise site.error(f"value {value:#x} is not a multiple of {align}")
    return value


def _data(size: int, value: Callable[[_Site], int],
          check: Callable[[_Site, int], int] = lambda site, v: v) -> Callable[[_Site], None]:
    """A rule that stores ``value`` (checked by ``check``) in a ``size``-byte field."""
    return lambda site: _write(site, size, check(site, value(site)))


def _abs(site: _Site) -> int:
    return site.s + site.a


def _pcrel(site: _Site) -> int:
    return site.s + site.a - site.p


def _gotrel(site: _Site) -> int:
    return site.g + site.a - site.p


def _int32(site: _Site, v: int) -> int:
    return _signed(site, v, 32)


def _uint32(site: _Site, v: int) -> int:
    return _fits(site, v, 0, 1 << 32)


def _any32(site: _Site, v: int) -> int:
    """Signed or unsigned: the AArch64 psABI's check for its 32-bit data fields."""
    return _fits(site, v, -(1 << 31), 1 << 32)


@dataclass(frozen=True)
class _Kind:
    """What one relocation type is called and how it is applied."""

    name: str
    apply: Callable[[_Site], None]
    got: bool = False       # needs a GOT slot for its symbol
    anchor: bool = False    # others find it by address (RISC-V HI20s): applied first


def _none(site: _Site) -> None:
    """R_*_NONE: nothing to do."""


# ---------------------------------------------------------------------------
# x86_64

_X86_64 = {
    0: _Kind("R_X86_64_NONE", _none),
    1: _Kind("R_X86_64_64", _data(8, _abs)),
    2: _Kind("R_X86_64_PC32", _data(4, _pcrel, _int32)),
    4: _Kind("R_X86_64_PLT32", _data(4, _pcrel, _int32)),   # no PLT: straight to the symbol
    9: _Kind("R_X86_64_GOTPCREL", _data(4, _gotrel, _int32), got=True),
    10: _Kind("R_X86_64_32", _data(4, _abs, _uint32)),
    11: _Kind("R_X86_64_32S", _data(4, _abs, _int32)),
    24: _Kind("R_X86_64_PC64", _data(8, _pcrel)),
    41: _Kind("R_X86_64_GOTPCRELX", _data(4, _gotrel, _int32), got=True),
    42: _Kind("R_X86_64_REX_GOTPCRELX", _data(4, _gotrel, _int32), got=True),
}


# ---------------------------------------------------------------------------
# aarch64

def _page(x: int) -> int:
    return x & ~0xFFF


def _a64_adr(site: _Site, v: int) -> None:
    """The 21-bit immediate of ADR/ADRP: immlo in bits 30:29, immhi in 23:5."""
    _patch(site, 4, 0x60FFFFE0, (v & 3) << 29 | (v >> 2 & 0x7FFFF) << 5)


def _a64_pages(check: bool, target: Callable[[_Site], int]) -> Callable[[_Site], None]:
    def apply(site: _Site) -> None:
        v = (_page(target(site)) - _page(site.p)) >> 12
        _a64_adr(site, _signed(site, v, 21) if check else v)
    return apply


def _a64_lo12(shift: int, target: Callable[[_Site], int] = _abs) -> Callable[[_Site], None]:
    """ADD or LDR/STR's unsigned 12-bit offset, in units of the access size."""
    def apply(site: _Site) -> None:
        v = _aligned(site, target(site) & 0xFFF, 1 << shift)
        _patch(site, 4, 0x003FFC00, (v >> shift) << 10)
    return apply


def _a64_branch(bits: int, lsb: int) -> Callable[[_Site], None]:
    """A branch's word offset, ``bits - 2`` bits wide, starting at bit ``lsb``."""
    def apply(site: _Site) -> None:
        v = _aligned(site, _signed(site, _pcrel(site), bits), 4) >> 2
        mask = (1 << bits - 2) - 1
        _patch(site, 4, mask << lsb, (v & mask) << lsb)
    return apply


def _a64_movw(group: int, check: bool) -> Callable[[_Site], None]:
    """MOVZ/MOVK's 16-bit immediate (bits 20:5): bits 16*group.. of S+A."""
    def apply(site: _Site) -> None:
        v = _abs(site)
        if check:
            _fits(site, v, 0, 1 << 16 * (group + 1))
        _patch(site, 4, 0x001FFFE0, (v >> 16 * group & 0xFFFF) << 5)
    return apply


def _a64_adr_lo21(site: _Site) -> None:
    _a64_adr(site, _signed(site, _pcrel(site), 21))


def _got_abs(site: _Site) -> int:
    return site.g + site.a


_AARCH64 = {
    0: _Kind("R_AARCH64_NONE", _none),
    256: _Kind("R_AARCH64_NONE", _none),
    257: _Kind("R_AARCH64_ABS64", _data(8, _abs)),
    258: _Kind("R_AARCH64_ABS32", _data(4, _abs, _any32)),
    260: _Kind("R_AARCH64_PREL64", _data(8, _pcrel)),
    261: _Kind("R_AARCH64_PREL32", _data(4, _pcrel, _any32)),
    263: _Kind("R_AARCH64_MOVW_UABS_G0", _a64_movw(0, True)),
    264: _Kind("R_AARCH64_MOVW_UABS_G0_NC", _a64_movw(0, False)),
    265: _Kind("R_AARCH64_MOVW_UABS_G1", _a64_movw(1, True)),
    266: _Kind("R_AARCH64_MOVW_UABS_G1_NC", _a64_movw(1, False)),
    267: _Kind("R_AARCH64_MOVW_UABS_G2", _a64_movw(2, True)),
    268: _Kind("R_AARCH64_MOVW_UABS_G2_NC", _a64_movw(2, False)),
    269: _Kind("R_AARCH64_MOVW_UABS_G3", _a64_movw(3, False)),   # always fits
    274: _Kind("R_AARCH64_ADR_PREL_LO21", _a64_adr_lo21),
    275: _Kind("R_AARCH64_ADR_PREL_PG_HI21", _a64_pages(True, _abs)),
    276: _Kind("R_AARCH64_ADR_PREL_PG_HI21_NC", _a64_pages(False, _abs)),
    277: _Kind("R_AARCH64_ADD_ABS_LO12_NC", _a64_lo12(0)),
    278: _Kind("R_AARCH64_LDST8_ABS_LO12_NC", _a64_lo12(0)),
    279: _Kind("R_AARCH64_TSTBR14", _a64_branch(16, 5)),
    280: _Kind("R_AARCH64_CONDBR19", _a64_branch(21, 5)),
    282: _Kind("R_AARCH64_JUMP26", _a64_branch(28, 0)),
    283: _Kind("R_AARCH64_CALL26", _a64_branch(28, 0)),
    284: _Kind("R_AARCH64_LDST16_ABS_LO12_NC", _a64_lo12(1)),
    285: _Kind("R_AARCH64_LDST32_ABS_LO12_NC", _a64_lo12(2)),
    286: _Kind("R_AARCH64_LDST64_ABS_LO12_NC", _a64_lo12(3)),
    299: _Kind("R_AARCH64_LDST128_ABS_LO12_NC", _a64_lo12(4)),
    311: _Kind("R_AARCH64_ADR_GOT_PAGE", _a64_pages(True, _got_abs), got=True),
    312: _Kind("R_AARCH64_LD64_GOT_LO12_NC", _a64_lo12(3, _got_abs), got=True),
}


# ---------------------------------------------------------------------------
# riscv64

def _hi(v: int) -> int:
    """The upper 20 bits of v, rounded so that adding the sign-extended low 12 gives v."""
    return (_s64(v) + 0x800) >> 12


def _lo(v: int) -> int:
    return _s64(v) - (_hi(v) << 12)


def _rv_u(site: _Site, v: int, at: int = 0) -> None:
    """LUI/AUIPC's 20-bit immediate: the high part of a 32-bit signed value."""
    _patch(site, 4, 0xFFFFF000, (_signed(site, _hi(v), 20) & 0xFFFFF) << 12, at)


def _rv_i(site: _Site, v: int, at: int = 0) -> None:
    _patch(site, 4, 0xFFF00000, (_lo(v) & 0xFFF) << 20, at)


def _rv_s(site: _Site, v: int) -> None:
    lo = _lo(v)
    _patch(site, 4, 0xFE000F80, (lo >> 5 & 0x7F) << 25 | (lo & 0x1F) << 7)


def _rv_hi20(value: Callable[[_Site], int]) -> Callable[[_Site], None]:
    """PCREL_HI20/GOT_HI20: patch the AUIPC and note its value for the LO12s."""
    def apply(site: _Site) -> None:
        site.hi20[site.p] = v = value(site)
        _rv_u(site, v)
    return apply


def _rv_pcrel_lo12(patch: Callable[[_Site, int], None]) -> Callable[[_Site], None]:
    """PCREL_LO12_I/S: S is the AUIPC's label, whose HI20 holds the full value."""
    def apply(site: _Site) -> None:
        if site.a:
            raise site.error(f"addend {site.a} on a PCREL_LO12 relocation (must be 0)")
        if site.s not in site.hi20:
            raise site.error(f"no R_RISCV_PCREL_HI20 or R_RISCV_GOT_HI20 at {site.s:#x}, "
                             "the AUIPC this relocation names")
        patch(site, site.hi20[site.s])
    return apply


def _rv_call(site: _Site) -> None:
    """AUIPC + JALR pair."""
    v = _pcrel(site)
    _rv_u(site, v)
    _rv_i(site, v, at=4)


def _rv_branch(site: _Site) -> None:
    """B-type: imm[12|10:5] in bits 31:25, imm[4:1|11] in 11:7."""
    v = _aligned(site, _signed(site, _pcrel(site), 13), 2)
    _patch(site, 4, 0xFE000F80,
           (v >> 12 & 1) << 31 | (v >> 5 & 0x3F) << 25 | (v >> 1 & 0xF) << 8 | (v >> 11 & 1) << 7)


def _rv_jal(site: _Site) -> None:
    """J-type: imm[20|10:1|11|19:12] in bits 31:12."""
    v = _aligned(site, _signed(site, _pcrel(site), 21), 2)
    _patch(site, 4, 0xFFFFF000,
           (v >> 20 & 1) << 31 | (v >> 1 & 0x3FF) << 21 | (v >> 11 & 1) << 20
           | (v >> 12 & 0xFF) << 12)


def _rvc_branch(site: _Site) -> None:
    """CB format (c.beqz/c.bnez): offset[8|4:3] in bits 12:10, [7:6|2:1|5] in 6:2."""
    v = _aligned(site, _signed(site, _pcrel(site), 9), 2)
    _patch(site, 2, 0x1C7C,
           (v >> 8 & 1) << 12 | (v >> 3 & 3) << 10 | (v >> 6 & 3) << 5 | (v >> 1 & 3) << 3
           | (v >> 5 & 1) << 2)


def _rvc_jump(site: _Site) -> None:
    """CJ format (c.j): offset[11|4|9:8|10|6|7|3:1|5] in bits 12:2."""
    v = _aligned(site, _signed(site, _pcrel(site), 12), 2)
    _patch(site, 2, 0x1FFC,
           (v >> 11 & 1) << 12 | (v >> 4 & 1) << 11 | (v >> 8 & 3) << 9 | (v >> 10 & 1) << 8
           | (v >> 6 & 1) << 7 | (v >> 7 & 1) << 6 | (v >> 1 & 7) << 3 | (v >> 5 & 1) << 2)


def _rv_abs_hi20(site: _Site) -> None:
    _rv_u(site, _abs(site))


def _rv_lo12_i(site: _Site) -> None:
    _rv_i(site, _abs(site))


def _rv_lo12_s(site: _Site) -> None:
    _rv_s(site, _abs(site))


def _rv_add(size: int, sign: int) -> Callable[[_Site], None]:
    """ADDn/SUBn: the field's value plus or minus S+A, wrapping."""
    return lambda site: _write(site, size, _read(site, size) + sign * _abs(site))


def _rv_sub6(site: _Site) -> None:
    """SUB6: the low 6 bits of a byte (DWARF's DW_CFA_advance_loc) minus S+A."""
    _patch(site, 1, 0x3F, _read(site, 1) - _abs(site))


def _rv_set6(site: _Site) -> None:
    _patch(site, 1, 0x3F, _abs(site))


def _rv_align(site: _Site) -> None:
    raise site.error("the object was built for linker relaxation, which this linker "
                     "does not do: compile with the -relax feature")


_RISCV = {
    0: _Kind("R_RISCV_NONE", _none),
    1: _Kind("R_RISCV_32", _data(4, _abs, _any32)),
    2: _Kind("R_RISCV_64", _data(8, _abs)),
    16: _Kind("R_RISCV_BRANCH", _rv_branch),
    17: _Kind("R_RISCV_JAL", _rv_jal),
    18: _Kind("R_RISCV_CALL", _rv_call),
    19: _Kind("R_RISCV_CALL_PLT", _rv_call),     # no PLT: straight to the symbol
    20: _Kind("R_RISCV_GOT_HI20", _rv_hi20(_gotrel), got=True, anchor=True),
    23: _Kind("R_RISCV_PCREL_HI20", _rv_hi20(_pcrel), anchor=True),
    24: _Kind("R_RISCV_PCREL_LO12_I", _rv_pcrel_lo12(_rv_i)),
    25: _Kind("R_RISCV_PCREL_LO12_S", _rv_pcrel_lo12(_rv_s)),
    26: _Kind("R_RISCV_HI20", _rv_abs_hi20),
    27: _Kind("R_RISCV_LO12_I", _rv_lo12_i),
    28: _Kind("R_RISCV_LO12_S", _rv_lo12_s),
    33: _Kind("R_RISCV_ADD8", _rv_add(1, 1)),
    34: _Kind("R_RISCV_ADD16", _rv_add(2, 1)),
    35: _Kind("R_RISCV_ADD32", _rv_add(4, 1)),
    36: _Kind("R_RISCV_ADD64", _rv_add(8, 1)),
    37: _Kind("R_RISCV_SUB8", _rv_add(1, -1)),
    38: _Kind("R_RISCV_SUB16", _rv_add(2, -1)),
    39: _Kind("R_RISCV_SUB32", _rv_add(4, -1)),
    40: _Kind("R_RISCV_SUB64", _rv_add(8, -1)),
    43: _Kind("R_RISCV_ALIGN", _rv_align),
    44: _Kind("R_RISCV_RVC_BRANCH", _rvc_branch),
    45: _Kind("R_RISCV_RVC_JUMP", _rvc_jump),
    51: _Kind("R_RISCV_RELAX", _none),           # a hint that the next relocation may relax
    52: _Kind("R_RISCV_SUB6", _rv_sub6),
    53: _Kind("R_RISCV_SET6", _rv_set6),
    54: _Kind("R_RISCV_SET8", _data(1, _abs)),
    55: _Kind("R_RISCV_SET16", _data(2, _abs)),
    56: _Kind("R_RISCV_SET32", _data(4, _abs)),
    57: _Kind("R_RISCV_32_PCREL", _data(4, _pcrel, _int32)),
}

#: names of the RISC-V types the linker does not apply, for its errors
#: (pyelftools has no RISC-V table)
_RISCV_OTHER = {
    3: "R_RISCV_RELATIVE", 4: "R_RISCV_COPY", 5: "R_RISCV_JUMP_SLOT",
    6: "R_RISCV_TLS_DTPMOD32", 7: "R_RISCV_TLS_DTPMOD64", 8: "R_RISCV_TLS_DTPREL32",
    9: "R_RISCV_TLS_DTPREL64", 10: "R_RISCV_TLS_TPREL32", 11: "R_RISCV_TLS_TPREL64",
    12: "R_RISCV_TLSDESC", 21: "R_RISCV_TLS_GOT_HI20", 22: "R_RISCV_TLS_GD_HI20",
    29: "R_RISCV_TPREL_HI20", 30: "R_RISCV_TPREL_LO12_I", 31: "R_RISCV_TPREL_LO12_S",
    32: "R_RISCV_TPREL_ADD", 41: "R_RISCV_GOT32_PCREL", 58: "R_RISCV_IRELATIVE",
    59: "R_RISCV_PLT32", 60: "R_RISCV_SET_ULEB128", 61: "R_RISCV_SUB_ULEB128",
    62: "R_RISCV_TLSDESC_HI20", 63: "R_RISCV_TLSDESC_LOAD_LO12",
    64: "R_RISCV_TLSDESC_ADD_LO12", 65: "R_RISCV_TLSDESC_CALL",
}

_KINDS: dict[str, dict[int, _Kind]] = {"x86_64": _X86_64, "aarch64": _AARCH64, "riscv64": _RISCV}
_OTHER_NAMES: dict[str, dict[int, str]] = {
    "x86_64": {v: k for k, v in ENUM_RELOC_TYPE_x64.items() if isinstance(v, int)},
    "aarch64": {v: k for k, v in ENUM_RELOC_TYPE_AARCH64.items() if isinstance(v, int)},
    "riscv64": _RISCV_OTHER,
}


def _reloc_name(isa: str, rtype: int) -> str:
    """The psABI name of relocation type ``rtype`` of ``isa`` (for messages)."""
    kind = _KINDS[isa].get(rtype)
    return kind.name if kind else _OTHER_NAMES[isa].get(rtype, "unknown")


# ---------------------------------------------------------------------------
# the linker

def _align(x: int, a: int) -> int:
    return -(-x // a) * a if a > 1 else x


def _open(obj: bytes, t: targets.Isa) -> ELFFile:
    """The object as an ELFFile, once it is known to be a 64-bit LE relocatable for ``t``."""
    try:
        elf = ELFFile(io.BytesIO(obj))
    except ELFError as e:
        raise LinkError(f"not an ELF object: {e}") from None
    if elf.elfclass != 64 or not elf.little_endian or elf["e_type"] != "ET_REL":
        raise LinkError(f"expected a 64-bit little-endian relocatable object (ET_REL), got "
                        f"ELFCLASS{elf.elfclass} {elf['e_type']}")
    if elf["e_machine"] != t.machine:
        raise LinkError(f"the object is for {elf['e_machine']}, not {t.name} ({t.machine})")
    return elf


@dataclass
class _Reloc:
    index: int           # the index of the section it patches
    section: str         # and its name
    offset: int
    rtype: int
    sym: int             # symbol index
    addend: int


class _Linker:
    """The state of one link: where each section went, the GOT, the image."""

    def __init__(self, elf: ELFFile, isa: str, base: int, externals: dict[str, int]) -> None:
        self.elf, self.isa, self.base, self.externals = elf, isa, base, externals
        self.kinds = _KINDS[isa]
        self.symtab = elf.get_section_by_name(".symtab")
        self.addr: dict[int, int] = {}       # section index -> guest address
        self.end = self._place()
        self.relocs = self._relocations()
        self.got = self._got()

    def _place(self) -> int:
        """Give each allocated section an address, executable ones first; the end."""
        alloc = [(i, s) for i, s in enumerate(self.elf.iter_sections())
                 if s["sh_flags"] & _SHF_ALLOC]
        alloc.sort(key=lambda item: not item[1]["sh_flags"] & _SHF_EXECINSTR)
        at = self.base
        for i, s in alloc:
            at = _align(at, s["sh_addralign"])
            self.addr[i] = at
            at += s["sh_size"]
        return at

    def _relocations(self) -> list[_Reloc]:
        """The relocations of the placed sections, their types checked, anchors first."""
        relocs = []
        for sec in self.elf.iter_sections():
            if sec["sh_type"] not in ("SHT_REL", "SHT_RELA") or sec["sh_info"] not in self.addr:
                continue        # relocations of a section that is not loaded do not matter
            index = sec["sh_info"]
            name = self.elf.get_section(index).name
            if sec["sh_type"] == "SHT_REL":
                raise LinkError(f"{sec.name} is SHT_REL: only RELA relocations are supported",
                                section=name)
            for r in sec.iter_relocations():
                reloc = _Reloc(index, name, r["r_offset"], r["r_info_type"], r["r_info_sym"],
                               r["r_addend"])
                self._kind(reloc)       # refuse an unknown type before doing any work
                relocs.append(reloc)
        relocs.sort(key=lambda r: not self._kind(r).anchor)
        return relocs

    def _kind(self, r: _Reloc) -> _Kind:
        kind = self.kinds.get(r.rtype)
        if kind is None:
            raise self._error(r, f"unsupported relocation type for {self.isa}")
        return kind

    def _error(self, r: _Reloc, reason: str, symbol: str | None = None) -> LinkError:
        return LinkError(reason, section=r.section, offset=r.offset, reloc_type=r.rtype,
                         reloc_name=_reloc_name(self.isa, r.rtype), symbol=symbol)

    def _got(self) -> dict[int, int]:
        """One 8-byte slot, after the sections, per symbol a GOT relocation names."""
        slots: dict[int, int] = {}
        start = _align(self.end, 8)
        for r in self.relocs:
            if self._kind(r).got and r.sym not in slots:
                slots[r.sym] = start + 8 * len(slots)
        if slots:
            self.end = start + 8 * len(slots)
        return slots

    def _address(self, sym: Symbol, error: Callable[[str], LinkError]) -> int | None:
        """Where a symbol this object defines is (None: it is undefined)."""
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            return None
        if shndx == "SHN_ABS":
            return sym["st_value"]
        what = f"symbol {sym.name!r}" if sym.name else "a section symbol"
        if not isinstance(shndx, int):
            raise error(f"{what} is in {shndx}, which this linker does not place "
                        "(give it an initializer)")
        if shndx not in self.addr:
            raise error(f"{what} is in {self.elf.get_section(shndx).name}, which is not "
                        "allocated, so not loaded")
        return self.addr[shndx] + sym["st_value"]

    def _resolve(self, r: _Reloc) -> int:
        """S: the guest address of the relocation's symbol (0 for the null symbol)."""
        if r.sym == 0:
            return 0
        sym = self.symtab.get_symbol(r.sym)
        address = self._address(sym, lambda reason: self._error(r, reason, sym.name))
        if address is None:
            address = self.externals.get(sym.name)
        if address is None:
            raise self._error(r, f"undefined symbol {sym.name!r}: give its guest address "
                              "in externals", symbol=sym.name)
        return address

    def image(self) -> Image:
        buf = bytearray(_align(self.end - self.base, PAGE))
        for i, at in self.addr.items():
            sec = self.elf.get_section(i)
            if sec["sh_type"] != "SHT_NOBITS":
                buf[at - self.base:at - self.base + sec["sh_size"]] = sec.data()
        hi20: dict[int, int] = {}
        for r in self.relocs:
            self._apply(r, buf, hi20)
        return Image(self.base, bytes(buf), *self._symbols(), self._text())

    def _apply(self, r: _Reloc, buf: bytearray, hi20: dict[int, int]) -> None:
        """Apply one relocation, filling its symbol's GOT slot if it has one."""
        kind, start, s = self._kind(r), self.addr[r.index] - self.base, self._resolve(r)
        slot = self.got[r.sym] if kind.got else 0
        if kind.got:
            buf[slot - self.base:slot - self.base + 8] = (s & _U64).to_bytes(8, "little")
        site = _Site(buf, start + r.offset, start + self.elf.get_section(r.index)["sh_size"],
                     self.base + start + r.offset, s, r.addend, slot, hi20,
                     lambda reason: self._error(r, reason))
        kind.apply(site)

    def _symbols(self) -> tuple[dict[str, int], dict[str, int]]:
        """Every defined named symbol of the image; not the assembler's ``.L`` labels
        nor the ``$x``/``$d`` mapping symbols, which LLVM may leave many of under one name."""
        symbols, sizes = {}, {}
        for sym in self.symtab.iter_symbols():
            shndx = sym["st_shndx"]
            if (not sym.name or sym.name.startswith((".L", "$"))
                    or sym["st_info"]["type"] in ("STT_SECTION", "STT_FILE")
                    or isinstance(shndx, int) and shndx not in self.addr):
                continue
            address = self._address(sym, lambda reason: LinkError(reason, symbol=sym.name))
            if address is not None:
                symbols[sym.name] = address
                sizes[sym.name] = sym["st_size"]
        return symbols, sizes

    def _text(self) -> list[tuple[int, int]]:
        """The non-empty executable sections' ranges."""
        ranges = [(at, at + self.elf.get_section(i)["sh_size"]) for i, at in self.addr.items()
                  if self.elf.get_section(i)["sh_flags"] & _SHF_EXECINSTR]
        return [(start, end) for start, end in ranges if end > start]


def link(obj: bytes, isa: str, base: int, externals: dict[str, int] | None = None) -> Image:
    """Link the relocatable object ``obj`` (for ``isa``) to run at guest address ``base``;
    its undefined symbols are looked up in ``externals`` (name -> guest address)."""
    if base % PAGE:
        raise LinkError(f"base {base:#x} is not page aligned")
    t = targets.isa(isa)
    elf = _open(obj, t)
    if elf.get_section_by_name(".symtab") is None:
        raise LinkError("the object has no .symtab")
    return _Linker(elf, t.name, base, dict(externals or {})).image()
