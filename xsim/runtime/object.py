"""A loaded object: an ObjectSpec made real, with its maps and programs in one address space.

``xsim.load(path)`` reads the ELF (``xsim.elf.load_spec``), creates every map
in a shared address space, resolves each program's map, global-data and
function references to real addresses, and gives each program the object's
helpers (map helpers, the kernel's general helpers, tail calls).
"""
from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from ..elf.kinds import MapType, ProgType
from ..elf.loader import load_spec
from ..elf.spec import MapSpec, ObjectSpec, ProgramSpec
from ..errors import ProgramNotFound, XsimError
from ..isa import opcodes as oc
from ..isa.insn import INSN_SIZE, decode
from ..isa.verifier import max_ctx_offset
from .callback_helpers import register_callback_helpers
from .env import RunEnv
from .helpers import KEEP_R0, MAX_TAIL_CALLS, HelperCall, HelperRegistry
from .hooks import HOOKS
from .kernel_helpers import register_kernel_helpers
from .maps import Map, create_map
from .maps.fdmaps import ProgArrayMap
from .maps.helpers import register_map_helpers
from .memory import run_space
from .program import Program
from .result import RunResult
from .tailcall import LinkedProgram, linkable, starts

_LDDW = struct.Struct("<BBhi")
#: a kfunc call (the loader left it unresolved) and an exit, for _foreign
_KFUNC_CALL = _LDDW.pack(0x85, oc.CALL_KFUNC << 4, 0, 0)
_EXIT = _LDDW.pack(0x95, 0, 0, 0)
_LDDW_BTF_ID = next(k for k, (name, _) in oc.LDDW_KINDS.items() if name == "btf_id")
#: KERNEL_VERSION(6, 18, 0): LINUX_KERNEL_VERSION when RunEnv.kconfig does not set it
DEFAULT_KERNEL_VERSION = (6 << 16) + (18 << 8)
#: kconfig values a kernel has whatever its configuration, unless the user says otherwise
KCONFIG_DEFAULTS: dict[str, int | str | bool] = {
    "LINUX_KERNEL_VERSION": DEFAULT_KERNEL_VERSION, "CONFIG_HZ": 250,
    "CONFIG_BPF": True, "CONFIG_BPF_SYSCALL": True, "CONFIG_BPF_JIT": True,
}
_TRISTATE = {"n": 0, "y": 1, "m": 2}
#: bpftool/libbpf let a global-data map be named by its section alone
_DATA_ALIASES = (".data", ".bss", ".rodata", ".kconfig")


class ObjectProgram:
    """One program of a loaded object: its spec, and the Program that runs it."""

    def __init__(self, spec: ProgramSpec, program: Program,
                 tail_call: Callable[..., object] | None = None,
                 linked: Callable[[ProgType | None], LinkedProgram | None] | None = None
                 ) -> None:
        self.spec = spec
        #: the object's bpf_tail_call, given ``hooked=True`` for this program's hooked form
        self._tail_call = tail_call
        #: the object's programs linked (by ``prog_type``: hooked forms; None: raw)
        self._linked = linked
        if linked is not None:
            program.linked = functools.partial(linked, None)
        #: the program on raw memory (r1 = the memory): what ``run`` and ``--mem`` run
        self.program = program
        self._hooked: Program | None = None

    def hooked(self) -> Program:
        """The program as its hook runs it: context accesses rewritten as the kernel's
        verifier rewrites them (a VerifierError if it would refuse one)."""
        if self._hooked is None:
            p = self.program
            hook = HOOKS[self.spec.prog_type]
            insns = hook.rewrite(self.spec, p.insns)
            # the hook's helpers for this program type only (bpf_redirect means one thing
            # in XDP and another in TC), on top of the object's
            helpers = HelperRegistry(dict(p.helpers.helpers))
            hook.add_helpers(helpers)
            if self._tail_call is not None:   # a hooked program tail calls hooked programs
                helpers.kernel("tail_call")(functools.partial(self._tail_call, hooked=True))
            self._hooked = Program(insns, p.n_slots, name=p.name, helpers=helpers,
                                   space=p.space, env=p.env, unresolved=p.unresolved,
                                   lines=p.lines)
            if self._linked is not None:
                self._hooked.linked = functools.partial(self._linked, self.spec.prog_type)
        return self._hooked

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def section(self) -> str:
        return self.spec.section

    @functools.cached_property
    def max_ctx_offset(self) -> int:
        """The end of the furthest context access, as the kernel's verifier finds it."""
        return max_ctx_offset(self.program.insns)

    @property
    def prog_type(self) -> str:
        """The kernel's name of the program type: ``xdp``, ``sched_cls``, ``syscall``..."""
        return self.spec.prog_type.kernel_name

    def run(self, memory: bytes | bytearray | memoryview = b"", **kw) -> RunResult:
        return self.program.run(memory, **kw)

    def __repr__(self) -> str:
        return f"<program {self.name} section={self.section} type={self.prog_type}>"


class MapTable(Mapping[str, Map]):
    """The object's maps by name; global-data maps also answer to their section name."""

    def __init__(self, maps: dict[str, Map], aliases: dict[str, str]) -> None:
        self._maps, self._aliases = maps, aliases

    def __getitem__(self, name: str) -> Map:
        if name in self._maps:
            return self._maps[name]
        if name in self._aliases:
            return self._maps[self._aliases[name]]
        raise KeyError(f"no map {name!r} (maps: {', '.join(self._maps) or 'none'})")

    def __iter__(self) -> Iterator[str]:
        return iter(self._maps)

    def __len__(self) -> int:
        return len(self._maps)


class Object:
    """Maps and programs of one ELF object, ready to run."""

    def __init__(self, spec: ObjectSpec, *, env: RunEnv | None = None) -> None:
        self.spec = spec
        self.env = env if env is not None else RunEnv()
        self.space = run_space()
        self.helpers = HelperRegistry()
        register_map_helpers(self.helpers)
        register_kernel_helpers(self.helpers)
        register_callback_helpers(self.helpers)
        self.helpers.kernel("tail_call")(self._tail_call)
        maps: dict[str, Map] = {}
        aliases: dict[str, str] = {}
        for m in spec.maps:
            if m.externs:
                m = replace(m, data=kconfig_values(m, self.env.kconfig, spec.path))
            maps[m.name] = create_map(m, self.space, self.env.ncpus)
            if m.data is not None and m.section in _DATA_ALIASES:
                aliases[m.section] = m.name
        self.maps = MapTable(maps, aliases)
        self.programs: dict[str, ObjectProgram] = {}
        for p in spec.programs:
            code, unresolved = self._resolve(p)
            insns = decode(code)
            prog = Program(insns, len(code) // INSN_SIZE, name=p.name, helpers=self.helpers,
                           space=self.space, env=self.env, unresolved=unresolved,
                           lines=p.lines)
            self.programs[p.name] = ObjectProgram(p, prog, self._tail_call, self._linked)
        self._by_program = {op.program: op for op in self.programs.values()}
        self._links: dict[ProgType | None, LinkedProgram | None] = {}
        at = dict(zip(self.programs, starts([op.program for op in self.programs.values()])))
        for m in maps.values():
            if isinstance(m, ProgArrayMap):
                m.link(at)
        for m in spec.maps:
            for slot, target in m.init:
                self._initialise_slot(maps[m.name], slot, target)

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def license(self) -> str:
        return self.spec.license

    def map(self, name: str) -> Map | None:
        """A map by name or global-data section alias, or None."""
        return self.maps.get(name)

    def program(self, name: str) -> ObjectProgram:
        """A program by function name, or by section name when only one program has it."""
        if name in self.programs:
            return self.programs[name]
        by_section = [p for p in self.programs.values() if p.section == name]
        if len(by_section) == 1:
            return by_section[0]
        raise ProgramNotFound(f"{self.path} has no program {name!r}", list(self.programs))

    def choose(self, name: str | None) -> ObjectProgram:
        """The program called ``name``, or the only one when ``name`` is None."""
        if name is not None:
            return self.program(name)
        if len(self.programs) == 1:
            return next(iter(self.programs.values()))
        raise ProgramNotFound(f"{self.path} has {len(self.programs)} programs: choose one with "
                              "--prog", list(self.programs))

    # -- instantiation ------------------------------------------------------------------
    def _resolve(self, p: ProgramSpec) -> tuple[bytes, dict[int, str]]:
        """The program's code with map and global-data references turned into addresses;
        and, by slot, the references left unresolved (kernel symbols: ``__ksym``)."""
        code = bytearray(p.code)
        unresolved: dict[int, str] = dict(p.unresolved)
        for r in p.relocs:
            if r.kind == "map":
                _set_lddw(code, r.slot, self.maps[r.target].address)
            elif r.kind == "map_value":
                _set_lddw(code, r.slot, self.maps[r.target].value_address(0) + r.offset)
            else:   # a kernel symbol xsim has no address for: fails if executed
                code[r.slot * INSN_SIZE + 1] = (code[r.slot * INSN_SIZE + 1] & 0x0F) | (
                    _LDDW_BTF_ID << 4)
                unresolved[r.slot] = (f"kernel symbol {r.target!r} (__ksym): xsim models no "
                                      "kernel memory to point it at")
        return bytes(code), unresolved

    def _linked(self, prog_type: ProgType | None) -> LinkedProgram | None:
        """The object's programs linked into one, made on first use: as they run on raw
        memory (``prog_type`` None), or the hooked forms of those of ``prog_type``, with
        each program of another type in its place as one that stops at its first
        instruction (a prog array holds programs of one type).  None where they do
        not link: a program that can run off its end, or one its hook refuses."""
        if prog_type not in self._links:
            members: list[Program] = []
            try:
                for op in self.programs.values():
                    if prog_type is None:
                        members.append(op.program)
                    elif op.spec.prog_type is prog_type:
                        members.append(op.hooked())
                    else:
                        members.append(_foreign(op, prog_type))
            except XsimError:
                members = []
            self._links[prog_type] = LinkedProgram(members) \
                if members and linkable(members) else None
        return self._links[prog_type]

    def _initialise_slot(self, m: Map, slot: int, target: str) -> None:
        key = slot.to_bytes(4, "little")
        if m.type in (MapType.PROG_ARRAY,):
            if target not in self.programs:
                raise XsimError(f"{self.path}: map {m.name}: slot {slot} names {target!r}, "
                                "which is no program of this object")
            m.update(key, target)
        else:
            if target not in self.maps:
                raise XsimError(f"{self.path}: map {m.name}: slot {slot} names {target!r}, "
                                "which is no map of this object")
            m.update(key, self.maps[target])

    def _tail_call(self, call: HelperCall, hooked: bool = False) -> object:
        """bpf_tail_call(ctx, prog_array, index): on success the run goes on in that program
        (as its hook runs it, for a call from a hooked program).

        On failure (not a prog array, index out of range, empty slot, the 33-call
        limit) the kernel's interpreter goes on after the call with r0 unchanged.
        """
        prog_array = call.owner(call.args[1])
        if not isinstance(prog_array, Map) or prog_array.type is not MapType.PROG_ARRAY:
            raise XsimError(f"pc {call.pc}: bpf_tail_call: r2 is not a prog_array map")
        index = call.args[2] & 0xFFFFFFFF
        if index >= prog_array.max_entries or call.tail_calls >= MAX_TAIL_CALLS:
            return KEEP_R0
        name = prog_array.get(index)
        if name is None:
            return KEEP_R0
        target = self.programs[name]
        call.tail_call(target.hooked() if hooked else target.program)
        return 0


def _foreign(op: ObjectProgram, caller: ProgType) -> Program:
    """What stands for ``op`` in the linked code of ``caller``'s programs: as many slots,
    the first a call that stops the run with the reason."""
    p = op.program
    code = _KFUNC_CALL + _EXIT * (p.n_slots - 1)
    return Program(decode(code), p.n_slots, name=p.name, helpers=p.helpers, space=p.space,
                   env=p.env, unresolved={0: f"a tail call into {p.name!r}, a "
                                             f"{op.spec.prog_type.kernel_name} program: a prog"
                                             f" array of {caller.kernel_name} programs may not "
                                             "hold it"})


def _set_lddw(code: bytearray, slot: int, value: int) -> None:
    opcode, regs, off, _ = _LDDW.unpack_from(code, slot * INSN_SIZE)
    if opcode != oc.OPCODE_LDDW:
        raise XsimError(f"relocation at slot {slot} is not on an lddw")
    lo, hi = value & 0xFFFFFFFF, value >> 32
    _LDDW.pack_into(code, slot * INSN_SIZE, opcode, regs & 0x0F, off,
                    lo - (1 << 32) if lo >> 31 else lo)
    _LDDW.pack_into(code, (slot + 1) * INSN_SIZE, 0, 0, 0, hi - (1 << 32) if hi >> 31 else hi)


def kconfig_values(m: MapSpec, config: Mapping[str, int | str | bool], path: str) -> bytes:
    """The .kconfig map's bytes: each extern from ``config``, else xsim's default; a
    weak extern with neither is 0 (libbpf's rule), a strong one an error."""
    data = bytearray(m.value_size)
    for name, offset, size, kind, weak in m.externs:
        value = config.get(name, KCONFIG_DEFAULTS.get(name))
        if value is None:
            if weak:
                continue
            raise XsimError(f"{path}: extern {name} __kconfig has no value: give one with "
                            f"RunEnv(kconfig={{{name!r}: ...}})")
        if kind in ("bool", "tristate"):
            if isinstance(value, str):
                if value.lower() not in _TRISTATE:
                    raise XsimError(f"{path}: {name} must be y, n or m, not {value!r}")
                value = _TRISTATE[value.lower()]
            raw = int(value).to_bytes(size, "little")
        elif kind == "char[]":
            text = str(value).encode()
            if len(text) >= size:
                raise XsimError(f"{path}: {name} holds {size - 1} characters, not {len(text)}")
            raw = text.ljust(size, b"\0")
        else:
            try:
                raw = int(value).to_bytes(size, "little", signed=kind == "int")
            except (OverflowError, ValueError, TypeError):
                raise XsimError(f"{path}: {name} = {value!r} does not fit {size} bytes") from None
        data[offset:offset + size] = raw
    return bytes(data)


def load(path: str | os.PathLike[str], *, env: RunEnv | None = None,
         ncpus: int | None = None, cpu: int | None = None) -> Object:
    """Load an ELF object: ``obj.programs[name].run(...)``, ``obj.maps[name]``."""
    if env is None:
        env = RunEnv(ncpus=1 if ncpus is None else ncpus, cpu=cpu or 0)
    return Object(load_spec(path), env=env)
