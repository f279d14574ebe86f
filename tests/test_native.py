"""The kernel's own x86-64 JIT image of each example program, run under unicorn against the
interpreter (``xsim crosscheck --native``, xsim/crosscheck/native.py, xsim/kernel/image.py).

Recorded images (tests/data/kernel_images, made by record.sh there) run on every
machine; where bpf() works, each example's image is also fetched from the running
kernel and checked the same way.  The examples run on their shipped inputs: the
capture for the networking programs (with the firewall's blocklist and the load
balancer's backends), the context and map entries for the counter.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import random
import struct
from pathlib import Path

import pytest

from xsim.cli import main
from xsim.crosscheck import native
from xsim.crosscheck.emulate import JitDefect
from xsim.elf.loader import load_spec
from xsim.errors import NativeUnsupported
from xsim.kernel import KernelError, available
from xsim.kernel.image import MAP_STRUCTS, KernelImage, KernelImageError, kernel_layouts
from xsim.nic.pcap import read_packets
from xsim.runtime import testrun
from xsim.runtime.hooks import HOOKS
from xsim.runtime.object import load

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NIC = EXAMPLES / "nic"
IMAGES = Path(__file__).parent / "data" / "kernel_images"
OK, WHY = available()
PACKETS = [native.RunInput(f"packet {p.index}", p.data) for p in read_packets(NIC / "traffic.pcap")]
COUNTER_RUN = [native.RunInput("the run", ctx_in=(EXAMPLES / "counter.ctx").read_bytes())]

#: program -> (object, maps_in file or None, runs)
#: case -> (object, maps_in file or None, runs); the case names the program, but where
#: two examples have one program name (PROGRAM_OF)
CASES = {
    "count": (EXAMPLES / "counter.o", EXAMPLES / "counter.maps.json", COUNTER_RUN),
    "firewall": (NIC / "firewall.o", NIC / "blocklist.json", PACKETS),
    "l4_lb": (NIC / "l4_lb.o", NIC / "backends.json", PACKETS),
    "encap": (NIC / "ipip.o", None, PACKETS),
    "decap": (NIC / "ipip.o", None, PACKETS),
    "tc_marker": (NIC / "tc_marker.o", None, PACKETS),
    "dns_filter": (NIC / "dns_filter.o", None, PACKETS),
}


#: __sk_buff as ctx_in: mark, priority, ingress_ifindex, ifindex and cb[0..4] set
SKB_CTX = struct.pack("<8x I 20x 3I 4x 5I", 0x11, 0x22, 1, 1, 1, 2, 3, 4, 5).ljust(192, b"\0")
#: xdp_md as ctx_in: ingress_ifindex 1 (loopback)
XDP_CTX = struct.pack("<12x I", 1).ljust(24, b"\0")
FIELDS = ROOT / "tests" / "data" / "nic" / "native_fields.o"
#: programs that read every context field the runner mirrors, on ctx_in with values set
CASES.update({
    "skb_fields": (FIELDS, None, [native.RunInput(r.label, r.data_in, SKB_CTX)
                                  for r in PACKETS[:100]]),
    "xdp_fields": (FIELDS, None, [native.RunInput(r.label, r.data_in, XDP_CTX)
                                  for r in PACKETS[:100]]),
})
#: the offload study's programs on the first frames of their captures (katran's image
#: inlines a per-CPU array's and an LRU hash's lookups)
OFF = EXAMPLES / "offload"
UDP64, FW_FRAMES = ([native.RunInput(f"packet {p.index}", p.data)
                     for p in read_packets(OFF / name)][:256]
                    for name in ("udp64.pcap", "firewall.pcap"))
CASES.update({
    "drop": (OFF / "drop.o", None, UDP64),
    "tx": (OFF / "tx.o", None, UDP64),
    "redirect": (OFF / "redirect.o", OFF / "redirect.maps.json", UDP64),
    "offload_firewall": (OFF / "firewall.o", None, FW_FRAMES),
    "firewall_ports": (OFF / "firewall_ports.o", None, UDP64),
    "katran": (OFF / "katran.o", OFF / "katran.maps.json", UDP64),
})
#: an LRU hash's stand-in element written through and handed to a helper: 8 keys, 4 entries
LRU_FRAMES = [native.RunInput(f"frame {i}", bytes([k]) + bytes(59))
              for i, k in enumerate(random.Random(7).choices(range(8), k=64))]
CASES["native_lru"] = (ROOT / "tests" / "data" / "nic" / "native_lru.o", None, LRU_FRAMES)
#: bpf_get_smp_processor_id inlined beside a per-CPU array's lookup
CASES["native_cpu"] = (ROOT / "tests" / "data" / "nic" / "native_cpu.o", None, LRU_FRAMES[:8])
PROGRAM_OF = {"offload_firewall": "firewall"}


def maps_in(path: Path | None) -> list | None:
    return json.loads(path.read_text()) if path else None


def check(image: KernelImage, case: str, runs=None, **kw) -> native.Verdict:
    obj, maps, default_runs = CASES[case]
    return native.crosscheck(image, obj, PROGRAM_OF.get(case, case),
                             default_runs if runs is None else runs, maps_in=maps_in(maps), **kw)


def recorded(prog: str) -> KernelImage:
    return KernelImage.load(IMAGES / f"{prog}.json")


def with_code(image: KernelImage, at: int, patch: bytes) -> KernelImage:
    code = bytearray(image.code)
    code[at:at + len(patch)] = patch
    return dataclasses.replace(image, code=bytes(code))


# -- recorded images: no kernel needed -------------------------------------------------------

@pytest.mark.parametrize("prog", CASES)
def test_a_recorded_image_agrees_with_the_interpreter(prog: str) -> None:
    verdict = check(recorded(prog), prog)
    assert verdict.difference is None
    assert verdict.runs == len(CASES[prog][2])


def test_the_counter_image_runs_xsims_helpers_on_xsims_maps() -> None:
    """The inlined hash lookup, htab_map_update_elem and bpf_trace_printk: calls to kernel
    addresses served by the interpreter's helpers, on the object's own maps."""
    obj = load(EXAMPLES / "counter.o")
    testrun.apply_maps_in(obj, maps_in(EXAMPLES / "counter.maps.json"))
    op = obj.choose("count")
    out = testrun.test_run(op, ctx_in=COUNTER_RUN[0].ctx_in,
                           tier=native.NativeTier(recorded("count"), obj, op))
    assert out.result.error is None and out.result.r0 == 105
    assert out.printk == ["key 7 total 105"]
    assert out.result.helper_calls == {1: 1, 6: 1}          # map_lookup_elem, trace_printk
    assert obj.maps["totals"].lookup((7).to_bytes(4, "little")) == (105).to_bytes(8, "little")
    assert obj.maps["counter.bss"].lookup(bytes(4)) == (1).to_bytes(8, "little")


def test_the_mirrored_fields_read_and_written_by_the_kernels_code() -> None:
    """skb_fields reads every mirrored __sk_buff field and writes the writable ones: its
    ctx_out (what the kernel's code left in struct sk_buff, read back) is xsim's."""
    obj = load(FIELDS)
    op = obj.choose("skb_fields")
    out = testrun.test_run(op, data_in=PACKETS[0].data_in, ctx_in=SKB_CTX,
                           tier=native.NativeTier(recorded("skb_fields"), obj, op))
    mark, priority = struct.unpack_from("<I", out.ctx_out, 8)[0], struct.unpack_from(
        "<I", out.ctx_out, 32)[0]
    assert out.result.error is None and (mark, priority) == (99, 7)
    assert struct.unpack_from("<5I", out.ctx_out, 48) == (1, 2, 5, 4, 5)


def test_a_changed_instruction_is_a_difference() -> None:
    """The firewall's epilogue returns its verdict with mov eax, ebx: make it xor eax, eax."""
    image = recorded("firewall")
    at = image.code.rfind(bytes.fromhex("89d8"))
    verdict = check(with_code(image, at, bytes.fromhex("31c0")), "firewall", PACKETS[:5])
    assert verdict.runs == 1
    assert verdict.difference.startswith("packet 0: run.r0: ")


def test_a_wrong_map_update_is_a_difference() -> None:
    """The verdict counter's atomic add by 2, not 1: the map is reported, by key."""
    image = recorded("firewall")
    at = image.code.rfind(bytes.fromhex("bf01000000"))        # mov edi, 1 before lock xadd
    verdict = check(with_code(image, at, bytes.fromhex("bf02000000")), "firewall", PACKETS[:5])
    assert "map 'verdicts': key " in verdict.difference


#: katran's inlined per-CPU array lookup: array->pptrs[i], plus gs:[this_cpu_off], then its
#: counter's increment; and its inlined LRU hash lookup: lru_node.ref set, the value at +0x40
PER_CPU_ADD = bytes.fromhex("654803042528c0b083")
STATS_INCREMENT = bytes.fromhex("8b780083c701897800")
LRU_VALUE = bytes.fromhex("c64023014883c040")


def test_katran_on_another_cpu_reads_that_cpus_values() -> None:
    """On CPU 1 of 2 the image's per-CPU counter is CPU 1's, as on the interpreter; without
    gs:[this_cpu_off] it would count on CPU 0's, a difference."""
    image = recorded("katran")
    assert check(image, "katran", UDP64[:20], ncpus=2, cpu=1).difference is None
    at = image.code.find(PER_CPU_ADD)
    nop = bytes.fromhex("660f1f840000000000")            # a 9-byte nop
    verdict = check(with_code(image, at, nop), "katran", UDP64[:20], ncpus=2, cpu=1)
    assert "map 'stats'" in verdict.difference


def test_a_wrong_per_cpu_or_lru_value_is_a_difference() -> None:
    """A per-CPU counter counted by 2, or the LRU element's value read 8 bytes off (its
    capture's later frames of a flow find the flow in the LRU hash: 97 of the 256)."""
    image = recorded("katran")
    at = image.code.find(STATS_INCREMENT)
    twice = STATS_INCREMENT.replace(bytes.fromhex("83c701"), bytes.fromhex("83c702"))
    assert "map 'stats'" in check(with_code(image, at, twice), "katran", UDP64[:5]).difference
    at = image.code.find(LRU_VALUE)
    off = LRU_VALUE[:-1] + b"\x48"
    assert check(with_code(image, at, off), "katran", UDP64).difference is not None


def test_the_cpu_number_is_the_running_cpus() -> None:
    """The inlined bpf_get_smp_processor_id reads the CPU number through gs: on each CPU of
    3 the frame and the per-CPU count carry that CPU's number, as on the interpreter; a
    read 4 bytes past the CPU number is a difference."""
    image = recorded("native_cpu")
    for cpu in (1, 2):
        assert check(image, "native_cpu", ncpus=3, cpu=cpu).difference is None
    read = PER_CPU_ADD + bytes.fromhex("8b4000")        # mov eax, [rax]: the CPU number
    at = image.code.find(read)
    wrong = with_code(image, at, read[:-1] + b"\x04")
    assert "data_out" in check(wrong, "native_cpu", ncpus=3, cpu=2).difference


def _xlated_with(image: KernelImage, before: tuple, after: tuple) -> KernelImage:
    """The image with the instructions around its first BPF_MOV64_PERCPU_REG replaced."""
    xlated = bytearray(image.xlated)
    k = next(i for i in range(len(xlated) // 8)
             if xlated[8 * i] == 0xBF and struct.unpack_from("<h", xlated, 8 * i + 2)[0] == -1)
    xlated[8 * (k - 1):8 * k] = struct.pack("<BBhi", *before)
    xlated[8 * (k + 1):8 * (k + 2)] = struct.pack("<BBhi", *after)
    return dataclasses.replace(image, xlated=bytes(xlated))


@pytest.mark.parametrize("what, after", [
    ("a 64-bit per-CPU variable (the inlined bpf_get_current_task)", (0x79, 0, 0, 0)),
    ("a 32-bit one in a program that never asks for its CPU", (0x61, 0, 0, 0))])
def test_other_per_cpu_variables_are_unsupported(what: str, after: tuple) -> None:
    """r0 = &var; r0 = this CPU's r0; r0 = *r0: only bpf_get_smp_processor_id's is modelled."""
    image = _xlated_with(recorded("katran"), (0xB7, 0, 0, 0x2B00C), after)
    with pytest.raises(NativeUnsupported, match="per-CPU variable read"):
        check(image, "katran", UDP64[:1])


def test_the_recorded_layouts_are_this_kernels() -> None:
    """Where an image's recording kernel runs, its BTF gives the layouts the image carries."""
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF")
    mine = [case for case in CASES if recorded(case).kernel == platform.release()]
    if not mine:
        pytest.skip(f"the images come from Linux "
                    f"{', '.join(sorted({recorded(c).kernel for c in CASES}))}, this is "
                    f"{platform.release()}")
    for case in mine:
        image = recorded(case)
        wanted = dict(MAP_STRUCTS)
        wanted.update(getattr(HOOKS.get(image.prog_type), "kernel_structs", {}))
        assert kernel_layouts(wanted) == image.layouts, case


# -- native faults are verdicts, not crashes -----------------------------------------------------

# every image starts with the JIT's 5-byte and 3-byte nops (the patch site): 8 bytes to use
ENTRY_PATCHES = {
    "unmapped read": (bytes.fromhex("488b042534120000"), "read of 8 bytes at unmapped 0x1234"),
    "illegal instruction": (bytes.fromhex("0f0b") + bytes.fromhex("0f1f440000") + b"\x90",
                            "Invalid instruction"),
    "runaway": (bytes.fromhex("ebfe") + bytes(6), "still running after"),
}


@pytest.mark.parametrize("kind", ENTRY_PATCHES)
def test_native_faults_are_jit_defects_with_the_native_pc(kind: str) -> None:
    patch, reason = ENTRY_PATCHES[kind]
    image = recorded("firewall")
    assert image.code[:8] == bytes.fromhex("0f1f4400000f1f00")
    obj = load(NIC / "firewall.o")
    op = obj.choose("firewall")
    tier = native.NativeTier(with_code(image, 0, patch), obj, op)
    out = testrun.test_run(op, data_in=PACKETS[0].data_in, tier=tier, budget=10)
    err = out.result.error
    assert isinstance(err, JitDefect) and reason in err.reason
    assert err.native_pc == image.entry and err.isa == "x86_64"
    verdict = check(with_code(image, 0, patch), "firewall", PACKETS[:1], budget=10)
    assert "JitDefect" in verdict.difference


# -- bad images and bad arguments ------------------------------------------------------------------

def test_a_truncated_image_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text((IMAGES / "firewall.json").read_text()[:400])
    with pytest.raises(KernelImageError, match="not a JSON kernel image"):
        KernelImage.load(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(code=d["code"][:-40]), "truncated"),
    (lambda d: d.update(code="zz" + d["code"][2:]), "'code' is not hex"),
    (lambda d: d.pop("functions"), "'functions' is missing"),
    (lambda d: d["maps"][0].update(kernel_address=12), "maps.kernel_address"),
    (lambda d: d.update(format="other/1"), "format is 'other/1'"),
    (lambda d: d.update(prog_type="nothing"), "no program type"),
])
def test_a_garbled_image_is_a_kernel_image_error(tmp_path: Path, edit, message: str) -> None:
    data = json.loads((IMAGES / "firewall.json").read_text())
    edit(data)
    path = tmp_path / "garbled.json"
    path.write_text(json.dumps(data))
    with pytest.raises(KernelImageError, match=message) as info:
        KernelImage.load(path)
    assert info.value.path == str(path)


def test_code_that_jumps_to_an_unknown_kernel_address() -> None:
    """The call to trie_lookup_elem moved 64 bytes on: no kernel function the image names."""
    image = recorded("firewall")
    (target,) = [a for a, names in image.externals.items() if "trie_lookup_elem" in names]
    code = bytearray(image.code)
    at = next(i for i in range(len(code) - 5) if code[i] == 0xE8 and image.entry + i + 5 +
              struct.unpack_from("<i", code, i + 1)[0] == target)
    struct.pack_into("<i", code, at + 1, struct.unpack_from("<i", code, at + 1)[0] + 64)
    with pytest.raises(KernelImageError, match=f"jumps to {target + 64:#x}, which is neither"):
        dataclasses.replace(image, code=bytes(code)).check()


def test_an_image_of_another_program_is_refused() -> None:
    with pytest.raises(KernelImageError, match="is of program 'firewall', not of 'l4_lb'"):
        native.crosscheck(recorded("firewall"), NIC / "l4_lb.o", "l4_lb", PACKETS[:1])
    other = dataclasses.replace(recorded("firewall"), program_sha256="0" * 64)
    with pytest.raises(KernelImageError, match="another build of 'firewall'"):
        check(other, "firewall", PACKETS[:1])


def test_an_unsupported_kernel_function_is_named() -> None:
    image = recorded("firewall")
    externals = {a: (("some_kernel_function",) if "trie_lookup_elem" in n else n)
                 for a, n in image.externals.items()}
    with pytest.raises(NativeUnsupported, match="kernel function some_kernel_function"):
        check(dataclasses.replace(image, externals=externals), "firewall", PACKETS[:1])


def test_the_command_line(capsys) -> None:
    assert main(["crosscheck", "--native", str(IMAGES / "firewall.json"), "--isa", "x86_64",
                 "--abi", "kernel", str(NIC / "firewall.o"), "--prog", "firewall",
                 "--pcap", str(NIC / "traffic.pcap"), "--maps-in", str(NIC / "blocklist.json"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"agree": True, "runs": 1000,
                                                   "difference": None}
    assert main(["crosscheck", "--native", str(IMAGES / "count.json"), str(EXAMPLES / "counter.o"),
                 "--ctx-in", str(EXAMPLES / "counter.ctx"), "--maps-in",
                 str(EXAMPLES / "counter.maps.json")]) == 0
    assert "agrees with the interpreter on 1 run" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--abi", "ubpf"], "--abi ubpf: native images run with the kernel's"),
    (["--isa", "aarch64"], "--isa aarch64: native images are x86-64 code"),
    (["--gen", "3"], "--gen does not go with --native"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, args: list[str], message: str) -> None:
    assert main(["crosscheck", "--native", str(IMAGES / "firewall.json"),
                 str(NIC / "firewall.o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_image_file_on_the_command_line(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["crosscheck", "--native", str(bad), str(NIC / "firewall.o")]) == 2
    assert "not a JSON kernel image" in capsys.readouterr().err
    assert main(["crosscheck", str(NIC / "firewall.o"), "--abi", "kernel"]) == 2
    assert "go with --native" in capsys.readouterr().err


def test_kernel_image_without_bpf(capsys, monkeypatch, tmp_path: Path) -> None:
    import xsim.kernel
    monkeypatch.setattr(xsim.kernel, "available", lambda: (False, "bpf() unusable: EPERM"))
    assert main(["kernel-image", str(NIC / "firewall.o"), "-o", str(tmp_path / "f.json")]) == 2
    assert "kernel-image: bpf() unusable: EPERM" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


# -- the running kernel's images ---------------------------------------------------------------

kernel = pytest.mark.skipif(not OK, reason=WHY)


@kernel
@pytest.mark.usefixtures("no_fd_leaks")
@pytest.mark.parametrize("prog", CASES)
def test_the_kernels_image_of_each_program_agrees(prog: str, tmp_path: Path) -> None:
    from xsim.kernel.image import fetch
    image = fetch(load_spec(CASES[prog][0]), PROGRAM_OF.get(prog, prog))
    assert KernelImage.load(image.save(tmp_path / "image.json")) == image
    verdict = check(image, prog)
    assert verdict.difference is None and verdict.runs == len(CASES[prog][2])


@kernel
def test_pkt_parse_cannot_have_a_kernel_image() -> None:
    """examples/pkt_parse.bpf.o follows uBPF's convention (r2 is the packet's length),
    which the kernel's verifier refuses for an XDP program: it has no JIT image."""
    from xsim.kernel.image import fetch
    with pytest.raises(KernelError) as info:
        fetch(load_spec(EXAMPLES / "pkt_parse.bpf.o"), "prog")
    assert "R2 !read_ok" in info.value.log
    pytest.skip("pkt_parse: the kernel refuses it (R2 !read_ok: uBPF's r2 = length)")


@kernel
def test_kernel_image_command(capsys, tmp_path: Path) -> None:
    out = tmp_path / "fw.json"
    assert main(["kernel-image", str(NIC / "firewall.o"), "-o", str(out)]) == 0
    assert f"{out}: firewall (xdp), 1 function(s)" in capsys.readouterr().out
    assert KernelImage.load(out).program == "firewall"
