"""The interpreter: a numba-compiled dispatch loop over decoded instructions.

Semantics follow RFC 9669 section 4-5: division by zero gives 0 and modulo
by zero leaves dst unchanged (32-bit forms zero-extend), INT_MIN / -1 wraps,
shift counts are masked to the operand width, every 32-bit result is
zero-extended.  The loop never calls back into Python per instruction: it
returns a status to the Python driver (``xsim.runtime``) only to run a
helper written in Python, on a fault, or when all runs are done.

Everything lives in four arrays so that the driver can resume a stopped
run and so that one call crosses the Python/numba boundary cheaply:

``code``   uint64[n_slots, 4], built by :func:`lower`: ``exec id, a, b, c``
           where ``a``/``b`` are indexes into ``st`` (registers, or for an
           immediate operand the constant slot of that instruction) and
           ``c`` is an offset, a jump target or a helper id.
``st``     uint64 state: control words ``S_*``, registers at ``R_BASE``,
           call frames at ``F_BASE``, constants at ``C_BASE + pc``.
``mem``    uint8 host memory holding every region.
``rg``     uint64[n_regions, RG_COLS] region table (see ``RG_*``). A virtual
           address selects row ``addr >> 32``; row 0 is "no region", so a
           NULL pointer always faults.
"""
from __future__ import annotations

import errno

import numpy as np
from numba import njit, types

from . import opcodes as oc
from .insn import Insn
from .memops import (copy_bytes, load8, load16, load32, load64, store8, store16, store32,
                     store64, zero_bytes)
from .opcodes import Field, Kind

U64 = np.uint64
M32 = U64(0xFFFFFFFF)
M16 = U64(0xFFFF)
M8 = U64(0xFF)
ZERO, ONE = U64(0), U64(1)
SIGN64 = U64(1 << 63)
BAD = U64(0xFFFFFFFFFFFFFFFF)

# -- control words of ``st`` ---------------------------------------------------
S_PC, S_STATUS, S_INSNS, S_DEPTH = 0, 1, 2, 3
S_FAULT_ADDR, S_FAULT_SIZE, S_FAULT_KIND, S_HELPER = 4, 5, 6, 7
S_RUNS_LEFT, S_BUDGET, S_TOTAL, S_PROF = 8, 9, 10, 11
S_PKT_REGION, S_STACK_REGION, S_STOP, S_RUNS_DONE = 12, 13, 14, 15
S_INIT_R1, S_INIT_R2, S_STACK_TOP, S_STACK_HOST = 16, 17, 18, 19
S_BASE_DEPTH = 20      # an exit at this call depth ends the run (a callback's is > 0)
S_CPU, S_FAST_LOOKUPS = 21, 22   # the CPU per-CPU arrays answer for; lookups served here
# LD_ABS/LD_IND's negative offsets (SKF_NET_OFF, SKF_LL_OFF): where the network and MAC
# headers are, and how far back the buffer goes, as signed offsets from the packet window
S_PKT_NET, S_PKT_MAC, S_PKT_HEAD = 23, 24, 25
# The calls of each helper of CORE_IDS the core served (see serve_core), from
# S_CORE_CALLS on
S_CORE_CALLS = 26
R_BASE = 32            # r0..r10 (and 5 spare slots)
# In the first of those: where the context keeps its packet pointers (bits 0-15; data,
# data_end, data_meta and for XDP the hard start, as the hook lays them out; 0: it keeps
# none) and which helpers of CORE_IDS the core may serve (bit CORE_BIT + k for the k-th)
S_CORE = R_BASE + 11
# Where the run's last bpf_redirect or bpf_redirect_map (XDP's) sent the packet: one of
# REDIRECT_NONE, REDIRECT_IFINDEX (S_REDIRECT_TO: the ifindex) and REDIRECT_SLOT
# (S_REDIRECT_TO: the map's region row << 32 | the key); the Python helpers write them too
S_REDIRECT, S_REDIRECT_TO = R_BASE + 12, R_BASE + 13
#: both, as one slice (a list of words costs a numpy index 0.5 us, a tenth of a run)
S_REDIRECT_WORDS = slice(S_REDIRECT, S_REDIRECT_TO + 1)
REDIRECT_NONE, REDIRECT_IFINDEX, REDIRECT_SLOT = 0, 1, 2
# the served-call counts of the helpers of CORE_IDS past the sixth
S_MORE_CALLS = R_BASE + 14
# A program linked with the programs it may tail call (xsim.runtime.tailcall): nonzero in
# S_LINK, and the core serves bpf_tail_call itself (a prog array's slot holds the pc + 1
# of its program in the linked code); each run starts at S_ENTRY; S_CHAIN counts the
# run's tail calls (the kernel's limit is MAX_TAIL_CALLS), S_TAIL_CALLS those served
S_LINK, S_ENTRY, S_CHAIN, S_TAIL_CALLS = 48, 49, 50, 51
F_BASE = 52            # call frames: return pc, r6..r9, spare
F_SIZE = 6
C_BASE = F_BASE + F_SIZE * oc.MAX_CALL_FRAMES
STATE_WORDS = C_BASE   # plus one constant slot per instruction slot

# -- region table columns ------------------------------------------------------
RG_VBASE, RG_SIZE, RG_HOST, RG_PERM, RG_READS, RG_WRITES = range(6)
# A map's values region also describes the map (RG_MAP_KIND says which kind), so that
# bpf_map_lookup_elem on it runs here, without going back to Python.  An array: value
# stride, entries, per-CPU value size (or 0).
RG_ARRAY_STRIDE, RG_ARRAY_ENTRIES, RG_ARRAY_PERCPU = 6, 7, 8
# An array whose slots may be empty (a devmap, an xskmap) names an internal region
# ``uint8 present[entries]`` here (0: every slot is there): a lookup of an empty one is NULL.
RG_ARRAY_PRESENT = 10
RG_MAP_KIND = 9             # MAP_KIND_*: which columns below hold the description
# A hash map's values region describes the map too: value stride, per-CPU value size
# (or 0), the region index of its key index (an internal region: ``int32 buckets[mask+1]``
# at 0, ``uint64 hashes[capacity]`` at ``align8(4 * (mask + 1))``, then ``uint8
# keys[capacity][max(key_size, 1)]``; see memory.hash_index_layout), key size, bucket
# mask, capacity.  The index's row gives its host offset, so relayouts are followed.
RG_HASH_STRIDE, RG_HASH_PERCPU, RG_HASH_INDEX = 10, 11, 12
RG_HASH_KEY_SIZE, RG_HASH_MASK, RG_HASH_CAPACITY = 13, 14, 15
# An LRU hash map's row also names an internal region ``uint8 used[capacity]`` (0: not
# an LRU map): a lookup that finds slot s sets used[s], the kernel's
# bpf_lru_node_set_ref, which the map's Python LRU lists take in before they next act.
RG_HASH_USED = RG_ARRAY_STRIDE
# An LPM trie (MAP_KIND_LPM) uses the hash columns: value stride (never per-CPU), its
# index region (the hash index of keys ``u32 prefixlen`` + data with the bits past the
# prefix cleared, then ``int32 plen_count[(key_size - 4) * 8 + 1]`` at
# ``align8(keys + capacity * key_size)``; see memory.lpm_index_layout), key size (4 +
# data bytes), bucket mask, capacity.
RG_LPM_STRIDE, RG_LPM_INDEX, RG_LPM_KEY_SIZE = RG_HASH_STRIDE, RG_HASH_INDEX, RG_HASH_KEY_SIZE
RG_LPM_MASK, RG_LPM_CAPACITY = RG_HASH_MASK, RG_HASH_CAPACITY
RG_COLS = 16
MAP_KIND_NONE, MAP_KIND_ARRAY, MAP_KIND_HASH, MAP_KIND_LPM = 0, 1, 2, 3
# or'ed into an array's or a hash's kind: a map of maps, whose values are the inner maps'
# pointers (their values regions' addresses), which a lookup returns, or NULL
MAP_OF_MAPS = 4
# a prog array (RG_ARRAY_ENTRIES: its max_entries): no lookups, only bpf_tail_call
MAP_KIND_PROG_ARRAY = 8
#: The helper the loop serves itself for array, hash and LPM trie maps (the kernel
#: inlines the array one too).
MAP_LOOKUP_ELEM = 1
#: Other helpers the loop serves itself where the program's registry says so
#: (``Helper.core``): the skb helpers (xsim.nic.skb), bpf_xdp_adjust_head (xsim.nic.xdp)
#: and bpf_csum_diff.  The ids are the helper table's.
SKB_LOAD_BYTES, SKB_STORE_BYTES, L3_CSUM_REPLACE, L4_CSUM_REPLACE = 26, 9, 10, 11
XDP_ADJUST_HEAD, CSUM_DIFF = 44, 28
REDIRECT, REDIRECT_MAP = 23, 51          # XDP's bpf_redirect and bpf_redirect_map
#: those of them that work on the context's packet pointers
PTRS_CORE_IDS = (SKB_LOAD_BYTES, SKB_STORE_BYTES, L3_CSUM_REPLACE, L4_CSUM_REPLACE,
                 XDP_ADJUST_HEAD)
CORE_IDS = PTRS_CORE_IDS + (CSUM_DIFF, REDIRECT, REDIRECT_MAP)
CORE_BIT = 16
PTRS_MASK = (1 << CORE_BIT) - 1
#: sizeof(struct xdp_frame): adjust_head may not move data below hard_start + this;
#: ETH_HLEN: what it must leave of the frame
XDP_FRAME_SIZE, ETH_HLEN = 40, 14
#: every helper the loop serves, with the state word that counts the calls it served
CORE_CALL_WORDS = tuple(range(S_CORE_CALLS, R_BASE)) + (S_MORE_CALLS, S_MORE_CALLS + 1)
assert len(CORE_CALL_WORDS) == len(CORE_IDS) and S_MORE_CALLS + 1 < F_BASE
#: bpf_tail_call, served in a linked program; the kernel's MAX_TAIL_CALL_CNT, the tail
#: calls a run may make
TAIL_CALL, MAX_TAIL_CALLS = 12, 33
CORE_COUNTS = ((MAP_LOOKUP_ELEM, S_FAST_LOOKUPS), *zip(CORE_IDS, CORE_CALL_WORDS),
               (TAIL_CALL, S_TAIL_CALLS))
# uapi/linux/bpf.h: the XDP actions the redirect helpers return, and their flags
XDP_ABORTED, XDP_REDIRECT = 0, 4
BPF_F_ACTION_MASK = 3                  # XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX
BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1 << 3, 1 << 4
# uapi/linux/bpf.h's flags of those helpers, and include/net/checksum.h's mangled zero
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
BPF_F_HDR_FIELD_MASK, BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0 = 0xF, 1 << 4, 1 << 5
BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 1 << 6, 1 << 7
CSUM_MANGLED_0 = 0xFFFF
#: 64-bit FNV-1a, as xsim.runtime.maps._table.fnv1a with seed 0
FNV_OFFSET, FNV_PRIME = U64(0xCBF29CE484222325), U64(0x100000001B3)
#: an empty bucket of a hash index (int32 -1)
HASH_EMPTY = M32
PERM_R, PERM_W = U64(1), U64(2)
REGION_SHIFT = 32
#: where in its 4 GiB slot a region starts (xsim.runtime.memory.slot_address)
SLOT_OFFSET = 0x1000

# -- how run_core starts: go on after a helper, start runs, start a tail call ---
RESUME, FRESH, FRESH_KEEP_COUNTS = 0, 1, 2

# -- statuses returned by :func:`run_core` -------------------------------------
DONE, HELPER, FAULT, BUDGET, DEPTH, UNRESOLVED = range(6)
# fault kinds (S_FAULT_KIND)
ACCESS_READ, ACCESS_WRITE, ACCESS_ATOMIC = 1, 2, 3
ACCESS_NAMES = {ACCESS_READ: "read", ACCESS_WRITE: "write", ACCESS_ATOMIC: "atomic access"}

E = oc.EXEC_ID
# The exec ids as compile-time constants of the loop below.
(ADD64, SUB64, MUL64, DIV64, OR64, AND64, LSH64, RSH64, MOD64, XOR64, MOV64, ARSH64,
 SDIV64, SMOD64, NEG64, MOVSX8_64, MOVSX16_64, MOVSX32_64,
 ADD32, SUB32, MUL32, DIV32, OR32, AND32, LSH32, RSH32, MOD32, XOR32, MOV32, ARSH32,
 SDIV32, SMOD32, NEG32, MOVSX8_32, MOVSX16_32) = (E[n] for n in (
    "add64", "sub64", "mul64", "div64", "or64", "and64", "lsh64", "rsh64", "mod64", "xor64",
    "mov64", "arsh64", "sdiv64", "smod64", "neg64", "movsx8_64", "movsx16_64", "movsx32_64",
    "add32", "sub32", "mul32", "div32", "or32", "and32", "lsh32", "rsh32", "mod32", "xor32",
    "mov32", "arsh32", "sdiv32", "smod32", "neg32", "movsx8_32", "movsx16_32"))
LE16, LE32, LE64, BE16, BE32, BE64 = (E[n] for n in ("le16", "le32", "le64", "be16", "be32", "be64"))
(JEQ64, JGT64, JGE64, JSET64, JNE64, JSGT64, JSGE64, JLT64, JLE64, JSLT64, JSLE64,
 JEQ32, JGT32, JGE32, JSET32, JNE32, JSGT32, JSGE32, JLT32, JLE32, JSLT32, JSLE32) = (
    E[c + w] for w in ("64", "32") for c in oc.JMP_CONDS)
JA, CALL_HELPER, CALL_LOCAL, CALL_KFUNC, CALLX, EXIT = (
    E[n] for n in ("ja", "call_helper", "call_local", "call_kfunc", "callx", "exit"))
LDDW, LDDW_UNRESOLVED = E["lddw"], E["lddw_unresolved"]
LDABS1, LDABS2, LDABS4, LDIND1, LDIND2, LDIND4 = (
    E[n] for n in ("ldabs1", "ldabs2", "ldabs4", "ldind1", "ldind2", "ldind4"))
LDX1, LDX2, LDX4, LDX8, LDXS1, LDXS2, LDXS4 = (
    E[n] for n in ("ldx1", "ldx2", "ldx4", "ldx8", "ldxs1", "ldxs2", "ldxs4"))
ST1, ST2, ST4, ST8 = (E[n] for n in ("st1", "st2", "st4", "st8"))
(A_ADD32, A_OR32, A_AND32, A_XOR32, A_FADD32, A_FOR32, A_FAND32, A_FXOR32, A_XCHG32, A_CMPXCHG32,
 A_ADD64, A_OR64, A_AND64, A_XOR64, A_FADD64, A_FOR64, A_FAND64, A_FXOR64, A_XCHG64,
 A_CMPXCHG64) = (E[f"atomic_{n}{w}"] for w in ("32", "64") for n in (
    "add", "or", "and", "xor", "fetch_add", "fetch_or", "fetch_and", "fetch_xor", "xchg",
    "cmpxchg"))
# The atomic and packet-load branches below test id ranges: check the table keeps them together.
assert [A_ADD32 + i for i in range(20)] == [
    A_ADD32, A_OR32, A_AND32, A_XOR32, A_FADD32, A_FOR32, A_FAND32, A_FXOR32, A_XCHG32, A_CMPXCHG32,
    A_ADD64, A_OR64, A_AND64, A_XOR64, A_FADD64, A_FOR64, A_FAND64, A_FXOR64, A_XCHG64, A_CMPXCHG64]
assert sorted((LDABS1, LDABS2, LDABS4, LDIND1, LDIND2, LDIND4)) == list(range(LDABS1, LDABS1 + 6))
assert LDIND4 == LDABS1 + 5

#: Exec id of the second slot of an LD_IMM64: never executed (decode forbids jumping there).
FILLER = U64(len(oc.EXEC_NAMES))


#: the kernel's SKF_NET_OFF and SKF_LL_OFF: LD_ABS/LD_IND offsets from those headers
SKF_NET_OFF, SKF_LL_OFF = -0x100000, -0x200000
#: LD_IMM64's src for "address of a subprogram" (BPF_PSEUDO_FUNC)
LDDW_FUNC = next(k for k, (name, _) in oc.LDDW_KINDS.items() if name == "func")
#: Function pointers live outside every region (so dereferencing one faults): this
#: base plus 8 times the subprogram's first slot.
FUNC_PTR_BASE = 0xFFFF_FFF0_0000_0000


def function_pointer(slot: int) -> int:
    return FUNC_PTR_BASE + slot * 8


def function_slot(pointer: int, n_slots: int) -> int | None:
    """The slot a function pointer names, or None if it is not one."""
    off = pointer - FUNC_PTR_BASE
    if 0 <= off < n_slots * 8 and off % 8 == 0:
        return off // 8
    return None


def lower(insns: list[Insn], n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoded instructions -> (code array, constant slots) for :func:`run_core`."""
    code = np.zeros((n_slots, 4), dtype=np.uint64)
    code[:, 0] = FILLER
    consts = np.zeros(n_slots, dtype=np.uint64)
    mask = (1 << 64) - 1
    for i in insns:
        op, pc = i.op, i.pc
        slot = C_BASE + pc
        a, b, c = R_BASE + i.dst, R_BASE + i.src, 0
        exec_id = oc.EXEC_ID[op.exec]
        if op.kind is Kind.LDDW:
            consts[pc] = i.value
            b = slot
            if op.disc_value == LDDW_FUNC:   # a subprogram's address: resolvable right here
                consts[pc] = function_pointer(i.target)
                exec_id = LDDW
        elif op.kind in (Kind.ALU, Kind.JCOND, Kind.ST) and op.imm is Field.VALUE:
            consts[pc] = i.imm & mask        # sign-extended, as RFC 9669 says for imm
            b = slot
        if op.kind in (Kind.LDX, Kind.ST, Kind.STX, Kind.ATOMIC):
            c = i.off
        elif op.kind is Kind.LDPKT:
            c = i.imm
        elif op.kind is Kind.CALL and op.disc_value == oc.CALL_HELPER:
            c = i.imm & 0xFFFFFFFF
        elif i.target is not None:
            c = i.target
        code[pc] = (exec_id, a, b, c & mask)
    return code, consts


@njit(cache=True)
def _sx32(x):
    """Low 32 bits of x, sign-extended to int64."""
    return np.int64(np.int32(x & M32))


@njit(cache=True)
def _neg(x):
    return ZERO - x


@njit(cache=True)
def _bswap16(x):
    return ((x & M8) << U64(8)) | ((x >> U64(8)) & M8)


@njit(cache=True)
def _bswap32(x):
    return (((x & M8) << U64(24)) | ((x & U64(0xFF00)) << U64(8))
            | ((x >> U64(8)) & U64(0xFF00)) | ((x >> U64(24)) & M8))


@njit(cache=True)
def _bswap64(x):
    return (_bswap32(x) << U64(32)) | _bswap32(x >> U64(32))


@njit(cache=True)
def _udiv(a, b):
    return a // b if b != ZERO else ZERO


@njit(cache=True)
def _umod(a, b):
    return a % b if b != ZERO else a


@njit(cache=True)
def _sdiv64(a, b):
    """Truncating signed 64-bit division; /0 gives 0, INT_MIN / -1 gives INT_MIN."""
    if b == ZERO:
        return ZERO
    na, nb = (a & SIGN64) != ZERO, (b & SIGN64) != ZERO
    ua = _neg(a) if na else a
    ub = _neg(b) if nb else b
    q = ua // ub
    return _neg(q) if na != nb else q


@njit(cache=True)
def _smod64(a, b):
    """Signed 64-bit remainder with the dividend's sign; %0 leaves a unchanged."""
    if b == ZERO:
        return a
    na, nb = (a & SIGN64) != ZERO, (b & SIGN64) != ZERO
    ua = _neg(a) if na else a
    ub = _neg(b) if nb else b
    r = ua % ub
    return _neg(r) if na else r


@njit(cache=True)
def _sext32(x):
    """Low 32 bits of x sign-extended, as a uint64 bit pattern."""
    return U64(_sx32(x))


@njit(cache=True)
def _peek(rg, addr, size, perm):
    """Host index of [addr, addr+size) if one region holds it with ``perm``, else BAD;
    uncounted, as the accesses a helper makes are."""
    rid = addr >> U64(REGION_SHIFT)
    if rid >= U64(rg.shape[0]):
        return BAD
    off = addr - rg[rid, RG_VBASE]
    rsize = rg[rid, RG_SIZE]
    if off > rsize or rsize - off < size or (rg[rid, RG_PERM] & perm) != perm:
        return BAD
    return rg[rid, RG_HOST] + off


@njit(cache=True)
def _translate(rg, addr, size, perm):
    """Host index of [addr, addr+size) if one region holds it with ``perm``, else BAD;
    the program's access, counted in the region's reads and writes."""
    h = _peek(rg, addr, size, perm)
    if h != BAD:
        rid = addr >> U64(REGION_SHIFT)
        if perm & PERM_W:
            rg[rid, RG_WRITES] += ONE
        if perm & PERM_R:
            rg[rid, RG_READS] += ONE
    return h


@njit(cache=True)
def _load(mem, h, size):
    if size == 1:
        return load8(mem, h)
    if size == 2:
        return load16(mem, h)
    if size == 4:
        return load32(mem, h)
    return load64(mem, h)


@njit(cache=True)
def _store(mem, h, size, value):
    if size == 1:
        store8(mem, h, value)
    elif size == 2:
        store16(mem, h, value)
    elif size == 4:
        store32(mem, h, value)
    else:
        store64(mem, h, value)


@njit(cache=True)
def _fnv1a(mem, h, n):
    """64-bit FNV-1a of ``mem[h:h+n]`` (the caller checked that range)."""
    x = FNV_OFFSET
    i = ZERO
    while i < n:
        x = (x ^ U64(mem[h + i])) * FNV_PRIME
        i += ONE
    return x


@njit(cache=True)
def _hash_slot(mem, rg, rid, kh):
    """The slot of the key at host index ``kh`` in the hash map described by row
    ``rid``, or BAD if absent (the probe of SlotTable._probe)."""
    irid = rg[rid, RG_HASH_INDEX]
    base = rg[irid, RG_HOST]
    ksize = rg[rid, RG_HASH_KEY_SIZE]
    mask = rg[rid, RG_HASH_MASK]
    cap = rg[rid, RG_HASH_CAPACITY]
    kw = ksize if ksize > ONE else ONE
    hashes = base + (((mask + ONE) * U64(4) + U64(7)) & ~U64(7))
    keys = hashes + cap * U64(8)
    h = _fnv1a(mem, kh, ksize)
    i = h & mask
    probes = ZERO
    while probes <= mask:       # never more than every bucket (one is always empty)
        s = load32(mem, base + i * U64(4))
        if s == HASH_EMPTY or s >= cap:
            return BAD
        if load64(mem, hashes + s * U64(8)) == h:
            k = keys + s * kw
            j = ZERO
            while j < ksize and mem[k + j] == mem[kh + j]:
                j += ONE
            if j == ksize:
                return s
        i = (i + ONE) & mask
        probes += ONE
    return BAD


@njit(cache=True)
def _masked(mem, d, j, full, part):
    """Byte ``j`` of the data at host index ``d`` with the bits past a prefix cleared:
    ``full`` whole bytes are kept, then the top bits of byte ``full`` in ``part``."""
    if j < full:
        return U64(mem[d + j])
    if j == full:
        return U64(mem[d + j]) & part
    return ZERO


@njit(cache=True)
def _lpm_slot(mem, rg, rid, kh):
    """The slot of the longest stored prefix covering the ``struct bpf_lpm_trie_key_u8``
    at host index ``kh`` in the LPM trie described by row ``rid``, or BAD (as
    LpmTrieMap._match): from the key's prefix length down to 0, each length that has
    entries, probe the index for (length, data masked to it), masking on the fly."""
    irid = rg[rid, RG_LPM_INDEX]
    base = rg[irid, RG_HOST]
    ksize = rg[rid, RG_LPM_KEY_SIZE]
    mask = rg[rid, RG_LPM_MASK]
    cap = rg[rid, RG_LPM_CAPACITY]
    dsize = ksize - U64(4)
    hashes = base + (((mask + ONE) * U64(4) + U64(7)) & ~U64(7))
    keys = hashes + cap * U64(8)
    plens = base + (((keys - base) + cap * ksize + U64(7)) & ~U64(7))
    plen = load32(mem, kh)
    if plen > dsize * U64(8):
        return BAD
    d = kh + U64(4)
    p = plen + ONE
    while p > ZERO:
        p -= ONE
        if load32(mem, plens + p * U64(4)) == ZERO:
            continue
        full = p >> U64(3)
        part = (U64(0xFF00) >> (p & U64(7))) & M8
        # FNV-1a of the table key: the length (u32, little-endian), then the masked data
        h = FNV_OFFSET
        sh = ZERO
        while sh < U64(32):
            h = (h ^ ((p >> sh) & M8)) * FNV_PRIME
            sh += U64(8)
        j = ZERO
        while j < dsize:
            h = (h ^ _masked(mem, d, j, full, part)) * FNV_PRIME
            j += ONE
        i = h & mask
        probes = ZERO
        while probes <= mask:       # never more than every bucket (one is always empty)
            s = load32(mem, base + i * U64(4))
            if s == HASH_EMPTY or s >= cap:
                break
            if load64(mem, hashes + s * U64(8)) == h:
                k = keys + s * ksize
                if load32(mem, k) == p:
                    k += U64(4)
                    j = ZERO
                    while j < dsize and U64(mem[k + j]) == _masked(mem, d, j, full, part):
                        j += ONE
                    if j == dsize:
                        return s
            i = (i + ONE) & mask
            probes += ONE
    return BAD


#: what :func:`map_lookup` did: answered the call, left it to Python, or faulted on the key
LOOKUP_SERVED, LOOKUP_PYTHON, LOOKUP_FAULT = 0, 1, 2


@njit(cache=True)
def _slot_there(mem, rg, rid, index):
    """Whether slot ``index`` (< entries) of the array at row ``rid`` holds a value: an
    array without a present region (RG_ARRAY_PRESENT) always does."""
    present = rg[rid, RG_ARRAY_PRESENT]
    return present == ZERO or (index < rg[present, RG_SIZE]
                               and mem[rg[present, RG_HOST] + index] != 0)


@njit(cache=True)
def _map_row(rg, mp):
    """The region row of the map that describes itself there (RG_MAP_KIND) and whose
    pointer ``mp`` is (its values region's first byte), or BAD."""
    rid = mp >> U64(REGION_SHIFT)
    if rid >= U64(rg.shape[0]) or mp != rg[rid, RG_VBASE] or rg[rid, RG_MAP_KIND] == ZERO:
        return BAD
    return rid


@njit(cache=True)
def map_lookup(st, mem, rg):
    """bpf_map_lookup_elem(r1 = map, r2 = key) on an array, hash or LPM trie map, an
    array or hash of maps, a devmap or an xskmap, answered here into r0 (counted in
    S_FAST_LOOKUPS); LOOKUP_PYTHON for any other map, or a per-CPU map on a CPU it
    does not have (Python refuses that call).  A key the program
    may not read is LOOKUP_FAULT with S_FAULT_ADDR/S_FAULT_SIZE set.  Every tier calls
    this, so their answers and access counts are the same."""
    mp = st[R_BASE + 1]
    rid = _map_row(rg, mp)
    if rid == BAD:
        return LOOKUP_PYTHON
    kind = rg[rid, RG_MAP_KIND]
    of_maps = kind & U64(MAP_OF_MAPS)
    kind ^= of_maps
    key = st[R_BASE + 2]
    if kind == U64(MAP_KIND_ARRAY):
        if st[S_CPU] * rg[rid, RG_ARRAY_PERCPU] >= rg[rid, RG_ARRAY_STRIDE]:
            return LOOKUP_PYTHON
        ksize = U64(4)
    elif kind == U64(MAP_KIND_HASH):
        if st[S_CPU] * rg[rid, RG_HASH_PERCPU] >= rg[rid, RG_HASH_STRIDE]:
            return LOOKUP_PYTHON
        ksize = rg[rid, RG_HASH_KEY_SIZE]
    elif kind == U64(MAP_KIND_LPM):     # never per-CPU: no CPU for Python to refuse
        ksize = rg[rid, RG_LPM_KEY_SIZE]
    else:
        return LOOKUP_PYTHON
    h = _translate(rg, key, ksize, PERM_R)
    if h == BAD:
        st[S_FAULT_ADDR], st[S_FAULT_SIZE] = key, ksize
        return LOOKUP_FAULT
    if kind == U64(MAP_KIND_ARRAY):
        index = load32(mem, h)
        if index < rg[rid, RG_ARRAY_ENTRIES] and _slot_there(mem, rg, rid, index):
            st[R_BASE] = (mp + index * rg[rid, RG_ARRAY_STRIDE]
                          + st[S_CPU] * rg[rid, RG_ARRAY_PERCPU])
        else:
            st[R_BASE] = ZERO
    elif kind == U64(MAP_KIND_HASH):
        slot = _hash_slot(mem, rg, rid, h)
        st[R_BASE] = ZERO if slot == BAD else (mp + slot * rg[rid, RG_HASH_STRIDE]
                                               + st[S_CPU] * rg[rid, RG_HASH_PERCPU])
        used = rg[rid, RG_HASH_USED]
        if slot != BAD and used != ZERO and slot < rg[used, RG_SIZE]:
            mem[rg[used, RG_HOST] + slot] = 1
    else:
        slot = _lpm_slot(mem, rg, rid, h)
        st[R_BASE] = ZERO if slot == BAD else mp + slot * rg[rid, RG_LPM_STRIDE]
    if of_maps != ZERO and st[R_BASE] != ZERO:      # the slot holds the inner map
        st[R_BASE] = load64(mem, rg[rid, RG_HOST] + (st[R_BASE] - mp))
    st[S_FAST_LOOKUPS] += ONE
    return LOOKUP_SERVED


# -- the helpers of CORE_IDS served here: the Python helpers (xsim.nic.skb,
# xsim.runtime.kernel_helpers) are their reference, and take every call these leave
# (LOOKUP_PYTHON): a pointer that would fault, a flag that touches the helper state
# Python keeps ------------------------------------------------------------------------
_EFAULT, _EINVAL = U64((1 << 64) - errno.EFAULT), U64((1 << 64) - errno.EINVAL)  # as r0


@njit(cache=True)
def _ctx_ptrs(st, mem, rg, size, perm):
    """Host index of the packet pointers of the context in r1 (``size`` bytes where
    S_CORE says, from data and data_end on), and the packet's row; (BAD, 0) where
    they are not there or data is not in the packet."""
    at = st[S_CORE] & U64(PTRS_MASK)
    p = _peek(rg, st[R_BASE + 1] + at, size, perm)
    if at == ZERO or p == BAD:
        return BAD, ZERO
    data, end = load64(mem, p), load64(mem, p + U64(8))
    rid = data >> U64(REGION_SHIFT)
    if rid == ZERO or rid != st[S_PKT_REGION] or rid >= U64(rg.shape[0]) or end < data:
        return BAD, ZERO
    return p, rid


@njit(cache=True)
def _skb_data(st, mem, rg):
    """Host index of the data of the skb in r1 and its length (data_end - data), or
    (BAD, 0) where its data pointers are not where S_CORE says, in the packet."""
    p, rid = _ctx_ptrs(st, mem, rg, U64(24), PERM_R)
    if p == BAD:
        return BAD, ZERO
    data, end = load64(mem, p), load64(mem, p + U64(8))
    h = rg[rid, RG_HOST] - rg[rid, RG_VBASE] + data
    n = end - data
    if h > U64(len(mem)) or U64(len(mem)) - h < n:
        return BAD, ZERO
    return h, n


@njit(cache=True)
def _ones_add(a, b, mask):
    """One's-complement addition of ``mask``-wide a and b (csum_add, csum16_add)."""
    r = (a + b) & mask
    if r < b:
        r += ONE
    return r & mask


@njit(cache=True)
def _csum_fold(c):
    c = (c & M16) + (c >> U64(16))
    c = (c & M16) + (c >> U64(16))
    return ~c & M16


@njit(cache=True)
def _replace4(s, old, new):
    """csum_replace4 / inet_proto_csum_replace4 on the checksum ``s``."""
    return _csum_fold(_ones_add(_ones_add(~s & M32, ~old & M32, M32), new & M32, M32))


@njit(cache=True)
def _csum_replace(st, mem, rg, l4):
    """bpf_l3_csum_replace / bpf_l4_csum_replace(skb, offset, from, to, flags)."""
    h, n = _skb_data(st, mem, rg)
    if h == BAD:
        return LOOKUP_PYTHON
    off, old, new, flags = (st[R_BASE + 2] & M32, st[R_BASE + 3], st[R_BASE + 4],
                            st[R_BASE + 5])
    allowed = U64(BPF_F_HDR_FIELD_MASK)
    if l4:
        allowed |= U64(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR
                       | BPF_F_IPV6)
    size = flags & U64(BPF_F_HDR_FIELD_MASK)
    mangled0 = l4 and flags & U64(BPF_F_MARK_MANGLED_0) != ZERO
    if flags & ~allowed:
        st[R_BASE] = _EINVAL
        return LOOKUP_SERVED
    if off > M16 or off & ONE or off + U64(2) > n:
        st[R_BASE] = _EFAULT
        return LOOKUP_SERVED
    s = load16(mem, h + off)
    st[R_BASE] = ZERO
    if mangled0 and flags & U64(BPF_F_MARK_ENFORCE) == ZERO and s == ZERO:
        return LOOKUP_SERVED
    if size == ZERO and old == ZERO:                  # a diff (bpf_csum_diff's)
        s = _csum_fold(_ones_add(new & M32, ~s & M32, M32))
    elif size == U64(2) and not l4:                   # csum_replace2: 16-bit arithmetic
        s = ~_ones_add(_ones_add(~s & M16, ~old & M16, M16), new & M16, M16) & M16
    elif size == U64(2):
        s = _replace4(s, old & M16, new & M16)
    elif size == U64(4):
        s = _replace4(s, old, new)
    else:
        st[R_BASE] = _EINVAL
        return LOOKUP_SERVED
    if mangled0 and s == ZERO:
        s = U64(CSUM_MANGLED_0)
    store16(mem, h + off, s)
    return LOOKUP_SERVED


@njit(cache=True)
def _bytes(st, mem, rg, store):
    """bpf_skb_store_bytes(skb, offset, from, len, flags) and bpf_skb_load_bytes(skb,
    offset, to, len) (a failed load zeroes ``to``)."""
    h, n = _skb_data(st, mem, rg)
    if h == BAD:
        return LOOKUP_PYTHON
    off, buf, size = st[R_BASE + 2] & M32, st[R_BASE + 3], st[R_BASE + 4] & M32
    if store:
        flags = st[R_BASE + 5]
        if flags & ~U64(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
            st[R_BASE] = _EINVAL
            return LOOKUP_SERVED
        if flags & U64(BPF_F_INVALIDATE_HASH):
            return LOOKUP_PYTHON
    bad = off > U64(0x7FFFFFFF) or off + size > n
    if store and bad:
        st[R_BASE] = _EFAULT
        return LOOKUP_SERVED
    b = _peek(rg, buf, size, PERM_R if store else PERM_W)
    if b == BAD:
        return LOOKUP_PYTHON
    if store:
        copy_bytes(mem, h + off, mem, b, size)
    elif bad:
        zero_bytes(mem, b, size)
    else:
        copy_bytes(mem, b, mem, h + off, size)
    st[R_BASE] = _EFAULT if bad else ZERO
    return LOOKUP_SERVED


@njit(cache=True)
def _csum_partial(mem, h, n, seed):
    """lib/checksum.c csum_partial on a little-endian machine, as
    kernel_helpers.csum_partial: the folded sum of the 16-bit words of [h, h+n) (an odd
    last byte padded), added to the 32-bit seed with end-around carry."""
    s = ZERO
    i = ZERO
    while i + ONE < n:
        s += load16(mem, h + i)
        i += U64(2)
    if i < n:
        s += load8(mem, h + i)
    while s >> U64(16):
        s = (s & M16) + (s >> U64(16))
    return _ones_add(s, seed & M32, M32)


@njit(cache=True)
def _csum_diff(st, mem, rg):
    """bpf_csum_diff(from, from_size, to, to_size, seed) since 6.13:
    csum_from32to16 of csum(to) - csum(from), as kernel_helpers.csum_diff."""
    fs, ts, seed = st[R_BASE + 2] & M32, st[R_BASE + 4] & M32, st[R_BASE + 5] & M32
    a = _peek(rg, st[R_BASE + 1], fs, PERM_R) if fs else ZERO
    b = _peek(rg, st[R_BASE + 3], ts, PERM_R) if ts else ZERO
    if a == BAD or b == BAD:
        return LOOKUP_PYTHON
    ret = seed
    if fs and ts:
        ret = _ones_add(_csum_partial(mem, b, ts, ret), ~_csum_partial(mem, a, fs, ZERO) & M32,
                        M32)
    elif ts:
        ret = _csum_partial(mem, b, ts, ret)
    elif fs:
        ret = ~_csum_partial(mem, a, fs, ~ret & M32) & M32
    st[R_BASE] = ((ret + ((ret >> U64(16)) | (ret << U64(16)))) & M32) >> U64(16)
    return LOOKUP_SERVED


@njit(cache=True)
def _adjust_head(st, mem, rg):
    """bpf_xdp_adjust_head(xdp, delta), as xsim.nic.xdp._adjust_head: data (and the
    metadata before it, moved along) by a signed delta, and the packet row's window
    to [data_meta, data_end)."""
    p, rid = _ctx_ptrs(st, mem, rg, U64(36), PERM_R | PERM_W)
    if p == BAD:
        return LOOKUP_PYTHON
    data, end, meta, hard = (load64(mem, p), load64(mem, p + U64(8)),
                             load64(mem, p + U64(16)), load64(mem, p + U64(24)))
    base = (rid << U64(REGION_SHIFT)) + U64(SLOT_OFFSET)     # the region's vaddr
    if meta > data or hard != base:     # (the buffer starts at the region's start)
        return LOOKUP_PYTHON
    host = rg[rid, RG_HOST] - (rg[rid, RG_VBASE] - base)
    delta = _sext32(st[R_BASE + 2])             # a signed 32-bit delta, as u64
    metalen = data - meta
    moved = data + delta
    lo = np.int64(hard + U64(XDP_FRAME_SIZE) + metalen)
    if np.int64(moved) < lo or np.int64(moved) > np.int64(end) - np.int64(ETH_HLEN):
        st[R_BASE] = _EINVAL
        return LOOKUP_SERVED
    if host + (end - base) > U64(len(mem)):
        return LOOKUP_PYTHON
    if metalen:
        copy_bytes(mem, host + (meta + delta - base), mem, host + (meta - base), metalen)
    meta += delta
    store64(mem, p, moved)
    store64(mem, p + U64(16), meta)
    rg[rid, RG_VBASE] = meta
    rg[rid, RG_SIZE] = end - meta
    rg[rid, RG_HOST] = host + (meta - base)
    st[R_BASE] = ZERO
    return LOOKUP_SERVED


@njit(cache=True)
def serve_core(st, mem, rg):
    """The helper of CORE_IDS that S_HELPER names answered here (r0 set, its count in
    S_CORE_CALLS raised): LOOKUP_SERVED; LOOKUP_PYTHON for one the core may not serve
    (not one of CORE_IDS, or its bit in S_CORE clear) or a call it leaves to Python."""
    helper = st[S_HELPER]
    k = 0
    while k < len(CORE_IDS) and U64(CORE_IDS[k]) != helper:
        k += 1
    if k == len(CORE_IDS) or (st[S_CORE] >> U64(CORE_BIT + k)) & ONE == ZERO:
        return LOOKUP_PYTHON
    if helper == U64(CSUM_DIFF):
        served = _csum_diff(st, mem, rg)
    elif helper == U64(XDP_ADJUST_HEAD):
        served = _adjust_head(st, mem, rg)
    elif helper == U64(SKB_LOAD_BYTES) or helper == U64(SKB_STORE_BYTES):
        served = _bytes(st, mem, rg, helper == U64(SKB_STORE_BYTES))
    elif helper == U64(REDIRECT):
        served = _redirect(st)
    elif helper == U64(REDIRECT_MAP):
        served = _redirect_map(st, mem, rg)
    else:
        served = _csum_replace(st, mem, rg, helper == U64(L4_CSUM_REPLACE))
    if served == LOOKUP_SERVED:
        st[CORE_CALL_WORDS[k]] += ONE
    return served


@njit(cache=True)
def tail_call(st, mem, rg):
    """bpf_tail_call(ctx, r2 = prog array, r3 = index) in a linked program, as the
    object's Python helper does it: the pc + 1 to go on at (counted in S_CHAIN), ZERO
    to go on after the call with r0 kept (index out of range, an empty slot, the 33rd
    tail call done), BAD for Python (r2 is no prog array: its error; a slot word past
    the code, which only a poke into xsim's memory makes).  Served calls are counted
    in S_TAIL_CALLS."""
    mp = st[R_BASE + 2]
    rid = _map_row(rg, mp)
    if rid == BAD or rg[rid, RG_MAP_KIND] != U64(MAP_KIND_PROG_ARRAY):
        return BAD
    index = st[R_BASE + 3] & M32
    if index >= rg[rid, RG_ARRAY_ENTRIES] or st[S_CHAIN] >= U64(MAX_TAIL_CALLS):
        st[S_TAIL_CALLS] += ONE
        return ZERO
    to = load64(mem, rg[rid, RG_HOST] + index * U64(8))
    if to > U64(len(st) - STATE_WORDS):     # past the code (st has a word per slot)
        return BAD
    st[S_TAIL_CALLS] += ONE
    if to != ZERO:
        st[S_CHAIN] += ONE
    return to


@njit(cache=True)
def _core_tail_call(st, mem, rg):
    """run_core's bpf_tail_call of a linked program (not in a callback's run, which
    Python serves): tail_call's answer.  A jump starts the target in the caller's
    frame, as the kernel's JITs do: r10, the frames below and the stack stay, so that
    from a subprogram the target's exit returns to that subprogram's caller; r1 and r2
    are a run's first ones, r0 and r3-r9 zero."""
    if st[S_BASE_DEPTH] != ZERO:
        return BAD
    to = tail_call(st, mem, rg)
    if to != BAD and to != ZERO:
        _start_registers(st)
    return to


@njit(cache=True)
def _redirect(st):
    """XDP's bpf_redirect(ifindex, flags), as xsim.nic.xdp._redirect: any flag aborts."""
    if st[R_BASE + 2] != ZERO:
        st[R_BASE] = U64(XDP_ABORTED)
        return LOOKUP_SERVED
    st[S_REDIRECT] = U64(REDIRECT_IFINDEX)
    st[S_REDIRECT_TO] = st[R_BASE + 1] & M32
    st[R_BASE] = U64(XDP_REDIRECT)
    return LOOKUP_SERVED


@njit(cache=True)
def _redirect_map(st, mem, rg):
    """bpf_redirect_map(map, key, flags) on a devmap or an xskmap (an array with a
    present region), as xsim.nic.xdp._redirect_map: XDP_REDIRECT to a slot that is
    there, else the action in the flags' low bits.  Broadcasts, and the other maps
    (devmap_hash, cpumap), are Python's."""
    mp = st[R_BASE + 1]
    rid = _map_row(rg, mp)
    if rid == BAD or rg[rid, RG_MAP_KIND] != U64(MAP_KIND_ARRAY) or \
            rg[rid, RG_ARRAY_PRESENT] == ZERO:
        return LOOKUP_PYTHON
    flags = st[R_BASE + 3]
    if flags & ~U64(BPF_F_ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
        st[R_BASE] = U64(XDP_ABORTED)
        return LOOKUP_SERVED
    if flags & U64(BPF_F_BROADCAST):
        return LOOKUP_PYTHON
    key = st[R_BASE + 2] & M32
    if key < rg[rid, RG_ARRAY_ENTRIES] and _slot_there(mem, rg, rid, key):
        st[S_REDIRECT] = U64(REDIRECT_SLOT)
        st[S_REDIRECT_TO] = rid << U64(32) | key
        st[R_BASE] = U64(XDP_REDIRECT)
    else:
        st[R_BASE] = flags & U64(BPF_F_ACTION_MASK)
    return LOOKUP_SERVED


CORE_WORDS = [w for _, w in CORE_COUNTS]
#: how many of the first state words a run's outcome reads: up to r0, and those counts
#: (one ``tolist`` of them costs less than reading ten words of ``st`` one by one)
OUTCOME_WORDS = max(R_BASE, *CORE_WORDS) + 1


def core_calls(words: list[int]) -> dict[int, int]:
    """The helper calls the core served in a run, by helper id, from the first
    OUTCOME_WORDS state words (``st[:OUTCOME_WORDS].tolist()``)."""
    return {h: words[w] for h, w in CORE_COUNTS if words[w]}


@njit(cache=True)
def _start_registers(st):
    """r0-r9 as a run starts: r1 and r2 its first ones (S_INIT_R1/R2), the others 0."""
    for r in range(10):
        st[R_BASE + r] = ZERO
    st[R_BASE + 1] = st[S_INIT_R1]
    st[R_BASE + 2] = st[S_INIT_R2]


@njit(cache=True)
def _reset_registers(st, rg):
    _start_registers(st)
    st[R_BASE + 10] = st[S_STACK_TOP]
    _reset_stack(st, rg)


@njit(cache=True)
def _reset_stack(st, rg):
    """The stack region covers exactly the frames in use: [r10 - 512, top)."""
    srid = st[S_STACK_REGION]
    frame = U64(oc.STACK_FRAME_SIZE)
    rg[srid, RG_VBASE] = st[S_STACK_TOP] - frame
    rg[srid, RG_SIZE] = frame
    rg[srid, RG_HOST] = st[S_STACK_HOST]


@njit(cache=True)
def _fault(st, pc, icount, depth, addr, size, kind):
    st[S_PC], st[S_INSNS], st[S_DEPTH] = pc, icount, depth
    st[S_FAULT_ADDR], st[S_FAULT_SIZE], st[S_FAULT_KIND] = addr, size, kind
    st[S_STATUS] = FAULT
    return FAULT


@njit(cache=True)
def _stop(st, pc, icount, depth, status):
    st[S_PC], st[S_INSNS], st[S_DEPTH] = pc, icount, depth
    st[S_STATUS] = status
    return status


@njit(cache=True, error_model="numpy")
def run_core(code, st, mem, rg, counts, fresh, runs, budget, prof):
    """Run (or resume) the program until every run is done or Python must act.

    With ``fresh`` (FRESH or FRESH_KEEP_COUNTS), start ``runs`` runs from pc 0,
    each allowed ``budget`` instructions, counting executions per pc in
    ``counts`` if ``prof``; FRESH also zeroes the regions' access counters
    (FRESH_KEEP_COUNTS continues a run in another program: a tail call).  With
    RESUME, go on where the last call stopped (the other arguments are then
    ignored).  Returns the status (also in ``st[S_STATUS]``); ``st`` keeps
    pc, instruction count and call depth so a HELPER stop resumes at
    ``st[S_PC]``.
    """
    if fresh != RESUME:
        st[S_RUNS_LEFT] = runs
        st[S_BUDGET] = budget
        st[S_PROF] = prof
        st[S_INSNS] = st[S_DEPTH] = st[S_TOTAL] = st[S_RUNS_DONE] = ZERO
        st[S_PC] = st[S_ENTRY]
        st[S_BASE_DEPTH] = st[S_CHAIN] = ZERO
        st[S_STOP] = ZERO
        _reset_registers(st, rg)
        if fresh == FRESH:
            st[S_FAST_LOOKUPS] = st[S_TAIL_CALLS] = ZERO
            for k in range(len(CORE_IDS)):
                st[CORE_CALL_WORDS[k]] = ZERO
            for r in range(rg.shape[0]):
                rg[r, RG_READS] = ZERO
                rg[r, RG_WRITES] = ZERO
    pc = st[S_PC]
    icount = st[S_INSNS]
    depth = st[S_DEPTH]
    base_depth = st[S_BASE_DEPTH]
    budget = st[S_BUDGET]
    profile = st[S_PROF] != ZERO
    srid = st[S_STACK_REGION]
    frame = U64(oc.STACK_FRAME_SIZE)
    stop = st[S_STOP] != ZERO
    st[S_STOP] = ZERO
    while True:
        while not stop:
            if icount >= budget:
                return _stop(st, pc, icount, depth, BUDGET)
            icount += ONE
            if profile:
                counts[pc] += ONE
            e = code[pc, 0]
            a = code[pc, 1]
            b = code[pc, 2]
            c = code[pc, 3]
            pc += ONE
            # ---- ALU64 ----
            if e == ADD64:
                st[a] = st[a] + st[b]
            elif e == SUB64:
                st[a] = st[a] - st[b]
            elif e == MUL64:
                st[a] = st[a] * st[b]
            elif e == DIV64:
                st[a] = _udiv(st[a], st[b])
            elif e == OR64:
                st[a] = st[a] | st[b]
            elif e == AND64:
                st[a] = st[a] & st[b]
            elif e == LSH64:
                st[a] = st[a] << (st[b] & U64(63))
            elif e == RSH64:
                st[a] = st[a] >> (st[b] & U64(63))
            elif e == MOD64:
                st[a] = _umod(st[a], st[b])
            elif e == XOR64:
                st[a] = st[a] ^ st[b]
            elif e == MOV64:
                st[a] = st[b]
            elif e == ARSH64:
                st[a] = U64(np.int64(st[a]) >> np.int64(st[b] & U64(63)))
            elif e == SDIV64:
                st[a] = _sdiv64(st[a], st[b])
            elif e == SMOD64:
                st[a] = _smod64(st[a], st[b])
            elif e == NEG64:
                st[a] = _neg(st[a])
            elif e == MOVSX8_64:
                st[a] = U64(np.int64(np.int8(st[b] & M8)))
            elif e == MOVSX16_64:
                st[a] = U64(np.int64(np.int16(st[b] & M16)))
            elif e == MOVSX32_64:
                st[a] = _sext32(st[b])
            # ---- ALU32: operate on the low halves, zero-extend ----
            elif e == ADD32:
                st[a] = (st[a] + st[b]) & M32
            elif e == SUB32:
                st[a] = (st[a] - st[b]) & M32
            elif e == MUL32:
                st[a] = ((st[a] & M32) * (st[b] & M32)) & M32
            elif e == DIV32:
                st[a] = _udiv(st[a] & M32, st[b] & M32)
            elif e == OR32:
                st[a] = (st[a] | st[b]) & M32
            elif e == AND32:
                st[a] = st[a] & st[b] & M32
            elif e == LSH32:
                st[a] = (st[a] << (st[b] & U64(31))) & M32
            elif e == RSH32:
                st[a] = (st[a] & M32) >> (st[b] & U64(31))
            elif e == MOD32:
                st[a] = _umod(st[a] & M32, st[b] & M32)
            elif e == XOR32:
                st[a] = (st[a] ^ st[b]) & M32
            elif e == MOV32:
                st[a] = st[b] & M32
            elif e == ARSH32:
                st[a] = U64(_sx32(st[a]) >> np.int64(st[b] & U64(31))) & M32
            elif e == SDIV32:
                st[a] = _sdiv64(_sext32(st[a]), _sext32(st[b])) & M32
            elif e == SMOD32:
                st[a] = _smod64(_sext32(st[a]), _sext32(st[b])) & M32
            elif e == NEG32:
                st[a] = _neg(st[a]) & M32
            elif e == MOVSX8_32:
                st[a] = U64(np.int64(np.int8(st[b] & M8))) & M32
            elif e == MOVSX16_32:
                st[a] = U64(np.int64(np.int16(st[b] & M16))) & M32
            # ---- byte order (the host, like every eBPF target here, is little-endian) ----
            elif e == LE16:
                st[a] = st[a] & M16
            elif e == LE32:
                st[a] = st[a] & M32
            elif e == LE64:
                pass
            elif e == BE16:
                st[a] = _bswap16(st[a])
            elif e == BE32:
                st[a] = _bswap32(st[a])
            elif e == BE64:
                st[a] = _bswap64(st[a])
            # ---- JMP ----
            elif e == JA:
                pc = c
            elif e == JEQ64:
                if st[a] == st[b]:
                    pc = c
            elif e == JNE64:
                if st[a] != st[b]:
                    pc = c
            elif e == JGT64:
                if st[a] > st[b]:
                    pc = c
            elif e == JGE64:
                if st[a] >= st[b]:
                    pc = c
            elif e == JLT64:
                if st[a] < st[b]:
                    pc = c
            elif e == JLE64:
                if st[a] <= st[b]:
                    pc = c
            elif e == JSET64:
                if st[a] & st[b]:
                    pc = c
            elif e == JSGT64:
                if np.int64(st[a]) > np.int64(st[b]):
                    pc = c
            elif e == JSGE64:
                if np.int64(st[a]) >= np.int64(st[b]):
                    pc = c
            elif e == JSLT64:
                if np.int64(st[a]) < np.int64(st[b]):
                    pc = c
            elif e == JSLE64:
                if np.int64(st[a]) <= np.int64(st[b]):
                    pc = c
            # ---- JMP32 ----
            elif e == JEQ32:
                if (st[a] & M32) == (st[b] & M32):
                    pc = c
            elif e == JNE32:
                if (st[a] & M32) != (st[b] & M32):
                    pc = c
            elif e == JGT32:
                if (st[a] & M32) > (st[b] & M32):
                    pc = c
            elif e == JGE32:
                if (st[a] & M32) >= (st[b] & M32):
                    pc = c
            elif e == JLT32:
                if (st[a] & M32) < (st[b] & M32):
                    pc = c
            elif e == JLE32:
                if (st[a] & M32) <= (st[b] & M32):
                    pc = c
            elif e == JSET32:
                if st[a] & st[b] & M32:
                    pc = c
            elif e == JSGT32:
                if _sx32(st[a]) > _sx32(st[b]):
                    pc = c
            elif e == JSGE32:
                if _sx32(st[a]) >= _sx32(st[b]):
                    pc = c
            elif e == JSLT32:
                if _sx32(st[a]) < _sx32(st[b]):
                    pc = c
            elif e == JSLE32:
                if _sx32(st[a]) <= _sx32(st[b]):
                    pc = c
            # ---- memory ----
            elif e == LDX4:
                h = _translate(rg, st[b] + c, U64(4), PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 4, ACCESS_READ)
                st[a] = load32(mem, h)
            elif e == LDX8:
                h = _translate(rg, st[b] + c, U64(8), PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 8, ACCESS_READ)
                st[a] = load64(mem, h)
            elif e == LDX1:
                h = _translate(rg, st[b] + c, ONE, PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 1, ACCESS_READ)
                st[a] = load8(mem, h)
            elif e == LDX2:
                h = _translate(rg, st[b] + c, U64(2), PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 2, ACCESS_READ)
                st[a] = load16(mem, h)
            elif e == LDXS1:
                h = _translate(rg, st[b] + c, ONE, PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 1, ACCESS_READ)
                st[a] = U64(np.int64(np.int8(load8(mem, h))))
            elif e == LDXS2:
                h = _translate(rg, st[b] + c, U64(2), PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 2, ACCESS_READ)
                st[a] = U64(np.int64(np.int16(load16(mem, h))))
            elif e == LDXS4:
                h = _translate(rg, st[b] + c, U64(4), PERM_R)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[b] + c, 4, ACCESS_READ)
                st[a] = _sext32(load32(mem, h))
            elif e == ST4:
                h = _translate(rg, st[a] + c, U64(4), PERM_W)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[a] + c, 4, ACCESS_WRITE)
                store32(mem, h, st[b])
            elif e == ST8:
                h = _translate(rg, st[a] + c, U64(8), PERM_W)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[a] + c, 8, ACCESS_WRITE)
                store64(mem, h, st[b])
            elif e == ST1:
                h = _translate(rg, st[a] + c, ONE, PERM_W)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[a] + c, 1, ACCESS_WRITE)
                store8(mem, h, st[b])
            elif e == ST2:
                h = _translate(rg, st[a] + c, U64(2), PERM_W)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, st[a] + c, 2, ACCESS_WRITE)
                store16(mem, h, st[b])
            elif e == LDDW:
                st[a] = st[b]
                pc += ONE
            # ---- calls ----
            elif e == CALL_LOCAL:
                if depth + ONE >= U64(oc.MAX_CALL_FRAMES):
                    return _stop(st, pc - ONE, icount, depth, DEPTH)
                f = U64(F_BASE) + depth * U64(F_SIZE)
                st[f] = pc
                st[f + ONE] = st[R_BASE + 6]
                st[f + U64(2)] = st[R_BASE + 7]
                st[f + U64(3)] = st[R_BASE + 8]
                st[f + U64(4)] = st[R_BASE + 9]
                depth += ONE
                st[R_BASE + 10] -= frame
                rg[srid, RG_VBASE] -= frame
                rg[srid, RG_SIZE] += frame
                rg[srid, RG_HOST] -= frame
                pc = c
            elif e == EXIT:
                if depth == base_depth:
                    break
                depth -= ONE
                f = U64(F_BASE) + depth * U64(F_SIZE)
                pc = st[f]
                st[R_BASE + 6] = st[f + ONE]
                st[R_BASE + 7] = st[f + U64(2)]
                st[R_BASE + 8] = st[f + U64(3)]
                st[R_BASE + 9] = st[f + U64(4)]
                st[R_BASE + 10] += frame
                rg[srid, RG_VBASE] += frame
                rg[srid, RG_SIZE] -= frame
                rg[srid, RG_HOST] += frame
            elif e == CALL_HELPER:
                if c == U64(MAP_LOOKUP_ELEM):
                    served = map_lookup(st, mem, rg)
                    if served == LOOKUP_SERVED:
                        continue
                    if served == LOOKUP_FAULT:
                        return _fault(st, pc - ONE, icount, depth, st[S_FAULT_ADDR],
                                      st[S_FAULT_SIZE], ACCESS_READ)
                if c == U64(TAIL_CALL) and st[S_LINK] != ZERO:
                    to = _core_tail_call(st, mem, rg)
                    if to != BAD:
                        if to != ZERO:
                            pc = to - ONE
                        continue
                st[S_HELPER] = c
                if st[S_CORE] != ZERO and serve_core(st, mem, rg) == LOOKUP_SERVED:
                    continue
                return _stop(st, pc - ONE, icount, depth, HELPER)
            elif e == CALLX:
                st[S_HELPER] = st[a]
                return _stop(st, pc - ONE, icount, depth, HELPER)
            # ---- atomics: read-modify-write, one thread ----
            elif e >= A_ADD32 and e <= A_CMPXCHG64:
                size = U64(4) if e <= A_CMPXCHG32 else U64(8)
                mask = M32 if size == U64(4) else BAD
                addr = st[a] + c
                h = _translate(rg, addr, size, PERM_R | PERM_W)
                if h == BAD:
                    return _fault(st, pc - ONE, icount, depth, addr, size, ACCESS_ATOMIC)
                old = _load(mem, h, size)
                k = e - A_ADD32 if size == U64(4) else e - A_ADD64
                v = st[b]
                if k == A_ADD32 - A_ADD32 or k == A_FADD32 - A_ADD32:
                    new = old + v
                elif k == A_OR32 - A_ADD32 or k == A_FOR32 - A_ADD32:
                    new = old | v
                elif k == A_AND32 - A_ADD32 or k == A_FAND32 - A_ADD32:
                    new = old & v
                elif k == A_XOR32 - A_ADD32 or k == A_FXOR32 - A_ADD32:
                    new = old ^ v
                elif k == A_XCHG32 - A_ADD32:
                    new = v
                else:  # cmpxchg: compare with r0, r0 gets the old value
                    new = v if old == (st[R_BASE] & mask) else old
                _store(mem, h, size, new & mask)
                if k == A_CMPXCHG32 - A_ADD32:
                    st[R_BASE] = old
                elif k >= A_FADD32 - A_ADD32:
                    st[b] = old
            # ---- legacy packet loads: out of bounds ends the run with r0 = 0 ----
            elif e >= LDABS1 and e <= LDIND4:
                if e == LDABS1 or e == LDIND1:
                    size = U64(1)
                elif e == LDABS2 or e == LDIND2:
                    size = U64(2)
                else:
                    size = U64(4)
                off = np.int64(np.int32(c & M32))
                if e == LDIND1 or e == LDIND2 or e == LDIND4:
                    off = _sx32(st[b] + c)
                prid = st[S_PKT_REGION]
                if prid == ZERO:
                    return _fault(st, pc - ONE, icount, depth, U64(off), size, ACCESS_READ)
                lo = np.int64(0)
                if off < 0:      # bpf_internal_load_pointer_neg_helper's ranges
                    lo = np.int64(st[S_PKT_HEAD])
                    if off >= SKF_NET_OFF:
                        off = np.int64(st[S_PKT_NET]) + (off - SKF_NET_OFF)
                    elif off >= SKF_LL_OFF:
                        off = np.int64(st[S_PKT_MAC]) + (off - SKF_LL_OFF)
                    else:
                        off = lo - np.int64(1)
                if off < lo or off + np.int64(size) > np.int64(rg[prid, RG_SIZE]):
                    st[R_BASE] = ZERO        # out of bounds: the program ends, returning 0
                    break
                h = rg[prid, RG_HOST] + U64(off)
                v = _load(mem, h, size)
                if size == U64(2):
                    v = _bswap16(v)
                elif size == U64(4):
                    v = _bswap32(v)
                st[R_BASE] = v
            else:  # lddw of a map/variable/function, kfunc call: the loader's job
                return _stop(st, pc - ONE, icount, depth, UNRESOLVED)
        # ---- one run is over ----
        stop = False
        st[S_TOTAL] += icount
        st[S_RUNS_DONE] += ONE
        if st[S_RUNS_LEFT] <= ONE:
            st[S_RUNS_LEFT] = ZERO
            return _stop(st, pc, icount, ZERO, DONE)
        st[S_RUNS_LEFT] -= ONE
        r0 = st[R_BASE]
        _reset_registers(st, rg)
        st[R_BASE] = r0
        st[S_CHAIN] = ZERO
        pc = st[S_ENTRY]
        icount = ZERO
        depth = ZERO


_CORE_SIGNATURE = (types.uint64[:, ::1], types.uint64[::1], types.uint8[::1], types.uint64[:, ::1],
                   types.uint64[::1], types.int64, types.int64, types.int64, types.boolean)


def ensure_compiled() -> None:
    """Compile (or load from numba's cache) the core now, so no run's time includes it."""
    if run_core.signatures:
        return
    run_core.compile(_CORE_SIGNATURE)
    # The first call through the dispatcher costs ~0.1 ms more than the rest: pay it here,
    # on a program that is one exit, so that no measured run includes it.
    code = np.zeros((1, 4), dtype=np.uint64)
    code[0, 0] = EXIT
    st = np.zeros(STATE_WORDS + 1, dtype=np.uint64)
    rg = np.zeros((1, RG_COLS), dtype=np.uint64)
    run_core(code, st, np.zeros(8, dtype=np.uint8), rg, np.zeros(1, dtype=np.uint64),
             FRESH, 1, 1, False)
