"""The JIT tier on another instruction set: the lifter's code for x86-64, aarch64 or
riscv64, linked into a flat image and run under unicorn.

The emulated code works on copies of the Program's arrays (state words, env words,
region table, instruction counts) in guest memory, and every region of the address
space is mapped at its own virtual address: the guest's region table says that each
row's bytes are at its virtual address (host = vbase, memory base 0), so the code's
checked translation lands on the very addresses the interpreter reports.  Bytes
beyond a region's capacity are not mapped, so an access the checks let through is
an unmapped access: a defect of the generated code, reported as :class:`JitDefect`,
never a crash of the host.

Helpers leave the guest through trampolines, addresses a code hook watches: the
guest's arrays and regions are copied back to the host, the helper runs from the
same registry the interpreter uses (``Native._helper``, or the interpreter's own
map lookup), and everything is copied in again before the guest returns.
"""
from __future__ import annotations

import bisect
import io

import numpy as np
import unicorn
from elftools.elf.elffile import ELFFile

from ..errors import RunError, XsimError
from ..isa import interp as ip
from ..jit import driver, emit, engine, lift
from ..runtime.program import Program
from . import link, targets

IMAGE_BASE = 0x7000_0000_0000
TRAMPOLINES = 0x7100_0000_0000
HELPER_AT, LOOKUP_AT, RETURN_AT = TRAMPOLINES, TRAMPOLINES + 0x100, TRAMPOLINES + 0x200
CORE_AT, TAIL_AT = TRAMPOLINES + 0x300, TRAMPOLINES + 0x400
_PAGE = 0x1000
#: the C library functions LLVM may call in the code it makes (a loop that zeroes or
#: copies memory becomes memset or memcpy): trampolines on the page below the image,
#: in reach of a direct call
LIBC_AT = {"memset": IMAGE_BASE - _PAGE, "memcpy": IMAGE_BASE - _PAGE + 0x100,
           "memmove": IMAGE_BASE - _PAGE + 0x200}
ARRAYS = 0x7200_0000_0000
NATIVE_STACK = 0x7300_0000_0000
NATIVE_STACK_SIZE = 1 << 20
#: guest instructions one call of the entry may run, per budgeted eBPF instruction
#: (and at least): more means the code lost its budget checks
INSNS_PER_EBPF = 400
MIN_INSNS = 1 << 22
#: where each array's guest copy lives: ARRAYS + slot * 2**36
_ARRAY_SLOTS = {"st": 0, "env": 1, "table": 2, "counts": 3}


class JitDefect(RunError):
    """The generated code did what checked code never may: touched memory outside every
    mapped region, ran an illegal instruction, or ran on past its budget."""

    def __init__(self, isa: str, reason: str, native_pc: int, pc: int = -1) -> None:
        self.isa, self.reason, self.native_pc = isa, reason, native_pc
        where = f"eBPF pc {pc}" if pc >= 0 else "eBPF pc unknown"
        super().__init__(f"JIT defect on {isa}: {reason} at native {native_pc:#x} ({where})",
                         pc)


_ACCESS_KINDS = {unicorn.UC_MEM_READ_UNMAPPED: "read", unicorn.UC_MEM_WRITE_UNMAPPED: "write",
                 unicorn.UC_MEM_FETCH_UNMAPPED: "fetch", unicorn.UC_MEM_WRITE_PROT: "write",
                 unicorn.UC_MEM_READ_PROT: "read", unicorn.UC_MEM_FETCH_PROT: "fetch"}


def unmapped(isa: str, access: int, address: int, size: int, native_pc: int) -> JitDefect:
    """The defect for unicorn's invalid-memory event ``access`` at ``address``."""
    kind = _ACCESS_KINDS.get(access, "access")
    return JitDefect(isa, f"{kind} of {size} bytes at unmapped {address:#x}", native_pc)


def _pages(n: int) -> int:
    return (n + _PAGE - 1) & ~(_PAGE - 1)


class Emulated(driver.Native):
    """A Program's code for ``isa``, run under unicorn (the host JIT's interface)."""

    def __init__(self, prog: Program, isa: str, profile: bool = False) -> None:
        self.prog, self.isa, self.profile = prog, targets.isa(isa), profile
        t = self.isa
        try:
            obj, compile_s, hit = engine.object_for(prog._code, prog._st[ip.C_BASE:], prog.name,
                                                    t.triple, t.cpu, t.features, t.code_model,
                                                    profile, prog.starts, prog._core)
        except lift.JitUnsupported as exc:
            raise XsimError(f"program {prog.name!r} cannot run on {t.name}: {exc}; "
                                   "tier 'interp' runs it") from None
        self.image = link.link(obj, t.name, IMAGE_BASE, LIBC_AT)
        self.code = engine.NativeCode(None, self.image.symbols[lift.ENTRY], compile_s, 0.0, hit)
        self.env = np.zeros(lift.ENV_WORDS, dtype=np.int64)
        self.calls: dict[int, int] = {}
        self.chain = 0
        self.error = None
        self.target = None
        self._uc = self._machine()
        self._mapped: list[tuple[int, int]] = []
        self._layout: tuple = ()
        self._arrays: dict[str, int] = {}
        self._defect: JitDefect | None = None
        #: (function offsets, sorted (address, pc)) of a debug build, made on a defect
        self._lines: tuple | None = None

    # -- the machine ------------------------------------------------------------------
    def _machine(self) -> unicorn.Uc:
        t = self.isa
        uc = (unicorn.Uc(t.uc_arch, t.uc_mode) if t.uc_cpu is None
              else unicorn.Uc(t.uc_arch, t.uc_mode, t.uc_cpu))
        uc.mem_map(IMAGE_BASE, len(self.image.data))
        uc.mem_write(IMAGE_BASE, self.image.data)
        uc.mem_map(TRAMPOLINES, _PAGE)
        uc.mem_map(IMAGE_BASE - _PAGE, _PAGE)
        for at in (HELPER_AT, LOOKUP_AT, CORE_AT, TAIL_AT, *LIBC_AT.values()):  # the hook serves
            uc.mem_write(at, t.ret_insn)
        uc.mem_map(NATIVE_STACK, NATIVE_STACK_SIZE)
        uc.hook_add(unicorn.UC_HOOK_CODE, self._trampoline, begin=TRAMPOLINES,
                    end=TRAMPOLINES + _PAGE - 1)
        uc.hook_add(unicorn.UC_HOOK_CODE, self._trampoline, begin=IMAGE_BASE - _PAGE,
                    end=IMAGE_BASE - 1)
        uc.hook_add(unicorn.UC_HOOK_MEM_INVALID, self._invalid)
        return uc

    def _invalid(self, uc, access, address, size, value, data) -> bool:
        self._defect = unmapped(self.isa.name, access, address, size, uc.reg_read(self.isa.pc))
        return False

    def _array(self, name: str, arr: np.ndarray) -> int:
        """The guest address of a copy of ``arr`` (mapped on first use, grown as needed)."""
        at = ARRAYS + _ARRAY_SLOTS[name] * (1 << 36)
        need = _pages(max(arr.nbytes, 1))
        have = self._arrays.get(name, 0)
        if need > have:
            if have:
                self._uc.mem_unmap(at, have)
            self._uc.mem_map(at, need)
            self._arrays[name] = need
        self._uc.mem_write(at, arr.tobytes())
        return at

    def _read(self, name: str, arr: np.ndarray) -> None:
        at = ARRAYS + _ARRAY_SLOTS[name] * (1 << 36)
        arr[:] = np.frombuffer(self._uc.mem_read(at, arr.nbytes), dtype=arr.dtype).reshape(
            arr.shape)

    # -- host <-> guest ---------------------------------------------------------------
    def _map_regions(self) -> None:
        space = self.prog.space
        layout = tuple((r.vaddr, r.capacity) for r in space.regions)
        if layout == self._layout:
            return
        for at, size in self._mapped:
            self._uc.mem_unmap(at, size)
        self._mapped = []
        for r in space.regions:
            if r.capacity:
                at, size = r.vaddr & ~(_PAGE - 1), _pages(r.vaddr + r.capacity) - (
                    r.vaddr & ~(_PAGE - 1))
                self._uc.mem_map(at, size)
                self._mapped.append((at, size))
        self._layout = layout

    def _sync_in(self) -> None:
        """The host's words, table and region bytes into the guest."""
        prog, space = self.prog, self.prog.space
        self._map_regions()
        mem = space.mem
        for r in space.regions:
            if r.capacity:
                self._uc.mem_write(r.vaddr, mem[r.host:r.host + r.capacity].tobytes())
        table = space.table
        #: per row, host offset minus virtual address (to give the host its offsets back)
        self._delta = table[:, ip.RG_HOST].astype(np.int64) - table[:, ip.RG_VBASE].astype(
            np.int64)
        guest = table.copy()
        guest[:, ip.RG_HOST] = guest[:, ip.RG_VBASE]
        st = prog._st.copy()
        stack = prog._stack
        self._stack_host = int(st[ip.S_STACK_HOST])
        st[ip.S_STACK_HOST] = self._stack_host - stack.host + stack.vaddr
        env = self.env
        env[lift.ENV_MEM] = 0
        env[lift.ENV_MEM_LEN] = len(mem)
        env[lift.ENV_RG] = self._array("table", guest)
        env[lift.ENV_ROWS] = table.shape[0]
        env[lift.ENV_ST_LEN] = len(st)
        env[lift.ENV_HELPER] = HELPER_AT
        env[lift.ENV_LOOKUP] = LOOKUP_AT
        env[lift.ENV_CORE] = CORE_AT
        env[lift.ENV_TAIL] = TAIL_AT
        env[lift.ENV_COUNTS] = self._array("counts", prog._counts)
        self._st_g = self._array("st", st)
        self._env_g = self._array("env", env)

    def _sync_out(self) -> None:
        """The guest's words, table and region bytes back to the host."""
        prog, space = self.prog, self.prog.space
        self._read("st", prog._st)
        prog._st[ip.S_STACK_HOST] = self._stack_host
        self._read("env", self.env)
        self._read("counts", prog._counts)
        table = space.table
        guest = np.empty_like(table)
        self._read("table", guest)
        guest[:, ip.RG_HOST] = (guest[:, ip.RG_VBASE].astype(np.int64) + self._delta).astype(
            np.uint64)
        table[:] = guest
        mem = space.mem
        for r in space.regions:
            if r.capacity:
                mem[r.host:r.host + r.capacity] = np.frombuffer(
                    self._uc.mem_read(r.vaddr, r.capacity), dtype=np.uint8)

    # -- the driver's interface -----------------------------------------------------------
    def _refresh(self) -> None:
        """Nothing to do: every entry copies the host's state in."""

    def prepare(self, budget: int, calls: dict[int, int], chain: int = 0) -> None:
        self.calls, self.chain, self.error, self.target = calls, chain, None, None
        self.env[lift.ENV_BUDGET] = budget
        self.prog._st[ip.S_BUDGET] = budget

    def enter(self, runs: int, fresh: bool) -> int:
        t, uc = self.isa, self._uc
        self._sync_in()
        args = (self._st_g, self._env_g, runs, int(fresh))
        for reg, v in zip(t.args, args):
            uc.reg_write(reg, v)
        sp = NATIVE_STACK + NATIVE_STACK_SIZE - 64
        if t.link is None:
            uc.mem_write(sp, RETURN_AT.to_bytes(8, "little"))
        else:
            uc.reg_write(t.link, RETURN_AT)
        uc.reg_write(t.sp, sp)
        self._defect = None
        cap = max(MIN_INSNS, INSNS_PER_EBPF * int(self.env[lift.ENV_BUDGET]) * max(runs, 1))
        try:
            uc.emu_start(self.code.entry, RETURN_AT, count=cap)
        except unicorn.UcError as exc:
            if self._defect is None:
                self._defect = JitDefect(t.name, str(exc), uc.reg_read(t.pc))
        else:
            if uc.reg_read(t.pc) != RETURN_AT and self._defect is None:
                self._defect = JitDefect(t.name, f"still running after {cap} instructions",
                                         uc.reg_read(t.pc))
        self._sync_out()
        if self._defect is not None:
            d = self._defect
            self.error = JitDefect(d.isa, d.reason, d.native_pc, self.ebpf_pc(d.native_pc))
            return lift.HELPER_FAILED
        return int(uc.reg_read(t.ret)) & ((1 << 64) - 1)

    def ebpf_pc(self, native_pc: int) -> int:
        """The eBPF pc whose code holds ``native_pc`` (-1: none, as in the run loop),
        from the line table of a debug build for this ISA (debug info does not change
        the code: the same function at the same offset is the same instruction)."""
        if self._lines is None:
            t = self.isa
            target = (t.triple, t.cpu, t.features, t.code_model)
            elf = ELFFile(io.BytesIO(emit.debug_object(self.prog, target, self.profile)))
            symtab = elf.get_section_by_name(".symtab")
            offsets = {s.name: s.entry.st_value for s in symtab.iter_symbols()
                       if s.entry.st_info.type == "STT_FUNC"}
            self._lines = (offsets, sorted(emit.pc_lines(elf).items()))
        offsets, lines = self._lines
        inside = [(at, name) for name, at in self.image.symbols.items()
                  if name in offsets and at <= native_pc < at + self.image.sizes.get(name, 0)]
        if not inside:
            return -1
        at, name = inside[0]
        where = offsets[name] + native_pc - at
        k = bisect.bisect_right(lines, (where, 1 << 62)) - 1
        return lines[k][1] if k >= 0 else -1

    # -- helpers: out of the guest and back ------------------------------------------------
    def _trampoline(self, uc, address, size, data) -> None:
        if address == RETURN_AT:
            uc.emu_stop()
            return
        if address in self._libc:
            self._libc_call(uc, self._libc[address])
            return
        self._sync_out()
        try:
            if address == HELPER_AT:
                result = self._helper()
            elif address == LOOKUP_AT:
                space = self.prog.space
                result = int(ip.map_lookup(self.prog._st, space.mem, space.table))
            elif address == CORE_AT:
                space = self.prog.space
                result = int(ip.serve_core(self.prog._st, space.mem, space.table))
            elif address == TAIL_AT:
                space = self.prog.space
                result = int(ip.tail_call(self.prog._st, space.mem, space.table))
            else:
                self._defect = JitDefect(self.isa.name, "a jump into the trampoline page",
                                         address)
                uc.emu_stop()
                return
        finally:
            self._sync_in()
        self._return(uc, result)

    _libc = {at: name for name, at in LIBC_AT.items()}

    def _libc_call(self, uc, name: str) -> None:
        """memset(dst, c, n), memcpy or memmove(dst, src, n) on guest memory; their
        bytes are mapped when the code's own checks passed, else it is a defect."""
        dst, x, n = (uc.reg_read(r) for r in self.isa.args[:3])
        try:
            data = bytes([x & 0xFF]) * n if name == "memset" else bytes(uc.mem_read(x, n))
            uc.mem_write(dst, data)
        except unicorn.UcError:
            self._defect = JitDefect(self.isa.name, f"{name} of {n} bytes at {dst:#x} "
                                     "outside the mapped memory", uc.reg_read(self.isa.pc))
            uc.emu_stop()
            return
        self._return(uc, dst)

    def _return(self, uc, value: int) -> None:
        """The trampoline's result: its own return instruction goes back to the caller."""
        uc.reg_write(self.isa.ret, value & ((1 << 64) - 1))


def emulated(prog: Program, isa: str, profile: bool = False) -> Emulated:
    """The Program's code for ``isa`` (compiled, linked and mapped on first use)."""
    attr = f"_emulated_{isa}" + ("_profile" if profile else "")
    e = getattr(prog, attr, None)
    if e is None:
        e = Emulated(prog, isa, profile)
        setattr(prog, attr, e)
    return e


def drive(prog: Program, repeat: int, budget: int, histogram: bool, calls: dict[int, int],
          isa: str) -> tuple:
    """``Program.run``'s outcome tuple from ``isa``'s code under unicorn."""
    return driver.drive(prog, repeat, budget, histogram, calls,
                        code_of=lambda p, profile: emulated(p, isa, profile))
