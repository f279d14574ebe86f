"""What every map shares: the kernel's flag values and errnos, MapError, the Map base.

A map keeps its values in regions of an :class:`~xsim.runtime.memory.AddressSpace`
(``map:<name>``), registered with the map as their owner, so a program's map
pointer (the region's ``vaddr``) leads back to the map and a lookup hands the
program a real pointer into the value bytes.  Host bytes may move when any
region grows, so nothing here keeps a numpy view: every access re-reads
``space.mem`` and ``region.host``.

Each operation exists twice: the Python API (bpftool/libbpf-like; raises
:class:`MapError` with the errno the ``bpf()`` syscall would give) and the
program side (``prog_*``: returns a pointer, 0, or ``-errno`` as the helper
does).  Both run the same checks, so they agree with each other and with the
kernel.
"""
from __future__ import annotations

import abc
import os
from typing import Any, ClassVar, Sequence

import numpy as np

from ...elf.kinds import PERCPU_MAPS, MapType
from ...elf.spec import MapSpec
from ...errors import XsimError
from ..memory import MAX_REGION_SIZE, AddressSpace, Region

# -- update flags (BPF_MAP_UPDATE_ELEM) -----------------------------------------------
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# -- map_flags (BPF_MAP_CREATE) ----------------------------------------------------------
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_ACCESS_MASK = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG

#: The kernel's limits that size checks at creation use.
KMALLOC_MAX_SIZE = 1 << 22          # x86-64 with SLUB: 4 MiB
PCPU_MIN_UNIT_SIZE = 32 << 10
PAGE_SIZE = 4096
HTAB_ELEM_HEADER = 48               # sizeof(struct htab_elem) before the key

# -- errnos (positive, as MapError carries them) ----------------------------------------
EPERM, ENOENT, E2BIG, EBADF, EAGAIN, ENOMEM = 1, 2, 7, 9, 11, 12
EFAULT, EBUSY, EEXIST, ENODEV, EINVAL, ENOSPC = 14, 16, 17, 19, 22, 28
EOVERFLOW, EOPNOTSUPP, ENOTSUPP = 75, 95, 524
ERRNO_NAMES = {EPERM: "EPERM", ENOENT: "ENOENT", E2BIG: "E2BIG", EBADF: "EBADF",
               EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EFAULT: "EFAULT", EBUSY: "EBUSY",
               EEXIST: "EEXIST", ENODEV: "ENODEV", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
               EOVERFLOW: "EOVERFLOW", EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"}


def errno_name(err: int) -> str:
    return ERRNO_NAMES.get(err, f"errno {err}")


def strerror(err: int) -> str:
    # ENOTSUPP (524) is kernel-internal; the C library has no text for it.
    return "Operation is not supported" if err == ENOTSUPP else os.strerror(err)


class MapError(XsimError):
    """A map operation from Python that the kernel would refuse: the map, the
    operation, and the errno (positive) with its name, e.g. ``E2BIG``."""

    def __init__(self, map_name: str, operation: str, errno: int, detail: str = "") -> None:
        self.map = self.map_name = map_name
        self.operation = operation
        self.errno = errno
        self.errno_name = errno_name(errno)
        self.detail = detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"map {map_name!r}: {operation}: {self.errno_name} "
                         f"({strerror(errno)}){extra}")


def round8(n: int) -> int:
    return (n + 7) & ~7


def pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class Map(abc.ABC):
    """One map instance in one address space; subclasses are the map families.

    Subclasses set ``FLAG_MASK`` (the map_flags the kernel accepts at creation),
    extend :meth:`_validate` with their size checks and implement
    :meth:`_allocate` and the operations they support; the defaults answer
    like a kernel map without that operation.
    """

    FLAG_MASK: ClassVar[int] = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK
    #: errno of lookup/update/delete/keys for map types that have no such operation
    NO_OP_ERRNO: ClassVar[int] = EINVAL

    def __init__(self, spec: MapSpec, space: AddressSpace, ncpus: int) -> None:
        if ncpus < 1:
            raise XsimError(f"map {spec.name!r}: ncpus must be at least 1 (got {ncpus})")
        self.spec = spec
        self.space = space
        self.ncpus = ncpus
        self.name = spec.name
        self.type = MapType(spec.type)
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = spec.max_entries
        self.flags = spec.flags
        self.map_extra = spec.map_extra
        #: frozen maps refuse writes from the syscall side (EPERM), as after BPF_MAP_FREEZE
        self.frozen = bool(spec.readonly)
        self.regions: list[Region] = []
        self._validate()
        self._allocate()

    # -- creation ---------------------------------------------------------------------
    def _validate(self) -> None:
        """The checks of the kernel's ``map_alloc_check``: EINVAL (or E2BIG) naming the map."""
        bad = self.flags & ~self.FLAG_MASK
        self._require(not bad, f"map_flags {self.flags:#x} has bits {bad:#x} that a "
                      f"{self.type.bpftool_name} map does not take")
        both = BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG
        self._require(self.flags & both != both,
                      "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together")
        self._require(self.map_extra == 0 or self.type in (MapType.BLOOM_FILTER, MapType.ARENA),
                      f"map_extra {self.map_extra} is only for bloom filters")

    def _require(self, ok: bool, detail: str, err: int = EINVAL) -> None:
        if not ok:
            raise MapError(self.name, "create", err, detail)

    @abc.abstractmethod
    def _allocate(self) -> None:
        """Make the map's storage regions (each map type lays out its own)."""

    def _add_region(self, size: int, writable: bool, suffix: str = "", *,
                    readable: bool = True) -> Region:
        """A region for this map's storage, owned by the map; ``suffix`` for internal ones
        (``readable=False, writable=False``: no access for programs or helpers)."""
        name = f"map:{self.name}{suffix}"
        if size > MAX_REGION_SIZE:
            raise MapError(self.name, "create", ENOMEM,
                           f"needs {size} bytes, more than a region holds ({MAX_REGION_SIZE})")
        try:
            region = self.space.add(name, size, writable, owner=self, readable=readable)
        except XsimError as exc:
            raise MapError(self.name, "create", EEXIST, str(exc)) from None
        self.regions.append(region)
        return region

    # -- identity ---------------------------------------------------------------------
    @property
    def region(self) -> Region:
        """The values region (``map:<name>``); its vaddr is the program's map pointer."""
        return self.regions[0]

    @property
    def vaddr(self) -> int:
        return self.regions[0].vaddr

    address = vaddr         # the name the loader uses for an LD_IMM64 map reference

    def value_address(self, index: int = 0) -> int:
        """Where the value of array index ``index`` (CPU 0) lives: what an LD_IMM64
        ``map_value`` reference into global data points at, before its offset."""
        return self.vaddr

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_MAPS

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} {self.type.bpftool_name} key {self.key_size}"
                f" value {self.value_size} max_entries {self.max_entries} flags {self.flags:#x}>")

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: the syscall side may no longer write (EPERM); programs still may."""
        self.frozen = True

    # -- host memory (re-fetched on every call: regions may move) ---------------------------
    def _mem_read(self, off: int, size: int, region: int = 0) -> bytes:
        h = self.regions[region].host + off
        return self.space.mem[h:h + size].tobytes()

    def _mem_write(self, off: int, data: bytes, region: int = 0) -> None:
        h = self.regions[region].host + off
        self.space.mem[h:h + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def _mem_zero(self, off: int, size: int, region: int = 0) -> None:
        h = self.regions[region].host + off
        self.space.mem[h:h + size] = 0

    # -- Python-side argument handling -------------------------------------------------------
    def _fail(self, op: str, err: int, detail: str = "") -> MapError:
        return MapError(self.name, op, err, detail)

    def _raise_if(self, op: str, ret: int) -> None:
        if ret < 0:
            raise self._fail(op, -ret)

    def _key(self, key: Any, op: str) -> bytes:
        """Key bytes; an int is taken as a little-endian integer of key_size bytes."""
        if isinstance(key, int) and not isinstance(key, bool):
            if self.key_size not in (1, 2, 4, 8) or not 0 <= key < 1 << (8 * self.key_size):
                raise self._fail(op, EINVAL, f"int key {key} does not fit {self.key_size} bytes")
            return key.to_bytes(self.key_size, "little")
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise self._fail(op, EINVAL, f"key must be bytes, not {type(key).__name__}")
        key = bytes(key)
        if len(key) != self.key_size:
            raise self._fail(op, EINVAL, f"key is {len(key)} bytes; the map's key_size is "
                             f"{self.key_size}")
        return key

    def _value(self, value: Any, op: str, size: int | None = None) -> bytes:
        size = self.value_size if size is None else size
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise self._fail(op, EINVAL, f"value must be bytes, not {type(value).__name__}")
        value = bytes(value)
        if len(value) != size:
            raise self._fail(op, EINVAL, f"value is {len(value)} bytes; the map's value_size is "
                             f"{size}")
        return value

    def _can_write(self, op: str) -> None:
        """The syscall's permission check: BPF_F_RDONLY or a frozen map -> EPERM."""
        if self.frozen or self.flags & BPF_F_RDONLY:
            why = "the map is frozen (read-only data)" if self.frozen else "BPF_F_RDONLY"
            raise self._fail(op, EPERM, why)

    def _no_lock(self, flags: int, op: str) -> None:
        """The syscall refuses BPF_F_LOCK for values without a bpf_spin_lock (all of ours)."""
        if flags & BPF_F_LOCK:
            raise self._fail(op, EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the value")

    def _can_read(self, op: str) -> None:
        if self.flags & BPF_F_WRONLY:
            raise self._fail(op, EPERM, "BPF_F_WRONLY")

    # -- Python API: defaults for map types without the operation ----------------------------
    def lookup(self, key: Any) -> Any:
        self._can_read("lookup")
        raise self._fail("lookup", self.NO_OP_ERRNO)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("update")
        raise self._fail("update", self.NO_OP_ERRNO)

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        raise self._fail("delete", self.NO_OP_ERRNO)

    def keys(self) -> list[bytes]:
        self._can_read("keys")
        raise self._fail("keys", self.NO_OP_ERRNO)

    def items(self) -> list[tuple[bytes, Any]]:
        """(key, value) pairs: arrays in index order, hash-like maps sorted by key bytes."""
        out = []
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out.append((k, v))
        return out

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        raise self._fail("push", EINVAL, f"a {self.type.bpftool_name} map has no push")

    def pop(self) -> bytes:
        raise self._fail("pop", EINVAL, f"a {self.type.bpftool_name} map has no pop")

    def peek(self) -> bytes:
        raise self._fail("peek", EINVAL, f"a {self.type.bpftool_name} map has no peek")

    def __len__(self) -> int:
        return len(self.keys())

    def dump(self) -> str:
        """The map's contents as ``bpftool map dump`` prints them (hex bytes)."""
        lines: list[str] = []
        pairs = self.items()
        for k, v in pairs:
            key = " ".join(f"{b:02x}" for b in k)
            if isinstance(v, list):
                lines.append("key:")
                lines.append(key)
                for cpu, val in enumerate(v):
                    lines.append(f"value (CPU {cpu:02d}): " + " ".join(f"{b:02x}" for b in val))
            else:
                shown = v if isinstance(v, (bytes, bytearray)) else str(v).encode()
                lines.append(f"key: {key}  value: " + " ".join(f"{b:02x}" for b in shown))
        lines.append(f"Found {len(pairs)} element" + ("" if len(pairs) == 1 else "s"))
        return "\n".join(lines)

    # -- program side: pointers or 0, 0 or -errno -----------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        return 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return -self.NO_OP_ERRNO

    def prog_delete(self, key: bytes) -> int:
        return -self.NO_OP_ERRNO

    def value_pointer(self, key: bytes, cpu: int) -> int:
        """The value's address for an iteration, which counts no use (LRU maps)."""
        return self.prog_lookup(key, cpu)

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        return 0

    def prog_push(self, value: bytes, flags: int) -> int:
        return -EINVAL

    def prog_pop(self) -> tuple[int, bytes]:
        return -EINVAL, b""

    def prog_peek(self, value: bytes) -> tuple[int, bytes]:
        """(0 or -errno, the value for queue/stack); a bloom filter tests ``value``."""
        return -EINVAL, b""


class SlotValues:
    """Values in fixed slots of the values region, one per CPU for per-CPU maps.

    Each value is rounded up to 8 bytes as in the kernel (``elem``); slot ``s``
    of CPU ``c`` is at ``s * stride + c * elem``.  Used by arrays, hashes and
    the LPM trie.
    """

    elem: int
    stride: int
    nvals: int

    def _init_slots(self: Any, slots: int, value_size: int, writable: bool) -> None:
        self.elem = round8(value_size)
        self.nvals = self.ncpus if self.percpu else 1
        self.stride = self.elem * self.nvals
        self._add_region(slots * self.stride, writable)

    def _off(self: Any, slot: int, cpu: int = 0) -> int:
        return slot * self.stride + (cpu * self.elem if self.percpu else 0)

    def _ptr(self: Any, slot: int, cpu: int = 0) -> int:
        return self.vaddr + self._off(slot, cpu)

    def value_address(self: Any, index: int = 0) -> int:
        return self._ptr(index)

    def _get(self: Any, slot: int, cpu: int | None = None) -> bytes | list[bytes]:
        """The Python view: bytes, or for per-CPU maps a list (or the value of ``cpu``)."""
        if not self.percpu:
            return self._mem_read(self._off(slot), self.value_size)
        if cpu is not None:
            return self._mem_read(self._off(slot, cpu), self.value_size)
        return [self._mem_read(self._off(slot, c), self.value_size) for c in range(self.ncpus)]

    def _values_in(self: Any, value: Any, op: str) -> list[bytes]:
        """Python update input: bytes (every CPU gets it) or, per-CPU, one value per CPU."""
        if self.percpu and isinstance(value, (list, tuple)):
            if len(value) != self.ncpus:
                raise self._fail(op, EINVAL, f"{len(value)} values for {self.ncpus} CPUs")
            return [self._value(v, op) for v in value]
        return [self._value(value, op)] * self.nvals

    def _put(self: Any, slot: int, values: Sequence[bytes], cpu: int | None, new: bool) -> None:
        """Write a value: to every CPU (``cpu`` None), or to ``cpu`` only, zeroing the
        other CPUs of a new element (the kernel's pcpu_init_value)."""
        if cpu is None or not self.percpu:
            for c, v in enumerate(values):
                self._mem_write(self._off(slot, c), v)
            return
        if new:
            self._mem_zero(self._off(slot), self.stride)
        self._mem_write(self._off(slot, cpu), values[0])
