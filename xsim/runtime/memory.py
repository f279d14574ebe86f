"""The address space: regions at fixed virtual addresses, checked on every access.

Each region owns one 4 GiB slot of the 64-bit virtual address space: region
``i`` lives at ``i << 32`` plus a small page offset, so the interpreter finds
a pointer's region from its top bits in one step and row 0 ("no region")
catches NULL.  The same addresses can be mapped in unicorn for x86-64,
aarch64 and riscv64.  Host memory for every region is one numpy byte array.

The stack region always covers exactly the frames in use, ``[r10 - 512,
top)`` of the innermost frame: a callee may read its caller's frame through
a pointer, as in the kernel, but nothing below its own frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MemoryAccessError
from ..isa import interp as ip
from ..isa import opcodes as oc

#: Regions start this far into their slot, so that small negative offsets from a
#: region's start land in its own slot and are reported against it.
SLOT_OFFSET = 0x1000
STACK_SIZE = oc.STACK_FRAME_SIZE * oc.MAX_CALL_FRAMES


@dataclass(frozen=True)
class Region:
    """One region of the address space as a user sees it."""

    name: str
    index: int
    vaddr: int
    size: int
    writable: bool
    host: int           # offset of its bytes in the host array

    @property
    def end(self) -> int:
        return self.vaddr + self.size


def slot_address(index: int) -> int:
    return (index << ip.REGION_SHIFT) + SLOT_OFFSET


class AddressSpace:
    """Regions and their host memory, in the arrays the interpreter reads.

    Built once per shape of input (sizes of memory and packet) and reused
    across runs: a run copies its input in and resets the table.
    """

    def __init__(self, sizes: list[tuple[str, int, bool]]) -> None:
        """``sizes``: (name, size, writable) per region, after the stack."""
        specs = [("stack", STACK_SIZE, True)] + list(sizes)
        self.regions: list[Region] = []
        host = 0
        for i, (name, size, writable) in enumerate(specs, start=1):
            self.regions.append(Region(name, i, slot_address(i), size, writable, host))
            host += size
        self.mem = np.zeros(max(host, 8), dtype=np.uint8)
        self.table = np.zeros((len(specs) + 1, ip.RG_COLS), dtype=np.uint64)
        for r in self.regions:
            self.table[r.index] = (r.vaddr, r.size, r.host,
                                   int(ip.PERM_R) | (int(ip.PERM_W) if r.writable else 0), 0, 0)
        self.by_name = {r.name: r for r in self.regions}
        self.names = [r.name for r in self.regions]
        self._view = memoryview(self.mem)
        stack = self.by_name["stack"]
        self.stack_top = stack.end
        self.stack_host_frame0 = stack.host + STACK_SIZE - oc.STACK_FRAME_SIZE

    def region_at(self, address: int) -> Region | None:
        index = address >> ip.REGION_SHIFT
        if 1 <= index <= len(self.regions):
            return self.regions[index - 1]
        return None

    def bytes_of(self, name: str) -> bytes:
        r = self.by_name[name]
        return self._view[r.host:r.host + r.size].tobytes()

    def load_input(self, name: str, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        r = self.by_name[name]
        if r.size:
            self._view[r.host:r.host + r.size] = memoryview(data).cast("B")

    def _check(self, address: int, size: int, write: bool, pc: int) -> int:
        """Host offset of an access made on the program's behalf (by a helper)."""
        region = self.region_at(address)
        access = "write" if write else "read"
        if region is None:
            raise MemoryAccessError(pc, address, size, access, None)
        row = self.table[region.index]
        lo, length = int(row[ip.RG_VBASE]), int(row[ip.RG_SIZE])
        if not lo <= address <= address + size <= lo + length:
            raise MemoryAccessError(pc, address, size, access, region.name, "out of bounds")
        if write and not region.writable:
            raise MemoryAccessError(pc, address, size, access, region.name, "read-only")
        return int(row[ip.RG_HOST]) + address - lo

    def read(self, address: int, size: int, pc: int = -1) -> bytes:
        h = self._check(address, size, False, pc)
        return self.mem[h:h + size].tobytes()

    def write(self, address: int, data: bytes, pc: int = -1) -> None:
        h = self._check(address, len(data), True, pc)
        self.mem[h:h + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def explain_fault(self, pc: int, address: int, size: int, kind: int) -> MemoryAccessError:
        """The typed error for a fault the interpreter reported."""
        access = ip.ACCESS_NAMES.get(kind, "access")
        region = self.region_at(address)
        if region is None:
            return MemoryAccessError(pc, address, size, access, None)
        if region.name == "stack":
            row = self.table[region.index]
            lo = int(row[ip.RG_VBASE])
            if address < lo and address >= region.vaddr:
                return MemoryAccessError(pc, address, size, access, "stack",
                                         "below the current frame [r10-512, r10)")
        if kind != ip.ACCESS_READ and not region.writable:
            return MemoryAccessError(pc, address, size, access, region.name, "read-only")
        return MemoryAccessError(pc, address, size, access, region.name,
                                 f"out of bounds of [{region.vaddr:#x}, {region.end:#x})")
