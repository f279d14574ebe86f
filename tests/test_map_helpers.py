"""Map helpers from real eBPF programs: pointers into map memory, errnos in r0, per-CPU
values, queues, ring buffers, and refused arguments.

The loader does not resolve LD_IMM64 map relocations yet, so each program gets its
map pointer (the map region's vaddr) as an ``lddw`` immediate.
"""
from __future__ import annotations

import inspect
import struct

import pytest

from xsim import HelperError, HelperRegistry, MemoryAccessError, Program, assemble
from xsim.elf.kinds import MapType
from xsim.elf.spec import MapSpec
from xsim.isa.insn import decode
from xsim.runtime.env import RunEnv
from xsim.runtime.maps import (BPF_EXIST, BPF_F_CURRENT_CPU, BPF_F_NO_PREALLOC, BPF_NOEXIST,
                               BPF_RB_AVAIL_DATA, BPF_RB_PROD_POS, Map, create_map,
                               register_map_helpers)
from xsim.runtime.memory import AddressSpace, run_space

MASK = (1 << 64) - 1
E2BIG, ENOENT, EEXIST, EINVAL, EAGAIN = 7, 2, 17, 22, 11


def neg(err: int) -> int:
    return -err & MASK


def spec(name: str, mtype: MapType, key: int, value: int, entries: int, **kw) -> MapSpec:
    return MapSpec(name, mtype, key, value, entries, **kw)


@pytest.fixture
def space() -> AddressSpace:
    return run_space()


REGISTRY = register_map_helpers(HelperRegistry())


def run(text: str, space: AddressSpace, *, ncpus: int = 1, cpu: int = 0, memory: bytes = b"",
        **maps: Map):
    """Assemble ``text`` ("{name}" is replaced by that map's pointer) and run it once."""
    for name, m in maps.items():
        text = text.replace("{" + name + "}", f"{m.vaddr:#x}")
    code = assemble(text, syntax="ubpf")
    env = RunEnv(ncpus=ncpus, cpu=cpu)
    if "space" in inspect.signature(Program.from_bytes).parameters:
        prog = Program.from_bytes(code, helpers=REGISTRY, space=space, env=env)
    else:   # until from_bytes takes the address space and env
        prog = Program(decode(code), len(code) // 8, helpers=REGISTRY, space=space, env=env)
    return prog.run(memory=memory)


# key u32 at r10-4, r2 = &key
KEY = """
    stw [%r10-4], {key}
    lddw %r1, {{m}}
    mov %r2, %r10
    add %r2, -4
"""

INCREMENT = KEY.format(key=1) + """
    call 1
    jeq %r0, 0, out
    ldxdw %r1, [%r0+0]
    add %r1, 1
    stxdw [%r0+0], %r1
out:
    exit
"""


def test_lookup_returns_a_pointer_the_program_writes_in_place(space) -> None:
    m = create_map(spec("counts", MapType.ARRAY, 4, 8, 4), space, 1)
    m.update(1, struct.pack("<Q", 41))
    res = run(INCREMENT, space, m=m)
    assert res.ok, res.error
    assert res.r0 == m.vaddr + 8            # the value of index 1, 8-byte slots
    assert m.lookup(1) == struct.pack("<Q", 42)
    assert res.region_accesses["map:counts"] == (1, 1)
    run(INCREMENT, space, m=m)
    assert m.lookup(1) == struct.pack("<Q", 43)


def test_hash_lookup_pointer_and_miss(space) -> None:
    m = create_map(spec("flows", MapType.HASH, 4, 8, 16), space, 1)
    assert run(INCREMENT, space, m=m).r0 == 0          # absent: NULL
    m.update(1, bytes(8))
    for _ in range(3):
        assert run(INCREMENT, space, m=m).r0 != 0
    assert m.lookup(1) == struct.pack("<Q", 3)


UPDATE = KEY + """
    stdw [%r10-16], 7
    mov %r3, %r10
    add %r3, -16
    mov %r4, {flags}
    call 2
    exit
"""
DELETE = KEY + """
    call 3
    exit
"""


def test_array_update_and_delete_errnos_in_r0(space) -> None:
    m = create_map(spec("arr", MapType.ARRAY, 4, 8, 4), space, 1)
    assert run(UPDATE.format(key=2, flags=0), space, m=m).r0 == 0
    assert m.lookup(2) == struct.pack("<Q", 7)
    assert run(UPDATE.format(key=4, flags=0), space, m=m).r0 == neg(E2BIG)
    assert run(UPDATE.format(key=1, flags=BPF_NOEXIST), space, m=m).r0 == neg(EEXIST)
    assert run(UPDATE.format(key=1, flags=9), space, m=m).r0 == neg(EINVAL)
    assert run(DELETE.format(key=1), space, m=m).r0 == neg(EINVAL)


def test_hash_update_and_delete_errnos_in_r0(space) -> None:
    m = create_map(spec("h", MapType.HASH, 4, 8, 2), space, 1)
    assert run(UPDATE.format(key=1, flags=BPF_EXIST), space, m=m).r0 == neg(ENOENT)
    assert run(UPDATE.format(key=1, flags=BPF_NOEXIST), space, m=m).r0 == 0
    assert run(UPDATE.format(key=1, flags=BPF_NOEXIST), space, m=m).r0 == neg(EEXIST)
    assert run(UPDATE.format(key=2, flags=0), space, m=m).r0 == 0
    assert run(UPDATE.format(key=3, flags=0), space, m=m).r0 == neg(E2BIG)
    assert run(UPDATE.format(key=2, flags=BPF_EXIST), space, m=m).r0 == 0   # full, existing
    assert run(DELETE.format(key=1), space, m=m).r0 == 0
    assert run(DELETE.format(key=1), space, m=m).r0 == neg(ENOENT)
    assert m.keys() == [struct.pack("<I", 2)]


READ_U64 = KEY.format(key=0) + """
    call 1
    jeq %r0, 0, out
    ldxdw %r0, [%r0+0]
out:
    exit
"""


@pytest.mark.parametrize("mtype", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH,
                                   MapType.LRU_PERCPU_HASH])
def test_per_cpu_lookup_sees_the_run_cpu(space, mtype) -> None:
    m = create_map(spec("pc", mtype, 4, 8, 4), space, 4)
    m.update(0, [struct.pack("<Q", 10 + c) for c in range(4)])
    for cpu in range(4):
        assert run(READ_U64, space, ncpus=4, cpu=cpu, m=m).r0 == 10 + cpu


def test_per_cpu_update_from_program_writes_only_its_cpu(space) -> None:
    m = create_map(spec("pc", MapType.PERCPU_HASH, 4, 8, 4), space, 3)
    assert run(UPDATE.format(key=5, flags=0), space, ncpus=3, cpu=1, m=m).r0 == 0
    assert m.lookup(5) == [bytes(8), struct.pack("<Q", 7), bytes(8)]   # new: others zeroed
    assert m.lookup(5, cpu=1) == struct.pack("<Q", 7)


LOOKUP_PERCPU = KEY.format(key=0) + """
    mov %r3, CPU
    call 195
    jeq %r0, 0, out
    ldxdw %r0, [%r0+0]
out:
    exit
"""


def test_map_lookup_percpu_elem(space) -> None:
    m = create_map(spec("pc", MapType.PERCPU_ARRAY, 4, 8, 1), space, 2)
    m.update(0, [struct.pack("<Q", 5), struct.pack("<Q", 6)])
    assert run(LOOKUP_PERCPU.replace("CPU", "1"), space, ncpus=2, m=m).r0 == 6
    assert run(LOOKUP_PERCPU.replace("CPU", "2"), space, ncpus=2, m=m).r0 == 0      # no such CPU
    plain = create_map(spec("plain", MapType.ARRAY, 4, 8, 1), space, 2)
    res = run(LOOKUP_PERCPU.replace("CPU", "0"), space, ncpus=2, m=plain)
    assert isinstance(res.error, HelperError) and res.error.helper_id == 195


QUEUE_PROG = """
    lddw %r1, {q}
    stdw [%r10-8], 11
    mov %r2, %r10
    add %r2, -8
    mov %r3, 0
    call 87
    lddw %r1, {q}
    stdw [%r10-8], 22
    mov %r2, %r10
    add %r2, -8
    mov %r3, 0
    call 87
    lddw %r1, {q}
    mov %r2, %r10
    add %r2, -16
    call 88
    jne %r0, 0, out
    ldxdw %r0, [%r10-16]
out:
    exit
"""


@pytest.mark.parametrize("mtype,popped,left", [(MapType.QUEUE, 11, [22]),
                                               (MapType.STACK, 22, [11])])
def test_queue_and_stack_push_pop(space, mtype, popped, left) -> None:
    q = create_map(spec("q", mtype, 0, 8, 4), space, 1)
    res = run(QUEUE_PROG, space, q=q)
    assert res.ok and res.r0 == popped
    assert [struct.unpack("<Q", v)[0] for v in q.values()] == left


def test_queue_pop_on_empty_is_enoent(space) -> None:
    q = create_map(spec("q", MapType.QUEUE, 0, 8, 4), space, 1)
    res = run("lddw %r1, {q}\nmov %r2, %r10\nadd %r2, -8\ncall 88\nexit", space, q=q)
    assert res.r0 == neg(ENOENT)
    q.push(struct.pack("<Q", 9))
    res = run("lddw %r1, {q}\nmov %r2, %r10\nadd %r2, -8\ncall 89\nldxdw %r0, [%r10-8]\nexit",
              space, q=q)
    assert res.r0 == 9 and len(q) == 1                    # peek leaves it there


def test_bloom_filter_push_and_peek(space) -> None:
    b = create_map(spec("bf", MapType.BLOOM_FILTER, 0, 8, 100), space, 1)
    peek = "stdw [%r10-8], {v}\nlddw %r1, {b}\nmov %r2, %r10\nadd %r2, -8\ncall 89\nexit"
    push = peek.replace("call 89", "mov %r3, 0\ncall 87")
    assert run(peek.format(v=1234, b="{b}"), space, b=b).r0 == neg(ENOENT)
    assert run(push.format(v=1234, b="{b}"), space, b=b).r0 == 0
    assert run(peek.format(v=1234, b="{b}"), space, b=b).r0 == 0
    assert b.peek(struct.pack("<Q", 1234))


RINGBUF_PROG = """
    lddw %r1, {rb}
    mov %r2, 12
    mov %r3, 0
    call 131
    jeq %r0, 0, out
    stw [%r0+0], 0x64636261
    stdw [%r0+4], 0x68676665
    mov %r1, %r0
    mov %r2, 0
    call {commit}
    mov %r0, 1
out:
    exit
"""


def test_ringbuf_reserve_submit_then_records(space) -> None:
    rb = create_map(spec("events", MapType.RINGBUF, 0, 0, 4096), space, 1)
    res = run(RINGBUF_PROG.format(rb="{rb}", commit=132), space, rb=rb)
    assert res.ok and res.r0 == 1
    assert rb.query(BPF_RB_AVAIL_DATA) == 24 and rb.query(BPF_RB_PROD_POS) == 24
    hdr = space.read(rb.vaddr, 8)
    assert struct.unpack("<II", hdr) == (12, 3)           # len, pg_off; busy bit clear
    assert rb.records() == [b"abcdefgh\x00\x00\x00\x00"]
    assert rb.query(BPF_RB_AVAIL_DATA) == 0
    run(RINGBUF_PROG.format(rb="{rb}", commit=133), space, rb=rb)      # discard
    assert rb.records() == []


def test_ringbuf_output_and_full(space) -> None:
    rb = create_map(spec("events", MapType.RINGBUF, 0, 0, 4096), space, 1)
    prog = """
        lddw %r1, 0x0807060504030201
        stxdw [%r10-8], %r1
        lddw %r1, {rb}
        mov %r2, %r10
        add %r2, -8
        mov %r3, 8
        mov %r4, 0
        call 130
        exit
    """
    for _ in range(255):                                  # 16 bytes each, 4080 of 4095
        assert run(prog, space, rb=rb).r0 == 0
    assert run(prog, space, rb=rb).r0 == neg(EAGAIN)
    records = rb.records()
    assert len(records) == 255 and records[0] == bytes(range(1, 9))
    assert run(prog, space, rb=rb).r0 == 0                 # consumed: room again


def test_submit_of_a_non_record_is_a_helper_error(space) -> None:
    rb = create_map(spec("events", MapType.RINGBUF, 0, 0, 4096), space, 1)
    res = run("mov %r1, %r10\nmov %r2, 0\ncall 132\nexit", space, rb=rb)
    assert isinstance(res.error, HelperError) and res.error.helper_id == 132
    assert "r1" in str(res.error)


def test_perf_event_output_current_cpu_and_index(space) -> None:
    pe = create_map(spec("perf", MapType.PERF_EVENT_ARRAY, 4, 4, 0), space, 4)
    assert pe.max_entries == 4                             # 0: one per CPU, as libbpf
    prog = """
        stw [%r10-4], 0x2a
        lddw %r2, {pe}
        lddw %r3, {flags}
        mov %r4, %r10
        add %r4, -4
        mov %r5, 4
        call 25
        exit
    """
    assert run(prog.format(pe="{pe}", flags=BPF_F_CURRENT_CPU), space, ncpus=4, cpu=2,
               pe=pe).r0 == 0
    assert run(prog.format(pe="{pe}", flags=1), space, ncpus=4, pe=pe).r0 == 0
    assert run(prog.format(pe="{pe}", flags=7), space, ncpus=4, pe=pe).r0 == neg(E2BIG)
    assert pe.records(cpu=2) == [b"\x2a\x00\x00\x00"]
    assert pe.records() == [b"\x2a\x00\x00\x00"]           # index 1's; 2's were consumed


def test_non_map_pointer_in_r1_is_a_helper_error(space) -> None:
    m = create_map(spec("arr", MapType.ARRAY, 4, 8, 4), space, 1)
    res = run("stw [%r10-4], 0\nmov %r1, %r10\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
              space, m=m)
    err = res.error
    assert isinstance(err, HelperError) and err.helper_id == 1 and err.name == "map_lookup_elem"
    assert "r1" in err.reason and "not a map pointer" in err.reason and "stack" in err.reason
    res = run("mov %r1, 0\ncall 2\nexit", space, m=m)
    assert isinstance(res.error, HelperError) and "no region" in res.error.reason
    res = run("lddw %r1, {p}\ncall 1\nexit".replace("{p}", f"{m.vaddr + 8:#x}"), space, m=m)
    assert isinstance(res.error, HelperError) and "not at the map" in res.error.reason


def test_bad_key_pointer_is_a_memory_error(space) -> None:
    m = create_map(spec("arr", MapType.ARRAY, 4, 8, 4), space, 1)
    res = run("lddw %r1, {m}\nmov %r2, 8\ncall 1\nexit", space, m=m)
    assert isinstance(res.error, MemoryAccessError) and res.error.region is None


def test_helper_the_verifier_refuses_on_that_map_type(space) -> None:
    rb = create_map(spec("events", MapType.RINGBUF, 0, 0, 4096), space, 1)
    res = run(KEY.format(key=0) + "call 1\nexit", space, m=rb)
    assert isinstance(res.error, HelperError) and "does not allow" in res.error.reason
    arr = create_map(spec("arr", MapType.ARRAY, 4, 8, 4), space, 1)
    res = run("lddw %r1, {m}\nmov %r2, %r10\nadd %r2, -8\nmov %r3, 0\ncall 87\nexit",
              space, m=arr)
    assert isinstance(res.error, HelperError) and res.error.helper_id == 87


def test_readonly_global_data_is_not_writable_by_the_program(space) -> None:
    ro = create_map(spec(".rodata", MapType.ARRAY, 4, 8, 1, data=b"\x05" + bytes(7),
                         readonly=True, flags=0x80), space, 1)
    assert run(READ_U64, space, m=ro).r0 == 5
    res = run(INCREMENT.replace("stw [%r10-4], 1", "stw [%r10-4], 0"), space, m=ro)
    assert isinstance(res.error, MemoryAccessError) and res.error.region == "map:.rodata"
    res = run(UPDATE.format(key=0, flags=0), space, m=ro)
    assert isinstance(res.error, HelperError) and "forbidden" in res.error.reason


def test_map_in_map_lookup_returns_the_inner_map(space) -> None:
    inner_spec = spec("inner", MapType.ARRAY, 4, 8, 4)
    inner = create_map(inner_spec, space, 1)
    outer = create_map(spec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner=inner_spec),
                       space, 1, maps={})
    outer.update(1, inner)
    inner.update(0, struct.pack("<Q", 99))
    prog = KEY.format(key=1) + """
        call 1
        jeq %r0, 0, out
        mov %r1, %r0
        mov %r2, %r10
        add %r2, -8
        stdw [%r10-8], 0
        call 1
        jeq %r0, 0, out
        ldxdw %r0, [%r0+0]
    out:
        exit
    """
    assert run(prog, space, m=outer).r0 == 99
    assert run(prog.replace("stw [%r10-4], 1", "stw [%r10-4], 0"), space, m=outer).r0 == 0


def test_lru_program_lookups_count_as_uses(space) -> None:
    m = create_map(spec("lru", MapType.LRU_HASH, 4, 8, 2), space, 1)
    m.update(0, bytes(8))
    m.update(1, bytes(8))
    run(READ_U64, space, m=m)              # program lookup of key 0: now 1 is the oldest
    m.update(2, bytes(8))
    assert sorted(m.keys()) == [struct.pack("<I", 0), struct.pack("<I", 2)]


def test_lpm_lookup_from_program(space) -> None:
    m = create_map(spec("routes", MapType.LPM_TRIE, 8, 8, 16, flags=BPF_F_NO_PREALLOC),
                   space, 1)
    m.update(struct.pack("<I", 8) + bytes([10, 0, 0, 0]), struct.pack("<Q", 8))
    m.update(struct.pack("<I", 24) + bytes([10, 1, 2, 0]), struct.pack("<Q", 24))
    prog = """
        stw [%r10-8], 32
        stw [%r10-4], {addr}
        lddw %r1, {{m}}
        mov %r2, %r10
        add %r2, -8
        call 1
        jeq %r0, 0, out
        ldxdw %r0, [%r0+0]
    out:
        exit
    """
    addr = lambda *b: hex(int.from_bytes(bytes(b), "little"))  # noqa: E731
    assert run(prog.format(addr=addr(10, 1, 2, 3)), space, m=m).r0 == 24
    assert run(prog.format(addr=addr(10, 9, 9, 9)), space, m=m).r0 == 8
    assert run(prog.format(addr=addr(11, 1, 2, 3)), space, m=m).r0 == 0
