"""Another JIT's machine code against the interpreter: the kernel's x86-64 JIT image of a
program (:mod:`xsim.kernel.image`) run under unicorn on xsim's inputs.

The image runs with the kernel's x86-64 BPF convention (arch/x86/net/bpf_jit_comp.c):
eBPF r0..r9 live in rax, rdi, rsi, rdx, rcx, r8, rbx, r13, r14, r15, r10 is the frame
pointer rbp, r1 (rdi) holds the context on entry, r0 comes back in rax, and helpers
are C calls (arguments in rdi..r8, the result in rax) to kernel addresses.  The run
is a tier of ``Program.run`` (:class:`NativeTier`), so the hook's test run lays out
the inputs and shapes the outputs exactly as it does for the interpreter.  What is
mapped, and where:

- each function of the image at its kernel address (``jited_ksyms``), the rest of
  its pages filled with int3;
- the stack so that the entry's rbp is xsim's stack top: frame 0's slots are the
  interpreter's, the pushes and the return address lie around them;
- every region of xsim's address space at its virtual address, except the arrays the
  code addresses itself (inlined lookups, global data): those at the kernel address
  of their values, ``struct bpf_array`` + ``value``;
- the hook's context as the kernel's structs (``struct xdp_buff`` and its rx queue,
  ``struct sk_buff``) at :data:`KERNEL_CTX`, built from xsim's context region by the
  hook (:class:`~xsim.runtime.hooks.KernelContext`); a syscall program's context is
  plain memory, the ``memory`` region itself.
- a per-CPU array's ``pptrs`` at its kernel address (element i's value for CPU 0 in
  xsim's region), and this CPU's per-CPU offset where gs:[this_cpu_off] reads it
  (:data:`PER_CPU_OFFSET`), which the inlined lookups add; the CPU number that the
  inlined bpf_get_smp_processor_id reads, where this CPU's copy of it would be;
- the stand-in elements of an LRU hash's inlined lookups at :data:`LRU_ELEMENTS`.

Every call target outside the image is a one-byte ``ret`` with a code hook on it:
``*_return_thunk`` is just that return; a helper (``bpf_<name>``, by the helper
table's names, or a map operation the verifier called directly, such as
``trie_lookup_elem``) runs xsim's helper of that id from the registry the
interpreter uses; ``__htab_map_lookup_elem`` (the verifier's inlined hash lookup)
runs xsim's lookup and returns the element address the inlined code adds the key's
length to (for an LRU hash, a stand-in element whose header the code writes); the
hook's kernel functions (the LD_ABS loaders) run its stand-ins.
Around each call the guest's memory and the kernel structs are copied into xsim's
address space and back; pointer arguments to the context, a map or an array's
values are translated to xsim's addresses, and an array value pointer coming back
to the kernel's.  The caller-saved registers come back poisoned, as a real call
may leave them.

An unmapped access, an illegal instruction or a run past the instruction cap is a
:class:`~xsim.crosscheck.emulate.JitDefect` with the native pc, never a crash.  What
xsim cannot stand in for (the kernel's per-CPU variables but the CPU number, a per-CPU
hash's inlined lookup, tail calls, callbacks, an unmirrored context field, a kernel
function it does not know) is :class:`~xsim.errors.NativeUnsupported`, raised before or
during the run.

A pointer argument is recognised by its value (the context's base, a kernel map
address, an address inside an array's values); a scalar with such a value would be
translated too, which kernel addresses make vanishingly unlikely.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import unicorn
from unicorn import x86_const as x86

from ..elf.kinds import MapType
from ..errors import HelperError, NativeUnsupported, XsimError
from ..isa import interp as ip
from ..isa import opcodes as oc
from ..isa.opcodes import Kind
from ..kernel.image import KernelImage, KernelImageError, program_sha256, scan
from ..runtime import testrun
from ..runtime.helper_table import BY_ID, BY_NAME
from ..runtime.helpers import KEEP_R0, HelperCall
from ..runtime.hooks import HOOKS, KernelContext
from ..runtime.maps import Map
from ..runtime.maps.base import round8
from ..runtime.memory import Region
from ..runtime.object import Object, ObjectProgram, load
from ..runtime.program import Program
from . import diff
from .emulate import INSNS_PER_EBPF, MIN_INSNS, JitDefect, unmapped

__all__ = ["KERNEL_CTX", "NativeTier", "RunInput", "Verdict", "crosscheck"]

ISA = "x86_64"
#: eBPF r0..r10 in the kernel's x86-64 JIT
BPF_REGS = (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDX,
            x86.UC_X86_REG_RCX, x86.UC_X86_REG_R8, x86.UC_X86_REG_RBX, x86.UC_X86_REG_R13,
            x86.UC_X86_REG_R14, x86.UC_X86_REG_R15, x86.UC_X86_REG_RBP)
ARGS = BPF_REGS[1:6]
#: what a C call may leave anything in (besides rax)
CALLER_SAVED = (x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDX, x86.UC_X86_REG_RCX,
                x86.UC_X86_REG_R8, x86.UC_X86_REG_R9, x86.UC_X86_REG_R10, x86.UC_X86_REG_R11)
POISON = 0xDEAD_0BAD_DEAD_0BAD
#: where the hook's kernel structs go, and the entry's return address
KERNEL_CTX = 0x7400_0000_0000
RETURN_AT = 0x7500_0000_0000
#: where the running CPU's per-CPU offset is (gs:[this_cpu_off] with gs based to land here)
PER_CPU_OFFSET = 0x7600_0000_0000
#: the stand-in elements of LRU hash lookups (a header the inlined lookup writes, a value)
LRU_ELEMENTS = 0x7700_0000_0000
_LRU_SPACE = 1 << 20
_PAGE = 0x1000
_MASK = (1 << 64) - 1
_INT3, _RET = 0xCC, b"\xc3"
_RETURN_THUNK = re.compile(r"return_thunk$")
#: a helper's kernel function is bpf_<name>, or for a helper XDP and skb programs both
#: have, bpf_xdp_<name> / bpf_skb_<name> (bpf_xdp_redirect, bpf_skb_fib_lookup); these not
_ALIASES = {"bpf_user_rnd_u32": "get_prandom_u32", "bpf_xdp_event_output": "perf_event_output",
            "bpf_skb_event_output": "perf_event_output"}
_HELPER_PREFIXES = ("bpf_", "bpf_xdp_", "bpf_skb_")
#: map operations the verifier calls directly instead of the helper (map->ops->...), by
#: the suffix every map type's implementation shares
_MAP_OPS = (("_lookup_percpu_elem", "map_lookup_percpu_elem"), ("_lookup_elem", "map_lookup_elem"),
            ("_update_elem", "map_update_elem"), ("_delete_elem", "map_delete_elem"),
            ("_push_elem", "map_push_elem"), ("_pop_elem", "map_pop_elem"),
            ("_peek_elem", "map_peek_elem"), ("_map_redirect", "redirect_map"))
_HTAB_LOOKUP = "__htab_map_lookup_elem"
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS.bpftool_name, MapType.HASH_OF_MAPS.bpftool_name)
_LOOKUP_ID = BY_NAME["map_lookup_elem"].id
#: BPF_ALU64 | BPF_MOV | BPF_X, with off BPF_ADDR_PERCPU: BPF_MOV64_PERCPU_REG; the moves
#: of an immediate and the loads around it
_MOV64_X, _ADDR_PERCPU = 0xBF, -1
_MOV64_K, _MOV32_K, _LDX_DW, _LDX_W = 0xB7, 0xB4, 0x79, 0x61
_SMP_ID = BY_NAME["get_smp_processor_id"].id


#: unicorn's x86-64 has no physical address above 2**52 and no MMU of its own here, so
#: its TLB is filled by a hook: the lower half of the address space is mapped as itself,
#: a (canonical) kernel address of the upper half to the same offset above 2**47
_LOW = (1 << 47) - 1
_HIGH = ((1 << 64) - 1) ^ _LOW


def physical(vaddr: int) -> int:
    """Where unicorn keeps the bytes of a virtual address."""
    return vaddr if vaddr <= _LOW else (vaddr & _LOW) | (1 << 47)


def virtual(paddr: int) -> int:
    """The virtual address of a physical one (the inverse of :func:`physical`)."""
    return paddr if paddr <= _LOW else (paddr & _LOW) | _HIGH


def _canonical(vaddr: int) -> bool:
    return vaddr <= _LOW or vaddr & _HIGH == _HIGH


def _fill_tlb(uc: unicorn.Uc, vaddr: int, access: int, entry, data: object) -> bool:
    if not _canonical(vaddr):
        return False
    entry.paddr = physical(vaddr) & ~(_PAGE - 1)
    entry.perms = unicorn.UC_PROT_ALL
    return True


def _pages(lo: int, hi: int) -> tuple[int, int]:
    return lo & ~(_PAGE - 1), (hi + _PAGE - 1) & ~(_PAGE - 1)


def _map_union(uc: unicorn.Uc, spans: Iterable[tuple[int, int]], fill: int = 0,
               perms: int = unicorn.UC_PROT_ALL) -> None:
    """Map the pages that cover every [lo, hi) virtual span (spans may share pages)."""
    pages = sorted({p for lo, hi in spans for p in range(*_pages(lo, hi), _PAGE)})
    runs: list[list[int]] = []
    for p in pages:
        if runs and runs[-1][1] == p:
            runs[-1][1] = p + _PAGE
        else:
            runs.append([p, p + _PAGE])
    for lo, hi in runs:
        uc.mem_map(physical(lo), hi - lo, perms)
        if fill:
            uc.mem_write(physical(lo), bytes([fill]) * (hi - lo))


Handler = Callable[["_Machine", tuple[int, ...]], int]


def _percpu_movs(xlated: bytes) -> list[tuple[str, int | None]]:
    """Each BPF_MOV64_PERCPU_REG of the verifier's code (a per-CPU pointer made this CPU's,
    which the x86-64 JIT adds gs:[this_cpu_off] for), by what it ends: ``("array", None)``
    an inlined per-CPU array lookup (``r = *(u64 *)(r + 0)`` of ``array->pptrs[i]`` before
    it), ``("u32", address)`` a 32-bit read of the per-CPU variable at ``address`` (``r =
    imm`` before it, ``r = *(u32 *)(r + 0)`` after: the inlined bpf_get_smp_processor_id),
    ``("other", None)`` anything else."""
    insns = [struct.unpack_from("<BBhi", xlated, 8 * i) for i in range(len(xlated) // 8)]
    out: list[tuple[str, int | None]] = []
    for i, (code, regs, off, _) in enumerate(insns):
        if code != _MOV64_X or off != _ADDR_PERCPU:
            continue
        prev = insns[i - 1] if i else (0, 0, 0, 0)
        after = insns[i + 1] if i + 1 < len(insns) else (0, 0, 0, 0)
        if prev[:3] == (_LDX_DW, regs, 0):
            out.append(("array", None))
        elif prev[0] in (_MOV64_K, _MOV32_K) and prev[1] & 0xF == regs & 0xF \
                and after[:3] == (_LDX_W, regs, 0):
            imm = prev[3] & _MASK if prev[0] == _MOV64_K else prev[3] & 0xFFFF_FFFF
            out.append(("u32", imm))
        else:
            out.append(("other", None))
    return out


def _per_cpu(image: KernelImage, op: ObjectProgram) -> tuple[int | None, list[int]]:
    """(the gs-relative address the image reads this CPU's per-CPU offset at, or None if
    it reads no per-CPU data; the addresses of the per-CPU CPU numbers it reads), or
    NativeUnsupported for per-CPU data xsim cannot stand in for.  xsim models the values
    of per-CPU arrays, which their inlined lookups reach through ``array->pptrs[i]`` plus
    this CPU's offset, and the CPU number of the inlined bpf_get_smp_processor_id (told
    apart from another 32-bit per-CPU variable by the program's calls of that helper)."""
    gs = [(pc, at) for address, code in image.function_code()
          for pc, at in scan(code, address).per_cpu]
    if not gs:
        return None, []
    movs = _percpu_movs(image.xlated)
    cpu_numbers = [at for kind, at in movs if kind == "u32"]
    calls = sum(i.op.kind is Kind.CALL and i.src == oc.CALL_HELPER and i.imm == _SMP_ID
                for i in op.program.insns)
    # each CPU number read stands for a call of the helper (one not inlined stays a call)
    if any(kind == "other" for kind, _ in movs) or len(cpu_numbers) > calls:
        raise NativeUnsupported("a per-CPU variable read", "xsim models per-CPU arrays' "
                                "values and the CPU number of bpf_get_smp_processor_id, not "
                                "the kernel's other per-CPU variables (the current task)")
    addresses = {at for _, at in gs}
    if len(movs) != len(gs) or len(addresses) != 1 or None in addresses:
        raise NativeUnsupported(f"per-CPU data (gs:) at {image.where(gs[0][0])}",
                                "it is not the JIT's gs:[this_cpu_off] of an inlined per-CPU "
                                "array lookup or CPU number")
    return gs[0][1], sorted(set(cpu_numbers))


class NativeTier:
    """A KernelImage as a tier of ``Program.run`` for one program of a loaded object."""

    def __init__(self, image: KernelImage, obj: Object, op: ObjectProgram) -> None:
        if image.arch != ISA:
            raise KernelImageError(f"the image is {image.arch} code; only x86_64 runs here")
        if image.program != op.name:
            raise KernelImageError(f"the image is of program {image.program!r}, not of "
                                   f"{op.name!r}")
        if program_sha256(op.spec) != image.program_sha256:
            raise KernelImageError(f"the image is of another build of {op.name!r} (bytecode "
                                   f"sha256 {image.program_sha256[:12]}..., {obj.path} has "
                                   f"{program_sha256(op.spec)[:12]}...): fetch it again")
        if image.prog_type != op.spec.prog_type:
            raise KernelImageError(f"the image is a {image.prog_type.kernel_name} program, "
                                   f"{op.name} a {op.prog_type} one")
        self.image = image
        #: the gs-relative address of this_cpu_off, where the code reads per-CPU data, and
        #: where the per-CPU CPU numbers of bpf_get_smp_processor_id are (for CPU 0)
        self.this_cpu_off, self.cpu_numbers = _per_cpu(image, op)
        self.windows: list[tuple[int, Map]] = []    # (kernel address of value 0, array)
        self.map_addresses: dict[int, Map] = {}     # struct bpf_map * -> map
        self.pptrs: list[tuple[int, Map]] = []      # (kernel address of pptrs[0], array)
        for m in image.maps:
            if m.type in _MAP_IN_MAP:
                raise NativeUnsupported(f"map {m.name} ({m.type})", "the code's inlined lookups "
                                        "load kernel map pointers from its values, which "
                                        "xsim's maps do not hold")
            mine = obj.maps.get(m.name)
            if mine is None or (mine.type.bpftool_name, mine.key_size, mine.value_size,
                                mine.max_entries) != (m.type, m.key_size, m.value_size,
                                                      m.max_entries):
                theirs = f"it has {mine!r}" if mine is not None else "it has no such map"
                raise KernelImageError(f"the image's map {m.name!r} ({m.type}, key {m.key_size},"
                                       f" value {m.value_size}, {m.max_entries} entries) is not "
                                       f"the object's: {theirs}")
            if m.kernel_address is not None:
                self.map_addresses[m.kernel_address] = mine
                if mine.type is MapType.PERCPU_ARRAY:
                    self.pptrs.append((m.kernel_address + image.offset("bpf_array", "value"),
                                       mine))
            if m.value_address is not None:
                self.windows.append((m.value_address, mine))
        hook = HOOKS.get(op.spec.prog_type)
        self.context: KernelContext | None = None
        if hook is not None:
            make = getattr(hook, "kernel_context", None)
            if make is None:
                raise NativeUnsupported(f"{op.prog_type} programs", "their hook has no model "
                                        "of the kernel's context structs")
            self.context = make(image.layouts, op.program.insns)
        self.handlers: dict[int, Handler | None] = {
            address: self._handler(names) for address, names in image.externals.items()}
        self.key_offset = image.offset("htab_elem", "key")

    def _handler(self, names: tuple[str, ...]) -> Handler | None:
        """What a call to a kernel address with these kallsyms names does (None: return)."""
        for name in names:
            if _RETURN_THUNK.search(name):
                return None
            if name == _HTAB_LOOKUP:
                return _htab_lookup
            if self.context is not None and name in self.context.functions:
                fn = self.context.functions[name]
                return lambda machine, args, fn=fn: machine.call(fn, args)
            candidates = [_ALIASES.get(name)] + [name[len(p):] for p in _HELPER_PREFIXES
                                                 if name.startswith(p)]
            candidates += [h for suffix, h in _MAP_OPS if name.endswith(suffix)]
            helper = next((h for h in candidates if h in BY_NAME), None)
            if helper is not None:
                hid = BY_NAME[helper].id
                return lambda machine, args, hid=hid: machine.helper(hid, args)
        raise NativeUnsupported(f"kernel function {'/'.join(names)}",
                                "xsim has no stand-in for it (tail calls, kfuncs and kernel "
                                "internals other than the inlined hash lookup are not run)")

    def drive(self, prog: Program, repeat: int, budget: int, histogram: bool,
              calls: dict[int, int]) -> tuple:
        """``repeat`` runs of the image on the inputs ``prog`` was prepared with.  Native
        code counts no eBPF instructions (insns 0) and keeps no histogram; the cap on
        native instructions is the emulator's, from ``budget``."""
        machine = _Machine(self, prog, calls)
        r0, error, runs = 0, None, 0
        cap = max(MIN_INSNS, INSNS_PER_EBPF * budget)
        for _ in range(repeat):
            r0, error = machine.run(cap)
            if error is not None:
                break
            runs += 1
        return prog, ip.DONE, error, 0, 0, runs, [prog], r0, {}


def _htab_lookup(machine: _Machine, args: tuple[int, ...]) -> int:
    """__htab_map_lookup_elem(map, key): the htab_elem whose key the inlined code steps
    over (offsetof(struct htab_elem, key) + round_up(key_size, 8)) to its value.  An LRU
    hash's inlined lookup also sets the element's ``lru_node.ref``, in a header xsim's
    maps have no room for: its element is a stand-in (:meth:`_Machine.lru_element`)."""
    m = machine.space.owner_at(args[0])
    if not isinstance(m, Map) or m.type not in (MapType.HASH, MapType.LRU_HASH):
        kind = m.type.bpftool_name if isinstance(m, Map) else "no map"
        raise NativeUnsupported(f"the inlined lookup of a {kind}", "only a plain or LRU hash "
                                "map's: a per-CPU hash's reads per-CPU data of hash elements")
    value = machine.helper(_LOOKUP_ID, args)
    if not value:
        return 0
    if m.type is MapType.LRU_HASH:
        return machine.lru_element(m, value)
    return value - machine.tier.key_offset - round8(m.key_size)


class _Machine:
    """One drive of the image: unicorn with everything mapped, and the run's state."""

    def __init__(self, tier: NativeTier, prog: Program, calls: dict[int, int]) -> None:
        self.tier, self.prog, self.calls = tier, prog, calls
        self.space = prog.space
        self.uc = uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        uc.ctl_set_tlb_mode(unicorn.UC_TLB_VIRTUAL)
        uc.hook_add(unicorn.UC_HOOK_TLB_FILL, _fill_tlb)
        image = tier.image
        _map_union(uc, [(f.address, f.address + f.length) for f in image.functions], _INT3)
        for address, code in image.function_code():
            uc.mem_write(physical(address), code)
        _map_union(uc, [(a, a + 1) for a in tier.handlers], _INT3)
        for address, handler in tier.handlers.items():
            uc.mem_write(physical(address), _RET)
            if handler is not None:
                uc.hook_add(unicorn.UC_HOOK_CODE, self._trampoline, begin=address, end=address)
        _map_union(uc, [(RETURN_AT, RETURN_AT + 1)])
        stack = self.space.by_name["stack"]
        self.stack_top = stack.vaddr + stack.capacity
        _map_union(uc, [(stack.vaddr - _PAGE, self.stack_top + _PAGE)])
        self.windows = [(address, m.region) for address, m in tier.windows]
        _map_union(uc, [(a, a + r.capacity) for a, r in self.windows])
        self.ctx_region = self.space.by_name["memory"]
        if tier.context is not None:
            _map_union(uc, [(KERNEL_CTX, KERNEL_CTX + tier.context.size)])
        self.cpu_offset = self._cpu_offset()
        if tier.this_cpu_off is not None:
            _map_union(uc, [(PER_CPU_OFFSET, PER_CPU_OFFSET + 8)])
            uc.reg_write(x86.UC_X86_REG_GS_BASE, (PER_CPU_OFFSET - tier.this_cpu_off) & _MASK)
        _map_union(uc, [(a, a + 8 * m.max_entries) for a, m in tier.pptrs])
        _map_union(uc, [(a + self.cpu_offset, a + self.cpu_offset + 4)
                        for a in tier.cpu_numbers])
        # the kernel's per-CPU data, fixed for the drive: written once, not at every sync
        if tier.this_cpu_off is not None:
            uc.mem_write(physical(PER_CPU_OFFSET), self.cpu_offset.to_bytes(8, "little"))
        for at in tier.cpu_numbers:
            uc.mem_write(physical((at + self.cpu_offset) & _MASK),
                         self.prog.env.cpu.to_bytes(4, "little"))
        for at, m in tier.pptrs:
            uc.mem_write(physical(at), struct.pack(f"<{m.max_entries}Q", *(
                m.value_address(i) for i in range(m.max_entries))))
        uc.hook_add(unicorn.UC_HOOK_MEM_INVALID, self._invalid)
        self._mapped: dict[str, tuple[int, int]] = {}
        _map_union(uc, [(LRU_ELEMENTS, LRU_ELEMENTS + _LRU_SPACE)])
        #: xsim's address of an LRU value -> (its stand-in's address, the value size)
        self.lru_values: dict[int, tuple[int, int]] = {}
        self._lru_free = LRU_ELEMENTS
        self.error: XsimError | None = None
        self.unsupported: NativeUnsupported | None = None
        self.stop: int | None = None

    def _cpu_offset(self) -> int:
        """This CPU's per-CPU offset: what makes ``array->pptrs[i]`` (here element i's value
        for CPU 0 in xsim's region) element i's value for the running CPU.  xsim keeps an
        element's per-CPU values side by side, so that offset is the CPU times the value
        slot, one number for every per-CPU array only where their slots are one size."""
        cpu = self.prog.env.cpu
        slots = {m.elem for _, m in self.tier.pptrs}
        if cpu and len(slots) > 1:
            raise NativeUnsupported(f"per-CPU arrays of value slots {sorted(slots)} on CPU {cpu}",
                                    "xsim's per-CPU values of arrays of different value sizes "
                                    "are not one per-CPU offset apart (run on CPU 0)")
        return cpu * slots.pop() if slots else 0

    def lru_element(self, m: Map, value: int) -> int:
        """A stand-in htab_elem in the guest for the LRU value at xsim's ``value``: a zeroed
        header (the inlined lookup tests and sets its ``lru_node.ref``) and a copy of the
        value, which the syncs keep equal to xsim's, for the rest of the run."""
        head = self.tier.key_offset + round8(m.key_size)
        if value not in self.lru_values:
            size = head + round8(m.value_size)
            if self._lru_free + size > LRU_ELEMENTS + _LRU_SPACE:
                raise NativeUnsupported("an LRU hash lookup", f"more LRU elements in one run "
                                        f"than the {_LRU_SPACE} bytes set aside for them")
            self.uc.mem_write(physical(self._lru_free), bytes(head))
            self.lru_values[value] = (self._lru_free + head, m.value_size)
            self._lru_free += size
        return self.lru_values[value][0] - head

    # -- memory: xsim's regions and the kernel structs, in and out ------------------------
    def _placements(self) -> list[tuple[Region, int]]:
        """Each region the guest sees and where: its vaddr, or its kernel window."""
        windowed = {r.name: a for a, r in self.windows}
        return [(r, windowed.get(r.name, r.vaddr)) for r in self.space.regions
                if r.capacity and not r.internal]

    def _remap(self) -> None:
        """Map the regions at their vaddrs again where they grew (a helper moved them)."""
        windowed = {r.name for _, r in self.windows}
        for r in self.space.regions:
            if not r.capacity or r.internal or r.name in windowed or r.name == "stack":
                continue
            span = _pages(r.vaddr, r.vaddr + r.capacity)
            if self._mapped.get(r.name) != span:
                if r.name in self._mapped:
                    lo, hi = self._mapped[r.name]
                    self.uc.mem_unmap(physical(lo), hi - lo)
                _map_union(self.uc, [span])
                self._mapped[r.name] = span

    def sync_in(self) -> None:
        """xsim's regions and context into the guest."""
        self._remap()
        mem = self.space.mem
        for r, at in self._placements():
            self.uc.mem_write(physical(at), mem[r.host:r.host + r.capacity].tobytes())
        ctx = self.tier.context
        if ctx is not None:
            self.uc.mem_write(physical(KERNEL_CTX), ctx.to_kernel(self._ctx_bytes(), KERNEL_CTX))
        for value, (guest, size) in self.lru_values.items():
            self.uc.mem_write(physical(guest), self.space.read(value, size))

    def sync_out(self) -> None:
        """The guest's memory and kernel structs back into xsim's regions and context."""
        mem = self.space.mem
        for r, at in self._placements():
            mem[r.host:r.host + r.capacity] = memoryview(self.uc.mem_read(physical(at),
                                                                           r.capacity))
        for value, (guest, size) in self.lru_values.items():
            self.space.write(value, bytes(self.uc.mem_read(physical(guest), size)))
        ctx = self.tier.context
        if ctx is not None:
            new = ctx.from_kernel(bytes(self.uc.mem_read(physical(KERNEL_CTX), ctx.size)),
                                  self._ctx_bytes())
            r = self.ctx_region
            mem[r.host:r.host + len(new)] = memoryview(new)

    def _ctx_bytes(self) -> bytes:
        r = self.ctx_region
        return self.space.mem[r.host:r.host + r.size].tobytes()

    def to_xsim(self, value: int) -> int:
        """A pointer argument as xsim's helpers know it."""
        if self.tier.context is not None and value == KERNEL_CTX:
            return self.ctx_region.vaddr
        m = self.tier.map_addresses.get(value)
        if m is not None:
            return m.address
        for at, r in self.windows:
            if at <= value < at + r.capacity:
                return r.vaddr + value - at
        for mine, (guest, size) in self.lru_values.items():
            if guest <= value < guest + size:
                return mine + value - guest
        return value

    def to_kernel(self, value: int) -> int:
        """A pointer xsim's helper returned, as the guest sees it (an array's value)."""
        for at, r in self.windows:
            if r.vaddr <= value < r.vaddr + r.capacity:
                return at + value - r.vaddr
        return value

    # -- calls out of the guest ---------------------------------------------------------
    def call(self, fn: Callable[[HelperCall], object], args: tuple[int, ...]) -> int:
        """Run ``fn`` as a helper on xsim's address space (pc -1: the native code has none)."""
        call = HelperCall(args, -1, self.space, self.prog.env,  # type: ignore[arg-type]
                          words=self.prog._st)
        r0 = fn(call)
        if r0 is KEEP_R0 or call.tail_target is not None:
            raise NativeUnsupported("bpf_tail_call", "the native runner does not follow tail "
                                    "calls into other kernel images")
        if call.stop_value is not None:
            self.stop = call.stop_value
        return int(r0)  # type: ignore[call-overload]

    def helper(self, hid: int, args: tuple[int, ...]) -> int:
        """xsim's helper ``hid`` from the registry the interpreter uses."""
        helper = self.prog.helpers.get(hid)
        if helper is None:
            known = BY_ID.get(hid)
            raise HelperError(-1, hid, "xsim does not provide this helper here",
                              f"bpf_{known.name}" if known else "")
        self.calls[hid] = self.calls.get(hid, 0) + 1
        try:
            return self.call(helper.fn, args)
        except (XsimError, NativeUnsupported):
            raise
        except Exception as exc:    # a helper's own bug must not look like the image's
            raise HelperError(-1, hid, f"the helper raised {type(exc).__name__}: {exc}",
                              helper.name) from None

    def _trampoline(self, uc: unicorn.Uc, address: int, size: int, data: object) -> None:
        handler = self.tier.handlers[address]
        assert handler is not None      # return thunks have no hook
        args = tuple(self.to_xsim(uc.reg_read(r)) for r in ARGS)
        try:
            self.sync_out()
            result = handler(self, args)
            self.sync_in()
        except NativeUnsupported as exc:
            self.unsupported = exc
            uc.emu_stop()
            return
        except XsimError as exc:
            self.error = exc
            uc.emu_stop()
            return
        for reg in CALLER_SAVED:
            uc.reg_write(reg, POISON)
        uc.reg_write(x86.UC_X86_REG_RAX, self.to_kernel(result & _MASK))
        if self.stop is not None:
            uc.emu_stop()

    def _invalid(self, uc: unicorn.Uc, access: int, address: int, size: int, value: int,
                 data: object) -> bool:
        self.error = unmapped(ISA, access, virtual(address), size,
                              uc.reg_read(x86.UC_X86_REG_RIP))
        return False

    # -- one run ------------------------------------------------------------------------
    def run(self, cap: int) -> tuple[int, XsimError | None]:
        """One run from the entry: (r0, error)."""
        uc, space = self.uc, self.space
        space.set_window("stack", 0, space.by_name["stack"].size)
        self.error, self.stop = None, None
        self.sync_in()
        for reg in BPF_REGS:
            uc.reg_write(reg, 0)
        ctx = KERNEL_CTX if self.tier.context is not None else self.ctx_region.vaddr
        uc.reg_write(x86.UC_X86_REG_RDI, ctx)
        sp = self.stack_top + 8     # the prologue's push rbp; mov rbp, rsp: rbp = the top
        uc.mem_write(physical(sp), RETURN_AT.to_bytes(8, "little"))
        uc.reg_write(x86.UC_X86_REG_RSP, sp)
        try:
            uc.emu_start(self.tier.image.entry, RETURN_AT, count=cap)
        except unicorn.UcError as exc:
            if self.error is None and self.unsupported is None:
                self.error = JitDefect(ISA, str(exc), uc.reg_read(x86.UC_X86_REG_RIP))
        pc = uc.reg_read(x86.UC_X86_REG_RIP)
        if self.unsupported is not None:
            raise self.unsupported
        if self.error is None and self.stop is None and pc != RETURN_AT:
            self.error = JitDefect(ISA, f"still running after {cap} instructions", pc)
        self.sync_out()
        self.lru_values.clear()             # a run's element pointers end with it
        self._lru_free = LRU_ELEMENTS
        r0 = self.stop if self.stop is not None else uc.reg_read(x86.UC_X86_REG_RAX)
        return r0, self.error


# -- the cross-check ------------------------------------------------------------------------

@dataclass(frozen=True)
class RunInput:
    """One test run's inputs: a label for reports (``packet 17``), data and context."""

    label: str
    data_in: bytes | None = None
    ctx_in: bytes | None = None


@dataclass(frozen=True)
class Verdict:
    """How many runs were compared, and the first difference (None: they agree)."""

    runs: int
    difference: str | None

    @property
    def agree(self) -> bool:
        return self.difference is None


def _facts(obj: Object, op: ObjectProgram, tier: str | NativeTier, run: RunInput, repeat: int,
           budget: int) -> dict:
    """What the interpreter and the image must agree on after one test run."""
    try:
        out = testrun.test_run(op, data_in=run.data_in, ctx_in=run.ctx_in, repeat=repeat,
                               budget=budget, tier=tier)
    except NativeUnsupported:
        raise
    except XsimError as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}
    res = out.result
    error = None if res.error is None else (type(res.error).__name__, str(res.error))
    return {"run": {"r0": res.r0, "error": error}, "data_out": out.data_out,
            "ctx_out": out.ctx_out, "redirect": out.redirect, "printk": out.printk,
            "maps": {name: testrun.dump_map(m) for name, m in obj.maps.items()}}


def crosscheck(image: KernelImage, path: str | Path, prog_name: str | None,
               runs: Sequence[RunInput], *, maps_in: list | None = None, repeat: int = 1,
               budget: int = 10_000, ncpus: int = 1, cpu: int = 0) -> Verdict:
    """Each run on the interpreter and on the image, each side on its own load of the
    object (``maps_in`` applied to both, maps kept from run to run as over a capture;
    per-CPU maps of ``ncpus`` CPUs, the runs on ``cpu``): the number of runs compared up
    to the first difference, and that difference."""
    sides = []
    for _ in range(2):
        obj = load(path, ncpus=ncpus, cpu=cpu)
        if maps_in:
            testrun.apply_maps_in(obj, maps_in)
        sides.append((obj, obj.choose(prog_name or image.program)))
    (ref_obj, ref_op), (nat_obj, nat_op) = sides
    tier = NativeTier(image, nat_obj, nat_op)
    for k, run in enumerate(runs):
        found = diff.first_difference(_facts(ref_obj, ref_op, "interp", run, repeat, budget),
                                      _facts(nat_obj, nat_op, tier, run, repeat, budget))
        if found is not None:
            return Verdict(k + 1, f"{run.label}: {found}")
    return Verdict(len(runs), None)
