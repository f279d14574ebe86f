"""The kernel's general-purpose helpers (xsim.runtime.kernel_helpers), run from real programs.

Expected values come from the kernel's sources and selftests (test_snprintf.c,
test_csum_diff.c) where those pin them down.
"""
from __future__ import annotations

import random
import struct

import pytest

from xsim import HelperError, HelperRegistry, MemoryAccessError, Program, RunResult, assemble
from xsim.runtime.env import ProcessContext, RunEnv
from xsim.runtime.helper_table import BY_NAME
from xsim.runtime.kernel_helpers import DEFAULT_HZ, csum_partial, register_kernel_helpers

M = (1 << 64) - 1
EFAULT, EINVAL, ENOSPC, ERANGE = (-14) & M, (-22) & M, (-28) & M, (-34) & M


def ID(name: str) -> int:
    return BY_NAME[name].id


def run(text: str, memory: bytes = b"", env: RunEnv | None = None) -> tuple[RunResult, RunEnv]:
    registry = HelperRegistry()
    register_kernel_helpers(registry)
    env = env if env is not None else RunEnv()
    prog = Program.from_bytes(assemble(text, syntax="ubpf"), helpers=registry, env=env)
    return prog.run(memory=memory), env


def ok(text: str, memory: bytes = b"", env: RunEnv | None = None) -> tuple[RunResult, RunEnv]:
    res, env = run(text, memory, env)
    assert res.error is None, res.error
    return res, env


def u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *(v & M for v in values))


# -- trace_printk --------------------------------------------------------------------------

def printk(fmt: bytes, *args: int, extra: bytes = b"") -> tuple[int, list[str]]:
    """trace_printk(fmt, len(fmt)+1, args...) with fmt at the start of memory; an
    argument of None-like form ('@N') is a pointer to offset N of ``extra``."""
    body = fmt + b"\0"
    base = (len(body) + 7) & ~7
    memory = body.ljust(base, b"\0") + extra
    lines = ["mov %r6, %r1", f"mov %r2, {len(body)}"]
    for reg, a in zip((3, 4, 5), args):
        if isinstance(a, str):                      # '@N': a pointer into extra
            lines += [f"mov %r{reg}, %r6", f"add %r{reg}, {base + int(a[1:])}"]
        else:
            lines.append(f"lddw %r{reg}, {a & M:#x}")
    lines += [f"call {ID('trace_printk')}", "exit"]
    res, env = ok("\n".join(lines), memory)
    return res.r0, env.printk


@pytest.mark.parametrize("fmt, args, text", [
    (b"%d", (-5,), "-5"),
    (b"%i|%d", (7, 0xFFFFFFFF), "7|-1"),
    (b"%u", (-1,), "4294967295"),
    (b"%x", (0xDEADBEEFCAFE,), "beefcafe"),
    (b"%llx %lX", (0xDEADBEEFCAFE, 0xAB), "deadbeefcafe AB"),
    (b"%lld %lu", (-5, -1), f"-5 {M}"),
    (b"%08x|%-5d|%5d", (0xAB, 42, -3), "000000ab|42   |   -3"),
    (b"%05d|%-05d|%5u", (-42, 7, 9), "-0042|7    |    9"),
    (b"%+d % d %+u", (5, 5, 5), "+5  5 5"),
    (b"100%% %c%c", (0x68, 0x69), "100% hi"),
    (b"%px %p", (0x1234, 0), "0000000000001234 0000000000000000"),
    (b"%pK %20px|", (0, 0xABC), "0" * 16 + " " + " " * 17 + "abc|"),
    (b"%ps %pS", (0xFFFF1234, 0x10), "0xffff1234 0x10"),
    (b"caf\xc3\xa9 %d", (1,), "caf\u00e9 1"),
    (b"no args", (), "no args"),
    (b"", (), ""),
])
def test_printk_formats(fmt: bytes, args: tuple[int, ...], text: str) -> None:
    r0, lines = printk(fmt, *args)
    assert lines == [text]
    assert r0 == len(text.encode())


def test_printk_strings_and_addresses_from_memory() -> None:
    extra = b"xsim\0\0\0\0" + bytes([192, 168, 0, 1]) + bytes(4) \
        + bytes.fromhex("20010db8000000000000000000000001")
    r0, lines = printk(b"name=%s! [%5s] [%-6s]", "@0", "@0", "@0", extra=extra)
    assert lines == ["name=xsim! [ xsim] [xsim  ]"] and r0 == len(lines[0])
    _, lines = printk(b"%pI4 %pi4", "@8", "@8", extra=extra)
    assert lines == ["192.168.0.1 192.168.000.001"]
    _, lines = printk(b"%pI6 %pi6", "@16", "@16", extra=extra)
    assert lines == ["2001:0db8:0000:0000:0000:0000:0000:0001 20010db8000000000000000000000001"]
    _, lines = printk(b"%pks|%pus|%pI4abc", "@0", "@0", "@8", extra=extra)
    assert lines == ["xsim|xsim|192.168.0.1"]     # letters after %pI4 are swallowed, as in vsprintf


def test_printk_unreadable_pointers_print_empty_and_zeros() -> None:
    r0, lines = printk(b"[%s] %pI4", 0, 0)
    assert lines == ["[] 0.0.0.0"] and r0 == 10


def test_printk_drops_one_trailing_newline_but_counts_it() -> None:
    r0, lines = printk(b"hi %d\n", 3)
    assert lines == ["hi 3"] and r0 == 5


@pytest.mark.parametrize("fmt", [
    b"%a", b"%d %d %d %d", b"%.2d", b"%", b"%lc", b"%llc", b"%#x", b"%hd", b"%zu",
    b"%sx", b"%pa", b"%pi5", b"%p%", b"%s%", b"%pksx", b"\x01", b"%\xc3\xa9", b"%-%",
])
def test_printk_refusals_return_einval_and_print_nothing(fmt: bytes) -> None:
    r0, lines = printk(fmt, 1, 2, 3)
    assert (r0, lines) == (EINVAL, [])


def test_printk_needs_a_nul_within_fmt_size() -> None:
    res, env = ok(f"mov %r2, 4\ncall {ID('trace_printk')}\nexit", b"abcdefgh")
    assert (res.r0, env.printk) == (EINVAL, [])


def test_printk_format_on_the_stack() -> None:
    fmt = b"v=%d\0\0\0\0"
    text = f"""
    lddw %r1, {int.from_bytes(fmt, 'little'):#x}
    stxdw [%r10-8], %r1
    mov %r1, %r10
    add %r1, -8
    mov %r2, 5
    mov %r3, -7
    call {ID('trace_printk')}
    exit
    """
    res, env = ok(text)
    assert env.printk == ["v=-7"] and res.r0 == 4


def test_printk_output_is_cut_at_1023_bytes_and_counts_all() -> None:
    r0, lines = printk(b"%01100d", 1)
    assert r0 == 1100 and lines == ["0" * 1023]


def test_trace_vprintk_takes_an_array_of_up_to_12() -> None:
    fmt = b"%d %d %d %d %s\0"
    memory = fmt.ljust(16, b"\0") + u64s(1, 2, 3, -4, 0) + b"four\0"
    s_at = 16 + 40
    text = f"""
    mov %r6, %r1
    mov %r7, %r1
    add %r7, {s_at}
    stxdw [%r6+48], %r7
    mov %r2, {len(fmt)}
    mov %r3, %r6
    add %r3, 16
    mov %r4, 40
    call {ID('trace_vprintk')}
    exit
    """
    res, env = ok(text, memory)
    assert env.printk == ["1 2 3 -4 four"] and res.r0 == 13
    res, env = ok(text.replace("mov %r4, 40", "mov %r4, 36"), memory)
    assert (res.r0, env.printk) == (EINVAL, [])


# -- snprintf ------------------------------------------------------------------------------

def snprintf(fmt: bytes, args: list[int | bytes], size: int, out: int = 64
             ) -> tuple[int, bytes]:
    """snprintf(mem[0:out], size, fmt, data, 8*len(args)); bytes args become pointers."""
    strings = b""
    fmt_at = out
    args_at = (fmt_at + len(fmt) + 1 + 7) & ~7
    str_at = args_at + 8 * len(args)
    offsets = []
    for a in args:
        if isinstance(a, bytes):
            offsets.append(str_at + len(strings))
            strings += a + b"\0"
    memory = bytearray(b"\xee" * out) + fmt + b"\0"
    memory = memory.ljust(args_at, b"\0") + bytes(8 * len(args)) + strings
    fix = []
    it = iter(offsets)
    for k, a in enumerate(args):
        if isinstance(a, bytes):
            fix += ["mov %r7, %r6", f"add %r7, {next(it)}", f"stxdw [%r6+{args_at + 8 * k}], %r7"]
        else:
            memory[args_at + 8 * k:args_at + 8 * k + 8] = u64s(a)
    text = "\n".join(["mov %r6, %r1", *fix, f"mov %r2, {size}", "mov %r3, %r6",
                      f"add %r3, {fmt_at}", "mov %r4, %r6", f"add %r4, {args_at}",
                      f"mov %r5, {8 * len(args)}", f"call {ID('snprintf')}", "exit"])
    res, _ = ok(text, bytes(memory))
    assert res.memory is not None
    return res.r0, res.memory[:out]


def test_snprintf_kernel_selftest_cases() -> None:
    r0, out = snprintf(b"%d %u %x %li %llu %lX", [-8, 9, 150, -424242, 1337, 0xDABBAD00], 64)
    want = b"-8 9 96 -424242 1337 DABBAD00"
    assert out.startswith(want + b"\0") and r0 == len(want) + 1
    r0, out = snprintf(b"%s % 9c %+2c %-3c %04c %0c %+05s",
                       [b"str1", 0x61, 0x62, 0x63, 0x64, 0x65, b"longstr"], 64)
    want = b"str1         a  b c      d e longstr"
    assert out.startswith(want + b"\0") and r0 == len(want) + 1
    r0, out = snprintf(b"%pi4 %pI6", [bytes([127, 0, 0, 1]), bytes(15) + b"\1"], 64)
    want = b"127.000.000.001 0000:0000:0000:0000:0000:0000:0000:0001"
    assert out.startswith(want + b"\0") and r0 == len(want) + 1
    r0, out = snprintf(b"%pK %px", [0, 0xFFFF00000ADD4E55], 64)
    assert out.startswith(b"0000000000000000 ffff00000add4e55\0")


def test_snprintf_truncates_and_returns_the_needed_length() -> None:
    r0, out = snprintf(b"%%overflow", [], 6)
    assert out[:6] == b"%over\0" and out[6:] == b"\xee" * 58 and r0 == 10
    r0, out = snprintf(b"%5d %0900000X", [4, 4], 10)
    assert out[:10] == b"    4 000\0" and r0 == 900007
    r0, out = snprintf(b"simple case", [], 64)
    assert out.startswith(b"simple case\0") and r0 == 12


def test_snprintf_size_zero_writes_nothing() -> None:
    fmt = b"only interested in length %d\0"
    memory = fmt.ljust(32, b"\0") + u64s(60)
    text = f"""
    mov %r3, %r1
    mov %r4, %r1
    add %r4, 32
    mov %r1, 0
    mov %r2, 0
    mov %r5, 8
    call {ID('snprintf')}
    exit
    """
    res, _ = ok(text, memory)
    assert res.r0 == 29 and res.memory == memory


@pytest.mark.parametrize("fmt, args", [
    (b"%d %d", [1]),               # more conversions than arguments
    (b"%q", [1]),
    (b"%d", []),
])
def test_snprintf_refusals_leave_the_buffer(fmt: bytes, args: list[int]) -> None:
    r0, out = snprintf(fmt, args, 64)
    assert r0 == EINVAL and out == b"\xee" * 64


def test_snprintf_data_len_rules() -> None:
    memory = b"%d\0".ljust(8, b"\0") + u64s(*range(13))
    base = f"""
    mov %r3, %r1
    mov %r4, %r1
    add %r4, 8
    mov %r2, 0
    mov %r1, 0
    mov %r5, LEN
    call {ID('snprintf')}
    exit
    """
    for length, want in ((8, 2), (12, EINVAL), (96, 2), (104, EINVAL)):
        res, _ = ok(base.replace("LEN", str(length)), memory)
        assert res.r0 == want, length


def test_snprintf_argument_buffer_runs_out() -> None:
    """bpf_bprintf_prepare keeps %s strings in a 512-byte buffer: the first takes it all."""
    long = b"a" * 600
    r0, out = snprintf(b"%s%s", [long, b"b"], 64)
    assert r0 == ENOSPC and out == b"\xee" * 64
    r0, out = snprintf(b"%s|", [long], 600, out=600)
    assert r0 == 511 + 2 and out[:513] == b"a" * 511 + b"|\0"


# -- clocks, random, CPU -------------------------------------------------------------------

CLOCKS = f"""
mov %r6, %r1
call {ID('ktime_get_ns')}
stxdw [%r6+0], %r0
call {ID('ktime_get_ns')}
stxdw [%r6+8], %r0
call {ID('ktime_get_boot_ns')}
stxdw [%r6+16], %r0
call {ID('ktime_get_coarse_ns')}
stxdw [%r6+24], %r0
call {ID('jiffies64')}
stxdw [%r6+32], %r0
call {ID('ktime_get_tai_ns')}
stxdw [%r6+40], %r0
mov %r0, 0
exit
"""


def clocks(env: RunEnv) -> tuple[int, ...]:
    res, _ = ok(CLOCKS, bytes(48), env)
    assert res.memory is not None
    return struct.unpack("<6Q", res.memory)


def test_clocks_follow_the_virtual_clock() -> None:
    t0 = 5_001_234_567
    mono, mono2, boot, coarse, jiffies, tai = clocks(RunEnv(clock_ns=t0, clock_step_ns=1000))
    assert (mono, mono2, boot) == (t0, t0 + 1000, t0 + 2000)
    tick = 1_000_000_000 // DEFAULT_HZ
    assert coarse == (t0 + 3000) // tick * tick
    assert jiffies == (2**32 - 300 * DEFAULT_HZ) + (t0 + 4000) * DEFAULT_HZ // 1_000_000_000
    assert tai == t0 + 5000


def test_clocks_are_deterministic_and_hz_comes_from_kconfig() -> None:
    assert clocks(RunEnv(clock_step_ns=7)) == clocks(RunEnv(clock_step_ns=7))
    frozen = clocks(RunEnv())
    assert frozen[0] == frozen[1] == 1_000_000_000
    jiffies = clocks(RunEnv(kconfig={"CONFIG_HZ": 1000}))[4]
    assert jiffies == (2**32 - 300_000) + 1000


def test_prandom_is_seeded() -> None:
    text = "mov %r6, %r1\n" + "".join(
        f"call {ID('get_prandom_u32')}\nstxdw [%r6+{8 * k}], %r0\n" for k in range(3)) \
        + "mov %r0, 0\nexit"

    def draws(seed: int) -> tuple[int, ...]:
        res, _ = ok(text, bytes(24), RunEnv(seed=seed))
        assert res.memory is not None
        return struct.unpack("<3Q", res.memory)

    ref = random.Random(42)
    assert draws(42) == draws(42) == tuple(ref.getrandbits(32) for _ in range(3))
    assert draws(43) != draws(42)
    assert all(v < 2**32 for v in draws(7))


def test_cpu_and_numa_node() -> None:
    res, _ = ok(f"call {ID('get_smp_processor_id')}\nexit", env=RunEnv(ncpus=4, cpu=2))
    assert res.r0 == 2
    res, _ = ok(f"call {ID('get_numa_node_id')}\nexit")
    assert res.r0 == 0


# -- current task ----------------------------------------------------------------------------

def test_pid_tgid_uid_gid() -> None:
    env = RunEnv(process=ProcessContext(pid=4321, tgid=1234, uid=1000, gid=100))
    res, _ = ok(f"call {ID('get_current_pid_tgid')}\nexit", env=env)
    assert res.r0 == (1234 << 32) | 4321
    res, _ = ok(f"call {ID('get_current_uid_gid')}\nexit", env=env)
    assert res.r0 == (100 << 32) | 1000


def comm(size: int, name: str) -> tuple[RunResult, bytes]:
    env = RunEnv(process=ProcessContext(comm=name))
    res, _ = run(f"mov %r2, {size}\ncall {ID('get_current_comm')}\nexit", b"\xaa" * 20, env)
    return res, (res.memory or b"")


def test_get_current_comm_pads_and_truncates() -> None:
    res, mem = comm(16, "nginx")
    assert res.r0 == 0 and mem == b"nginx" + bytes(11) + b"\xaa" * 4
    res, mem = comm(20, "a-very-long-process-name")      # comm holds at most 15 bytes
    assert mem == b"a-very-long-pro" + bytes(5)
    res, mem = comm(4, "nginx")
    assert mem == b"ngi\0" + b"\xaa" * 16


def test_get_current_comm_zero_size_is_refused_like_the_verifier() -> None:
    res, _ = comm(0, "nginx")
    assert isinstance(res.error, HelperError)
    assert res.error.helper_id == ID("get_current_comm")


# -- strtol / strtoul ------------------------------------------------------------------------

def strtox(name: str, text: bytes, flags: int, buf_len: int | None = None) -> tuple[int, int]:
    memory = u64s(0x5A5A5A5A5A5A5A5A) + text
    prog = f"""
    mov %r4, %r1
    add %r1, 8
    mov %r2, {len(text) if buf_len is None else buf_len}
    mov %r3, {flags}
    call {ID(name)}
    exit
    """
    res, _ = ok(prog, memory)
    assert res.memory is not None
    return res.r0, struct.unpack("<Q", res.memory[:8])[0]


UNTOUCHED = 0x5A5A5A5A5A5A5A5A


@pytest.mark.parametrize("name, text, flags, ret, value", [
    ("strtol", b"  -123abc", 10, 6, -123),
    ("strtol", b"\t42", 0, 3, 42),
    ("strtol", b"0x1f", 0, 4, 31),
    ("strtol", b"0X1F", 16, 4, 31),
    ("strtol", b"1f", 16, 2, 31),
    ("strtol", b"0755", 0, 4, 0o755),
    ("strtol", b"0x", 0, 1, 0),          # base 0: "0x" without a hex digit is octal 0
    ("strtol", b"0789", 0, 2, 7),
    ("strtol", b"-0", 10, 2, 0),
    ("strtol", b"9223372036854775807", 10, 19, 2**63 - 1),
    ("strtol", b"-9223372036854775808", 10, 20, -2**63),
    ("strtoul", b"18446744073709551615", 10, 20, M),
    ("strtoul", b"ffffffffffffffff", 16, 16, M),
    ("strtoul", b"12345", 10, 5, 12345),
])
def test_strtox_values(name: str, text: bytes, flags: int, ret: int, value: int) -> None:
    assert strtox(name, text, flags) == (ret, value & M)


@pytest.mark.parametrize("name, text, flags, ret", [
    ("strtol", b"9223372036854775808", 10, ERANGE),
    ("strtol", b"-9223372036854775809", 10, ERANGE),
    ("strtoul", b"18446744073709551616", 10, ERANGE),
    ("strtoul", b"-99999999999999999999", 10, ERANGE),
    ("strtoul", b"-1", 10, EINVAL),
    ("strtol", b"abc", 10, EINVAL),
    ("strtol", b"   ", 10, EINVAL),
    ("strtol", b"-", 10, EINVAL),
    ("strtol", b"+5", 10, EINVAL),
    ("strtol", b"0x", 16, EINVAL),
    ("strtol", b"12", 2, EINVAL),          # only bases 0, 8, 10 and 16
    ("strtol", b"12", 0x20 | 10, EINVAL),  # flags beyond the base bits
])
def test_strtox_errors_leave_res(name: str, text: bytes, flags: int, ret: int) -> None:
    assert strtox(name, text, flags) == (ret, UNTOUCHED)


def test_strtox_stops_at_buf_len_and_63_chars() -> None:
    assert strtox("strtol", b"12345", 10, buf_len=3) == (3, 123)
    # the kernel parses a 64-byte copy: 63 characters after the spaces and sign
    assert strtox("strtoul", b" " + b"0" * 62 + b"12", 10) == (64, 1)
    assert strtox("strtoul", b"0" * 70 + b"7", 10) == (63, 0)


# -- csum_diff -------------------------------------------------------------------------------

def csum_diff(frm: bytes, from_size: int, to: bytes, to_size: int, seed: int,
              env: RunEnv | None = None) -> int:
    memory = frm.ljust(512, b"\0") + to.ljust(512, b"\0")
    prog = f"""
    mov %r3, %r1
    add %r3, 512
    mov %r2, {from_size}
    mov %r4, {to_size}
    lddw %r5, {seed:#x}
    call {ID('csum_diff')}
    exit
    """
    res, _ = ok(prog, memory, env)
    return res.r0


DEAD = u64s(0xDEADBEEFDEADBEEF)
DEAD2 = u64s(0xDEADBEEFDEADBEEF, 0xBEEFDEADBEEFDEAD)
ABAB = u64s(0xABABABABABABABAB)


@pytest.mark.parametrize("frm, from_size, to, to_size, seed, result", [
    (b"", 0, DEAD, 8, 0, 0x3B3B),               # the kernel's test_csum_diff.c vectors
    (b"", 0, DEAD2, 16, 0x1234, 0x88AA),
    (b"", 0, DEAD2, 15, 0x1234, 0xCAA9),
    (DEAD, 8, b"", 0, 0, 0xC4C4),
    (DEAD2, 16, b"", 0, 0x1234, 0x9BBD),
    (DEAD2, 15, b"", 0, 0x1234, 0x59BE),
    (DEAD, 8, ABAB, 8, 0, 0x7373),
    (DEAD, 7, ABAB, 7, 0, 0xA673),
    (bytes(8), 8, ABAB, 8, 0, 0xAEAE),
    (DEAD, 8, bytes(8), 8, 0xFFFF, 0xC4C4),
    (b"", 0, b"", 0, 0, 0),
    (b"", 0, b"", 0, 0x1234, 0x1234),
    (bytes(512), 512, b"", 0, 0xFFFF, 0xFFFF),
])
def test_csum_diff_kernel_vectors(frm: bytes, from_size: int, to: bytes, to_size: int,
                                  seed: int, result: int) -> None:
    assert csum_diff(frm, from_size, to, to_size, seed) == result


def test_csum_diff_before_6_13_is_the_scratchpad_form() -> None:
    old = RunEnv(kconfig={"LINUX_KERNEL_VERSION": (6 << 16) | (1 << 8)})
    assert csum_diff(b"", 0, DEAD, 8, 0, old) == 0x3B3B
    assert csum_diff(bytes(4), 4, bytes([1, 2, 3, 4]), 4, 0, old) == 0x0604
    assert csum_diff(b"", 0, DEAD, 8, 0xFFFF0000, old) == 0xFFFF3B3B
    assert csum_diff(b"", 0, DEAD2, 15, 0, old) == EINVAL
    assert csum_diff(bytes(512), 512, bytes(4), 4, 0, old) == EINVAL


def test_csum_partial_rfc1071_example() -> None:
    # RFC 1071 4.1: the big-endian sum of 00 01 f2 03 f4 f5 f6 f7 is 0xddf2; a
    # little-endian machine gets the same sum byte-swapped.
    assert csum_partial(bytes.fromhex("0001f203f4f5f6f7"), 0) == 0xF2DD
    assert csum_partial(b"", 0xFFFFFFFF) == 0xFFFFFFFF
    assert csum_partial(b"\xff\xff", 1) == 0x10000


# -- probe_read ------------------------------------------------------------------------------

def probe(name: str, size: int, src: str, memory: bytes) -> tuple[RunResult, bytes]:
    """probe_*(mem+64, size, src): src is 'memory+N' or a literal address."""
    if src.startswith("memory+"):
        load = f"mov %r3, %r1\nadd %r3, {int(src[7:])}"
    else:
        load = f"lddw %r3, {src}"
    text = f"""
    {load}
    add %r1, 64
    mov %r2, {size}
    call {ID(name)}
    exit
    """
    res, _ = ok(text, memory)
    assert res.memory is not None
    return res, res.memory[64:]


SRC = b"hello\0world!1234".ljust(64, b"\0")


ERANGE = (1 << 64) - 34


@pytest.mark.parametrize("name", ["probe_read", "probe_read_kernel"])
def test_probe_read_copies_and_faults(name: str) -> None:
    res, dst = probe(name, 12, "memory+0", SRC + b"\xaa" * 16)
    assert res.r0 == 0 and dst == b"hello\0world!" + b"\xaa" * 4
    res, dst = probe(name, 12, "0", SRC + b"\xaa" * 16)          # a user address (x86-64)
    assert res.r0 == ERANGE and dst == bytes(12) + b"\xaa" * 4
    res, dst = probe(name, 12, "0xffff800000000000", SRC + b"\xaa" * 16)   # unmapped kernel
    assert res.r0 == EFAULT and dst == bytes(12) + b"\xaa" * 4
    res, dst = probe(name, 12, "memory+70", SRC + b"\xaa" * 16)   # runs past the region
    assert res.r0 == EFAULT and dst == bytes(12) + b"\xaa" * 4
    res, dst = probe(name, 0, "0", SRC + b"\xaa" * 16)
    assert res.r0 == 0 and dst == b"\xaa" * 16


def test_probe_read_user_refuses_kernel_memory() -> None:
    """Every region is kernel memory, so a user probe read of one fails, as access_ok does."""
    for name, size in (("probe_read_user", 12), ("probe_read_user_str", 8)):
        res, dst = probe(name, size, "memory+0", SRC + b"\xaa" * 16)
        assert res.r0 == EFAULT and dst == bytes(size) + b"\xaa" * (16 - size)


@pytest.mark.parametrize("name", ["probe_read_str", "probe_read_kernel_str"])
def test_probe_read_str(name: str) -> None:
    mem = SRC + b"\xaa" * 16
    res, dst = probe(name, 16, "memory+0", mem)
    assert res.r0 == 6 and dst == b"hello\0" + b"\xaa" * 10
    res, dst = probe(name, 3, "memory+0", mem)
    assert res.r0 == 3 and dst == b"he\0" + b"\xaa" * 13
    res, dst = probe(name, 8, "memory+5", mem)
    assert res.r0 == 1 and dst == b"\0" + b"\xaa" * 15
    res, dst = probe(name, 8, "0xdead0000", mem)
    assert res.r0 == ERANGE and dst == bytes(8) + b"\xaa" * 8
    tail = b"\0" * 64 + b"\xaa" * 12 + b"abcd"           # "abcd" runs off the end unterminated
    res, dst = probe(name, 8, "memory+76", tail)
    assert res.r0 == EFAULT and dst == bytes(8) + b"\xaa" * 4 + b"abcd"


def test_probe_read_into_a_bad_destination_is_a_memory_error() -> None:
    text = f"mov %r3, %r1\nmov %r1, 0\nmov %r2, 4\ncall {ID('probe_read_kernel')}\nexit"
    res, _ = run(text, bytes(8))
    assert isinstance(res.error, MemoryAccessError) and res.error.address == 0


# -- strncmp and the registry ------------------------------------------------------------------

@pytest.mark.parametrize("a, n, b, want", [
    (b"abc\0", 4, b"abc\0", 0), (b"abd\0", 4, b"abc\0", 1), (b"abb\0", 4, b"abc\0", M),
    (b"abX\0", 2, b"abc\0", 0), (b"ab\0\0", 4, b"ab\0", 0),
])
def test_strncmp(a: bytes, n: int, b: bytes, want: int) -> None:
    text = f"mov %r3, %r1\nadd %r3, 8\nmov %r2, {n}\ncall {ID('strncmp')}\nexit"
    res, _ = ok(text, a.ljust(8, b"\0") + b)
    assert res.r0 == want


def test_every_helper_is_registered_under_its_kernel_id() -> None:
    registry = HelperRegistry()
    register_kernel_helpers(registry)
    names = {h.name for h in registry.helpers.values()}
    assert {"ktime_get_ns", "trace_printk", "snprintf", "probe_read_kernel_str", "strtoul",
            "csum_diff", "jiffies64", "get_current_comm"} <= names
    assert all(h.id == BY_NAME[h.name].id for h in registry.helpers.values())
    assert not names & {"map_lookup_elem", "ringbuf_output", "tail_call", "loop"}
