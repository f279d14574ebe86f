"""Array and per-CPU array maps (kernel/bpf/arraymap.c), and global data.

Every index exists from creation (zero-filled); values are 8-byte aligned
slots, so a lookup is ``vaddr + index * elem`` as in the kernel's inlined
lookup.  Global data (``.data``/``.bss``/``.rodata``) is an array with one
entry holding the section; read-only data gets a region the program may not
write and refuses Python updates with EPERM, as a frozen map does.
"""
from __future__ import annotations

from typing import Any

from ...elf.kinds import MapType
from .base import (BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_INNER_MAP, BPF_F_LOCK, BPF_F_MMAPABLE,
                   BPF_F_NUMA_NODE, BPF_F_PRESERVE_ELEMS, BPF_F_RDONLY_PROG, BPF_NOEXIST,
                   E2BIG, EEXIST, EINVAL, KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, Map, SlotValues,
                   round8)

ARRAY_CREATE_FLAG_MASK = (BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK |
                          BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP)


def array_checks(m: Map) -> None:
    """array_map_alloc_check: also used by the fd arrays (prog, perf event, map-in-map)."""
    m._require(m.max_entries > 0, "max_entries must be > 0")
    m._require(m.key_size == 4, f"key_size must be 4 (got {m.key_size})")
    m._require(m.value_size > 0, "value_size must be > 0")
    m._require(m.type == MapType.ARRAY or not m.flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP),
               "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for array maps only")
    m._require(m.type == MapType.PERF_EVENT_ARRAY or not m.flags & BPF_F_PRESERVE_ELEMS,
               "BPF_F_PRESERVE_ELEMS is for perf event arrays only")
    m._require(m.value_size <= KMALLOC_MAX_SIZE, f"value_size {m.value_size} is too big", E2BIG)
    m._require(not m.percpu or round8(m.value_size) <= PCPU_MIN_UNIT_SIZE,
               f"per-CPU value_size {m.value_size} exceeds {PCPU_MIN_UNIT_SIZE}", E2BIG)


class ArrayMap(SlotValues, Map):
    """BPF_MAP_TYPE_ARRAY / PERCPU_ARRAY, and global data when ``spec.data`` is set."""

    FLAG_MASK = ARRAY_CREATE_FLAG_MASK

    def _validate(self) -> None:
        super()._validate()
        array_checks(self)

    def _allocate(self) -> None:
        writable = not (self.flags & BPF_F_RDONLY_PROG or self.spec.readonly)
        self._init_slots(self.max_entries, self.value_size, writable)
        # lookups from the program are served inside the compiled loop
        self.space.describe_array(self.region, self.stride, self.max_entries,
                                  self.elem if self.percpu else 0)
        if self.spec.data is not None:
            self._mem_write(0, bytes(self.spec.data[:self.value_size]))

    @property
    def is_global_data(self) -> bool:
        return self.spec.data is not None

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def _check_update(self, index: int, flags: int) -> int:
        """array_map_update_elem / bpf_percpu_array_update: 0 or -errno."""
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return -EINVAL
        if index >= self.max_entries:
            return -E2BIG
        if flags & BPF_NOEXIST:
            return -EEXIST
        if flags & BPF_F_LOCK:          # no map value here holds a bpf_spin_lock
            return -EINVAL
        return 0

    # -- Python API ---------------------------------------------------------------------
    def lookup(self, key: Any, cpu: int | None = None) -> Any:
        """The value (per-CPU: a list, or the value of ``cpu``), None past the end."""
        self._can_read("lookup")
        index = self._index(self._key(key, "lookup"))
        if index >= self.max_entries:
            return None
        if cpu is not None and not 0 <= cpu < self.ncpus:
            raise self._fail("lookup", E2BIG, f"cpu {cpu} of {self.ncpus}")
        return self._get(index, cpu)

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        index = self._index(self._key(key, "update"))
        values = self._values_in(value, "update")
        self._raise_if("update", self._check_update(index, flags))
        self._put(index, values, None, False)

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        self._key(key, "delete")
        raise self._fail("delete", EINVAL, "array elements cannot be deleted")

    def keys(self) -> list[bytes]:
        self._can_read("keys")
        return [i.to_bytes(4, "little") for i in range(self.max_entries)]

    def values(self) -> list[Any]:
        return [self._get(i) for i in range(self.max_entries)]

    def items(self) -> list[tuple[bytes, Any]]:
        """(key, value) for every index (per-CPU: a list of values), from one read of the
        region: a cross-check dumps every map after each packet, and a lookup per element
        made that most of its time (katran's 1,024-entry ring, 660,000 lookups a capture)."""
        self._can_read("keys")
        data = self._mem_read(0, self.max_entries * self.stride)
        size, stride, elem = self.value_size, self.stride, self.elem
        if self.percpu:
            values: list[Any] = [[data[at:at + size] for at in range(s, s + stride, elem)]
                                 for s in range(0, len(data), stride)]
        else:
            values = [data[s:s + size] for s in range(0, len(data), stride)]
        return [(i.to_bytes(4, "little"), v) for i, v in enumerate(values)]

    # -- program side ---------------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        index = self._index(key)
        return self._ptr(index, cpu) if index < self.max_entries else 0

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        return self.prog_lookup(key, cpu) if self.percpu else 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        index = self._index(key)
        err = self._check_update(index, flags)
        if err == 0:
            self._put(index, [value], cpu, False)
        return err

    def prog_delete(self, key: bytes) -> int:
        return -EINVAL
