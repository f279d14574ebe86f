"""The checks of a program against a rule set, over what the analysis derived, and
:func:`refusals`, the checker's entry: every reason the target's toolchain would
refuse the program, as :class:`Refusal` records."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ...crosscheck.footprint import frame_depth
from ...elf.loader import is_data_section
from ...elf.spec import MapSpec
from ...isa import opcodes as oc
from ...isa.insn import Insn
from ...isa.opcodes import Kind
from ...runtime.helper_table import BY_ID
from ...runtime.object import Object
from .analysis import _Analysis, _CTX_NAMES, _Program, _is_helper_call, _is_local_call
from .rules import POINTER_KINDS, RuleSet, load_rules
from .values import State, Val, _U32, _num_of, _pointers


# -- what a refusal is ----------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """One reason the target refuses the program.

    ``kind``: "program", "size", "stack", "map", "helper", "call", "insn" or "exit";
    ``pc``: the instruction (None for the program or a map); ``line``: ``file:line``
    from BTF line info; ``what``: the helper, map, instruction or program it is about.
    """

    kind: str
    pc: int | None
    line: str | None
    what: str
    reason: str

    def __str__(self) -> str:
        where = "" if self.pc is None else f"pc {self.pc}"
        if self.line:
            where += f" ({self.line})" if where else self.line
        return f"{where}: {self.what}: {self.reason}" if where else f"{self.what}: {self.reason}"


# -- the checks -------------------------------------------------------------------------

def _line(spec_lines: tuple, pc: int | None) -> str | None:
    """``file:line`` of the C source line that instruction comes from (BTF line info)."""
    if pc is None:
        return None
    best = None
    for slot, file, num, _ in spec_lines:
        if slot > pc:
            break
        best = f"{Path(file).name}:{num}"
    return best


def _kinds(v: Val | None) -> set[str]:
    return {kind for kind, _ in _pointers(v)}


def _say(kinds: Iterable[str]) -> str:
    return " or ".join(POINTER_KINDS[k] for k in sorted(kinds))


class _Checker:
    """Runs every rule of a rule set over one analysed program, collecting refusals."""

    def __init__(self, rules: RuleSet, prog: _Program, states: dict[int, State]) -> None:
        self.r, self.p, self.states = rules, prog, states
        self.out: list[Refusal] = []
        #: map -> 4-byte word -> (use, pc) of its first use: "read" or "atomic"
        self.words: dict[str, dict[int, tuple[str, int]]] = {}
        #: map -> words a bpf_map_update_elem may write non-zero, with the call's pc
        self.nonzero: dict[str, dict[int, int]] = {}

    def refuse(self, kind: str, pc: int | None, what: str, reason: str) -> None:
        ref = Refusal(kind, pc, _line(self.p.op.spec.lines, pc), what, reason)
        if ref not in self.out:
            self.out.append(ref)

    def run(self) -> list[Refusal]:
        self.program()
        self.maps()
        self.size()
        self.stack()
        for pc in sorted(self.states):
            insn = self.p.by_pc.get(pc)
            if insn is not None:
                self.insn(insn, self.states[pc])
        self.atomic_words()
        return sorted(self.out, key=lambda f: (f.pc is not None, f.pc or 0))

    # program-level rules
    def program(self) -> None:
        if self.p.ptype not in self.r.prog_types:
            self.refuse("program", None, self.p.ptype,
                        f"{self.r.short} takes only {', '.join(sorted(self.r.prog_types))} "
                        f"programs ({self.r.prog_source})")

    def size(self) -> None:
        rule = self.r.size
        if rule is None:
            return
        n = len(self.p.insns)
        need = math.ceil(n / rule["per"])
        if need > rule["max"]:
            each = "" if rule["per"] == 1 else f" of {rule['per']} instructions each"
            self.refuse("size", None, self.p.op.name,
                        f"{n} eBPF instructions need at least {need} {rule['unit']}{each}, "
                        f"more than the {rule['max']} {self.r.short} holds ({rule['source']}); "
                        "split the program or move work to the host")

    def stack(self) -> None:
        rule = self.r.stack
        if rule is None:
            return
        frames, calls, names = {}, {}, {}
        for slot, body in _functions(self.p):
            depth = frame_depth(body)
            if slot != 0:
                depth += rule["call_overhead"]
                if any(6 <= i.dst <= 9 for i in body):      # needs_reg_push
                    depth += rule["callee_saved_overhead"]
            frames[slot] = -(-depth // rule["frame_align"]) * rule["frame_align"]
            calls[slot] = sorted({i.target for i in body if _is_local_call(i)})
            names[slot] = dict(self.p.op.spec.func_names).get(slot, f"{self.p.op.name}+{slot}")
        total, chain = _deepest(0, frames, calls)
        if total > rule["max"]:
            path = " -> ".join(names[s] for s in chain)
            self.refuse("stack", None, path,
                        f"the call chain takes {total} bytes of stack as {self.r.short} counts "
                        f"it (frames rounded up to {rule['frame_align']} bytes, a return "
                        f"address and saved r6-r9 per call), more than its {rule['max']} "
                        f"({rule['source']}); keep large buffers in a map value")

    def maps(self) -> None:
        rule = self.r.maps
        if rule is None:
            return
        used = _used_maps(self.p)
        total = 0
        for m in used:
            kind = m.type.bpftool_name
            data = is_data_section(m.section) or m.section == ".kconfig"
            if kind in rule["host"]:
                continue                  # stays on the host, checked at its helper calls
            if kind not in rule["types"]:
                self.refuse("map", None, m.name,
                            f"it is a {kind} map, and {self.r.short} takes only "
                            f"{', '.join(sorted(rule['types']))} maps ({rule['source']})")
            flags = m.flags | (_libbpf_data_flags(m) if data else 0)
            if rule["flags"] is False and flags:
                named = " | ".join(_flag_names(flags))
                why = (f"libbpf creates the {m.section} map with flags {flags:#x} ({named})"
                       if data else f"the map has map_flags {flags:#x} ({named})")
                self.refuse("map", None, m.name,
                            f"{why}, and {self.r.short} takes no map flags ({rule['source']}); "
                            + ("use a map of your own instead of global data" if data
                               else "drop the flags"))
            self._map_sizes(m, rule)
            total += m.max_entries
        limit = rule.get("max_entries_total")
        if limit is not None and total > limit:
            self.refuse("map", None, ", ".join(m.name for m in used),
                        f"the maps hold {total} entries together, more than the {limit} "
                        f"{self.r.short} has for all maps ({rule['source']})")

    def _map_sizes(self, m: MapSpec, rule: dict) -> None:
        align = rule["elem_align"]
        checks = [("key", m.key_size, rule.get("max_key_size")),
                  ("value", m.value_size, rule.get("max_value_size"))]
        for what, size, limit in checks:
            if limit is not None and size > limit:
                self.refuse("map", None, m.name,
                            f"its {what} is {size} bytes, more than the {limit} "
                            f"{self.r.short} takes ({rule['source']})")
        limit = rule.get("max_elem_size")
        elem = -(-m.key_size // align) * align + -(-m.value_size // align) * align
        if limit is not None and elem > limit:
            self.refuse("map", None, m.name,
                        f"an element takes {elem} bytes (key and value each rounded up to "
                        f"{align}), more than the {limit} {self.r.short} takes "
                        f"({rule['source']}); shrink the key or the value")

    # instruction-level rules
    def insn(self, insn: Insn, s: State) -> None:
        op = insn.op
        for rule in self.r.insns:
            if rule.matches(op):
                self.refuse("insn", insn.pc, op.name, rule.reason)
        if _is_helper_call(insn):
            self.helper(insn, s)
        elif op.kind is Kind.CALL and op.disc_value == oc.CALL_KFUNC and not self.r.kfuncs:
            self.refuse("helper", insn.pc, f"kfunc (BTF id {insn.imm})",
                        f"{self.r.short} calls no kernel functions; it supports only the "
                        f"helpers {_helper_list(self.r)} ({self.r.helper_source})")
        elif _is_local_call(insn) and not self.r.local_calls:
            self.refuse("call", insn.pc, "bpf-to-bpf call",
                        f"{self.r.short} does not support calls to subprograms "
                        f"({self.r.calls_source}); mark the callee __always_inline")
        elif op.kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
            self.memory(insn, s)
        elif op.kind is Kind.ALU:
            self.alu(insn, s)
        elif op.kind is Kind.EXIT:
            self.exit(insn, s)

    def helper(self, insn: Insn, s: State) -> None:
        info = BY_ID.get(insn.imm)
        name = info.name if info else None
        what = f"bpf_{name}" if name else f"helper {insn.imm}"
        if name not in self.r.helpers:
            self.refuse("helper", insn.pc, what,
                        f"{self.r.short} supports only the helpers {_helper_list(self.r)} "
                        f"({self.r.helper_source}); do this on the host or in a program "
                        "that is not offloaded")
            return
        types = self.r.helper_prog_types.get(name)
        if types is not None and self.p.ptype not in types:
            self.refuse("helper", insn.pc, what,
                        f"{self.r.short} supports it only in {', '.join(sorted(types))} "
                        f"programs, not {self.p.ptype} ({self.r.helper_source})")
        host = (self.r.maps or {}).get("host", {})
        passed = [key for r in range(1, 6) for key in _pointers(s.regs.get(r))]
        for (kind, ref) in passed:
            if kind == "map" and ref in self.p.maps:
                mtype = self.p.maps[ref].type.bpftool_name
                if mtype in host and name not in host[mtype]:
                    self.refuse("helper", insn.pc, what,
                                f"the {mtype} map {ref} stays on the host: {self.r.short} "
                                f"uses it only through {', '.join(sorted(host[mtype]))} "
                                f"({self.r.maps['source']})")
        args = self.r.helper_args
        if args is None:
            return
        if name in ("map_lookup_elem", "map_update_elem", "map_delete_elem"):
            self._stack_arg(insn, s, 2, what, "key", args)
            if name == "map_update_elem":
                self._stack_arg(insn, s, 3, what, "value", args)
                self._update_value(insn, s)
        if name == "perf_event_output":
            self._perf_event_output(insn, s, what, args)

    def _stack_arg(self, insn: Insn, s: State, reg: int, what: str, role: str,
                   args: dict) -> None:
        v = s.regs.get(reg)
        kinds = _kinds(v)
        align = args["stack_args_align"]
        if kinds - {"stack"} or not kinds:
            where = _say(kinds - {"stack"}) if kinds - {"stack"} else "something xsim cannot type"
            self.refuse("helper", insn.pc, what,
                        f"its {role} (r{reg}) points to {where}; {self.r.short} takes map "
                        f"keys and values only from the stack ({args['source']}); copy it to "
                        f"a {align}-byte aligned stack slot first")
            return
        for (kind, _), offs in _pointers(v).items():
            if offs is None:
                self.refuse("helper", insn.pc, what,
                            f"its {role} (r{reg}) is at a variable stack offset; "
                            f"{self.r.short} needs a constant one ({args['source']})")
            elif any(o % align for o in offs):
                self.refuse("helper", insn.pc, what,
                            f"its {role} (r{reg}) is at stack offset "
                            f"{', '.join(map(str, sorted(offs)))}, not {align}-byte aligned "
                            f"({args['source']}); align the variable")

    def _update_value(self, insn: Insn, s: State) -> None:
        """Words bpf_map_update_elem() may write non-zero, for the atomic-counter rule."""
        if not (self.r.memory or {}).get("zeroed_atomic_words"):
            return
        value = _pointers(s.regs.get(3))
        frame = self.p.function_of(insn.pc)
        for (kind, ref) in _pointers(s.regs.get(1)):
            if kind != "map" or ref not in self.p.maps:
                continue
            size = self.p.maps[ref].value_size
            words = self.nonzero.setdefault(ref, {})
            for (vkind, vref), offs in value.items():
                for o in (offs or ()):
                    known_zero = vkind == "stack" and vref == frame
                    for i in range(size):
                        if not (known_zero and o + i in s.zeros):
                            words.setdefault(i // 4, insn.pc)
                if offs is None:
                    for i in range(size):
                        words.setdefault(i // 4, insn.pc)

    def _perf_event_output(self, insn: Insn, s: State, what: str, args: dict) -> None:
        if args["current_cpu"]:
            flags = _num_of(s.regs.get(3))
            if flags.vals is None or any(v & _U32 != _U32 for v in flags.vals):
                self.refuse("helper", insn.pc, what,
                            f"its flags (r3) must be BPF_F_CURRENT_CPU for {self.r.short}, "
                            f"which sends events from whichever CPU it runs on "
                            f"({args['source']})")
        allowed = args["output_data"]
        if allowed is not None:
            bad = _kinds(s.regs.get(4)) - allowed
            if bad:
                self.refuse("helper", insn.pc, what,
                            f"its data (r4) points to {_say(bad)}; {self.r.short} sends "
                            f"only {_say(allowed)} ({args['source']})")
            if "stack" in _kinds(s.regs.get(4)) and "stack" in allowed:
                self._stack_arg(insn, s, 4, what, "data", args)

    def memory(self, insn: Insn, s: State) -> None:
        rule = self.r.memory
        if rule is None:
            return
        op = insn.op
        if op.kind is Kind.LDX:
            base_reg, access, allowed = insn.src, "load from", rule["load"]
        elif op.kind is Kind.STX:
            base_reg, access, allowed = insn.dst, "store into", rule["store"]
        elif op.kind is Kind.ST:
            base_reg, access, allowed = insn.dst, "store an immediate into", rule["store_imm"]
        else:
            base_reg, access, allowed = insn.dst, "do an atomic operation on", rule["atomic"]
        base = _pointers(s.regs.get(base_reg))
        kinds = {kind for kind, _ in base}
        src = rule["source"]
        if allowed is not None and kinds - allowed:
            advice = {"map_value": "; update the value with bpf_map_update_elem() or count "
                                   "with an atomic add",
                      "stack": ""}.get(next(iter(sorted(kinds - allowed))), "")
            self.refuse("insn", insn.pc, op.name,
                        f"{self.r.short} cannot {access} {_say(kinds - allowed)} "
                        f"(r{base_reg}), only {_say(allowed)} ({src}){advice}")
        if rule["one_pointer_type"] and len(kinds) > 1:
            self.refuse("insn", insn.pc, op.name,
                        f"this instruction reaches {_say(kinds)} through r{base_reg} on "
                        f"different paths; {self.r.short} translates each memory access for "
                        f"one pointer type ({src}); split the paths")
        if op.kind is Kind.ATOMIC and _kinds(s.regs.get(insn.src)):
            self.refuse("insn", insn.pc, op.name,
                        f"{self.r.short} adds only numbers atomically, and r{insn.src} may "
                        f"be a pointer ({src})")
        for (kind, ref), offs in base.items():
            if kind == "stack":
                self._stack_access(insn, offs, rule)
            elif kind == "map_value":
                self._map_value_access(insn, ref, offs, rule)
            elif kind == "ctx" and offs is not None:
                self._ctx_access(insn, offs, rule)

    def _stack_access(self, insn: Insn, offs: frozenset[int] | None, rule: dict) -> None:
        if rule["const_stack_offset"] and offs is None:
            self.refuse("insn", insn.pc, insn.op.name,
                        f"a stack access at a variable offset: {self.r.short} needs a "
                        f"constant one ({rule['source']}: variable ptr stack access)")
        align = rule["stack_offset_align"]
        if align and offs is not None and len({o % align for o in offs}) > 1:
            self.refuse("insn", insn.pc, insn.op.name,
                        f"this instruction reaches stack offsets "
                        f"{', '.join(map(str, sorted(offs)))} on different paths, which "
                        f"differ modulo {align}; {self.r.short} cannot translate that "
                        f"({rule['source']}: stack access changed location)")

    def _map_value_access(self, insn: Insn, ref: str, offs: frozenset[int] | None,
                          rule: dict) -> None:
        op = insn.op
        use = {Kind.LDX: "read", Kind.ATOMIC: "atomic"}.get(op.kind)
        if use is None:
            return
        if offs is None:
            if rule["const_map_value_offset"]:
                self.refuse("insn", insn.pc, op.name,
                            f"an access to map {ref}'s value at a variable offset: "
                            f"{self.r.short} needs a constant one ({rule['source']}: map "
                            "value offset is variable)")
            return
        if not rule["exclusive_map_words"] and not rule["zeroed_atomic_words"]:
            return
        words = self.words.setdefault(ref, {})
        conflict = None
        for o in sorted(offs):
            start, i = o + insn.off, 0
            while i < op.size:             # nfp_bpf_map_mark_used(): each word touched
                word = (start + i) // 4
                first = words.setdefault(word, (use, insn.pc))
                if first[0] != use and conflict is None:
                    conflict = (word, first)
                i += 4 - (start + i) % 4
        if rule["exclusive_map_words"] and conflict is not None:
            word, (other, pc) = conflict
            done = "read" if other == "read" else "used as an atomic counter"
            here = "read" if use == "read" else "counted atomically"
            self.refuse("insn", insn.pc, op.name,
                        f"byte {4 * word} of map {ref}'s value is {done} at pc {pc} and "
                        f"{here} here; {self.r.short} keeps each 4-byte word either read or "
                        f"an atomic counter ({rule['source']}: map value use type conflict)")

    def _ctx_access(self, insn: Insn, offs: frozenset[int], rule: dict) -> None:
        """Loads: the fields ``ctx_load`` lists for this program type (none listed: not
        checked); stores: only those ``ctx_store`` lists (immediates and atomics are
        refused by pointer kind)."""
        op = insn.op
        if op.kind is Kind.LDX:
            fields = rule["ctx_load"].get(self.p.ptype)
            if fields is None:
                return
        elif op.kind is Kind.STX:
            fields = rule["ctx_store"].get(self.p.ptype, ())
        else:
            return
        for o in offs:
            at = o + insn.off
            if not any(at == off and op.size == size for _, off, size in fields):
                verb = "read" if op.kind is Kind.LDX else "write"
                names = ", ".join(f"{n} ({size} bytes)" for n, _, size in fields)
                which = f"only {names}" if names else "no field"
                field_name = _CTX_NAMES.get(self.p.ptype, {}).get(at)
                this = f"{field_name} (offset {at})" if field_name else f"offset {at}"
                self.refuse("insn", insn.pc, op.name,
                            f"in {self.p.ptype} programs {self.r.short} can {verb} {which} "
                            f"of the context, and this {verb}s {this}, {op.size} bytes "
                            f"({rule['source']})")

    def alu(self, insn: Insn, s: State) -> None:
        rule = self.r.alu
        if rule is None:
            return
        op = insn.op
        x = op.source == oc.X
        dst = _num_of(s.regs.get(insn.dst))
        src = _num_of(s.regs.get(insn.src)) if x else None
        src_text = f"r{insn.src}" if x else f"{insn.imm}"
        why = rule["source"]
        if rule["mul32"] and op.operation == "mul":
            if dst.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} multiplies only numbers that fit 32 bits, and "
                            f"r{insn.dst} may be up to {dst.hi:#x} here ({why}: multiplier "
                            "is not within u32 value range); mask or narrow it first")
            if x and src.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} multiplies only numbers that fit 32 bits, and "
                            f"{src_text} may be up to {src.hi:#x} here ({why}: multiplicand "
                            "is not within u32 value range); mask or narrow it first")
            if not x and op.width == 64 and insn.imm < 0:
                self.refuse("insn", insn.pc, op.name,
                            f"a 64-bit multiply by {insn.imm}: the sign-extended constant does "
                            f"not fit 32 bits for {self.r.short} ({why})")
        if rule["div_by_constant"] and op.operation in ("div", "sdiv"):
            if dst.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} divides only numbers that fit 32 bits, and "
                            f"r{insn.dst} may be up to {dst.hi:#x} here ({why}: dividend is "
                            "not within u32 value range)")
            if x and src.const is None:
                self.refuse("insn", insn.pc, op.name,
                            f"{self.r.short} divides only by a constant (by multiplying by "
                            f"its reciprocal), and r{insn.src} may be anything in "
                            f"[{src.lo}, {src.hi}] here ({why}: divisor is not constant)")
            elif x and src.hi > _U32:
                self.refuse("insn", insn.pc, op.name,
                            f"the divisor {src.hi:#x} does not fit 32 bits ({why})")
            if not x and insn.imm < 0:
                self.refuse("insn", insn.pc, op.name,
                            f"a division by the negative constant {insn.imm}: "
                            f"{self.r.short} divides unsigned only ({why})")

    def exit(self, insn: Insn, s: State) -> None:
        rule = self.r.exit.get(self.p.ptype)
        if rule is None:
            return
        r0 = s.regs.get(0)
        num = _num_of(r0)
        if rule["constant"] and (num.vals is None or _kinds(r0)):
            self.refuse("exit", insn.pc, "exit",
                        f"r0 is not a known constant here (it may be anything in "
                        f"[{num.lo}, {num.hi}]); {self.r.short} needs a constant return code "
                        f"in a {self.p.ptype} program ({self.r.exit_source})")
            return
        bad = sorted(v for v in (num.vals or ()) if v in rule["refuse"])
        if bad:
            self.refuse("exit", insn.pc, "exit",
                        f"the program may return {', '.join(map(str, bad))}, which "
                        f"{self.r.short} cannot give back to {self.p.ptype} "
                        f"({self.r.exit_source}); return one of the codes it maps, such "
                        "as TC_ACT_SHOT (2) or TC_ACT_UNSPEC (-1)")

    def atomic_words(self) -> None:
        """Words a bpf_map_update_elem() may make non-zero that are atomic counters."""
        if not (self.r.memory or {}).get("zeroed_atomic_words"):
            return
        for ref, words in self.nonzero.items():
            uses = self.words.get(ref, {})
            for word, pc in sorted(words.items()):
                use = uses.get(word)
                if use and use[0] == "atomic":
                    self.refuse("helper", pc, "bpf_map_update_elem",
                                f"it may write a non-zero value into byte {4 * word} of map "
                                f"{ref}'s value, an atomic counter at pc {use[1]}; "
                                f"{self.r.short} needs atomic counters set to zero by "
                                f"bpf_map_update_elem() ({self.r.memory['source']})")
                    break


def _helper_list(rules: RuleSet) -> str:
    return ", ".join(f"bpf_{n}" for n in sorted(rules.helpers)) or "none"


#: uapi bpf.h map_flags, for messages
_MAP_FLAGS = {1 << 0: "BPF_F_NO_PREALLOC", 1 << 1: "BPF_F_NO_COMMON_LRU",
              1 << 2: "BPF_F_NUMA_NODE", 1 << 3: "BPF_F_RDONLY", 1 << 4: "BPF_F_WRONLY",
              1 << 7: "BPF_F_RDONLY_PROG", 1 << 8: "BPF_F_WRONLY_PROG",
              1 << 10: "BPF_F_MMAPABLE"}
_BPF_F_RDONLY_PROG, _BPF_F_MMAPABLE = 1 << 7, 1 << 10


def _libbpf_data_flags(m: MapSpec) -> int:
    """The flags libbpf creates a global-data map with (bpf_object__init_internal_map):
    BPF_F_RDONLY_PROG for .rodata and .kconfig, and BPF_F_MMAPABLE."""
    readonly = m.readonly or m.section.startswith(".rodata") or m.section == ".kconfig"
    return (_BPF_F_RDONLY_PROG if readonly else 0) | _BPF_F_MMAPABLE


def _flag_names(flags: int) -> list[str]:
    names = [n for bit, n in _MAP_FLAGS.items() if flags & bit]
    rest = flags & ~sum(_MAP_FLAGS)
    return names + ([f"{rest:#x}"] if rest else [])


def _functions(p: _Program) -> list[tuple[int, list[Insn]]]:
    """(first slot, instructions) of each function, in slot order."""
    ends = p.entries[1:] + [p.op.program.n_slots]
    return [(e, [i for i in p.insns if e <= i.pc < end]) for e, end in zip(p.entries, ends)]


def _deepest(fn: int, frames: dict[int, int],
             calls: dict[int, list[int]]) -> tuple[int, list[int]]:
    """(the largest sum of frames along a call path from ``fn``, that path); the kernel's
    verifier has refused recursion before a driver sees a program."""
    best = (0, [])
    for callee in calls.get(fn, ()):
        got = _deepest(callee, frames, calls)
        best = max(best, got, key=lambda t: t[0])
    return frames.get(fn, 0) + best[0], [fn] + best[1]


def _used_maps(p: _Program) -> list[MapSpec]:
    """The maps the program's instructions name, in first-use order."""
    names = dict.fromkeys(target for kind, target, _ in p.reloc.values()
                          if kind in ("map", "map_value"))
    return [p.maps[n] for n in names if n in p.maps]


def _prepare(obj: Object, prog_name: str | None) -> _Program:
    op = obj.choose(prog_name)
    insns = op.program.insns
    entries = {0} | {slot for slot, _ in op.spec.func_names}
    entries |= {i.target for i in insns if _is_local_call(i)}
    reloc = {r.slot: (r.kind, r.target, r.offset) for r in op.spec.relocs}
    return _Program(op, insns, {i.pc: i for i in insns}, op.spec.prog_type.kernel_name,
                    sorted(entries), reloc, {m.name: m for m in obj.spec.maps})


def refusals(obj: Object, prog_name: str | None, rules: str | RuleSet) -> list[Refusal]:
    """Every reason the target of rule set ``rules`` ("nfp", "hxdp", or a parsed
    RuleSet) refuses program ``prog_name`` of ``obj`` (the only one when None); an
    empty list when it would take it.  Program-wide reasons come first, then by pc."""
    ruleset = rules if isinstance(rules, RuleSet) else load_rules(rules)
    prog = _prepare(obj, prog_name)
    states = _Analysis(prog).run()
    return _Checker(ruleset, prog, states).run()
