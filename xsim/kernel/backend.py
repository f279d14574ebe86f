"""Kernel objects over the raw syscall: maps, programs, BTF, map-fd patching.

Every object owns one file descriptor; close it with ``.close()`` or a ``with``
block (a forgotten object closes its fd when collected).  Keys and values are
``bytes`` of exactly the map's sizes; nothing here knows their C types.

Per-CPU maps (:data:`~xsim.kernel.syscall.PERCPU_MAP_TYPES`): from the syscall
side a value is one slot of ``round_up(value_size, 8)`` bytes per possible CPU
(:func:`possible_cpus`), CPU 0 first.  :meth:`KernelMap.lookup` returns that whole
buffer and :meth:`KernelMap.update` takes one; :meth:`KernelMap.split_percpu`
and :meth:`KernelMap.join_percpu` convert to and from a list of values.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ..errors import XsimError
from .syscall import (BPF_F_SLEEPABLE, BPF_OBJ_NAME_LEN, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE,
                      PERCPU_MAP_TYPES, BtfLoadAttr, Cmd, KernelError, MapCreateAttr,
                      MapElemAttr, MapInfoStruct, MapType, ObjInfoAttr, ProgInfo, ProgLoadAttr,
                      ProgType,
                      TestRunAttr, bpf, syscall_number)

__all__ = ["KernelUsageError", "KernelMap", "KernelProgram", "KernelBtf", "MapInfo", "ProgramInfo",
           "TestRunResult", "available", "possible_cpus", "patch_map_fds", "patch_map_values",
           "LOG_START_SIZE", "LOG_MAX_SIZE", "DATA_OUT_HEADROOM", "CTX_OUT_HEADROOM"]

#: First verifier-log buffer; grown (to the kernel's log_true_size, else x4) on ENOSPC.
LOG_START_SIZE = 64 * 1024
#: Largest log buffer tried: libbpf's BPF_LOG_BUF_SIZE (UINT32_MAX >> 8, 16 MiB).
LOG_MAX_SIZE = 16 * 1024 * 1024
#: test_run output buffers, when not sized by the caller: input size plus this much.
DATA_OUT_HEADROOM = 4096
CTX_OUT_HEADROOM = 256

# Program types the kernel runs once per test run: no repeat, duration or ctx_out.
_RUN_ONCE = frozenset({ProgType.SYSCALL, ProgType.RAW_TRACEPOINT,
                       ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.STRUCT_OPS})
_LD_IMM64 = 0x18


class KernelUsageError(XsimError, ValueError):
    """A call that cannot be made as asked (wrong key size, bad relocation slot, ...)."""


def _buffer(size: int, data: bytes | None = None) -> ctypes.Array | None:
    if data is not None:
        return ctypes.create_string_buffer(bytes(data), max(size, len(data)))
    return ctypes.create_string_buffer(size) if size else None


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _text(buf: ctypes.Array | None) -> str:
    return buf.value.decode("utf-8", "replace") if buf is not None else ""


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs (/sys/devices/system/cpu/possible, e.g. ``0-3`` or ``0,2-5``)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def available() -> tuple[bool, str]:
    """(True, kernel) if bpf() works here (a tiny array map is created and closed), else
    (False, why)."""
    if platform.system() != "Linux":
        return False, f"bpf() is Linux-only (this is {platform.system()})"
    if syscall_number() is None:
        return False, f"no known bpf() syscall number for {platform.machine()}"
    try:
        with KernelMap.create(MapType.ARRAY, 4, 4, 1):
            pass
    except KernelError as exc:
        hint = {errno.EPERM: "needs root or CAP_BPF (see /proc/sys/kernel/unprivileged_bpf_disabled)",
                errno.ENOSYS: "kernel without CONFIG_BPF_SYSCALL, or filtered by seccomp"}
        return False, f"bpf() unusable: {exc.errno_name}: {hint.get(exc.errno, exc)}"
    except OSError as exc:  # libc not loadable
        return False, f"bpf() unusable: {exc}"
    return True, f"bpf() works (Linux {platform.release()})"


class _FdObject:
    """Owns one kernel file descriptor."""

    fd: int = -1

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        """Close the fd (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _need_open(self) -> int:
        if self.fd < 0:
            raise KernelUsageError(f"{type(self).__name__} is closed")
        return self.fd


def _load_logged(cmd: Cmd, attr: ctypes.Structure, fields: tuple[str, str, str, str],
                 log_level: int) -> tuple[int, str]:
    """Run a loading command, retrying like libbpf: with a log when none was asked and
    it failed, with a bigger log (up to LOG_MAX_SIZE) on ENOSPC, and on EAGAIN."""
    f_level, f_size, f_buf, f_true = fields
    level, size, again = log_level, (LOG_START_SIZE if log_level else 0), 0
    while True:
        buf = _buffer(size)
        setattr(attr, f_level, level if buf is not None else 0)
        setattr(attr, f_size, size)
        setattr(attr, f_buf, _addr(buf))
        setattr(attr, f_true, 0)
        try:
            return bpf(cmd, attr), _text(buf)
        except KernelError as exc:
            log = _text(buf)
            if exc.errno == errno.EAGAIN and again < 5:
                again += 1
                continue
            if buf is None:  # no log was asked for: load again to learn why
                level, size = 1, LOG_START_SIZE
                continue
            want = getattr(attr, f_true)
            truncated = want > size or len(log.encode()) >= size - 1
            if exc.errno == errno.ENOSPC and truncated and size < LOG_MAX_SIZE:
                size = min(LOG_MAX_SIZE, max(want, size * 4))
                continue
            detail = "log truncated at 16 MiB" if exc.errno == errno.ENOSPC and truncated else ""
            raise KernelError(exc.command, exc.errno, log, detail) from None


class KernelMap(_FdObject):
    """A map in the kernel.  Use :meth:`create`."""

    def info(self) -> MapInfo:
        """BPF_OBJ_GET_INFO_BY_FD: what the kernel made of the map."""
        raw = MapInfoStruct()
        bpf(Cmd.OBJ_GET_INFO_BY_FD, ObjInfoAttr(bpf_fd=self._need_open(),
                                                info_len=ctypes.sizeof(raw),
                                                info=ctypes.addressof(raw)))
        return MapInfo(raw.name.decode(errors="replace"), raw.type, raw.id, raw.key_size,
                       raw.value_size, raw.max_entries, raw.map_flags, raw.map_extra)

    def __init__(self, fd: int, map_type: int, key_size: int, value_size: int,
                 max_entries: int, flags: int = 0, name: str = "") -> None:
        self.fd, self.map_type, self.key_size = fd, map_type, key_size
        self.value_size, self.max_entries, self.flags, self.name = (value_size, max_entries,
                                                                    flags, name)

    @classmethod
    def create(cls, map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "", inner_map_fd: int | None = None,
               map_extra: int = 0, btf_fd: int | None = None, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0) -> KernelMap:
        """BPF_MAP_CREATE.  ``name`` is cut to 15 bytes; ``map_extra`` is e.g. a bloom
        filter's number of hash functions."""
        attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                             max_entries=max_entries, map_flags=flags,
                             inner_map_fd=inner_map_fd or 0,
                             map_name=name.encode()[:BPF_OBJ_NAME_LEN - 1],
                             btf_fd=btf_fd or 0, btf_key_type_id=btf_key_type_id,
                             btf_value_type_id=btf_value_type_id, map_extra=map_extra)
        fd = bpf(Cmd.MAP_CREATE, attr)
        return cls(fd, map_type, key_size, value_size, max_entries, flags, name)

    @property
    def percpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def value_buffer_size(self) -> int:
        """Bytes of one value from the syscall side (all CPUs' slots for per-CPU maps)."""
        if self.percpu:
            return (self.value_size + 7) // 8 * 8 * possible_cpus()
        return self.value_size

    def split_percpu(self, buf: bytes) -> list[bytes]:
        """A per-CPU lookup buffer as one ``value_size`` value per possible CPU."""
        slot = (self.value_size + 7) // 8 * 8
        return [bytes(buf[i:i + self.value_size]) for i in range(0, len(buf), slot)]

    def join_percpu(self, values: list[bytes]) -> bytes:
        """One value per possible CPU -> the buffer :meth:`update` takes."""
        slot = (self.value_size + 7) // 8 * 8
        return b"".join(bytes(v).ljust(slot, b"\0") for v in values)

    def _key(self, key: bytes | None) -> ctypes.Array | None:
        if self.key_size == 0:
            if key:
                raise KernelUsageError(f"map {self.name!r} has no keys (key_size 0)")
            return None
        if key is None or len(key) != self.key_size:
            got = "None" if key is None else f"{len(key)} bytes"
            raise KernelUsageError(f"map {self.name!r}: key must be {self.key_size} bytes, "
                                   f"got {got}")
        return _buffer(self.key_size, key)

    def _value(self, value: bytes) -> ctypes.Array | None:
        if len(value) != self.value_buffer_size:
            what = " (all possible CPUs' slots)" if self.percpu else ""
            raise KernelUsageError(f"map {self.name!r}: value must be "
                                   f"{self.value_buffer_size} bytes{what}, got {len(value)}")
        return _buffer(len(value), value)

    def _elem(self, cmd: Cmd, key: ctypes.Array | None, value: ctypes.Array | None,
              flags: int = 0) -> None:
        bpf(cmd, MapElemAttr(map_fd=self._need_open(), key=_addr(key), value=_addr(value),
                             flags=flags))

    def _fetch(self, cmd: Cmd, key: ctypes.Array | None) -> bytes | None:
        out = _buffer(self.value_buffer_size)
        try:
            self._elem(cmd, key, out)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return bytes(out) if out is not None else b""

    def lookup(self, key: bytes | None) -> bytes | None:
        """The value at ``key``, or None (ENOENT).  Map-in-map and prog arrays give the
        inner object's id; key None on a queue/stack peeks."""
        return self._fetch(Cmd.MAP_LOOKUP_ELEM, self._key(key))

    def peek(self) -> bytes | None:
        """Queue/stack: the next value :meth:`lookup_and_delete` would pop, or None."""
        return self.lookup(None)

    def contains(self, value: bytes) -> bool:
        """Bloom filter: True if ``value`` may be present, False if it surely is not."""
        try:
            self._elem(Cmd.MAP_LOOKUP_ELEM, None, self._value(value))
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def update(self, key: bytes | None, value: bytes, flags: int = 0) -> None:
        """BPF_MAP_UPDATE_ELEM; ``flags`` BPF_ANY, BPF_NOEXIST (EEXIST) or BPF_EXIST (ENOENT).
        Map-in-map and prog-array values are the inner object's fd as a u32."""
        self._elem(Cmd.MAP_UPDATE_ELEM, self._key(key), self._value(value), flags)

    def push(self, value: bytes, flags: int = 0) -> None:
        """Queue/stack/bloom filter: add ``value`` (BPF_EXIST on a full queue drops the oldest)."""
        self.update(None, value, flags)

    def delete(self, key: bytes) -> None:
        """BPF_MAP_DELETE_ELEM; KernelError ENOENT when absent, EINVAL on arrays."""
        self._elem(Cmd.MAP_DELETE_ELEM, self._key(key), None)

    def lookup_and_delete(self, key: bytes | None = None) -> bytes | None:
        """Take a value out: pop a queue/stack (key None), or a hash entry; None if empty."""
        return self._fetch(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, self._key(key))

    def keys(self) -> Iterator[bytes]:
        """Every key, by BPF_MAP_GET_NEXT_KEY.  Deleting the current key of a hash map while
        iterating makes the kernel restart from its first key."""
        prev: ctypes.Array | None = None
        while True:
            nxt = _buffer(self.key_size)
            try:
                bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=self._need_open(), key=_addr(prev),
                                                      value=_addr(nxt)))
            except KernelError as exc:
                if exc.errno == errno.ENOENT:
                    return
                raise
            yield bytes(nxt)
            prev = nxt

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs; keys that vanish between the two calls are skipped."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: no more writes from the syscall side."""
        self._elem(Cmd.MAP_FREEZE, None, None)

    def __repr__(self) -> str:
        kind = MapType(self.map_type).name if self.map_type in MapType._value2member_map_ \
            else self.map_type
        return (f"KernelMap({kind}, fd={self.fd}, key={self.key_size}, value={self.value_size}, "
                f"max_entries={self.max_entries}, name={self.name!r})")


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN reported: r0 (u32), mean ns per run, output data and ctx."""

    __test__ = False  # not a pytest class
    retval: int
    duration_ns: int
    data_out: bytes | None
    ctx_out: bytes | None


@dataclass(frozen=True)
class MapInfo:
    """The parts of struct bpf_map_info the kernel reports for a map spec."""

    name: str
    map_type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    map_extra: int


@dataclass(frozen=True)
class ProgramInfo:
    """The parts of struct bpf_prog_info most callers want."""

    name: str
    prog_type: int
    id: int
    tag: str
    jited_prog_len: int
    xlated_prog_len: int
    verified_insns: int
    nr_map_ids: int
    gpl_compatible: bool


class KernelProgram(_FdObject):
    """A verified program in the kernel.  Use :meth:`load`; ``.log`` is the verifier log."""

    def __init__(self, fd: int, prog_type: int, name: str = "", log: str = "") -> None:
        self.fd, self.prog_type, self.name, self.log = fd, prog_type, name, log

    @classmethod
    def load(cls, prog_type: int, insns: bytes, license: str = "GPL", name: str = "",
             expected_attach_type: int = 0, log_level: int = 1, kern_version: int = 0,
             prog_btf_fd: int | None = None, func_info: bytes | None = None,
             func_info_rec_size: int = 8, line_info: bytes | None = None,
             line_info_rec_size: int = 16, prog_flags: int = 0, attach_btf_id: int = 0,
             attach_prog_fd: int = 0) -> KernelProgram:
        """BPF_PROG_LOAD.  A rejection raises KernelError whose ``.log`` is the whole
        verifier log.  SYSCALL programs get BPF_F_SLEEPABLE (the kernel requires it)."""
        if len(insns) % 8 or not insns:
            raise KernelUsageError(f"program is {len(insns)} bytes, not a non-zero multiple of 8")
        if prog_type == ProgType.SYSCALL:
            prog_flags |= BPF_F_SLEEPABLE
        code = _buffer(len(insns), insns)
        lic = ctypes.create_string_buffer(license.encode())
        finfo = _buffer(0, func_info) if func_info else None
        linfo = _buffer(0, line_info) if line_info else None
        attr = ProgLoadAttr(
            prog_type=prog_type, insn_cnt=len(insns) // 8, insns=_addr(code), license=_addr(lic),
            kern_version=kern_version, prog_flags=prog_flags,
            prog_name=name.encode()[:BPF_OBJ_NAME_LEN - 1],
            expected_attach_type=expected_attach_type, prog_btf_fd=prog_btf_fd or 0,
            func_info_rec_size=func_info_rec_size if finfo else 0, func_info=_addr(finfo),
            func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
            line_info_rec_size=line_info_rec_size if linfo else 0, line_info=_addr(linfo),
            line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
            attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd)
        fd, log = _load_logged(Cmd.PROG_LOAD, attr,
                               ("log_level", "log_size", "log_buf", "log_true_size"), log_level)
        return cls(fd, prog_type, name, log)

    def test_run(self, data_in: bytes | None = None, ctx_in: bytes | None = None,
                 data_size_out: int | None = None, ctx_size_out: int | None = None,
                 repeat: int = 1, flags: int = 0, cpu: int = 0,
                 batch_size: int = 0) -> TestRunResult:
        """BPF_PROG_TEST_RUN.

        Output buffers not sized by the caller are the input's size plus
        DATA_OUT_HEADROOM / CTX_OUT_HEADROOM; if the kernel still says ENOSPC (it
        reports the size it needed) the program is run once more with that size.
        An explicit size that is too small raises KernelError ENOSPC.  SYSCALL,
        raw-tracepoint and tracing programs run once (repeat 1 is sent as 0) and
        take no ctx_out; a SYSCALL program's ctx is written back into the ctx_in
        buffer, which is returned as ``ctx_out``.
        """
        once = self.prog_type in _RUN_ONCE
        if once and repeat == 1:
            repeat = 0
        dsize = data_size_out if data_size_out is not None else (
            len(data_in) + DATA_OUT_HEADROOM if data_in is not None and not once else 0)
        csize = ctx_size_out if ctx_size_out is not None else (
            len(ctx_in) + CTX_OUT_HEADROOM if ctx_in is not None and not once else 0)
        for attempt in (0, 1):
            din = _buffer(0, data_in) if data_in is not None else None
            cin = _buffer(0, ctx_in) if ctx_in is not None else None
            dout, cout = _buffer(dsize), _buffer(csize)
            attr = TestRunAttr(
                prog_fd=self._need_open(), data_size_in=len(data_in or b""), data_in=_addr(din),
                data_size_out=dsize, data_out=_addr(dout), repeat=repeat,
                ctx_size_in=len(ctx_in or b""), ctx_in=_addr(cin), ctx_size_out=csize,
                ctx_out=_addr(cout), flags=flags, cpu=cpu, batch_size=batch_size)
            try:
                bpf(Cmd.PROG_TEST_RUN, attr)
            except KernelError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                need_d = attr.data_size_out if attr.data_size_out > dsize else 0
                need_c = attr.ctx_size_out if attr.ctx_size_out > csize else 0
                fixed = (need_d and data_size_out is not None) or (
                    need_c and ctx_size_out is not None)
                if attempt == 0 and (need_d or need_c) and not fixed:
                    dsize, csize = max(dsize, need_d), max(csize, need_c)
                    continue
                detail = ", ".join(f"{what} >= {n}" for what, n in
                                   (("data_size_out", need_d), ("ctx_size_out", need_c)) if n)
                raise KernelError(exc.command, exc.errno,
                                  detail=f"output buffer too small (need {detail})") from None
            data_out = bytes(dout[:attr.data_size_out]) if dout is not None else None
            ctx_out = bytes(cout[:attr.ctx_size_out]) if cout is not None else None
            if self.prog_type == ProgType.SYSCALL and cin is not None:
                ctx_out = bytes(cin)
            return TestRunResult(attr.retval, attr.duration, data_out, ctx_out)
        raise AssertionError("unreachable")

    def _raw_info(self, info: ProgInfo | None = None) -> ProgInfo:
        info = info if info is not None else ProgInfo()
        bpf(Cmd.OBJ_GET_INFO_BY_FD, ObjInfoAttr(bpf_fd=self._need_open(),
                                                info_len=ctypes.sizeof(info),
                                                info=ctypes.addressof(info)))
        return info

    def info(self) -> ProgramInfo:
        """BPF_OBJ_GET_INFO_BY_FD: name, type, id, tag, image sizes, ..."""
        raw = self._raw_info()
        kind = raw.type
        return ProgramInfo(name=raw.name.decode(errors="replace"),
                           prog_type=ProgType(kind) if kind in ProgType._value2member_map_ else kind,
                           id=raw.id, tag=bytes(raw.tag).hex(), jited_prog_len=raw.jited_prog_len,
                           xlated_prog_len=raw.xlated_prog_len, verified_insns=raw.verified_insns,
                           nr_map_ids=raw.nr_map_ids, gpl_compatible=bool(raw.gpl_compatible))

    def _image(self, length: str, pointer: str) -> bytes:
        size = getattr(self._raw_info(), length)
        if not size:
            return b""
        buf = _buffer(size)
        info = ProgInfo(**{length: size, pointer: _addr(buf)})
        self._raw_info(info)
        if not getattr(info, pointer):
            raise KernelError(Cmd.OBJ_GET_INFO_BY_FD.name, errno.EPERM,
                              detail="the kernel refuses raw dumps here (kptr_restrict, "
                              "CAP_SYSLOG)")
        return bytes(buf[:min(size, getattr(info, length))])

    def xlated(self) -> bytes:
        """The program as the verifier rewrote it (eBPF bytecode; map fds become addresses)."""
        return self._image("xlated_prog_len", "xlated_prog_insns")

    def jited(self) -> bytes:
        """The native JIT image (all subprograms back to back); b"" when the JIT is off."""
        return self._image("jited_prog_len", "jited_prog_insns")

    def __repr__(self) -> str:
        kind = ProgType(self.prog_type).name if self.prog_type in ProgType._value2member_map_ \
            else self.prog_type
        return f"KernelProgram({kind}, fd={self.fd}, name={self.name!r})"


class KernelBtf(_FdObject):
    """BTF loaded into the kernel (for maps' btf_fd and programs' prog_btf_fd)."""

    def __init__(self, fd: int, log: str = "") -> None:
        self.fd, self.log = fd, log

    @classmethod
    def load(cls, raw: bytes, log_level: int = 1) -> KernelBtf:
        """BPF_BTF_LOAD of a raw .BTF blob; a rejection carries the kernel's BTF log."""
        blob = _buffer(0, raw)
        attr = BtfLoadAttr(btf=_addr(blob), btf_size=len(raw))
        fd, log = _load_logged(Cmd.BTF_LOAD, attr, ("btf_log_level", "btf_log_size",
                                                    "btf_log_buf", "btf_log_true_size"),
                               log_level)
        return cls(fd, log)


def _set(code: bytearray, slot: int, src: int, imm: int, next_imm: int) -> None:
    """Set an LD_IMM64's src_reg, imm and second-slot imm, after checking it is one."""
    if not 0 <= slot < len(code) // 8 - 1:
        raise KernelUsageError(f"slot {slot}: no LD_IMM64 fits there "
                               f"(program has {len(code) // 8} slots)")
    if code[slot * 8] != _LD_IMM64:
        raise KernelUsageError(f"slot {slot}: opcode {code[slot * 8]:#04x} is not LD_IMM64 (0x18)")
    base = slot * 8
    code[base + 1] = (code[base + 1] & 0x0F) | (src << 4)
    struct.pack_into("<i", code, base + 4, imm)
    struct.pack_into("<i", code, base + 12, next_imm)


def patch_map_fds(insns: bytes, relocs: list[tuple[int, int]]) -> bytes:
    """Point LD_IMM64s at maps: for each (slot, map fd), src_reg = BPF_PSEUDO_MAP_FD, imm = fd."""
    code = bytearray(insns)
    for slot, fd in relocs:
        _set(code, slot, BPF_PSEUDO_MAP_FD, fd, 0)
    return bytes(code)


def patch_map_values(insns: bytes, relocs: list[tuple[int, int, int]]) -> bytes:
    """For each (slot, map fd, offset): src_reg = BPF_PSEUDO_MAP_VALUE, imm = fd, and the
    second slot's imm = offset into the map's value (global data)."""
    code = bytearray(insns)
    for slot, fd, offset in relocs:
        _set(code, slot, BPF_PSEUDO_MAP_VALUE, fd, offset)
    return bytes(code)
