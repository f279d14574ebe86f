"""Hash maps (kernel/bpf/hashtab.c): hash, percpu_hash, lru_hash, lru_percpu_hash.

Elements live in ``max_entries`` preallocated value slots (the kernel's
prealloc layout; BPF_F_NO_PREALLOC only changes when the kernel allocates,
not what it answers), found through a :class:`~._table.SlotTable` kept in
an internal region ``map:<name>:index`` that programs cannot access.  The
values region's row describes the map (``AddressSpace.describe_hash``), so
the interpreter serves ``bpf_map_lookup_elem`` on hash and percpu_hash maps
itself; LRU maps (a lookup updates recency) and the map-in-map go to Python.

LRU maps evict when full.  The kernel's LRU is approximate (per-CPU free
lists, an active/inactive list pair and a reference bit set by program
lookups); ours is an exact recency list, so the evicted element is always
the least recently used one, where the kernel may pick another of the old
ones.  Uses are program-side lookups and updates from either side; a lookup
from Python does not count, as the kernel's syscall lookup does not set the
reference bit.  Updating an existing key never evicts here (the kernel may
evict another element first, because it takes a free node before looking).
"""
from __future__ import annotations

from typing import Any, Sequence

from ...elf.kinds import MapType
from ._table import LruList, SlotTable, table_layout
from .base import (BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_LOCK, BPF_F_NO_COMMON_LRU,
                   BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_F_ZERO_SEED, BPF_NOEXIST, E2BIG,
                   EEXIST, EINVAL, ENOENT, ENOTSUPP, HTAB_ELEM_HEADER, KMALLOC_MAX_SIZE,
                   PCPU_MIN_UNIT_SIZE, Map, SlotValues, round8)

HTAB_CREATE_FLAG_MASK = (BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE |
                         BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED)
LRU_TYPES = (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)
#: the types whose program lookups the interpreter serves (no side effect, a slot pointer)
FAST_LOOKUP_TYPES = (MapType.HASH, MapType.PERCPU_HASH)


class HashMap(SlotValues, Map):
    """BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH."""

    FLAG_MASK = HTAB_CREATE_FLAG_MASK
    #: bytes kept per value slot (hash of maps keeps an 8-byte pointer for a 4-byte fd)
    stored_value_size: int

    @property
    def lru(self) -> bool:
        return self.type in LRU_TYPES

    def _validate(self) -> None:
        super()._validate()
        self._require(self.lru or not self.flags & BPF_F_NO_COMMON_LRU,
                      "BPF_F_NO_COMMON_LRU is for LRU maps only")
        self._require(not (self.lru and self.flags & BPF_F_NO_PREALLOC),
                      "LRU maps are always preallocated (BPF_F_NO_PREALLOC)", ENOTSUPP)
        self._require(self.max_entries > 0, "max_entries must be > 0")
        self._require(self.key_size > 0, "key_size must be > 0")
        self._require(self.value_size > 0, "value_size must be > 0")
        self._require(self.key_size + self.value_size < KMALLOC_MAX_SIZE - HTAB_ELEM_HEADER,
                      "key_size + value_size is too big", E2BIG)
        self._require(not self.percpu or round8(self.value_size) <= PCPU_MIN_UNIT_SIZE,
                      f"per-CPU value_size {self.value_size} exceeds {PCPU_MIN_UNIT_SIZE}", E2BIG)
        self._require(self.max_entries <= 1 << 31, "max_entries is too big", E2BIG)

    def _allocate(self) -> None:
        if self.lru and self.flags & BPF_F_NO_COMMON_LRU:
            # the kernel gives each CPU's list the same share, at least one element
            n = self.ncpus
            rounded = -(-self.max_entries // n) * n
            self.max_entries = rounded if rounded <= 1 << 32 else self.max_entries // n * n
        self.stored_value_size = getattr(self, "stored_value_size", self.value_size)
        self._init_slots(self.max_entries, self.stored_value_size, True)
        index = self._add_region(table_layout(self.key_size, self.max_entries)[-1], False,
                                 ":index", readable=False)
        self.table = SlotTable(self.key_size, self.max_entries, self.space, index)
        self.lru_list = LruList(self.max_entries) if self.lru else None
        if self.type in FAST_LOOKUP_TYPES and type(self).prog_lookup is HashMap.prog_lookup:
            self.space.describe_hash(self.region, self.stride, self.elem if self.percpu else 0,
                                     index, self.key_size, self.table.mask, self.max_entries)

    # -- the operations, shared by both sides ----------------------------------------------
    def _find(self, key: bytes, use: bool) -> int:
        slot = self.table.find(key)
        if slot >= 0 and use and self.lru_list is not None:
            self.lru_list.touch(slot)
        return slot

    def _upd(self, key: bytes, values: Sequence[bytes], flags: int, cpu: int | None) -> int:
        """htab_*_update_elem: 0 or -errno; ``cpu`` None is the syscall (all CPUs)."""
        if flags & ~BPF_F_LOCK > BPF_EXIST or (self.lru or self.percpu) and flags > BPF_EXIST:
            return -EINVAL
        if flags & BPF_F_LOCK:
            return -EINVAL      # no bpf_spin_lock in our values
        slot = self.table.find(key)
        if slot >= 0 and flags == BPF_NOEXIST:
            return -EEXIST
        if slot < 0 and flags == BPF_EXIST:
            return -ENOENT
        new = slot < 0
        if new:
            if self.table.full:
                if self.lru_list is None:
                    return -E2BIG
                self._remove_slot(self.lru_list.tail)
            slot = self.table.insert(key)
            if self.lru_list is not None:
                self.lru_list.push_front(slot)
        elif self.lru_list is not None:
            self.lru_list.touch(slot)
        self._put(slot, values, cpu, new)
        return 0

    def _remove_slot(self, slot: int) -> None:
        self.table.remove(self.table.key_of(slot))
        if self.lru_list is not None:
            self.lru_list.unlink(slot)
        self._mem_zero(self._off(slot), self.stride)

    def _del(self, key: bytes) -> int:
        slot = self.table.find(key)
        if slot < 0:
            return -ENOENT
        self._remove_slot(slot)
        return 0

    # -- Python API ---------------------------------------------------------------------
    def lookup(self, key: Any, cpu: int | None = None) -> Any:
        """The value (per-CPU: a list, or the value of ``cpu``), or None if absent."""
        self._can_read("lookup")
        slot = self._find(self._key(key, "lookup"), use=False)
        if slot < 0:
            return None
        if cpu is not None and not 0 <= cpu < self.ncpus:
            raise self._fail("lookup", E2BIG, f"cpu {cpu} of {self.ncpus}")
        return self._get(slot, cpu)

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        k = self._key(key, "update")
        self._raise_if("update", self._upd(k, self._values_in(value, "update"), flags, None))

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        self._raise_if("delete", self._del(self._key(key, "delete")))

    def keys(self) -> list[bytes]:
        self._can_read("keys")
        return [self.table.key_of(s) for s in self.table.sorted_slots()]

    def __len__(self) -> int:
        return self.table.count

    def lru_order(self) -> list[bytes]:
        """Keys from least to most recently used (LRU maps): the next one evicted first."""
        if self.lru_list is None:
            return []
        return [self.table.key_of(s) for s in self.lru_list.order()]

    # -- program side ---------------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        slot = self._find(key, use=True)
        return self._ptr(slot, cpu) if slot >= 0 else 0

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        return self.prog_lookup(key, cpu) if self.percpu else 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return self._upd(key, [value], flags, cpu)

    def prog_delete(self, key: bytes) -> int:
        return self._del(key)
