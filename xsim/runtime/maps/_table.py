"""Key index and LRU order for hash-like maps, in flat numpy arrays.

The index maps key bytes to a slot in ``[0, capacity)`` (the slot holds the
value in the map's region).  It is open addressing with linear probing and
backward-shift deletion over an ``int32`` bucket array, FNV-1a hashes and a
``uint8`` key matrix: plain arrays and integer loops, so the same layout can
be walked by a compiled core later (ARCHITECTURE.md, contract 5) without a
Python dict in the way.
"""
from __future__ import annotations

import numpy as np

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
EMPTY = -1


def fnv1a(data: bytes, seed: int = 0) -> int:
    """64-bit FNV-1a of ``data`` (``seed`` perturbs the start, for bloom filters)."""
    h = (_FNV_OFFSET ^ (seed * 0x9E3779B97F4A7C15)) & _MASK64
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


class SlotTable:
    """Key bytes -> slot, for at most ``capacity`` keys of ``key_size`` bytes."""

    def __init__(self, key_size: int, capacity: int) -> None:
        nbuckets = 8
        while nbuckets < 2 * capacity:
            nbuckets <<= 1
        self.key_size = key_size
        self.capacity = capacity
        self.mask = nbuckets - 1
        self.buckets = np.full(nbuckets, EMPTY, dtype=np.int32)
        self.keys = np.zeros((capacity, max(key_size, 1)), dtype=np.uint8)
        self.hashes = np.zeros(capacity, dtype=np.uint64)
        self.used = np.zeros(capacity, dtype=np.bool_)
        # free slots as a stack; the top (the end) is the next slot handed out: 0, 1, 2 ...
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self.nfree = capacity

    @property
    def count(self) -> int:
        return self.capacity - self.nfree

    @property
    def full(self) -> bool:
        return self.nfree == 0

    def _probe(self, key: bytes, h: int) -> tuple[int, int]:
        """(bucket index, slot) of ``key``, or (first empty bucket, -1)."""
        i = h & self.mask
        buckets, hashes, keys = self.buckets, self.hashes, self.keys
        while True:
            s = int(buckets[i])
            if s == EMPTY:
                return i, -1
            if int(hashes[s]) == h and keys[s, :self.key_size].tobytes() == key:
                return i, s
            i = (i + 1) & self.mask

    def find(self, key: bytes) -> int:
        return self._probe(key, fnv1a(key))[1]

    def insert(self, key: bytes) -> int:
        """A free slot for ``key`` (which must be absent), or -1 when full."""
        if self.nfree == 0:
            return -1
        h = fnv1a(key)
        i, s = self._probe(key, h)
        assert s == -1, "insert of a key that is present"
        self.nfree -= 1
        slot = int(self.free[self.nfree])
        self.buckets[i] = slot
        self.hashes[slot] = h
        self.keys[slot, :self.key_size] = np.frombuffer(key, dtype=np.uint8)
        self.used[slot] = True
        return slot

    def remove(self, key: bytes) -> int:
        """Remove ``key``; its former slot, or -1 if it was absent."""
        i, slot = self._probe(key, fnv1a(key))
        if slot < 0:
            return -1
        buckets, hashes, mask = self.buckets, self.hashes, self.mask
        # backward-shift deletion: pull later entries of the probe run into the hole
        j = i
        while True:
            j = (j + 1) & mask
            s = int(buckets[j])
            if s == EMPTY:
                break
            home = int(hashes[s]) & mask
            if (i <= j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                buckets[i] = s
                i = j
        buckets[i] = EMPTY
        self.used[slot] = False
        self.keys[slot] = 0
        self.free[self.nfree] = slot
        self.nfree += 1
        return slot

    def key_of(self, slot: int) -> bytes:
        return self.keys[slot, :self.key_size].tobytes()

    def sorted_slots(self) -> list[int]:
        """The used slots, ordered by their key bytes."""
        slots = [int(s) for s in np.flatnonzero(self.used)]
        return sorted(slots, key=self.key_of)


class LruList:
    """Exact recency order of slots: a doubly linked list in two int32 arrays."""

    def __init__(self, capacity: int) -> None:
        self.prev = np.full(capacity, EMPTY, dtype=np.int32)
        self.next = np.full(capacity, EMPTY, dtype=np.int32)
        self.head = EMPTY       # most recently used
        self.tail = EMPTY       # least recently used

    def unlink(self, slot: int) -> None:
        p, n = int(self.prev[slot]), int(self.next[slot])
        if p == EMPTY:
            self.head = n
        else:
            self.next[p] = n
        if n == EMPTY:
            self.tail = p
        else:
            self.prev[n] = p
        self.prev[slot] = self.next[slot] = EMPTY

    def push_front(self, slot: int) -> None:
        self.prev[slot] = EMPTY
        self.next[slot] = self.head
        if self.head != EMPTY:
            self.prev[self.head] = slot
        self.head = slot
        if self.tail == EMPTY:
            self.tail = slot

    def touch(self, slot: int) -> None:
        if self.head != slot:
            self.unlink(slot)
            self.push_front(slot)

    def order(self) -> list[int]:
        """Slots from least to most recently used."""
        out, s = [], self.tail
        while s != EMPTY:
            out.append(s)
            s = int(self.prev[s])
        return out
