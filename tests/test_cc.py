"""xsim.cc and the C headers xsim ships (xsim/include).

Each compile takes ~0.3 s, so the checks share three: an XDP program written
against the headers (run through ``xsim cc``'s run_cc), a file that does not
compile, and one that includes every header and declares every checked
struct and enum (its BTF is compared with xsim/elf/kinds.py and with the
running kernel's BTF).
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import xsim
from xsim.cc import INCLUDE_DIR, CompileError, add_cc_arguments, compile_c, compiler_command
from xsim.elf.btf import Btf, Enum, Enum64, Kind, Struct, Union, parse_btf
from xsim.elf.kinds import MapType, ProgType
from xsim.errors import XsimError

ROOT = Path(__file__).resolve().parents[1]
VMLINUX = Path("/sys/kernel/btf/vmlinux")

XDP_PROG = r"""
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int count_protocols(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):	/* bpf_htons folds to a constant */
		break;
	default:
		return XDP_PASS;
	}
	__u32 key = ip->protocol;
	__u64 *n = bpf_map_lookup_elem(&counts, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	bpf_printk("protocol %d, header %d words", key, ip->ihl);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: Structs whose layout in xsim's headers must be the kernel's.
LAYOUT_STRUCTS = ("xdp_md", "__sk_buff", "bpf_sock", "bpf_sock_tuple", "bpf_spin_lock",
                  "bpf_timer", "bpf_dynptr", "bpf_perf_event_value", "ethhdr", "iphdr",
                  "ipv6hdr", "in6_addr", "udphdr", "tcphdr")

#: Constants that are enum values in the kernel (so in its BTF) and macros or
#: enum values in xsim's headers.
KERNEL_ENUM_CONSTANTS = (
    "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK", "BPF_F_NO_PREALLOC",
    "BPF_F_NO_COMMON_LRU", "BPF_F_NUMA_NODE", "BPF_F_RDONLY", "BPF_F_WRONLY",
    "BPF_F_STACK_BUILD_ID", "BPF_F_ZERO_SEED", "BPF_F_RDONLY_PROG", "BPF_F_WRONLY_PROG",
    "BPF_F_CLONE", "BPF_F_MMAPABLE", "BPF_F_PRESERVE_ELEMS", "BPF_F_INNER_MAP",
    "BPF_F_INDEX_MASK", "BPF_F_CURRENT_CPU", "BPF_F_CTXLEN_MASK", "BPF_F_INGRESS",
    "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_RB_AVAIL_DATA", "BPF_RB_RING_SIZE",
    "BPF_RB_CONS_POS", "BPF_RB_PROD_POS",
    "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT",
    "IPPROTO_IP", "IPPROTO_ICMP", "IPPROTO_IGMP", "IPPROTO_IPIP", "IPPROTO_TCP",
    "IPPROTO_EGP", "IPPROTO_PUP", "IPPROTO_UDP", "IPPROTO_IDP", "IPPROTO_TP",
    "IPPROTO_DCCP", "IPPROTO_IPV6", "IPPROTO_RSVP", "IPPROTO_GRE", "IPPROTO_ESP",
    "IPPROTO_AH", "IPPROTO_MTP", "IPPROTO_BEETPH", "IPPROTO_ENCAP", "IPPROTO_PIM",
    "IPPROTO_COMP", "IPPROTO_L2TP", "IPPROTO_SCTP", "IPPROTO_UDPLITE", "IPPROTO_MPLS",
    "IPPROTO_ETHERNET", "IPPROTO_RAW", "IPPROTO_MPTCP",
)

#: Macros of the kernel's UAPI (so in no BTF): the values of linux/pkt_cls.h and
#: linux/if_ether.h.
MACRO_CONSTANTS = {
    "TC_ACT_UNSPEC": -1, "TC_ACT_OK": 0, "TC_ACT_RECLASSIFY": 1, "TC_ACT_SHOT": 2,
    "TC_ACT_PIPE": 3, "TC_ACT_STOLEN": 4, "TC_ACT_QUEUED": 5, "TC_ACT_REPEAT": 6,
    "TC_ACT_REDIRECT": 7, "TC_ACT_TRAP": 8,
    "ETH_ALEN": 6, "ETH_HLEN": 14, "ETH_P_IP": 0x0800, "ETH_P_ARP": 0x0806,
    "ETH_P_8021Q": 0x8100, "ETH_P_IPV6": 0x86DD, "ETH_P_8021AD": 0x88A8,
}


def _layout_source(kernel_enums: dict[str, int]) -> str:
    """bpf_helper_defs.h first (it must compile alone), then every header, one
    global per struct (so that each is in the BTF) and static asserts."""
    lines = ["#include <bpf/bpf_helper_defs.h>"]
    lines += [f"#include <{h}>" for h in (
        "linux/types.h", "linux/bpf.h", "linux/pkt_cls.h", "linux/if_ether.h", "linux/in.h",
        "linux/in6.h", "linux/ip.h", "linux/ipv6.h", "linux/udp.h", "linux/tcp.h",
        "bpf/bpf_endian.h", "bpf/bpf_helpers.h")]
    lines += [f"struct {s} xsim_{s};" for s in LAYOUT_STRUCTS]
    lines += ["enum bpf_map_type xsim_map_type;", "enum bpf_prog_type xsim_prog_type;",
              "enum xdp_action xsim_xdp_action;"]
    consts = {**{n: kernel_enums[n] for n in KERNEL_ENUM_CONSTANTS if n in kernel_enums},
              **MACRO_CONSTANTS}
    lines += [f'_Static_assert((long long)({n}) == {v}LL, "{n} is not {v:#x}");'
              for n, v in consts.items()]
    lines.append('_Static_assert(bpf_htons(0x1234) == 0x3412 && bpf_ntohl(0x12345678) == '
                 '0x78563412 && bpf_be64_to_cpu(bpf_cpu_to_be64(1ULL)) == 1, "bpf_endian.h");')
    return "\n".join(lines) + "\n"


def _sections(obj: Path) -> dict[str, bytes]:
    with obj.open("rb") as f:
        return {s.name: s.data() for s in ELFFile(f).iter_sections()}


def _enum_values(btf: Btf) -> dict[str, int]:
    """Every enumerator of every enum (the first one of a name)."""
    out: dict[str, int] = {}
    for t in btf.types:
        if isinstance(t, (Enum, Enum64)):
            for v in t.values:
                out.setdefault(v.name, v.value)
    return out


def _layout(btf: Btf, type_id: int, prefix: str = "",
            base: int = 0) -> list[tuple[str, int, int]]:
    """(member path, bit offset, bit size) of each member; anonymous structs and
    unions are flattened into their parent, as C lets a program name them."""
    out: list[tuple[str, int, int]] = []
    for m in btf.resolve(type_id).members:
        t, off = btf.resolve(m.type), base + m.bit_offset
        if isinstance(t, (Struct, Union)) and not t.name:
            out += _layout(btf, t.id, prefix + (f"{m.name}." if m.name else ""), off)
        else:
            bits = m.bitfield_size or 8 * btf.size_of(m.type)
            out.append((prefix + m.name, off, bits))
    return out


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    if not VMLINUX.exists():
        pytest.skip(f"{VMLINUX} is absent (a kernel without CONFIG_DEBUG_INFO_BTF, or not "
                    "Linux): nothing to compare the headers' layouts with")
    return parse_btf(VMLINUX.read_bytes())


@pytest.fixture(scope="module")
def headers_btf(tmp_path_factory: pytest.TempPathFactory) -> Btf:
    """BTF of the file that uses every header (constants from vmlinux when present)."""
    kernel = _enum_values(parse_btf(VMLINUX.read_bytes())) if VMLINUX.exists() else {}
    d = tmp_path_factory.mktemp("headers")
    (d / "layouts.c").write_text(_layout_source(kernel))
    obj = compile_c(d / "layouts.c", d / "layouts.o")
    return parse_btf(_sections(obj)[".BTF"])


def test_xdp_program_compiles_against_xsim_headers(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`xsim cc prog.c -o prog.o -D ...`: a BTF map, bpf_printk and a helper call."""
    src, out = tmp_path / "prog.c", tmp_path / "prog.o"
    src.write_text(XDP_PROG)
    parser = argparse.ArgumentParser()
    add_cc_arguments(parser)
    args = parser.parse_args([str(src), "-o", str(out), "-D", "MAX_ENTRIES=16"])
    assert args.func(args) == 0
    assert str(out) in capsys.readouterr().out
    sections = _sections(out)
    assert {".maps", ".BTF", ".rodata", "license"} <= sections.keys()
    assert ".eh_frame" not in sections
    text = xsim.disassemble(sections["xdp"], syntax="llvm")
    assert "call 1\n" in text and "call 6\n" in text  # map_lookup_elem, trace_printk
    btf = parse_btf(sections[".BTF"])
    counts = btf.by_name(".maps", Kind.DATASEC)
    assert [btf.type(v.type).name for v in counts.vars] == ["counts"]


def test_compile_error_carries_the_diagnostics(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return undeclared_name; }\n")
    with pytest.raises(CompileError) as info:
        compile_c(src, tmp_path / "bad.o")
    err = info.value
    assert isinstance(err, XsimError)
    assert err.returncode not in (0, None)
    assert "undeclared_name" in err.stderr and "undeclared_name" in str(err)
    assert str(src) in err.command and "-c" in err.command
    assert str(err).startswith(f"{src}: compilation failed")


def test_missing_compiler_is_a_compile_error(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="not found on PATH") as info:
        compile_c(tmp_path / "x.c", tmp_path / "x.o", clang="no-such-clang-for-xsim")
    assert info.value.returncode is None
    with pytest.raises(CompileError, match="does not exist"):
        compile_c(tmp_path / "x.c", tmp_path / "x.o", clang=str(tmp_path / "nope" / "clang"))


def test_compiler_commands(tmp_path: Path) -> None:
    zig = compiler_command("a.c", "a.o", cflags=["-DX=1"], include_dirs=["inc"])
    assert zig[1:6] == ["-m", "ziglang", "cc", "-target", "bpfel-freestanding"]
    assert zig[-9:] == ["-I", "inc", "-I", str(INCLUDE_DIR), "-DX=1", "-c", "a.c", "-o", "a.o"]
    assert {"-O2", "-g"} <= set(zig)
    fake = tmp_path / "clang"
    fake.write_text("")
    sys_clang = compiler_command("a.c", "a.o", clang=str(fake))
    assert sys_clang[:3] == [str(fake), "-target", "bpf"] and sys_clang[-4:] == [
        "-c", "a.c", "-o", "a.o"]


@pytest.mark.skipif(shutil.which("clang") is None, reason="no clang on PATH")
def test_system_clang(tmp_path: Path) -> None:
    src = tmp_path / "prog.c"
    src.write_text(XDP_PROG)
    obj = compile_c(src, tmp_path / "prog.o", clang="clang", cflags=["-DMAX_ENTRIES=16"])
    assert "call 1\n" in xsim.disassemble(_sections(obj)["xdp"], syntax="llvm")


def test_map_and_prog_types_match_kinds(headers_btf: Btf) -> None:
    """linux/bpf.h's enums are xsim.elf.kinds' MapType and ProgType, both ways."""
    for enum_name, prefix, kinds in (("bpf_map_type", "BPF_MAP_TYPE_", MapType),
                                     ("bpf_prog_type", "BPF_PROG_TYPE_", ProgType)):
        enum = headers_btf.by_name(enum_name, Kind.ENUM)
        assert {v.name: v.value for v in enum.values} == {
            prefix + k.name: k.value for k in kinds}, enum_name


def test_struct_layouts_match_the_kernel(headers_btf: Btf, vmlinux: Btf) -> None:
    """Member names, offsets and sizes (bit offsets and widths for bitfields), and
    the size, of each struct, against the running kernel's BTF."""
    for name in LAYOUT_STRUCTS:
        ours, theirs = (b.by_name(name, Kind.STRUCT) for b in (headers_btf, vmlinux))
        assert _layout(headers_btf, ours.id) == _layout(vmlinux, theirs.id), name
        assert ours.size == theirs.size, name


def test_constants_match_the_kernel(headers_btf: Btf, vmlinux: Btf) -> None:
    """The headers file static-asserts each listed constant that this kernel's BTF
    has (the compile fails on a wrong value); xdp_action is complete."""
    kernel = _enum_values(vmlinux)
    assert {"BPF_ANY", "BPF_F_NO_PREALLOC", "XDP_PASS", "IPPROTO_TCP"} <= kernel.keys()
    ours = {v.name: v.value for v in headers_btf.by_name("xdp_action", Kind.ENUM).values}
    assert ours == {n: v for n, v in kernel.items() if n.startswith("XDP_") and n in ours}
    assert set(ours) == {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}


def test_helper_defs_header_is_generated_from_the_table() -> None:
    spec = importlib.util.spec_from_file_location("gen_helpers", ROOT / "tools/gen_helpers.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from xsim.runtime.helper_table import HELPERS
    committed = (INCLUDE_DIR / "bpf" / "bpf_helper_defs.h").read_text()
    assert committed == gen.render_header(HELPERS), \
        "bpf_helper_defs.h is stale: run python tools/gen_helpers.py"
    assert "static long (* const bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = " \
           "(void *) 6;" in committed
    assert "static void *(* const bpf_map_lookup_elem)(void *map, const void *key) = " \
           "(void *) 1;" in committed
