"""The address space: regions at fixed virtual addresses, checked on every access.

Each region owns one 4 GiB slot of the 64-bit virtual address space: region
``i`` lives at ``i << 32`` plus a small page offset, so the interpreter finds
a pointer's region from its top bits in one step and row 0 ("no region")
catches NULL.  The same addresses can be mapped in unicorn for x86-64,
aarch64 and riscv64.  Host memory for every region is one numpy byte array.

Regions live as long as their address space: maps and global data keep
their contents across runs, and a run's input regions (``memory``,
``packet``) are refilled and resized in place.  Growing a region beyond its
capacity moves the host bytes (never the virtual addresses), so code that
keeps host memory must ask for ``space.mem`` again after a resize.

Host offsets of regions are 8-byte aligned, so that typed views of a region's
bytes (``mem[h:h + n].view(np.int32)``) are aligned.  A region may have no
permissions at all (``readable=False, writable=False``): xsim's own bookkeeping
kept where the compiled core can read it (the key index of a hash map or an LPM
trie), which neither programs nor helpers may touch.

The stack region always covers exactly the frames in use, ``[r10 - 512,
top)`` of the innermost frame: a callee may read its caller's frame through
a pointer, as in the kernel, but nothing below its own frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MemoryAccessError, XsimError
from ..isa import interp as ip
from ..isa import opcodes as oc

#: Regions start this far into their slot, so that small negative offsets from a
#: region's start land in its own slot and are reported against it.
SLOT_OFFSET = ip.SLOT_OFFSET
STACK_SIZE = oc.STACK_FRAME_SIZE * oc.MAX_CALL_FRAMES
#: Slots are 4 GiB; a region must fit in its slot after SLOT_OFFSET.
MAX_REGION_SIZE = (1 << ip.REGION_SHIFT) - 2 * SLOT_OFFSET


@dataclass
class Region:
    """One region of the address space; ``size`` is what the program may touch now."""

    name: str
    index: int
    vaddr: int
    size: int
    capacity: int
    writable: bool
    host: int           # offset of its bytes in the host array (a multiple of 8)
    readable: bool = True

    @property
    def internal(self) -> bool:
        """No access for programs or helpers: xsim's own data (a hash map's index)."""
        return not (self.readable or self.writable)

    @property
    def end(self) -> int:
        return self.vaddr + self.size


def slot_address(index: int) -> int:
    return (index << ip.REGION_SHIFT) + SLOT_OFFSET


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _denied(region: Region, kind: int) -> str | None:
    """Why ``region``'s permissions refuse an access of ``kind`` (ip.ACCESS_*), or None."""
    if region.internal:
        return "no access (internal to xsim)"
    if kind != ip.ACCESS_READ and not region.writable:
        return "read-only"
    if kind != ip.ACCESS_WRITE and not region.readable:
        return "write-only"
    return None


class AddressSpace:
    """Regions and their host memory, in the arrays the interpreter reads."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.by_name: dict[str, Region] = {}
        self.names: list[str] = []
        #: region index -> the object it belongs to (a map), for helpers given a pointer
        self.owners: dict[int, object] = {}
        self.mem = np.zeros(8, dtype=np.uint8)
        self.table = np.zeros((1, ip.RG_COLS), dtype=np.uint64)
        self._view = memoryview(self.mem)

    # -- building ------------------------------------------------------------
    def add(self, name: str, size: int, writable: bool = True,
            data: bytes | None = None, owner: object | None = None, *,
            readable: bool = True) -> Region:
        """A new region of ``size`` zero bytes (or ``data``) at the next free slot.

        ``readable=False, writable=False`` makes an internal region: every access by a
        program or through :meth:`read`/:meth:`write` is refused."""
        if name in self.by_name:
            raise XsimError(f"region {name!r} exists already")
        if not 0 <= size <= MAX_REGION_SIZE:
            raise XsimError(f"region {name!r}: size {size} does not fit a 4 GiB slot")
        index = len(self.regions) + 1
        host = sum(_align8(r.capacity) for r in self.regions)
        region = Region(name, index, slot_address(index), size, size, writable, host, readable)
        self.regions.append(region)
        self.by_name[name] = region
        self.names.append(name)
        row = np.zeros((1, ip.RG_COLS), dtype=np.uint64)
        row[0, :ip.RG_READS] = (region.vaddr, size, host,
                                (int(ip.PERM_R) if readable else 0)
                                | (int(ip.PERM_W) if writable else 0))
        self.table = np.concatenate([self.table, row])
        self._relayout({})
        if data is not None:
            self.fill(name, data)
        if owner is not None:
            self.owners[index] = owner
        return region

    def _relayout(self, grow: dict[str, int]) -> None:
        """Copy every region into a new host array, with new capacities where asked."""
        total = sum(_align8(max(r.capacity, grow.get(r.name, 0))) for r in self.regions)
        new = np.zeros(max(total, 8), dtype=np.uint8)
        host = 0
        for r in self.regions:
            keep = min(r.capacity, len(self.mem) - r.host) if r.host < len(self.mem) else 0
            new[host:host + keep] = self.mem[r.host:r.host + keep]
            # the table's row may point inside the region (the stack's, mid-run): keep that
            inside = int(self.table[r.index, ip.RG_HOST]) - r.host if keep else 0
            r.capacity = max(r.capacity, grow.get(r.name, 0))
            r.host = host
            self.table[r.index, ip.RG_HOST] = host + inside
            host += _align8(r.capacity)
        self.mem = new
        self._view = memoryview(new)

    # -- run inputs ------------------------------------------------------------
    def fill(self, name: str, data: bytes | bytearray | memoryview | np.ndarray) -> Region:
        """Make region ``name`` exactly ``len(data)`` bytes long, holding ``data``."""
        r = self.by_name[name]
        n = len(data) if not isinstance(data, np.ndarray) else data.nbytes
        if n > r.capacity:
            if n > MAX_REGION_SIZE:
                raise XsimError(f"region {name!r}: {n} bytes do not fit a 4 GiB slot")
            self._relayout({name: n})
        if n != r.size:
            r.size = n
            self.table[r.index, ip.RG_SIZE] = n
        if n:
            self._view[r.host:r.host + n] = memoryview(data).cast("B")
        return r

    def set_window(self, name: str, start: int, end: int) -> None:
        """Let accesses reach only ``[start, end)`` of region ``name`` (offsets into it)."""
        r = self.by_name[name]
        if not 0 <= start <= end <= r.size:
            raise XsimError(f"region {name!r}: window [{start}, {end}) is outside its "
                            f"{r.size} bytes")
        self.table[r.index, ip.RG_VBASE:ip.RG_HOST + 1] = (r.vaddr + start, end - start,
                                                            r.host + start)

    def bytes_of(self, name: str) -> bytes:
        r = self.by_name[name]
        return self._view[r.host:r.host + r.size].tobytes()

    # -- accesses made on the program's behalf ----------------------------------
    def region_at(self, address: int) -> Region | None:
        index = address >> ip.REGION_SHIFT
        if 1 <= index <= len(self.regions):
            return self.regions[index - 1]
        return None

    def describe_array(self, region: Region, stride: int, entries: int, percpu_elem: int,
                       of_maps: bool = False, present: Region | None = None) -> None:
        """Let the interpreter serve bpf_map_lookup_elem on this region's array map itself:
        value ``i`` of CPU ``c`` is at ``vaddr + i * stride + c * percpu_elem``
        (``of_maps``: an array of maps, whose value is the inner map's pointer, u64;
        ``present``: an internal region of ``entries`` bytes, nonzero where a slot holds
        a value, for maps whose slots may be empty)."""
        if of_maps and (stride < 8 or percpu_elem):
            raise XsimError(f"region {region.name!r} cannot hold an array of maps")
        if present is not None and (present.size < entries or not present.internal):
            raise XsimError(f"region {present.name!r} cannot say which slots of "
                            f"{region.name!r} are there")
        self.table[region.index, ip.RG_ARRAY_STRIDE:ip.RG_ARRAY_PERCPU + 1] = (
            stride, entries, percpu_elem)
        self.table[region.index, ip.RG_ARRAY_PRESENT] = 0 if present is None else present.index
        self.table[region.index, ip.RG_MAP_KIND] = ip.MAP_KIND_ARRAY | (
            ip.MAP_OF_MAPS if of_maps else 0)

    def describe_prog_array(self, region: Region, entries: int) -> None:
        """Let the interpreter serve bpf_tail_call on this prog array itself (in a linked
        program): slot ``i`` is the u64 at ``vaddr + 8 * i``, the pc + 1 of its program
        in the linked code (0: empty)."""
        self.table[region.index, ip.RG_ARRAY_ENTRIES] = entries
        self.table[region.index, ip.RG_MAP_KIND] = ip.MAP_KIND_PROG_ARRAY

    def describe_hash(self, region: Region, stride: int, percpu_elem: int, index: Region,
                      key_size: int, mask: int, capacity: int,
                      used: Region | None = None, of_maps: bool = False) -> None:
        """Let the interpreter serve bpf_map_lookup_elem on this region's hash map itself.

        ``index`` is the map's key index region, laid out as :func:`hash_index_layout`
        says for ``key_size``, ``mask + 1`` buckets and ``capacity`` slots; the value of
        slot ``s`` for CPU ``c`` is at ``vaddr + s * stride + c * percpu_elem``.  An
        LRU map gives ``used``, an internal region of ``capacity`` bytes where a lookup
        marks the slot it found (interp.RG_HASH_USED); a hash of maps ``of_maps`` (its
        value is the inner map's pointer, u64)."""
        buckets, hashes, keys, size = hash_index_layout(key_size, mask + 1, capacity)
        if index.size < size or region.size < capacity * stride or not index.internal:
            raise XsimError(f"region {index.name!r} cannot be the index of {region.name!r}")
        if of_maps and (stride < 8 or percpu_elem or used is not None):
            raise XsimError(f"region {region.name!r} cannot hold a hash of maps")
        if used is not None and (used.size < capacity or not used.internal):
            raise XsimError(f"region {used.name!r} cannot hold the use marks of "
                            f"{region.name!r}")
        row = self.table[region.index]
        row[ip.RG_HASH_USED] = 0 if used is None else used.index
        row[ip.RG_MAP_KIND] = ip.MAP_KIND_HASH | (ip.MAP_OF_MAPS if of_maps else 0)
        row[ip.RG_HASH_STRIDE] = stride
        row[ip.RG_HASH_PERCPU] = percpu_elem
        row[ip.RG_HASH_INDEX] = index.index
        row[ip.RG_HASH_KEY_SIZE] = key_size
        row[ip.RG_HASH_MASK] = mask
        row[ip.RG_HASH_CAPACITY] = capacity

    def describe_lpm(self, region: Region, stride: int, index: Region, key_size: int,
                     mask: int, capacity: int) -> None:
        """Let the interpreter serve bpf_map_lookup_elem on this region's LPM trie itself.

        ``index`` is the trie's internal region, laid out as :func:`lpm_index_layout` says
        for ``key_size`` (``struct bpf_lpm_trie_key_u8``: u32 prefix length, then
        ``key_size - 4`` data bytes), ``mask + 1`` buckets and ``capacity`` slots: the
        hash index of (prefix length, data masked to it) followed by the count of entries
        of each prefix length; the value of slot ``s`` is at ``vaddr + s * stride``."""
        *_, size = lpm_index_layout(key_size, mask + 1, capacity)
        if (key_size < 5 or index.size < size or region.size < capacity * stride
                or not index.internal):
            raise XsimError(f"region {index.name!r} cannot be the index of {region.name!r}")
        row = self.table[region.index]
        row[ip.RG_MAP_KIND] = ip.MAP_KIND_LPM
        row[ip.RG_LPM_STRIDE] = stride
        row[ip.RG_LPM_INDEX] = index.index
        row[ip.RG_LPM_KEY_SIZE] = key_size
        row[ip.RG_LPM_MASK] = mask
        row[ip.RG_LPM_CAPACITY] = capacity

    def owner_at(self, address: int) -> object | None:
        return self.owners.get(address >> ip.REGION_SHIFT)

    def _check(self, address: int, size: int, write: bool, pc: int) -> int:
        """Host offset of an access made by a helper; the same rules as the program's."""
        region = self.region_at(address)
        access = "write" if write else "read"
        if region is None:
            raise MemoryAccessError(pc, address, size, access, None)
        row = self.table[region.index]
        lo, length = int(row[ip.RG_VBASE]), int(row[ip.RG_SIZE])
        if not lo <= address <= address + size <= lo + length:
            raise MemoryAccessError(pc, address, size, access, region.name, "out of bounds")
        why = _denied(region, ip.ACCESS_WRITE if write else ip.ACCESS_READ)
        if why is not None:
            raise MemoryAccessError(pc, address, size, access, region.name, why)
        return int(row[ip.RG_HOST]) + address - lo

    def read(self, address: int, size: int, pc: int = -1) -> bytes:
        h = self._check(address, size, False, pc)
        return self._view[h:h + size].tobytes()

    def write(self, address: int, data: bytes, pc: int = -1) -> None:
        h = self._check(address, len(data), True, pc)
        self._view[h:h + len(data)] = data

    def explain_fault(self, pc: int, address: int, size: int, kind: int) -> MemoryAccessError:
        """The typed error for a fault the interpreter reported."""
        access = ip.ACCESS_NAMES.get(kind, "access")
        region = self.region_at(address)
        if region is None:
            return MemoryAccessError(pc, address, size, access, None)
        row = self.table[region.index]
        lo, length = int(row[ip.RG_VBASE]), int(row[ip.RG_SIZE])
        if region.name == "stack" and region.vaddr <= address < lo:
            return MemoryAccessError(pc, address, size, access, "stack",
                                     "below the current frame [r10-512, r10)")
        why = _denied(region, kind)
        if why is not None:
            return MemoryAccessError(pc, address, size, access, region.name, why)
        return MemoryAccessError(pc, address, size, access, region.name,
                                 f"out of bounds of [{lo:#x}, {lo + length:#x})")


def hash_index_layout(key_size: int, nbuckets: int, capacity: int) -> tuple[int, int, int, int]:
    """Offsets of a hash map's index in its region, and the region's size:
    ``int32 buckets[nbuckets]`` (-1 empty), ``uint64 hashes[capacity]`` and
    ``uint8 keys[capacity][max(key_size, 1)]``, each 8-byte aligned."""
    hashes = _align8(4 * nbuckets)
    keys = hashes + 8 * capacity
    return 0, hashes, keys, _align8(keys + capacity * max(key_size, 1))


def lpm_index_layout(key_size: int, nbuckets: int,
                     capacity: int) -> tuple[int, int, int, int, int]:
    """Offsets of an LPM trie's index in its region, and the region's size: the
    :func:`hash_index_layout` of its (prefix length, masked data) keys of ``key_size``
    bytes, then ``int32 plen_count[(key_size - 4) * 8 + 1]`` (entries per prefix
    length), 8-byte aligned."""
    buckets, hashes, keys, plens = hash_index_layout(key_size, nbuckets, capacity)
    return buckets, hashes, keys, plens, _align8(plens + 4 * ((key_size - 4) * 8 + 1))


def run_space() -> AddressSpace:
    """An address space with the regions every run uses: stack, memory, packet."""
    space = AddressSpace()
    space.add("stack", STACK_SIZE)
    space.add("memory", 0)
    space.add("packet", 0)
    return space
