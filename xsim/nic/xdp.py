"""XDP: ``struct xdp_md`` as the kernel rewrites it, the packet buffer, the XDP helpers,
and BPF_PROG_TEST_RUN's rules for XDP programs (Linux 6.18, net/bpf/test_run.c).

The packet lives in the ``packet`` region laid out as the kernel's test run
lays out its page: 256 bytes of headroom (less any metadata), the linear
data, and 320 bytes of tailroom for ``skb_shared_info``; the program may
touch only ``[data_meta, data_end)``, a window the adjust helpers move.

The context region holds what the program sees of ``struct xdp_md`` (24
bytes) followed by the real pointers (``data``, ``data_end``,
``data_meta``, ``data_hard_start`` as 64-bit addresses, and the frame size).
Loads of the 32-bit ``data``/``data_end``/``data_meta`` fields are
rewritten, as the verifier's ``xdp_convert_ctx_access`` does, into 64-bit
loads of the pointers; any other access the verifier refuses is refused
here with its message.
"""
from __future__ import annotations

import errno
import struct
import weakref
from dataclasses import dataclass, field

from ..elf.kinds import MapType, ProgType
from ..elf.spec import ProgramSpec
from ..errors import HelperError
from ..isa import interp as ip
from ..isa.insn import Insn
from ..isa.interp import ETH_HLEN, XDP_FRAME_SIZE
from ..runtime.helpers import HelperCall, HelperFn, HelperRegistry
from ..runtime.hooks import Layouts
from ..runtime.maps import Map
from ..runtime.memory import AddressSpace
from ..runtime.program import Tier
from ..runtime.testrun import TestRunOutput, TestRunRefused
from .ctx import place, rewrite_context
from .fib import fib_lookup

XDP_PACKET_HEADROOM = 256
PAGE_SIZE = 4096
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
SHINFO_SIZE = 320
#: xdp_metalen_invalid: metadata is a multiple of 4 that fits skb_shared_info.meta_len (u8)
XDP_METADATA_MAX = 252
MAX_SKB_FRAGS = 17
XDP_MD = struct.Struct("<6I")          # data, data_end, data_meta, ingress, rx_queue, egress
XDP_MD_SIZE = XDP_MD.size
#: where the real pointers sit in the context region, after the 24 visible bytes
PTRS = struct.Struct("<4QI")           # data, data_end, data_meta, data_hard_start, frame_sz
PTRS_AT = XDP_MD_SIZE
CTX_REGION_SIZE = PTRS_AT + PTRS.size
#: xdp_md field -> offset of its 64-bit pointer in the context region
POINTER_FIELDS = {0: PTRS_AT, 4: PTRS_AT + 8, 8: PTRS_AT + 16}
EGRESS_IFINDEX = 20
XDP_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
XDP_ABORTED, XDP_REDIRECT = ip.XDP_ABORTED, ip.XDP_REDIRECT
BPF_F_ACTION_MASK, BPF_F_BROADCAST = ip.BPF_F_ACTION_MASK, ip.BPF_F_BROADCAST
BPF_F_EXCLUDE_INGRESS = ip.BPF_F_EXCLUDE_INGRESS
LOOPBACK_IFINDEX = 1
_NEG = 1 << 64
REDIRECT_MAPS = (MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP)


@dataclass
class Frame:
    """One test run's packet, as far as the helpers need more than the registers."""

    frags: list[bytearray] = field(default_factory=list)


#: the frame each address space is running, for the helpers
_FRAMES: weakref.WeakKeyDictionary[AddressSpace, Frame] = weakref.WeakKeyDictionary()


# -- context rewriting ------------------------------------------------------------------

def rewrite(spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
    """Context loads as the kernel converts them; what the verifier refuses, refused:
    xdp_is_valid_access allows aligned 4-byte loads, egress_ifindex only in devmap
    programs, and no writes."""
    devmap = spec.section in ("xdp/devmap", "xdp.frags/devmap")

    def valid(off: int, size: int, write: bool) -> bool:
        return (not write and size == 4 and not off % size and 0 <= off < XDP_MD_SIZE
                and (off != EGRESS_IFINDEX or devmap))
    return rewrite_context(spec, insns, valid, POINTER_FIELDS)


# -- helpers ----------------------------------------------------------------------------

def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


class _Buff:
    """The xdp_buff behind a context pointer: read, change, write back, move the window."""

    def __init__(self, call: HelperCall) -> None:
        self.call, self.ctx = call, call.args[0]
        (self.data, self.data_end, self.data_meta, self.hard_start,
         self.frame_sz) = PTRS.unpack(call.read(self.ctx + PTRS_AT, PTRS.size))

    def save(self) -> None:
        self.call.write(self.ctx + PTRS_AT, PTRS.pack(self.data, self.data_end, self.data_meta,
                                                      self.hard_start, self.frame_sz))
        self.call.space.set_window("packet", self.data_meta - self.hard_start,
                                   self.data_end - self.hard_start)

    def raw_write(self, address: int, data: bytes) -> None:
        """Into the packet buffer, also outside the window (the kernel's memmove/memset)."""
        region = self.call.space.by_name["packet"]
        host = region.host + address - region.vaddr
        self.call.space.mem[host:host + len(data)] = memoryview(data)

    def raw_read(self, address: int, size: int) -> bytes:
        region = self.call.space.by_name["packet"]
        host = region.host + address - region.vaddr
        return self.call.space.mem[host:host + size].tobytes()


def _adjust_head(call: HelperCall) -> int:
    b = _Buff(call)
    offset = _s32(call.args[1])
    metalen = b.data - b.data_meta
    data = b.data + offset
    if data < b.hard_start + XDP_FRAME_SIZE + metalen or data > b.data_end - ETH_HLEN:
        return _NEG - errno.EINVAL
    if metalen:
        b.raw_write(b.data_meta + offset, b.raw_read(b.data_meta, metalen))
    b.data_meta += offset
    b.data = data
    b.save()
    return 0


def _adjust_meta(call: HelperCall) -> int:
    b = _Buff(call)
    meta = b.data_meta + _s32(call.args[1])
    if meta < b.hard_start + XDP_FRAME_SIZE or meta > b.data:
        return _NEG - errno.EINVAL
    metalen = b.data - meta
    if metalen > XDP_METADATA_MAX or metalen % 4:
        return _NEG - errno.EACCES
    b.data_meta = meta
    b.save()
    return 0


def _adjust_tail_frags(b: _Buff, frags: list[bytearray], offset: int) -> int:
    """bpf_xdp_frags_increase_tail / _shrink_tail: the tail is the last fragment's."""
    if offset > 0:
        last = frags[-1]
        if len(last) + offset > PAGE_SIZE:         # the fragment's page has no room left
            return _NEG - errno.EINVAL
        last += bytes(offset)
        return 0
    shrink = -offset
    if shrink > b.data_end - b.data + sum(len(f) for f in frags) - ETH_HLEN:
        return _NEG - errno.EINVAL
    while frags and shrink > 0:
        cut = min(shrink, len(frags[-1]))
        del frags[-1][len(frags[-1]) - cut:]
        shrink -= cut
        if not frags[-1]:
            frags.pop()
    if shrink:                                    # no fragment left: the linear part
        b.data_end -= shrink
        b.save()
    return 0


def _adjust_tail(call: HelperCall) -> int:
    b = _Buff(call)
    offset = _s32(call.args[1])
    frags = _frags(call)
    if frags:
        return _adjust_tail_frags(b, frags, offset)
    data_end = b.data_end + offset
    if data_end > b.hard_start + b.frame_sz - SHINFO_SIZE or data_end < b.data + ETH_HLEN:
        return _NEG - errno.EINVAL
    if offset > 0:
        b.raw_write(b.data_end, bytes(offset))
    b.data_end = data_end
    b.save()
    return 0


def _frags(call: HelperCall) -> list[bytearray]:
    return _FRAMES.get(call.space, Frame()).frags


def _get_buff_len(call: HelperCall) -> int:
    b = _Buff(call)
    return b.data_end - b.data + sum(len(f) for f in _frags(call))


def _bytes_access(call: HelperCall, store: bool) -> int:
    """bpf_xdp_load_bytes / store_bytes(ctx, offset, buf, len): across linear and frags."""
    b = _Buff(call)
    off, buf, n = call.args[1] & 0xFFFFFFFF, call.args[2], call.args[3] & 0xFFFFFFFF
    linear = b.data_end - b.data
    frags = _frags(call)
    if off + n > linear + sum(len(f) for f in frags) or n == 0:
        return _NEG - errno.EFAULT
    data = call.read(buf, n) if store else None
    out = bytearray()
    pos = 0
    for part, base in [(None, 0)] + [(f, 0) for f in frags]:
        size = linear if part is None else len(part)
        lo, hi = max(off, pos), min(off + n, pos + size)
        if lo < hi:
            if part is None:
                if store:
                    b.raw_write(b.data + lo, data[lo - off:hi - off])
                else:
                    out += b.raw_read(b.data + lo, hi - lo)
            elif store:
                part[lo - pos:hi - pos] = data[lo - off:hi - off]
            else:
                out += part[lo - pos:hi - pos]
        pos += size
    if not store:
        call.write(buf, bytes(out))
    return 0


def _redirect(call: HelperCall) -> int:
    """bpf_redirect(ifindex, flags) in XDP: any flag makes it XDP_ABORTED."""
    if call.args[1]:
        return XDP_ABORTED
    call.redirect(ip.REDIRECT_IFINDEX, call.args[0] & 0xFFFFFFFF)
    return XDP_REDIRECT


def _redirect_map(call: HelperCall) -> int:
    """bpf_redirect_map(map, key, flags): XDP_REDIRECT to a filled slot, else the action
    in the flags' low bits."""
    m = call.owner(call.args[0])
    if not isinstance(m, Map) or m.vaddr != call.args[0] or m.type not in REDIRECT_MAPS:
        raise HelperError(call.pc, 51, "r1 is not a devmap, devmap_hash, cpumap or xskmap",
                          "bpf_redirect_map")
    flags, key = call.args[2], call.args[1] & 0xFFFFFFFF
    if flags & ~(BPF_F_ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
        return XDP_ABORTED
    present = m.prog_lookup(key.to_bytes(m.key_size, "little"), call.env.cpu) != 0
    if not present and not flags & BPF_F_BROADCAST:
        return flags & BPF_F_ACTION_MASK
    call.redirect(ip.REDIRECT_SLOT, m.region.index << 32 | key)
    return XDP_REDIRECT


def redirect_of(kind: int, to: int, space: AddressSpace) -> tuple[str, int] | None:
    """Where a run's last redirect sent the packet, from its state words S_REDIRECT and
    S_REDIRECT_TO (the core's helpers and these write them): ("ifindex", n), (map
    name, key), or None."""
    if kind == ip.REDIRECT_IFINDEX:
        return ("ifindex", to)
    if kind == ip.REDIRECT_SLOT:
        m = space.owner_at((to >> 32) << ip.REGION_SHIFT)
        if isinstance(m, Map):
            return (m.name, to & 0xFFFFFFFF)
    return None


def add_helpers(registry: HelperRegistry) -> None:
    registry.ctx_ptrs = PTRS_AT
    registry.kernel("xdp_adjust_head", core=True)(_adjust_head)
    registry.kernel("xdp_adjust_meta")(_adjust_meta)
    registry.kernel("xdp_adjust_tail")(_adjust_tail)
    registry.kernel("xdp_get_buff_len")(_get_buff_len)
    registry.kernel("xdp_load_bytes")(lambda call: _bytes_access(call, False))
    registry.kernel("xdp_store_bytes")(lambda call: _bytes_access(call, True))
    registry.kernel("redirect", core=True)(_redirect)
    registry.kernel("redirect_map", core=True)(_redirect_map)
    registry.kernel("fib_lookup")(fib_lookup)


# -- the test run -----------------------------------------------------------------------

def _parse_ctx(ctx_in: bytes | None, size: int) -> tuple[int, int, int, int] | None:
    """(metadata length, data_end, ingress_ifindex, rx_queue_index) from ctx_in, with the
    kernel's refusals (bpf_ctx_init, bpf_prog_test_run_xdp, xdp_convert_md_to_buff)."""
    if ctx_in is None:
        return None
    if any(ctx_in[XDP_MD_SIZE:]):
        raise TestRunRefused("ctx_in: bytes past struct xdp_md must be zero", errno.E2BIG)
    data, data_end, data_meta, ingress, rxq, egress = XDP_MD.unpack(
        ctx_in[:XDP_MD_SIZE].ljust(XDP_MD_SIZE, b"\0"))
    # the metadata comes out of the headroom, which must keep room for an xdp_frame
    meta_max = min(XDP_METADATA_MAX, XDP_PACKET_HEADROOM - XDP_FRAME_SIZE)
    if data_meta or data_end > size or data > data_end or data > meta_max or data % 4:
        raise TestRunRefused(f"ctx_in: data is the metadata length (a multiple of 4, at most "
                             f"{meta_max}), data_end at most the data size, data_meta 0")
    if egress:
        raise TestRunRefused("ctx_in: egress_ifindex must be 0")
    if not ingress and rxq:
        raise TestRunRefused("ctx_in: rx_queue_index needs an ingress_ifindex")
    if ingress and ingress != LOOPBACK_IFINDEX:
        raise TestRunRefused(f"ctx_in: no device with ifindex {ingress} (xsim models "
                             "loopback, ifindex 1)", errno.ENODEV)
    if ingress and rxq:
        raise TestRunRefused(f"ctx_in: loopback has no rx queue {rxq}")
    return data, data_end, ingress, rxq


# -- the kernel's structs, for its JIT image ----------------------------------------------

#: what the kernel's code reads of the context: xdp_convert_ctx_access loads data,
#: data_end and data_meta from the xdp_buff, ingress_ifindex through rxq->dev,
#: rx_queue_index from rxq and egress_ifindex through txq->dev
KERNEL_STRUCTS = {"xdp_buff": ("data", "data_end", "data_meta", "data_hard_start", "rxq", "txq",
                               "frame_sz"),
                  "xdp_rxq_info": ("dev", "queue_index"), "xdp_txq_info": ("dev",),
                  "net_device": ("ifindex",)}


class XdpKernelContext:
    """``struct xdp_buff`` with its rx queue and its two devices, built from the context
    region (xdp_md, then the real pointers) and read back into it."""

    def __init__(self, layouts: Layouts) -> None:
        self.functions: dict[str, HelperFn] = {}
        self.buff, self.rxq, self.txq, self.dev = (layouts[n] for n in KERNEL_STRUCTS)
        sizes = [max(m.values()) + 8 for m in (self.buff, self.rxq, self.txq)]
        sizes += [self.dev["ifindex"] + 4] * 2
        (self._buff, self._rxq, self._txq, self._in, self._out), self.size = place(sizes)

    def to_kernel(self, ctx: bytes, base: int) -> bytes:
        _, _, _, ingress, queue, egress = XDP_MD.unpack_from(ctx)
        data, end, meta, hard, frame_sz = PTRS.unpack_from(ctx, PTRS_AT)
        out = bytearray(self.size)
        b = self._buff
        for name, value in (("data", data), ("data_end", end), ("data_meta", meta),
                            ("data_hard_start", hard), ("rxq", base + self._rxq),
                            ("txq", base + self._txq)):
            struct.pack_into("<Q", out, b + self.buff[name], value)
        struct.pack_into("<I", out, b + self.buff["frame_sz"], frame_sz)
        struct.pack_into("<Q", out, self._rxq + self.rxq["dev"], base + self._in)
        struct.pack_into("<I", out, self._rxq + self.rxq["queue_index"], queue)
        struct.pack_into("<Q", out, self._txq + self.txq["dev"], base + self._out)
        struct.pack_into("<I", out, self._in + self.dev["ifindex"], ingress)
        struct.pack_into("<I", out, self._out + self.dev["ifindex"], egress)
        return bytes(out)

    def from_kernel(self, native: bytes, ctx: bytes) -> bytes:
        b = self._buff
        data, end, meta, hard = (struct.unpack_from("<Q", native, b + self.buff[n])[0] for n in
                                 ("data", "data_end", "data_meta", "data_hard_start"))
        frame_sz = struct.unpack_from("<I", native, b + self.buff["frame_sz"])[0]
        out = bytearray(ctx)
        PTRS.pack_into(out, PTRS_AT, data, end, meta, hard, frame_sz)
        return bytes(out)


class XdpHook:
    prog_types = (ProgType.XDP,)
    kernel_structs = KERNEL_STRUCTS

    def kernel_context(self, layouts: Layouts, insns: list[Insn]) -> XdpKernelContext:
        """Every xdp_md field is mirrored, so any program the verifier takes runs."""
        return XdpKernelContext(layouts)

    def add_helpers(self, registry: HelperRegistry) -> None:
        add_helpers(registry)

    def rewrite(self, spec: ProgramSpec, insns: list[Insn]) -> list[Insn]:
        return rewrite(spec, insns)

    def test_run(self, prog, *, data_in: bytes | None, ctx_in: bytes | None, repeat: int,
                 budget: int | None, tier: str | Tier = "interp") -> TestRunOutput:
        data = data_in or b""
        if len(data) < ETH_HLEN:
            raise TestRunRefused(f"data_in of {len(data)} bytes is shorter than an Ethernet "
                                 f"header ({ETH_HLEN})")
        ctx = _parse_ctx(ctx_in, len(data))
        metalen, data_end, ingress, rxq = ctx if ctx else (0, 0, 0, 0)
        headroom = XDP_PACKET_HEADROOM - metalen
        max_linear = PAGE_SIZE - headroom - SHINFO_SIZE
        linear = min(len(data), max_linear)
        if ctx is not None:               # ctx_in.data_end is the linear length, 0 too
            linear = min(linear, data_end)
        rest = data[linear:]
        frags = [bytearray(rest[i:i + PAGE_SIZE]) for i in range(0, len(rest), PAGE_SIZE)]
        if len(frags) > MAX_SKB_FRAGS:
            raise TestRunRefused(f"data_in needs {len(frags)} fragments, more than "
                                 f"{MAX_SKB_FRAGS}", errno.ENOMEM)
        buffer = bytearray(PAGE_SIZE)
        buffer[headroom:headroom + linear] = data[:linear]
        program = prog.hooked()
        space = program.space
        # beyond the linear part the kernel makes fragments, for frags programs or not
        frame = Frame(frags=frags)
        _FRAMES[space] = frame
        packet = space.by_name["packet"]
        start = packet.vaddr
        ctx_image = XDP_MD.pack(0, 0, 0, ingress or LOOPBACK_IFINDEX, rxq, 0) + PTRS.pack(
            start + headroom + metalen, start + headroom + linear, start + headroom, start,
            PAGE_SIZE)
        res = program.run(ctx_image, packet=bytes(buffer),
                          packet_window=(headroom, headroom + linear), repeat=repeat,
                          tier=tier, budget=budget)
        d, end, meta = PTRS.unpack(res.memory[PTRS_AT:PTRS_AT + PTRS.size])[:3]
        after = space.bytes_of("packet")
        data_out = after[meta - start:end - start] + b"".join(bytes(f) for f in frame.frags)
        ctx_out = None
        if ctx_in is not None:
            ctx_out = XDP_MD.pack(d - meta, end - meta, 0, ingress, rxq, 0)
        return TestRunOutput(res, data_out=data_out, ctx_out=ctx_out, printk=res.printk,
                             redirect=redirect_of(int(program._st[ip.S_REDIRECT]),
                                                  int(program._st[ip.S_REDIRECT_TO]), space)
                             if res.retval == XDP_REDIRECT else None)

    def verdict(self, retval: int) -> str:
        """The kernel's name of an XDP action; a value outside the enum by number."""
        return XDP_ACTIONS.get(retval, str(retval))

    def output(self, verdict: str) -> str | None:
        """Which capture output a verdict's packets go to (None: they do not leave)."""
        return {"XDP_PASS": "pass", "XDP_TX": "tx"}.get(verdict)
