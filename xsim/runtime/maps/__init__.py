"""Runtime maps with the kernel's semantics, backed by regions of an address space.

``create_map(spec, space, ncpus)`` builds the map a :class:`~xsim.elf.spec.MapSpec`
describes; ``register_map_helpers(registry)`` adds the map helpers.  Python
operations raise :class:`MapError` with the errno ``bpf()`` would return.
"""
from __future__ import annotations

from collections.abc import Mapping

from ...elf.kinds import MapType
from ...elf.spec import MapSpec
from ..memory import AddressSpace
from .array import ArrayMap
from .base import (BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_LOCK, BPF_F_MMAPABLE,
                   BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_F_RDONLY,
                   BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_F_WRONLY_PROG, BPF_F_ZERO_SEED,
                   BPF_NOEXIST, EINVAL, ENOENT, Map, MapError)
from .devmaps import CpuMap, DevMap, DevMapHash, XskMap
from .fdmaps import ArrayOfMapsMap, HashOfMapsMap, ProgArrayMap
from .hash import HashMap
from .helpers import register_map_helpers
from .lpm import LpmTrieMap
from .queue import BloomFilterMap, QueueStackMap
from .ringbuf import (BPF_F_CURRENT_CPU, BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_PROD_POS,
                      BPF_RB_RING_SIZE, PerfEventArrayMap, RingBufMap)

MAP_CLASSES: dict[MapType, type[Map]] = {
    MapType.ARRAY: ArrayMap, MapType.PERCPU_ARRAY: ArrayMap,
    MapType.HASH: HashMap, MapType.PERCPU_HASH: HashMap,
    MapType.LRU_HASH: HashMap, MapType.LRU_PERCPU_HASH: HashMap,
    MapType.LPM_TRIE: LpmTrieMap,
    MapType.QUEUE: QueueStackMap, MapType.STACK: QueueStackMap,
    MapType.BLOOM_FILTER: BloomFilterMap,
    MapType.RINGBUF: RingBufMap, MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.ARRAY_OF_MAPS: ArrayOfMapsMap, MapType.HASH_OF_MAPS: HashOfMapsMap,
    MapType.DEVMAP: DevMap, MapType.DEVMAP_HASH: DevMapHash,
    MapType.CPUMAP: CpuMap, MapType.XSKMAP: XskMap,
}


def create_map(spec: MapSpec, space: AddressSpace, ncpus: int, *,
               maps: Mapping[str, Map] | None = None) -> Map:
    """The map ``spec`` describes, its storage in ``space``; global data (``spec.data``)
    is an array with one entry.  ``maps`` (name -> map) resolves the inner maps a
    map-in-map's initializer names; without it, call :func:`populate_map_in_map` later."""
    try:
        mtype = MapType(spec.type)
    except ValueError:
        raise MapError(spec.name, "create", EINVAL, f"unknown map type {spec.type}") from None
    cls = ArrayMap if spec.data is not None else MAP_CLASSES.get(mtype)
    if cls is None:
        raise MapError(spec.name, "create", EINVAL,
                       f"map type {mtype.bpftool_name} is not modelled by xsim")
    m = cls(spec, space, ncpus)
    if maps is not None:
        populate_map_in_map(m, maps)
    return m


def populate_map_in_map(m: Map, maps: Mapping[str, Map]) -> None:
    """Put the inner maps that ``m.spec.init`` names into a map-in-map (libbpf's init_slots)."""
    if not isinstance(m, (ArrayOfMapsMap, HashOfMapsMap)):
        return
    for slot, name in m.spec.init:
        inner = maps.get(name)
        if inner is None:
            raise MapError(m.name, "update", ENOENT,
                           f"inner map {name!r} of slot {slot} was not created")
        m.update(slot.to_bytes(m.key_size, "little"), inner)


__all__ = [
    "create_map", "populate_map_in_map", "register_map_helpers", "MAP_CLASSES", "Map",
    "MapError", "ArrayMap", "HashMap", "LpmTrieMap", "QueueStackMap", "BloomFilterMap",
    "RingBufMap", "PerfEventArrayMap", "ProgArrayMap", "ArrayOfMapsMap", "HashOfMapsMap",
    "DevMap", "DevMapHash", "CpuMap", "XskMap",
    "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK", "BPF_F_NO_PREALLOC",
    "BPF_F_NO_COMMON_LRU", "BPF_F_NUMA_NODE", "BPF_F_RDONLY", "BPF_F_WRONLY",
    "BPF_F_RDONLY_PROG", "BPF_F_WRONLY_PROG", "BPF_F_ZERO_SEED", "BPF_F_MMAPABLE",
    "BPF_F_INNER_MAP", "BPF_F_CURRENT_CPU", "BPF_RB_AVAIL_DATA", "BPF_RB_RING_SIZE",
    "BPF_RB_CONS_POS", "BPF_RB_PROD_POS",
]
