"""LRU maps in xsim against the running kernel's (kernel/bpf/bpf_lru_list.c).

tests/data/diff/lru.c holds the maps (lru_hash of 8, 64, 3 and 1 entries, one with
BPF_F_NO_COMMON_LRU, lru_percpu_hash with and without it) and one syscall program,
``lru_script``, that runs the operations written into its ``script`` array: update
(with flags), lookup, delete and bpf_map_lookup_percpu_elem, each result stored back.
A test is a list of runs, each on one CPU (the kernel's pinned by affinity, xsim's
``env.cpu``), optionally with operations from Python in between (the syscall path,
which the kernel runs on the calling thread's CPU: the thread is pinned and xsim's
maps get that CPU as ``syscall_cpu``).  After every run each map's contents (keys
and every CPU's values), the results and the return value must be the same.

Skips, with the reason, where bpf() is not usable; tests that need two CPUs skip
where this process cannot run on two.
"""
from __future__ import annotations

import os
import random
import struct
from typing import Any

import pytest

import xsim
from xsim.elf.loader import load_spec
from xsim.kernel.objects import pinned
from xsim.kernel import KernelObject, available, possible_cpus
from xsim.runtime.testrun import dump_map
from xsim.runtime.testrun import test_run as sim_run

OK, WHY = available()
pytestmark = pytest.mark.skipif(not OK, reason=WHY)

PATH = os.path.join(os.path.dirname(__file__), "data", "diff", "lru.o")
NCPUS = possible_cpus() if OK else 1
USABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
CPU_A = USABLE[0]
CPU_B = USABLE[1] if len(USABLE) > 1 else None
two_cpus = pytest.mark.skipif(CPU_B is None or NCPUS < 2,
                              reason="needs two CPUs this process may run on")

NOPS = 48
OP = struct.Struct("<BBBBIQ")
UPDATE, LOOKUP, DELETE, LOOKUP_PERCPU = 1, 2, 3, 4
ANY, NOEXIST, EXIST = 0, 1, 2
#: the maps of lru.c by their index in an operation, with max_entries
MAPS = {"lru8": (0, 8), "lru64": (1, 64), "lru3": (2, 3), "lru_nc": (3, 10),
        "pcpu": (4, 8), "pcpu_nc": (5, 10), "lru1": (6, 1)}
PERCPU = ("pcpu", "pcpu_nc")


def up(m: str, key: int, value: int | None = None, flags: int = ANY) -> tuple:
    return (UPDATE, MAPS[m][0], flags, key, key * 1000 + 7 if value is None else value)


def get(m: str, key: int) -> tuple:
    return (LOOKUP, MAPS[m][0], 0, key, 0)


def rm(m: str, key: int) -> tuple:
    return (DELETE, MAPS[m][0], 0, key, 0)


def get_cpu(m: str, key: int, cpu: int) -> tuple:
    return (LOOKUP_PERCPU, MAPS[m][0], cpu, key, 0)


def fill(m: str, keys: Any, base: int = 0) -> list[tuple]:
    return [up(m, k, base + k) for k in keys]


def _script(ops: list[tuple]) -> bytes:
    assert len(ops) <= NOPS
    raw = b"".join(OP.pack(c, m, f, 0, k, v) for c, m, f, k, v in ops)
    return raw.ljust(OP.size * NOPS, b"\0") + bytes(8 * NOPS)


def _keys(dump: dict) -> list[int]:
    return [int.from_bytes(bytes.fromhex(e["key"]), "little") for e in dump["entries"]]


class Both:
    """The object in the kernel and in xsim, run step by step."""

    def __init__(self, ko: KernelObject) -> None:
        self.ko = ko
        self.sim = xsim.load(PATH, ncpus=NCPUS, cpu=CPU_A)
        self.kprog = ko.programs["lru_script"]
        self.sprog = self.sim.program("lru_script")

    def run(self, cpu: int, ops: list[tuple]) -> None:
        """``ops`` from the program, on ``cpu``, in both (in runs of at most NOPS); after
        each run compare everything."""
        for i in range(0, len(ops), NOPS):
            self._run(cpu, ops[i:i + NOPS])

    def _run(self, cpu: int, ops: list[tuple]) -> None:
        script = _script(ops)
        self.ko.maps["script"].update(bytes(4), script)
        self.sim.maps["script"].update(0, script)
        with pinned(cpu):
            kres = self.kprog.test_run(ctx_in=bytes(8))
        self.sim.env.cpu = cpu
        sres = sim_run(self.sprog, ctx_in=bytes(8))
        assert sres.result.error is None, sres.result.error
        assert sres.retval == kres.retval == len(ops)
        self.compare(f"after a run of {len(ops)} operations on CPU {cpu}")

    def syscall(self, cpu: int, what: str, m: str, key: int, value: int = 0,
                flags: int = ANY) -> None:
        """One operation from Python on both, the kernel's on ``cpu``; the same errno."""
        kmap, smap = self.ko.maps[m], self.sim.maps[m]
        k = key.to_bytes(4, "little")
        smap.syscall_cpu = cpu
        kv = value.to_bytes(8, "little")
        results = []
        for side in ("kernel", "xsim"):
            try:
                with pinned(cpu if side == "kernel" else None):
                    if side == "kernel":
                        if what == "update":
                            kmap.update(k, kv, flags)   # per-CPU: every CPU
                        elif what == "delete":
                            kmap.kmap.delete(k)
                        else:
                            kmap.lookup(k)
                    elif what == "update":
                        smap.update(k, kv, flags)
                    elif what == "delete":
                        smap.delete(k)
                    else:
                        smap.lookup(k)
                results.append(0)
            except Exception as exc:    # noqa: BLE001 - both sides' errors compared
                results.append(getattr(exc, "errno", repr(exc)))
        assert results[0] == results[1], f"{what} {m} {key}: kernel, xsim {results}"

    def dumps(self) -> tuple[dict, dict]:
        return ({n: dump_map(m) for n, m in self.ko.maps.items()},
                {n: dump_map(m) for n, m in self.sim.maps.items()})

    def compare(self, when: str) -> None:
        kernel, sim = self.dumps()
        assert set(kernel) == set(sim)
        for name in kernel:
            if kernel[name] != sim[name]:
                kd, sd = kernel[name], sim[name]
                detail = (f"keys kernel {_keys(kd)}, xsim {_keys(sd)}"
                          if "entries" in kd and _keys(kd) != _keys(sd) else "values differ")
                pytest.fail(f"map {name} {when}: {detail}")

    def keys(self, m: str) -> list[int]:
        return _keys(dump_map(self.ko.maps[m]))


@pytest.fixture
def both():
    with KernelObject.load(load_spec(PATH), prog="lru_script") as ko:
        yield Both(ko)


# -- one CPU --------------------------------------------------------------------------------

def test_the_reported_batch_eviction(both: Both) -> None:
    """tests/test_differential.py::test_lru_eviction, here with every result."""
    both.run(CPU_A, fill("lru8", range(1, 9)) + [get("lru8", 1)] + fill("lru8", (9, 10, 11)))
    if NCPUS == 2:
        assert both.keys("lru8") == [1, 6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("m", ["lru8", "lru3", "lru1", "lru_nc", "pcpu", "pcpu_nc"])
def test_sequential_fill_beyond_capacity(both: Both, m: str) -> None:
    n = MAPS[m][1]
    for start in range(0, 4 * n, 40):
        both.run(CPU_A, fill(m, range(start, min(start + 40, 4 * n))))


def test_sequential_fill_of_64(both: Both) -> None:
    for start in range(0, 200, 48):
        both.run(CPU_A, fill("lru64", range(start, min(start + 48, 200))))
    assert len(both.keys("lru64")) < 64       # nodes wait on the CPU's local free list


@pytest.mark.parametrize("m", ["lru8", "lru64", "lru_nc", "pcpu"])
def test_lookups_protect_entries(both: Both, m: str) -> None:
    n = MAPS[m][1]
    both.run(CPU_A, fill(m, range(n)))
    both.run(CPU_A, [get(m, k) for k in range(0, n, 3)] + [get(m, 999)] +
             fill(m, range(100, 100 + min(n, 40))))
    both.run(CPU_A, [get(m, k) for k in range(0, n, 2)] + fill(m, range(200, 200 + min(n, 40))))


@pytest.mark.parametrize("m", ["lru8", "lru64", "lru3", "lru_nc", "pcpu_nc"])
def test_deletes_give_nodes_back(both: Both, m: str) -> None:
    n = MAPS[m][1]
    both.run(CPU_A, fill(m, range(n + 2)))
    both.run(CPU_A, [rm(m, k) for k in range(0, n + 2, 2)] + [rm(m, 500)] +
             fill(m, range(300, 300 + min(n, 30))))
    both.run(CPU_A, [rm(m, 300 + k) for k in range(min(n, 30) - 3, min(n, 30))] +
             fill(m, range(400, 404)) + [rm(m, 401)])


@pytest.mark.parametrize("m", ["lru8", "lru3", "lru_nc", "pcpu", "pcpu_nc"])
def test_updates_of_existing_keys(both: Both, m: str) -> None:
    n = MAPS[m][1]
    both.run(CPU_A, fill(m, range(n)))
    both.run(CPU_A, [up(m, k, 5000 + k) for k in range(n)] +           # replace: referenced
             [up(m, k, 6000 + k, EXIST) for k in range(0, n, 2)] +
             [up(m, k, 7000 + k, NOEXIST) for k in range(0, n, 3)] +   # -EEXIST, still a node
             [up(m, 900 + k, 1, EXIST) for k in range(3)])             # -ENOENT, may evict
    both.run(CPU_A, fill(m, range(50, 50 + n)) + [up(m, k, 1, EXIST) for k in range(50, 54)])


def test_percpu_values_and_lookup_percpu_elem(both: Both) -> None:
    both.run(CPU_A, fill("pcpu", range(6)) +
             [get_cpu("pcpu", k, c) for k in range(7) for c in range(min(NCPUS, 2))])
    both.run(CPU_A, [up("pcpu", 2, 22), up("pcpu", 3, 33, EXIST), get("pcpu", 4)] +
             fill("pcpu", range(10, 16)))


# -- two CPUs -------------------------------------------------------------------------------

@two_cpus
@pytest.mark.parametrize("m", ["lru8", "lru64", "lru3", "lru1", "pcpu"])
def test_two_cpus_interleaved(both: Both, m: str) -> None:
    n = MAPS[m][1]
    assert CPU_B is not None
    both.run(CPU_A, fill(m, range(0, min(n, 40))))
    both.run(CPU_B, fill(m, range(100, 100 + min(n, 40))))
    both.run(CPU_A, [get(m, k) for k in range(0, n, 2)] + fill(m, range(200, 204)))
    both.run(CPU_B, [rm(m, 100 + k) for k in range(0, min(n, 40), 3)] + fill(m, range(300, 305)))
    for i in range(6):                  # ping-pong: one insertion a run
        both.run((CPU_A, CPU_B)[i % 2], [up(m, 400 + i)])
    both.run(CPU_A, fill(m, range(500, 500 + min(n, 40))))


@two_cpus
@pytest.mark.parametrize("m", ["lru_nc", "pcpu_nc"])
def test_no_common_lru_lists_per_cpu(both: Both, m: str) -> None:
    assert CPU_B is not None
    both.run(CPU_A, fill(m, range(20)))                # CPU A's nodes only
    both.run(CPU_B, fill(m, range(100, 103)))
    both.run(CPU_A, [get(m, 19), up(m, 101, 9), rm(m, 102)] + fill(m, range(30, 34)))
    both.run(CPU_B, [get(m, 100), up(m, 18, 8)] + fill(m, range(110, 118)))


@two_cpus
def test_steal_from_another_cpu(both: Both) -> None:
    """lru1: the CPU that finds no free node anywhere takes another CPU's pending one."""
    assert CPU_B is not None
    for i in range(5):
        cpu = (CPU_A, CPU_B)[i % 2]
        both.run(cpu, [up("lru1", i), get("lru1", i), up("lru3", i)])
    both.run(CPU_A, [rm("lru1", 4), up("lru1", 9)])
    assert both.keys("lru1") == [9]


# -- the syscall side -----------------------------------------------------------------------

@pytest.mark.parametrize("m", ["lru8", "lru3", "lru_nc", "pcpu", "pcpu_nc"])
def test_syscall_updates_on_a_cpu(both: Both, m: str) -> None:
    cpus = [CPU_A] if CPU_B is None else [CPU_A, CPU_B]
    n = MAPS[m][1]
    for i in range(2 * n + 4):
        both.syscall(cpus[(i // 3) % len(cpus)], "update", m, i % (n + 3), i)
    both.syscall(CPU_A, "update", m, 1, 1, EXIST)
    both.syscall(CPU_A, "update", m, 2, 2, NOEXIST)
    both.syscall(CPU_A, "delete", m, 3)
    both.syscall(CPU_A, "lookup", m, 4)           # does not set the reference bit
    both.compare("after syscall updates")
    both.run(cpus[-1], fill(m, range(60, 66)) + [get(m, 61)])
    both.syscall(CPU_A, "update", m, 70, 70)
    both.compare("after a syscall update after a run")


# -- random sequences -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(24))
def test_random_sequences(both: Both, seed: int) -> None:
    rnd = random.Random(seed)
    cpus = [CPU_A] if CPU_B is None else [CPU_A, CPU_B]
    names = list(MAPS) if seed % 3 == 0 else [rnd.choice(list(MAPS))]
    for _ in range(rnd.randrange(2, 7)):
        ops = []
        for _ in range(NOPS):
            m = rnd.choice(names)
            key = rnd.randrange(2 * MAPS[m][1] + 2)
            what = rnd.choice("uuuullld" + ("p" if m in PERCPU else ""))
            if what == "u":
                ops.append(up(m, key, rnd.randrange(1 << 40), rnd.choice((ANY, ANY, NOEXIST,
                                                                           EXIST))))
            elif what == "l":
                ops.append(get(m, key))
            elif what == "d":
                ops.append(rm(m, key))
            else:
                ops.append(get_cpu(m, key, rnd.randrange(NCPUS)))
        both.run(rnd.choice(cpus), ops)
        if rnd.random() < 0.3:
            m = rnd.choice(names)
            both.syscall(rnd.choice(cpus), "update", m, rnd.randrange(MAPS[m][1] + 2), 1)
