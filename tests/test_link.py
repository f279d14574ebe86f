"""The cross-check linker (xsim/crosscheck/link.py): objects LLVM compiles for
x86_64, aarch64 and riscv64, linked by it, must compute under unicorn what the
IR says, and objects it cannot place must raise a LinkError naming why.

Each test also asserts that the object holds the relocation types it is meant
to exercise, so that a change in what LLVM emits cannot make it vacuous.
"""
from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable

import llvmlite.binding as llvm
import pytest
import unicorn
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from xsim.crosscheck import targets
from xsim.crosscheck.link import PAGE, Image, LinkError, link

llvm.initialize_all_targets()
llvm.initialize_all_asmprinters()

ISAS = ("x86_64", "aarch64", "riscv64")
BASE = 0x6000_0000_0000      # unicorn maps and runs code there on all three ISAs
EXT = BASE + 0x100_0000      # externals' page: within every ISA's direct-call range
RET = BASE + 0x200_0000      # the return address: a mapped page with no code
STACK = BASE + 0x300_0000
LOW = 0x10_0000              # for absolute code models, whose addresses must fit 32 bits
MASK = (1 << 64) - 1
#: a return instruction, for the externals' hooks to run on
RETURN = {"x86_64": b"\xc3", "aarch64": bytes.fromhex("c0035fd6"),   # ret
          "riscv64": bytes.fromhex("67800000")}                        # jalr x0, 0(ra)


@functools.cache
def _machine(isa: str, reloc: str, code_model: str | None, features: str | None):
    t = targets.isa(isa)
    return llvm.Target.from_triple(t.triple).create_target_machine(
        cpu=t.cpu, features=t.features if features is None else features, opt=2, reloc=reloc,
        codemodel=code_model or t.code_model)


def compile_ir(isa: str, ir: str, reloc: str = "pic", code_model: str | None = None,
               features: str | None = None) -> bytes:
    mod = llvm.parse_assembly(ir)
    mod.triple = targets.isa(isa).triple
    return _machine(isa, reloc, code_model, features).emit_object(mod)


def reloc_types(obj: bytes) -> set[int]:
    elf = ELFFile(io.BytesIO(obj))
    return {r["r_info_type"] for s in elf.iter_sections() if isinstance(s, RelocationSection)
            for r in s.iter_relocations()}


class Machine:
    """An image mapped into unicorn with a stack, a return page and emulated externals."""

    def __init__(self, image: Image, isa: str,
                 externals: dict[int, Callable[[int], int]] | None = None) -> None:
        self.t = t = targets.isa(isa)
        self.image = image
        self.uc = unicorn.Uc(t.uc_arch, t.uc_mode, t.uc_cpu) if t.uc_cpu is not None \
            else unicorn.Uc(t.uc_arch, t.uc_mode)
        self.uc.mem_map(image.base, len(image.data))
        self.uc.mem_write(image.base, image.data)
        for page in (EXT, RET):
            self.uc.mem_map(page, PAGE)
        self.uc.mem_map(STACK, 0x10000)
        for address, fn in (externals or {}).items():
            self.uc.mem_write(address, RETURN[isa])
            self.uc.hook_add(unicorn.UC_HOOK_CODE, self._external(fn), begin=address, end=address)

    def _external(self, fn: Callable[[int], int]):
        """A code hook that does what ``fn`` does to arg0; the ``ret`` under it returns."""
        t = self.t

        def hook(uc: unicorn.Uc, address: int, size: int, data: object) -> None:
            uc.reg_write(t.ret, fn(uc.reg_read(t.args[0])) & MASK)
        return hook

    def call(self, name: str, *args: int) -> int:
        t, sp = self.t, STACK + 0x8000
        for reg, value in zip(t.args, args):
            self.uc.reg_write(reg, value & MASK)
        if t.link is None:
            sp -= 8
            self.uc.mem_write(sp, RET.to_bytes(8, "little"))
        else:
            self.uc.reg_write(t.link, RET)
        self.uc.reg_write(t.sp, sp)
        self.uc.emu_start(self.image.symbols[name], RET, count=100_000)
        assert self.uc.reg_read(t.pc) == RET, f"{name} did not return"
        return self.uc.reg_read(t.ret)

    def read64(self, name: str) -> int:
        return int.from_bytes(self.uc.mem_read(self.image.symbols[name], 8), "little")


CALLS_IR = """
define i64 @callee(i64 %x, i64 %y) noinline {
  %m = mul i64 %x, 81985529216486895
  %r = xor i64 %m, %y
  ret i64 %r
}
define internal i64 @helper(i64 %x) noinline section ".text.helper" {
  %r = sub i64 %x, 9223372036854775807
  ret i64 %r
}
define i64 @f(i64 %x) {
  %a = call i64 @callee(i64 %x, i64 -6148914691236517206)
  %b = call i64 @callee(i64 %a, i64 1311768467463790320)
  %c = call i64 @helper(i64 %b)
  %d = add i64 %c, 1234567890123
  ret i64 %d
}
define i64 @tail(i64 %x) {
  %r = tail call i64 @callee(i64 %x, i64 1)
  ret i64 %r
}
"""
#: calls (to a global, and to an internal function in a section of its own) and a tail
#: call: PLT32; CALL26 and JUMP26; CALL_PLT
CALL_TYPES = {"x86_64": {4}, "aarch64": {283, 282}, "riscv64": {19}}


def _callee(x: int, y: int) -> int:
    return (x * 0x0123456789ABCDEF & MASK) ^ y


@pytest.mark.parametrize("isa", ISAS)
def test_calls_and_64_bit_constants(isa: str) -> None:
    obj = compile_ir(isa, CALLS_IR)
    assert CALL_TYPES[isa] <= reloc_types(obj)
    image = link(obj, isa, BASE)
    assert image.base == BASE and len(image.data) % PAGE == 0
    # no .L labels nor $x/$d mapping symbols
    assert set(image.symbols) == {"f", "callee", "helper", "tail"}
    assert len(image.text) == 2
    for name in image.symbols:
        assert image.sizes[name] > 0
        assert any(lo <= image.symbols[name] < hi for lo, hi in image.text)
    m = Machine(image, isa)
    for x in (0, 1, 7, 0xDEADBEEF, MASK):
        a = _callee(x, 0xAAAAAAAAAAAAAAAA)
        expected = _callee(a, 0x123456789ABCDEF0) - (1 << 63) + 1 + 1234567890123 & MASK
        assert m.call("f", x) == expected
        assert m.call("tail", x) == _callee(x, 1)


SWITCH_IR = """
define i64 @sw(i64 %x) {
entry:
  switch i64 %x, label %other [ i64 0, label %c0  i64 1, label %c1  i64 2, label %c2
                                i64 3, label %c3  i64 4, label %c4  i64 5, label %c5
                                i64 6, label %c6 ]
c0: ret i64 17
c1: ret i64 293
c2: ret i64 -5
c3: ret i64 1000000007
c4: ret i64 99
c5: ret i64 4242
c6: ret i64 8
other: ret i64 -1
}
"""
SWITCH = [17, 293, -5, 1000000007, 99, 4242, 8]
#: the table's entries: x86 PC32 against .text; riscv ADD32/SUB32 pairs (aarch64's
#: are label differences the assembler resolves: only the table's ADRP/ADD remain)
TABLE_TYPES = {"x86_64": {2}, "aarch64": {275, 277}, "riscv64": {35, 39}}


@pytest.mark.parametrize("isa", ISAS)
def test_switch_jump_table(isa: str) -> None:
    obj = compile_ir(isa, SWITCH_IR)
    assert TABLE_TYPES[isa] <= reloc_types(obj)
    m = Machine(link(obj, isa, BASE), isa)
    for x in range(-2, 10):
        assert m.call("sw", x) == (SWITCH[x] if 0 <= x < len(SWITCH) else -1) & MASK


GLOBALS_IR = """
@tbl = internal constant [8 x i64] [i64 3, i64 -1, i64 4, i64 1099511627776, i64 5,
                                    i64 9, i64 2, i64 6]
@g = internal global i64 0
@h = internal global i64 42
@w = internal global i32 100000
@s = internal global i16 300
@b = internal global i8 7
@v = internal global <2 x i64> <i64 11, i64 13>
@u = internal global <2 x i64> zeroinitializer
@cell = internal global i64 0

define i64 @lookup(i64 %i) {
  %p = getelementptr [8 x i64], ptr @tbl, i64 0, i64 %i
  %t = load i64, ptr %p
  %h = load i64, ptr @h
  %w = load i32, ptr @w
  %s = load i16, ptr @s
  %b = load i8, ptr @b
  %v = load <2 x i64>, ptr @v
  %v0 = extractelement <2 x i64> %v, i32 0
  %v1 = extractelement <2 x i64> %v, i32 1
  %u = add <2 x i64> %v, <i64 1, i64 1>
  store <2 x i64> %u, ptr @u
  %w64 = zext i32 %w to i64
  %s64 = zext i16 %s to i64
  %b64 = zext i8 %b to i64
  %m = mul i64 %v0, %v1
  %r1 = add i64 %t, %h
  %r2 = add i64 %r1, %w64
  %r3 = add i64 %r2, %s64
  %r4 = add i64 %r3, %b64
  %r5 = add i64 %r4, %m
  store i64 %r5, ptr @g
  store i8 1, ptr @b
  %r = load volatile i64, ptr @g
  ret i64 %r
}
define void @set(i64 %x) {
  store i64 %x, ptr @cell
  ret void
}
"""
TBL = [3, -1, 4, 1 << 40, 5, 9, 2, 6]
#: LDSTn_ABS_LO12_NC for n = 8, 16, 32, 64, 128; PCREL_LO12_I and _S
GLOBAL_TYPES = {"x86_64": {2}, "aarch64": {278, 284, 285, 286, 299}, "riscv64": {23, 24, 25}}


@pytest.mark.parametrize("isa", ISAS)
def test_globals(isa: str) -> None:
    obj = compile_ir(isa, GLOBALS_IR)
    assert GLOBAL_TYPES[isa] <= reloc_types(obj)
    image = link(obj, isa, BASE)
    assert not any(lo <= image.symbols["g"] < hi for lo, hi in image.text)
    m = Machine(image, isa)
    assert m.read64("g") == 0
    for i in range(8):
        expected = TBL[i] + 42 + 100000 + 300 + (7 if i == 0 else 1) + 11 * 13 & MASK
        assert m.call("lookup", i) == expected
        assert m.read64("g") == expected
    assert m.uc.mem_read(image.symbols["u"], 16) == words(12, 0, 14, 0)     # v + <1, 1>
    m.call("set", -3)
    assert m.read64("cell") == MASK - 2


FPTR_IR = """
@fp = internal global ptr @callee
define internal i64 @callee(i64 %x) noinline {
  %r = mul i64 %x, 1000003
  ret i64 %r
}
define i64 @indirect(i64 %x) {
  %f = load ptr, ptr @fp
  %r = call i64 %f(i64 %x)
  %s = add i64 %r, 5
  ret i64 %s
}
"""
ABS64 = {"x86_64": 1, "aarch64": 257, "riscv64": 2}


@pytest.mark.parametrize("isa", ISAS)
def test_function_pointer_in_data(isa: str) -> None:
    obj = compile_ir(isa, FPTR_IR)
    assert ABS64[isa] in reloc_types(obj)
    image = link(obj, isa, BASE)
    m = Machine(image, isa)
    assert m.read64("fp") == image.symbols["callee"]
    assert m.call("indirect", 12345) == 12345 * 1000003 + 5


EXT_IR = """
declare i64 @ext(i64)
declare i64 @ext_got(i64) nonlazybind
@slot = internal global ptr null

define i64 @direct(i64 %x) {
  %r = call i64 @ext(i64 %x)
  %s = add i64 %r, 1
  ret i64 %s
}
define i64 @address_taken(i64 %x) {
  store volatile ptr @ext, ptr @slot
  %f = load volatile ptr, ptr @slot
  %r = call i64 %f(i64 %x)
  %s = sub i64 %r, 1
  ret i64 %s
}
define i64 @no_plt(i64 %x) {
  %r = call i64 @ext_got(i64 %x)
  %s = add i64 %r, 2
  ret i64 %s
}
"""
#: the direct call, and the GOT ones: x86 GOTPCRELX and REX_GOTPCRELX; aarch64
#: ADR_GOT_PAGE and LD64_GOT_LO12_NC; riscv GOT_HI20 and PCREL_LO12_I
EXT_TYPES = {"x86_64": {4, 41, 42}, "aarch64": {283, 311, 312}, "riscv64": {19, 20, 24}}


@pytest.mark.parametrize("isa", ISAS)
def test_externals(isa: str) -> None:
    obj = compile_ir(isa, EXT_IR)
    assert EXT_TYPES[isa] <= reloc_types(obj)
    image = link(obj, isa, BASE, {"ext": EXT, "ext_got": EXT + 0x100})
    m = Machine(image, isa, {EXT: lambda x: 3 * x, EXT + 0x100: lambda x: 5 * x})
    assert m.call("direct", 14) == 43
    assert m.call("address_taken", 14) == 41
    assert m.call("no_plt", 14) == 72
    assert m.read64("slot") == EXT


COLLATZ_IR = """
define i64 @collatz(i64 %n) {
entry:
  br label %head
head:
  %x = phi i64 [%n, %entry], [%x2, %next]
  %k = phi i64 [0, %entry], [%k2, %next]
  %done = icmp ule i64 %x, 1
  br i1 %done, label %out, label %body
body:
  %odd = and i64 %x, 1
  %isodd = icmp ne i64 %odd, 0
  br i1 %isodd, label %o, label %e
o:
  %t = mul i64 %x, 3
  %t1 = add i64 %t, 1
  br label %next
e:
  %h = lshr i64 %x, 1
  br label %next
next:
  %x2 = phi i64 [%t1, %o], [%h, %e]
  %k2 = add i64 %k, 1
  br label %head
out:
  ret i64 %k
}
"""


@pytest.mark.parametrize("features, types", [
    ("+m,+a,+f,+d,+c,+relax", {16, 44, 45}),     # BRANCH, RVC_BRANCH, RVC_JUMP
    ("+m,+a,+f,+d,+relax", {16, 17, 51}),        # BRANCH, JAL, RELAX
])
def test_riscv_objects_built_for_relaxation(features: str, types: set[int]) -> None:
    """Without R_RISCV_ALIGN such an object runs as it is: relaxing only shrinks it."""
    obj = compile_ir("riscv64", COLLATZ_IR, features=features)
    assert types <= reloc_types(obj)
    m = Machine(link(obj, "riscv64", BASE), "riscv64")
    assert [m.call("collatz", n) for n in (1, 6, 27)] == [0, 8, 111]


@pytest.mark.parametrize("isa, reloc, code_model, types, at_base", [
    ("x86_64", "static", "small", {11}, False),                     # 32S
    ("riscv64", "static", "small", {26, 27, 28}, False),            # HI20, LO12_I, LO12_S
    ("aarch64", "static", "large", {264, 266, 268, 269}, True),     # MOVW_UABS_G0_NC..G3
])
def test_absolute_code_models(isa: str, reloc: str, code_model: str, types: set[int],
                              at_base: bool) -> None:
    """Absolute 32-bit addresses must fit: link low, or fail high with the type named."""
    obj = compile_ir(isa, GLOBALS_IR, reloc, code_model)
    assert types <= reloc_types(obj)
    if not at_base:
        with pytest.raises(LinkError, match="out of range") as err:
            link(obj, isa, BASE)
        assert err.value.reloc_type in types and err.value.reloc_name in str(err.value)
    m = Machine(link(obj, isa, BASE if at_base else LOW), isa)
    assert m.call("lookup", 3) == (1 << 40) + 42 + 100000 + 300 + 7 + 11 * 13


@pytest.mark.parametrize("isa", ISAS)
def test_undefined_symbol(isa: str) -> None:
    with pytest.raises(LinkError, match="undefined symbol 'ext'") as err:
        link(compile_ir(isa, EXT_IR), isa, BASE, {"ext_got": EXT})
    assert err.value.symbol == "ext" and err.value.section == ".text"


@pytest.mark.parametrize("isa", ISAS)
def test_call_out_of_range(isa: str) -> None:
    """No PLT or veneers: an external beyond a direct call's reach is an error."""
    with pytest.raises(LinkError, match="out of range") as err:
        link(compile_ir(isa, EXT_IR), isa, BASE, {"ext": BASE + (1 << 40), "ext_got": EXT})
    assert err.value.reloc_type in CALL_TYPES[isa]


@pytest.mark.parametrize("obj_isa, isa", [("x86_64", "aarch64"), ("aarch64", "riscv64"),
                                          ("riscv64", "x86_64")])
def test_wrong_isa(obj_isa: str, isa: str) -> None:
    with pytest.raises(LinkError, match=f"is for {targets.isa(obj_isa).machine}, not {isa}"):
        link(compile_ir(obj_isa, CALLS_IR), isa, BASE)


# ---------------------------------------------------------------------------
# hand-made objects: the fields LLVM's code generator leaves to the assembler

EM = {"x86_64": 62, "aarch64": 183, "riscv64": 243}


def tiny_object(isa: str, text: bytes, relocs: list[tuple[int, int, str, int]],
                labels: dict[str, int] | None = None) -> bytes:
    """A relocatable object of one .text section holding ``text``, a global ``entry``
    at its start, a local symbol per ``labels`` (name -> offset) and an undefined
    global for every other name the relocations (offset, type, name, addend) use."""
    labels = labels or {}
    undefined = sorted({name for _, _, name, _ in relocs} - set(labels))
    names = [*labels, "entry", *undefined]
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    name_at = {n: strtab.index(b"\0" + n.encode() + b"\0") + 1 for n in names}
    syms = [bytes(24)]
    syms += [struct.pack("<IBBHQQ", name_at[n], 0x00, 0, 1, off, 0) for n, off in labels.items()]
    syms.append(struct.pack("<IBBHQQ", name_at["entry"], 0x12, 0, 1, 0, len(text)))
    syms += [struct.pack("<IBBHQQ", name_at[n], 0x10, 0, 0, 0, 0) for n in undefined]
    index = {n: i + 1 for i, n in enumerate(names)}
    rela = b"".join(struct.pack("<QQq", off, index[n] << 32 | t, a) for off, t, n, a in relocs)
    shstrtab = b"\0.text\0.rela.text\0.symtab\0.strtab\0.shstrtab\0"
    blobs = [text, rela, b"".join(syms), strtab, shstrtab]
    offsets, at = [], 64
    for blob in blobs:
        at = -(-at // 8) * 8
        offsets.append(at)
        at += len(blob)
    shoff = -(-at // 8) * 8
    shdr = "<IIQQQQIIQQ"
    headers = [bytes(64),     # name, type, flags, addr, offset, size, link, info, align, entsize
               struct.pack(shdr, 1, 1, 6, 0, offsets[0], len(text), 0, 0, 8, 0),
               struct.pack(shdr, 7, 4, 0x40, 0, offsets[1], len(rela), 3, 1, 8, 24),
               struct.pack(shdr, 18, 2, 0, 0, offsets[2], 24 * len(syms), 4, len(labels) + 1,
                           8, 24),
               struct.pack(shdr, 26, 3, 0, 0, offsets[3], len(strtab), 0, 0, 1, 0),
               struct.pack(shdr, 34, 3, 0, 0, offsets[4], len(shstrtab), 0, 0, 1, 0)]
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01", 1, EM[isa], 1, 0, 0, shoff,
                       0, 64, 0, 0, 64, len(headers), 5)
    out = bytearray(ehdr)
    for off, blob in zip(offsets, blobs):
        out += bytes(off - len(out)) + blob
    return bytes(out + bytes(shoff - len(out)) + b"".join(headers))


def words(*insns: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in insns)


@pytest.mark.parametrize("isa, rtype, width, initial, s, a, expected", [
    ("x86_64", 1, 8, 0, BASE + 0x10, 5, BASE + 0x15),                     # 64
    ("x86_64", 2, 4, 0, BASE - 0x1000, -4, -0x1004),                      # PC32
    ("x86_64", 10, 4, 0, 0xFFFF_FFF0, 0, 0xFFFF_FFF0),                    # 32
    ("x86_64", 24, 8, 0, BASE + 0x1_0000_0000, 8, 0x1_0000_0008),         # PC64
    ("aarch64", 257, 8, 0, MASK, 0, MASK),                                # ABS64
    ("aarch64", 258, 4, 0, 0xFFFF_0000, 0x10, 0xFFFF_0010),               # ABS32
    ("aarch64", 260, 8, 0, BASE + 0x1000, 0, 0x1000),                     # PREL64
    ("aarch64", 261, 4, 0, BASE - 0x2000, 4, -0x1FFC),                    # PREL32
    ("riscv64", 1, 4, 0, 0x8000_0000, 1, 0x8000_0001),                    # 32
    ("riscv64", 2, 8, 0, BASE + 0x20, 0, BASE + 0x20),                    # 64
    ("riscv64", 33, 1, 0xF0, 0x20, 0, 0x10),                              # ADD8 (wraps)
    ("riscv64", 34, 2, 1000, 500, 1, 1501),                               # ADD16
    ("riscv64", 35, 4, 7, 0x1_0000, 0, 0x1_0007),                         # ADD32
    ("riscv64", 36, 8, 1, BASE, 0, BASE + 1),                             # ADD64
    ("riscv64", 37, 1, 0x10, 0x20, 0, 0xF0),                              # SUB8 (wraps)
    ("riscv64", 38, 2, 1000, 500, 1, 499),                                # SUB16
    ("riscv64", 39, 4, 7, 3, 0, 4),                                       # SUB32
    ("riscv64", 40, 8, BASE + 9, BASE, 0, 9),                             # SUB64
    ("riscv64", 52, 1, 0xC5, 7, 0, 0xFE),                                 # SUB6: 0x05 - 7
    ("riscv64", 53, 1, 0xC5, 0x2A, 0, 0xEA),                              # SET6
    ("riscv64", 54, 1, 0xFF, 0x1234, 0, 0x34),                            # SET8
    ("riscv64", 55, 2, 0xFFFF, 0x1234, 1, 0x1235),                        # SET16
    ("riscv64", 56, 4, 0, 0xDEAD_BEEF, 0, 0xDEAD_BEEF),                   # SET32
    ("riscv64", 57, 4, 0, BASE + 0x40, -8, 0x38),                         # 32_PCREL
])
def test_data_fields(isa: str, rtype: int, width: int, initial: int, s: int, a: int,
                     expected: int) -> None:
    """Each data relocation, applied at BASE to a field holding ``initial``."""
    text = (initial & (1 << 8 * width) - 1).to_bytes(width, "little").ljust(8, b"\0")
    image = link(tiny_object(isa, text, [(0, rtype, "sym", a)]), isa, BASE, {"sym": s})
    assert image.data[:width] == (expected & (1 << 8 * width) - 1).to_bytes(width, "little")
    assert image.data[width:8] == text[width:8]


# aarch64: each register ends up holding what its instruction's relocation computed
A64_SEQUENCE = words(
    0x90000001, 0x91000021,                     # adrp x1, s1; add x1, x1, :lo12:s1
    0x10000002,                                 # adr x2, near
    0x90000003,                                 # adrp x3, :pg_hi21_nc:s1
    0xD2E00004, 0xF2C00004, 0xF2A00004, 0xF2800004,     # movz/movk x4, k64 (g3 .. g0_nc)
    0xD2800005,                                 # movz x5, #:abs_g0:k16
    0xD2A00006, 0xF2800006,                     # movz x6, #:abs_g1:k32; movk g0_nc
    0xD2C00007, 0xF2A00007, 0xF2800007,         # movz x7, #:abs_g2:k48; movk g1_nc, g0_nc
    0x90000008,                                 # adrp x8, data
    0x39400109, 0x7940010A, 0xB940010B, 0xF940010C, 0x3DC00100,   # ldrb/ldrh/ldr w/x/q
    0x9000000D, 0xF94001AD,                     # adrp x13, :got:s1; ldr x13, [x13, :got_lo12:s1]
    0xD65F03C0)                                 # ret
A64_RELOCS = [(0, 275, "s1", 0), (4, 277, "s1", 0), (8, 274, "near", 0), (12, 276, "s1", 0),
              (16, 269, "k64", 0), (20, 268, "k64", 0), (24, 266, "k64", 0), (28, 264, "k64", 0),
              (32, 263, "k16", 0), (36, 265, "k32", 0), (40, 264, "k32", 0),
              (44, 267, "k48", 0), (48, 266, "k48", 0), (52, 264, "k48", 0),
              (56, 275, "data", 0), (60, 278, "data", 1), (64, 284, "data", 2),
              (68, 285, "data", 4), (72, 286, "data", 8), (76, 299, "data", 16),
              (80, 311, "s1", 0), (84, 312, "s1", 0)]
# riscv64: the same, and two stores
RV_SEQUENCE = words(
    0x00000597, 0x00058593,     # .L0: auipc a1, %pcrel_hi(s1); addi a1, a1, %pcrel_lo(.L0)
    0x00000637, 0x00060613,     # lui a2, %hi(k32); addi a2, a2, %lo(k32)
    0x000006B7, 0x00A6B023,     # lui a3, %hi(low); sd a0, %lo(low)(a3)
    0x00000717, 0x00A73023,     # .L1: auipc a4, %pcrel_hi(data); sd a0, %pcrel_lo(.L1)(a4)
    0x00000797, 0x0007B783,     # .L2: auipc a5, %got_pcrel_hi(s1); ld a5, %pcrel_lo(.L2)(a5)
    0x00008067)                 # ret
RV_RELOCS = [(0, 23, "s1", 0), (4, 24, ".L0", 0), (8, 26, "k32", 0), (12, 27, "k32", 0),
             (16, 26, "low", 0), (20, 28, "low", 0), (24, 23, "data", 0), (28, 25, ".L1", 0),
             (32, 20, "s1", 0), (36, 24, ".L2", 0)]
RV_LABELS = {".L0": 0, ".L1": 24, ".L2": 32}
# x86_64: mov rax, [rip + s1@GOTPCREL]; mov ecx, k32; mov rdx, kneg (32S); ret
X86_SEQUENCE = bytes.fromhex("488b0500000000" "b900000000" "48c7c200000000" "c3")
X86_RELOCS = [(3, 9, "s1", -4), (8, 10, "k32", 0), (15, 11, "kneg", 0)]
LOW_DATA = 0x7000_09F8          # riscv %hi/%lo store target: a 32-bit address, lo12 negative
SYMS = {"s1": EXT + 0xA38, "near": BASE + 0x5_4321, "data": EXT + 0xC00, "low": LOW_DATA,
        "k64": 0xFEDC_BA98_7654_3210, "k16": 0xBEEF, "k32": 0x7654_3ABC, "k48": 0x1234_5678_9ABC,
        "kneg": MASK - 0x1233}
DATA = bytes(range(1, 33))


def test_instruction_fields_aarch64() -> None:
    m = Machine(link(tiny_object("aarch64", A64_SEQUENCE, A64_RELOCS), "aarch64", BASE, SYMS),
                "aarch64")
    m.uc.mem_write(SYMS["data"], DATA)
    m.call("entry")
    reg = lambda n: m.uc.reg_read(getattr(unicorn.arm64_const, f"UC_ARM64_REG_{n}"))  # noqa: E731
    assert [reg(f"X{i}") for i in range(1, 8)] == [
        SYMS["s1"], SYMS["near"], SYMS["s1"] & ~0xFFF, SYMS["k64"], SYMS["k16"], SYMS["k32"],
        SYMS["k48"]]
    assert [reg(f"X{i}") for i in range(9, 14)] == [
        DATA[1], int.from_bytes(DATA[2:4], "little"), int.from_bytes(DATA[4:8], "little"),
        int.from_bytes(DATA[8:16], "little"), SYMS["s1"]]
    assert reg("Q0") == int.from_bytes(DATA[16:32], "little")


def test_instruction_fields_riscv64() -> None:
    obj = tiny_object("riscv64", RV_SEQUENCE, RV_RELOCS, RV_LABELS)
    m = Machine(link(obj, "riscv64", BASE, SYMS), "riscv64")
    m.uc.mem_map(LOW_DATA & ~0xFFF, PAGE)
    m.call("entry", 0x1122334455667788)
    reg = lambda n: m.uc.reg_read(getattr(unicorn.riscv_const, f"UC_RISCV_REG_{n}"))  # noqa: E731
    assert [reg("A1"), reg("A2"), reg("A5")] == [SYMS["s1"], SYMS["k32"], SYMS["s1"]]
    for address in (LOW_DATA, SYMS["data"]):
        assert m.uc.mem_read(address, 8) == (0x1122334455667788).to_bytes(8, "little")


def test_instruction_fields_x86_64() -> None:
    m = Machine(link(tiny_object("x86_64", X86_SEQUENCE, X86_RELOCS), "x86_64", BASE, SYMS),
                "x86_64")
    m.call("entry")
    reg = lambda n: m.uc.reg_read(getattr(unicorn.x86_const, f"UC_X86_REG_{n}"))  # noqa: E731
    assert [reg("RAX"), reg("RCX"), reg("RDX")] == [SYMS["s1"], 0x7654_3ABC, SYMS["kneg"]]


@pytest.mark.parametrize("isa, insn, rtype, reach, step, regs", [
    ("aarch64", words(0xB4000000), 280, (-1 << 20, 1 << 20), 4, {"X0": 0}),   # cbz: CONDBR19
    ("aarch64", words(0x37180000), 279, (-1 << 15, 1 << 15), 4, {"X0": 8}),   # tbnz: TSTBR14
    ("aarch64", words(0x14000000), 282, (-1 << 27, 1 << 27), 4, {}),          # b: JUMP26
    ("aarch64", words(0x94000000), 283, (-1 << 27, 1 << 27), 4, {}),          # bl: CALL26
    ("riscv64", words(0x00000063), 16, (-1 << 12, 1 << 12), 2, {}),   # beq zero, zero: BRANCH
    ("riscv64", words(0x0000006F), 17, (-1 << 20, 1 << 20), 2, {}),   # j: JAL
    ("riscv64", words(0x00000317, 0x00030067), 18,                    # auipc t1; jr t1: CALL
     (-(1 << 31) - 0x800, (1 << 31) - 0x800), 2, {}),
    ("riscv64", struct.pack("<H", 0xC001), 44, (-1 << 8, 1 << 8), 2, {"S0": 0}),   # c.beqz s0
    ("riscv64", struct.pack("<H", 0xA001), 45, (-1 << 11, 1 << 11), 2, {}),        # c.j
])
@pytest.mark.parametrize("forward", [True, False])
def test_branch_reach(isa: str, insn: bytes, rtype: int, reach: tuple[int, int], step: int,
                      regs: dict[str, int], forward: bool) -> None:
    """A branch lands on its farthest target each way ([lo, hi) from it), and one
    step beyond is refused."""
    const = unicorn.arm64_const if isa == "aarch64" else unicorn.riscv_const
    prefix = "UC_ARM64_REG_" if isa == "aarch64" else "UC_RISCV_REG_"
    obj = tiny_object(isa, insn, [(0, rtype, "target", 0)])
    farthest = BASE + (reach[1] - step if forward else reach[0])
    with pytest.raises(LinkError, match="out of range"):
        link(obj, isa, BASE, {"target": farthest + (step if forward else -step)})
    m = Machine(link(obj, isa, BASE, {"target": farthest}), isa)
    if not any(lo <= farthest <= hi for lo, hi, _ in m.uc.mem_regions()):
        m.uc.mem_map(farthest & ~0xFFF, PAGE)
    for name, value in regs.items():
        m.uc.reg_write(getattr(const, prefix + name), value)
    m.uc.emu_start(BASE, farthest, count=4)
    assert m.uc.reg_read(m.t.pc) == farthest


@pytest.mark.parametrize("isa, insn, rtype, s, a, match", [
    ("aarch64", words(0xF9400020), 286, EXT + 4, 0, "not a multiple of 8"),   # ldr x0, lo12
    ("aarch64", words(0xD2800005), 263, 0x1_0000, 0, "out of range"),         # movz #:abs_g0:
    ("aarch64", words(0), 258, BASE, 0, "out of range"),                      # ABS32
    ("aarch64", words(0x90000001), 275, BASE + (1 << 32), 0, "out of range"),  # adrp: ±4 GiB
    ("x86_64", words(0), 10, -1, 0, "out of range"),                          # 32 is unsigned
    ("riscv64", words(0x00058593), 24, BASE, 0, "no R_RISCV_PCREL_HI20"),     # lo12 alone
    ("riscv64", words(0x00000637), 26, 0x7FFF_F800, 0, "out of range"),       # lui %hi
    ("riscv64", b"\0\0", 2, 0, 0, "does not fit in the section"),            # 8 bytes in 2
])
def test_field_refused(isa: str, insn: bytes, rtype: int, s: int, a: int, match: str) -> None:
    obj = tiny_object(isa, insn, [(0, rtype, "sym", a)])
    with pytest.raises(LinkError, match=match) as err:
        link(obj, isa, BASE, {"sym": s & MASK})
    assert (err.value.reloc_type, err.value.section, err.value.offset) == (rtype, ".text", 0)


def test_not_an_object() -> None:
    with pytest.raises(LinkError, match="not an ELF object"):
        link(b"\x7fELF junk", "x86_64", BASE)


def _retype_first(obj: bytes, section: str, rtype: int) -> bytes:
    """``obj`` with the first relocation of ``section`` changed to type ``rtype``."""
    sec = ELFFile(io.BytesIO(obj)).get_section_by_name(section)
    at = sec["sh_offset"] + 8           # Elf64_Rela.r_info
    info = int.from_bytes(obj[at:at + 8], "little")
    return obj[:at] + ((info >> 32) << 32 | rtype).to_bytes(8, "little") + obj[at + 8:]


@pytest.mark.parametrize("isa, rtype, name, message", [
    ("x86_64", 22, "R_X86_64_GOTTPOFF", "unsupported"),
    ("aarch64", 549, "R_AARCH64_TLSLE_ADD_TPREL_HI12", "unsupported"),
    ("riscv64", 29, "R_RISCV_TPREL_HI20", "unsupported"),
    ("riscv64", 43, "R_RISCV_ALIGN", "relaxation"),
])
def test_relocation_type_refused(isa: str, rtype: int, name: str, message: str) -> None:
    obj = _retype_first(compile_ir(isa, CALLS_IR), ".rela.text", rtype)
    with pytest.raises(LinkError, match=message) as err:
        link(obj, isa, BASE)
    assert (err.value.reloc_type, err.value.reloc_name) == (rtype, name)
    assert f"relocation {rtype} ({name}) at .text+" in str(err.value)
