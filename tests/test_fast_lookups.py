"""bpf_map_lookup_elem on hash, percpu_hash and LPM trie maps, served inside the
compiled loop.

The key index of a hash map (an LPM trie's: of its (prefix length, masked data)
keys, plus its count of entries per prefix length) lives in an internal region
(``map:<name>:index``) that the interpreter probes itself; every answer must be
the one the Python path (``Map.prog_lookup``) gives, and nothing but xsim may
touch the index.
"""
from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xsim
from xsim.elf.kinds import MapType
from xsim.elf.spec import MapSpec
from xsim.errors import HelperError, MemoryAccessError
from xsim.isa import interp as ip
from xsim.runtime.env import RunEnv
from xsim.runtime.helpers import HelperCall, HelperRegistry
from xsim.runtime.maps import create_map, register_map_helpers
from xsim.runtime.maps.base import BPF_F_NO_PREALLOC, ENOSPC, MapError
from xsim.runtime.memory import run_space

KEY_SIZES = (1, 4, 8, 12, 64)


def lookup_text(vaddr: int, load: bool) -> str:
    """r1 = map, r2 = the input memory (the key); r0 = the pointer, or ``*(u64 *)r0``."""
    tail = "jeq %r0, 0, +1\nldxdw %r0, [%r0]\n" if load else ""
    return f"mov %r2, %r1\nlddw %r1, {vaddr:#x}\ncall 1\n{tail}exit\n"


def program(space, text: str, env: RunEnv | None = None, helpers: HelperRegistry | None = None):
    registry = helpers if helpers is not None else register_map_helpers(HelperRegistry())
    return xsim.Program.from_bytes(xsim.assemble(text, syntax="ubpf"), helpers=registry,
                                   space=space, env=env if env is not None else RunEnv())


def make(mtype: MapType, key_size: int, max_entries: int = 16, value_size: int = 8,
         ncpus: int = 1, space=None):
    space = space if space is not None else run_space()
    spec = MapSpec("h", mtype, key_size, value_size, max_entries)
    return space, create_map(spec, space, ncpus)


def key_of(i: int, key_size: int) -> bytes:
    """Distinct keys for distinct i (< 256 ** key_size), spread over every byte."""
    raw = (i * 0x9E3779B97F4A7C15 + i).to_bytes(16, "little") * 4
    return (raw[:key_size - 1] + bytes([i % 256]) if key_size > 1 else bytes([i % 256]))


def value_of(i: int) -> bytes:
    return struct.pack("<Q", 0x1000 + i * 7)


def check(prog_ptr, prog_val, m, key: bytes, cpu: int = 0) -> int:
    """Run both programs on ``key``; assert they agree with the Python path."""
    res = prog_ptr.run(key)
    assert res.error is None, res.error
    assert res.r0 == m.prog_lookup(key, cpu)
    assert res.helper_calls == {1: 1}
    res2 = prog_val.run(key)
    assert res2.error is None, res2.error
    if res.r0:
        stored = m.space.read(res.r0, m.value_size)
        expect = m.lookup(key, cpu) if m.percpu else m.lookup(key)
        assert stored == expect
        assert res2.r0 == int.from_bytes(stored[:8], "little")
    else:
        assert m.lookup(key) is None and res2.r0 == 0
    return res.r0


def served_in_loop(prog) -> int:
    return int(prog._st[ip.S_FAST_LOOKUPS])


@pytest.mark.parametrize("key_size", KEY_SIZES)
@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.PERCPU_HASH])
def test_present_absent_deleted_full(mtype: MapType, key_size: int) -> None:
    ncpus, cpu = (4, 2) if mtype == MapType.PERCPU_HASH else (1, 0)
    space, m = make(mtype, key_size, max_entries=12, ncpus=ncpus)
    env = RunEnv(ncpus=ncpus, cpu=cpu)
    ptr = program(space, lookup_text(m.vaddr, False), env)
    val = program(space, lookup_text(m.vaddr, True), env)
    keys = [key_of(i, key_size) for i in range(12)]
    assert len(set(keys)) == 12
    assert check(ptr, val, m, keys[0], cpu) == 0           # empty map
    for i, k in enumerate(keys[:5]):
        if m.percpu:
            m.update(k, [struct.pack("<Q", 0x1000 * c + i) for c in range(ncpus)])
        else:
            m.update(k, value_of(i))
    for k in keys[:5]:
        assert check(ptr, val, m, k, cpu) != 0
    for k in keys[5:]:
        assert check(ptr, val, m, k, cpu) == 0
    m.delete(keys[2])
    assert check(ptr, val, m, keys[2], cpu) == 0
    for k in keys[:2] + keys[3:5]:
        assert check(ptr, val, m, k, cpu) != 0
    for i, k in enumerate(keys):          # fill to capacity (reusing the freed slot)
        if i == 2 or i >= 5:
            m.update(k, value_of(i) if not m.percpu else [value_of(i)] * ncpus)
    assert len(m) == 12 and m.table.full
    pointers = {check(ptr, val, m, k, cpu) for k in keys}
    assert 0 not in pointers and len(pointers) == 12
    stride = m.stride
    assert all((p - m.vaddr - cpu * (m.elem if m.percpu else 0)) % stride == 0 for p in pointers)
    absent = key_of(200, key_size) if key_size > 1 else bytes([200])
    assert absent not in keys
    assert check(ptr, val, m, absent, cpu) == 0
    assert served_in_loop(ptr) == 1 and served_in_loop(val) == 1


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.PERCPU_HASH])
def test_served_without_a_python_helper(mtype: MapType) -> None:
    """With no helper registered, only the loop can answer; it counts as helper 1."""
    space, m = make(mtype, 4, ncpus=2)
    m.update(7, value_of(7) if not m.percpu else [value_of(0), value_of(1)])
    prog = program(space, lookup_text(m.vaddr, True), RunEnv(ncpus=2, cpu=1), HelperRegistry())
    res = prog.run(struct.pack("<I", 7), repeat=5)
    assert res.error is None, res.error
    assert res.r0 == int.from_bytes((value_of(1) if m.percpu else value_of(7)), "little")
    assert res.helper_calls == {1: 5}
    res = prog.run(struct.pack("<I", 8), repeat=3)
    assert res.error is None and res.r0 == 0 and res.helper_calls == {1: 3}


def test_many_lookups_are_counted() -> None:
    space, m = make(MapType.HASH, 4, max_entries=64)
    for i in range(64):
        m.update(i, value_of(i))
    text = f"""
        mov %r6, 0
        mov %r7, 0
    loop:
        stxw [%r10-4], %r6
        lddw %r1, {m.vaddr:#x}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, +2
        ldxdw %r1, [%r0]
        add %r7, %r1
        add %r6, 1
        jlt %r6, 100, loop
        mov %r0, %r7
        exit
    """
    prog = program(space, text)
    res = prog.run()
    assert res.error is None, res.error
    assert res.helper_calls == {1: 100}
    assert res.r0 == sum(0x1000 + i * 7 for i in range(64))
    assert served_in_loop(prog) == 100


def test_lookups_follow_an_address_space_growth() -> None:
    space, m = make(MapType.HASH, 8, max_entries=32)
    for i in range(10):
        m.update(key_of(i, 8), value_of(i))
    ptr = program(space, lookup_text(m.vaddr, False))
    val = program(space, lookup_text(m.vaddr, True))
    for i in range(12):
        check(ptr, val, m, key_of(i, 8))
    index = space.by_name["map:h:index"]
    host_before = index.host
    # regions added after the map, and a grown input region, move every host offset
    space.add("filler", 1 << 16)
    other = create_map(MapSpec("h2", MapType.HASH, 8, 8, 4), space, 1)
    other.update(key_of(0, 8), value_of(99))
    space.fill("memory", bytes(1 << 20))
    space.add("more", 12345)
    assert index.host != host_before
    assert all(r.host % 8 == 0 for r in space.regions)
    for i in range(10, 20):
        m.update(key_of(i, 8), value_of(i))
    m.delete(key_of(3, 8))
    for i in range(24):
        check(ptr, val, m, key_of(i, 8))
    assert served_in_loop(ptr) == 1
    res = program(space, lookup_text(other.vaddr, True)).run(key_of(0, 8))
    assert res.error is None and res.r0 == 0x1000 + 99 * 7


def test_index_region_is_internal() -> None:
    space, m = make(MapType.HASH, 4)
    m.update(1, value_of(1))
    index = space.by_name["map:h:index"]
    assert index.internal and not index.readable and not index.writable
    assert int(space.table[index.index, ip.RG_PERM]) == 0
    base = index.vaddr
    for text in (f"lddw %r1, {base:#x}\nldxb %r0, [%r1]\nexit",
                 f"lddw %r1, {base:#x}\nldxdw %r0, [%r1+8]\nexit",
                 f"lddw %r1, {base:#x}\nstb [%r1], 1\nexit",
                 f"lddw %r1, {base:#x}\nmov %r2, 1\nstxdw [%r1+16], %r2\nexit",
                 f"lddw %r1, {base:#x}\nmov %r2, 1\nlock add [%r1], %r2\nexit"):
        res = program(space, text).run()
        assert isinstance(res.error, MemoryAccessError), text
        assert res.error.region == "map:h:index"
        assert "internal" in str(res.error)
    # the key pointer of a served lookup, and of a Python one
    lru_space, lru = make(MapType.LRU_HASH, 4)
    for sp, mp in ((space, m), (lru_space, lru)):
        idx = sp.by_name["map:h:index"]
        text = f"lddw %r1, {mp.vaddr:#x}\nlddw %r2, {idx.vaddr:#x}\ncall 1\nexit"
        res = program(sp, text).run()
        assert isinstance(res.error, MemoryAccessError) and res.error.region == "map:h:index"
    # helpers and the space's own checked accesses
    call = HelperCall((0, 0, 0, 0, 0), 3, space, RunEnv())
    with pytest.raises(MemoryAccessError, match="internal"):
        call.read(base, 1)
    with pytest.raises(MemoryAccessError, match="internal"):
        call.write(base, b"\0")
    with pytest.raises(MemoryAccessError):
        space.read(base + 4, 4)
    # the index is not a map pointer either
    res = program(space, f"lddw %r1, {base:#x}\nmov %r2, %r10\nadd %r2, -8\n"
                  "stdw [%r10-8], 0\ncall 1\nexit").run()
    assert isinstance(res.error, HelperError)
    assert m.lookup(1) == value_of(1)          # and the map is intact


def test_lru_lookups_are_served_and_reference_their_element() -> None:
    """The loop serves an LRU lookup and marks the slot it found; the map takes the
    mark in as the element's reference bit before its lists next act."""
    space, m = make(MapType.LRU_HASH, 4, max_entries=4)
    for i in range(4):
        m.update(i, value_of(i))
    assert m.lru_order()[0] == (0).to_bytes(4, "little")
    used = space.by_name["map:h:used"]
    assert used.internal and int(space.table[m.region.index, ip.RG_HASH_USED]) == used.index
    prog = program(space, lookup_text(m.vaddr, True))
    res = prog.run(struct.pack("<I", 0))
    assert res.error is None and res.r0 == 0x1000 and res.helper_calls == {1: 1}
    assert served_in_loop(prog) == 1
    assert space.bytes_of("map:h:used") != bytes(used.size)      # marked, not yet taken
    assert m.lru_order()[-1] == (0).to_bytes(4, "little")    # the lookup used it
    assert space.bytes_of("map:h:used") == bytes(used.size)      # taken in
    assert m.lru_state()["referenced"] == [(0).to_bytes(4, "little")]
    # a miss marks nothing
    prog.run(struct.pack("<I", 9))
    assert space.bytes_of("map:h:used") == bytes(used.size)


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
def test_map_in_map_lookups_are_served_and_follow_updates(outer_type: MapType) -> None:
    """The core returns the slot's inner map pointer, or NULL, as the Python path does:
    after an update, a replacement and a delete, and for keys never stored or past an
    array's end."""
    inner_spec = MapSpec("inner", MapType.ARRAY, 4, 8, 1)
    outer_spec = MapSpec("outer", outer_type, 4, 4, 8, inner=inner_spec)
    space = run_space()
    a, b = (create_map(MapSpec(n, MapType.ARRAY, 4, 8, 1), space, 1) for n in ("a", "b"))
    outer = create_map(outer_spec, space, 1)
    prog = program(space, lookup_text(outer.vaddr, False))

    def agree(key: int) -> int:
        k = struct.pack("<I", key)
        res = prog.run(k)
        assert res.error is None and res.r0 == outer.prog_lookup(k, 0)
        assert served_in_loop(prog) == 1 and res.helper_calls == {1: 1}
        return res.r0

    outer.update(5, a)
    outer.update(2, b)
    assert agree(5) == a.vaddr and agree(2) == b.vaddr and agree(3) == 0
    outer.update(5, b)
    assert agree(5) == b.vaddr
    outer.delete(2)
    assert agree(2) == 0 and agree(1 << 20) == 0


@pytest.mark.parametrize("mtype", [MapType.DEVMAP, MapType.XSKMAP])
def test_devmap_and_xskmap_lookups_are_served_for_slots_that_are_there(
        mtype: MapType) -> None:
    """The slot's value, or NULL where it is empty (never written, deleted, past the
    end), as the Python path answers; a devmap_hash's lookup stays in Python."""
    space = run_space()
    m = create_map(MapSpec("d", mtype, 4, 4, 4), space, 1)
    prog = program(space, lookup_text(m.vaddr, False))

    def agree(key: int) -> int:
        k = struct.pack("<I", key)
        res = prog.run(k)
        assert res.error is None and res.r0 == m.prog_lookup(k, 0)
        assert served_in_loop(prog) == 1
        return res.r0

    m.update(1, struct.pack("<I", 7))
    m.update(3, struct.pack("<I", 9))
    assert agree(1) and agree(3) and agree(0) == agree(2) == agree(4) == agree(1 << 31) == 0
    assert space.read(agree(3), 4) == struct.pack("<I", 9)
    m.delete(3)
    assert agree(3) == 0 and agree(1)
    hashed = create_map(MapSpec("dh", MapType.DEVMAP_HASH, 4, 4, 4), space, 1)
    hashed.update(1, struct.pack("<I", 7))
    prog = program(space, lookup_text(hashed.vaddr, False))
    assert prog.run(struct.pack("<I", 1)).r0 == hashed.prog_lookup(struct.pack("<I", 1), 0)
    assert served_in_loop(prog) == 0


@pytest.mark.parametrize("mtype", [MapType.PERCPU_HASH, MapType.PERCPU_ARRAY])
def test_percpu_lookup_on_a_cpu_the_map_lacks_is_refused(mtype: MapType) -> None:
    """The run's CPU is past the map's: the Python helper refuses it, the loop defers."""
    space, m = make(mtype, 4, ncpus=2)
    m.update(0, [value_of(0), value_of(1)])
    prog = program(space, lookup_text(m.vaddr, False), RunEnv(ncpus=4, cpu=3))
    res = prog.run(struct.pack("<I", 0))
    assert isinstance(res.error, HelperError)
    assert served_in_loop(prog) == 0


def test_unreadable_key_faults_like_the_array_path() -> None:
    space, m = make(MapType.HASH, 12)
    prog = program(space, f"lddw %r1, {m.vaddr:#x}\nmov %r2, %r10\nadd %r2, -8\ncall 1\nexit")
    res = prog.run()
    assert isinstance(res.error, MemoryAccessError)
    assert res.error.region == "stack" and res.error.size == 12


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key_size=st.sampled_from(KEY_SIZES), capacity=st.integers(1, 10),
       percpu=st.booleans(), data=st.data())
def test_random_updates_then_program_lookups(key_size: int, capacity: int, percpu: bool,
                                             data: st.DataObject) -> None:
    mtype = MapType.PERCPU_HASH if percpu else MapType.HASH
    ncpus = 3 if percpu else 1
    cpu = data.draw(st.integers(0, ncpus - 1))
    space, m = make(mtype, key_size, max_entries=capacity, ncpus=ncpus)
    pool = st.integers(0, 2 * capacity + 2).map(lambda i: key_of(i, key_size))
    ops = data.draw(st.lists(st.tuples(st.booleans(), pool), max_size=40))
    shadow: dict[bytes, bytes] = {}
    for n, (insert, k) in enumerate(ops):
        if insert:
            if k in shadow or len(shadow) < capacity:
                m.update(k, value_of(n))
                shadow[k] = value_of(n)
        elif k in shadow:
            m.delete(k)
            del shadow[k]
    env = RunEnv(ncpus=ncpus, cpu=cpu)
    ptr = program(space, lookup_text(m.vaddr, False), env)
    val = program(space, lookup_text(m.vaddr, True), env)
    probes = data.draw(st.lists(pool, min_size=1, max_size=8)) + list(shadow)[:4]
    for k in probes:
        res = ptr.run(k)
        assert res.error is None
        assert res.r0 == m.prog_lookup(k, cpu)
        got = m.lookup(k, cpu) if percpu else m.lookup(k)
        assert got == shadow.get(k)
        assert (res.r0 != 0) == (k in shadow)
        res2 = val.run(k)
        assert res2.r0 == (int.from_bytes(shadow[k], "little") if k in shadow else 0)
    assert served_in_loop(ptr) == 1



# -- LPM tries ------------------------------------------------------------------------------

LPM_KEY_SIZES = (5, 8, 20)      # 4 + 1 data byte, IPv4, IPv6
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "nic"


def make_lpm(key_size: int, max_entries: int = 64, value_size: int = 8, space=None):
    space = space if space is not None else run_space()
    spec = MapSpec("t", MapType.LPM_TRIE, key_size, value_size, max_entries,
                   flags=BPF_F_NO_PREALLOC)
    return space, create_map(spec, space, 1)


def lpm_key(plen: int, data: int, key_size: int) -> bytes:
    """``struct bpf_lpm_trie_key_u8``: u32 prefixlen (host order), then big-endian data."""
    return struct.pack("<I", plen) + data.to_bytes(key_size - 4, "big")


def lpm_check(ptr, val, m, key: bytes) -> int:
    """Both programs on ``key`` agree with the Python path (and the value it points at)."""
    res = ptr.run(key)
    assert res.error is None, res.error
    expect = m.prog_lookup(key, 0)
    assert res.r0 == expect, (key.hex(), res.r0, expect)
    assert res.helper_calls == {1: 1}
    res2 = val.run(key)
    assert res2.error is None, res2.error
    if expect:
        stored = m.space.read(expect, m.value_size)
        assert stored == m.lookup(key)
        assert res2.r0 == int.from_bytes(stored[:8].ljust(8, b"\0"), "little")
    else:
        assert m.lookup(key) is None and res2.r0 == 0
    return res.r0


def lpm_programs(space, m, helpers: HelperRegistry | None = None):
    return (program(space, lookup_text(m.vaddr, False), helpers=helpers),
            program(space, lookup_text(m.vaddr, True), helpers=helpers))


def test_lpm_row_and_index_region() -> None:
    space, m = make_lpm(8)
    row = space.table[m.region.index]
    assert int(row[ip.RG_MAP_KIND]) == ip.MAP_KIND_LPM
    index = space.by_name["map:t:index"]
    assert index.internal and int(space.table[index.index, ip.RG_PERM]) == 0
    assert int(row[ip.RG_LPM_INDEX]) == index.index
    assert int(row[ip.RG_LPM_KEY_SIZE]) == 8 and int(row[ip.RG_LPM_STRIDE]) == m.stride
    m.update(lpm_key(24, 0x0A0102FF, 8), value_of(1))
    m.update(lpm_key(16, 0x0A01FFFF, 8), value_of(2))
    assert m.plen_count[24] == 1 and m.plen_count[16] == 1 and m.plen_count.sum() == 2
    m.delete(lpm_key(16, 0x0A010000, 8))
    assert m.plen_count.sum() == 1
    # the counts live in the index region, where the loop reads them
    h = index.host + m._plen_off
    assert space.mem[h:h + 4 * 33].view("<i4")[24] == 1


def test_lpm_longest_prefix_in_the_loop() -> None:
    space, m = make_lpm(8)
    ptr, val = lpm_programs(space, m)
    ip4 = lambda a, b, c, d: (a << 24) | (b << 16) | (c << 8) | d    # noqa: E731
    assert lpm_check(ptr, val, m, lpm_key(32, ip4(10, 1, 2, 3), 8)) == 0     # empty
    for n, (plen, addr) in enumerate([(0, 0), (8, ip4(10, 0, 0, 0)), (16, ip4(10, 1, 0, 0)),
                                      (24, ip4(10, 1, 2, 0)), (32, ip4(10, 1, 2, 3))]):
        m.update(lpm_key(plen, addr, 8), value_of(n))
    expect = {ip4(10, 1, 2, 3): 4, ip4(10, 1, 2, 4): 3, ip4(10, 1, 3, 3): 2,
              ip4(10, 2, 0, 0): 1, ip4(11, 0, 0, 0): 0}
    for addr, n in expect.items():
        p = lpm_check(ptr, val, m, lpm_key(32, addr, 8))
        assert m.space.read(p, 8) == value_of(n)
    # a shorter key prefix length only sees prefixes that short
    p = lpm_check(ptr, val, m, lpm_key(20, ip4(10, 1, 2, 3), 8))
    assert m.space.read(p, 8) == value_of(2)
    # prefixlen past max_prefixlen: NULL, even with a /0 stored
    for plen in (33, 64, 0xFFFFFFFF):
        assert lpm_check(ptr, val, m, lpm_key(plen, ip4(10, 1, 2, 3), 8)) == 0
    m.delete(lpm_key(0, 0, 8))
    assert lpm_check(ptr, val, m, lpm_key(32, ip4(11, 0, 0, 0), 8)) == 0
    assert served_in_loop(ptr) == 1 and served_in_loop(val) == 1


def test_lpm_served_without_a_python_helper() -> None:
    space, m = make_lpm(20)
    m.update(lpm_key(48, 0x20010DB8_0001 << 80, 20), value_of(7))
    ptr, val = lpm_programs(space, m, HelperRegistry())
    hit = lpm_key(128, (0x20010DB8_0001 << 80) | 0xBEEF, 20)
    res = val.run(hit, repeat=5)
    assert res.error is None, res.error
    assert res.r0 == int.from_bytes(value_of(7), "little") and res.helper_calls == {1: 5}
    res = ptr.run(lpm_key(128, 0x20010DB8_0002 << 80, 20), repeat=3)
    assert res.error is None and res.r0 == 0 and res.helper_calls == {1: 3}
    res = ptr.run(lpm_key(129, 0, 20))
    assert res.error is None and res.r0 == 0


def test_lpm_every_key_of_a_one_byte_trie() -> None:
    """key_size 5: every (prefixlen, byte) key against a trie with prefixes of every length."""
    space, m = make_lpm(5, max_entries=40, value_size=4)
    ptr, val = lpm_programs(space, m, HelperRegistry())
    rnd = random.Random(5)
    for n in range(30):
        m.update(lpm_key(rnd.randint(0, 8), rnd.randrange(256), 5), struct.pack("<I", n))
    for k in m.keys()[::3]:
        m.delete(k)
    for plen in range(10):
        for b in range(256):
            lpm_check(ptr, val, m, lpm_key(plen, b, 5))


def test_lpm_lookups_follow_an_address_space_growth() -> None:
    space, m = make_lpm(8, max_entries=32)
    for i in range(10):
        m.update(lpm_key(8 + i, (i * 0x9E3779B9) & 0xFFFFFFFF, 8), value_of(i))
    ptr, val = lpm_programs(space, m)
    probes = [lpm_key(32, (i * 0x9E3779B9 + 5) & 0xFFFFFFFF, 8) for i in range(20)]
    for k in probes:
        lpm_check(ptr, val, m, k)
    index = space.by_name["map:t:index"]
    before = index.host
    space.add("filler", 1 << 16)
    other = create_map(MapSpec("t2", MapType.LPM_TRIE, 8, 8, 4, flags=BPF_F_NO_PREALLOC),
                       space, 1)
    other.update(lpm_key(0, 0, 8), value_of(99))
    space.fill("memory", bytes(1 << 20))
    assert index.host != before
    for i in range(10, 20):
        m.update(lpm_key(i, (i * 0x9E3779B9) & 0xFFFFFFFF, 8), value_of(i))
    m.delete(lpm_key(8 + 3, (3 * 0x9E3779B9) & 0xFFFFFFFF, 8))
    for k in probes:
        lpm_check(ptr, val, m, k)
    res = program(space, lookup_text(other.vaddr, True)).run(lpm_key(32, 1234, 8))
    assert res.error is None and res.r0 == 0x1000 + 99 * 7


def test_lpm_unreadable_key_faults() -> None:
    space, m = make_lpm(20)
    prog = program(space, f"lddw %r1, {m.vaddr:#x}\nmov %r2, %r10\nadd %r2, -8\ncall 1\nexit",
                   helpers=HelperRegistry())
    res = prog.run()
    assert isinstance(res.error, MemoryAccessError)
    assert res.error.region == "stack" and res.error.size == 20
    idx = space.by_name["map:t:index"]
    res = program(space, f"lddw %r1, {m.vaddr:#x}\nlddw %r2, {idx.vaddr:#x}\ncall 1\nexit"
                  ).run()
    assert isinstance(res.error, MemoryAccessError) and res.error.region == "map:t:index"
    res = program(space, f"lddw %r1, {idx.vaddr:#x}\nldxw %r0, [%r1]\nexit").run()
    assert isinstance(res.error, MemoryAccessError) and "internal" in str(res.error)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key_size=st.sampled_from(LPM_KEY_SIZES), capacity=st.integers(1, 24),
       seed=st.integers(0, 2 ** 32 - 1))
def test_lpm_random_tries_agree_with_python(key_size: int, capacity: int, seed: int) -> None:
    """Random prefixes of random lengths, updates, deletes, then random lookups: the loop's
    pointer is ``prog_lookup``'s, after every batch of changes."""
    rnd = random.Random(seed)
    bits = (key_size - 4) * 8
    space, m = make_lpm(key_size, max_entries=capacity)
    ptr, val = lpm_programs(space, m, HelperRegistry())
    # a few base addresses, so that prefixes nest and lookups share prefixes
    bases = [rnd.getrandbits(bits) for _ in range(3)]

    def near() -> int:
        b = rnd.choice(bases)
        return b ^ (rnd.getrandbits(bits) >> rnd.randint(0, bits))

    def probe() -> None:
        keys = [lpm_key(rnd.choice([bits, bits, rnd.randint(0, bits)]), near(), key_size)
                for _ in range(6)]
        keys += [lpm_key(rnd.randint(bits + 1, bits + 40), near(), key_size),
                 lpm_key(0xFFFFFFFF, near(), key_size)]
        keys += m.keys()[:3]
        for k in keys:
            lpm_check(ptr, val, m, k)

    probe()
    for _ in range(3):
        for n in range(rnd.randint(1, 2 * capacity)):
            k = lpm_key(rnd.randint(0, bits), near(), key_size)
            try:
                m.update(k, value_of(n))
            except MapError as exc:            # full: ENOSPC for a new prefix
                assert exc.errno == ENOSPC
        stored = m.keys()
        for k in rnd.sample(stored, len(stored) // 3):
            m.delete(k)
        probe()
        for k in m.keys()[::2]:                # in place (the bits past the prefix may differ)
            m.update(k, value_of(rnd.randrange(1000)))
        probe()
    assert served_in_loop(ptr) == 1


def test_lpm_firewall_over_its_capture_in_the_loop() -> None:
    """examples/nic/firewall.o: every blocklist lookup served in the loop, and the same
    verdicts, packets and maps as the Python path gives."""
    from xsim.nic.pcap import read_packets
    from xsim.runtime.testrun import apply_maps_in, dump_map, test_run
    blocklist = json.loads((EXAMPLES / "blocklist.json").read_text())
    fast, slow = xsim.load(EXAMPLES / "firewall.o"), xsim.load(EXAMPLES / "firewall.o")
    for obj in (fast, slow):
        apply_maps_in(obj, blocklist)

    def refuse(key: bytes, cpu: int) -> int:
        raise AssertionError("an LPM lookup went to Python")
    fast.maps["blocklist"].prog_lookup = refuse
    bl = slow.maps["blocklist"]
    bl.space.table[bl.region.index, ip.RG_MAP_KIND] = ip.MAP_KIND_NONE   # Python only
    verdicts = {1: 0, 2: 0}
    for pkt in read_packets(EXAMPLES / "traffic.pcap"):
        mine = test_run(fast.programs["firewall"], data_in=pkt.data)
        theirs = test_run(slow.programs["firewall"], data_in=pkt.data)
        assert mine.result.error is None, mine.result.error
        assert (mine.retval, mine.data_out) == (theirs.retval, theirs.data_out), pkt.index
        assert mine.result.helper_calls == theirs.result.helper_calls
        verdicts[mine.retval] += 1
    assert verdicts == {1: 216, 2: 784}
    for name in ("rule_hits", "verdicts", "blocklist"):
        assert dump_map(fast.maps[name]) == dump_map(slow.maps[name]), name
