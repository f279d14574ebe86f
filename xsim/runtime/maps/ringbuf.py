"""Output channels: BPF ring buffer (kernel/bpf/ringbuf.c) and perf event array.

The ring buffer's region holds the data area twice over in size: the kernel
maps the data pages twice so a record that wraps is contiguous, and here a
record simply runs on into the second half, where its reader finds it.
Records carry the kernel's 8-byte header (u32 length with the busy and
discard bits, u32 page offset) and are 8-byte aligned; producer and consumer
positions advance as in the kernel, so BPF_RB_* queries answer the same.
``records()`` is the user-space consumer.

A perf event array keeps the records output to each index (the CPU's perf
buffer in a libbpf perf_buffer) in order; there are no perf events, so every
index in range is open.
"""
from __future__ import annotations

from typing import Any

from .array import array_checks
from .base import (BPF_F_ACCESS_MASK, BPF_F_NUMA_NODE, BPF_F_PRESERVE_ELEMS, BPF_F_RDONLY_PROG,
                   BPF_F_WRONLY_PROG, E2BIG, EAGAIN, EINVAL, ENOTSUPP, PAGE_SIZE, Map, round8)

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
RINGBUF_MAX_RECORD_SZ = 0xFFFFFFFF // 4
#: the kernel's struct bpf_ringbuf has three pages (fields, consumer, producer) before data
RINGBUF_DATA_PGOFF = 3
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2
BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS = 0, 1, 2, 3
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK


class RingBufMap(Map):
    """BPF_MAP_TYPE_RINGBUF: ``max_entries`` is the data size, a power of 2 and page multiple."""

    FLAG_MASK = BPF_F_NUMA_NODE
    NO_OP_ERRNO = ENOTSUPP

    def _validate(self) -> None:
        super()._validate()
        n = self.max_entries
        self._require(self.key_size == 0 and self.value_size == 0,
                      "key_size and value_size must be 0")
        self._require(n > 0 and n & (n - 1) == 0 and n % PAGE_SIZE == 0,
                      f"max_entries {n} must be a power of 2 and a multiple of {PAGE_SIZE}")

    def _allocate(self) -> None:
        self.size = self.max_entries
        self.mask = self.size - 1
        self.consumer_pos = 0
        self.producer_pos = 0
        self._add_region(2 * self.size, True)

    def _hdr(self, off: int) -> int:
        return int.from_bytes(self._mem_read(off, 4), "little")

    # -- producer -------------------------------------------------------------------------
    def reserve(self, size: int, flags: int = 0) -> int:
        """A pointer to ``size`` writable bytes of a new record, or 0 (as bpf_ringbuf_reserve)."""
        if flags or size > RINGBUF_MAX_RECORD_SZ:
            return 0
        length = round8(size + BPF_RINGBUF_HDR_SZ)
        new_prod = self.producer_pos + length
        if length > self.size or new_prod - self.consumer_pos > self.mask:
            return 0
        off = self.producer_pos & self.mask
        pg_off = RINGBUF_DATA_PGOFF + (off >> 12)
        self._mem_write(off, (size | BPF_RINGBUF_BUSY_BIT).to_bytes(4, "little") +
                        pg_off.to_bytes(4, "little"))
        self.producer_pos = new_prod
        return self.vaddr + off + BPF_RINGBUF_HDR_SZ

    def commit_error(self, ptr: int) -> str | None:
        """Why ``ptr`` is not a reserved, uncommitted record of this ring buffer (None: it is)."""
        off = ptr - BPF_RINGBUF_HDR_SZ - self.vaddr
        if not 0 <= off < self.size or off % 8:
            return f"{ptr:#x} is not the start of a record in ring buffer {self.name!r}"
        if not self._hdr(off) & BPF_RINGBUF_BUSY_BIT:
            return f"the record at {ptr:#x} was already submitted or discarded"
        return None

    def _commit(self, ptr: int, discard: bool) -> None:
        off = ptr - BPF_RINGBUF_HDR_SZ - self.vaddr
        length = self._hdr(off) & ~BPF_RINGBUF_BUSY_BIT
        if discard:
            length |= BPF_RINGBUF_DISCARD_BIT
        self._mem_write(off, length.to_bytes(4, "little"))

    def submit(self, ptr: int, flags: int = 0) -> None:
        self._commit_checked(ptr, False, "submit")

    def discard(self, ptr: int, flags: int = 0) -> None:
        self._commit_checked(ptr, True, "discard")

    def _commit_checked(self, ptr: int, discard: bool, op: str) -> None:
        why = self.commit_error(ptr)
        if why is not None:
            raise self._fail(op, EINVAL, why)
        self._commit(ptr, discard)

    def _output(self, data: bytes, flags: int) -> int:
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            return -EINVAL
        ptr = self.reserve(len(data))
        if not ptr:
            return -EAGAIN
        self._mem_write(ptr - self.vaddr, data)
        self._commit(ptr, False)
        return 0

    def output(self, data: bytes, flags: int = 0) -> None:
        """bpf_ringbuf_output from Python: EAGAIN when the record does not fit."""
        self._raise_if("output", self._output(bytes(data), flags))

    def query(self, flags: int) -> int:
        if flags == BPF_RB_AVAIL_DATA:
            return self.producer_pos - self.consumer_pos
        if flags == BPF_RB_RING_SIZE:
            return self.size
        if flags == BPF_RB_CONS_POS:
            return self.consumer_pos
        if flags == BPF_RB_PROD_POS:
            return self.producer_pos
        return 0

    # -- consumer -------------------------------------------------------------------------
    def records(self, consume: bool = True) -> list[bytes]:
        """Submitted records in order, discarded ones left out, up to the first record
        still reserved; ``consume`` advances the consumer position past them."""
        out: list[bytes] = []
        pos = self.consumer_pos
        while pos < self.producer_pos:
            off = pos & self.mask
            hdr = self._hdr(off)
            if hdr & BPF_RINGBUF_BUSY_BIT:
                break
            length = hdr & ~BPF_RINGBUF_DISCARD_BIT
            if not hdr & BPF_RINGBUF_DISCARD_BIT:
                out.append(self._mem_read(off + BPF_RINGBUF_HDR_SZ, length))
            pos += round8(length + BPF_RINGBUF_HDR_SZ)
        if consume:
            self.consumer_pos = pos
        return out

    def __len__(self) -> int:
        return len(self.records(consume=False))

    def dump(self) -> str:
        return f"ring buffer: {self.query(BPF_RB_AVAIL_DATA)} of {self.size} bytes unconsumed"


class PerfEventArrayMap(Map):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY; max_entries 0 means one per CPU, as libbpf sets it."""

    FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS
    NO_OP_ERRNO = ENOTSUPP

    def _validate(self) -> None:
        super()._validate()
        if self.max_entries == 0:
            self.max_entries = self.ncpus
        self._require(self.value_size == 4, "value_size must be 4 (a perf event fd)")
        self._require(not self.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG),
                      "BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG are not for perf event arrays")
        array_checks(self)

    def _allocate(self) -> None:
        self._records: list[tuple[int, bytes]] = []
        self._add_region(4 * self.max_entries, False)

    def _output(self, index: int, data: bytes) -> int:
        if index >= self.max_entries:
            return -E2BIG
        self._records.append((index, bytes(data)))
        return 0

    def output(self, data: bytes, cpu: int = 0) -> None:
        self._raise_if("output", self._output(cpu, data))

    def records(self, cpu: int | None = None, consume: bool = True) -> list[bytes]:
        """Records output to index ``cpu`` (all, in output order, when None)."""
        out = [d for i, d in self._records if cpu is None or i == cpu]
        if consume:
            self._records = [(i, d) for i, d in self._records if not (cpu is None or i == cpu)]
        return out

    def __len__(self) -> int:
        return len(self._records)

    def dump(self) -> str:
        return f"perf event array: {len(self._records)} records pending"

    def keys(self) -> Any:
        self._can_read("keys")
        raise self._fail("keys", ENOTSUPP, "perf event array slots hold perf events")
