"""xsim/runtime/helper_table.py and bpf_helper_defs.h are what tools/gen_helpers.py
writes, and a few facts of the table."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from xsim.runtime.helper_table import BY_ID, BY_NAME, HELPERS

ROOT = Path(__file__).resolve().parents[1]
VMLINUX = Path("/sys/kernel/btf/vmlinux")
TABLE = ROOT / "xsim" / "runtime" / "helper_table.py"
DEFS = ROOT / "xsim" / "include" / "bpf" / "bpf_helper_defs.h"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_helpers", ROOT / "tools/gen_helpers.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    """Without --uapi the generator keeps the table's prototypes: the output must be
    the committed table and header byte for byte."""
    if not VMLINUX.exists():
        pytest.skip(f"{VMLINUX} is absent: the helper ids come from the running kernel's BTF")
    gen = _generator()
    ids = gen.ids_from_btf(VMLINUX)
    if len(ids) < len(HELPERS) and set(ids) <= {(h.id, h.name) for h in HELPERS}:
        pytest.skip(f"this kernel knows {len(ids)} helpers, the table {len(HELPERS)} "
                    "(an older kernel)")
    table, defs = tmp_path / "helper_table.py", tmp_path / "bpf_helper_defs.h"
    assert gen.main(["--btf", str(VMLINUX), "-o", str(table), "--header", str(defs)]) == 0
    assert table.read_text() == TABLE.read_text(), "run python tools/gen_helpers.py"
    assert defs.read_text() == DEFS.read_text(), "run python tools/gen_helpers.py"


@pytest.mark.parametrize(("name", "helper_id"), [
    ("map_lookup_elem", 1), ("trace_printk", 6), ("tail_call", 12),
    ("ringbuf_reserve", 131), ("loop", 181)])
def test_known_ids(name: str, helper_id: int) -> None:
    assert BY_NAME[name].id == helper_id
    assert BY_ID[helper_id].name == name


def test_prototypes() -> None:
    assert all(h.proto for h in HELPERS), [h.name for h in HELPERS if not h.proto]
    assert all(f"bpf_{h.name}(" in h.proto for h in HELPERS)
    assert BY_NAME["map_lookup_elem"].proto == \
        "void *bpf_map_lookup_elem(struct bpf_map *map, const void *key)"
    assert BY_NAME["trace_printk"].proto == \
        "long bpf_trace_printk(const char *fmt, u32 fmt_size, ...)"
    # documented once per context type: the parameters that differ become void *
    assert BY_NAME["get_socket_cookie"].proto == "u64 bpf_get_socket_cookie(void *skb)"


def test_ids_are_unique_and_dense() -> None:
    ids = [h.id for h in HELPERS]
    assert ids == sorted(set(ids)) == list(range(1, len(HELPERS) + 1))


def test_uapi_parser_needs_the_description_line(tmp_path: Path) -> None:
    """A prototype line counts only when a Description line follows it, and several
    prototypes of one helper merge."""
    uapi = tmp_path / "bpf.h"
    uapi.write_text(
        "/*\n"
        " * long bpf_one(u32 a, void *b)\n"
        " * \tDescription\n"
        " * \t\tText that mentions bpf_two(int x) in passing.\n"
        " * u64 bpf_two(struct sk_buff *skb, u64 flags)\n"
        " *\tDescription\n"
        " * u64 bpf_two(struct bpf_sock_ops *ctx, u64 flags)\n"
        " *\tDescription\n"
        " * int bpf_three(void)\n"
        " */\n")
    assert _generator().protos_from_uapi(uapi) == {
        "one": "long bpf_one(u32 a, void *b)",
        "two": "u64 bpf_two(void *skb, u64 flags)"}


def test_header_declarations() -> None:
    gen = _generator()
    assert gen.helper_decl(9, "long bpf_skb_store_bytes(struct sk_buff *skb, u32 offset, "
                              "const void *from, u32 len, u64 flags)") == (
        "static long (* const bpf_skb_store_bytes)(struct __sk_buff *skb, __u32 offset, "
        "const void *from, __u32 len, __u64 flags) = (void *) 9;")
    assert gen.helper_decl(5, "u64 bpf_ktime_get_ns(void)") == \
        "static __u64 (* const bpf_ktime_get_ns)(void) = (void *) 5;"
