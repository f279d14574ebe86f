"""XDP, TC and socket filters over many packets in one compiled loop: the fast path of
a capture run.

A capture run makes one test run per packet.  Done from Python, setting up a
packet costs far more than a short program takes to run, so the per-packet loop
itself is compiled: :func:`_loop` lays out each frame exactly as the hook's
``test_run`` does, runs the interpreter core (or the JIT's native code) on it,
and copies its ``data_out`` into an output buffer.

- XDP (``XdpHook.test_run``): a zeroed page, 256 bytes of headroom, the ``xdp_md``
  image and its pointers.
- TC and socket filters (``SkbHook.test_run``): a zeroed buffer of 64 bytes of
  headroom, the frame and ``skb_shared_info``'s room; ``struct __sk_buff`` made
  afresh (the program may write it) with the frame's len, pkt_type and protocol;
  the socket of ``skb->sk`` from the frame's IP addresses.  A socket filter's
  ``data`` starts at the network header, and its ``data_out`` has the MAC header
  zeroed, as the test run gives it.

The loop returns to Python only for what Python must do: a helper written in
Python (the loop resumes after it), a fault, a packet the test run would treat
otherwise (too short, too long, not Ethernet: run one at a time by the caller), or
a full output buffer.  Packets that Python helpers touched end with a return to
Python too, so that a redirect's target or a clone is picked up; their buffer is
zeroed before the next packet, since those helpers may write outside the window.

With ``paths`` (a capture run that writes records) the loop counts executions per pc
and numbers each packet's path: a packet whose counts, region accesses and compiled
lookups are those of a path it has seen gets that path's number in the loop; the first
packet of a new path returns to Python, which numbers it (``workload.RecordPaths``) and
adds it to the loop's :class:`_PathCache`.

A program that tail calls runs linked with its object's programs (xsim.runtime.tailcall),
so its chain stays in the loop too; where they do not link, it runs packet by packet.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..elf.kinds import ProgType
from ..errors import XsimError
from ..isa import interp as ip
from ..isa.memops import copy_bytes, load64, store32, store64, zero_bytes
from ..jit.call import call_entry
from ..jit.lift import ENTER_FRESH, ENV_PY_CALLS, HANDOFF, HANDOFF_RUN
from ..runtime.hooks import HOOKS
from ..runtime.program import DEFAULT_BUDGET, Program
from .flow import ETH_P_802_2, ETH_P_802_3, ETH_P_IP, ETH_P_IPV6
from .pcap import ETHERNET, PacketBatch
from .skb import _STATES as SKB_STATES
from .skb import FRAME_MIN
from .skb import HEADROOM as SKB_HEADROOM
from .skb import (LEN, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST, PKT_TYPE, PROTOCOL,
                  TC_ACT_REDIRECT, SkbHook)
from .skb import PTRS as SKB_PTRS
from .skb import PTRS_AT as SKB_PTRS_AT
from .skb import SHINFO_SIZE as SKB_SHINFO
from .sock import (AF_INET, AF_INET6, BPF_SOCK_SIZE, SOCK_DST_IP4, SOCK_DST_IP6, SOCK_FAMILY,
                   SOCK_REGION, SOCK_RX_QUEUE_MAPPING, SOCK_SRC_IP4, SOCK_SRC_IP6, SOCK_STATE,
                   TCP_CLOSE)
from .workload import RecordPaths, Trace
from .xdp import (_FRAMES, ETH_HLEN, LOOPBACK_IFINDEX, PAGE_SIZE, PTRS, PTRS_AT, SHINFO_SIZE,
                  XDP_MD, XDP_PACKET_HEADROOM, XDP_REDIRECT, Frame, redirect_of)

# -- the batch state words (``bs``, int64) ----------------------------------------------
(B_NEXT, B_CUR, B_PHASE, B_OUTPOS, B_PYTHON, B_DIRTY,
 B_PKT_HOST, B_PKT_VADDR, B_PKT_ROW, B_CTX_HOST, B_BUDGET, B_KNOWN,
 B_PKT_SIZE, B_PKT_END, B_SOCK_HOST) = range(15)
B_WORDS = 15
# the hook whose test run the loop lays out
XDP, SKB_L2, SKB_L3 = 0, 1, 2
# phases: start the next packet, resume the current one after a helper, record its output
START, RESUME, RECORD = 0, 1, 2
# why the loop returned
DONE, HELPER, FAULT, SLOW, OUT_FULL, PYTHON_END, NEW_PATH = range(7)
# per-packet outcome
NOT_RUN, RAN, FAILED = 0, 1, 2
#: the largest frame that fits one page after headroom and skb_shared_info
MAX_LINEAR = PAGE_SIZE - XDP_PACKET_HEADROOM - SHINFO_SIZE
#: the largest frame the loop lays out for an skb (longer ones run the ordinary way)
SKB_MAX_FRAME = PAGE_SIZE - SKB_HEADROOM - SKB_SHINFO
#: the skb buffer the loop keeps: headroom, the longest frame, skb_shared_info's room
SKB_BUFFER = SKB_HEADROOM + SKB_MAX_FRAME + SKB_SHINFO
_MD_INGRESS = 12                    # offsetof(struct xdp_md, ingress_ifindex)
_U32 = np.uint64(0xFFFFFFFF)
_NO_ENV = np.zeros(1, dtype=np.int64)
_NO_CTX = np.zeros(1, dtype=np.uint8)
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@njit(cache=True)
def _xdp_start(mem, rg, bs, data, off, n):
    """The page, the window and the context of a fresh XDP test run on ``data[off:off+n]``."""
    h = bs[B_PKT_HOST]
    head = XDP_PACKET_HEADROOM
    v = np.uint64(bs[B_PKT_VADDR])
    c = bs[B_CTX_HOST]
    if bs[B_DIRTY]:
        # Python helpers ran (they may write outside the window and the context's
        # pointers): a zeroed page and the whole context, as a fresh test run has them
        zero_bytes(mem, h, PAGE_SIZE)
        zero_bytes(mem, c, PTRS_AT)
        store32(mem, np.uint64(c + _MD_INGRESS), np.uint64(LOOPBACK_IFINDEX))
        store64(mem, np.uint64(c + PTRS_AT + 24), v)
        store32(mem, np.uint64(c + PTRS_AT + 32), np.uint64(PAGE_SIZE))
        bs[B_DIRTY] = 0
    # Otherwise the page past the window keeps the last frame's bytes: nothing reads
    # them (loads stop at data_end, a growing adjust_tail zeroes what it adds), and the
    # program cannot write the context, only its pointers move.
    copy_bytes(mem, h + head, data, off, n)
    row = bs[B_PKT_ROW]
    rg[row, ip.RG_VBASE] = v + np.uint64(head)
    rg[row, ip.RG_SIZE] = np.uint64(n)
    rg[row, ip.RG_HOST] = np.uint64(h + head)
    store64(mem, np.uint64(c + PTRS_AT), v + np.uint64(head))
    store64(mem, np.uint64(c + PTRS_AT + 8), v + np.uint64(head + n))
    store64(mem, np.uint64(c + PTRS_AT + 16), v + np.uint64(head))


@njit(cache=True)
def _eth_protocol(data, off, n):
    """flow.eth_type_trans on ``data[off:off+n]`` (n >= ETH_HLEN)."""
    proto = (np.int64(data[off + 12]) << 8) | np.int64(data[off + 13])
    if proto >= 0x600:
        return proto
    if n >= 16 and data[off + 14] == 0xFF and data[off + 15] == 0xFF:
        return ETH_P_802_3
    return ETH_P_802_2


@njit(cache=True)
def _pkt_type(data, off):
    """skb._pkt_type of the frame's destination address."""
    for k in range(6):
        if data[off + k]:
            return PACKET_MULTICAST if data[off] & 1 else PACKET_OTHERHOST
    return PACKET_HOST


@njit(cache=True)
def _sock_fill(mem, at, data, off, proto):
    """sock.sock_image of the frame into ``mem[at:at + BPF_SOCK_SIZE]`` (a frame long
    enough for its IP header: the test run refuses shorter ones)."""
    zero_bytes(mem, at, BPF_SOCK_SIZE)
    if proto == ETH_P_IP:
        store32(mem, np.uint64(at + SOCK_FAMILY), np.uint64(AF_INET))
        copy_bytes(mem, at + SOCK_SRC_IP4, data, off + ETH_HLEN + 12, 4)
        copy_bytes(mem, at + SOCK_DST_IP4, data, off + ETH_HLEN + 16, 4)
    elif proto == ETH_P_IPV6:
        store32(mem, np.uint64(at + SOCK_FAMILY), np.uint64(AF_INET6))
        copy_bytes(mem, at + SOCK_SRC_IP6, data, off + ETH_HLEN + 8, 16)
        copy_bytes(mem, at + SOCK_DST_IP6, data, off + ETH_HLEN + 24, 16)
    store32(mem, np.uint64(at + SOCK_STATE), np.uint64(TCP_CLOSE))
    store32(mem, np.uint64(at + SOCK_RX_QUEUE_MAPPING), _U32)


@njit(cache=True)
def _skb_start(mem, rg, bs, data, off, n, ctx0, l2):
    """The buffer, the window, ``struct __sk_buff`` and the socket of a fresh skb test
    run on ``data[off:off+n]``; ``ctx0`` is the context before the frame's fields."""
    h = bs[B_PKT_HOST]
    v = np.uint64(bs[B_PKT_VADDR])
    c = bs[B_CTX_HOST]
    head = SKB_HEADROOM
    end = head + n
    if bs[B_DIRTY]:             # Python helpers ran: they may write anywhere in it
        zero_bytes(mem, h, bs[B_PKT_SIZE])
        bs[B_DIRTY] = 0
    elif bs[B_PKT_END] > end:   # the buffer past the frame is zeros, as the test run's
        zero_bytes(mem, h + end, bs[B_PKT_END] - end)
    bs[B_PKT_END] = end
    copy_bytes(mem, h + head, data, off, n)
    start = head if l2 else head + ETH_HLEN
    copy_bytes(mem, c, ctx0, 0, len(ctx0))
    proto = _eth_protocol(data, off, n)
    store32(mem, np.uint64(c + LEN), np.uint64(end - start))
    store32(mem, np.uint64(c + PKT_TYPE), np.uint64(_pkt_type(data, off)))
    store32(mem, np.uint64(c + PROTOCOL), np.uint64(((proto & 0xFF) << 8) | (proto >> 8)))
    row = bs[B_PKT_ROW]
    rg[row, ip.RG_VBASE] = v + np.uint64(start)
    rg[row, ip.RG_SIZE] = np.uint64(end - start)
    rg[row, ip.RG_HOST] = np.uint64(h + start)
    store64(mem, np.uint64(c + SKB_PTRS_AT), v + np.uint64(start))
    store64(mem, np.uint64(c + SKB_PTRS_AT + 8), v + np.uint64(end))
    store64(mem, np.uint64(c + SKB_PTRS_AT + 16), v + np.uint64(start))
    _sock_fill(mem, bs[B_SOCK_HOST], data, off, proto)


@njit(cache=True)
def _served(st, served, i):
    """Packet ``i``'s calls the core served, from the state words ip.CORE_COUNTS names."""
    for k in range(len(ip.CORE_COUNTS)):
        served[i, k] = st[ip.CORE_COUNTS[k][1]]


@njit(cache=True)
def _path_hash(counts, rg, lookups):
    """FNV-1a over what tells a packet's path apart in the loop."""
    h = _FNV_OFFSET
    for v in counts:
        h = (h ^ v) * _FNV_PRIME
    for r in range(rg.shape[0]):
        h = (h ^ rg[r, ip.RG_READS]) * _FNV_PRIME
        h = (h ^ rg[r, ip.RG_WRITES]) * _FNV_PRIME
    return (h ^ lookups) * _FNV_PRIME


@njit(cache=True)
def _known_path(counts, rg, lookups, known, hashes, n):
    """The row of ``known[:n]`` that holds these counts, region accesses and compiled
    lookups (laid out as :meth:`_PathCache.add` lays them out), or -1."""
    h = _path_hash(counts, rg, lookups)
    slots = len(counts)
    for k in range(n):
        if hashes[k] != h:
            continue
        row = known[k]
        same = row[-1] == lookups
        j = 0
        while same and j < slots:
            same = row[j] == counts[j]
            j += 1
        r = 0
        while same and r < rg.shape[0]:
            same = (row[slots + 2 * r] == rg[r, ip.RG_READS]
                    and row[slots + 2 * r + 1] == rg[r, ip.RG_WRITES])
            r += 1
        if same:
            return k
    return -1


@njit(cache=True)
def _loop(kind, ctx0, code, st, mem, rg, counts, bs, data, offset, length, eligible,
          r0, insns, served, redirect, outcome, out, out_off, out_len, native, env,
          prof, known, hashes, known_path, path):
    """Run packets ``bs[B_NEXT]..`` until all are done or Python must act (see DONE..).

    ``kind``: the hook whose test run lays each packet out (XDP, SKB_L2, SKB_L3), and
    ``ctx0`` an skb's context before the frame's own fields.

    ``native``: the address of the program's JIT entry (then ``env`` is its words and
    Python helpers are served by its callback, inside the call), or 0 for the
    interpreter.  ``prof``: count executions per pc in ``counts`` (zeroed as each packet
    starts; a JIT entry must be its profiling build), and give each packet that ends
    without Python the number of the known path it took (row k of
    ``known[:bs[B_KNOWN]]``: ``known_path[k]``) in ``path``, or return NEW_PATH."""
    n_packets = len(offset)
    while True:
        phase = bs[B_PHASE]
        i = bs[B_CUR]
        if phase == START:
            i = bs[B_NEXT]
            if i >= n_packets:
                return DONE
            bs[B_CUR] = i
            bs[B_NEXT] = i + 1
            if not eligible[i]:
                return SLOW
            if prof:
                counts[:] = 0
            if kind == XDP:
                _xdp_start(mem, rg, bs, data, offset[i], length[i])
            else:
                _skb_start(mem, rg, bs, data, offset[i], length[i], ctx0, kind == SKB_L2)
            st[ip.S_REDIRECT] = ip.REDIRECT_NONE
            if native:
                status = call_entry(native, st, env, 1, ENTER_FRESH)
                if env[ENV_PY_CALLS]:
                    env[ENV_PY_CALLS] = 0
                    bs[B_PYTHON] = 1
                # the budget ends in a block, or a lookup needs Python: the interpreter's
                if status == HANDOFF or status == HANDOFF_RUN:
                    status = ip.run_core(code, st, mem, rg, counts, ip.RESUME, 0, 0, False)
            else:
                status = ip.run_core(code, st, mem, rg, counts, ip.FRESH, 1, bs[B_BUDGET],
                                     prof)
        elif phase == RESUME:
            status = ip.run_core(code, st, mem, rg, counts, ip.RESUME, 0, 0, False)
        else:
            status = ip.DONE
        if status == ip.HELPER:
            bs[B_PHASE] = RESUME
            bs[B_PYTHON] = 1
            return HELPER
        if status != ip.DONE:
            bs[B_PHASE] = START
            bs[B_DIRTY] = 1
            bs[B_PYTHON] = 0
            outcome[i] = FAILED
            insns[i] = st[ip.S_INSNS]
            _served(st, served, i)
            return FAULT
        rv = st[ip.R_BASE]
        # data_out, as the test run gives it for every action: XDP's [data_meta,
        # data_end), an skb's [data, data_end) (a socket filter's after a zeroed MAC
        # header), inside the buffer
        c = bs[B_CTX_HOST]
        lo = bs[B_PKT_VADDR]
        if kind == XDP:
            first = np.int64(load64(mem, np.uint64(c + PTRS_AT + 16))) - lo
            end = np.int64(load64(mem, np.uint64(c + PTRS_AT + 8))) - lo
        else:
            first = np.int64(load64(mem, np.uint64(c + SKB_PTRS_AT))) - lo
            end = np.int64(load64(mem, np.uint64(c + SKB_PTRS_AT + 8))) - lo
        first = min(max(first, 0), bs[B_PKT_SIZE])
        end = min(max(end, first), bs[B_PKT_SIZE])
        mac = ETH_HLEN if kind == SKB_L3 else 0
        k = end - first
        pos = bs[B_OUTPOS]
        if pos + mac + k > len(out):
            bs[B_PHASE] = RECORD
            return OUT_FULL
        h = bs[B_PKT_HOST]
        zero_bytes(out, pos, mac)
        copy_bytes(out, pos + mac, mem, h + first, k)
        k += mac
        out_off[i] = pos
        out_len[i] = k
        bs[B_OUTPOS] = pos + k
        r0[i] = rv
        insns[i] = st[ip.S_INSNS]
        _served(st, served, i)
        redirect[i, 0] = st[ip.S_REDIRECT]
        redirect[i, 1] = st[ip.S_REDIRECT_TO]
        outcome[i] = RAN
        bs[B_PHASE] = START
        if bs[B_PYTHON]:
            bs[B_PYTHON] = 0
            bs[B_DIRTY] = 1
            return PYTHON_END
        if prof:    # (the calls of the core's other helpers follow from the pcs' counts)
            k = _known_path(counts, rg, served[i, 0], known, hashes, bs[B_KNOWN])
            if k < 0:
                return NEW_PATH
            path[i] = known_path[k]


def _kind(prog) -> int | None:
    """The loop's layout for ``prog``'s hook (None: the loop does not run it)."""
    if prog.spec.prog_type is ProgType.XDP:
        return XDP
    hook = HOOKS.get(prog.spec.prog_type)
    if isinstance(hook, SkbHook):
        return SKB_L2 if hook.l2 else SKB_L3
    return None


def batchable(prog) -> bool:
    """Whether the compiled loop can run ``prog`` (an ObjectProgram) over a capture: one
    that tail calls runs there linked with its object's programs (xsim.runtime.tailcall)."""
    if _kind(prog) is None:
        return False
    hooked = prog.hooked()
    return not hooked._tail_calls or hooked.linked() is not None


class Outcomes:
    """What each packet of one batch did: arrays for every packet, dicts for the rare."""

    def __init__(self, n: int, out_bytes: int) -> None:
        self.r0 = np.zeros(n, dtype=np.uint64)
        self.insns = np.zeros(n, dtype=np.uint64)
        #: packet -> the calls the core served, by helper (columns as ip.CORE_COUNTS)
        self.served = np.zeros((n, len(ip.CORE_COUNTS)), dtype=np.uint64)
        #: packet -> its run's last redirect: ip.S_REDIRECT and ip.S_REDIRECT_TO
        self.redirect_words = np.zeros((n, 2), dtype=np.uint64)
        self.outcome = np.zeros(n, dtype=np.int64)
        self.out = np.empty(max(out_bytes, 1), dtype=np.uint8)
        self.out_off = np.zeros(n, dtype=np.int64)
        self.out_len = np.zeros(n, dtype=np.int64)
        self.outpos = 0
        self.errors: dict[int, str] = {}          # packet -> why it did not run or failed
        self.redirect: dict[int, tuple[str, int]] = {}
        self.clones: dict[int, list[tuple[int, bytes]]] = {}
        self.calls: dict[int, dict[int, int]] = {}  # packet -> helper calls served in Python
        self.path = np.full(n, -1, dtype=np.int64)  # packet -> its path (runs that count)

    def grow(self, need: int) -> None:
        if self.outpos + need > len(self.out):
            bigger = np.empty(max(2 * len(self.out), self.outpos + need), dtype=np.uint8)
            bigger[:self.outpos] = self.out[:self.outpos]
            self.out = bigger

    def put_output(self, i: int, data: bytes) -> None:
        self.grow(len(data))
        self.out[self.outpos:self.outpos + len(data)] = np.frombuffer(data, dtype=np.uint8)
        self.out_off[i], self.out_len[i] = self.outpos, len(data)
        self.outpos += len(data)

    def helper_calls(self, i: int) -> dict[int, int]:
        calls = dict(self.calls.get(i, {}))
        for (helper_id, _), n in zip(ip.CORE_COUNTS, self.served[i].tolist()):
            if n:
                calls[helper_id] = calls.get(helper_id, 0) + n
        return calls


class _PathCache:
    """The paths the loop has seen, one row each: per-pc counts, each region's loads and
    stores, compiled lookups; and their numbers.  What a packet that ends without Python
    did is its path, so equal rows mean equal paths and the loop numbers such packets
    itself (a packet with Python helpers or a fault is numbered in Python)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.regions = -1
        self.n = 0

    def fit(self, table: np.ndarray) -> None:
        """Start again when the region table changed shape (rows are laid out by it)."""
        if table.shape[0] != self.regions:
            self.regions, self.n = table.shape[0], 0
            self.rows = np.zeros((16, self.slots + 2 * self.regions + 1), dtype=np.uint64)
            self.hashes = np.zeros(16, dtype=np.uint64)
            self.paths = np.zeros(16, dtype=np.int64)

    def add(self, counts: np.ndarray, table: np.ndarray, lookups: int, path: int) -> None:
        if self.n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
            self.paths = np.concatenate([self.paths, np.zeros_like(self.paths)])
        row = self.rows[self.n]
        row[:self.slots] = counts
        row[self.slots:-1] = table[:, ip.RG_READS:ip.RG_WRITES + 1].ravel()
        row[-1] = lookups
        self.hashes[self.n] = _path_hash(counts, table, np.uint64(lookups))
        self.paths[self.n] = path
        self.n += 1


class BatchRunner:
    """Runs an XDP, TC or socket filter program's test runs over batches of packets in
    :func:`_loop`."""

    def __init__(self, prog, budget: int | None = None, tier: str = "interp",
                 paths: RecordPaths | None = None) -> None:
        """``paths``: count, and number each packet's path there (``Outcomes.path``)."""
        self.kind = _kind(prog)
        if not batchable(prog):
            raise XsimError(f"the capture loop does not run these {prog.prog_type} programs "
                            "(another hook, or tail calls it cannot link)")
        self.program: Program = prog.hooked()
        #: the program the packets run, when the loop runs its linked code
        self.entry: Program | None = None
        if self.program._tail_calls:
            link = self.program.linked()
            assert link is not None
            link.enter(self.program)
            self.entry, self.program = self.program, link
        self.hook = HOOKS.get(prog.spec.prog_type)
        self.budget = DEFAULT_BUDGET if budget is None else budget
        self.paths = paths
        #: the JIT tier's native code, or None for the interpreter
        self.native = None
        if tier == "jit":
            from ..jit.driver import native
            self.native = native(self.program, profile=paths is not None)
        self.space = self.program.space
        self.ctx0 = _NO_CTX
        self._layout()
        self.bs = np.zeros(B_WORDS, dtype=np.int64)
        self.bs[B_DIRTY] = 1
        self.cache = _PathCache(self.program.n_slots)

    def _layout(self) -> None:
        """The regions as the hook's test run lays them out, at the loop's sizes."""
        space = self.space
        if self.kind == XDP:
            start = space.by_name["packet"].vaddr
            ctx = XDP_MD.pack(0, 0, 0, LOOPBACK_IFINDEX, 0, 0) + PTRS.pack(
                start + XDP_PACKET_HEADROOM, start + XDP_PACKET_HEADROOM + ETH_HLEN,
                start + XDP_PACKET_HEADROOM, start, PAGE_SIZE)
            self.program.prepare(ctx, bytes(PAGE_SIZE),
                                 (XDP_PACKET_HEADROOM, XDP_PACKET_HEADROOM + ETH_HLEN))
            return
        hook = self.hook
        # a fresh run's helper state, for the next packet that calls a helper written in
        # Python (the JIT's calls them from inside the loop); a packet's Python helpers
        # see the loop's buffer, longer than its test run's, which changes only where
        # past the frame's end the zeros stop
        SKB_STATES[space] = hook.state()
        self.ctx0 = np.frombuffer(bytes(hook.base_context(space)), dtype=np.uint8)
        space.fill(SOCK_REGION, bytes(BPF_SOCK_SIZE))
        start = space.by_name["packet"].vaddr + hook.start
        ctx = bytes(self.ctx0) + SKB_PTRS.pack(start, start, start)
        self.program.prepare(ctx, bytes(SKB_BUFFER), (hook.start, hook.start),
                             hook.headers)

    def eligible(self, batch: PacketBatch) -> np.ndarray:
        """The packets the loop runs (the others run the ordinary way, which runs or
        refuses them as the test run does)."""
        ok = (batch.linktype == ETHERNET) & (batch.caplen >= batch.orig_len) & (
            batch.caplen >= ETH_HLEN)
        if self.kind == XDP:
            return ok & (batch.caplen <= MAX_LINEAR)
        ok &= batch.caplen <= SKB_MAX_FRAME
        some = np.flatnonzero(ok)
        at = batch.offset[some] + 12                    # the ethertype
        proto = batch.data[at].astype(np.int64) << 8 | batch.data[at + 1]
        need = np.full(len(some), ETH_HLEN, dtype=np.int64)
        for p, n in FRAME_MIN.items():
            need[proto == p] = n
        ok[some] = batch.caplen[some] >= need
        return ok

    def _refresh(self) -> None:
        """Host offsets of the regions the loop writes (a Python helper may have moved
        them)."""
        space, bs = self.space, self.bs
        packet, memory = space.by_name["packet"], space.by_name["memory"]
        bs[B_PKT_HOST], bs[B_PKT_VADDR], bs[B_PKT_ROW] = packet.host, packet.vaddr, packet.index
        bs[B_CTX_HOST] = memory.host
        # the loop writes without bounds checks: these are what make that safe
        if self.kind == XDP:
            bs[B_PKT_SIZE] = PAGE_SIZE
            small = packet.capacity < PAGE_SIZE or memory.capacity < PTRS_AT + PTRS.size
        else:
            sock = space.by_name[SOCK_REGION]
            bs[B_PKT_SIZE] = max(packet.size, SKB_BUFFER)
            bs[B_SOCK_HOST] = sock.host
            small = (packet.capacity < bs[B_PKT_SIZE] or sock.capacity < BPF_SOCK_SIZE
                     or memory.capacity < SKB_PTRS_AT + SKB_PTRS.size)
        if small:
            raise XsimError("the batch loop's packet or context region is too small")

    def run(self, batch: PacketBatch, slow, out: Outcomes) -> None:
        """Every packet of ``batch`` into ``out``; ``slow(i)`` runs packet ``i`` the
        ordinary way (the loop hands it over)."""
        prog, bs = self.program, self.bs
        if len(batch) and int((batch.offset + batch.caplen).max()) > len(batch.data):
            raise XsimError("a packet batch whose packets run past its data")
        eligible = self.eligible(batch)
        bs[B_NEXT], bs[B_PHASE], bs[B_OUTPOS], bs[B_BUDGET] = 0, START, out.outpos, self.budget
        frame = Frame()
        _FRAMES[self.space] = frame
        calls: dict[int, int] = {}
        native = self.native
        cache = self.cache
        while True:
            self._refresh()
            if native is not None:
                native.prepare(self.budget, calls)
            cache.fit(self.space.table)
            bs[B_KNOWN] = cache.n
            why = _loop(self.kind, self.ctx0, prog._code, prog._st, self.space.mem,
                        self.space.table, prog._counts, bs, batch.data, batch.offset,
                        batch.caplen, eligible, out.r0, out.insns, out.served,
                        out.redirect_words, out.outcome,
                        out.out, out.out_off, out.out_len, native.code.entry if native else 0,
                        native.env if native else _NO_ENV, self.paths is not None,
                        cache.rows, cache.hashes, cache.paths, out.path)
            i = int(bs[B_CUR])
            out.outpos = int(bs[B_OUTPOS])
            if why == DONE:
                if self.kind == XDP:
                    self._redirects(out)
                return
            if why == HELPER:
                error, _ = prog._call_helper(calls, 0)
                if error is not None:
                    out.outcome[i] = FAILED
                    out.insns[i] = prog._st[ip.S_INSNS]
                    out.served[i] = prog._st[ip.CORE_WORDS]
                    out.errors[i] = str(error)
                    bs[B_PHASE], bs[B_PYTHON], bs[B_DIRTY] = START, 0, 1
                    self._end_python(i, frame, calls, out, False)
                    self._number(i, out)
                continue
            if why == FAULT:
                failed = native.error if native is not None else None
                out.errors[i] = str(failed or prog.error_of(int(prog._st[ip.S_STATUS])))
                self._end_python(i, frame, calls, out, False)
                self._number(i, out)
            elif why == PYTHON_END:
                self._end_python(i, frame, calls, out, True)
                self._number(i, out)
            elif why == NEW_PATH:
                self._number(i, out)
                cache.add(prog._counts, self.space.table, int(out.served[i, 0]),
                          int(out.path[i]))
            elif why == OUT_FULL:
                out.grow(PAGE_SIZE)
            elif why == SLOW:
                out.outpos = int(bs[B_OUTPOS])
                slow(i)
                bs[B_OUTPOS] = out.outpos
                # the ordinary run refilled the regions: lay out the batch's again
                self._layout()
                _FRAMES[self.space] = frame
                bs[B_DIRTY] = 1

    def _number(self, i: int, out: Outcomes) -> None:
        """Packet ``i``'s path, from the counters its run left (with ``paths`` only)."""
        if self.paths is None:
            return
        counts = self.space.table[1:, ip.RG_READS:ip.RG_WRITES + 1].tolist()
        programs = [self.program] if self.entry is None else self.program.traced(self.entry)
        trace = Trace.of(programs, out.helper_calls(i), dict(zip(self.space.names, counts)))
        out.path[i] = self.paths.number(trace)

    def _redirects(self, out: Outcomes) -> None:
        """Where the packets the loop ran to XDP_REDIRECT went, from their runs' words."""
        ran = np.flatnonzero((out.outcome == RAN) & (out.redirect_words[:, 0] != ip.REDIRECT_NONE)
                             & (out.r0 & np.uint64(0xFFFFFFFF) == XDP_REDIRECT))
        if not len(ran):
            return
        # a batch redirects to a few targets: each resolved once
        words, which = np.unique(out.redirect_words[ran], axis=0, return_inverse=True)
        wheres = [redirect_of(kind, to, self.space) for kind, to in words.tolist()]
        out.redirect.update((i, wheres[w]) for i, w in zip(ran.tolist(), which.ravel().tolist())
                            if wheres[w] is not None)

    def _end_python(self, i: int, frame: Frame, calls: dict[int, int], out: Outcomes,
                    ran: bool) -> None:
        """Packet ``i`` is over after Python had a part in it (``ran``: it returned): its
        helper calls, a TC redirect and clones into ``out``, and the helpers' state
        cleared (an XDP redirect is in its words: ``_redirects``)."""
        if calls:
            out.calls[i] = dict(calls)
            calls.clear()
        verdict = int(out.r0[i]) & 0xFFFFFFFF
        if self.kind != XDP:
            state = SKB_STATES.get(self.space)
            if ran and state is not None:
                if state.redirect is not None and verdict == TC_ACT_REDIRECT:
                    out.redirect[i] = ("ifindex", state.redirect[0])
                if state.clones:
                    out.clones[i] = list(state.clones)
            SKB_STATES[self.space] = self.hook.state()     # for the next packet
        frame.frags.clear()
