"""The kernel's general-purpose BPF helpers, written in Python with the kernel's semantics.

``register_kernel_helpers(registry)`` adds them to a :class:`HelperRegistry` by
their kernel names.  What each returns, refuses and writes follows the kernel
(v6.18: ``kernel/bpf/helpers.c``, ``kernel/trace/bpf_trace.c``,
``net/core/filter.c``, ``lib/vsprintf.c``); errors come back as the kernel's
negative errno in 64-bit two's complement (-22 is ``2**64 - 22``).

Where the kernel has no counterpart of a fact, xsim models it and says how:

* Clocks read the virtual clock ``RunEnv.now_ns()`` (one read per call, so
  ``clock_step_ns`` advances it): ``ktime_get_ns``, ``ktime_get_boot_ns``
  (nothing is ever suspended) and ``ktime_get_tai_ns`` (there is no wall clock)
  all return it; ``ktime_get_coarse_ns`` rounds it down to the last tick;
  ``jiffies64`` is ``INITIAL_JIFFIES + now * HZ / 1e9``, as if the virtual clock
  counted from boot.  HZ is ``RunEnv.kconfig["CONFIG_HZ"]``, 250 by default
  (the common distribution setting, and this project's build machine's).
* Memory: every region of the address space counts as readable kernel memory,
  and there is no user memory: ``probe_read_user*`` fails with -EFAULT, and
  ``probe_read_kernel*`` of an address in no region fails with -ERANGE below
  x86-64's user-space limit and -EFAULT above it, as the kernel here answers.
* ``%p`` and ``%pK`` print the raw value like ``%px``: the kernel prints a
  per-boot hash (``%pK`` depends on kptr_restrict), which no model can match;
  NULL prints ``0000000000000000`` in both.  ``%ps``/``%pS``/``%pB`` print
  ``0x<hex>``: the kernel's answer for an address that is no kernel symbol.
* ``trace_printk``/``trace_vprintk`` append the formatted text to
  ``RunEnv.printk`` without one trailing newline.  The kernel's trace_pipe line
  adds a prefix (``comm-pid [cpu] flags timestamp: bpf_trace_printk: ``) that
  is not part of the entry.
* Arguments the kernel's verifier refuses at load time (a zero size where the
  helper takes ``ARG_CONST_SIZE``) stop the run with a HelperError, since the
  kernel would never have run the program.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from ..errors import HelperError, MemoryAccessError
from .env import RunEnv
from .helper_table import BY_NAME
from .helpers import U64_MASK, HelperCall, HelperRegistry

EFAULT, EINVAL, ENOSPC, ERANGE = 14, 22, 28, 34

DEFAULT_HZ = 250
NSEC_PER_SEC = 1_000_000_000
TASK_COMM_LEN = 16
MAX_BPRINTF_BUF = 1024           # trace_printk's output buffer, NUL included
MAX_BPRINTF_BIN_ARGS = 512       # bpf_bprintf_prepare's argument buffer
MAX_TRACE_PRINTK_VARARGS = 3
MAX_BPRINTF_VARARGS = 12
FIELD_WIDTH_MAX = (1 << 23) - 1  # vsprintf clamps wider fields to this
BPF_STRTOX_BASE_MASK = 0x1F
#: bpf_csum_diff became csum_from32to16(csum(to) - csum(from)) in 6.13
CSUM_DIFF_FOLDED_SINCE = (6 << 16) | (13 << 8)

_U32 = 0xFFFFFFFF
_CHUNK = 64


def neg(errno: int) -> int:
    """The kernel's ``-errno`` as r0 sees it."""
    return -errno & U64_MASK


def _refuse(call: HelperCall, name: str, reason: str) -> HelperError:
    return HelperError(call.pc, BY_NAME[name].id, reason, name)


def _const_size(call: HelperCall, name: str, size: int) -> None:
    """ARG_CONST_SIZE: the verifier refuses a zero size, so the kernel never runs it."""
    if size == 0:
        raise _refuse(call, name, "size is 0: the kernel's verifier refuses a zero size "
                                  "for this argument (ARG_CONST_SIZE)")


# -- reading the program's memory the way the kernel's *_nofault copies do ----------------

def _read_str(call: HelperCall, addr: int, limit: int, strict: bool = False) -> bytes | None:
    """The bytes at ``addr`` up to and including the first NUL, or ``limit`` bytes without
    one.  A fault before either gives None, or (``strict``) raises the MemoryAccessError."""
    out = bytearray()
    while len(out) < limit:
        n = min(_CHUNK, limit - len(out))
        try:
            chunk = call.read(addr + len(out), n)
        except MemoryAccessError:
            for _ in range(n):           # near the end of a region: byte by byte
                try:
                    b = call.read(addr + len(out), 1)
                except MemoryAccessError:
                    if strict:
                        raise
                    return None
                out += b
                if b == b"\0":
                    return bytes(out)
            continue
        j = chunk.find(0)
        if j >= 0:
            return bytes(out + chunk[:j + 1])
        out += chunk
    return bytes(out)


def _zero(call: HelperCall, addr: int, size: int) -> None:
    """memset(addr, 0, size), in pieces: a wild size must not allocate gigabytes before
    the address space refuses it."""
    for k in range(0, size, 1 << 16):
        call.write(addr + k, bytes(min(1 << 16, size - k)))


def _strncpy_nofault(call: HelperCall, addr: int, count: int) -> bytes | None:
    """strncpy_from_{kernel,user}_nofault: the copy with its NUL (the last of ``count``
    bytes becomes NUL when the string is longer), or None on a fault."""
    data = _read_str(call, addr, count)
    if data is None or not data or data[-1] == 0:
        return data
    return data[:-1] + b"\0"


# -- the kernel's ctype (lib/ctype.c, Latin-1) -------------------------------------------

_SPACE = frozenset(b"\t\n\v\f\r \xa0")
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + bytes(range(0xA1, 0xC0))
                   + b"\xd7\xf7")
_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   + bytes(c for c in range(0xC0, 0x100) if c not in (0xD7, 0xF7)))


# -- bpf_bprintf_prepare + bstr_printf -----------------------------------------------------


class _Refused(Exception):
    """bpf_bprintf_prepare refused the format: the helper returns ``-errno``."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


class _Sink:
    """vsnprintf's output: keeps at most ``cap`` bytes and counts all of them (the
    return value), without building a field wider than what is kept."""

    __slots__ = ("data", "cap", "total")

    def __init__(self, cap: int) -> None:
        self.data, self.cap, self.total = bytearray(), cap, 0

    def put(self, b: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += b[:room]
        self.total += len(b)

    def pad(self, ch: bytes, n: int) -> None:
        if n > 0:
            self.data += ch * min(n, max(self.cap - len(self.data), 0))
            self.total += n

    def field(self, body: bytes, width: int, left: bool, sign: bytes = b"",
              zero: bool = False) -> None:
        """One converted field, padded to ``width`` as vsprintf pads (LEFT beats ZEROPAD)."""
        n = width - len(sign) - len(body)
        if left:
            self.put(sign + body)
            self.pad(b" ", n)
        elif zero:
            self.put(sign)
            self.pad(b"0", n)
            self.put(body)
        else:
            self.pad(b" ", n)
            self.put(sign + body)


class _ArgBuf:
    """The 512-byte buffer where bpf_bprintf_prepare stores the converted arguments:
    its space decides -ENOSPC and how much of a %s string is kept."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def scalar(self, size: int) -> None:
        self.used = (self.used + 3) & ~3
        if MAX_BPRINTF_BIN_ARGS - self.used < size:
            raise _Refused(ENOSPC)
        self.used += size

    def byte(self) -> None:
        if self.used >= MAX_BPRINTF_BIN_ARGS:
            raise _Refused(ENOSPC)
        self.used += 1

    def text(self, text: bytes) -> bytes:
        """A string snprintf'ed into the buffer (%pB, %pI4): it may be cut short."""
        room = MAX_BPRINTF_BIN_ARGS - self.used
        if room <= 0:
            raise _Refused(ENOSPC)    # the kernel would write past its buffer here
        self.used += len(text) + 1
        return text[:room - 1]

    def string(self, call: HelperCall, addr: int) -> bytes:
        """A %s / %pks / %pus string, copied as bpf_trace_copy_string copies it."""
        room = MAX_BPRINTF_BIN_ARGS - self.used
        if room <= 0:
            raise _Refused(ENOSPC)
        data = _strncpy_nofault(call, addr, room)
        if data is None:              # an unreadable string prints as ""
            data = b"\0"
        self.used += len(data)
        return data[:-1]


def _ip_text(kind: bytes, raw: bytes) -> bytes:
    """What vsprintf prints for %pI4 %pi4 %pI6 %pi6."""
    if kind[1:] == b"4":
        return b".".join((b"%03d" if kind[:1] == b"i" else b"%d") % b for b in raw)
    words = [raw[k:k + 2].hex().encode() for k in range(0, 16, 2)]
    return (b":" if kind[:1] == b"I" else b"").join(words)


def _number(out: _Sink, arg: int, size: int, conv: int, flags: bytes, width: int) -> None:
    """%d %i %u %x %X of an int (size 4) or a long (size 8), as lib/vsprintf.c number()."""
    bits = size * 8
    v = arg & ((1 << bits) - 1)
    sign = b""
    if conv in b"di":
        if v >> (bits - 1):
            v -= 1 << bits
        if v < 0:
            sign, v = b"-", -v
        elif b"+" in flags:
            sign = b"+"
        elif b" " in flags:
            sign = b" "
    body = (b"%x" if conv == 0x78 else b"%X" if conv == 0x58 else b"%d") % v
    out.field(body, max(width, 0), b"-" in flags, sign, b"0" in flags)


def _ends_word(c: int) -> bool:
    """What may follow %s / %pks: NUL, a space or a punctuation character."""
    return c == 0 or c in _SPACE or c in _PUNCT


def bprintf(call: HelperCall, fmt: bytes, args: Sequence[int], num_args: int,
            cap: int) -> _Sink:
    """Format ``fmt`` (the bytes before its NUL) as the kernel does: checked and its
    arguments captured as bpf_bprintf_prepare does, printed as bstr_printf prints.
    The output keeps ``cap`` bytes; ``total`` is its full length.  Raises _Refused."""
    out, buf = _Sink(cap), _ArgBuf()
    n = len(fmt)

    def at(k: int) -> int:
        return fmt[k] if k < n else 0

    spec = i = lit = 0
    while i < n:
        c = fmt[i]
        if c < 0x80 and not (0x20 <= c < 0x7F or c in _SPACE):
            raise _Refused(EINVAL)    # ASCII control bytes; UTF-8 text is allowed
        if c != 0x25:
            i += 1
            continue
        out.put(fmt[lit:i])
        if at(i + 1) == 0x25:
            out.put(b"%")
            i += 2
            lit = i
            continue
        if spec >= num_args:
            raise _Refused(EINVAL)    # more conversions than arguments
        i += 1
        if at(i) >= 0x80:
            raise _Refused(EINVAL)
        start = i
        while at(i) and at(i) in b"0+- ":
            i += 1
        flags = fmt[start:i]
        width = -1
        if 0x31 <= at(i) <= 0x39:
            start = i
            while 0x30 <= at(i) <= 0x39:
                i += 1
            width = min(int(fmt[start:i]), FIELD_WIDTH_MAX)
        left = b"-" in flags
        arg = args[spec] & U64_MASK
        conv = at(i)
        if conv == 0x70:                                      # %p and its extensions
            _pointer(call, out, buf, fmt, i, arg, flags, width)
            i += 1
            while at(i) and at(i) in _ALNUM:
                i += 1                  # bstr_printf skips the extension's letters
        elif conv == 0x73:                                    # %s
            if not _ends_word(at(i + 1)):
                raise _Refused(EINVAL)
            out.field(buf.string(call, arg), max(width, 0), left)
            i += 1
        elif conv == 0x63:                                    # %c
            buf.byte()
            out.field(bytes([arg & 0xFF]), max(width, 0), left)
            i += 1
        else:                                                 # [l[l]]d i u x X
            size = 4
            if at(i) == 0x6C:
                size, i = 8, i + 1
                if at(i) == 0x6C:
                    i += 1
            conv = at(i)
            if not conv or conv not in b"iduxX":
                raise _Refused(EINVAL)
            buf.scalar(size)
            _number(out, arg, size, conv, flags, width)
            i += 1
        spec += 1
        lit = i
    out.put(fmt[lit:])
    return out


def _pointer(call: HelperCall, out: _Sink, buf: _ArgBuf, fmt: bytes, i: int, arg: int,
             flags: bytes, width: int) -> None:
    """One %p conversion, ``fmt[i]`` being its ``p``: the kernel's accepted forms are
    %p %pK %px %ps %pS %pB %pks %pus %pI4 %pi4 %pI6 %pi6."""
    def at(k: int) -> int:
        return fmt[k] if k < len(fmt) else 0

    nxt, left = at(i + 1), b"-" in flags
    if _ends_word(nxt) or nxt in b"Kx":                       # the value itself
        buf.scalar(8)
        w, zero = (16, True) if width == -1 else (width, b"0" in flags)
        out.field(b"%x" % arg, w, left, zero=zero)
    elif nxt in b"ku" and at(i + 2) == 0x73:                  # %pks %pus: a string
        if not _ends_word(at(i + 3)):
            raise _Refused(EINVAL)
        out.put(buf.string(call, arg))
    elif nxt in b"sS":                                        # a symbol: none is known
        buf.scalar(8)
        out.field(b"0x%x" % arg, max(width, 0), left)
    elif nxt == 0x42:                                         # %pB
        out.put(buf.text(b"0x%x" % arg))
    elif nxt in b"iI" and at(i + 2) and at(i + 2) in b"46":   # IPv4 / IPv6 addresses
        size = 4 if at(i + 2) == 0x34 else 16
        if MAX_BPRINTF_BIN_ARGS - buf.used < size:
            raise _Refused(ENOSPC)
        try:
            raw = call.read(arg, size)
        except MemoryAccessError:
            raw = bytes(size)           # the kernel prints an unreadable address as zeros
        out.put(buf.text(_ip_text(fmt[i + 1:i + 3], raw)))
    else:
        raise _Refused(EINVAL)


def _printk(call: HelperCall, raw: bytes, args: Sequence[int], num_args: int) -> int:
    """trace_printk / trace_vprintk: format into the 1024-byte buffer, log it, return
    the full length (bstr_printf's return value)."""
    nul = raw.find(0)
    if nul < 0:
        return neg(EINVAL)
    try:
        out = bprintf(call, raw[:nul], args, num_args, MAX_BPRINTF_BUF - 1)
    except _Refused as r:
        return neg(r.errno)
    line = bytes(out.data).split(b"\0", 1)[0]     # the trace event keeps a C string
    if line.endswith(b"\n"):
        line = line[:-1]
    call.env.printk.append(line.decode("utf-8", "replace"))
    return out.total


def _varargs(call: HelperCall, data: int, data_len: int) -> list[int] | None:
    """The u64 argument array of snprintf / trace_vprintk, or None if the kernel refuses it."""
    if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not data):
        return None
    raw = call.read(data, data_len) if data_len else b""
    return list(struct.unpack(f"<{data_len // 8}Q", raw))


# -- the helpers -------------------------------------------------------------------------

def trace_printk(call: HelperCall) -> int:
    """bpf_trace_printk(fmt, fmt_size, a1, a2, a3)."""
    fmt, fmt_size = call.args[0], call.args[1] & _U32
    _const_size(call, "trace_printk", fmt_size)
    return _printk(call, call.read(fmt, fmt_size), call.args[2:5], MAX_TRACE_PRINTK_VARARGS)


def trace_vprintk(call: HelperCall) -> int:
    """bpf_trace_vprintk(fmt, fmt_size, data, data_len): up to 12 u64 arguments."""
    fmt, fmt_size, data, data_len = call.args[0], call.args[1] & _U32, call.args[2], \
        call.args[3] & _U32
    _const_size(call, "trace_vprintk", fmt_size)
    args = _varargs(call, data, data_len)
    if args is None:
        return neg(EINVAL)
    return _printk(call, call.read(fmt, fmt_size), args, len(args))


def snprintf(call: HelperCall) -> int:
    """bpf_snprintf(str, str_size, fmt, data, data_len): writes at most str_size bytes,
    NUL-terminated; returns the length the whole output needs, NUL included.  (The
    kernel's verifier checks a bad fmt at load time; here it returns -EINVAL.)"""
    dst, size, fmt, data, data_len = call.args[0], call.args[1] & _U32, call.args[2], \
        call.args[3], call.args[4] & _U32
    args = _varargs(call, data, data_len)
    if args is None:
        return neg(EINVAL)
    text = _read_str(call, fmt, 1 << 20, strict=True)
    if not text or text[-1] != 0:
        return neg(EINVAL)
    try:
        out = bprintf(call, text[:-1], args, len(args), max(size - 1, 0))
    except _Refused as r:
        return neg(r.errno)
    if size:
        call.write(dst, bytes(out.data) + b"\0")
    return out.total + 1


def _clock(call: HelperCall) -> int:
    return call.env.now_ns() & U64_MASK


def _hz(call: HelperCall) -> int:
    hz = call.env.kconfig.get("CONFIG_HZ", DEFAULT_HZ)
    return hz if isinstance(hz, int) and not isinstance(hz, bool) and hz > 0 else DEFAULT_HZ


def ktime_get_coarse_ns(call: HelperCall) -> int:
    """The monotonic clock as of the last tick."""
    t = call.env.now_ns()
    return (t - t % (NSEC_PER_SEC // _hz(call))) & U64_MASK


def jiffies64(call: HelperCall) -> int:
    """INITIAL_JIFFIES (-300 s in 32 bits, so jiffies wraps 5 minutes after boot) plus
    the ticks of the virtual clock."""
    hz = _hz(call)
    return ((-300 * hz & _U32) + call.env.now_ns() * hz // NSEC_PER_SEC) & U64_MASK


def get_prandom_u32(call: HelperCall) -> int:
    return call.env.random.getrandbits(32)


def get_smp_processor_id(call: HelperCall) -> int:
    return call.env.cpu


def get_numa_node_id(call: HelperCall) -> int:
    return 0


def get_current_pid_tgid(call: HelperCall) -> int:
    p = call.env.process
    return (p.tgid & _U32) << 32 | (p.pid & _U32)


def get_current_uid_gid(call: HelperCall) -> int:
    p = call.env.process
    return (p.gid & _U32) << 32 | (p.uid & _U32)


def get_current_comm(call: HelperCall) -> int:
    """strscpy_pad(buf, comm, size): comm (at most 15 bytes) cut to size-1, NUL-padded."""
    buf, size = call.args[0], call.args[1] & _U32
    _const_size(call, "get_current_comm", size)
    comm = call.env.process.comm.encode()[:TASK_COMM_LEN - 1][:size - 1]
    call.write(buf, comm)
    _zero(call, buf + len(comm), size - len(comm))
    return 0


#: x86-64's TASK_SIZE_MAX + PAGE_SIZE: below it an address is a user one, which
#: probe_read_kernel refuses with -ERANGE (copy_from_kernel_nofault_allowed)
USER_ADDRESS_LIMIT = (1 << 47)


def _probe_refusal(call: HelperCall, src: int, user: bool) -> int | None:
    """The kernel's refusal of a probe read before any copy, or None to go on.

    Every region of the address space models kernel memory, so a *user* probe
    read of one fails as the kernel's access_ok does (-EFAULT); a *kernel* probe
    read of an address in no region fails with -ERANGE in the user half, as on
    x86-64, and -EFAULT above it."""
    if user:
        return neg(EFAULT)
    if call.space.region_at(src) is None and src < USER_ADDRESS_LIMIT:
        return neg(ERANGE)
    return None


def _probe_read(user: bool):
    def probe_read(call: HelperCall) -> int:
        """probe_read{,_kernel,_user}(dst, size, src): 0, or -errno with dst zeroed."""
        dst, size, src = call.args[0], call.args[1] & _U32, call.args[2]
        if not size:
            return 0
        err = _probe_refusal(call, src, user)
        if err is None:
            try:
                call.write(dst, call.read(src, size))
                return 0
            except MemoryAccessError:
                err = neg(EFAULT)
        _zero(call, dst, size)
        return err
    return probe_read


def _probe_read_str(user: bool):
    def probe_read_str(call: HelperCall) -> int:
        """probe_read{,_kernel,_user}_str(dst, size, src): the length copied, NUL included
        (at most size: a longer string is cut and NUL-terminated), or -errno with dst
        zeroed.  Bytes of dst after the NUL are left as they were."""
        dst, size, src = call.args[0], call.args[1] & _U32, call.args[2]
        if not size:
            return 0
        err = _probe_refusal(call, src, user)
        data = _strncpy_nofault(call, src, size) if err is None else None
        if data is None:
            _zero(call, dst, size)
            return err if err is not None else neg(EFAULT)
        call.write(dst, data)
        return len(data)
    return probe_read_str


def _parse_integer(s: bytes, base: int) -> tuple[int, int, bool]:
    """lib/kstrtox.c _parse_integer: (value mod 2**64, digits used, overflowed)."""
    res = used = 0
    overflow = False
    for c in s:
        lc = c | 0x20
        if 0x30 <= c <= 0x39:
            val = c - 0x30
        elif 0x61 <= lc <= 0x66:
            val = lc - 0x61 + 10
        else:
            break
        if val >= base:
            break
        if res >> 60 and res > (U64_MASK - val) // base:
            overflow = True
        res = (res * base + val) & U64_MASK
        used += 1
    return res, used, overflow


def _strtoull(call: HelperCall, name: str) -> tuple[int, int, bool] | int:
    """__bpf_strtoull: (chars consumed, value, negative), or a negative errno as r0."""
    buf, buf_len, flags = call.args[0], call.args[1], call.args[2]
    _const_size(call, name, buf_len)
    base = flags & BPF_STRTOX_BASE_MASK
    if base not in (0, 8, 10, 16) or flags & ~BPF_STRTOX_BASE_MASK:
        return neg(EINVAL)
    data = call.read(buf, buf_len)
    i = 0
    while i < len(data) and data[i] in _SPACE:
        i += 1
    negative = i < len(data) and data[i] == 0x2D
    i += negative
    if i == len(data):
        return neg(EINVAL)
    s = data[i:i + 63] + bytes(3)              # the kernel parses a 64-byte NUL-terminated copy
    j = 0
    if base == 0:
        if s[0] == 0x30:
            base = 16 if (s[1] | 0x20) == 0x78 and chr(s[2]) in "0123456789abcdefABCDEF" else 8
        else:
            base = 10
    if base == 16 and s[0] == 0x30 and (s[1] | 0x20) == 0x78:
        j = 2
    value, used, overflow = _parse_integer(s[j:], base)
    if overflow:
        return neg(ERANGE)
    if not used:
        return neg(EINVAL)
    return i + j + used, value, negative


def strtol(call: HelperCall) -> int:
    """bpf_strtol(buf, buf_len, flags, res): chars consumed; *res = the s64 value."""
    r = _strtoull(call, "strtol")
    if isinstance(r, int):
        return r
    consumed, value, negative = r
    if negative:
        value = -value & U64_MASK
        if 0 < value < 1 << 63:                 # the kernel's test: (s64)-v > 0
            return neg(ERANGE)
    elif value >> 63:
        return neg(ERANGE)
    call.write(call.args[3], struct.pack("<Q", value))
    return consumed


def strtoul(call: HelperCall) -> int:
    """bpf_strtoul(buf, buf_len, flags, res): chars consumed; *res = the u64 value; a
    leading '-' is -EINVAL."""
    r = _strtoull(call, "strtoul")
    if isinstance(r, int):
        return r
    consumed, value, negative = r
    if negative:
        return neg(EINVAL)
    call.write(call.args[3], struct.pack("<Q", value))
    return consumed


def strncmp(call: HelperCall) -> int:
    """bpf_strncmp(s1, s1_sz, s2): lib/string.c strncmp, so -1, 0 or 1."""
    s1, n, s2 = call.args[0], call.args[1] & _U32, call.args[2]
    _const_size(call, "strncmp", n)
    a = call.read(s1, n)
    for k in range(n):
        c1, c2 = a[k], call.read(s2 + k, 1)[0]
        if c1 != c2:
            return 1 if c1 > c2 else neg(1)
        if not c1:
            break
    return 0


def csum_partial(data: bytes, seed: int) -> int:
    """lib/checksum.c csum_partial on a little-endian machine: the 16-bit one's-complement
    sum of ``data`` (do_csum), added to the 32-bit ``seed`` with end-around carry."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"<{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    r = (s + (seed & _U32)) & _U32
    return (r + (r < s)) & _U32


def csum_add(a: int, b: int) -> int:
    r = (a + b) & _U32
    return (r + (r < b)) & _U32


def csum_from32to16(x: int) -> int:
    x = (x + ((x >> 16) | (x << 16))) & _U32
    return x >> 16


def csum_diff_scratchpad(env: RunEnv) -> bool:
    """Whether bpf_csum_diff has its form before 6.13 for ``env``'s kernel."""
    version = env.kconfig.get("LINUX_KERNEL_VERSION")
    return (isinstance(version, int) and not isinstance(version, bool)
            and version < CSUM_DIFF_FOLDED_SINCE)


def csum_diff(call: HelperCall) -> int:
    """bpf_csum_diff(from, from_size, to, to_size, seed).

    Since 6.13: ``csum_from32to16`` of csum(to) - csum(from) (any sizes), the same
    16-bit value on every architecture.  With ``kconfig["LINUX_KERNEL_VERSION"]``
    older than 6.13: the scratchpad form, sizes multiples of 4 and at most 512 bytes
    together (else -EINVAL), returning the generic csum_partial's 32-bit value."""
    frm, from_size, to, to_size = call.args[0], call.args[1] & _U32, call.args[2], \
        call.args[3] & _U32
    seed = call.args[4] & _U32
    a = call.read(frm, from_size) if from_size else b""
    b = call.read(to, to_size) if to_size else b""
    if csum_diff_scratchpad(call.env):
        if (from_size | to_size) & 3 or from_size + to_size > 512:
            return neg(EINVAL)
        return csum_partial(bytes(x ^ 0xFF for x in a) + b, seed)
    ret = seed
    if from_size and to_size:
        ret = csum_add(csum_partial(b, ret), ~csum_partial(a, 0) & _U32)
    elif to_size:
        ret = csum_partial(b, ret)
    elif from_size:
        ret = ~csum_partial(a, ~ret & _U32) & _U32
    return csum_from32to16(ret)


_TABLE: dict[str, Callable[[HelperCall], int]] = {
    "ktime_get_ns": _clock,
    "ktime_get_boot_ns": _clock,
    "ktime_get_tai_ns": _clock,
    "ktime_get_coarse_ns": ktime_get_coarse_ns,
    "jiffies64": jiffies64,
    "get_prandom_u32": get_prandom_u32,
    "get_smp_processor_id": get_smp_processor_id,
    "get_numa_node_id": get_numa_node_id,
    "trace_printk": trace_printk,
    "trace_vprintk": trace_vprintk,
    "snprintf": snprintf,
    "probe_read": _probe_read(user=False),
    "probe_read_kernel": _probe_read(user=False),
    "probe_read_user": _probe_read(user=True),
    "probe_read_str": _probe_read_str(user=False),
    "probe_read_kernel_str": _probe_read_str(user=False),
    "probe_read_user_str": _probe_read_str(user=True),
    "get_current_pid_tgid": get_current_pid_tgid,
    "get_current_uid_gid": get_current_uid_gid,
    "get_current_comm": get_current_comm,
    "strtol": strtol,
    "strtoul": strtoul,
    "strncmp": strncmp,
    "csum_diff": csum_diff,
}


def register_kernel_helpers(registry: HelperRegistry) -> None:
    """Add the kernel's general-purpose helpers to ``registry``, each by its kernel name."""
    for name, fn in _TABLE.items():
        registry.kernel(name, core=fn is csum_diff)(fn)
