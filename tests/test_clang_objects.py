"""Objects built elsewhere (Debian's clang 14, not the ziglang package's clang 22): the same
specs as the zig-built ones, and the programs and maps the kernel reports for them."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from xsim.elf.loader import load_spec

DATA = Path(__file__).parent / "data"
PAIRS = [("loader/multi.o", "clang/multi.clang14.o"),
         ("loader/callbacks.o", "clang/callbacks.clang14.o")]


def _programs(spec):
    return sorted((p.name, p.section, p.prog_type) for p in spec.programs)


def _maps(spec, base: str):
    return sorted((m.name.replace(base, "X"), m.type, m.key_size, m.value_size,
                   m.max_entries, m.flags, m.init) for m in spec.maps)


@pytest.mark.parametrize("zig, clang", PAIRS)
def test_same_specs_from_both_compilers(zig: str, clang: str) -> None:
    a, b = load_spec(DATA / zig), load_spec(DATA / clang)
    assert _programs(a) == _programs(b)
    assert _maps(a, Path(zig).name.split(".")[0]) == _maps(b, Path(clang).name.split(".")[0])


def test_clang14_objects_run() -> None:
    obj = xsim.load(DATA / "clang" / "multi.clang14.o")
    assert obj.programs["sys_prog"].run(struct.pack("<I", 5)).r0 == (5 + 3) * 2
    assert obj.programs["tail_caller"].run(b"").r0 == 42
    obj = xsim.load(DATA / "clang" / "callbacks.clang14.o")
    assert obj.programs["loop_prog"].run(struct.pack("<II", 10, 100)).r0 == 285 * 100 + 10


def test_the_kernel_reports_the_same_programs_and_maps() -> None:
    kernel = pytest.importorskip("xsim.kernel")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(f"bpf() unusable: {why}")
    spec = load_spec(DATA / "clang" / "multi.clang14.o")
    seen_maps: set[str] = set()
    loaded = 0
    for p in spec.programs:
        try:
            kobj = kernel.KernelObject.load(spec, prog=p.name)
        except kernel.KernelError as exc:
            # syscall programs are sleepable, and those may not use prog arrays
            assert "Sleepable programs can only use" in exc.log, (p.name, exc.log)
            continue
        with kobj:
            loaded += 1
            info = kobj.programs[p.name].info()
            assert info.name == p.name[:15] and info.prog_type == p.prog_type, p.name
            for m in spec.maps:
                if m.name not in kobj.maps or m.name in seen_maps:
                    continue
                seen_maps.add(m.name)
                info = kobj.maps[m.name].kmap.info()
                assert info.name == m.name[:15], m.name
                assert (info.map_type, info.key_size, info.value_size, info.max_entries,
                        info.flags) == (m.type, m.key_size, m.value_size, m.max_entries,
                                        m.flags), m.name
    assert loaded >= len(spec.programs) - 2
    assert seen_maps == {m.name for m in spec.maps}
