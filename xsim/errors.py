"""The one error family of xsim.

Every error a user can see derives from :class:`XsimError` and carries its
facts as attributes (pc, address, section, helper id, ...), so that tests
and tools match on fields rather than on message text.  This module is a
leaf: every layer, ``xsim.isa`` included, may import it.
"""
from __future__ import annotations


class XsimError(Exception):
    """Root of every error xsim raises on purpose."""


class DecodeError(XsimError):
    """Bytecode that is not a valid program: the pc, the raw bytes and why."""

    def __init__(self, reason: str, pc: int | None = None, raw: bytes = b"") -> None:
        self.reason, self.pc, self.raw = reason, pc, bytes(raw)
        where = f"pc {pc}" if pc is not None else "program"
        data = f" (bytes {raw.hex(' ')})" if raw else ""
        super().__init__(f"{where}: {reason}{data}")


class AsmError(XsimError):
    """Assembly text that could not be assembled: the line and why."""

    def __init__(self, reason: str, line: int | None = None, text: str = "") -> None:
        self.reason, self.line, self.text = reason, line, text
        where = f"line {line}: " if line is not None else ""
        quoted = f": {text.strip()!r}" if text.strip() else ""
        super().__init__(f"{where}{reason}{quoted}")


class ElfError(XsimError):
    """An ELF object that cannot be read: the file, the section (when known) and why."""

    def __init__(self, reason: str, path: str | None = None, section: str | None = None) -> None:
        self.reason, self.path, self.section = reason, path, section
        where = path or "ELF object"
        if section is not None:
            where += f": section {section!r}"
        super().__init__(f"{where}: {reason}")


class BtfError(ElfError):
    """BTF or BTF.ext data that cannot be read or used: the type id or byte offset
    (when known) and why.  ``section`` is ``.BTF``, ``.BTF.ext`` or ``.maps``."""

    def __init__(self, reason: str, section: str = ".BTF", type_id: int | None = None,
                 offset: int | None = None, path: str | None = None) -> None:
        self.type_id, self.offset = type_id, offset
        detail = f"type id {type_id}: {reason}" if type_id is not None else reason
        if offset is not None:
            detail += f" (at byte {offset} of the section)"
        super().__init__(detail, path, section)
        self.reason = reason


class ProgramNotFound(XsimError):
    """The file has no program by that name, or several and none was chosen."""

    def __init__(self, reason: str, available: list[str]) -> None:
        self.available = available
        names = ", ".join(available) or "none"
        super().__init__(f"{reason} (programs: {names})")


class RunError(XsimError):
    """A program stopped abnormally; ``pc`` is the instruction that stopped it."""

    def __init__(self, message: str, pc: int) -> None:
        self.pc = pc
        #: ``file:line: text`` of the C source of that instruction, when BTF line info has it
        self.source: str | None = None
        super().__init__(message)


class MemoryAccessError(RunError):
    """A load, store or atomic outside every region, or against its permissions."""

    def __init__(self, pc: int, address: int, size: int, access: str,
                 region: str | None, detail: str = "") -> None:
        self.address, self.size, self.access, self.region = address, size, access, region
        where = f"region {region!r}" if region else "no region"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"pc {pc}: invalid {access} of {size} bytes at {address:#x}: "
                         f"{where}{extra}", pc)


class BudgetExceeded(RunError):
    """The instruction budget ran out: most likely a runaway loop."""

    def __init__(self, pc: int, insns: int, budget: int) -> None:
        self.insns, self.budget = insns, budget
        super().__init__(f"pc {pc}: instruction budget of {budget} exhausted after "
                         f"{insns} instructions (a runaway loop? raise the budget "
                         "with budget=...)", pc)


class CallDepthExceeded(RunError):
    """More nested BPF-to-BPF calls than the kernel's MAX_CALL_FRAMES."""

    def __init__(self, pc: int, limit: int) -> None:
        self.limit = limit
        super().__init__(f"pc {pc}: call depth limit of {limit} frames exceeded "
                         "(the kernel's MAX_CALL_FRAMES)", pc)


class HelperError(RunError):
    """A helper call that cannot be made: unknown id, or the helper refused its arguments."""

    def __init__(self, pc: int, helper_id: int, reason: str, name: str = "") -> None:
        self.helper_id, self.name, self.reason = helper_id, name, reason
        label = f"helper {helper_id}" + (f" ({name})" if name else "")
        super().__init__(f"pc {pc}: {label}: {reason}", pc)


class UnresolvedReference(RunError):
    """An LD_IMM64 or call that names a map, variable, function or kfunc no loader resolved."""

    def __init__(self, pc: int, what: str,
                 hint: str | None = "load the program from its ELF object so the loader "
                                    "can fill it in") -> None:
        """``hint=None``: ``what`` is the whole story (the loader knew and said why)."""
        self.what = what
        text = f"{what} was never resolved: {hint}" if hint else what
        super().__init__(f"pc {pc}: {text}", pc)


class NativeUnsupported(XsimError):
    """Native code (the kernel's JIT image of a program) that needs something xsim cannot
    stand in for: a kernel function, a context field, a map type, per-CPU memory.
    ``what`` names it."""

    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"cannot run this kernel image: {what}: {reason}")
