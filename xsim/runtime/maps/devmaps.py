"""XDP redirect targets: devmap and devmap_hash (kernel/bpf/devmap.c), cpumap
(kernel/bpf/cpumap.c), xskmap (net/xdp/xskmap.c).

There are no net devices, CPUs' kthreads or AF_XDP sockets behind them: a
slot holds the value as user space wrote it (``struct bpf_devmap_val``:
u32 ifindex [+ prog fd]; ``struct bpf_cpumap_val``: u32 qsize [+ prog fd];
an xsk socket fd), the prog fd standing for itself as the program id.  The
update checks and errnos are the kernel's, so a loader sees the same answers;
``bpf_redirect_map`` (the hooks') reads the slots.  Program lookups return a
read-only pointer to the slot, as the kernel returns ``&dev->val`` (devmaps
are created BPF_F_RDONLY_PROG, which their flags then show).
"""
from __future__ import annotations

from typing import Any

from ._table import SlotTable
from .base import (BPF_ANY, BPF_EXIST, BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_RDONLY_PROG,
                   BPF_F_WRONLY, BPF_NOEXIST, E2BIG, EEXIST, EINVAL, ENODEV, ENOENT,
                   EOPNOTSUPP, EOVERFLOW, Map, round8)

DEV_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY
NR_CPUS = 8192                  # the common distribution kernel config
CPUMAP_QSIZE_MAX = 16384


def _u32(value: bytes, off: int = 0) -> int:
    return int.from_bytes(value[off:off + 4], "little")


def _s32(value: bytes, off: int) -> int:
    return int.from_bytes(value[off:off + 4], "little", signed=True)


class _SlotArray(Map):
    """Indexed slots with a present flag; ``value_sizes`` are the sizes the kernel takes."""

    value_sizes: tuple[int, ...] = (4,)

    def _validate(self) -> None:
        super()._validate()
        self._require(self.max_entries > 0, "max_entries must be > 0")
        self._require(self.key_size == 4, f"key_size must be 4 (got {self.key_size})")
        self._require(self.value_size in self.value_sizes,
                      f"value_size must be {' or '.join(map(str, self.value_sizes))}")

    def _allocate(self) -> None:
        self.elem = round8(self.value_size)
        self.present = [False] * self.max_entries
        self._add_region(self.elem * self.max_entries, False)
        self._marks = None
        if type(self).prog_lookup is _SlotArray.prog_lookup:
            # the interpreter's core answers a program's lookup: the slot, if it is there
            self._marks = self._add_region(self.max_entries, False, ":present",
                                           readable=False)
            self.space.describe_array(self.region, self.elem, self.max_entries, 0,
                                      present=self._marks)

    def _index(self, key: Any, op: str) -> int:
        return _u32(self._key(key, op))

    def _store(self, index: int, value: bytes | None) -> None:
        self.present[index] = value is not None
        if self._marks is not None:
            self.space.mem[self._marks.host + index] = value is not None
        if value is None:
            self._mem_zero(index * self.elem, self.elem)
        else:
            self._mem_write(index * self.elem, value)

    def _slot_value(self, index: int) -> bytes:
        return self._mem_read(index * self.elem, self.value_size)

    def lookup(self, key: Any) -> bytes | None:
        self._can_read("lookup")
        index = self._index(key, "lookup")
        ok = index < self.max_entries and self.present[index]
        return self._slot_value(index) if ok else None

    def delete(self, key: Any) -> None:
        """Clearing a slot; out of range is EINVAL, an empty slot is no error."""
        self._can_write("delete")
        index = self._index(key, "delete")
        if index >= self.max_entries:
            raise self._fail("delete", EINVAL, f"index {index} >= max_entries {self.max_entries}")
        self._store(index, None)

    def keys(self) -> list[bytes]:
        """The populated slots (bpftool's dump skips the empty ones)."""
        self._can_read("keys")
        return [i.to_bytes(4, "little") for i, p in enumerate(self.present) if p]

    def get(self, slot: int) -> bytes | None:
        return self._slot_value(slot) if 0 <= slot < self.max_entries and \
            self.present[slot] else None

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        index = _u32(key)
        ok = index < self.max_entries and self.present[index]
        return self.vaddr + index * self.elem if ok else 0

    def _update_slot(self, key: Any, value: Any, flags: int, what: str) -> tuple[int, bytes]:
        """The checks every slot map's update starts with: (index, value) or MapError."""
        self._can_write("update")
        self._no_lock(flags, "update")
        index, v = self._index(key, "update"), self._value(value, "update")
        if flags > BPF_EXIST:
            raise self._fail("update", EINVAL)
        if index >= self.max_entries:
            raise self._fail("update", E2BIG, f"{what} {index} >= max_entries {self.max_entries}")
        return index, v


class DevMap(_SlotArray):
    """BPF_MAP_TYPE_DEVMAP: index -> struct bpf_devmap_val (ifindex [, prog fd])."""

    FLAG_MASK = DEV_CREATE_FLAG_MASK
    value_sizes = (4, 8)

    def _allocate(self) -> None:
        super()._allocate()
        self.flags |= BPF_F_RDONLY_PROG      # lookups hand out &dev->val, read-only

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        index, v = self._update_slot(key, value, flags, "index")
        if flags == BPF_NOEXIST:
            raise self._fail("update", EEXIST, "devmap slots always exist")
        prog_fd = _s32(v, 4) if self.value_size == 8 else 0
        if _u32(v) == 0:
            if prog_fd > 0:
                raise self._fail("update", EINVAL, "a prog fd needs a nonzero ifindex")
            self._store(index, None)
            return
        if self.value_size == 8:
            v = v[:4] + max(prog_fd, 0).to_bytes(4, "little")
        self._store(index, v)


class DevMapHash(Map):
    """BPF_MAP_TYPE_DEVMAP_HASH: key (any u32) -> struct bpf_devmap_val."""

    FLAG_MASK = DEV_CREATE_FLAG_MASK

    def _validate(self) -> None:
        super()._validate()
        self._require(self.max_entries > 0, "max_entries must be > 0")
        self._require(self.key_size == 4, f"key_size must be 4 (got {self.key_size})")
        self._require(self.value_size in (4, 8), "value_size must be 4 or 8")

    def _allocate(self) -> None:
        self.elem = round8(self.value_size)
        self.table = SlotTable(4, self.max_entries)
        self._add_region(self.elem * self.max_entries, False)
        self.flags |= BPF_F_RDONLY_PROG

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        k, v = self._key(key, "update"), self._value(value, "update")
        if flags > BPF_EXIST or _u32(v) == 0:
            raise self._fail("update", EINVAL, "unknown flags" if flags > BPF_EXIST
                             else "ifindex 0")
        slot = self.table.find(k)
        if slot >= 0 and flags & BPF_NOEXIST:
            raise self._fail("update", EEXIST)
        if slot < 0:
            slot = self.table.insert(k)
            if slot < 0:
                raise self._fail("update", E2BIG, f"full ({self.max_entries} entries)")
        if self.value_size == 8:
            v = v[:4] + max(_s32(v, 4), 0).to_bytes(4, "little")
        self._mem_write(slot * self.elem, v)

    def lookup(self, key: Any) -> bytes | None:
        self._can_read("lookup")
        slot = self.table.find(self._key(key, "lookup"))
        return self._mem_read(slot * self.elem, self.value_size) if slot >= 0 else None

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        slot = self.table.remove(self._key(key, "delete"))
        if slot < 0:
            raise self._fail("delete", ENOENT)
        self._mem_zero(slot * self.elem, self.elem)

    def keys(self) -> list[bytes]:
        self._can_read("keys")
        return [self.table.key_of(s) for s in self.table.sorted_slots()]

    def __len__(self) -> int:
        return self.table.count

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        slot = self.table.find(key)
        return self.vaddr + slot * self.elem if slot >= 0 else 0


class CpuMap(_SlotArray):
    """BPF_MAP_TYPE_CPUMAP: CPU -> struct bpf_cpumap_val (qsize [, prog fd])."""

    FLAG_MASK = BPF_F_NUMA_NODE
    value_sizes = (4, 8)

    def _validate(self) -> None:
        super()._validate()
        self._require(self.max_entries <= NR_CPUS, f"max_entries {self.max_entries} > NR_CPUS "
                      f"({NR_CPUS})", E2BIG)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        cpu, v = self._update_slot(key, value, flags, "cpu")
        if flags == BPF_NOEXIST:
            raise self._fail("update", EEXIST, "cpumap slots always exist")
        qsize = _u32(v)
        if qsize > CPUMAP_QSIZE_MAX:
            raise self._fail("update", EOVERFLOW, f"qsize {qsize} > {CPUMAP_QSIZE_MAX}")
        if cpu >= self.ncpus:
            raise self._fail("update", ENODEV, f"cpu {cpu}: there are {self.ncpus} CPUs")
        self._store(cpu, v if qsize else None)     # qsize 0 is a delete

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        return 0


class XskMap(_SlotArray):
    """BPF_MAP_TYPE_XSKMAP: queue index -> AF_XDP socket (its fd, as written)."""

    FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        index, v = self._update_slot(key, value, flags, "index")
        if self.present[index] and flags == BPF_NOEXIST:
            raise self._fail("update", EEXIST)
        if not self.present[index] and flags == BPF_EXIST:
            raise self._fail("update", ENOENT)
        self._store(index, v)

    def lookup(self, key: Any) -> bytes | None:
        """The kernel does not return sockets to user space: EOPNOTSUPP (see get())."""
        self._can_read("lookup")
        self._key(key, "lookup")
        raise self._fail("lookup", EOPNOTSUPP, "xskmap entries are sockets; use get(slot)")

    def items(self) -> list[tuple[bytes, Any]]:
        return [(k, self.get(_u32(k))) for k in self.keys()]
