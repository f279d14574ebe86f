"""Keyless maps: queue and stack (kernel/bpf/queue_stack_maps.c), bloom filter
(kernel/bpf/bloom_filter.c).

Queue and stack keep ``max_entries + 1`` value slots in a ring, with the
kernel's head/tail arithmetic, so overwriting with BPF_EXIST drops the same
(oldest) element.  The syscall maps onto them as in the kernel: lookup is
peek, update is push.  The bloom filter's bit array is its region; its k
hashes are our own (double hashing of FNV-1a), not the kernel's seeded
jhash, so which values collide differs, but never whether a pushed value is
found: there are no false negatives.
"""
from __future__ import annotations

from typing import Any

from ...elf.kinds import MapType
from ._table import fnv1a
from .base import (BPF_ANY, BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_NUMA_NODE, BPF_F_ZERO_SEED,
                   BPF_NOEXIST, E2BIG, EINVAL, ENOENT, EOPNOTSUPP, KMALLOC_MAX_SIZE, Map,
                   pow2_at_least)


def keyless_checks(m: Map) -> None:
    m._require(m.max_entries > 0, "max_entries must be > 0")
    m._require(m.key_size == 0, f"key_size must be 0 (got {m.key_size})")
    m._require(m.value_size > 0, "value_size must be > 0")
    m._require(m.value_size <= KMALLOC_MAX_SIZE, f"value_size {m.value_size} is too big", E2BIG)


class QueueStackMap(Map):
    """BPF_MAP_TYPE_QUEUE (FIFO) and BPF_MAP_TYPE_STACK (LIFO)."""

    FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK

    def _validate(self) -> None:
        super()._validate()
        keyless_checks(self)

    def _allocate(self) -> None:
        self.size = self.max_entries + 1
        self.head = self.tail = 0
        self._add_region(self.size * self.value_size, False)

    @property
    def is_stack(self) -> bool:
        return self.type == MapType.STACK

    def __len__(self) -> int:
        return (self.head - self.tail) % self.size

    # -- the operations ---------------------------------------------------------------------
    def _push(self, value: bytes, flags: int) -> int:
        if flags & BPF_NOEXIST or flags > BPF_EXIST:
            return -EINVAL
        if len(self) == self.max_entries:
            if not flags & BPF_EXIST:
                return -E2BIG
            self.tail = (self.tail + 1) % self.size      # overwrite the oldest element
        self._mem_write(self.head * self.value_size, value)
        self.head = (self.head + 1) % self.size
        return 0

    def _take(self, delete: bool) -> tuple[int, bytes]:
        if self.head == self.tail:
            return -ENOENT, b""
        if self.is_stack:
            index = (self.head - 1) % self.size
            if delete:
                self.head = index
        else:
            index = self.tail
            if delete:
                self.tail = (self.tail + 1) % self.size
        return 0, self._mem_read(index * self.value_size, self.value_size)

    # -- Python API ---------------------------------------------------------------------
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("push")
        self._raise_if("push", self._push(self._value(value, "push"), flags))

    def pop(self) -> bytes:
        self._can_read("pop")
        self._can_write("pop")
        err, value = self._take(True)
        self._raise_if("pop", err)
        return value

    def peek(self) -> bytes:
        self._can_read("peek")
        err, value = self._take(False)
        self._raise_if("peek", err)
        return value

    def lookup(self, key: Any = b"") -> bytes | None:
        """The syscall's lookup is a peek: the next value out, or None when empty."""
        self._can_read("lookup")
        self._key(key, "lookup")
        err, value = self._take(False)
        return None if err else value

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """The syscall's update is a push."""
        self._can_write("update")
        self._key(key, "update")
        self._raise_if("update", self._push(self._value(value, "update"), flags))

    def values(self) -> list[bytes]:
        """The elements in the order pop would return them (no change to the map)."""
        out = []
        for i in range(len(self)):
            index = self.head - 1 - i if self.is_stack else self.tail + i
            index %= self.size
            out.append(self._mem_read(index * self.value_size, self.value_size))
        return out

    def dump(self) -> str:
        lines = ["value: " + " ".join(f"{b:02x}" for b in v) for v in self.values()]
        n = len(lines)
        return "\n".join(lines + [f"Found {n} element" + ("" if n == 1 else "s")])

    # -- program side ---------------------------------------------------------------------
    def prog_push(self, value: bytes, flags: int) -> int:
        return self._push(value, flags)

    def prog_pop(self) -> tuple[int, bytes]:
        return self._take(True)

    def prog_peek(self, value: bytes) -> tuple[int, bytes]:
        return self._take(False)


class BloomFilterMap(Map):
    """BPF_MAP_TYPE_BLOOM_FILTER: ``map_extra`` (low 4 bits) hash functions, default 5."""

    FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | BPF_F_ACCESS_MASK
    NO_OP_ERRNO = EINVAL

    def _validate(self) -> None:
        super()._validate()
        keyless_checks(self)
        self._require(not self.map_extra & ~0xF,
                      f"map_extra {self.map_extra:#x}: only the low 4 bits (hash count) are used")

    def _allocate(self) -> None:
        self.nr_hash_funcs = self.map_extra or 5
        # n * k / ln(2), with 7/5 for 1/ln(2), rounded up to a power of two (kernel's sizing)
        nr_bits = self.max_entries * self.nr_hash_funcs // 5 * 7
        if nr_bits > 1 << 31:
            nr_bits = 1 << 32
        else:
            nr_bits = 64 if nr_bits <= 64 else pow2_at_least(nr_bits)
        self.nr_bits = nr_bits
        self._add_region(nr_bits // 8, False)

    def _bits(self, value: bytes) -> list[int]:
        h1 = fnv1a(value)
        h2 = fnv1a(value, seed=1) | 1
        mask = self.nr_bits - 1
        return [(h1 + i * h2) & mask for i in range(self.nr_hash_funcs)]

    def _test(self, value: bytes) -> bool:
        mem, host = self.space.mem, self.region.host
        return all(mem[host + (b >> 3)] >> (b & 7) & 1 for b in self._bits(value))

    def _add(self, value: bytes, flags: int) -> int:
        if flags != BPF_ANY:
            return -EINVAL
        mem, host = self.space.mem, self.region.host
        for b in self._bits(value):
            mem[host + (b >> 3)] |= 1 << (b & 7)
        return 0

    # -- Python API ---------------------------------------------------------------------
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("push")
        self._raise_if("push", self._add(self._value(value, "push"), flags))

    def peek(self, value: Any) -> bool:  # type: ignore[override]
        """True if ``value`` may be in the set, False if it certainly is not (ENOENT)."""
        self._can_read("peek")
        return self._test(self._value(value, "peek"))

    def __contains__(self, value: Any) -> bool:
        return self.peek(value)

    def pop(self) -> bytes:
        raise self._fail("pop", EOPNOTSUPP, "a bloom filter has no pop")

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        raise self._fail("delete", EOPNOTSUPP, "a bloom filter cannot delete")

    def keys(self) -> list[bytes]:
        raise self._fail("keys", EOPNOTSUPP, "a bloom filter has no keys")

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """The syscall's update is a push."""
        self._can_write("update")
        self._raise_if("update", self._add(self._value(value, "update"), flags))

    def lookup(self, key: Any = b"") -> Any:
        self._can_read("lookup")
        raise self._fail("lookup", EINVAL, "a bloom filter is queried with peek(value)")

    def __len__(self) -> int:
        return 0

    def dump(self) -> str:
        return f"bloom filter: {self.nr_hash_funcs} hashes over {self.nr_bits} bits"

    # -- program side ---------------------------------------------------------------------
    def prog_push(self, value: bytes, flags: int) -> int:
        return self._add(value, flags)

    def prog_pop(self) -> tuple[int, bytes]:
        return -EOPNOTSUPP, b""

    def prog_peek(self, value: bytes) -> tuple[int, bytes]:
        return (0 if self._test(value) else -ENOENT), b""
