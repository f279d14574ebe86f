"""Runtime maps from Python: creation checks, the kernel's errnos for every type, shared
memory with the program side, and model tests (hash vs a dict, LRU lists vs a second
model of the kernel's LRU, LPM matching)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xsim import XsimError
from xsim.elf.kinds import MapType
from xsim.elf.spec import MapSpec
from xsim.runtime.maps import (BPF_ANY, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_LOCK,
                               BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC,
                               BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_F_WRONLY_PROG,
                               BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_PROD_POS,
                               BPF_RB_RING_SIZE, ArrayMap, ArrayOfMapsMap, HashMap, Map,
                               MapError, create_map)
from xsim.runtime.memory import AddressSpace, run_space

EPERM, ENOENT, E2BIG, EEXIST, ENODEV, EINVAL, ENOSPC = 1, 2, 7, 17, 19, 22, 28
EAGAIN, EOVERFLOW, EOPNOTSUPP, ENOTSUPP = 11, 75, 95, 524
T = MapType
u32 = struct.Struct("<I").pack
u64 = struct.Struct("<Q").pack


def new(mtype: MapType, key: int, value: int, entries: int, *, ncpus: int = 1,
        space: AddressSpace | None = None, name: str = "m", **kw) -> Map:
    return create_map(MapSpec(name, mtype, key, value, entries, **kw), space or run_space(),
                      ncpus)


def errno_of(fn, *args, **kw) -> int:
    with pytest.raises(MapError) as info:
        fn(*args, **kw)
    assert info.value.errno_name and info.value.errno > 0
    return info.value.errno


# -- creation --------------------------------------------------------------------------------

BAD_SPECS = [
    ("array key 8", T.ARRAY, 8, 4, 4, {}, EINVAL),
    ("array value 0", T.ARRAY, 4, 0, 4, {}, EINVAL),
    ("array max 0", T.ARRAY, 4, 4, 0, {}, EINVAL),
    ("array no_prealloc", T.ARRAY, 4, 4, 4, {"flags": BPF_F_NO_PREALLOC}, EINVAL),
    ("percpu array mmapable", T.PERCPU_ARRAY, 4, 4, 4, {"flags": BPF_F_MMAPABLE}, EINVAL),
    ("percpu array huge value", T.PERCPU_ARRAY, 4, 40000, 4, {}, E2BIG),
    ("rdonly+wronly prog", T.ARRAY, 4, 4, 4,
     {"flags": BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG}, EINVAL),
    ("map_extra on hash", T.HASH, 4, 4, 4, {"map_extra": 3}, EINVAL),
    ("hash key 0", T.HASH, 0, 4, 4, {}, EINVAL),
    ("hash value 0", T.HASH, 4, 0, 4, {}, EINVAL),
    ("hash max 0", T.HASH, 4, 4, 0, {}, EINVAL),
    ("hash no_common_lru", T.HASH, 4, 4, 4, {"flags": BPF_F_NO_COMMON_LRU}, EINVAL),
    ("lru no_prealloc", T.LRU_HASH, 4, 4, 4, {"flags": BPF_F_NO_PREALLOC}, ENOTSUPP),
    ("lpm without no_prealloc", T.LPM_TRIE, 8, 4, 4, {}, EINVAL),
    ("lpm key 4", T.LPM_TRIE, 4, 4, 4, {"flags": BPF_F_NO_PREALLOC}, EINVAL),
    ("lpm key 261", T.LPM_TRIE, 261, 4, 4, {"flags": BPF_F_NO_PREALLOC}, EINVAL),
    ("lpm value 0", T.LPM_TRIE, 8, 0, 4, {"flags": BPF_F_NO_PREALLOC}, EINVAL),
    ("queue key 4", T.QUEUE, 4, 4, 4, {}, EINVAL),
    ("stack value 0", T.STACK, 0, 0, 4, {}, EINVAL),
    ("queue max 0", T.QUEUE, 0, 4, 0, {}, EINVAL),
    ("bloom key 4", T.BLOOM_FILTER, 4, 4, 4, {}, EINVAL),
    ("bloom map_extra 16", T.BLOOM_FILTER, 0, 4, 4, {"map_extra": 16}, EINVAL),
    ("ringbuf not pow2", T.RINGBUF, 0, 0, 3 * 4096, {}, EINVAL),
    ("ringbuf not page", T.RINGBUF, 0, 0, 2048, {}, EINVAL),
    ("ringbuf 0", T.RINGBUF, 0, 0, 0, {}, EINVAL),
    ("ringbuf key", T.RINGBUF, 4, 0, 4096, {}, EINVAL),
    ("prog array value 8", T.PROG_ARRAY, 4, 8, 4, {}, EINVAL),
    ("prog array rdonly_prog", T.PROG_ARRAY, 4, 4, 4, {"flags": BPF_F_RDONLY_PROG}, EINVAL),
    ("perf value 8", T.PERF_EVENT_ARRAY, 4, 8, 4, {}, EINVAL),
    ("array of maps no inner", T.ARRAY_OF_MAPS, 4, 4, 4, {}, EINVAL),
    ("hash of maps value 8", T.HASH_OF_MAPS, 4, 8, 4,
     {"inner": MapSpec("i", T.ARRAY, 4, 4, 1)}, EINVAL),
    ("devmap value 6", T.DEVMAP, 4, 6, 4, {}, EINVAL),
    ("devmap hash key 8", T.DEVMAP_HASH, 8, 4, 4, {}, EINVAL),
    ("cpumap too many", T.CPUMAP, 4, 4, 10000, {}, E2BIG),
    ("cpumap value 12", T.CPUMAP, 4, 12, 4, {}, EINVAL),
    ("xskmap value 8", T.XSKMAP, 4, 8, 4, {}, EINVAL),
    ("sockmap", T.SOCKMAP, 4, 4, 4, {}, EINVAL),
]


@pytest.mark.parametrize("what,mtype,key,value,entries,kw,err", BAD_SPECS,
                         ids=[b[0] for b in BAD_SPECS])
def test_creation_checks(what, mtype, key, value, entries, kw, err) -> None:
    with pytest.raises(MapError) as info:
        new(mtype, key, value, entries, name="bad", **kw)
    e = info.value
    assert (e.map, e.map_name, e.operation, e.errno) == ("bad", "bad", "create", err)
    assert isinstance(e, XsimError) and str(e).startswith("map 'bad': create: ")


@pytest.mark.parametrize("mtype,key,value,entries,kw", [
    (T.ARRAY, 4, 1, 1, {}), (T.HASH, 1, 1, 1, {}), (T.LPM_TRIE, 260, 1, 1,
                                                     {"flags": BPF_F_NO_PREALLOC}),
    (T.LPM_TRIE, 5, 1, 1, {"flags": BPF_F_NO_PREALLOC}), (T.QUEUE, 0, 1, 1, {}),
    (T.BLOOM_FILTER, 0, 1, 1, {"map_extra": 15}), (T.RINGBUF, 0, 0, 1 << 16, {}),
    (T.DEVMAP, 4, 8, 1, {}), (T.CPUMAP, 4, 8, 1, {}), (T.XSKMAP, 4, 4, 1, {}),
    (T.DEVMAP_HASH, 4, 4, 1, {}), (T.PROG_ARRAY, 4, 4, 1, {}),
])
def test_creation_accepts_the_limits(mtype, key, value, entries, kw) -> None:
    assert new(mtype, key, value, entries, **kw).type == mtype


def test_map_regions_lead_back_to_the_map() -> None:
    space = run_space()
    m = new(T.HASH, 4, 4, 4, space=space, name="flows")
    assert m.region.name == "map:flows" and space.owner_at(m.vaddr) is m
    assert (m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags) == \
        ("flows", T.HASH, 4, 4, 4, 0)
    with pytest.raises(MapError) as info:
        new(T.HASH, 4, 4, 4, space=space, name="flows")
    assert info.value.errno == EEXIST


def test_python_and_program_share_the_value_bytes_across_region_moves() -> None:
    space = run_space()
    m = new(T.ARRAY, 4, 8, 4, space=space)
    m.update(2, u64(5))
    ptr = m.prog_lookup(u32(2), 0)
    assert space.read(ptr, 8) == u64(5)
    for i in range(5):                            # every add moves the host bytes
        new(T.HASH, 4, 64, 64, space=space, name=f"other{i}")
    space.write(ptr, u64(6))                      # as the program would
    assert m.lookup(2) == u64(6)
    m.update(2, u64(7))
    assert space.read(ptr, 8) == u64(7)


def test_bad_key_and_value_arguments() -> None:
    m = new(T.HASH, 4, 8, 4)
    assert errno_of(m.update, b"abc", u64(1)) == EINVAL
    assert errno_of(m.update, u32(1), b"short") == EINVAL
    assert errno_of(m.lookup, "key") == EINVAL
    assert errno_of(m.update, 1 << 40, u64(1)) == EINVAL
    m.update(7, u64(1))                          # an int key is little-endian key_size bytes
    assert m.lookup(u32(7)) == u64(1)


# -- arrays ----------------------------------------------------------------------------------

def test_array_semantics() -> None:
    m = new(T.ARRAY, 4, 4, 3)
    assert m.lookup(0) == bytes(4) and m.lookup(3) is None
    m.update(1, b"abcd")
    m.update(1, b"efgh", BPF_EXIST)
    assert m.lookup(1) == b"efgh"
    assert errno_of(m.update, 3, b"abcd") == E2BIG
    assert errno_of(m.update, 0, b"abcd", BPF_NOEXIST) == EEXIST
    assert errno_of(m.update, 0, b"abcd", 3) == EINVAL
    assert errno_of(m.update, 0, b"abcd", BPF_F_LOCK) == EINVAL
    assert errno_of(m.delete, 0) == EINVAL
    assert m.keys() == [u32(0), u32(1), u32(2)]
    assert m.items()[1] == (u32(1), b"efgh")
    assert m.prog_lookup(u32(1), 0) == m.vaddr + 8        # values are 8-byte aligned
    assert m.prog_lookup(u32(3), 0) == 0
    assert m.prog_update(u32(5), b"zzzz", 0, 0) == -E2BIG
    assert m.prog_delete(u32(0)) == -EINVAL
    assert m.dump().splitlines()[1] == "key: 01 00 00 00  value: 65 66 67 68"


def test_percpu_array_values_per_cpu_rounded_to_8() -> None:
    m = new(T.PERCPU_ARRAY, 4, 12, 2, ncpus=3)
    assert m.region.size == 2 * 3 * 16
    assert m.lookup(0) == [bytes(12)] * 3
    m.update(0, b"x" * 12)
    assert m.lookup(0) == [b"x" * 12] * 3
    m.update(1, [bytes([c]) * 12 for c in range(3)])
    assert m.lookup(1, cpu=2) == b"\x02" * 12
    assert m.prog_lookup(u32(1), 2) == m.vaddr + 1 * 48 + 2 * 16
    assert m.prog_update(u32(1), b"y" * 12, 0, 1) == 0
    assert m.lookup(1) == [b"\x00" * 12, b"y" * 12, b"\x02" * 12]
    assert errno_of(m.update, 0, [b"x" * 12] * 2) == EINVAL       # one value per CPU
    assert errno_of(m.lookup, 0, cpu=3) == E2BIG


def test_global_data() -> None:
    space = run_space()
    data = new(T.ARRAY, 4, 6, 1, space=space, name=".data", data=b"hello!")
    assert data.lookup(0) == b"hello!" and data.region.writable
    data.update(0, b"HELLO!")
    ro = new(T.ARRAY, 4, 5, 1, space=space, name=".rodata", data=b"const", readonly=True,
             flags=BPF_F_RDONLY_PROG)
    assert ro.lookup(0) == b"const" and not ro.region.writable
    assert errno_of(ro.update, 0, b"other") == EPERM
    assert ro.lookup(0) == b"const"


def test_syscall_permissions() -> None:
    m = new(T.HASH, 4, 4, 4)
    m.update(1, b"aaaa")
    m.freeze()
    assert errno_of(m.update, 1, b"bbbb") == EPERM
    assert errno_of(m.delete, 1) == EPERM
    assert m.prog_update(u32(1), b"bbbb", 0, 0) == 0                # programs still may
    assert m.lookup(1) == b"bbbb"
    assert errno_of(new(T.ARRAY, 4, 4, 1, flags=BPF_F_RDONLY).update, 0, b"aaaa") == EPERM
    assert errno_of(new(T.ARRAY, 4, 4, 1, flags=BPF_F_WRONLY).lookup, 0) == EPERM


# -- hashes ----------------------------------------------------------------------------------

def test_hash_semantics() -> None:
    m = new(T.HASH, 4, 4, 2)
    assert m.lookup(1) is None
    assert errno_of(m.update, 1, b"aaaa", BPF_EXIST) == ENOENT
    m.update(1, b"aaaa", BPF_NOEXIST)
    assert errno_of(m.update, 1, b"bbbb", BPF_NOEXIST) == EEXIST
    m.update(2, b"bbbb")
    assert errno_of(m.update, 3, b"cccc") == E2BIG
    m.update(2, b"BBBB", BPF_EXIST)                              # full, but it exists
    assert errno_of(m.update, 2, b"BBBB", 3) == EINVAL
    assert errno_of(m.update, 2, b"BBBB", BPF_F_LOCK) == EINVAL
    assert m.items() == [(u32(1), b"aaaa"), (u32(2), b"BBBB")]
    m.delete(1)
    assert errno_of(m.delete, 1) == ENOENT
    assert m.keys() == [u32(2)] and len(m) == 1
    m.update(3, b"cccc")
    assert len(m) == 2


def test_percpu_hash() -> None:
    m = new(T.PERCPU_HASH, 2, 4, 4, ncpus=2)
    m.update(b"ab", [b"0000", b"1111"])
    assert m.lookup(b"ab") == [b"0000", b"1111"] and m.lookup(b"ab", cpu=1) == b"1111"
    assert m.prog_lookup(b"ab", 1) - m.prog_lookup(b"ab", 0) == 8
    assert m.prog_update(b"ab", b"2222", 0, 0) == 0                # existing: own CPU only
    assert m.lookup(b"ab") == [b"2222", b"1111"]
    assert "value (CPU 01): 31 31 31 31" in m.dump()


# -- LRU maps: the kernel's bpf_lru_list.c (xsim/runtime/maps/lru.py) ---------------------------
# The expected keys are what Linux 6.18 answered for the same operations on a machine with
# 2 possible CPUs (tests/test_lru_differential.py checks such sequences against the kernel).

def keys_of(m: Map) -> list[int]:
    return [struct.unpack("<I", k)[0] for k in m.keys()]


def test_lru_evicts_in_batches_and_spares_referenced() -> None:
    m = new(T.LRU_HASH, 4, 4, 8, ncpus=2)
    assert m.lru_state()["target_free"] == 2              # 8 nodes / 2 CPUs / 2
    for k in range(1, 9):
        m.update(k, b"vvvv")
    assert len(m) == 8
    st = m.lru_state()
    assert st["local"][0]["pending"] == [u32(8), u32(7)]  # newest first
    assert st["lists"][0]["inactive"] == [u32(k) for k in range(6, 0, -1)]
    assert st["lists"][0]["free"] == [] and st["local"][1] == {
        "pending": [], "free": [], "next_steal": 1}
    assert m.prog_lookup(u32(1), 0)                        # a program lookup sets the bit
    m.lookup(2)                                            # a syscall lookup does not
    assert m.lru_state()["referenced"] == [u32(1)] and m.lru_order()[-1] == u32(1)
    assert m.lru_order()[0] == u32(2)
    m.update(9, b"vvvv")           # refill: 7, 8 flushed, 1 to the active list, 2 and 3 out
    assert keys_of(m) == [1, 4, 5, 6, 7, 8, 9]
    assert m.lru_state()["lists"][0]["active"] == [u32(1)]
    m.update(10, b"vvvv")          # the refill's second node: no eviction
    assert len(m) == 8
    m.update(11, b"vvvv")          # 4 and 5 out
    assert keys_of(m) == [1, 6, 7, 8, 9, 10, 11]


def test_lru_updates_take_a_node_before_looking() -> None:
    m = new(T.LRU_HASH, 4, 4, 4, ncpus=2)                  # target_free 1
    for k in (1, 2, 3, 4):
        m.update(k, b"vvvv")
    assert errno_of(m.update, 9, b"vvvv", BPF_EXIST) == ENOENT
    assert keys_of(m) == [2, 3, 4]                         # ... which evicted 1 all the same
    assert errno_of(m.update, 3, b"vvvv", BPF_NOEXIST) == EEXIST
    assert keys_of(m) == [2, 3, 4]     # the node given back by the failed update: no eviction
    m.update(3, b"wwww")               # a new node replaces 3's, with the reference bit set
    assert m.lookup(3) == b"wwww" and m.lru_state()["referenced"] == [u32(3)]
    m.update(5, b"vvvv")
    m.update(6, b"vvvv")
    assert keys_of(m) == [3, 4, 5, 6]
    m.update(7, b"vvvv")
    m.update(8, b"vvvv")
    assert keys_of(m) == [3, 6, 7, 8]


def test_lru_deletes_give_nodes_back() -> None:
    m = new(T.LRU_HASH, 4, 4, 8, ncpus=2)
    for k in (1, 2, 3):
        m.update(k, b"vvvv")           # 1, 2 flushed to the inactive list, 3 pending on CPU 0
    m.delete(3)                        # a pending node: back to its CPU's local free list
    m.delete(1)                        # a node of the global lists: to the global free list
    st = m.lru_state()
    assert st["local"][0] == {"pending": [], "free": [None, None], "next_steal": 0}
    assert st["lists"][0]["inactive"] == [u32(2)] and st["lists"][0]["free"] == [None] * 5
    assert keys_of(m) == [2] and m.lru_order() == [u32(2)]
    assert errno_of(m.delete, 3) == ENOENT


def test_lru_cpus_take_nodes_for_their_local_lists() -> None:
    m = new(T.LRU_HASH, 4, 4, 8, ncpus=2)
    assert m.prog_update(u32(1), b"vvvv", BPF_ANY, 1) == 0   # CPU 1 takes 2 nodes
    m.update(2, b"vvvv")                                      # Python: CPU 0
    m.syscall_cpu = 1
    m.update(3, b"vvvv")
    st = m.lru_state()
    assert st["local"][1]["pending"] == [u32(3), u32(1)] and st["local"][1]["free"] == []
    assert st["local"][0] == {"pending": [u32(2)], "free": [None], "next_steal": 0}
    assert len(st["lists"][0]["free"]) == 4
    m.prog_delete(u32(1))
    assert m.lru_state()["local"][1]["free"] == [None]


def test_lru_percpu_and_no_common_lru_lists() -> None:
    m = new(T.LRU_PERCPU_HASH, 4, 8, 5, ncpus=4, flags=BPF_F_NO_COMMON_LRU)
    assert m.max_entries == 8                  # rounded up: every CPU owns 2 nodes
    m = new(T.LRU_PERCPU_HASH, 4, 8, 5, ncpus=2, flags=BPF_F_NO_COMMON_LRU)
    assert m.max_entries == 6
    for k in range(9):                         # all on CPU 0, which owns 3 nodes
        m.update(k, u64(k))
    assert keys_of(m) == [6, 7, 8] and m.lookup(8) == [u64(8)] * 2
    assert "local" in m.lru_state() and m.lru_state()["local"] == []
    assert [len(l["free"]) for l in m.lru_state()["lists"]] == [0, 3]
    m.syscall_cpu = 1
    m.update(9, u64(9))
    assert keys_of(m) == [6, 7, 8, 9]
    assert m.prog_update(u32(9), u64(90), BPF_ANY, 1) == 0   # in place: CPU 1's value
    assert m.lookup(9) == [u64(9), u64(90)] and m.lru_state()["referenced"] == [u32(9)]
    assert m.prog_update(u32(5), u64(5), BPF_EXIST, 0) == -ENOENT
    assert keys_of(m) == [6, 7, 8, 9]          # BPF_EXIST on lru_percpu_hash takes no node


class HashVsDict(RuleBasedStateMachine):
    """A hash map (Python and program side) against a dict with the kernel's rules."""

    def __init__(self) -> None:
        super().__init__()
        self.space = run_space()
        self.m = create_map(MapSpec("h", T.HASH, 2, 4, 6), self.space, 1)
        self.model: dict[bytes, bytes] = {}

    keys = st.binary(min_size=2, max_size=2).map(lambda b: bytes([b[0] % 4, b[1] % 3]))
    values = st.binary(min_size=4, max_size=4)

    def expect(self, key: bytes, flags: int) -> int:
        if flags > BPF_EXIST:
            return EINVAL
        if key in self.model and flags == BPF_NOEXIST:
            return EEXIST
        if key not in self.model and flags == BPF_EXIST:
            return ENOENT
        if key not in self.model and len(self.model) == 6:
            return E2BIG
        return 0

    @rule(key=keys, value=values, flags=st.sampled_from([0, 1, 2, 3]), prog=st.booleans())
    def update(self, key, value, flags, prog) -> None:
        want = self.expect(key, flags)
        if prog:
            got = -self.m.prog_update(key, value, flags, 0)
        else:
            try:
                self.m.update(key, value, flags)
                got = 0
            except MapError as e:
                got = e.errno
        assert got == want
        if want == 0:
            self.model[key] = value

    @rule(key=keys, prog=st.booleans())
    def delete(self, key, prog) -> None:
        want = 0 if key in self.model else ENOENT
        if prog:
            assert -self.m.prog_delete(key) == want
        elif want:
            assert errno_of(self.m.delete, key) == want
        else:
            self.m.delete(key)
        self.model.pop(key, None)

    @rule(key=keys)
    def lookup(self, key) -> None:
        assert self.m.lookup(key) == self.model.get(key)
        ptr = self.m.prog_lookup(key, 0)
        assert (ptr == 0) == (key not in self.model)
        if ptr:
            assert self.space.read(ptr, 4) == self.model[key]

    @invariant()
    def same_contents(self) -> None:
        assert self.m.items() == sorted(self.model.items())


TestHashVsDict = HashVsDict.TestCase
TestHashVsDict.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])


class RefLru:
    """bpf_lru_list.c and the LRU parts of hashtab.c once more, on Python lists of
    elements (newest first) with free nodes only counted: written from the kernel
    source apart from xsim/runtime/maps/lru.py, to check it."""

    class Elem:
        def __init__(self, cpu: int) -> None:
            self.key: bytes | None = None
            self.ref = 0
            self.cpu = cpu

    def __init__(self, n: int, ncpus: int, percpu_lru: bool) -> None:
        self.ncpus, self.percpu_lru = ncpus, percpu_lru
        sets = ncpus if percpu_lru else 1
        self.active: list[list] = [[] for _ in range(sets)]
        self.inactive: list[list] = [[] for _ in range(sets)]
        self.rot: list = [None] * sets                  # None: the inactive list's head
        self.free = [n // ncpus] * ncpus if percpu_lru else [n]
        self.scans = 4 if percpu_lru else 128
        self.target = 4 if percpu_lru else min(max(n // ncpus // 2, 1), 128)
        self.lfree = [0] * ncpus
        self.pending: list[list] = [[] for _ in range(ncpus)]
        self.steal = list(range(ncpus))
        self.elems: dict[bytes, RefLru.Elem] = {}

    # list moves
    def _set(self, e) -> int:
        return e.cpu if self.percpu_lru else 0

    def _unlink(self, s: int, e) -> None:
        for lst in (self.active[s], self.inactive[s]):
            if any(x is e for x in lst):
                if self.rot[s] is e:
                    i = lst.index(e)
                    self.rot[s] = lst[i - 1] if i else None
                lst.remove(e)
                return
        raise AssertionError("not on a list")

    def _move(self, s: int, e, to: str) -> None:
        e.ref = 0
        self._unlink(s, e)
        if to == "free":
            self.free[s] += 1
        else:
            getattr(self, to)[s].insert(0, e)

    def _evict(self, s: int, e, local: int | None) -> None:
        del self.elems[e.key]
        self._unlink(s, e)
        if local is None:
            self.free[s] += 1
        else:
            self.lfree[local] += 1

    # rotation and shrinking
    def _rotate(self, s: int) -> None:
        act, ina = self.active[s], self.inactive[s]
        if len(ina) < len(act):
            first = act[0]
            for i, e in enumerate(list(reversed(act))):
                self._move(s, e, "active" if e.ref else "inactive")
                if i + 1 == self.scans or e is first:
                    break
        if not ina:
            return
        if self.rot[s] is None:
            order = ina[::-1]
        else:
            j = ina.index(self.rot[s])
            order = ina[j::-1] + ina[:j:-1]
        nxt = None
        for e in order[:self.scans]:
            i = ina.index(e)
            nxt = ina[i - 1] if i else None
            if e.ref:
                self._move(s, e, "active")
        self.rot[s] = nxt

    def _shrink(self, s: int, want: int, local: int | None) -> None:
        done = 0
        for i, e in enumerate(list(reversed(self.inactive[s]))):
            if e.ref:
                self._move(s, e, "active")
            else:
                self._evict(s, e, local)
                done += 1
                if done == want:
                    break
            if i + 1 == self.scans:
                break
        if not done:
            lst = self.inactive[s] or self.active[s]
            if lst:
                self._evict(s, lst[-1], local)

    # bpf_lru_pop_free / bpf_lru_push_free
    def pop(self, cpu: int):
        if self.percpu_lru:
            self._rotate(cpu)
            if not self.free[cpu]:
                self._shrink(cpu, 4, None)
            if not self.free[cpu]:
                return None
            self.free[cpu] -= 1
            e = self.Elem(cpu)
            self.inactive[cpu].insert(0, e)
            return e
        if not self.lfree[cpu]:
            for e in reversed(self.pending[cpu]):      # flush, oldest first
                self.elems_move_in(e)
            self.pending[cpu] = []
            self._rotate(0)
            take = min(self.free[0], self.target)
            self.free[0] -= take
            self.lfree[cpu] += take
            if take < self.target:
                self._shrink(0, self.target - take, cpu)
        found = False
        if self.lfree[cpu]:
            self.lfree[cpu] -= 1
            found = True
        else:
            first = victim = self.steal[cpu]
            while True:
                if self.lfree[victim]:
                    self.lfree[victim] -= 1
                    found = True
                else:
                    found = self._steal_pending(victim)
                victim = (victim + 1) % self.ncpus
                if found or victim == first:
                    break
            self.steal[cpu] = victim
        if not found:
            return None
        e = self.Elem(cpu)
        self.pending[cpu].insert(0, e)
        return e

    def elems_move_in(self, e) -> None:
        (self.active if e.ref else self.inactive)[0].insert(0, e)
        e.ref = 0

    def _steal_pending(self, victim: int) -> bool:
        for force in (False, True):
            for e in reversed(self.pending[victim]):
                if force or not e.ref:
                    del self.elems[e.key]
                    self.pending[victim].remove(e)
                    return True
        return False

    def push(self, e) -> None:
        if not self.percpu_lru and any(x is e for x in self.pending[e.cpu]):
            self.pending[e.cpu].remove(e)
            self.lfree[e.cpu] += 1
        else:
            self._move(self._set(e), e, "free")

    # the map operations (hashtab.c)
    def update(self, key: bytes, flags: int, cpu: int, percpu_values: bool) -> int:
        node = None
        if not (percpu_values and flags == BPF_EXIST):
            node = self.pop(cpu)
            if node is None:
                return -12
        old = self.elems.get(key)
        err = -EEXIST if old and flags == BPF_NOEXIST else \
            -ENOENT if not old and flags == BPF_EXIST else 0
        if err:
            if node is not None:
                self.push(node)
            return err
        if old is None:
            node.key = key
            self.elems[key] = node
        elif percpu_values:
            old.ref = 1
            if node is not None:
                self.push(node)
        else:
            node.key, node.ref = key, 1
            self.elems[key] = node
            old.key = None
            self.push(old)
        return 0

    def delete(self, key: bytes) -> int:
        e = self.elems.pop(key, None)
        if e is None:
            return -ENOENT
        self.push(e)
        return 0

    def lookup(self, key: bytes, prog: bool) -> bool:
        e = self.elems.get(key)
        if e is not None and prog:
            e.ref = 1
        return e is not None

    def state(self) -> dict:
        def keys(lst: list) -> list:
            return [e.key for e in lst]
        return {
            "lists": [{"active": keys(a), "inactive": keys(i), "free": [None] * f}
                      for a, i, f in zip(self.active, self.inactive, self.free)],
            "local": [] if self.percpu_lru else [
                {"pending": keys(p), "free": [None] * f, "next_steal": s}
                for p, f, s in zip(self.pending, self.lfree, self.steal)],
            "referenced": sorted(e.key for e in self.elems.values() if e.ref),
            "target_free": self.target,
        }


class LruVsModel(RuleBasedStateMachine):
    """An LRU map (Python and program side, on several CPUs) against :class:`RefLru`:
    the same contents and the same lists after every step."""

    MTYPE, ENTRIES, NCPUS, FLAGS = T.LRU_HASH, 8, 2, 0

    def __init__(self) -> None:
        super().__init__()
        self.m = create_map(MapSpec("lru", self.MTYPE, 4, 8, self.ENTRIES, flags=self.FLAGS),
                            run_space(), self.NCPUS)
        self.ref = RefLru(self.m.max_entries, self.NCPUS, bool(self.FLAGS))
        self.values: dict[bytes, bytes] = {}

    keys = st.integers(0, 11).map(u32)
    cpus = st.integers(0, 7)
    flags = st.sampled_from([BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST])

    @rule(key=keys, value=st.integers(0, 1 << 40).map(u64), flags=flags, cpu=cpus,
          prog=st.booleans())
    def update(self, key, value, flags, cpu, prog) -> None:
        cpu %= self.NCPUS
        percpu = self.MTYPE == T.LRU_PERCPU_HASH
        want = self.ref.update(key, flags, cpu, percpu)
        if prog:
            assert self.m.prog_update(key, value, flags, cpu) == want
        else:
            self.m.syscall_cpu = cpu
            if want:
                assert errno_of(self.m.update, key, value, flags) == -want
            else:
                self.m.update(key, value, flags)
        if not want and not percpu:
            self.values[key] = value

    @rule(first=st.integers(0, 11), n=st.integers(1, 8), cpu=cpus)
    def fill(self, first, n, cpu) -> None:
        for k in range(first, first + n):
            self.update(u32(k % 12), u64(k), BPF_ANY, cpu, True)

    @rule(key=keys, cpu=cpus)
    def prog_lookup(self, key, cpu) -> None:
        assert (self.m.prog_lookup(key, cpu % self.NCPUS) != 0) == self.ref.lookup(key, True)

    @precondition(lambda self: self.ref.elems)
    @rule(data=st.data(), cpu=cpus)
    def use_one(self, data, cpu) -> None:
        """A program lookup of a key that is there (so the reference bit matters)."""
        key = data.draw(st.sampled_from(sorted(self.ref.elems)))
        assert self.m.prog_lookup(key, cpu % self.NCPUS) and self.ref.lookup(key, True)

    @rule(key=keys)
    def py_lookup(self, key) -> None:
        assert (self.m.lookup(key) is not None) == self.ref.lookup(key, False)

    @rule(key=keys, prog=st.booleans())
    def delete(self, key, prog) -> None:
        want = self.ref.delete(key)
        if prog:
            assert self.m.prog_delete(key) == want
        elif want:
            assert errno_of(self.m.delete, key) == -want
        else:
            self.m.delete(key)

    @invariant()
    def same_lists(self) -> None:
        assert self.m.keys() == sorted(self.ref.elems)
        assert self.m.lru_state() == self.ref.state()
        if self.MTYPE == T.LRU_HASH:
            assert self.m.items() == sorted((k, self.values[k]) for k in self.ref.elems)


class LruNoCommonVsModel(LruVsModel):
    MTYPE, ENTRIES, NCPUS, FLAGS = T.LRU_HASH, 9, 2, BPF_F_NO_COMMON_LRU


class LruPercpuVsModel(LruVsModel):
    MTYPE, ENTRIES, NCPUS, FLAGS = T.LRU_PERCPU_HASH, 5, 3, 0     # target_free 1: steals


class LruSmallVsModel(LruVsModel):
    MTYPE, ENTRIES, NCPUS, FLAGS = T.LRU_HASH, 16, 2, 0


LRU_SETTINGS = settings(max_examples=50, stateful_step_count=40, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow])
TestLruVsModel = LruVsModel.TestCase
TestLruNoCommonVsModel = LruNoCommonVsModel.TestCase
TestLruPercpuVsModel = LruPercpuVsModel.TestCase
TestLruSmallVsModel = LruSmallVsModel.TestCase
for _case in (TestLruVsModel, TestLruNoCommonVsModel, TestLruPercpuVsModel, TestLruSmallVsModel):
    _case.settings = LRU_SETTINGS


# -- LPM trie --------------------------------------------------------------------------------

def lpm_key(plen: int, *addr: int) -> bytes:
    return u32(plen) + bytes(addr)


def lpm4(entries: int = 16) -> Map:
    return new(T.LPM_TRIE, 8, 4, entries, flags=BPF_F_NO_PREALLOC)


def test_lpm_longest_match() -> None:
    m = lpm4()
    m.update(lpm_key(0, 0, 0, 0, 0), b"dflt")
    m.update(lpm_key(8, 10, 0, 0, 0), b"/8  ")
    m.update(lpm_key(16, 10, 1, 0, 0), b"/16 ")
    m.update(lpm_key(24, 10, 1, 2, 0), b"/24 ")
    m.update(lpm_key(32, 10, 1, 2, 3), b"/32 ")
    assert m.lookup(lpm_key(32, 10, 1, 2, 3)) == b"/32 "
    assert m.lookup(lpm_key(32, 10, 1, 2, 4)) == b"/24 "
    assert m.lookup(lpm_key(32, 10, 1, 3, 3)) == b"/16 "
    assert m.lookup(lpm_key(32, 10, 2, 2, 3)) == b"/8  "
    assert m.lookup(lpm_key(32, 11, 1, 2, 3)) == b"dflt"
    assert m.lookup(lpm_key(20, 10, 1, 2, 3)) == b"/16 "     # the key's prefix length bounds it
    assert m.lookup(lpm_key(33, 10, 1, 2, 3)) is None
    m.delete(lpm_key(0, 0, 0, 0, 0))
    assert m.lookup(lpm_key(32, 11, 1, 2, 3)) is None


def test_lpm_bits_not_bytes() -> None:
    m = lpm4()
    m.update(lpm_key(9, 192, 128, 0, 0), b"9bit")             # 192.128/9
    assert m.lookup(lpm_key(32, 192, 200, 1, 1)) == b"9bit"
    assert m.lookup(lpm_key(32, 192, 127, 1, 1)) is None
    m.update(lpm_key(9, 192, 255, 255, 255), b"same")         # same prefix, other tail bits
    assert len(m) == 1 and m.keys() == [lpm_key(9, 192, 255, 255, 255)]


def test_lpm_errnos() -> None:
    m = lpm4(entries=2)
    assert errno_of(m.update, lpm_key(33, 1, 2, 3, 4), b"xxxx") == EINVAL
    assert errno_of(m.update, lpm_key(8, 1, 0, 0, 0), b"xxxx", BPF_EXIST) == ENOENT
    m.update(lpm_key(8, 1, 0, 0, 0), b"xxxx", BPF_NOEXIST)
    assert errno_of(m.update, lpm_key(8, 1, 0, 0, 0), b"yyyy", BPF_NOEXIST) == EEXIST
    assert errno_of(m.update, lpm_key(8, 1, 0, 0, 0), b"yyyy", 3) == EINVAL
    m.update(lpm_key(16, 1, 2, 0, 0), b"zzzz")
    assert errno_of(m.update, lpm_key(24, 1, 2, 3, 0), b"full") == ENOSPC
    m.update(lpm_key(16, 1, 2, 0, 0), b"ZZZZ")                # in place, while full
    assert errno_of(m.delete, lpm_key(24, 1, 2, 3, 0)) == ENOENT
    assert errno_of(m.delete, lpm_key(40, 1, 2, 3, 0)) == EINVAL
    assert m.prog_update(lpm_key(33, 0, 0, 0, 0), b"xxxx", 0, 0) == -EINVAL
    assert m.prog_lookup(lpm_key(32, 1, 2, 9, 9), 0) == m.vaddr + 8   # slot 1


def test_lpm_ipv6() -> None:
    m = new(T.LPM_TRIE, 20, 8, 8, flags=BPF_F_NO_PREALLOC)
    net = bytes.fromhex("20010db8000000000000000000000000")
    m.update(u32(32) + net, u64(32))
    m.update(u32(127) + net, u64(127))
    assert m.lookup(u32(128) + net) == u64(127)
    assert m.lookup(u32(128) + net[:15] + b"\x02") == u64(32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 16), st.integers(0, 0xFFFF)), max_size=12),
       st.lists(st.tuples(st.integers(0, 16), st.integers(0, 0xFFFF)), min_size=1, max_size=8))
def test_lpm_matches_brute_force(routes, probes) -> None:
    m = new(T.LPM_TRIE, 6, 2, 16, flags=BPF_F_NO_PREALLOC)
    model: dict[tuple[int, int], bytes] = {}
    for plen, addr in routes:
        value = u32(plen)[:1] + bytes([len(model) % 256])
        m.update(u32(plen) + addr.to_bytes(2, "big"), value)
        model[(plen, addr >> (16 - plen))] = value
    for plen, addr in probes:
        best = None
        for p in range(plen, -1, -1):
            if (p, addr >> (16 - p)) in model:
                best = model[(p, addr >> (16 - p))]
                break
        assert m.lookup(u32(plen) + addr.to_bytes(2, "big")) == best


# -- queue, stack, bloom filter ----------------------------------------------------------------

def test_queue_fifo_and_overwrite() -> None:
    q = new(T.QUEUE, 0, 4, 3)
    for v in (b"1111", b"2222", b"3333"):
        q.push(v)
    assert errno_of(q.push, b"4444") == E2BIG
    q.push(b"4444", BPF_EXIST)                   # drops the oldest
    assert q.values() == [b"2222", b"3333", b"4444"]
    assert q.peek() == b"2222" and q.lookup(b"") == b"2222"
    assert [q.pop(), q.pop(), q.pop()] == [b"2222", b"3333", b"4444"]
    assert errno_of(q.pop) == ENOENT and errno_of(q.peek) == ENOENT
    assert q.lookup(b"") is None
    assert errno_of(q.push, b"5555", BPF_NOEXIST) == EINVAL
    assert errno_of(q.push, b"5555", 3) == EINVAL
    assert errno_of(q.delete, b"") == EINVAL and errno_of(q.keys) == EINVAL
    q.update(b"", b"6666")                       # the syscall's update is a push
    assert q.pop() == b"6666"
    for i in range(10):                          # wrap around the ring many times
        q.push(u32(i))
        assert q.pop() == u32(i)


def test_stack_lifo_and_overwrite() -> None:
    s = new(T.STACK, 0, 4, 3)
    for v in (b"1111", b"2222", b"3333"):
        s.push(v)
    s.push(b"4444", BPF_EXIST)                   # drops the oldest (the bottom)
    assert s.values() == [b"4444", b"3333", b"2222"]
    assert [s.pop(), s.pop(), s.pop()] == [b"4444", b"3333", b"2222"]
    assert errno_of(s.pop) == ENOENT
    assert s.prog_pop() == (-ENOENT, b"")
    assert s.prog_push(b"7777", 0) == 0 and s.prog_peek(b"") == (0, b"7777")


@settings(max_examples=40, deadline=None)
@given(st.sets(st.binary(min_size=8, max_size=8), max_size=200),
       st.integers(0, 15))
def test_bloom_filter_has_no_false_negatives(values, nhash) -> None:
    b = new(T.BLOOM_FILTER, 0, 8, max(len(values), 1), map_extra=nhash)
    for v in values:
        b.push(v)
    assert all(b.peek(v) for v in values)
    assert all(b.prog_peek(v)[0] == 0 for v in values)


def test_bloom_filter_semantics() -> None:
    b = new(T.BLOOM_FILTER, 0, 4, 100)
    assert b.nr_hash_funcs == 5 and b.nr_bits == 1024          # 100 * 5 / 5 * 7 -> 1024
    assert not b.peek(b"abcd") and b.prog_peek(b"abcd")[0] == -ENOENT
    b.push(b"abcd")
    assert b"abcd" in b
    assert errno_of(b.push, b"efgh", BPF_EXIST) == EINVAL
    assert errno_of(b.pop) == EOPNOTSUPP and errno_of(b.delete, b"") == EOPNOTSUPP
    assert errno_of(b.lookup, b"") == EINVAL
    present = sum(b.peek(u32(i)) for i in range(1000, 3000))
    assert present < 100                                        # few false positives


# -- ring buffer, perf event array -----------------------------------------------------------

def test_ringbuf_records_headers_and_positions() -> None:
    space = run_space()
    rb = new(T.RINGBUF, 0, 0, 4096, space=space)
    a = rb.reserve(5)
    b = rb.reserve(16)
    assert b - a == 16 and a == rb.vaddr + 8                   # 8-byte header, 8-aligned
    space.write(a, b"first")
    space.write(b, b"second".ljust(16, b"."))
    assert struct.unpack("<II", space.read(a - 8, 8)) == (5 | 1 << 31, 3)   # busy
    rb.submit(b)
    assert rb.records(consume=False) == []                     # a is still reserved
    rb.submit(a)
    assert errno_of(rb.submit, a) == EINVAL                    # already submitted
    c = rb.reserve(1)
    rb.discard(c)
    rb.output(b"third")
    assert rb.query(BPF_RB_PROD_POS) == 16 + 24 + 16 + 16
    assert rb.query(BPF_RB_RING_SIZE) == 4096 and rb.query(7) == 0
    assert rb.records() == [b"first", b"second..........", b"third"]
    assert rb.query(BPF_RB_CONS_POS) == rb.query(BPF_RB_PROD_POS)
    assert rb.query(BPF_RB_AVAIL_DATA) == 0
    assert rb.reserve(1, flags=1) == 0
    assert errno_of(rb.output, b"x", flags=4) == EINVAL
    assert errno_of(rb.lookup, b"") == ENOTSUPP and errno_of(rb.update, b"", b"") == ENOTSUPP


def test_ringbuf_space_and_wraparound() -> None:
    rb = new(T.RINGBUF, 0, 0, 4096)
    assert rb.reserve(4096 - 8) == 0                           # header + data = 4096 > mask
    big = rb.reserve(4096 - 16)                                # exactly 4088 bytes
    assert big
    assert rb.reserve(0) == 0                                  # no room for even a header
    rb.discard(big)
    rb.records()
    for i in range(40):                                        # records straddle the end
        data = bytes([i]) * (100 + i)
        rb.output(data)
        assert rb.records() == [data]
    assert rb.query(BPF_RB_CONS_POS) > 4096
    for _ in range(4):                                         # 4 * 1008 bytes fit in 4095
        rb.output(b"z" * 1000)
    assert errno_of(rb.output, b"z" * 1000) == EAGAIN
    assert rb.records() == [b"z" * 1000] * 4


def test_perf_event_array_records_per_cpu() -> None:
    pe = new(T.PERF_EVENT_ARRAY, 4, 4, 2)
    pe.output(b"a", cpu=0)
    pe.output(b"b", cpu=1)
    pe.output(b"c", cpu=0)
    assert errno_of(pe.output, b"d", cpu=2) == E2BIG
    assert pe.records(cpu=0, consume=False) == [b"a", b"c"]
    assert pe.records() == [b"a", b"b", b"c"] and pe.records() == []
    assert errno_of(pe.lookup, 0) == ENOTSUPP


# -- prog array, map-in-map ------------------------------------------------------------------

def test_prog_array() -> None:
    pa = create_map(MapSpec("jumps", T.PROG_ARRAY, 4, 4, 3, init=((1, "tail"),)),
                    run_space(), 1)
    assert pa.get(1) == "tail" and pa.get(0) is None and pa.get(7) is None
    pa.update(2, "other")
    assert pa.lookup(2) == "other" and pa.keys() == [u32(1), u32(2)]
    assert errno_of(pa.update, 3, "x") == E2BIG
    assert errno_of(pa.update, 0, "x", BPF_NOEXIST) == EINVAL
    assert errno_of(pa.update, 0, b"\x01\x00\x00\x00") == EINVAL
    pa.delete(2)
    assert errno_of(pa.delete, 2) == ENOENT and errno_of(pa.delete, 3) == E2BIG
    assert pa.items() == [(u32(1), "tail")]


def test_array_of_maps() -> None:
    space = run_space()
    template = MapSpec("inner", T.ARRAY, 4, 8, 4)
    inner_a = create_map(template, space, 1)
    inner_b = create_map(MapSpec("inner_b", T.ARRAY, 4, 8, 4), space, 1)
    outer = create_map(MapSpec("outer", T.ARRAY_OF_MAPS, 4, 4, 2, inner=template,
                               init=((0, "inner"),)), space, 1, maps={"inner": inner_a})
    assert isinstance(outer, ArrayOfMapsMap) and outer.lookup(0) is inner_a
    outer.update(1, inner_b)
    ptr = outer.prog_lookup(u32(1), 0)
    assert ptr == inner_b.vaddr and space.owner_at(ptr) is inner_b
    wrong = create_map(MapSpec("wrong", T.ARRAY, 4, 8, 5), space, 1)
    assert errno_of(outer.update, 1, wrong) == EINVAL                  # max_entries differs
    assert errno_of(outer.update, 1, create_map(MapSpec("h", T.HASH, 4, 8, 4), space, 1)) \
        == EINVAL
    assert errno_of(outer.update, 1, "inner") == EINVAL
    outer.delete(1)
    assert outer.prog_lookup(u32(1), 0) == 0 and errno_of(outer.delete, 1) == ENOENT
    with pytest.raises(MapError) as info:
        create_map(MapSpec("o2", T.ARRAY_OF_MAPS, 4, 4, 2, inner=template,
                           init=((0, "missing"),)), space, 1, maps={})
    assert info.value.errno == ENOENT


def test_inner_map_flag_allows_any_size() -> None:
    space = run_space()
    template = MapSpec("t", T.ARRAY, 4, 8, 1, flags=BPF_F_INNER_MAP)
    outer = create_map(MapSpec("outer", T.ARRAY_OF_MAPS, 4, 4, 1, inner=template), space, 1)
    outer.update(0, create_map(MapSpec("big", T.ARRAY, 4, 8, 64, flags=BPF_F_INNER_MAP),
                               space, 1))
    assert outer.lookup(0).max_entries == 64


def test_hash_of_maps() -> None:
    space = run_space()
    template = MapSpec("inner", T.HASH, 4, 4, 8)
    inner = create_map(template, space, 1)
    outer = create_map(MapSpec("outer", T.HASH_OF_MAPS, 4, 4, 2, inner=template), space, 1)
    assert isinstance(outer, HashMap)
    assert errno_of(outer.update, 5, inner, BPF_EXIST) == ENOENT
    outer.update(5, inner, BPF_NOEXIST)
    assert errno_of(outer.update, 5, inner, BPF_NOEXIST) == EEXIST
    assert outer.lookup(5) is inner and outer.prog_lookup(u32(5), 0) == inner.vaddr
    assert outer.items() == [(u32(5), inner)]
    outer.delete(5)
    assert outer.lookup(5) is None and errno_of(outer.delete, 5) == ENOENT


# -- redirect maps ---------------------------------------------------------------------------

def test_devmap() -> None:
    d = new(T.DEVMAP, 4, 8, 4)
    assert d.flags & BPF_F_RDONLY_PROG and not d.region.writable
    d.update(1, u32(7) + u32(0))
    assert d.lookup(1) == u32(7) + u32(0) and d.lookup(0) is None
    assert d.prog_lookup(u32(1), 0) == d.vaddr + 8 and d.prog_lookup(u32(0), 0) == 0
    assert errno_of(d.update, 4, u32(7) + u32(0)) == E2BIG
    assert errno_of(d.update, 1, u32(7) + u32(0), BPF_NOEXIST) == EEXIST
    assert errno_of(d.update, 1, u32(0) + u32(3)) == EINVAL     # prog fd without ifindex
    d.update(1, u32(0) + u32(0))                                  # ifindex 0 clears
    assert d.lookup(1) is None
    d.delete(2)                                                   # empty: no error
    assert errno_of(d.delete, 4) == EINVAL


def test_devmap_hash() -> None:
    d = new(T.DEVMAP_HASH, 4, 4, 2)
    d.update(100, u32(3))
    d.update(200, u32(4))
    assert errno_of(d.update, 300, u32(5)) == E2BIG
    assert errno_of(d.update, 100, u32(0)) == EINVAL
    assert errno_of(d.update, 100, u32(9), BPF_NOEXIST) == EEXIST
    d.update(100, u32(9), BPF_EXIST)
    assert d.items() == [(u32(100), u32(9)), (u32(200), u32(4))]
    d.delete(100)
    assert errno_of(d.delete, 100) == ENOENT
    assert d.prog_lookup(u32(200), 0) != 0 and d.prog_lookup(u32(100), 0) == 0


def test_cpumap() -> None:
    c = new(T.CPUMAP, 4, 4, 8, ncpus=2)
    c.update(1, u32(192))
    assert c.lookup(1) == u32(192) and c.keys() == [u32(1)]
    assert errno_of(c.update, 8, u32(192)) == E2BIG
    assert errno_of(c.update, 0, u32(192), BPF_NOEXIST) == EEXIST
    assert errno_of(c.update, 0, u32(20000)) == EOVERFLOW
    assert errno_of(c.update, 5, u32(192)) == ENODEV               # only 2 CPUs
    c.update(1, u32(0))                                            # qsize 0 deletes
    assert c.lookup(1) is None
    assert errno_of(c.delete, 8) == EINVAL


def test_xskmap() -> None:
    x = new(T.XSKMAP, 4, 4, 4)
    assert errno_of(x.update, 0, u32(5), BPF_EXIST) == ENOENT
    x.update(0, u32(5))
    assert errno_of(x.update, 0, u32(6), BPF_NOEXIST) == EEXIST
    assert errno_of(x.update, 4, u32(6)) == E2BIG
    assert errno_of(x.lookup, 0) == EOPNOTSUPP
    assert x.get(0) == u32(5) and x.prog_lookup(u32(0), 0) == x.vaddr
    x.delete(0)
    assert x.get(0) is None and errno_of(x.delete, 9) == EINVAL


def test_error_message_names_map_operation_and_errno() -> None:
    m = new(T.ARRAY, 4, 4, 2, name="stats")
    with pytest.raises(MapError) as info:
        m.update(5, b"abcd")
    e = info.value
    assert (e.map_name, e.operation, e.errno, e.errno_name) == ("stats", "update", E2BIG, "E2BIG")
    assert str(e) == "map 'stats': update: E2BIG (Argument list too long)"
    assert isinstance(new(T.ARRAY, 4, 4, 1), ArrayMap)
