"""An object's programs linked into one program, so that a tail call is a jump.

A program that tail calls runs, unlinked, one Python-level step per program of
its chain: each tail call returns to Python, which starts the target on the same
inputs.  Linked, the object's programs lie one after another in one code array,
each prog array slot holds where its program starts (``ProgArrayMap.link``), and
the interpreter's core serves ``bpf_tail_call`` itself (``interp.tail_call``): it
checks the index, the slot and the limit of 33 as the Python helper does and
jumps, the target starting in the caller's frame as in the kernel (from a
subprogram, the target's exit returns to that subprogram's caller).  The repeat
loop and a capture's per-packet loop then stay inside compiled code, whatever the
chain.  Everything a run reports is the member's where the run ended: its pcs,
its source lines, its errors; each member's instruction counts are its slice of
the linked code's.

Programs link when they are all of one program type (the kernel's prog arrays
hold programs of the type of the program that uses them, and a linked program
has one hook's helpers) and none can run off its end into the next.
"""
from __future__ import annotations

import bisect

from ..errors import HelperError, XsimError
from ..isa import interp as ip
from ..isa.insn import decode
from ..isa.opcodes import Kind
from .program import Program

#: the state words a member takes from the linked program to explain its run's end
_OWN = slice(0, ip.S_LINK)


def starts(programs: list[Program]) -> list[int]:
    """Where each program starts in the code that links ``programs`` in this order."""
    out, at = [], 0
    for p in programs:
        out.append(at)
        at += p.n_slots
    return out


def linkable(programs: list[Program]) -> bool:
    """Whether none of ``programs`` can run off its end (into the next, once linked)."""
    return all(p.insns and p.insns[-1].op.kind in (Kind.EXIT, Kind.JA) for p in programs)


class LinkedProgram(Program):
    """``members`` (an object's programs, in its order) as one program whose tail calls
    the core serves; it runs on behalf of one member at a time (:meth:`drive_for`)."""

    def __init__(self, members: list[Program]) -> None:
        first = members[0]
        code = b"".join(m.code for m in members)
        self.members = members
        self.starts = tuple(starts(members))
        super().__init__(decode(code), sum(m.n_slots for m in members),
                         name="+".join(m.name for m in members), helpers=first.helpers,
                         space=first.space, env=first.env)
        self._tail_calls = False        # the core serves them (r2 no prog array: Python)
        self._st[ip.S_LINK] = 1
        self._member = 0                # whose helper call Python serves now

    def member_at(self, pc: int) -> int:
        """The index of the member whose code holds linked pc ``pc``."""
        return max(bisect.bisect_right(self.starts, pc) - 1, 0)

    def where(self, pc: int) -> str:
        k = self.member_at(pc)
        return f"{pc} ({self.members[k].name} pc {pc - self.starts[k]})"

    def enter(self, entry: Program) -> None:
        """Start each run at ``entry``'s code (one of the members)."""
        self._st[ip.S_ENTRY] = self.starts[self.members.index(entry)]

    def drive_for(self, entry: Program, tier: str, repeat: int, budget: int,
                  histogram: bool, calls: dict[int, int]) -> tuple:
        """``entry.drive_tier``'s outcome, run here: the inputs ``entry.prepare`` laid out,
        each run starting at ``entry``'s code; the run's end reported by the member it
        ended in (its state words, with its own pc)."""
        st = self._st
        entry.share_inputs(self)
        st[ip.S_CORE] = entry._st[ip.S_CORE]
        self.enter(entry)
        if histogram:
            self._counts[:] = 0
        _, status, error, insns, total, runs, _, r0, served = \
            Program.drive_tier(self, tier, repeat, budget, histogram, calls)
        pc = int(st[ip.S_PC])
        last = self._as_member(pc, self.member_at(pc - 1 if status == ip.DONE else pc))
        used = self.traced(entry) if histogram else [last]
        return last, status, error, insns, total, runs, used, r0, served

    def traced(self, entry: Program) -> list[Program]:
        """The members that counted runs from ``entry`` went through (``entry`` first,
        then the others in the object's order), each member's per-pc counts set to its
        slice of the linked code's."""
        used = [entry]
        for m, start in zip(self.members, self.starts):
            m._counts[:] = self._counts[start:start + m.n_slots]
            if m is not entry and m._counts.any():
                used.append(m)
        return used

    def _call_helper(self, calls: dict[int, int],
                     chain: int) -> tuple[XsimError | None, Program | None]:
        """The member's helper call, with its own pc: what a helper reports is in the
        member's terms (a callback's pointer too, see _invoke)."""
        st = self._st
        pc = int(st[ip.S_PC])
        self._member = k = self.member_at(pc)
        start = self.starts[k]
        st[ip.S_PC] = pc - start
        error, target = super()._call_helper(calls, int(st[ip.S_CHAIN]))
        st[ip.S_PC] += start
        if target is not None:      # one the core left: in a callback, or no member's
            error = HelperError(pc - start, ip.TAIL_CALL, "a tail call the linked code cannot "
                                "make: from a callback, or to a slot whose word names no "
                                "member")
        return error, None

    def _as_member(self, pc: int, k: int) -> Program:
        """Member ``k``, given this run's state words, with linked pc ``pc`` as its own."""
        member = self.members[k]
        member._st[_OWN] = self._st[_OWN]
        member._st[ip.S_PC] = pc - self.starts[k]
        return member

    def _explain(self, status: int) -> XsimError:
        """A stop inside a callback (see _invoke), explained by its member."""
        pc = int(self._st[ip.S_PC])
        return self._as_member(pc, self.member_at(pc))._explain(status)

    def _invoke(self, pointer: int, args: tuple[int, ...], calls: dict[int, int], pc: int,
                helper_id: int) -> int:
        """A callback of the member whose helper Python serves: its function pointer names
        a slot of that member, and the pc of a stop inside it is its own."""
        member = self.members[self._member]
        start = self.starts[self._member]
        slot = ip.function_slot(pointer, member.n_slots)
        if slot is not None:
            pointer += start * 8
        return super()._invoke(pointer, args, calls, pc, helper_id)
