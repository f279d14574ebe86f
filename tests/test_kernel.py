"""xsim.kernel against the running kernel: maps, program load, test run, JIT image.

Everything that calls bpf() skips, with the reason, where bpf() is not usable
(not Linux, no privilege, no syscall).  Every fd is closed by a ``with`` block.
"""
from __future__ import annotations

import ctypes
import errno
import struct
from pathlib import Path

import pytest

import xsim
from xsim.errors import XsimError
from xsim.kernel import (KernelBtf, KernelError, KernelMap, KernelProgram, KernelUsageError,
                         MapType, ProgType, available, patch_map_fds, patch_map_values,
                         possible_cpus)
from xsim.kernel import backend, syscall
from xsim.kernel.syscall import (BPF_EXIST, BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_PSEUDO_MAP_FD,
                                 BPF_PSEUDO_MAP_VALUE)

OK, WHY = available()
needs_bpf = pytest.mark.skipif(not OK, reason=WHY)
VMLINUX = Path("/sys/kernel/btf/vmlinux")
XDP_PASS = 2


pytestmark = pytest.mark.usefixtures("no_fd_leaks")    # conftest: no bpf fd left open


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def asm(text: str) -> bytes:
    return xsim.assemble(text, syntax="ubpf")


def lddw_slots(code: bytes) -> list[int]:
    slots, i = [], 0
    while i < len(code) // 8:
        if code[i * 8] == 0x18:
            slots.append(i)
            i += 1
        i += 1
    return slots


def test_available_reports_a_reason():
    ok, why = available()
    assert isinstance(ok, bool) and why


# -- no kernel needed -----------------------------------------------------------------

def test_patch_map_fds_and_values():
    code = asm("lddw %r1, 0\nlddw %r2, 0\nmov %r0, 0\nexit")
    out = patch_map_fds(code, [(0, 7)])
    assert out[1] >> 4 == BPF_PSEUDO_MAP_FD and out[1] & 0xF == 1
    assert struct.unpack_from("<i", out, 4)[0] == 7 and out[8:] == code[8:]
    out = patch_map_values(code, [(2, 9, 16)])
    assert out[17] >> 4 == BPF_PSEUDO_MAP_VALUE and out[17] & 0xF == 2
    assert struct.unpack_from("<ii", out, 20)[0] == 9 and struct.unpack_from("<i", out, 28)[0] == 16
    for bad in (1, 4, 5):  # second half of an LD_IMM64, mov, exit / past the end
        with pytest.raises(KernelUsageError):
            patch_map_fds(code, [(bad, 3)])


@pytest.fixture(scope="module")
def vmlinux_btf():
    btf_mod = pytest.importorskip("xsim.elf.btf")
    if not hasattr(btf_mod, "parse_btf") or not VMLINUX.exists():
        pytest.skip("needs xsim.elf.btf.parse_btf and /sys/kernel/btf/vmlinux")
    return btf_mod.parse_btf(VMLINUX.read_bytes())


@pytest.mark.parametrize("enum, ours, prefix", [("bpf_map_type", MapType, "BPF_MAP_TYPE_"),
                                                ("bpf_prog_type", ProgType, "BPF_PROG_TYPE_"),
                                                ("bpf_cmd", syscall.Cmd, "BPF_")])
def test_enums_match_kernel_btf(vmlinux_btf, enum, ours, prefix):
    found = [t for t in vmlinux_btf.find(enum) if hasattr(t, "values")]
    if not found:
        pytest.skip(f"no enum {enum} in this kernel's BTF")
    kernel = {v.name[len(prefix):]: v.value for v in found[0].values}
    for member in ours:
        if member.name in kernel:  # a newer uapi value this kernel lacks is fine
            assert kernel[member.name] == member.value, member.name
    assert sum(m.name in kernel for m in ours) > len(ours) // 2  # older kernels know fewer


def _flat(btf, type_id: int, base: int = 0) -> dict[str, int]:
    """member name -> byte offset, anonymous structs/unions flattened."""
    out: dict[str, int] = {}
    for m in btf.resolve(type_id).members:
        if m.name:
            out[m.name] = base + m.bit_offset // 8
        else:
            out.update(_flat(btf, m.type, base + m.bit_offset // 8))
    return out


def test_layouts_match_kernel_btf(vmlinux_btf):
    attr = vmlinux_btf.find("bpf_attr")[0]
    parts = [_flat(vmlinux_btf, m.type) for m in attr.members]
    for cls in (syscall.MapCreateAttr, syscall.MapElemAttr, syscall.ProgLoadAttr,
                syscall.TestRunAttr, syscall.ObjInfoAttr, syscall.BtfLoadAttr):
        names = {f[0]: getattr(cls, f[0]).offset for f in cls._fields_}
        names.pop("attach_prog_fd", None)  # in an anonymous union with attach_btf_obj_fd
        match = [p for p in parts if set(names) <= set(p)]
        assert match, cls.__name__
        assert {n: match[0][n] for n in names} == names, cls.__name__
    info = _flat(vmlinux_btf, vmlinux_btf.find("bpf_prog_info")[0].id)
    ours = {f[0]: getattr(syscall.ProgInfo, f[0]).offset for f in syscall.ProgInfo._fields_
            if not f[0].startswith("_")}
    assert {n: info[n] for n in ours} == ours


# -- maps ----------------------------------------------------------------------------

@needs_bpf
def test_array_map():
    with KernelMap.create(MapType.ARRAY, 4, 8, 4, name="arr") as m:
        assert m.lookup(u32(1)) == bytes(8)  # arrays are preallocated and zeroed
        m.update(u32(1), b"abcdefgh")
        assert m.lookup(u32(1)) == b"abcdefgh"
        assert list(m.keys()) == [u32(i) for i in range(4)]
        assert dict(m.items())[u32(1)] == b"abcdefgh"
        assert m.lookup(u32(4)) is None
        with pytest.raises(KernelError) as exc:
            m.update(u32(4), bytes(8))
        assert exc.value.errno == errno.E2BIG
        with pytest.raises(KernelError) as exc:
            m.delete(u32(0))
        assert exc.value.errno_name == "EINVAL"
        with pytest.raises(KernelUsageError):
            m.lookup(b"\0\0")
    assert m.closed


@needs_bpf
def test_hash_map_errnos():
    with KernelMap.create(MapType.HASH, 4, 4, 2, name="h") as m:
        assert list(m.keys()) == [] and m.lookup(u32(1)) is None
        m.update(u32(1), u32(10))
        with pytest.raises(KernelError) as exc:
            m.update(u32(1), u32(11), BPF_NOEXIST)
        err = exc.value
        assert (err.errno, err.errno_name, err.command) == (errno.EEXIST, "EEXIST",
                                                             "MAP_UPDATE_ELEM")
        assert "EEXIST" in str(err) and isinstance(err, XsimError)
        with pytest.raises(KernelError) as exc:
            m.update(u32(2), u32(20), BPF_EXIST)
        assert exc.value.errno == errno.ENOENT
        m.update(u32(2), u32(20))
        with pytest.raises(KernelError) as exc:
            m.update(u32(3), u32(30))
        assert exc.value.errno == errno.E2BIG
        assert sorted(m.keys()) == [u32(1), u32(2)]
        assert dict(m.items()) == {u32(1): u32(10), u32(2): u32(20)}
        m.delete(u32(1))
        with pytest.raises(KernelError) as exc:
            m.delete(u32(1))
        assert exc.value.errno == errno.ENOENT
        assert m.lookup_and_delete(u32(2)) == u32(20) and list(m.keys()) == []


@needs_bpf
def test_percpu_array_uses_a_slot_per_possible_cpu():
    n = possible_cpus()
    assert n >= 1
    with KernelMap.create(MapType.PERCPU_ARRAY, 4, 4, 2) as m:
        assert m.value_buffer_size == 8 * n
        m.update(u32(0), m.join_percpu([u32(100 + i) for i in range(n)]))
        buf = m.lookup(u32(0))
        assert len(buf) == 8 * n
        assert m.split_percpu(buf) == [u32(100 + i) for i in range(n)]
        with pytest.raises(KernelUsageError):
            m.update(u32(0), u32(1))


@needs_bpf
def test_lru_hash_evicts_instead_of_failing():
    with KernelMap.create(MapType.LRU_HASH, 4, 4, 16) as m:
        for i in range(200):
            m.update(u32(i), u32(i))
        keys = list(m.keys())
        assert 0 < len(keys) <= 16 and m.lookup(u32(199)) == u32(199)


@needs_bpf
def test_queue_and_stack():
    with KernelMap.create(MapType.QUEUE, 0, 4, 3) as q, \
            KernelMap.create(MapType.STACK, 0, 4, 3) as s:
        for v in (1, 2, 3):
            q.push(u32(v))
            s.push(u32(v))
        with pytest.raises(KernelError) as exc:
            q.push(u32(4))
        assert exc.value.errno == errno.E2BIG
        q.push(u32(4), BPF_EXIST)  # full queue: drop the oldest
        assert q.peek() == u32(2)
        assert [q.lookup_and_delete() for _ in range(4)] == [u32(2), u32(3), u32(4), None]
        assert [s.lookup_and_delete() for _ in range(4)] == [u32(3), u32(2), u32(1), None]
        with pytest.raises(KernelUsageError):
            q.lookup(u32(0))


@needs_bpf
def test_lpm_trie():
    def key(prefix: int, *octets: int) -> bytes:
        return u32(prefix) + bytes(octets)

    with pytest.raises(KernelError) as exc:  # LPM tries must not be preallocated
        KernelMap.create(MapType.LPM_TRIE, 8, 4, 16).close()
    assert exc.value.errno == errno.EINVAL
    with KernelMap.create(MapType.LPM_TRIE, 8, 4, 16, flags=BPF_F_NO_PREALLOC) as m:
        m.update(key(8, 10, 0, 0, 0), u32(1))
        m.update(key(16, 10, 1, 0, 0), u32(2))
        assert m.lookup(key(32, 10, 1, 2, 3)) == u32(2)
        assert m.lookup(key(32, 10, 2, 0, 0)) == u32(1)
        assert m.lookup(key(32, 11, 0, 0, 0)) is None
        assert sorted(m.keys()) == sorted([key(8, 10, 0, 0, 0), key(16, 10, 1, 0, 0)])


@needs_bpf
def test_ringbuf_size_rules():
    with KernelMap.create(MapType.RINGBUF, 0, 0, 4096 * 4) as rb:
        assert rb.fd >= 0
    with pytest.raises(KernelError) as exc:  # a power of two pages
        KernelMap.create(MapType.RINGBUF, 0, 0, 5000).close()
    assert exc.value.errno == errno.EINVAL


@needs_bpf
def test_bloom_filter_with_map_extra():
    with KernelMap.create(MapType.BLOOM_FILTER, 0, 4, 100, map_extra=3) as bf:
        bf.push(u32(42))
        assert bf.contains(u32(42))
        assert not bf.contains(u32(7))
    with pytest.raises(KernelError) as exc:  # at most 15 hash functions
        KernelMap.create(MapType.BLOOM_FILTER, 0, 4, 100, map_extra=16).close()
    assert exc.value.errno == errno.EINVAL


@needs_bpf
def test_prog_array_holds_programs_and_reads_back_ids():
    with KernelMap.create(MapType.PROG_ARRAY, 4, 4, 2) as pa, \
            KernelProgram.load(ProgType.XDP, asm("mov %r0, 2\nexit")) as prog:
        pa.update(u32(0), u32(prog.fd))
        assert pa.lookup(u32(0)) == u32(prog.info().id)
        assert pa.lookup(u32(1)) is None
        pa.delete(u32(0))


@needs_bpf
def test_btf_load_and_a_map_typed_by_it():
    int_type = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)  # "int": signed, 32 bits
    strings = b"\0int\0"
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(int_type), len(int_type),
                       len(strings)) + int_type + strings
    with KernelBtf.load(blob) as btf, \
            KernelMap.create(MapType.ARRAY, 4, 4, 1, btf_fd=btf.fd, btf_key_type_id=1,
                             btf_value_type_id=1) as m:
        m.update(u32(0), u32(5))
        assert m.lookup(u32(0)) == u32(5)
    with pytest.raises(KernelError) as exc:
        KernelBtf.load(blob[:-1] + b"x").close()  # strings must end with NUL
    assert exc.value.errno == errno.EINVAL and exc.value.log


# -- programs ------------------------------------------------------------------------

INC_CTX = """
ldxw %r0, [%r1]
add %r0, 1
stxw [%r1], %r0
exit
"""


@needs_bpf
def test_syscall_program_reads_and_writes_ctx():
    with KernelProgram.load(ProgType.SYSCALL, asm(INC_CTX), name="inc") as prog:
        assert "processed" in prog.log
        res = prog.test_run(ctx_in=u32(41) + b"tail")
        assert res.retval == 42
        assert res.ctx_out == u32(42) + b"tail"  # written back into ctx_in by the kernel
        info = prog.info()
        assert (info.name, info.prog_type, info.xlated_prog_len) == ("inc", ProgType.SYSCALL, 32)
        assert len(info.tag) == 16 and info.id > 0
    assert prog.closed


@needs_bpf
def test_program_writes_an_array_map():
    code = asm("""
        stw [%r10-4], 0
        ldxw %r6, [%r1]
        mov %r2, %r10
        add %r2, -4
        lddw %r1, 0
        call 1
        jeq %r0, 0, miss
        stxw [%r0], %r6
        mov %r0, 1
        exit
    miss:
        mov %r0, 0
        exit
    """)
    with KernelMap.create(MapType.ARRAY, 4, 4, 1, name="out") as m:
        patched = patch_map_fds(code, [(lddw_slots(code)[0], m.fd)])
        with KernelProgram.load(ProgType.SYSCALL, patched) as prog:
            assert prog.info().nr_map_ids == 1
            assert prog.test_run(ctx_in=u32(0xC0FFEE)).retval == 1
        assert m.lookup(u32(0)) == u32(0xC0FFEE)


@needs_bpf
def test_program_writes_a_map_value_directly():
    code = asm("lddw %r1, 0\nstw [%r1], 7\nmov %r0, 0\nexit")
    with KernelMap.create(MapType.ARRAY, 4, 8, 1) as m:  # direct value access: 1 entry
        with KernelProgram.load(ProgType.SYSCALL, patch_map_values(code, [(0, m.fd, 4)])) as p:
            p.test_run(ctx_in=bytes(8))
        assert m.lookup(u32(0)) == bytes(4) + u32(7)


@needs_bpf
def test_rejected_program_carries_the_verifier_log():
    with pytest.raises(KernelError) as exc:
        KernelProgram.load(ProgType.XDP, asm("mov %r0, %r5\nexit"))
    err = exc.value
    assert err.errno == errno.EACCES and "R5 !read_ok" in err.log
    assert "R5 !read_ok" in str(err)
    with pytest.raises(KernelError) as exc:  # no log asked: loaded again to get one
        KernelProgram.load(ProgType.XDP, asm("mov %r0, %r5\nexit"), log_level=0)
    assert "R5 !read_ok" in exc.value.log


@needs_bpf
def test_verifier_log_buffer_grows(monkeypatch):
    monkeypatch.setattr(backend, "LOG_START_SIZE", 256)
    code = asm("mov %r0, 0\n" + "add %r0, 1\n" * 60 + "exit")
    with KernelProgram.load(ProgType.XDP, code, log_level=2) as prog:
        assert len(prog.log) > 256 and "processed 62 insns" in prog.log


@needs_bpf
def test_xlated_and_jited_images():
    with KernelProgram.load(ProgType.SYSCALL, asm(INC_CTX)) as prog:
        xlated = prog.xlated()
        assert len(xlated) == prog.info().xlated_prog_len and len(xlated) % 8 == 0
        from xsim.isa.insn import decode
        assert len(decode(xlated)) == len(xlated) // 8
        jit = Path("/proc/sys/net/core/bpf_jit_enable")
        if not jit.exists() or jit.read_text().strip() == "0":
            pytest.skip("the BPF JIT is off here (net.core.bpf_jit_enable=0)")
        image = prog.jited()
        assert image and len(image) == prog.info().jited_prog_len


@needs_bpf
def test_xdp_test_run_passes_the_packet_through():
    packet = bytes(range(60))
    with KernelProgram.load(ProgType.XDP, asm("mov %r0, 2\nexit"), name="pass") as prog:
        res = prog.test_run(data_in=packet, repeat=10)
        assert res.retval == XDP_PASS and res.data_out == packet and res.duration_ns >= 0
        with pytest.raises(KernelError) as exc:  # an explicit size is the caller's
            prog.test_run(data_in=packet, data_size_out=10)
        assert exc.value.errno == errno.ENOSPC and "data_size_out >= 60" in str(exc.value)


@needs_bpf
def test_test_run_regrows_a_default_output_buffer(monkeypatch):
    monkeypatch.setattr(backend, "DATA_OUT_HEADROOM", 0)
    grow = asm("mov %r2, -16\ncall 44\nmov %r0, 2\nexit")  # bpf_xdp_adjust_head(ctx, -16)
    with KernelProgram.load(ProgType.XDP, grow) as prog:
        res = prog.test_run(data_in=bytes(range(60)))
        assert res.retval == XDP_PASS and len(res.data_out) == 76
        assert res.data_out[16:] == bytes(range(60))


@needs_bpf
def test_closed_objects_refuse_use():
    m = KernelMap.create(MapType.ARRAY, 4, 4, 1)
    m.close()
    m.close()
    with pytest.raises(KernelUsageError):
        m.lookup(u32(0))


@needs_bpf
def test_raw_syscall_error_names_the_command():
    attr = syscall.MapElemAttr(map_fd=0xFFFF)  # not an fd
    with pytest.raises(KernelError) as exc:
        syscall.bpf(syscall.Cmd.MAP_LOOKUP_ELEM, attr)
    assert exc.value.errno == errno.EBADF and "MAP_LOOKUP_ELEM" in str(exc.value)
    assert ctypes.sizeof(syscall.TestRunAttr) == 80
