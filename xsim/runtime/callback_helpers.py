"""Helpers that call back into the program: bpf_loop and bpf_for_each_map_elem.

The callback is a subprogram whose address the program loaded with
``lddw func``; it runs in a new frame below the caller's (the interpreter's
call-depth limit applies) and its r0 decides: 0 goes on, 1 stops, as the
verifier allows for these callbacks.
"""
from __future__ import annotations

from ..elf.kinds import MapType
from ..errors import HelperError
from .helpers import HelperCall, HelperRegistry
from .maps import Map
from .maps.base import E2BIG, EINVAL

#: bpf_loop's limit on nr_loops (BPF_MAX_LOOPS)
MAX_LOOPS = 1 << 23
_NEG = (1 << 64)
#: map types whose elements bpf_for_each_map_elem visits (the kernel's map_for_each_callback)
FOR_EACH_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH,
                            MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH})
_KEY_REGION = "helper:keys"


def register_callback_helpers(registry: HelperRegistry) -> None:
    registry.kernel("loop")(_loop)
    registry.kernel("for_each_map_elem")(_for_each_map_elem)


def _loop(call: HelperCall) -> int:
    """bpf_loop(nr_loops, callback_fn, callback_ctx, flags): calls done, or -E2BIG / -EINVAL."""
    nr, fn, ctx, flags = call.args[:4]
    nr &= 0xFFFFFFFF
    if flags:
        return _NEG - EINVAL
    if nr > MAX_LOOPS:
        return _NEG - E2BIG
    for i in range(nr):
        if call.call_function(fn, i, ctx) & 0xFFFFFFFF == 1:
            return i + 1
    return nr


def _for_each_map_elem(call: HelperCall) -> int:
    """bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags): elements visited."""
    ptr, fn, ctx, flags = call.args[:4]
    m = call.owner(ptr)
    if not isinstance(m, Map) or m.vaddr != ptr:
        raise HelperError(call.pc, 164, "r1 is not a map pointer", "for_each_map_elem")
    if m.type not in FOR_EACH_TYPES:
        raise HelperError(call.pc, 164, f"{m.type.bpftool_name} maps cannot be iterated",
                          "for_each_map_elem")
    if flags:
        return _NEG - EINVAL
    space = call.space
    keys = space.by_name.get(_KEY_REGION)
    if keys is None:
        keys = space.add(_KEY_REGION, 512, writable=False)
    done = 0
    for key in m.keys():
        value = m.value_pointer(key, call.env.cpu)      # the walk sets no reference bit
        if not value:
            continue
        space.mem[keys.host:keys.host + len(key)] = memoryview(key)   # read-only for programs
        done += 1
        if call.call_function(fn, ptr, keys.vaddr, value, ctx) & 0xFFFFFFFF == 1:
            break
    return done
