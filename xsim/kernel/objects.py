"""A loaded :class:`~xsim.elf.spec.ObjectSpec` put into the running kernel, and run there.

:meth:`KernelObject.load` does what libbpf does for an object (without BTF):
create the maps (global data written at key 0, ``.rodata`` frozen; map-in-map
outers get a template inner map from ``spec.inner``), patch each program's map
and global-data references, load the programs needed (one program, the
programs its prog arrays' init slots name, transitively), then fill the prog
arrays and map-in-map slots.  Its ``maps`` are views with the runtime maps'
Python API (``items()``, ``values()``, ``records()``), so
:func:`xsim.runtime.testrun.dump_map` dumps them the same way, and
:func:`kernel_test_run` gives the report ``xsim run --json`` prints.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Self

from ..elf.btf import Btf, BtfError, parse_btf, with_sections
from ..elf.btf import Kind as BtfKind
from ..elf.kinds import MapType, ProgType
from ..elf.spec import MapSpec, ObjectSpec, ProgramSpec
from ..errors import ProgramNotFound
from ..runtime.result import RunResult
from ..runtime.testrun import (SYSCALL_CTX_MAX, TestRunOutput, TestRunRefused, apply_maps_in,
                               report)
from .backend import KernelBtf, KernelMap, KernelProgram, KernelUsageError, patch_map_fds, \
    patch_map_values, possible_cpus
from .syscall import BPF_ANY, ENOTSUPP, Cmd, KernelError, ObjInfoAttr, bpf

__all__ = ["KernelObject", "ObjectMap", "kernel_test_run", "jit_image", "NEEDS_BTF"]

#: Map types the kernel creates only with BTF (local storage, struct_ops): not created here.
NEEDS_BTF = frozenset({MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                       MapType.CGRP_STORAGE, MapType.STRUCT_OPS})
#: Special kernel structs in a value that the kernel only knows of through BTF.
_BTF_STRUCTS = frozenset({"bpf_spin_lock", "bpf_res_spin_lock", "bpf_timer", "bpf_wq",
                          "bpf_list_head", "bpf_rb_root", "bpf_refcount", "bpf_task_work"})
_ARRAYS = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                     MapType.ARRAY_OF_MAPS, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY})
_MAP_IN_MAP = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})
_RB_BUSY, _RB_DISCARD, _RB_HDR = 1 << 31, 1 << 30, 8


class _InfoHead(ctypes.Structure):
    """The first fields of bpf_map_info / bpf_prog_info: type and id."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32)]


def _object_id(fd: int) -> int:
    info = _InfoHead()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, ObjInfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info),
                                            info=ctypes.addressof(info)))
    return int(info.id)


def _kernel_name(name: str) -> str:
    """A map/program name the kernel takes: alphanumerics, '_' and '.', 15 bytes at most."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)[:15]


class _IdRef:
    """A map-in-map slot holding a map that is not one of this object's."""

    def __init__(self, map_id: int) -> None:
        self.name = f"id:{map_id}"


class ObjectMap:
    """A kernel map of a :class:`KernelObject`, with the runtime maps' read API.

    ``items()`` lists arrays by index and the others sorted by key bytes;
    per-CPU values are lists (one value per possible CPU), prog-array values
    program names, map-in-map values the inner :class:`ObjectMap`.
    """

    def __init__(self, kmap: KernelMap, spec: MapSpec, owner: KernelObject) -> None:
        self.kmap, self.spec, self._owner = kmap, spec, owner
        self.type = MapType(spec.type)
        self.name, self.key_size, self.value_size = spec.name, spec.key_size, spec.value_size
        # the flags the kernel keeps (it adds some: BPF_F_RDONLY_PROG on devmaps)
        self.max_entries, self.flags = kmap.max_entries, kmap.info().flags
        self.id = _object_id(kmap.fd)

    @property
    def fd(self) -> int:
        return self.kmap.fd

    @property
    def percpu(self) -> bool:
        return self.kmap.percpu

    def __repr__(self) -> str:
        return f"<ObjectMap {self.name!r} {self.type.bpftool_name} fd={self.fd} id={self.id}>"

    def _decode(self, raw: bytes) -> Any:
        if self.percpu:
            return self.kmap.split_percpu(raw)
        if self.type is MapType.PROG_ARRAY:
            pid = int.from_bytes(raw[:4], "little")
            return self._owner._prog_names.get(pid, f"id:{pid}")
        if self.type in _MAP_IN_MAP:
            mid = int.from_bytes(raw[:4], "little")
            return self._owner._map_by_id.get(mid) or _IdRef(mid)
        return raw

    def lookup(self, key: bytes) -> Any:
        """The value at ``key`` (decoded as in :meth:`items`), or None."""
        raw = self.kmap.lookup(key)
        return None if raw is None else self._decode(raw)

    def items(self) -> list[tuple[bytes, Any]]:
        pairs = [(k, self._decode(v)) for k, v in self.kmap.items()]
        return pairs if self.type in _ARRAYS else sorted(pairs, key=lambda kv: kv[0])

    def keys(self) -> list[bytes]:
        return [k for k, _ in self.items()]

    def update(self, key: bytes | None, value: bytes | str | ObjectMap,
               flags: int = BPF_ANY) -> None:
        """Like the runtime maps' update: bytes (every CPU gets them), a program name for
        a prog array, an :class:`ObjectMap` for a map-in-map."""
        if isinstance(value, str):
            raw = self._owner.programs[value].fd.to_bytes(4, "little")
        elif isinstance(value, ObjectMap):
            raw = value.fd.to_bytes(4, "little")
        else:
            raw = bytes(value)
            if self.percpu:
                raw = self.kmap.join_percpu([raw] * possible_cpus())
        self.kmap.update(key, raw, flags)

    def push(self, value: bytes, flags: int = BPF_ANY) -> None:
        self.kmap.push(bytes(value), flags)

    def values(self) -> list[bytes]:
        """Queue/stack: the elements in pop order.  The kernel has no peek-all, so this
        pops every element and pushes them back in their old order (the map's contents
        are restored; programs running meanwhile would see it change)."""
        out: list[bytes] = []
        while (v := self.kmap.lookup_and_delete(None)) is not None:
            out.append(v)
        for v in (reversed(out) if self.type is MapType.STACK else out):
            self.kmap.push(v)
        return out

    def records(self, consume: bool = True) -> list[bytes]:
        """Ring buffer: the submitted records (discarded ones skipped, up to the first
        still reserved), read as libbpf's consumer does through mmap() of the map fd
        (consumer page read-write at 0, producer page and the data twice over read-only
        after it); ``consume`` advances the consumer position past them.  A perf event
        array has none: no perf buffers are opened, so its outputs fail (ENOENT)."""
        if self.type is not MapType.RINGBUF:
            return []
        page = mmap.PAGESIZE
        size = self.max_entries
        with mmap.mmap(self.fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as cons, \
                mmap.mmap(self.fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                          offset=page) as prod:
            pos = struct.unpack_from("<Q", cons, 0)[0]
            end = struct.unpack_from("<Q", prod, 0)[0]
            out: list[bytes] = []
            while pos < end:
                at = page + (pos & (size - 1))
                hdr = struct.unpack_from("<I", prod, at)[0]
                if hdr & _RB_BUSY:
                    break
                length = hdr & ~(_RB_BUSY | _RB_DISCARD)
                if not hdr & _RB_DISCARD:
                    out.append(bytes(prod[at + _RB_HDR:at + _RB_HDR + length]))
                pos += (length + _RB_HDR + 7) // 8 * 8
            if consume:
                struct.pack_into("<Q", cons, 0, pos)
        return out


def _value_needs_btf(btf: Any, type_id: int) -> str | None:
    """The special struct (bpf_spin_lock, ...) in a value type, if any (through BTF)."""
    from ..elf import btf as btf_mod
    seen: set[int] = set()
    todo = [type_id]
    while todo:
        t = btf.resolve(todo.pop())
        if t.id in seen:
            continue
        seen.add(t.id)
        if isinstance(t, (btf_mod.Struct, btf_mod.Union)):
            if t.name in _BTF_STRUCTS:
                return t.name
            todo += [m.type for m in t.members]
        elif isinstance(t, btf_mod.Array):
            todo.append(t.type)
    return None


def _object_btf(path: str) -> Any:
    """The object's parsed .BTF, or None."""
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".BTF")
            return parse_btf(sec.data()) if sec is not None else None
    except Exception:
        return None


def _kernel_btf(path: str) -> bytes | None:
    """The object's .BTF as libbpf gives it to the kernel, its sections laid out from the
    ELF's section sizes and symbols (None without .BTF)."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            return None
        sizes = {s.name: s["sh_size"] for s in elf.iter_sections()}
        symtab = elf.get_section_by_name(".symtab")
        offsets = {} if symtab is None else {
            (elf.get_section(sym["st_shndx"]).name, sym.name): sym["st_value"]
            for sym in symtab.iter_symbols() if isinstance(sym["st_shndx"], int)
            and sym["st_shndx"] > 0}
        return with_sections(sec.data(), sizes, offsets)


def _program(spec: ObjectSpec, name: str | None) -> ProgramSpec:
    """A program by function name, or by section name when only one has it; None: the
    only program."""
    if name is None:
        if len(spec.programs) == 1:
            return spec.programs[0]
        raise ProgramNotFound(f"{spec.path} has {len(spec.programs)} programs: choose one "
                              "with --prog", [p.name for p in spec.programs])
    by_name = {p.name: p for p in spec.programs}
    if name in by_name:
        return by_name[name]
    by_section = [p for p in spec.programs if p.section == name]
    if len(by_section) == 1:
        return by_section[0]
    raise ProgramNotFound(f"{spec.path} has no program {name!r}", list(by_name))


class KernelObject:
    """An object's maps and programs in the kernel.  Use :meth:`load`; close with
    :meth:`close` or a ``with`` block."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.maps: dict[str, ObjectMap] = {}
        self.programs: dict[str, KernelProgram] = {}
        #: maps not created, with the reason (they need BTF)
        self.skipped: dict[str, str] = {}
        self._prog_names: dict[int, str] = {}
        self._map_by_id: dict[int, ObjectMap] = {}
        #: the object's BTF in the kernel and parsed, once a program needs it (_func_info)
        self._btf: tuple[KernelBtf, Btf] | None = None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: ObjectSpec, *, prog: str | None = None,
             also: Iterable[str] = ()) -> KernelObject:
        """Create the maps and load ``prog`` (None: every program), the programs named by
        ``also``, and every program the prog arrays they use name in their init slots.
        A rejected program raises :class:`KernelError` whose ``.log`` is the verifier log."""
        self = cls(spec)
        try:
            self._create_maps()
            for name in self._needed(prog, also):
                self._load_program(self.program_spec(name))
            self._fill_slots()
        except BaseException:
            self.close()
            raise
        return self

    def program_spec(self, name: str) -> ProgramSpec:
        """A program by function name, or by section name when only one has it."""
        return _program(self.spec, name)

    def map(self, name: str) -> ObjectMap | None:
        """A map by name; a global-data map also by its section name (``.data``)."""
        if name in self.maps:
            return self.maps[name]
        return next((m for m in self.maps.values()
                     if m.spec.data is not None and m.spec.section == name), None)

    def _needed(self, prog: str | None, also: Iterable[str]) -> list[str]:
        if prog is None:
            return [p.name for p in self.spec.programs]
        maps = {m.name: m for m in self.spec.maps}
        order = [self.program_spec(prog).name, *(self.program_spec(n).name for n in also)]
        i = 0
        while i < len(order):
            for r in self.program_spec(order[i]).relocs:
                m = maps.get(r.target)
                if r.kind == "map" and m is not None and m.type == MapType.PROG_ARRAY:
                    order += [t for _, t in m.init if t not in order]
            i += 1
        return list(dict.fromkeys(order))

    def _create_maps(self) -> None:
        btf = None
        for m in self.spec.maps:
            why = f"a {MapType(m.type).bpftool_name} map needs BTF" if m.type in NEEDS_BTF \
                else None
            if why is None and m.btf_value_type_id:
                btf = btf if btf is not None else _object_btf(self.spec.path)
                found = _value_needs_btf(btf, m.btf_value_type_id) if btf is not None else None
                why = f"its value holds a struct {found}, which needs BTF" if found else None
            if why:
                self.skipped[m.name] = why
                continue
            kmap = self._create(m)
            view = ObjectMap(kmap, m, self)
            self.maps[m.name] = self._map_by_id[view.id] = view
            if m.data is not None:
                kmap.update(bytes(4), m.data)
                if m.readonly:
                    kmap.freeze()

    def _create(self, m: MapSpec) -> KernelMap:
        inner: KernelMap | None = None
        entries = m.max_entries or (possible_cpus() if m.type == MapType.PERF_EVENT_ARRAY else 0)
        if m.type in _MAP_IN_MAP:
            if m.inner is None:
                raise KernelUsageError(f"map {m.name!r}: a map-in-map needs an inner template")
            inner = self._create(m.inner)
        try:
            return KernelMap.create(m.type, m.key_size, m.value_size, entries, m.flags,
                                    _kernel_name(m.name), inner.fd if inner else None,
                                    m.map_extra)
        except KernelError as exc:
            raise KernelError(exc.command, exc.errno, detail=f"map {m.name!r}") from None
        finally:
            if inner is not None:
                inner.close()

    def _load_program(self, p: ProgramSpec) -> None:
        fds, values = [], []
        for r in p.relocs:
            if r.kind not in ("map", "map_value"):
                raise KernelUsageError(f"program {p.name}: {r.kind} reference {r.target!r} "
                                       "is not supported by the kernel backend")
            if r.target not in self.maps:
                why = self.skipped.get(r.target, "no such map")
                raise KernelUsageError(f"program {p.name} uses map {r.target!r}, which was "
                                       f"not created: {why}")
            fd = self.maps[r.target].fd
            if r.kind == "map":
                fds.append((r.slot, fd))
            else:
                values.append((r.slot, fd, r.offset))
        code = patch_map_values(patch_map_fds(p.code, fds), values)
        # no log unless it fails: then KernelProgram.load loads again with one
        args = (p.prog_type, code, self.spec.license or "GPL", _kernel_name(p.name),
                p.expected_attach_type)
        try:
            kprog = KernelProgram.load(*args, log_level=0, kern_version=self.spec.kern_version)
        except KernelError as exc:
            # the func_info libbpf always gives it, which only some programs need here (a
            # tail call in a subprogram): given then, so the others load as before
            info = self._func_info(p) if "without BTF" in (exc.log or "") else None
            if info is None:
                raise
            kprog = KernelProgram.load(*args, log_level=0, kern_version=self.spec.kern_version,
                                       prog_btf_fd=info[0], func_info=info[1])
        kprog.name = p.name
        self.programs[p.name] = kprog
        self._prog_names[kprog.info().id] = p.name

    def _func_info(self, p: ProgramSpec) -> tuple[int, bytes] | None:
        """The object's BTF in the kernel (loaded once) and ``p``'s func_info records (each
        function's first instruction and FUNC type), or None without BTF for them."""
        if self._btf is None:
            try:
                raw = _kernel_btf(self.spec.path)
                if raw is None:
                    return None
                self._btf = (KernelBtf.load(raw), parse_btf(raw))
            except (OSError, BtfError, KernelError):
                return None
        kbtf, parsed = self._btf
        try:
            ids = [(slot, parsed.by_name(name, BtfKind.FUNC).id) for slot, name in p.func_names]
        except (BtfError, AttributeError):
            return None
        return kbtf.fd, b"".join(struct.pack("<II", slot, tid) for slot, tid in sorted(ids))

    def _fill_slots(self) -> None:
        for m in self.spec.maps:
            view = self.maps.get(m.name)
            if view is None:
                continue
            for slot, target in m.init:
                key = slot.to_bytes(4, "little")
                if m.type == MapType.PROG_ARRAY:
                    if target in self.programs:
                        view.update(key, target)
                elif target in self.maps:
                    view.update(key, self.maps[target])

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close every map and program fd (idempotent)."""
        for obj in [*self.programs.values(), *(m.kmap for m in self.maps.values())]:
            obj.close()
        if self._btf is not None:
            self._btf[0].close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- test run --------------------------------------------------------------------------------

@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block on CPU ``cpu`` (None: wherever), restoring the affinity after."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def _refusal(p: ProgramSpec, data_in: bytes | None, ctx_in: bytes | None, repeat: int) -> None:
    """xsim's refusals for syscall programs (the kernel's own errnos come from the run)."""
    if p.prog_type is ProgType.SYSCALL:
        if data_in is not None:
            raise TestRunRefused("syscall programs take no data_in, only ctx_in")
        if repeat != 1:
            raise TestRunRefused("syscall programs run once: the kernel refuses repeat")
        if ctx_in is not None and len(ctx_in) > SYSCALL_CTX_MAX:
            raise TestRunRefused(f"ctx_in of {len(ctx_in)} bytes is more than "
                                 f"{SYSCALL_CTX_MAX}")


def kernel_test_run(spec: ObjectSpec, prog_name: str | None, *, data_in: bytes | None = None,
                    ctx_in: bytes | None = None, repeat: int = 1, maps_in: Any = None,
                    cpu: int | None = None) -> dict[str, Any]:
    """Load ``spec`` into the kernel, apply ``maps_in``, BPF_PROG_TEST_RUN ``prog_name``
    (on CPU ``cpu`` when given, by pinning this thread), and return the dict
    :func:`xsim.runtime.testrun.report` returns, every map read back.

    ``insns`` is None (the kernel does not count) and ``printk`` is empty
    (trace_pipe is not read); maps the backend did not create (they need BTF) are
    left out.  Inputs xsim refuses, and inputs the kernel's test run refuses
    (EINVAL, ENOTSUPP, EOPNOTSUPP), raise TestRunRefused; a rejected program
    raises KernelError with the verifier log.
    """
    p = _program(spec, prog_name)
    _refusal(p, data_in, ctx_in, repeat)
    names = {q.name for q in spec.programs}     # unknown ones: MapsInError in apply_maps_in
    also = [e["value_prog"] for e in maps_in or [] if isinstance(e, dict)
            and e.get("value_prog") in names]
    with KernelObject.load(spec, prog=p.name, also=also) as obj:
        if maps_in is not None:
            apply_maps_in(obj, maps_in)
        kprog = obj.programs[p.name]
        try:
            with pinned(cpu):
                # an empty context is no context: bpf() refuses a pointer with size 0
                res = kprog.test_run(data_in=data_in, ctx_in=ctx_in or None, repeat=repeat)
        except KernelError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP, errno.E2BIG,
                             errno.ENODEV, errno.ENOMEM):
                hint = (": ctx_in must cover every ctx offset the program uses"
                        if p.prog_type is ProgType.SYSCALL else "")
                raise TestRunRefused(f"the kernel's test run refuses this input for "
                                     f"{p.prog_type.kernel_name} programs{hint}",
                                     exc.errno) from None
            raise
        out = TestRunOutput(RunResult(r0=res.retval, insns=0, duration_ns=res.duration_ns),
                            data_out=res.data_out, ctx_out=res.ctx_out)
        data = report(obj, kprog, out)  # type: ignore[arg-type]
        data["insns"] = None
        return data


def jit_image(spec: ObjectSpec, prog_name: str) -> bytes:
    """The kernel's JITed native code for ``prog_name`` (b"" when the JIT is off)."""
    with KernelObject.load(spec, prog=prog_name) as obj:
        return obj.programs[obj.program_spec(prog_name).name].jited()

