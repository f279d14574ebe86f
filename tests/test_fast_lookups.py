"""bpf_map_lookup_elem on hash and percpu_hash maps, served inside the compiled loop.

The key index of a hash map lives in an internal region (``map:<name>:index``)
that the interpreter probes itself; every answer must be the one the Python
path (``Map.prog_lookup``) gives, and nothing but xsim may touch the index.
"""
from __future__ import annotations

import struct

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


def test_lru_and_map_in_map_stay_on_the_python_path() -> None:
    space, m = make(MapType.LRU_HASH, 4, max_entries=4)
    for i in range(4):
        m.update(i, value_of(i))
    assert m.lru_order()[0] == (0).to_bytes(4, "little")
    prog = program(space, lookup_text(m.vaddr, True))
    res = prog.run(struct.pack("<I", 0))
    assert res.error is None and res.r0 == 0x1000 and res.helper_calls == {1: 1}
    assert served_in_loop(prog) == 0
    assert m.lru_order()[-1] == (0).to_bytes(4, "little")    # the lookup used it
    inner_spec = MapSpec("inner", MapType.ARRAY, 4, 8, 1)
    outer_spec = MapSpec("outer", MapType.HASH_OF_MAPS, 4, 4, 4, inner=inner_spec)
    space2 = run_space()
    inner = create_map(inner_spec, space2, 1)
    outer = create_map(outer_spec, space2, 1)
    outer.update(5, inner)
    prog = program(space2, lookup_text(outer.vaddr, False))
    res = prog.run(struct.pack("<I", 5))
    assert res.error is None and res.r0 == inner.vaddr
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
