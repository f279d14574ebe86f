"""xsim against the running kernel: the same objects, inputs and maps_in, the same report.

Each test runs one program of tests/data/diff (rebuild with build.sh) in xsim
(``testrun.test_run`` on ``xsim.load``) and in the kernel (``kernel_test_run``), and
compares the return value, the ctx written back and every map's dump.  Both
run on one CPU (the kernel's run pinned to it, xsim's ``RunEnv.cpu``) with the
kernel's number of possible CPUs, so per-CPU maps compare slot by slot.

Syscall programs are sleepable, and the kernel lets sleepable programs use
neither prog arrays nor LPM tries nor bloom filters: those programs are raw
tracepoints (ctx: read-only u64 args), which xsim runs on the same bytes as
raw memory.  bpf_csum_diff is not for syscall programs: that one is a tc
program, fed a packet in the kernel and ignoring it in both.

The module skips, with the reason, where bpf() is not usable.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest

import xsim
from xsim import cli
from xsim.elf.loader import load_spec
from xsim.kernel import (KernelError, KernelObject, KernelUsageError, available, jit_image,
                         kernel_test_run, possible_cpus)
from xsim.runtime.testrun import MapsInError, TestRunRefused, apply_maps_in, report
from xsim.runtime.testrun import test_run as sim_run

OK, WHY = available()
pytestmark = [pytest.mark.skipif(not OK, reason=WHY), pytest.mark.usefixtures("no_fd_leaks")]

DATA = Path(__file__).parent / "data" / "diff"
NCPUS = possible_cpus() if OK else 1
CPU = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0


def u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


def run_both(obj: str, prog: str, *, ctx: bytes | None = None, data: bytes | None = None,
             raw: bool = False, maps_in: list | None = None) -> tuple[dict, dict]:
    """(kernel report, xsim report).  ``raw``: xsim runs on ``ctx`` (or ``data``) as
    raw memory, for program types whose test run xsim does not model."""
    path = DATA / f"{obj}.o"
    kernel = kernel_test_run(load_spec(path), prog, ctx_in=ctx, data_in=data,
                             maps_in=maps_in, cpu=CPU)
    sim = xsim.load(path, ncpus=NCPUS, cpu=CPU)
    if maps_in is not None:
        apply_maps_in(sim, maps_in)
    p = sim.program(prog)
    out = sim_run(p, memory=(ctx or data or b"")) if raw else sim_run(p, ctx_in=ctx)
    return kernel, report(sim, p, out)


def assert_same(kernel: dict, sim: dict, *, ctx: bool = True) -> None:
    assert sim["error"] is None
    assert kernel["error"] is None
    assert kernel["retval"] == sim["retval"]
    if ctx:
        assert kernel["ctx_out"] == sim["ctx_out"]
    assert set(kernel["maps"]) == set(sim["maps"])
    for name, dump in kernel["maps"].items():
        assert dump == sim["maps"][name], f"map {name}"


def out_words(rep: dict, skip: int, n: int) -> list[int]:
    raw = bytes.fromhex(rep["ctx_out"])
    return list(struct.unpack_from(f"<{n}q", raw, skip))


# -- maps from syscall programs ----------------------------------------------------------

MCTX = 4 * 8 + 24 * 8


@pytest.mark.parametrize("prog, maps_in", [
    ("hash_ops", None),
    ("array_ops", [{"map": "array", "key": "03000000", "value": "2a00000000000000"}]),
    ("percpu_ops", [{"map": "pcpu_hash", "key": "9900000000000000",
                     "value": "0700000000000000"}]),
    ("lru_ops", None),
    ("queue_stack", None),
    ("ringbuf_ops", None),
])
def test_maps(prog: str, maps_in: list | None) -> None:
    kernel, sim = run_both("maps", prog, ctx=u64s(17) + bytes(MCTX - 8), maps_in=maps_in)
    assert_same(kernel, sim)
    assert kernel["retval"] > 2


def test_lru_eviction() -> None:
    kernel, sim = run_both("maps", "lru_evict", ctx=bytes(MCTX))
    keys = [int(e["key"][:2], 16) for e in kernel["maps"]["lru_full"]["entries"]]
    assert 1 in keys and 11 in keys and len(keys) < 8
    assert_same(kernel, sim)


def test_map_contents_are_real() -> None:
    kernel, _ = run_both("maps", "ringbuf_ops", ctx=u64s(5) + bytes(MCTX - 8))
    assert kernel["maps"]["rb"]["records"][:2] == [u64s(5, 0x5A5A).hex(), u64s(0x1111).hex()]
    kernel, _ = run_both("maps", "queue_stack", ctx=bytes(MCTX))
    assert kernel["maps"]["queue"]["items"] == ["0c000000", "63000000"]
    assert kernel["maps"]["stack"]["items"] == ["0b000000", "0a000000"]
    kernel, _ = run_both("maps", "percpu_ops", ctx=bytes(MCTX))
    values = kernel["maps"]["pcpu_array"]["entries"][1]["values"]
    assert len(values) == NCPUS and values[CPU] == "03000000"


def test_queue_read_back_keeps_contents() -> None:
    """values() pops and pushes back: reading twice gives the same list."""
    with KernelObject.load(load_spec(DATA / "maps.o"), prog="queue_stack") as obj:
        for v in (1, 2, 3):
            obj.maps["queue"].push(struct.pack("<I", v))
            obj.maps["stack"].push(struct.pack("<I", v))
        first = obj.maps["queue"].values(), obj.maps["stack"].values()
        assert first == (obj.maps["queue"].values(), obj.maps["stack"].values())
        assert [int.from_bytes(v, "little") for v in first[0]] == [1, 2, 3]
        assert [int.from_bytes(v, "little") for v in first[1]] == [3, 2, 1]


# -- LPM trie and bloom filter (raw tracepoints) -----------------------------------------

def test_lpm_trie() -> None:
    assert_same(*run_both("trie", "lpm_ops", ctx=u64s(20), raw=True), ctx=False)


def test_bloom_filter() -> None:
    kernel, sim = run_both("trie", "bloom_ops", ctx=u64s(5), raw=True,
                           maps_in=[{"map": "bloom", "value": u64s(0x77).hex()}])
    assert_same(kernel, sim, ctx=False)


def test_sleepable_programs_refuse_lpm_tries() -> None:
    with pytest.raises(KernelError) as info:
        kernel_test_run(load_spec(DATA / "trie.o"), "lpm_sleepable")
    assert "Sleepable programs can only use" in info.value.log


# -- tail calls -----------------------------------------------------------------------------

@pytest.mark.parametrize("prog, maps_in", [
    ("chain", None),
    ("again", None),
    ("via_maps_in", None),
    ("via_maps_in", [{"map": "jumps", "key": "04000000", "value_prog": "step_b"}]),
])
def test_tail_calls(prog: str, maps_in: list | None) -> None:
    kernel, sim = run_both("tail", prog, ctx=u64s(7), raw=True, maps_in=maps_in)
    assert_same(kernel, sim, ctx=False)
    expect = {"chain": 71234, "again": 34, "via_maps_in": 34 if maps_in else 77}[prog]
    assert kernel["retval"] == expect


def test_only_needed_programs_are_loaded() -> None:
    with KernelObject.load(load_spec(DATA / "tail.o"), prog="chain") as obj:
        assert set(obj.programs) == {"chain", "step_a", "step_b", "again"}
        assert [e[1] for e in obj.maps["jumps"].items()] == ["step_a", "step_b", "again"]
    with KernelObject.load(load_spec(DATA / "maps.o"), prog="hash_ops") as obj:
        assert set(obj.programs) == {"hash_ops"}


# -- map-in-map, global data, subprograms -------------------------------------------------

def test_map_in_map() -> None:
    kernel, sim = run_both("inner", "map_in_map", ctx=struct.pack("<II", 2, 3) + bytes(48),
                           maps_in=[{"map": "inner_b", "key": "03000000",
                                     "value": u64s(9).hex()}])
    assert_same(kernel, sim)
    assert kernel["maps"]["outer_arr"]["entries"] == [{"key": "00000000", "map": "inner_a"},
                                                      {"key": "02000000", "map": "inner_b"}]
    assert out_words(kernel, 8, 4) == [9, 1, 0, 1000]


def test_global_data_and_subprograms() -> None:
    kernel, sim = run_both("globals", "globals", ctx=u64s(6) + bytes(32),
                           maps_in=[{"map": ".bss", "key": "00000000",
                                     "value": u64s(10).hex() + "00" * 16}])
    assert_same(kernel, sim)


def test_rodata_is_frozen_in_both() -> None:
    entry = [{"map": ".rodata", "key": "00000000", "value": "00" * 16}]
    with pytest.raises(MapsInError, match="EPERM"):
        kernel_test_run(load_spec(DATA / "globals.o"), "globals", ctx_in=bytes(40),
                        maps_in=entry)
    with pytest.raises(MapsInError, match="EPERM"):
        apply_maps_in(xsim.load(DATA / "globals.o"), entry)


# -- helpers -----------------------------------------------------------------------------

HCTX = 8 + 16 * 8 + 32


@pytest.mark.parametrize("prog", ["time_rand_cpu", "printk", "snprintf", "strtox",
                                  "probe_read_kernel"])
def test_helpers(prog: str) -> None:
    kernel, sim = run_both("helpers", prog, ctx=u64s(NCPUS) + bytes(HCTX - 8))
    assert_same(kernel, sim)


def test_helper_results() -> None:
    kernel, _ = run_both("helpers", "time_rand_cpu", ctx=u64s(NCPUS) + bytes(HCTX - 8))
    assert out_words(kernel, 8, 3) == [1, 1, 1]
    kernel, _ = run_both("helpers", "snprintf", ctx=u64s(NCPUS) + bytes(HCTX - 8))
    assert bytes.fromhex(kernel["ctx_out"])[136:154] == b"n=123 s=-5 x=beef\0"


def test_probe_read_user_of_the_stack() -> None:
    kernel, sim = run_both("helpers", "probe_read_user", ctx=u64s(NCPUS) + bytes(HCTX - 8))
    assert out_words(kernel, 8, 3) == [-14, 0, 0]
    assert_same(kernel, sim)


def test_probe_read_kernel_of_a_user_address() -> None:
    kernel, sim = run_both("helpers", "probe_read_bad", ctx=u64s(NCPUS) + bytes(HCTX - 8))
    assert out_words(kernel, 8, 3) == [-34, 0, 0]
    assert_same(kernel, sim)


def test_csum_diff_in_tc() -> None:
    path = DATA / "helpers.o"
    kernel = kernel_test_run(load_spec(path), "csum", data_in=bytes(64))
    sim = xsim.load(path)
    p = sim.program("csum")
    x = report(sim, p, sim_run(p, memory=b""))
    assert kernel["retval"] == x["retval"] == 1
    assert kernel["maps"] == x["maps"]


def test_syscall_programs_refuse_csum_diff() -> None:
    with pytest.raises(KernelError) as info:
        jit_image(load_spec(DATA / "helpers.o"), "csum_syscall")
    assert "program of this type cannot use helper bpf_csum_diff#28" in info.value.log


# -- test-run refusals, report shape, JIT image, CLI -----------------------------------------

@pytest.mark.parametrize("kw", [{"data_in": b"x" * 14}, {"repeat": 2}])
def test_same_refusals(kw: dict[str, Any]) -> None:
    with pytest.raises(TestRunRefused):
        kernel_test_run(load_spec(DATA / "maps.o"), "hash_ops", ctx_in=bytes(MCTX), **kw)
    sim = xsim.load(DATA / "maps.o")
    with pytest.raises(TestRunRefused):
        sim_run(sim.program("hash_ops"), ctx_in=bytes(MCTX), **kw)


def test_short_ctx_is_refused_by_both() -> None:
    with pytest.raises(TestRunRefused):
        kernel_test_run(load_spec(DATA / "maps.o"), "hash_ops", ctx_in=bytes(8))
    with pytest.raises(TestRunRefused):
        sim_run(xsim.load(DATA / "maps.o").program("hash_ops"), ctx_in=bytes(8))


SYSCALL_PROGRAMS = [(o.name, p.name) for o in sorted(DATA.glob("*.o"))
                    for p in load_spec(o).programs if p.prog_type.kernel_name == "syscall"]


@pytest.mark.parametrize("obj, prog", SYSCALL_PROGRAMS)
def test_max_ctx_offset_is_the_kernels(obj: str, prog: str) -> None:
    """xsim's max_ctx_offset is where the kernel starts accepting ctx_in: one byte less
    is refused (EINVAL), that many bytes are not."""
    need = xsim.load(DATA / obj).program(prog).max_ctx_offset
    spec = load_spec(DATA / obj)
    try:
        kernel_test_run(spec, prog, ctx_in=bytes(4096))
    except (KernelError, KernelUsageError) as exc:
        pytest.skip(f"the kernel does not load {prog} (tested elsewhere): {exc}")
    if need:
        with pytest.raises(TestRunRefused):
            kernel_test_run(spec, prog, ctx_in=bytes(need - 1))
    kernel_test_run(spec, prog, ctx_in=bytes(need))


def test_report_has_the_same_keys() -> None:
    kernel, sim = run_both("maps", "hash_ops", ctx=bytes(MCTX))
    assert list(kernel) == list(sim)
    assert kernel["insns"] is None and kernel["printk"] == []


def test_jit_image() -> None:
    code = jit_image(load_spec(DATA / "globals.o"), "globals")
    assert len(code) > 16


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_kernel_prints_the_same_json(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "ctx"
    ctx.write_bytes(u64s(3) + bytes(32))
    maps_in = tmp_path / "maps.json"
    maps_in.write_text(json.dumps([{"map": ".data", "key": "00000000",
                                    "value": u64s(1).hex() + "01000000" * 8}]))
    args = ["run", str(DATA / "globals.o"), "--ctx-in", str(ctx), "--maps-in", str(maps_in),
            "--json", "--cpu", str(CPU), "--cpus", str(NCPUS)]
    rc_k, out_k, _ = _cli(args + ["--kernel"], capsys)
    rc_x, out_x, _ = _cli(args, capsys)
    assert rc_k == rc_x == 0
    k, x = json.loads(out_k), json.loads(out_x)
    assert list(k) == list(x)
    assert (k["retval"], k["ctx_out"], k["maps"]) == (x["retval"], x["ctx_out"], x["maps"])


def test_cli_kernel_shows_the_verifier_log(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _cli(["run", str(DATA / "trie.o"), "--prog", "lpm_sleepable", "--kernel"],
                        capsys)
    assert rc == cli.EXIT_CANNOT_LOAD
    assert "Sleepable programs can only use array, hash, ringbuf" in err
    assert "processed" in err and not out


def test_cli_kernel_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.write_bytes(bytes(14))
    rc, _, err = _cli(["run", str(DATA / "maps.o"), "--prog", "hash_ops", "--kernel",
                       "--data-in", str(data)], capsys)
    assert rc == cli.EXIT_REFUSED and "data_in" in err


def test_maps_that_need_btf_are_skipped() -> None:
    spec = load_spec(DATA / "btf_only.o")
    with KernelObject.load(spec, prog="uses_plain") as obj:
        assert "bpf_spin_lock" in obj.skipped["locked"] and list(obj.maps) == ["plain"]
    assert kernel_test_run(spec, "uses_plain")["retval"] == 1
    with pytest.raises(KernelUsageError, match="not created"):
        KernelObject.load(spec, prog="uses_locked")


def test_cli_kernel_without_bpf(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import xsim.kernel
    monkeypatch.setattr(xsim.kernel, "available", lambda: (False, "bpf() unusable: EPERM"))
    rc, _, err = _cli(["run", str(DATA / "globals.o"), "--kernel"], capsys)
    assert rc == cli.EXIT_BAD_INPUT and "EPERM" in err
