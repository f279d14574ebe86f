"""The ELF loader: programs, sections and types, maps, global data, links, relocations."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from xsim.elf.kinds import MapType, ProgType
from xsim.elf.loader import data_map_name, load_spec, prog_type_of
from xsim.errors import ElfError
from xsim.isa.insn import decode

DATA = Path(__file__).parent / "data" / "loader"


@pytest.fixture(scope="module")
def multi():
    return load_spec(DATA / "multi.o")


def test_programs_sections_and_types(multi) -> None:
    got = {p.name: (p.section, p.prog_type) for p in multi.programs}
    assert got == {
        "sys_prog": ("syscall", ProgType.SYSCALL), "tail_target": ("syscall", ProgType.SYSCALL),
        "tail_caller": ("syscall", ProgType.SYSCALL),
        "xdp_pass": ("xdp", ProgType.XDP), "xdp_drop": ("xdp", ProgType.XDP),
        "xdp_frags": ("xdp.frags", ProgType.XDP),
        "tc_prog": ("tc", ProgType.SCHED_CLS), "tcx_prog": ("tcx/ingress", ProgType.SCHED_CLS),
        "sock_prog": ("socket", ProgType.SOCKET_FILTER),
        "kp": ("kprobe/do_sys_openat2", ProgType.KPROBE),
        "tp": ("tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT),
    }
    assert multi.license == "GPL"
    kp = next(p for p in multi.programs if p.name == "kp")
    assert kp.attach_to == "do_sys_openat2"


def test_btf_maps(multi) -> None:
    maps = {m.name: m for m in multi.maps}
    expect = {
        "hash": (MapType.HASH, 4, 8, 64, 0), "arr": (MapType.ARRAY, 4, 4, 8, 0),
        "pcpu": (MapType.PERCPU_ARRAY, 4, 8, 4, 0), "lru": (MapType.LRU_HASH, 8, 4, 16, 0),
        "queue": (MapType.QUEUE, 0, 4, 8, 0), "rb": (MapType.RINGBUF, 0, 0, 4096, 0),
        "lpm": (MapType.LPM_TRIE, 8, 4, 16, 1), "jumps": (MapType.PROG_ARRAY, 4, 4, 4, 0),
    }
    for name, (mtype, key, value, entries, flags) in expect.items():
        m = maps[name]
        assert (m.type, m.key_size, m.value_size, m.max_entries, m.flags) == \
            (mtype, key, value, entries, flags), name
    assert maps["jumps"].init == ((1, "tail_target"),)
    assert maps["hash"].btf_key_type_id and maps["hash"].btf_value_type_id


def test_global_data_maps_are_named_like_libbpf(multi) -> None:
    maps = {m.name: m for m in multi.maps}
    assert maps["multi.data"].data == struct.pack("<i", 3)
    assert maps["multi.bss"].data == bytes(8)
    assert maps["multi.rodata"].data == struct.pack("<I", 10)
    assert maps["multi.rodata"].readonly and maps["multi.rodata"].flags == 0x480
    assert maps["multi.data"].flags == 0x400
    assert data_map_name("xdp_parse.o", ".bss") == "xdp_pars.bss"
    assert data_map_name("/a/b/my.prog.bpf.o", ".rodata") == "my.rodata"
    assert data_map_name("/a/b/my.prog.bpf.o", ".rodata.cst16") == ".rodata.cst16"
    assert data_map_name("x.o", ".data.a_long_section_name") == ".data.a_long_se"


def test_subprograms_are_linked_and_calls_fixed(multi) -> None:
    prog = next(p for p in multi.programs if p.name == "sys_prog")
    names = dict((name, slot) for slot, name in prog.func_names)
    assert set(names) == {"sys_prog", "global_sub", "helper_sub"}
    insns = {i.pc: i for i in decode(prog.code)}        # decodes: every call target is valid
    targets = {i.target for i in insns.values() if i.op.kind.value == "call" and i.src == 1}
    assert targets == {names["global_sub"], names["helper_sub"]}
    kinds = sorted((r.kind, r.target) for r in prog.relocs)
    assert kinds == [("map", "hash"), ("map_value", "multi.bss"), ("map_value", "multi.data"),
                     ("map_value", "multi.rodata")]
    # programs that call nothing get no subprograms appended
    assert next(p for p in multi.programs if p.name == "xdp_pass").func_names == ((0, "xdp_pass"),)


def test_legacy_maps_section() -> None:
    spec = load_spec(DATA / "legacy.o")
    maps = {m.name: (m.type, m.key_size, m.value_size, m.max_entries) for m in spec.maps}
    assert maps == {"legacy_hash": (MapType.HASH, 4, 8, 32), "legacy_arr": (MapType.ARRAY, 4, 4, 2)}
    assert spec.license == "Dual BSD/GPL" and spec.kern_version == 0x060100
    (prog,) = spec.programs
    assert [(r.kind, r.target) for r in prog.relocs] == [("map", "legacy_arr")]


@pytest.mark.parametrize("section, expected", [
    ("xdp", (ProgType.XDP, "")), ("xdp/devmap", (ProgType.XDP, "")),
    ("classifier", (ProgType.SCHED_CLS, "")), ("fentry/tcp_v4_rcv", (ProgType.TRACING, "tcp_v4_rcv")),
    ("lsm/file_open", (ProgType.LSM, "file_open")), ("struct_ops/init", (ProgType.STRUCT_OPS, "init")),
    ("cgroup_skb/egress", (ProgType.CGROUP_SKB, "")), ("uprobe//bin/sh:main", (ProgType.KPROBE, "/bin/sh:main")),
    ("syscall", (ProgType.SYSCALL, "")), ("xdpfoo", None), (".text", None),
])
def test_section_names(section: str, expected) -> None:
    assert prog_type_of(section) == expected


def _section(data: bytes, name: str):
    import io

    from elftools.elf.elffile import ELFFile
    return ELFFile(io.BytesIO(data)).get_section_by_name(name)


def test_unknown_section_is_named() -> None:
    data = bytearray((DATA / "legacy.o").read_bytes())
    strtab = _section(bytes(data), ".strtab")
    start = strtab["sh_offset"]
    table = bytes(data[start:start + strtab["sh_size"]])
    at = start + table.index(b"socket\x00")     # shared by "socket" and ".relsocket"
    data[at:at + 6] = b"sockex"
    with pytest.raises(ElfError, match="section 'sockex' names no program type") as info:
        load_spec(bytes(data), name="bad.o")
    assert info.value.section == "sockex"


def test_unknown_map_type_is_named() -> None:
    data = bytearray((DATA / "legacy.o").read_bytes())
    struct.pack_into("<I", data, _section(bytes(data), "maps")["sh_offset"], 999)
    with pytest.raises(ElfError, match="unknown map type 999"):
        load_spec(bytes(data), name="bad.o")


@pytest.mark.parametrize("data, message", [
    (b"", "malformed ELF"),
    (b"\x7fELF" + bytes(60), "malformed ELF|not a BPF object"),
    (b"not an elf at all" * 10, "malformed ELF"),
])
def test_malformed_files(data: bytes, message: str) -> None:
    with pytest.raises(ElfError, match=message):
        load_spec(data, name="bad.o")


def test_truncated_object() -> None:
    data = (DATA / "multi.o").read_bytes()
    with pytest.raises(ElfError):
        load_spec(data[: len(data) // 2], name="half.o")


def test_kconfig_externs_get_defaults_or_the_users_values() -> None:
    import xsim
    spec = load_spec(DATA / "externs.o")
    (kconfig,) = [m for m in spec.maps if m.section == ".kconfig"]
    assert kconfig.name == "externs.kconfig" and kconfig.readonly
    assert [e[:4] for e in kconfig.externs] == [
        ("LINUX_KERNEL_VERSION", 0, 4, "uint"), ("CONFIG_HZ", 4, 4, "int"),
        ("CONFIG_BPF_SYSCALL", 8, 1, "bool"), ("CONFIG_LOCALVERSION", 16, 16, "char[]")]
    obj = xsim.load(DATA / "externs.o")
    # LINUX_KERNEL_VERSION + CONFIG_HZ + CONFIG_BPF_SYSCALL + CONFIG_LOCALVERSION[0]
    assert obj.programs["p"].run().r0 == ((6 << 16) + (18 << 8)) + 250 + 1 + 0
    env = xsim.RunEnv(kconfig={"CONFIG_HZ": 1000, "CONFIG_LOCALVERSION": "A",
                               "LINUX_KERNEL_VERSION": 5, "CONFIG_BPF_SYSCALL": "n"})
    obj = xsim.load(DATA / "externs.o", env=env)
    assert obj.programs["p"].run().r0 == 5 + 1000 + 0 + ord("A")
    assert obj.maps[".kconfig"].lookup(bytes(4))[4:8] == (1000).to_bytes(4, "little")


def test_a_strong_kconfig_extern_without_a_value_is_an_error() -> None:
    import xsim
    spec = load_spec(DATA / "externs.o")
    from xsim.runtime.object import Object
    with pytest.raises(xsim.XsimError, match="CONFIG_BPF_SYSCALL __kconfig has no value"):
        Object(spec, env=xsim.RunEnv(kconfig={"CONFIG_BPF_SYSCALL": None}))


def test_ksym_is_an_unresolved_reference_when_executed() -> None:
    import xsim
    obj = xsim.load(DATA / "externs.o")
    res = obj.programs["q"].run()
    assert isinstance(res.error, xsim.UnresolvedReference)
    assert "kernel symbol 'bpf_prog_active' (__ksym)" in str(res.error)


def test_line_info_names_the_source_of_a_fault() -> None:
    import xsim
    obj = xsim.load(Path(__file__).resolve().parents[1] / "examples" / "counter.o")
    res = obj.programs["count"].run(b"\x01\x00")          # a context too short to read
    assert isinstance(res.error, xsim.MemoryAccessError)
    assert res.error.source == ("./examples/counter.c:37: __u32 amount = ev->amount > "
                                "max_amount ? max_amount : ev->amount;")
    assert "  at ./examples/counter.c:37" in res.summary()


def test_core_relocations_of_unmodeled_structs_poison_their_instruction() -> None:
    import xsim
    spec = load_spec(Path(__file__).parent / "data" / "btf" / "core.o")
    (prog,) = spec.programs
    assert prog.core_relos == ((0, "struct s.b (FIELD_BYTE_OFFSET)"),
                               (1, "struct outer.inner[1].a (FIELD_BYTE_OFFSET)"))
    assert [slot for slot, _ in prog.unresolved] == [0, 1]
    obj = xsim.load(Path(__file__).parent / "data" / "btf" / "core.o")
    res = obj.programs[prog.name].run(bytes(64))
    assert isinstance(res.error, xsim.UnresolvedReference)
    assert str(res.error) == ("pc 0: CO-RE relocation FIELD_BYTE_OFFSET of struct s.b: "
                              "xsim models no such field")


def test_object_api_names() -> None:
    """obj.programs[n].prog_type is the kernel's name; obj.maps[n].type is bpftool's."""
    import xsim
    obj = xsim.load(DATA / "multi.o")
    assert obj.programs["tc_prog"].prog_type == "sched_cls"
    assert obj.programs["sock_prog"].prog_type == "socket_filter"
    m = obj.maps["lru"]
    assert m.type == "lru_hash" and str(m.type) == "lru_hash" and int(m.type) == 9
    assert m.type != "hash" and obj.maps[".rodata"].name == "multi.rodata"
    assert (m.key_size, m.value_size, m.max_entries, m.flags) == (8, 4, 16, 0)
