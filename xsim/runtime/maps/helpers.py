"""The map helpers, with the kernel's ids and names, for a HelperRegistry.

Each helper checks its map argument the way the verifier would have: the
argument must be a map pointer (exactly a map's ``vaddr``), and the helper
must be one the verifier allows on that map type (check_map_func_compatibility),
and writes are refused on BPF_F_RDONLY_PROG maps ("write into map forbidden").
A program the verifier would refuse stops with a HelperError naming the
argument.  Keys and values are read through ``call.read`` / ``call.write``,
so a bad pointer is a MemoryAccessError.  Return values are the kernel's: a
pointer or 0, or 0 / -errno as a 64-bit two's complement integer.
"""
from __future__ import annotations

from ...elf.kinds import MapType
from ...errors import HelperError
from ..helpers import U64_MASK, Helper, HelperCall, HelperRegistry
from .base import BPF_F_RDONLY_PROG, EINVAL, Map
from .queue import BloomFilterMap
from .ringbuf import BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK, PerfEventArrayMap, RingBufMap

MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM = 1, 2, 3
PERF_EVENT_OUTPUT = 25
MAP_PUSH_ELEM, MAP_POP_ELEM, MAP_PEEK_ELEM = 87, 88, 89
RINGBUF_OUTPUT, RINGBUF_RESERVE, RINGBUF_SUBMIT, RINGBUF_DISCARD, RINGBUF_QUERY = (
    130, 131, 132, 133, 134)
MAP_LOOKUP_PERCPU_ELEM = 195
#: other helper ids that appear in the compatibility tables
_TAIL_CALL, _PERF_EVENT_READ, _REDIRECT_MAP, _PERF_EVENT_READ_VALUE = 12, 22, 51, 55
_SKB_OUTPUT, _XDP_OUTPUT, _RINGBUF_RESERVE_DYNPTR = 111, 121, 198

#: map types the verifier lets only these helpers touch
ONLY_HELPERS: dict[MapType, frozenset[int]] = {
    MapType.PROG_ARRAY: frozenset({_TAIL_CALL}),
    MapType.PERF_EVENT_ARRAY: frozenset({_PERF_EVENT_READ, PERF_EVENT_OUTPUT,
                                         _PERF_EVENT_READ_VALUE, _SKB_OUTPUT, _XDP_OUTPUT}),
    MapType.RINGBUF: frozenset({RINGBUF_OUTPUT, RINGBUF_RESERVE, RINGBUF_QUERY,
                                _RINGBUF_RESERVE_DYNPTR}),
    MapType.QUEUE: frozenset({MAP_PUSH_ELEM, MAP_POP_ELEM, MAP_PEEK_ELEM}),
    MapType.STACK: frozenset({MAP_PUSH_ELEM, MAP_POP_ELEM, MAP_PEEK_ELEM}),
    MapType.BLOOM_FILTER: frozenset({MAP_PUSH_ELEM, MAP_PEEK_ELEM}),
    MapType.ARRAY_OF_MAPS: frozenset({MAP_LOOKUP_ELEM}),
    MapType.HASH_OF_MAPS: frozenset({MAP_LOOKUP_ELEM}),
    MapType.DEVMAP: frozenset({MAP_LOOKUP_ELEM, _REDIRECT_MAP}),
    MapType.DEVMAP_HASH: frozenset({MAP_LOOKUP_ELEM, _REDIRECT_MAP}),
    MapType.CPUMAP: frozenset({_REDIRECT_MAP}),
    MapType.XSKMAP: frozenset({MAP_LOOKUP_ELEM, _REDIRECT_MAP}),
}
#: helpers the verifier allows only on these map types
ONLY_TYPES: dict[int, frozenset[MapType]] = {
    MAP_PUSH_ELEM: frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER}),
    MAP_POP_ELEM: frozenset({MapType.QUEUE, MapType.STACK}),
    MAP_PEEK_ELEM: frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER}),
    MAP_LOOKUP_PERCPU_ELEM: frozenset({MapType.PERCPU_ARRAY, MapType.PERCPU_HASH,
                                       MapType.LRU_PERCPU_HASH}),
    RINGBUF_OUTPUT: frozenset({MapType.RINGBUF}),
    RINGBUF_RESERVE: frozenset({MapType.RINGBUF}),
    RINGBUF_QUERY: frozenset({MapType.RINGBUF}),
    PERF_EVENT_OUTPUT: frozenset({MapType.PERF_EVENT_ARRAY}),
}
_WRITES = frozenset({MAP_UPDATE_ELEM, MAP_DELETE_ELEM, MAP_PUSH_ELEM, MAP_POP_ELEM})
NAMES = {MAP_LOOKUP_ELEM: "map_lookup_elem", MAP_UPDATE_ELEM: "map_update_elem",
         MAP_DELETE_ELEM: "map_delete_elem", PERF_EVENT_OUTPUT: "perf_event_output",
         MAP_PUSH_ELEM: "map_push_elem", MAP_POP_ELEM: "map_pop_elem",
         MAP_PEEK_ELEM: "map_peek_elem", RINGBUF_OUTPUT: "ringbuf_output",
         RINGBUF_RESERVE: "ringbuf_reserve", RINGBUF_SUBMIT: "ringbuf_submit",
         RINGBUF_DISCARD: "ringbuf_discard", RINGBUF_QUERY: "ringbuf_query",
         MAP_LOOKUP_PERCPU_ELEM: "map_lookup_percpu_elem"}


def _ret(value: int) -> int:
    return value & U64_MASK


def _refuse(call: HelperCall, hid: int, reason: str) -> HelperError:
    return HelperError(call.pc, hid, reason, NAMES[hid])


def map_arg(call: HelperCall, hid: int, argno: int = 1) -> Map:
    """The map that argument ``argno`` points at, after the verifier's checks."""
    ptr = call.args[argno - 1]
    owner = call.owner(ptr)
    if not isinstance(owner, Map):
        region = call.space.region_at(ptr)
        where = f"region {region.name!r}" if region is not None else "no region"
        raise _refuse(call, hid, f"r{argno} = {ptr:#x} is not a map pointer ({where})")
    if ptr != owner.vaddr:
        raise _refuse(call, hid, f"r{argno} = {ptr:#x} points into map {owner.name!r}, not at "
                      f"the map (its pointer is {owner.vaddr:#x})")
    allowed = ONLY_HELPERS.get(owner.type)
    types = ONLY_TYPES.get(hid)
    if (allowed is not None and hid not in allowed) or (types is not None and
                                                         owner.type not in types):
        raise _refuse(call, hid, f"r{argno}: the verifier does not allow {NAMES[hid]} on "
                      f"{owner.type.bpftool_name} map {owner.name!r}")
    if hid in _WRITES and owner.flags & BPF_F_RDONLY_PROG:
        raise _refuse(call, hid, f"r{argno}: write into map {owner.name!r} forbidden "
                      "(BPF_F_RDONLY_PROG)")
    if owner.percpu and not 0 <= call.env.cpu < owner.ncpus:
        raise _refuse(call, hid, f"the run is on CPU {call.env.cpu} but per-CPU map "
                      f"{owner.name!r} has {owner.ncpus} CPUs")
    return owner


def map_lookup_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_LOOKUP_ELEM)
    return m.prog_lookup(call.read(call.args[1], m.key_size), call.env.cpu)


def map_update_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_UPDATE_ELEM)
    key = call.read(call.args[1], m.key_size)
    value = call.read(call.args[2], m.value_size)
    return _ret(m.prog_update(key, value, call.args[3], call.env.cpu))


def map_delete_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_DELETE_ELEM)
    return _ret(m.prog_delete(call.read(call.args[1], m.key_size)))


def map_push_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_PUSH_ELEM)
    return _ret(m.prog_push(call.read(call.args[1], m.value_size), call.args[2]))


def _writable_out(call: HelperCall, ptr: int, size: int) -> None:
    """Check that the output buffer is writable before the map changes."""
    call.write(ptr, call.read(ptr, size))


def map_pop_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_POP_ELEM)
    _writable_out(call, call.args[1], m.value_size)
    err, value = m.prog_pop()
    if err == 0:
        call.write(call.args[1], value)
    return _ret(err)


def map_peek_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_PEEK_ELEM)
    if isinstance(m, BloomFilterMap):      # the value is the input to test
        return _ret(m.prog_peek(call.read(call.args[1], m.value_size))[0])
    _writable_out(call, call.args[1], m.value_size)
    err, value = m.prog_peek(b"")
    if err == 0:
        call.write(call.args[1], value)
    return _ret(err)


def map_lookup_percpu_elem(call: HelperCall) -> int:
    m = map_arg(call, MAP_LOOKUP_PERCPU_ELEM)
    key = call.read(call.args[1], m.key_size)
    cpu = call.args[2] & 0xFFFFFFFF
    return m.prog_lookup_percpu(key, cpu) if cpu < m.ncpus else 0


def ringbuf_output(call: HelperCall) -> int:
    m = map_arg(call, RINGBUF_OUTPUT)
    assert isinstance(m, RingBufMap)
    return _ret(m._output(call.read(call.args[1], call.args[2]), call.args[3]))


def ringbuf_reserve(call: HelperCall) -> int:
    m = map_arg(call, RINGBUF_RESERVE)
    assert isinstance(m, RingBufMap)
    return m.reserve(call.args[1], call.args[2])


def _record(call: HelperCall, hid: int) -> RingBufMap:
    ptr = call.args[0]
    rb = call.owner(ptr)
    if not isinstance(rb, RingBufMap):
        raise _refuse(call, hid, f"r1 = {ptr:#x} is not a ring buffer record from "
                      "ringbuf_reserve")
    why = rb.commit_error(ptr)
    if why is not None:
        raise _refuse(call, hid, f"r1: {why}")
    return rb


def ringbuf_submit(call: HelperCall) -> int:
    _record(call, RINGBUF_SUBMIT)._commit(call.args[0], False)
    return 0


def ringbuf_discard(call: HelperCall) -> int:
    _record(call, RINGBUF_DISCARD)._commit(call.args[0], True)
    return 0


def ringbuf_query(call: HelperCall) -> int:
    m = map_arg(call, RINGBUF_QUERY)
    assert isinstance(m, RingBufMap)
    return _ret(m.query(call.args[1]))


def perf_event_output(call: HelperCall) -> int:
    """(ctx, map, flags, data, size); flags' low 32 bits are the index or BPF_F_CURRENT_CPU."""
    m = map_arg(call, PERF_EVENT_OUTPUT, argno=2)
    assert isinstance(m, PerfEventArrayMap)
    flags = call.args[2]
    if flags & ~BPF_F_INDEX_MASK:
        return _ret(-EINVAL)
    index = call.env.cpu if flags == BPF_F_CURRENT_CPU else flags
    return _ret(m._output(index, call.read(call.args[3], call.args[4])))


HELPER_FUNCTIONS = {
    MAP_LOOKUP_ELEM: map_lookup_elem, MAP_UPDATE_ELEM: map_update_elem,
    MAP_DELETE_ELEM: map_delete_elem, PERF_EVENT_OUTPUT: perf_event_output,
    MAP_PUSH_ELEM: map_push_elem, MAP_POP_ELEM: map_pop_elem, MAP_PEEK_ELEM: map_peek_elem,
    RINGBUF_OUTPUT: ringbuf_output, RINGBUF_RESERVE: ringbuf_reserve,
    RINGBUF_SUBMIT: ringbuf_submit, RINGBUF_DISCARD: ringbuf_discard,
    RINGBUF_QUERY: ringbuf_query, MAP_LOOKUP_PERCPU_ELEM: map_lookup_percpu_elem,
}


def register_map_helpers(registry: HelperRegistry) -> HelperRegistry:
    """Add the map helpers to ``registry`` (and return it)."""
    for hid, fn in HELPER_FUNCTIONS.items():
        registry.add(Helper(hid, NAMES[hid], fn))
    return registry
