"""What the JIT makes of a program, for people: LLVM IR, or host assembly with eBPF pcs.

The assembly comes from the object code itself, disassembled with capstone;
the pcs come from the DWARF line table of a debug build, whose line numbers
are eBPF pcs + 1 (debug info does not change the generated code).
"""
from __future__ import annotations

import io

import capstone
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..isa import interp as ip
from ..runtime.program import Program
from . import engine, lift

_CAPSTONE = {"x86_64": (capstone.CS_ARCH_X86, capstone.CS_MODE_64),
             "aarch64": (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM),
             "riscv64": (capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)}


def llvm_ir(prog: Program, optimized: bool = True) -> str:
    """The program's LLVM IR (blocks are named for their eBPF pcs: b12, fast12, ...)."""
    return engine.llvm_ir(prog._code, prog._st[ip.C_BASE:], prog.name, optimized,
                          prog.starts, prog._core)


def debug_object(prog: Program, target: tuple | None = None, profile: bool = False) -> bytes:
    """A debug build of the program's object code, for the host or for ``target``
    (triple, cpu, features, code model, as the emulator builds it; ``profile``: of its
    counting build).  The host's uses the
    small code model (the JIT itself loads large-model code): the instructions are the
    same but for how far calls and addresses reach, and pyelftools can relocate its
    line table."""
    if target is None:
        tm, triple = engine.target_machine(code_model="small"), None
    else:
        triple, cpu, features, code_model = target
        tm = engine.machine_for(triple, cpu, features, code_model)
    return tm.emit_object(engine.optimized_module(prog._code, prog._st[ip.C_BASE:], prog.name,
                                                  tm, triple, debug=True, profile=profile,
                                                  entries=prog.starts, core=prog._core))


def pc_lines(elf: ELFFile) -> dict[int, int]:
    """Native address (in .text) -> eBPF pc, from the line table."""
    out: dict[int, int] = {}
    if not elf.has_dwarf_info():
        return out
    try:
        dwarf = elf.get_dwarf_info()
    except ELFError:
        # pyelftools cannot apply riscv64 relocations; the line program's one sequence
        # starts at .text's offset 0, which unrelocated addresses already are
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    for cu in dwarf.iter_CUs():
        for entry in dwarf.line_program_for_CU(cu).get_entries():
            state = entry.state
            if state is not None and not state.end_sequence and state.line:
                out[state.address] = state.line - 1
    return out


def assembly(prog: Program, target: tuple | None = None, cs: tuple | None = None) -> str:
    """Assembly of every function of the program (the host's, or ``target``'s with the
    capstone ``cs`` (arch, mode)), each instruction run marked with the eBPF pc it was
    generated for."""
    arch = engine.host_triple().split("-")[0]
    if cs is None and arch not in _CAPSTONE:
        raise lift.JitUnsupported(f"no disassembler for {arch}")
    cs = cs or _CAPSTONE[arch]
    elf = ELFFile(io.BytesIO(debug_object(prog, target)))
    # the large code model of MCJIT puts x86-64 code in .ltext
    text = elf.get_section_by_name(".ltext") or elf.get_section_by_name(".text")
    code, lines = text.data(), pc_lines(elf)
    symtab = elf.get_section_by_name(".symtab")
    funcs = sorted((s.entry.st_value, s.entry.st_size, s.name) for s in symtab.iter_symbols()
                   if s.entry.st_info.type == "STT_FUNC" and s.entry.st_shndx != "SHN_UNDEF"
                   and elf.get_section(s.entry.st_shndx).name == text.name)
    md = capstone.Cs(*cs)
    out = []
    for start, size, name in funcs:
        out.append(f"{name}:")
        pc = None
        for insn in md.disasm(code[start:start + size], start):
            if insn.address in lines and lines[insn.address] != pc:
                pc = lines[insn.address]
                out.append(f"  ; pc {prog.where(pc)}")
            out.append(f"  {insn.address:6x}:  {insn.mnemonic:8} {insn.op_str}".rstrip())
    return "\n".join(out) + "\n"
