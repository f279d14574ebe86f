"""CO-RE: relocations resolved against the struct layouts xsim models, as libbpf does.

The target is ``model/model.btf`` (the kernel's UAPI structs as xsim's
headers declare them, checked against the kernel's BTF by the tests), not a
machine's kernel, so the result is the same everywhere.  For each record of
``.BTF.ext``: find the local type's target by name (libbpf's ``___flavor``
suffixes ignored), follow the access string member by member by *name*
(through anonymous members), compute the local and the target value of the
relocation, check that the instruction holds the local one, and write the
target one in.  A field or type the model lacks makes the ``*_EXISTS``
kinds 0; any other kind poisons the instruction, as libbpf does: it stays
in the program, and executing it stops the run with an error naming the
field (programs guard such reads with ``bpf_core_field_exists``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ElfError
from ..isa import opcodes as oc
from . import btf as btf_mod
from .btf import Btf, CoreRelo, CoreReloKind, Kind

MODEL_BTF = Path(__file__).with_name("model") / "model.btf"
INSN = 8
_FMT = struct.Struct("<BBhi")
K = CoreReloKind


@lru_cache(maxsize=1)
def model() -> Btf:
    return btf_mod.parse_btf(MODEL_BTF.read_bytes())


def essential_name(name: str) -> str:
    """``task_struct___old`` -> ``task_struct``: libbpf's flavors share a target."""
    return name.split("___", 1)[0]


@dataclass(frozen=True)
class _Field:
    """Where an access string ends up: bit offset from the root, the member, its type."""

    bit_offset: int
    bitfield_size: int
    type_id: int
    name: str


class _Missing(Exception):
    """The target has no such type or field (not an error for the *_EXISTS kinds)."""


def _members(btf: Btf, type_id: int):
    t = btf.resolve(type_id)
    return t.members if t.kind in (Kind.STRUCT, Kind.UNION) else ()


def _find_member(btf: Btf, type_id: int, name: str) -> tuple[int, object] | None:
    """(bit offset, member) of ``name`` in a struct/union, looking inside anonymous members."""
    for m in _members(btf, type_id):
        if m.name == name:
            return m.bit_offset, m
        if not m.name:
            inner = _find_member(btf, m.type, name)
            if inner is not None:
                return m.bit_offset + inner[0], inner[1]
    return None


def _walk(btf: Btf, root: int, access: list[int], names: list[str] | None) -> tuple[_Field, list[str]]:
    """Follow an access spec; on the local side by index (collecting member names), on the
    target side by those names."""
    bit, bits, tid, label = access[0] * 8 * btf.size_of(root), 0, root, ""
    out_names: list[str] = []
    for step, index in enumerate(access[1:]):
        t = btf.resolve(tid)
        if t.kind in (Kind.STRUCT, Kind.UNION):
            if names is None:
                if index >= len(t.members):
                    raise ElfError(f"CO-RE access index {index} is past the members of "
                                   f"{btf.format(tid)}")
                m = t.members[index]
                off = m.bit_offset
                out_names.append(m.name)
            else:
                found = _find_member(btf, tid, names[step])
                if found is None:
                    raise _Missing(f"{btf.format(tid)} has no member {names[step]!r}")
                off, m = found
                out_names.append(m.name)
            bit += off
            bits, tid, label = m.bitfield_size, m.type, m.name
        elif t.kind is Kind.ARRAY:
            out_names.append("")
            bit += index * 8 * btf.size_of(t.type)
            bits, tid = 0, t.type
            if names is not None and t.nelems and index >= t.nelems:
                raise _Missing(f"index {index} is past {btf.format(tid)}[{t.nelems}]")
        else:
            raise ElfError(f"CO-RE access steps into {btf.format(tid)}, which has no members")
    return _Field(bit, bits, tid, label), out_names


def _target_type(name: str, kind: Kind) -> int:
    found = [t for t in model().find(name) if t.kind is kind]
    if not found:
        raise _Missing(f"xsim models no {kind.name.lower()} {name}")
    return found[0].id


def _field_value(btf: Btf, f: _Field, kind: CoreReloKind) -> int:
    """libbpf's bpf_core_calc_field_relo for one side."""
    size = btf.size_of(f.type_id)
    if kind is K.FIELD_EXISTS:
        return 1
    if not f.bitfield_size:
        byte_off, byte_sz, bit_off, bit_sz = f.bit_offset // 8, size, f.bit_offset, size * 8
    else:
        bit_off, bit_sz, byte_sz = f.bit_offset, f.bitfield_size, size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise ElfError("CO-RE bitfield spans more than 8 bytes")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    if kind is K.FIELD_BYTE_OFFSET:
        return byte_off
    if kind is K.FIELD_BYTE_SIZE:
        return byte_sz
    if kind is K.FIELD_SIGNED:
        t = btf.resolve(f.type_id)
        return int(bool(getattr(t, "encoding", 0) & btf_mod.IntEncoding.SIGNED)
                   or getattr(t, "signed", False))
    if kind is K.FIELD_LSHIFT_U64:
        return 64 - (bit_off + bit_sz - byte_off * 8)
    if kind is K.FIELD_RSHIFT_U64:
        return 64 - bit_sz
    raise ElfError(f"CO-RE kind {kind.name} is not a field relocation")


def relocation_values(local: Btf, relo: CoreRelo) -> tuple[int, int | None, str]:
    """(value compiled in, value for xsim's model or None if it lacks the thing, C name)."""
    root = local.resolve(relo.type_id)
    kind_of_root = root.kind
    name = essential_name(root.name)
    label = f"{kind_of_root.name.lower()} {name}"
    if relo.kind in (K.TYPE_ID_LOCAL, K.TYPE_ID_TARGET, K.TYPE_EXISTS, K.TYPE_SIZE,
                     K.TYPE_MATCHES):
        local_value = {K.TYPE_ID_LOCAL: relo.type_id, K.TYPE_SIZE: local.size_of(relo.type_id)
                       }.get(relo.kind, 1)
        if relo.kind is K.TYPE_ID_LOCAL:
            return local_value, local_value, label
        try:
            tid = _target_type(name, kind_of_root)
        except _Missing:
            return local_value, 0 if relo.kind in (K.TYPE_EXISTS, K.TYPE_MATCHES) else None, label
        target = {K.TYPE_ID_TARGET: tid, K.TYPE_SIZE: model().size_of(tid)}.get(relo.kind, 1)
        return local_value, target, label
    if relo.kind in (K.ENUMVAL_EXISTS, K.ENUMVAL_VALUE):
        index = int(relo.access)
        member = root.values[index]
        label += f"::{member.name}"
        local_value = 1 if relo.kind is K.ENUMVAL_EXISTS else member.value
        try:
            tid = _target_type(name, kind_of_root)
        except _Missing:
            return local_value, 0 if relo.kind is K.ENUMVAL_EXISTS else None, label
        values = {essential_name(v.name): v.value for v in model().types[tid].values}
        wanted = essential_name(member.name)
        if wanted not in values:
            return local_value, 0 if relo.kind is K.ENUMVAL_EXISTS else None, label
        return local_value, 1 if relo.kind is K.ENUMVAL_EXISTS else values[wanted], label
    access = [int(x) for x in relo.access.split(":")]
    field, names = _walk(local, relo.type_id, access, None)
    label += "".join(f".{n}" if n else f"[{i}]" for n, i in zip(names, access[1:]))
    local_value = _field_value(local, field, relo.kind)
    try:
        tid = _target_type(name, kind_of_root)
        target_field, _ = _walk(model(), tid, access, names)
    except _Missing:
        return local_value, 0 if relo.kind is K.FIELD_EXISTS else None, label
    return local_value, _field_value(model(), target_field, relo.kind), label


def apply(code: bytearray, slot: int, local: Btf, relo: CoreRelo) -> str | None:
    """Patch the instruction at ``slot``; returns why it was poisoned, or None."""
    local_value, target, label = relocation_values(local, relo)
    at = slot * INSN
    opcode, regs, off, imm = _FMT.unpack_from(code, at)
    cls = opcode & 0x07
    if cls in (oc.LDX, oc.ST, oc.STX):
        field, current = "off", off
    elif cls in (oc.ALU, oc.ALU64) or opcode == oc.OPCODE_LDDW:
        field, current = "imm", imm
    else:
        raise ElfError(f"CO-RE relocation for {label} on an instruction it cannot patch "
                       f"(opcode {opcode:#04x} at slot {slot})")
    matches = current == local_value if field == "off" else \
        current & 0xFFFFFFFF == local_value & 0xFFFFFFFF
    if not matches:
        raise ElfError(f"CO-RE relocation for {label}: the instruction at slot {slot} holds "
                       f"{current}, not the compiled value {local_value}")
    if target is None:
        what = "enumerator" if relo.kind in (K.ENUMVAL_VALUE, K.ENUMVAL_EXISTS) else (
            "type" if relo.kind in (K.TYPE_ID_TARGET, K.TYPE_SIZE) else "field")
        reason = f"CO-RE relocation {relo.kind.name} of {label}: xsim models no such {what}"
        if opcode == oc.OPCODE_LDDW:      # keep both slots: an unresolved kernel variable
            code[at + 1] = (regs & 0x0F) | (3 << 4)
        else:                            # an unresolved kfunc call in its place
            _FMT.pack_into(code, at, oc.JMP | oc.JMP_CALL, oc.CALL_KFUNC << 4, 0, 0)
        return reason
    if field == "off":
        if not -(1 << 15) <= target < (1 << 15):
            raise ElfError(f"CO-RE relocation for {label}: offset {target} does not fit")
        _FMT.pack_into(code, at, opcode, regs, target, imm)
    else:
        value = target - (1 << 32) if target >> 31 & 1 and target < (1 << 32) else target
        _FMT.pack_into(code, at, opcode, regs, off, value)
    return None
