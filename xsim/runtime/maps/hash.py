"""Hash maps (kernel/bpf/hashtab.c): hash, percpu_hash, lru_hash, lru_percpu_hash.

Elements live in ``max_entries`` preallocated value slots (the kernel's
prealloc layout; BPF_F_NO_PREALLOC only changes when the kernel allocates,
not what it answers), found through a :class:`~._table.SlotTable` kept in
an internal region ``map:<name>:index`` that programs cannot access.  The
values region's row describes the map (``AddressSpace.describe_hash``), so
the interpreter serves ``bpf_map_lookup_elem`` on hash, percpu_hash and the LRU
maps itself (and on a hash of maps, which describes itself: fdmaps).  An LRU lookup sets the element's
reference bit: the interpreter marks the slot in an internal region
``map:<name>:used``, and the map takes the marks into its LRU lists before they
next act (:meth:`HashMap._take_marks`).

LRU maps follow the kernel's algorithm (:mod:`.lru`, bpf_lru_list.c): a
common LRU with per-CPU local free and pending lists, batch refills and
evictions of up to ``target_free`` elements, or a per-CPU LRU with
BPF_F_NO_COMMON_LRU; so which elements survive, and how many (a full map may
hold fewer than ``max_entries``: free nodes wait on CPUs' local lists), is
the kernel's.  As in htab_lru_map_update_elem, an update takes a node (which
may evict) before it looks the key up, so even a failing update or one of an
existing key may evict; an lru_percpu_hash update with BPF_EXIST takes none.
Inputs: the map's ``ncpus`` (the number of possible CPUs), the CPU of each
program operation (``env.cpu``), and the order of operations.  Operations
from Python are the kernel's syscall path, which runs on whatever CPU the
calling thread is on: they are modelled as running on :attr:`HashMap.syscall_cpu`
(CPU 0 unless set).  Syscall lookups do not set the reference bit.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...elf.kinds import MapType
from ..memory import Region
from ._table import SlotTable, table_layout
from .base import (BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_LOCK, BPF_F_NO_COMMON_LRU,
                   BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_F_ZERO_SEED, BPF_NOEXIST, E2BIG,
                   EEXIST, EINVAL, ENOENT, ENOTSUPP, HTAB_ELEM_HEADER, KMALLOC_MAX_SIZE,
                   ENOMEM, PCPU_MIN_UNIT_SIZE, Map, SlotValues, round8)
from .lru import KernelLru

HTAB_CREATE_FLAG_MASK = (BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE |
                         BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED)
LRU_TYPES = (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)
#: the types whose program lookups the interpreter serves (a slot pointer; an LRU map's
#: reference bit through its use marks)
FAST_LOOKUP_TYPES = (MapType.HASH, MapType.PERCPU_HASH) + LRU_TYPES


class HashMap(SlotValues, Map):
    """BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH."""

    FLAG_MASK = HTAB_CREATE_FLAG_MASK
    #: bytes kept per value slot (hash of maps keeps an 8-byte pointer for a 4-byte fd)
    stored_value_size: int
    #: LRU maps: the kernel's LRU lists over nodes 0 .. max_entries-1 (None otherwise)
    lru_lists: KernelLru | None
    _syscall_cpu = 0

    @property
    def lru(self) -> bool:
        return self.type in LRU_TYPES

    @property
    def syscall_cpu(self) -> int:
        """The CPU that operations from Python run on, as far as the LRU model is
        concerned (the kernel's syscall path runs on the calling thread's CPU): 0 unless
        set, e.g. to match a kernel run pinned to another CPU."""
        return self._syscall_cpu

    @syscall_cpu.setter
    def syscall_cpu(self, cpu: int) -> None:
        if not 0 <= cpu < self.ncpus:
            raise ValueError(f"map {self.name!r}: cpu {cpu} is not one of its {self.ncpus} CPUs")
        self._syscall_cpu = cpu

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
        self.lru_lists = None
        self._used: Region | None = None
        if self.lru:
            # node n holds the element of slot _node_slot[n] (-1: none)
            self._node_slot = [-1] * self.max_entries
            self._slot_node = [-1] * self.max_entries
            self.lru_lists = KernelLru(self.max_entries, self.ncpus,
                                       bool(self.flags & BPF_F_NO_COMMON_LRU), self._evict)
        if self.type in FAST_LOOKUP_TYPES and type(self).prog_lookup is HashMap.prog_lookup:
            if self.lru:
                self._used = self._add_region(self.max_entries, False, ":used",
                                              readable=False)
            self.space.describe_hash(self.region, self.stride, self.elem if self.percpu else 0,
                                     index, self.key_size, self.table.mask, self.max_entries,
                                     self._used)

    def _take_marks(self) -> None:
        """The reference bits of the interpreter's lookups since the last time, into the
        LRU lists: before anything reads the bits or moves an element to another slot
        (every such change comes through this class, after this)."""
        if self._used is None:
            return
        r = self._used
        marks = self.space.mem[r.host:r.host + r.size]
        slots = np.flatnonzero(marks)
        for slot in slots.tolist():
            self.lru_lists.set_ref(self._slot_node[slot])
        marks[slots] = 0

    # -- the operations, shared by both sides ----------------------------------------------
    def _find(self, key: bytes, use: bool) -> int:
        slot = self.table.find(key)
        if slot >= 0 and use and self.lru_lists is not None:
            self.lru_lists.set_ref(self._slot_node[slot])
        return slot

    def _upd(self, key: bytes, values: Sequence[bytes], flags: int, cpu: int | None) -> int:
        """htab_*_update_elem: 0 or -errno; ``cpu`` None is the syscall (all CPUs)."""
        if flags & ~BPF_F_LOCK > BPF_EXIST or (self.lru or self.percpu) and flags > BPF_EXIST:
            return -EINVAL
        if flags & BPF_F_LOCK:
            return -EINVAL      # no bpf_spin_lock in our values
        if self.lru_lists is not None:
            return self._lru_upd(key, values, flags, cpu)
        slot = self.table.find(key)
        if slot >= 0 and flags == BPF_NOEXIST:
            return -EEXIST
        if slot < 0 and flags == BPF_EXIST:
            return -ENOENT
        new = slot < 0
        if new:
            if self.table.full:
                return -E2BIG
            slot = self.table.insert(key)
        self._put(slot, values, cpu, new)
        return 0

    def _lru_upd(self, key: bytes, values: Sequence[bytes], flags: int, cpu: int | None) -> int:
        """htab_lru_map_update_elem / __htab_lru_percpu_map_update_elem: take a node
        first (it may evict, even the key being updated), then look the key up."""
        lru = self.lru_lists
        assert lru is not None
        self._take_marks()
        node = -1
        if not (self.percpu and flags == BPF_EXIST):
            node = lru.pop_free(self.syscall_cpu if cpu is None else cpu)
            if node < 0:
                return -ENOMEM
        slot = self.table.find(key)
        err = -EEXIST if slot >= 0 and flags == BPF_NOEXIST else \
            -ENOENT if slot < 0 and flags == BPF_EXIST else 0
        if err:
            if node >= 0:
                lru.push_free(node)
            return err
        if slot < 0:
            slot = self.table.insert(key)
            self._bind(slot, node)
            self._put(slot, values, cpu, True)
        elif self.percpu:       # in place; the node taken goes back
            lru.set_ref(self._slot_node[slot])
            self._put(slot, values, cpu, False)
            if node >= 0:
                lru.push_free(node)
        else:                   # the new node replaces the old one, referenced
            old = self._slot_node[slot]
            self._node_slot[old] = -1
            self._bind(slot, node)
            lru.set_ref(node)
            self._put(slot, values, cpu, True)
            lru.push_free(old)
        return 0

    def _bind(self, slot: int, node: int) -> None:
        self._slot_node[slot] = node
        self._node_slot[node] = slot

    def _evict(self, node: int) -> bool:
        """htab_lru_map_delete_node: the LRU takes ``node`` back from its element."""
        slot = self._node_slot[node]
        if slot < 0:
            return False
        self._remove_slot(slot)
        return True

    def _remove_slot(self, slot: int) -> None:
        self.table.remove(self.table.key_of(slot))
        if self.lru_lists is not None:
            self._node_slot[self._slot_node[slot]] = -1
            self._slot_node[slot] = -1
        self._mem_zero(self._off(slot), self.stride)

    def _del(self, key: bytes) -> int:
        slot = self.table.find(key)
        if slot < 0:
            return -ENOENT
        self._take_marks()
        node = self._slot_node[slot] if self.lru_lists is not None else -1
        self._remove_slot(slot)
        if self.lru_lists is not None:
            self.lru_lists.push_free(node)
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
        """LRU maps: the keys in the order the kernel's LRU would consider them for
        eviction, the first candidates first (:meth:`.lru.KernelLru.order`: the inactive
        list from its tail, then the active list, then the CPUs' pending lists, keys a
        program looked up since their last move after all others).  Evictions come in
        batches and rotations reorder the lists, so this is the order of the lists now,
        not a promise; :meth:`lru_state` has the lists themselves."""
        if self.lru_lists is None:
            return []
        self._take_marks()
        return [self.table.key_of(self._node_slot[n]) for n in self.lru_lists.order()]

    def lru_state(self) -> dict[str, Any]:
        """LRU maps: the kernel's lists with keys for the nodes that hold one (free nodes
        as None), each list newest first: ``{"lists": [{"active": [...], "inactive":
        [...], "free": [...]}], "local": [{"pending": [...], "free": [...], "next_steal":
        cpu}, ...], "referenced": [keys], "target_free": n}``; one entry of ``lists`` per
        CPU and no ``local`` with BPF_F_NO_COMMON_LRU.  Empty for other maps."""
        if self.lru_lists is None:
            return {}
        self._take_marks()
        st = self.lru_lists.state()

        def keys(nodes: list[int]) -> list[bytes | None]:
            return [self.table.key_of(self._node_slot[n]) if self._node_slot[n] >= 0
                    else None for n in nodes]
        return {
            "lists": [{k: keys(v) for k, v in l.items()} for l in st["lists"]],
            "local": [{"pending": keys(loc["pending"]), "free": keys(loc["free"]),
                       "next_steal": loc["next_steal"]} for loc in st["local"]],
            "referenced": sorted(k for k in keys(sorted(st["ref"])) if k is not None),
            "target_free": st["target_free"],
        }

    # -- program side ---------------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        slot = self._find(key, use=True)
        return self._ptr(slot, cpu) if slot >= 0 else 0

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        return self.prog_lookup(key, cpu) if self.percpu else 0

    def value_pointer(self, key: bytes, cpu: int) -> int:
        """The value's address without counting a use (bpf_for_each_map_elem's walk)."""
        slot = self._find(key, use=False)
        return self._ptr(slot, cpu) if slot >= 0 else 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return self._upd(key, [value], flags, cpu)

    def prog_delete(self, key: bytes) -> int:
        return self._del(key)
