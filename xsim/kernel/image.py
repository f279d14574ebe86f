"""The kernel's own JIT image of a loaded program, recorded so that it can run without a
kernel (``xsim crosscheck --native``, :mod:`xsim.crosscheck.native`).

:func:`fetch` loads an object's program into the running kernel and reads what its
native code depends on:

- the jited bytes and, per function (the program and each subprogram), its address
  (``jited_ksyms``) and length (``jited_func_lens``);
- the xlated program (the verifier's rewrite, which the kernel dumps with map
  references as map ids);
- each map the program uses, with the kernel address the code embeds for it: the x86
  JIT turns an LD_IMM64 into ``movabs reg, imm64`` when the value fits no 32-bit
  immediate, which a kernel pointer never does, so the code's movabs instructions
  line up one to one with the xlated LD_IMM64s that need one (map pointers, map
  values, wide constants) and a map reference's movabs holds its ``struct bpf_map *``
  or the address of the value it names;
- every call or jump target outside the image, by its /proc/kallsyms names
  (helpers, map operations, ``__x86_return_thunk`` and its mitigation variants);
- the byte offsets of the kernel struct members that the code or its stand-ins rely
  on, from /sys/kernel/btf/vmlinux: where an array's values start, where a hash
  element's key starts, and the context structs of the program type's hook.

A :class:`KernelImage` is saved as one JSON file (code in hex), so a recorded image
can live in a repository and be checked on any machine.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import platform
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import capstone
from capstone import x86_const

from ..elf.kinds import MapType, ProgType
from ..elf.spec import ObjectSpec, ProgramSpec
from ..errors import NativeUnsupported, XsimError
from ..runtime.hooks import HOOKS
from .syscall import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, ProgInfo

__all__ = ["FORMAT", "MAP_STRUCTS", "ImageFunction", "ImageMap", "KernelImage",
           "KernelImageError", "Scan", "fetch", "scan"]

FORMAT = "xsim-kernel-image/1"
KALLSYMS = Path("/proc/kallsyms")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
#: struct members any image may need: where an array's values start (inlined lookups,
#: global data) and where a hash element's key starts (what __htab_map_lookup_elem gives)
MAP_STRUCTS: dict[str, tuple[str, ...]] = {"bpf_array": ("value",), "htab_elem": ("key",)}
_LD_IMM64 = 0x18
_PSEUDO_FUNC = 4
_MASK = (1 << 64) - 1
_GS = 0x65


class KernelImageError(XsimError):
    """A kernel image that cannot be fetched or used: missing or malformed fields,
    code that does not decode, a target the record does not name."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason, self.path = reason, path
        super().__init__(f"{path}: {reason}" if path else reason)


@dataclass(frozen=True)
class ImageFunction:
    """One function of the image (the program first, then its subprograms)."""

    address: int
    length: int


@dataclass(frozen=True)
class ImageMap:
    """A map the program uses, and the kernel addresses its code embeds for it."""

    name: str
    type: str                     # bpftool's name of the map type
    key_size: int
    value_size: int
    max_entries: int
    #: the ``struct bpf_map *`` the code loads (None: the code loads only a value address)
    kernel_address: int | None
    #: where value 0 of an array is (None for other maps): global data's and inlined
    #: lookups' loads and stores land from here
    value_address: int | None


@dataclass(frozen=True)
class Scan:
    """What a linear decode of native code finds."""

    #: movabs immediates, in code order
    movabs: list[int]
    #: (pc, target) of every call and jump with an immediate target
    branches: list[tuple[int, int]]
    #: (pc, address) of each instruction that reads memory through gs (per-CPU data) at an
    #: absolute gs-relative address (the JIT's ``add reg, gs:[&this_cpu_off]``), the
    #: address None where it is not absolute
    per_cpu: list[tuple[int, int | None]]


@functools.cache
def _disassembler() -> capstone.Cs:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    return cs


def scan(code: bytes, address: int) -> Scan:
    """Decode ``code`` (one function at ``address``); KernelImageError where it stops
    decoding before its end (a JIT emits no data between its instructions)."""
    out = Scan([], [], [])
    end = address
    for insn in _disassembler().disasm(code, address):
        end = insn.address + insn.size
        ops = insn.operands
        if insn.mnemonic == "movabs" and len(ops) == 2 and ops[1].type == x86_const.X86_OP_IMM:
            out.movabs.append(ops[1].imm & _MASK)
        if (insn.group(capstone.CS_GRP_CALL) or insn.group(capstone.CS_GRP_JUMP)) and ops \
                and ops[0].type == x86_const.X86_OP_IMM:
            out.branches.append((insn.address, ops[0].imm & _MASK))
        if _GS in insn.prefix:
            mem = [op.mem for op in ops if op.type == x86_const.X86_OP_MEM]
            absolute = len(mem) == 1 and mem[0].base == 0 and mem[0].index == 0
            out.per_cpu.append((insn.address, mem[0].disp & _MASK if absolute else None))
    if end != address + len(code):
        raise KernelImageError(f"the code at {end:#x} does not decode as x86-64 (the "
                               f"function at {address:#x} has {len(code)} bytes)")
    return out


@dataclass(frozen=True)
class KernelImage:
    """The kernel's x86-64 JIT image of one program and the facts it depends on."""

    program: str
    prog_type: ProgType
    arch: str
    kernel: str
    #: sha256 of the program's linked bytecode, as the loader gives it (ProgramSpec.code)
    program_sha256: str
    functions: tuple[ImageFunction, ...]
    code: bytes
    xlated: bytes
    maps: tuple[ImageMap, ...]
    #: address -> its kallsyms names, for each call/jump target outside the image
    externals: Mapping[int, tuple[str, ...]]
    #: struct -> member -> byte offset, from the kernel's BTF
    layouts: Mapping[str, Mapping[str, int]]

    @property
    def entry(self) -> int:
        return self.functions[0].address

    def function_code(self) -> Iterator[tuple[int, bytes]]:
        """(address, bytes) of each function."""
        at = 0
        for f in self.functions:
            yield f.address, self.code[at:at + f.length]
            at += f.length

    def offset(self, struct_name: str, member: str) -> int:
        """A recorded struct member's byte offset; KernelImageError when not recorded."""
        try:
            return int(self.layouts[struct_name][member])
        except KeyError:
            raise KernelImageError(f"the image records no offset of struct {struct_name} "
                                   f"member {member}: fetch it again") from None

    def where(self, pc: int) -> str:
        """``program+0x1c`` (or ``function 2+0x8``) for a native pc, else the address."""
        for k, f in enumerate(self.functions):
            if f.address <= pc < f.address + f.length:
                name = self.program if k == 0 else f"{self.program} function {k}"
                return f"{name}+{pc - f.address:#x}"
        return f"{pc:#x}"

    # -- checks ------------------------------------------------------------------------
    def check(self, source: str | None = None) -> None:
        """KernelImageError unless the code decodes and every call and jump lands in the
        image or on an address the record names."""
        if sum(f.length for f in self.functions) != len(self.code):
            raise KernelImageError(f"the functions' lengths add up to "
                                   f"{sum(f.length for f in self.functions)} bytes, the code "
                                   f"has {len(self.code)} (truncated?)", source)
        spans = sorted((f.address, f.address + f.length) for f in self.functions)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            if start < end:
                raise KernelImageError(f"functions overlap at {start:#x}", source)
        for address, code in self.function_code():
            for pc, target in scan(code, address).branches:
                inside = any(lo <= target < hi for lo, hi in spans)
                if not inside and target not in self.externals:
                    raise KernelImageError(
                        f"the code at {self.where(pc)} ({pc:#x}) jumps to {target:#x}, which is "
                        "neither in the image nor a kernel function the image names", source)

    # -- JSON --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "program": self.program, "prog_type": self.prog_type.kernel_name,
            "arch": self.arch, "kernel": self.kernel, "program_sha256": self.program_sha256,
            "functions": [{"address": f"{f.address:#x}", "length": f.length}
                          for f in self.functions],
            "code": self.code.hex(), "xlated": self.xlated.hex(),
            "maps": [{"name": m.name, "type": m.type, "key_size": m.key_size,
                      "value_size": m.value_size, "max_entries": m.max_entries,
                      "kernel_address": _hex_or_none(m.kernel_address),
                      "value_address": _hex_or_none(m.value_address)} for m in self.maps],
            "externals": {f"{a:#x}": list(names) for a, names in sorted(self.externals.items())},
            "layouts": {s: dict(sorted(m.items())) for s, m in sorted(self.layouts.items())},
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def from_json(cls, data: Any, source: str | None = None) -> KernelImage:
        """A KernelImage from its JSON object, checked (:meth:`check`)."""
        r = _Reader(data, source)
        if r.field("format", str) != FORMAT:
            raise KernelImageError(f"format is {data.get('format')!r}, not {FORMAT!r}", source)
        kind = r.field("prog_type", str)
        try:
            prog_type = ProgType[kind.upper()]
        except KeyError:
            raise KernelImageError(f"prog_type {kind!r} is no program type", source) from None
        functions = tuple(ImageFunction(r.address(f, "address", "functions"),
                                        r.number(f, "length", "functions"))
                          for f in r.items("functions", list))
        if not functions:
            raise KernelImageError("the image has no functions", source)
        maps = tuple(ImageMap(r.text(m, "name", "maps"), r.text(m, "type", "maps"),
                              r.number(m, "key_size", "maps"), r.number(m, "value_size", "maps"),
                              r.number(m, "max_entries", "maps"),
                              r.address(m, "kernel_address", "maps", optional=True),
                              r.address(m, "value_address", "maps", optional=True))
                     for m in r.items("maps", list))
        externals = {r.parse_address(a, "externals"): tuple(r.names(names, a))
                     for a, names in r.field("externals", dict).items()}
        layouts = {}
        for name, members in r.field("layouts", dict).items():
            if not isinstance(members, dict) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in members.values()):
                raise KernelImageError(f"layouts.{name}: must map member names to offsets",
                                       source)
            layouts[name] = dict(members)
        image = cls(program=r.field("program", str), prog_type=prog_type,
                    arch=r.field("arch", str), kernel=r.field("kernel", str),
                    program_sha256=r.field("program_sha256", str), functions=functions,
                    code=r.hex("code"), xlated=r.hex("xlated"), maps=maps,
                    externals=externals, layouts=layouts)
        image.check(source)
        return image

    @classmethod
    def load(cls, path: str | Path) -> KernelImage:
        """Read a saved image; KernelImageError (naming the file) for anything malformed."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KernelImageError(f"not a JSON kernel image: {exc}", str(path)) from None
        return cls.from_json(data, str(path))


def _hex_or_none(v: int | None) -> str | None:
    return None if v is None else f"{v:#x}"


class _Reader:
    """Typed field access to an image's JSON, each failure a KernelImageError."""

    def __init__(self, data: Any, source: str | None) -> None:
        if not isinstance(data, dict):
            raise KernelImageError("the image must be a JSON object", source)
        self.data, self.source = data, source

    def fail(self, reason: str) -> KernelImageError:
        return KernelImageError(reason, self.source)

    def field(self, name: str, kind: type) -> Any:
        value = self.data.get(name)
        if not isinstance(value, kind):
            raise self.fail(f"field {name!r} is missing or not a {kind.__name__}")
        return value

    def items(self, name: str, kind: type) -> list[dict]:
        value = self.field(name, kind)
        if not all(isinstance(v, dict) for v in value):
            raise self.fail(f"field {name!r} must be a list of objects")
        return value

    def hex(self, name: str) -> bytes:
        try:
            return bytes.fromhex(self.field(name, str))
        except ValueError:
            raise self.fail(f"field {name!r} is not hex") from None

    def parse_address(self, text: Any, where: str) -> int:
        if isinstance(text, str):
            try:
                return int(text, 16)
            except ValueError:
                pass
        raise self.fail(f"{where}: {text!r} is not a hex address")

    def address(self, obj: dict, key: str, where: str, optional: bool = False) -> int | None:
        value = obj.get(key)
        if value is None and optional:
            return None
        return self.parse_address(value, f"{where}.{key}")

    def number(self, obj: dict, key: str, where: str) -> int:
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"{where}.{key} must be a non-negative integer, not {value!r}")
        return value

    def text(self, obj: dict, key: str, where: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key} must be a string, not {value!r}")
        return value

    def names(self, names: Any, address: str) -> list[str]:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise self.fail(f"externals.{address} must be a list of kallsyms names")
        return names


# -- fetching ---------------------------------------------------------------------------

def program_sha256(p: ProgramSpec) -> str:
    """What ties an image to the program it was made from: its linked bytecode."""
    return hashlib.sha256(p.code).hexdigest()


def _array(ctype: Any, n: int) -> ctypes.Array:
    return (ctype * max(n, 1))()


def _ld_imm64s(xlated: bytes) -> list[tuple[int, int, int]]:
    """(src_reg, imm, second imm) of each LD_IMM64 of xlated code, in order."""
    out = []
    slot = 0
    while slot * 8 + 16 <= len(xlated):
        base = slot * 8
        if xlated[base] == _LD_IMM64:
            lo, hi = struct.unpack_from("<i", xlated, base + 4)[0], struct.unpack_from(
                "<i", xlated, base + 12)[0]
            out.append((xlated[base + 1] >> 4, lo, hi))
            slot += 2
        else:
            slot += 1
    return out


def _wide(value: int) -> bool:
    """Whether the x86 JIT loads a 64-bit constant with movabs (emit_mov_imm64): only
    when neither a zero- nor a sign-extended 32-bit immediate holds it."""
    value &= _MASK
    return value > 0xFFFFFFFF and value < (1 << 64) - (1 << 31)


def _map_addresses(xlated: bytes, movabs: list[int]) -> dict[int, tuple[int | None, int | None]]:
    """map id -> (struct bpf_map *, the address of the value a map-value load names, less
    its offset), as the code's movabs instructions load them."""
    loads = _ld_imm64s(xlated)
    for src, _, _ in loads:
        if src not in (0, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
            what = "a function's address (a callback)" if src == _PSEUDO_FUNC else \
                f"an LD_IMM64 of kind {src}"
            raise NativeUnsupported(what, "the native runner stands in for map references "
                                    "and constants only (no callbacks, no kernel symbols)")
    wanted = [x for x in loads if x[0] or _wide((x[1] & 0xFFFFFFFF) | (x[2] & 0xFFFFFFFF) << 32)]
    if len(wanted) != len(movabs):
        raise KernelImageError(f"the code has {len(movabs)} movabs instructions where the "
                               f"xlated program has {len(wanted)} wide LD_IMM64s: they do "
                               "not line up")
    found: dict[int, list[int | None]] = {}
    for (src, imm, imm2), value in zip(wanted, movabs):
        if src == 0:
            const = (imm & 0xFFFFFFFF) | (imm2 & 0xFFFFFFFF) << 32
            if const != value:
                raise KernelImageError(f"a movabs loads {value:#x} where the xlated program "
                                       f"loads {const:#x}: they do not line up")
            continue
        entry = found.setdefault(imm, [None, None])
        entry[0 if src == BPF_PSEUDO_MAP_FD else 1] = (
            value if src == BPF_PSEUDO_MAP_FD else value - (imm2 & 0xFFFFFFFF))
    return {mid: (k, v) for mid, (k, v) in found.items()}


def _kallsyms(addresses: set[int]) -> dict[int, tuple[str, ...]]:
    """The kallsyms names of each address (all names an address has, in file order)."""
    names: dict[int, list[str]] = {}
    seen_nonzero = False
    with KALLSYMS.open() as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            at = int(parts[0], 16)
            seen_nonzero = seen_nonzero or at != 0
            if at in addresses:
                names.setdefault(at, []).append(parts[2])
    if not seen_nonzero:
        raise KernelImageError(f"{KALLSYMS} shows every address as 0: reading them needs "
                               "root (CAP_SYSLOG) and kernel.kptr_restrict below 2")
    missing = sorted(addresses - set(names))
    if missing:
        raise NativeUnsupported(f"a jump to {', '.join(f'{a:#x}' for a in missing)}",
                                f"{KALLSYMS} names no kernel function there (a direct tail "
                                "call into another program's image?)")
    return {a: tuple(n) for a, n in names.items()}


@functools.cache
def _vmlinux_btf() -> Any:
    from ..elf.btf import parse_btf
    if not VMLINUX_BTF.exists():
        raise KernelImageError(f"{VMLINUX_BTF} is missing: the kernel was built without "
                               "CONFIG_DEBUG_INFO_BTF, so its struct layouts are unknown")
    return parse_btf(VMLINUX_BTF.read_bytes())


def _members(btf: Any, type_id: int, base: int, out: dict[str, tuple[int, int]]) -> None:
    """Every named member (bit offset, bitfield size), anonymous members flattened."""
    from ..elf.btf import Struct, Union
    for m in btf.resolve(type_id).members:
        if m.name:
            out.setdefault(m.name, (base + m.bit_offset, m.bitfield_size))
        elif isinstance(btf.resolve(m.type), (Struct, Union)):
            _members(btf, m.type, base + m.bit_offset, out)


def kernel_layouts(wanted: Mapping[str, tuple[str, ...]]) -> dict[str, dict[str, int]]:
    """struct -> member -> byte offset in the running kernel, from its BTF."""
    from ..elf.btf import Kind
    btf = _vmlinux_btf()
    out: dict[str, dict[str, int]] = {}
    for name, members in wanted.items():
        found: dict[str, tuple[int, int]] = {}
        _members(btf, btf.by_name(name, Kind.STRUCT).id, 0, found)
        out[name] = {}
        for member in members:
            if member not in found:
                raise KernelImageError(f"the kernel's struct {name} has no member {member}")
            bits, width = found[member]
            if width or bits % 8:
                raise KernelImageError(f"struct {name} member {member} is a bitfield")
            out[name][member] = bits // 8
    return out


def _prog_info(kprog: Any) -> tuple[ProgInfo, list[int], list[int], list[int]]:
    """The program's info with its ksyms, function lengths and map ids."""
    head = kprog._raw_info()
    n_syms, n_lens, n_maps = head.nr_jited_ksyms, head.nr_jited_func_lens, head.nr_map_ids
    syms, lens, ids = _array(ctypes.c_uint64, n_syms), _array(ctypes.c_uint32, n_lens), \
        _array(ctypes.c_uint32, n_maps)
    info = ProgInfo(nr_jited_ksyms=n_syms, jited_ksyms=ctypes.addressof(syms),
                    nr_jited_func_lens=n_lens, jited_func_lens=ctypes.addressof(lens),
                    nr_map_ids=n_maps, map_ids=ctypes.addressof(ids))
    kprog._raw_info(info)
    return head, list(syms[:n_syms]), list(lens[:n_lens]), list(ids[:n_maps])


def fetch(spec: ObjectSpec, prog_name: str | None) -> KernelImage:
    """Load ``prog_name`` of ``spec`` (None: its only program) into the kernel and record
    its JIT image.

    Needs bpf() (root or CAP_BPF), the x86-64 JIT on (net.core.bpf_jit_enable=1),
    readable kallsyms addresses and the kernel's BTF; each missing one raises
    KernelError or KernelImageError saying which, and code the native runner could
    never run (callbacks, jumps into other programs) NativeUnsupported."""
    from .objects import KernelObject, _program

    if platform.machine() not in ("x86_64", "amd64"):
        raise KernelImageError(f"only the x86-64 JIT's images are read (this machine is "
                               f"{platform.machine()})")
    pspec = _program(spec, prog_name)
    with KernelObject.load(spec, prog=pspec.name) as obj:
        kprog = obj.programs[pspec.name]
        head, syms, lens, ids = _prog_info(kprog)
        code, xlated = kprog.jited(), kprog.xlated()
        if not code or not syms:
            raise KernelImageError("the kernel ran no JIT for this program "
                                   "(net.core.bpf_jit_enable is 0?)")
        by_id = {m.id: m for m in obj.maps.values() if m.id in ids}
    functions = tuple(ImageFunction(a, n) for a, n in zip(syms, lens))
    image_code = _split(code, functions)
    movabs: list[int] = []
    targets: set[int] = set()
    spans = [(f.address, f.address + f.length) for f in functions]
    for address, part in image_code:
        s = scan(part, address)
        movabs += s.movabs
        targets |= {t for _, t in s.branches if not any(lo <= t < hi for lo, hi in spans)}
    wanted = dict(MAP_STRUCTS)
    hook = HOOKS.get(pspec.prog_type)
    wanted.update(getattr(hook, "kernel_structs", {}))
    layouts = kernel_layouts(wanted)
    value_off = layouts["bpf_array"]["value"]
    maps = []
    for mid, (kaddr, vaddr) in _map_addresses(xlated, movabs).items():
        m = by_id.get(mid)
        if m is None:
            raise KernelImageError(f"the code loads map id {mid}, which is none of the "
                                   "maps the kernel lists for the program")
        if m.type is not MapType.ARRAY:
            vaddr = None
        elif kaddr is not None:
            if vaddr is not None and vaddr != kaddr + value_off:
                raise KernelImageError(f"map {m.name}: its values are at {vaddr:#x}, not at "
                                       f"struct bpf_array + {value_off} ({kaddr:#x})")
            vaddr = kaddr + value_off
        maps.append(ImageMap(m.name, m.type.bpftool_name, m.key_size, m.value_size,
                             m.max_entries, kaddr, vaddr))
    image = KernelImage(program=pspec.name, prog_type=ProgType(head.type), arch="x86_64",
                        kernel=platform.release(), program_sha256=program_sha256(pspec),
                        functions=functions, code=code, xlated=xlated,
                        maps=tuple(sorted(maps, key=lambda m: m.name)),
                        externals=_kallsyms(targets), layouts=layouts)
    image.check()
    return image


def _split(code: bytes, functions: tuple[ImageFunction, ...]) -> list[tuple[int, bytes]]:
    if sum(f.length for f in functions) != len(code):
        raise KernelImageError(f"the kernel's function lengths add up to "
                               f"{sum(f.length for f in functions)} bytes, its image has "
                               f"{len(code)}")
    out, at = [], 0
    for f in functions:
        out.append((f.address, code[at:at + f.length]))
        at += f.length
    return out
