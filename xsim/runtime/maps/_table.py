"""The key index of hash-like maps, in flat numpy arrays (LRU lists: :mod:`.lru`).

The index maps key bytes to a slot in ``[0, capacity)`` (the slot holds the
value in the map's region).  It is open addressing with linear probing and
backward-shift deletion over an ``int32`` bucket array, FNV-1a hashes and a
``uint8`` key matrix: plain arrays and integer loops, so that the compiled
core walks the same layout (ARCHITECTURE.md, contract 5).

Given an address space, a :class:`SlotTable` keeps buckets, hashes and keys
in one internal region of it (no permissions: programs and helpers cannot
touch it), at the offsets of :func:`~xsim.runtime.memory.hash_index_layout`,
and the interpreter serves ``bpf_map_lookup_elem`` from there
(``interp._hash_slot``).  Regions move in host memory when the space grows,
so every access re-fetches ``space.mem`` and the region's ``host``.  Without
a space the same layout lives in a private byte array.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..memory import hash_index_layout

if TYPE_CHECKING:
    from ..memory import AddressSpace, Region

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


def table_layout(key_size: int, capacity: int) -> tuple[int, int, int, int, int]:
    """(buckets, bucket offset, hash offset, key offset, bytes) of a SlotTable."""
    nbuckets = 8
    while nbuckets < 2 * capacity:
        nbuckets <<= 1
    return (nbuckets, *hash_index_layout(key_size, nbuckets, capacity))


class SlotTable:
    """Key bytes -> slot, for at most ``capacity`` keys of ``key_size`` bytes.

    ``space`` and ``region``: keep the index in that region (at least
    ``table_layout(key_size, capacity)[-1]`` bytes, zero-filled); otherwise in
    a private array.
    """

    def __init__(self, key_size: int, capacity: int, space: AddressSpace | None = None,
                 region: Region | None = None) -> None:
        nbuckets, boff, hoff, koff, size = table_layout(key_size, capacity)
        self.key_size = key_size
        self.capacity = capacity
        self.mask = nbuckets - 1
        self._kw = max(key_size, 1)
        self._boff, self._hoff, self._koff, self.nbytes = boff, hoff, koff, size
        if (space is None) != (region is None):
            raise ValueError("a SlotTable in an address space needs both space and region")
        if region is not None and region.capacity < size:
            raise ValueError(f"region {region.name!r} holds {region.capacity} bytes; the "
                             f"index needs {size}")
        self.space, self.region = space, region
        self._own = np.zeros(size if space is None else 0, dtype=np.uint8)
        self.buckets[:] = EMPTY
        self.used = np.zeros(capacity, dtype=np.bool_)
        # free slots as a stack; the top (the end) is the next slot handed out: 0, 1, 2 ...
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self.nfree = capacity

    # -- the arrays, as views of their current host bytes (valid until the space grows) --
    def _bytes(self, off: int, n: int) -> np.ndarray:
        if self.space is None:
            return self._own[off:off + n]
        h = self.region.host + off      # type: ignore[union-attr]
        return self.space.mem[h:h + n]

    @property
    def buckets(self) -> np.ndarray:
        return self._bytes(self._boff, 4 * (self.mask + 1)).view(np.int32)

    @property
    def hashes(self) -> np.ndarray:
        return self._bytes(self._hoff, 8 * self.capacity).view(np.uint64)

    @property
    def keys(self) -> np.ndarray:
        return self._bytes(self._koff, self._kw * self.capacity).reshape(self.capacity, self._kw)

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

