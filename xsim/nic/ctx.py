"""Context accesses rewritten as the kernel's verifier rewrites them, for every hook here.

Each hook gives its rule of which (offset, size, write) the verifier allows,
where its 64-bit pointers sit for the 32-bit ``data``/``data_end``/
``data_meta`` fields, and optionally how to convert other loads (narrow
fields).  The accesses come from the verifier's context-pointer tracking
(``xsim.isa.verifier.ctx_accesses``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from ..elf.spec import ProgramSpec
from ..isa import opcodes as oc
from ..isa.insn import Insn
from ..isa.verifier import ctx_accesses
from ..runtime.hooks import VerifierError

_LDXDW = oc.BY_KEY[(oc.LDX | oc.MODE_MEM | oc.SIZES["dw"][0], 0)]


def rewrite_context(spec: ProgramSpec, insns: list[Insn],
                    valid: Callable[[int, int, bool], bool], pointers: Mapping[int, int],
                    convert: Callable[[Insn, int], Insn] | None = None) -> list[Insn]:
    """The program with its context accesses converted; what the verifier refuses, a
    VerifierError with the verifier's message.

    ``pointers``: context field offset -> offset of its 64-bit pointer in the context
    region; ``convert(insn, off)``: any other conversion of a load at ``off``."""
    accesses = ctx_accesses(insns)
    out = []
    for insn in insns:
        off = accesses.get(insn.pc)
        if off is None:
            out.append(insn)
            continue
        size, write = insn.op.size, insn.op.kind is not oc.Kind.LDX
        if insn.op.kind is oc.Kind.ATOMIC:
            raise VerifierError(spec.name, insn.pc,
                                f"BPF_ATOMIC stores into R{insn.dst} ctx is not allowed")
        if not valid(off, size, write):
            raise VerifierError(spec.name, insn.pc,
                                f"invalid bpf_context access off={off} size={size}")
        if off in pointers:
            insn = Insn(_LDXDW, insn.pc, insn.dst, insn.src, insn.off + pointers[off] - off)
        elif not write and convert is not None:
            insn = convert(insn, off)
        out.append(insn)
    return out


#: the kernel's context structs are cache-line aligned; their stand-ins are laid out so
_ALIGN = 64


def place(sizes: list[int]) -> tuple[list[int], int]:
    """Offsets of structs of these sizes laid out one after another, each 64-byte
    aligned, and the bytes they take: where a hook's kernel context puts its structs."""
    offsets, at = [], 0
    for n in sizes:
        offsets.append(at)
        at += (n + _ALIGN - 1) // _ALIGN * _ALIGN
    return offsets, at
