"""Maps whose values are other objects: prog_array, array_of_maps, hash_of_maps.

In the kernel their values are file descriptors going in and ids coming out;
here the Python side uses the objects themselves: program names for a prog
array (``tail_call`` resolves them), inner :class:`Map` objects for
map-in-map.  Each slot of the region holds the inner map's pointer (its
``vaddr``), and a program's lookup in a map-in-map returns it or NULL, as the
kernel's does; the interpreter's core serves that lookup (interp.MAP_OF_MAPS).
Inner maps must match the template (``spec.inner``) as bpf_map_meta_equal
requires: type, key and value size, flags, and for arrays max_entries unless
the template has BPF_F_INNER_MAP.
"""
from __future__ import annotations

import abc

from typing import Any

from ...elf.kinds import MapType
from ...elf.spec import MapSpec
from .array import ARRAY_CREATE_FLAG_MASK, array_checks
from .base import (BPF_ANY, BPF_F_INNER_MAP, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG, E2BIG,
                   EINVAL, ENOENT, Map)
from .hash import HashMap


def fd_value_checks(m: Map) -> None:
    m._require(m.value_size == 4, f"value_size must be 4 (an fd), not {m.value_size}")
    m._require(not m.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG),
               "BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG are not for fd maps")


class _FdArray(Map):
    """An array of object references: slot -> object, populated slots only in keys()."""

    FLAG_MASK = ARRAY_CREATE_FLAG_MASK

    def _validate(self) -> None:
        super()._validate()
        fd_value_checks(self)
        array_checks(self)

    def _allocate(self) -> None:
        self._slots: list[Any] = [None] * self.max_entries
        self._add_region(8 * self.max_entries, False)

    @abc.abstractmethod
    def _obj(self, value: Any, op: str) -> Any:
        """The object a Python-side value names (a program name, an inner map)."""

    def _set(self, index: int, obj: Any) -> None:
        self._slots[index] = obj
        self._mem_write(8 * index, self._word(obj).to_bytes(8, "little"))

    def _word(self, obj: Any) -> int:
        return 0

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        index = int.from_bytes(self._key(key, "update"), "little")
        obj = self._obj(value, "update")
        if flags != BPF_ANY:
            raise self._fail("update", EINVAL, "fd arrays take BPF_ANY only")
        if index >= self.max_entries:
            raise self._fail("update", E2BIG, f"index {index} >= max_entries {self.max_entries}")
        self._set(index, obj)

    def lookup(self, key: Any) -> Any:
        self._can_read("lookup")
        index = int.from_bytes(self._key(key, "lookup"), "little")
        return self._slots[index] if index < self.max_entries else None

    def delete(self, key: Any) -> None:
        self._can_write("delete")
        index = int.from_bytes(self._key(key, "delete"), "little")
        if index >= self.max_entries:
            raise self._fail("delete", E2BIG, f"index {index} >= max_entries {self.max_entries}")
        if self._slots[index] is None:
            raise self._fail("delete", ENOENT)
        self._slots[index] = None
        self._mem_zero(8 * index, 8)

    def keys(self) -> list[bytes]:
        self._can_read("keys")
        return [i.to_bytes(4, "little") for i, o in enumerate(self._slots) if o is not None]

    def get(self, slot: int) -> Any:
        """The object at ``slot``, or None (empty or out of range)."""
        return self._slots[slot] if 0 <= slot < self.max_entries else None


class ProgArrayMap(_FdArray):
    """BPF_MAP_TYPE_PROG_ARRAY: slot -> program name, for bpf_tail_call.

    Each slot's word in the region is where its program starts in the object's linked
    code, + 1 (see :meth:`link`), so that the interpreter's core and native code serve
    the tail call of a linked program themselves."""

    def _allocate(self) -> None:
        super()._allocate()
        #: program name -> its first pc in the linked code of the object's programs
        self._linked: dict[str, int] = {}
        self.space.describe_prog_array(self.region, self.max_entries)
        for slot, name in self.spec.init:
            if 0 <= slot < self.max_entries:
                self._slots[slot] = name

    def link(self, starts: dict[str, int]) -> None:
        """Where each program starts in the linked code (the slots' words follow)."""
        self._linked = dict(starts)
        for index, name in enumerate(self._slots):
            if name is not None:
                self._set(index, name)

    def _word(self, obj: Any) -> int:
        start = self._linked.get(obj)
        return 0 if start is None else start + 1

    def _obj(self, value: Any, op: str) -> str:
        if not isinstance(value, str):
            raise self._fail(op, EINVAL, f"a prog array value is a program name, not "
                             f"{type(value).__name__}")
        return value

    def get(self, slot: int) -> str | None:
        return super().get(slot)

    def dump(self) -> str:
        lines = [f"key: {i}  value: {name}" for i, name in enumerate(self._slots) if name]
        return "\n".join(lines + [f"Found {len(lines)} element" + ("" if len(lines) == 1 else "s")])


def inner_mismatch(template: MapSpec, inner: Map, outer: Map) -> str | None:
    """Why ``inner`` cannot go into ``outer`` (None: it can)."""
    if inner.space is not outer.space:
        return f"inner map {inner.name!r} lives in another address space"
    if isinstance(inner, (ArrayOfMapsMap, HashOfMapsMap)):
        return "a map-in-map cannot hold another map-in-map"
    t = template
    if (MapType(t.type), t.key_size, t.value_size, t.flags) != \
            (inner.type, inner.key_size, inner.value_size, inner.spec.flags):
        return (f"inner map {inner.name!r} ({inner.type.bpftool_name}, key {inner.key_size}, value"
                f" {inner.value_size}, flags {inner.spec.flags:#x}) does not match the template "
                f"({MapType(t.type).bpftool_name}, key {t.key_size}, value {t.value_size}, "
                f"flags {t.flags:#x})")
    arrays = (MapType.ARRAY, MapType.PERCPU_ARRAY)
    if t.type in arrays and not t.flags & BPF_F_INNER_MAP and t.max_entries != inner.max_entries:
        return (f"inner array {inner.name!r} has max_entries {inner.max_entries}, the template "
                f"{t.max_entries} (set BPF_F_INNER_MAP on the template to allow any)")
    return None


def _require_inner(m: Map) -> None:
    m._require(m.spec.inner is not None, "a map-in-map needs an inner map template "
               "(spec.inner), as the kernel needs inner_map_fd")


class ArrayOfMapsMap(_FdArray):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS: slot -> inner Map."""

    def _validate(self) -> None:
        super()._validate()
        _require_inner(self)

    def _allocate(self) -> None:
        super()._allocate()
        # a program's lookup reads the slot's pointer in the interpreter's core
        self.space.describe_array(self.region, 8, self.max_entries, 0, of_maps=True)

    def _obj(self, value: Any, op: str) -> Map:
        if not isinstance(value, Map):
            raise self._fail(op, EINVAL, f"the value is an inner Map, not {type(value).__name__}")
        assert self.spec.inner is not None
        why = inner_mismatch(self.spec.inner, value, self)
        if why:
            raise self._fail(op, EINVAL, why)
        return value

    def _word(self, obj: Any) -> int:
        return obj.vaddr

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        index = int.from_bytes(key, "little")
        inner = self._slots[index] if index < self.max_entries else None
        return inner.vaddr if inner is not None else 0

    def dump(self) -> str:
        lines = [f"key: {i}  inner_map: {m.name}" for i, m in enumerate(self._slots) if m]
        return "\n".join(lines + [f"Found {len(lines)} element" + ("" if len(lines) == 1 else "s")])


class HashOfMapsMap(HashMap):
    """BPF_MAP_TYPE_HASH_OF_MAPS: key -> inner Map; hash semantics for flags and errnos."""

    stored_value_size = 8     # the inner map's pointer, for a 4-byte fd value

    def _validate(self) -> None:
        super()._validate()
        fd_value_checks(self)
        _require_inner(self)

    def _allocate(self) -> None:
        super()._allocate()
        self._inner: dict[int, Map] = {}
        # a program's lookup finds the slot and reads its pointer in the interpreter's core
        self.space.describe_hash(self.region, self.stride, 0, self.table.region, self.key_size,
                                 self.table.mask, self.max_entries, of_maps=True)

    def lookup(self, key: Any, cpu: int | None = None) -> Map | None:
        self._can_read("lookup")
        slot = self.table.find(self._key(key, "lookup"))
        return self._inner.get(slot) if slot >= 0 else None

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        self._can_write("update")
        self._no_lock(flags, "update")
        k = self._key(key, "update")
        if not isinstance(value, Map):
            raise self._fail("update", EINVAL, f"the value is an inner Map, not "
                             f"{type(value).__name__}")
        assert self.spec.inner is not None
        why = inner_mismatch(self.spec.inner, value, self)
        if why:
            raise self._fail("update", EINVAL, why)
        self._raise_if("update", self._upd(k, [value.vaddr.to_bytes(8, "little")], flags, None))
        self._inner[self.table.find(k)] = value

    def _remove_slot(self, slot: int) -> None:
        super()._remove_slot(slot)
        self._inner.pop(slot, None)

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        slot = self.table.find(key)
        return self._inner[slot].vaddr if slot >= 0 else 0

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return -EINVAL        # the verifier allows only lookups on a map-in-map

    def dump(self) -> str:
        lines = [f"key: {' '.join(f'{b:02x}' for b in k)}  inner_map: {m.name}"
                 for k, m in self.items()]
        return "\n".join(lines + [f"Found {len(lines)} element" + ("" if len(lines) == 1 else "s")])
