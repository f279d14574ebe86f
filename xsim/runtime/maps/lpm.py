"""Longest-prefix-match trie (kernel/bpf/lpm_trie.c).

A key is ``struct bpf_lpm_trie_key_u8``: a u32 prefix length (host order)
then ``key_size - 4`` data bytes, compared from the most significant bit of
the first byte.  Entries are indexed by (prefix length, the data's first
``prefixlen`` bits) in a :class:`~._table.SlotTable`; a lookup tries the
prefix lengths in use from the longest that the key allows down to 0, which
answers exactly what the kernel's trie walk answers.  The key bytes an
update gave are kept as given (bits past the prefix included), as the
kernel's node keeps them and ``get_next_key`` returns them.

The table and ``plen_count`` (entries per prefix length, ``int32``) live in
an internal region ``map:<name>:index`` (:func:`~xsim.runtime.memory.lpm_index_layout`)
that programs cannot access, and the values region's row describes the trie
(``AddressSpace.describe_lpm``), so the interpreter serves
``bpf_map_lookup_elem`` itself (``interp._lpm_slot``), walking the same
prefix lengths and index as :meth:`LpmTrieMap._match`.

Semantics follow Linux 6.13+: BPF_NOEXIST on an existing prefix is EEXIST,
BPF_EXIST on a missing one ENOENT, and a full trie still takes in-place
updates (only new prefixes get ENOSPC).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..memory import lpm_index_layout
from ._table import SlotTable, table_layout
from .base import (BPF_EXIST, BPF_F_ACCESS_MASK, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE,
                   BPF_NOEXIST, EEXIST, EINVAL, ENOENT, ENOSPC, KMALLOC_MAX_SIZE, Map,
                   SlotValues)

LPM_DATA_SIZE_MIN, LPM_DATA_SIZE_MAX = 1, 256
LPM_KEY_SIZE_MIN, LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MIN, 4 + LPM_DATA_SIZE_MAX
LPM_VAL_SIZE_MAX = KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - 48


class LpmTrieMap(SlotValues, Map):
    """BPF_MAP_TYPE_LPM_TRIE."""

    FLAG_MASK = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK

    def _validate(self) -> None:
        super()._validate()
        self._require(self.max_entries > 0, "max_entries must be > 0")
        self._require(bool(self.flags & BPF_F_NO_PREALLOC),
                      "an LPM trie needs BPF_F_NO_PREALLOC in map_flags")
        self._require(LPM_KEY_SIZE_MIN <= self.key_size <= LPM_KEY_SIZE_MAX,
                      f"key_size must be 4 + 1..256 data bytes (got {self.key_size})")
        self._require(1 <= self.value_size <= LPM_VAL_SIZE_MAX,
                      f"value_size {self.value_size} out of range")

    def _allocate(self) -> None:
        self.data_size = self.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self._init_slots(self.max_entries, self.value_size, True)
        nbuckets = table_layout(self.key_size, self.max_entries)[0]
        *_, self._plen_off, size = lpm_index_layout(self.key_size, nbuckets, self.max_entries)
        index = self._add_region(size, False, ":index", readable=False)
        self.table = SlotTable(self.key_size, self.max_entries, self.space, index)
        self.raw_keys = np.zeros((self.max_entries, self.key_size), dtype=np.uint8)
        if type(self).prog_lookup is LpmTrieMap.prog_lookup:
            self.space.describe_lpm(self.region, self.stride, index, self.key_size,
                                    self.table.mask, self.max_entries)

    @property
    def plen_count(self) -> np.ndarray:
        """How many entries have each prefix length, to try only lengths in use: an
        ``int32`` view of the index region (valid until the address space grows)."""
        h = self.table.region.host + self._plen_off      # type: ignore[union-attr]
        return self.space.mem[h:h + 4 * (self.max_prefixlen + 1)].view(np.int32)

    # -- keys ----------------------------------------------------------------------------
    def _split(self, key: bytes) -> tuple[int, int]:
        return int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "big")

    def _index_key(self, plen: int, data: int) -> bytes:
        """(prefix length, data with bits past it cleared) as table key bytes."""
        shift = self.max_prefixlen - plen
        masked = (data >> shift) << shift
        return plen.to_bytes(4, "little") + masked.to_bytes(self.data_size, "big")

    def _match(self, key: bytes) -> int:
        """The slot of the longest stored prefix that covers ``key``, or -1."""
        plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return -1
        counts = self.plen_count
        for p in range(plen, -1, -1):
            if counts[p] and (s := self.table.find(self._index_key(p, data))) >= 0:
                return s
        return -1

    # -- the operations ---------------------------------------------------------------------
    def _upd(self, key: bytes, value: bytes, flags: int) -> int:
        if flags > BPF_EXIST:
            return -EINVAL
        plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return -EINVAL
        ik = self._index_key(plen, data)
        slot = self.table.find(ik)
        if slot >= 0 and flags == BPF_NOEXIST:
            return -EEXIST
        if slot < 0:
            if flags == BPF_EXIST:
                return -ENOENT
            if self.table.full:
                return -ENOSPC
            slot = self.table.insert(ik)
            self.plen_count[plen] += 1
        self.raw_keys[slot] = np.frombuffer(key, dtype=np.uint8)
        self._mem_write(self._off(slot), value)
        return 0

    def _del(self, key: bytes) -> int:
        plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return -EINVAL
        slot = self.table.remove(self._index_key(plen, data))
        if slot < 0:
            return -ENOENT
        self.plen_count[plen] -= 1
        self.raw_keys[slot] = 0
        self._mem_zero(self._off(slot), self.stride)
        return 0

    # -- Python API ---------------------------------------------------------------------
    def lookup(self, key: Any) -> bytes | None:
        """The value of the longest prefix matching ``key`` (as the kernel's lookup)."""
        self._can_read("lookup")
        slot = self._match(self._key(key, "lookup"))
        return None if slot < 0 else self._mem_read(self._off(slot), self.value_size)

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        k, v = self._key(key, "update"), self._value(value, "update")
        self._raise_if("update", self._upd(k, v, flags))

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        self._raise_if("delete", self._del(self._key(key, "delete")))

    def keys(self) -> list[bytes]:
        """The stored keys, sorted by their bytes (the kernel walks the trie post-order)."""
        self._can_read("keys")
        return sorted(self.raw_keys[s].tobytes() for s in np.flatnonzero(self.table.used))

    def items(self) -> list[tuple[bytes, Any]]:
        self._can_read("keys")
        pairs = [(self.raw_keys[s].tobytes(), self._mem_read(self._off(int(s)), self.value_size))
                 for s in np.flatnonzero(self.table.used)]
        return sorted(pairs)

    def __len__(self) -> int:
        return self.table.count

    # -- program side ---------------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        slot = self._match(key)
        return self._ptr(slot) if slot >= 0 else 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return self._upd(key, value, flags)

    def prog_delete(self, key: bytes) -> int:
        return self._del(key)
