"""XDP over many packets in one compiled loop: the fast path of a capture run.

A capture run makes one test run per packet.  Done from Python, setting up a
packet costs far more than a short program takes to run, so for XDP programs
the per-packet loop itself is compiled: :func:`_xdp_loop` lays out each frame
exactly as ``XdpHook.test_run`` does (a zeroed page, 256 bytes of headroom,
the ``xdp_md`` image and its pointers), runs the interpreter core on it, and
copies its ``data_out`` into an output buffer.  It returns to Python only
for what Python must do: a helper written in Python (the loop resumes after
it), a fault, a packet the test run would treat otherwise (too short, too
long for one page, not Ethernet: run one at a time by the caller), or a full
output buffer.  Packets that Python helpers touched end with a return to
Python too, so that a redirect's target is picked up; their page is zeroed
before the next packet, since those helpers may write outside the window.

With ``paths`` (a capture run that writes records) the loop counts executions per pc
and numbers each packet's path: a packet whose counts, region accesses and compiled
lookups are those of a path it has seen gets that path's number in the loop; the first
packet of a new path returns to Python, which numbers it (``workload.RecordPaths``) and
adds it to the loop's :class:`_PathCache`.

Programs that tail call run packet by packet (the loop runs one program).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..elf.kinds import ProgType
from ..errors import XsimError
from ..isa import interp as ip
from ..isa.memops import copy_bytes, load64, store32, store64, zero_bytes
from ..jit.call import call_entry
from ..jit.lift import ENV_PY_CALLS, HANDOFF
from ..runtime.program import DEFAULT_BUDGET, Program
from .pcap import ETHERNET, PacketBatch
from .workload import RecordPaths, Trace
from .xdp import (_FRAMES, ETH_HLEN, LOOPBACK_IFINDEX, PAGE_SIZE, PTRS, PTRS_AT, SHINFO_SIZE,
                  XDP_MD, XDP_PACKET_HEADROOM, Frame)

# -- the batch state words (``bs``, int64) ----------------------------------------------
(B_NEXT, B_CUR, B_PHASE, B_OUTPOS, B_PYTHON, B_DIRTY,
 B_PKT_HOST, B_PKT_VADDR, B_PKT_ROW, B_CTX_HOST, B_BUDGET, B_KNOWN) = range(12)
B_WORDS = 12
# phases: start the next packet, resume the current one after a helper, record its output
START, RESUME, RECORD = 0, 1, 2
# why the loop returned
DONE, HELPER, FAULT, SLOW, OUT_FULL, PYTHON_END, NEW_PATH = range(7)
# per-packet outcome
NOT_RUN, RAN, FAILED = 0, 1, 2
#: the largest frame that fits one page after headroom and skb_shared_info
MAX_LINEAR = PAGE_SIZE - XDP_PACKET_HEADROOM - SHINFO_SIZE
_MD_INGRESS = 12                    # offsetof(struct xdp_md, ingress_ifindex)
_U32 = np.uint64(0xFFFFFFFF)
_NO_ENV = np.zeros(1, dtype=np.int64)
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@njit(cache=True)
def _start_packet(mem, rg, bs, data, off, n):
    """The page, the window and the context of a fresh test run on ``data[off:off+n]``."""
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
def _xdp_loop(code, st, mem, rg, counts, bs, data, offset, length, eligible,
              r0, insns, fast, outcome, out, out_off, out_len, native, env,
              prof, known, hashes, known_path, path):
    """Run packets ``bs[B_NEXT]..`` until all are done or Python must act (see DONE..).

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
            _start_packet(mem, rg, bs, data, offset[i], length[i])
            if native:
                status = call_entry(native, st, env, 1, 1)
                if env[ENV_PY_CALLS]:
                    env[ENV_PY_CALLS] = 0
                    bs[B_PYTHON] = 1
                if status == HANDOFF:     # the budget ends in a block: the interpreter's
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
            fast[i] = st[ip.S_FAST_LOOKUPS]
            return FAULT
        rv = st[ip.R_BASE]
        # data_out, as the test run gives it for every action: [data_meta, data_end)
        c = bs[B_CTX_HOST]
        lo = bs[B_PKT_VADDR]
        meta = np.int64(load64(mem, np.uint64(c + PTRS_AT + 16))) - lo
        end = np.int64(load64(mem, np.uint64(c + PTRS_AT + 8))) - lo
        meta = min(max(meta, 0), PAGE_SIZE)
        end = min(max(end, meta), PAGE_SIZE)
        k = end - meta
        pos = bs[B_OUTPOS]
        if pos + k > len(out):
            bs[B_PHASE] = RECORD
            return OUT_FULL
        h = bs[B_PKT_HOST]
        copy_bytes(out, pos, mem, h + meta, k)
        out_off[i] = pos
        out_len[i] = k
        bs[B_OUTPOS] = pos + k
        r0[i] = rv
        insns[i] = st[ip.S_INSNS]
        fast[i] = st[ip.S_FAST_LOOKUPS]
        outcome[i] = RAN
        bs[B_PHASE] = START
        if bs[B_PYTHON]:
            bs[B_PYTHON] = 0
            bs[B_DIRTY] = 1
            return PYTHON_END
        if prof:
            k = _known_path(counts, rg, fast[i], known, hashes, bs[B_KNOWN])
            if k < 0:
                return NEW_PATH
            path[i] = known_path[k]


def batchable(prog) -> bool:
    """Whether the compiled loop can run ``prog`` (an ObjectProgram) over a capture."""
    return prog.spec.prog_type is ProgType.XDP and not prog.hooked()._tail_calls


class Outcomes:
    """What each packet of one batch did: arrays for every packet, dicts for the rare."""

    def __init__(self, n: int, out_bytes: int) -> None:
        self.r0 = np.zeros(n, dtype=np.uint64)
        self.insns = np.zeros(n, dtype=np.uint64)
        self.fast = np.zeros(n, dtype=np.uint64)
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
        if self.fast[i]:
            calls[ip.MAP_LOOKUP_ELEM] = calls.get(ip.MAP_LOOKUP_ELEM, 0) + int(self.fast[i])
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


class XdpBatchRunner:
    """Runs an XDP program's test runs over batches of packets in :func:`_xdp_loop`."""

    def __init__(self, prog, budget: int | None = None, tier: str = "interp",
                 paths: RecordPaths | None = None) -> None:
        """``paths``: count, and number each packet's path there (``Outcomes.path``)."""
        self.program: Program = prog.hooked()
        self.budget = DEFAULT_BUDGET if budget is None else budget
        self.paths = paths
        #: the JIT tier's native code, or None for the interpreter
        self.native = None
        if tier == "jit":
            from ..jit.driver import native
            self.native = native(self.program, profile=paths is not None)
        space = self.program.space
        self.space = space
        start = space.by_name["packet"].vaddr
        ctx = XDP_MD.pack(0, 0, 0, LOOPBACK_IFINDEX, 0, 0) + PTRS.pack(
            start + XDP_PACKET_HEADROOM, start + XDP_PACKET_HEADROOM + ETH_HLEN,
            start + XDP_PACKET_HEADROOM, start, PAGE_SIZE)
        self.program.prepare(ctx, bytes(PAGE_SIZE),
                             (XDP_PACKET_HEADROOM, XDP_PACKET_HEADROOM + ETH_HLEN))
        self.bs = np.zeros(B_WORDS, dtype=np.int64)
        self.bs[B_DIRTY] = 1
        self.cache = _PathCache(self.program.n_slots)

    def _refresh(self) -> None:
        """Host offsets of the packet and context (a Python helper may have moved them)."""
        space, bs = self.space, self.bs
        packet, memory = space.by_name["packet"], space.by_name["memory"]
        bs[B_PKT_HOST], bs[B_PKT_VADDR], bs[B_PKT_ROW] = packet.host, packet.vaddr, packet.index
        bs[B_CTX_HOST] = memory.host
        # the loop writes without bounds checks: these are what make that safe
        if packet.capacity < PAGE_SIZE or memory.capacity < PTRS_AT + PTRS.size:
            raise XsimError("the batch loop's packet or context region is too small")

    def run(self, batch: PacketBatch, slow, out: Outcomes) -> None:
        """Every packet of ``batch`` into ``out``; ``slow(i)`` runs packet ``i`` the
        ordinary way (the loop hands it over)."""
        prog, bs = self.program, self.bs
        if len(batch) and int((batch.offset + batch.caplen).max()) > len(batch.data):
            raise XsimError("a packet batch whose packets run past its data")
        eligible = ((batch.linktype == ETHERNET) & (batch.caplen >= batch.orig_len)
                    & (batch.caplen >= ETH_HLEN) & (batch.caplen <= MAX_LINEAR))
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
            why = _xdp_loop(prog._code, prog._st, self.space.mem, self.space.table,
                            prog._counts, bs, batch.data, batch.offset, batch.caplen, eligible,
                            out.r0, out.insns, out.fast, out.outcome, out.out, out.out_off,
                            out.out_len, native.code.entry if native else 0,
                            native.env if native else _NO_ENV, self.paths is not None,
                            cache.rows, cache.hashes, cache.paths, out.path)
            i = int(bs[B_CUR])
            out.outpos = int(bs[B_OUTPOS])
            if why == DONE:
                return
            if why == HELPER:
                error, _ = prog._call_helper(calls, 0)
                if error is not None:
                    out.outcome[i] = FAILED
                    out.insns[i] = prog._st[ip.S_INSNS]
                    out.fast[i] = prog._st[ip.S_FAST_LOOKUPS]
                    out.errors[i] = str(error)
                    bs[B_PHASE], bs[B_PYTHON], bs[B_DIRTY] = START, 0, 1
                    self._end_python(i, frame, calls, out)
                    self._number(i, out)
                continue
            if why == FAULT:
                failed = native.error if native is not None else None
                out.errors[i] = str(failed or prog.error_of(int(prog._st[ip.S_STATUS])))
                self._end_python(i, frame, calls, out)
                self._number(i, out)
            elif why == PYTHON_END:
                if frame.redirect is not None and out.r0[i] & 0xFFFFFFFF == 4:
                    out.redirect[i] = frame.redirect
                self._end_python(i, frame, calls, out)
                self._number(i, out)
            elif why == NEW_PATH:
                self._number(i, out)
                cache.add(prog._counts, self.space.table, int(out.fast[i]), int(out.path[i]))
            elif why == OUT_FULL:
                out.grow(PAGE_SIZE)
            elif why == SLOW:
                out.outpos = int(bs[B_OUTPOS])
                slow(i)
                bs[B_OUTPOS] = out.outpos
                # the ordinary run refilled the regions: lay out the batch's again
                self.program.prepare(self.space.bytes_of("memory"), bytes(PAGE_SIZE),
                                     (XDP_PACKET_HEADROOM, XDP_PACKET_HEADROOM + ETH_HLEN))
                _FRAMES[self.space] = frame
                bs[B_DIRTY] = 1

    def _number(self, i: int, out: Outcomes) -> None:
        """Packet ``i``'s path, from the counters its run left (with ``paths`` only)."""
        if self.paths is None:
            return
        counts = self.space.table[1:, ip.RG_READS:ip.RG_WRITES + 1].tolist()
        trace = Trace.of([self.program], out.helper_calls(i), dict(zip(self.space.names,
                                                                         counts)))
        out.path[i] = self.paths.number(trace)

    @staticmethod
    def _end_python(i: int, frame: Frame, calls: dict[int, int], out: Outcomes) -> None:
        if calls:
            out.calls[i] = dict(calls)
            calls.clear()
        frame.redirect = None
        frame.frags.clear()
