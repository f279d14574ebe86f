"""The helpers the interpreter's core serves (interp.serve_core: the skb helpers,
bpf_csum_diff, XDP's adjust_head and redirects) give what their Python references
give, call for call: r0, the packet, the buffer, the error, the helper counts, the
region counts, where a redirect goes; on the interpreter, the JIT and an emulated
ISA, and over a capture in the compiled per-packet loop."""
from __future__ import annotations

import errno
import io
import random
import re
import struct
from pathlib import Path

import pytest

import xsim
from xsim.isa import interp as ip
from xsim.isa.asm import assemble
from xsim.nic import skb, xdp
from xsim.nic.pcaprun import run_pcap
from xsim.runtime.helper_table import BY_NAME
from xsim.runtime.helpers import HelperRegistry
from xsim.runtime.kernel_helpers import register_kernel_helpers
from xsim.runtime.program import Program

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ARGS_AT = skb.PTRS_AT + skb.PTRS.size      # the case's arguments, in the image
ARGS = struct.Struct("<8Q")     # r2..r5, r3's selector of r10, r1's of the context and
#                                 of r10 and its value
BUFFER = 64                                 # a frame's bytes below r10 the case starts with
BUFFER_AT = ARGS_AT + ARGS.size


def _program(helper: int, core: bool) -> Program:
    """r2..r5 from the image, then r3 += r10 * its selector (a stack pointer or a
    value), r1 = the context times its selector + its value + r10 times its selector
    (csum_diff's from), the call, with 64 bytes of the image below r10 (and back into
    the image after it)."""
    text = "\n".join([
        "mov r6, r1",
        *(f"ldxdw r8, [r1+{BUFFER_AT + 8 * k}]\nstxdw [r10-{BUFFER - 8 * k}], r8"
          for k in range(BUFFER // 8)),
        f"ldxdw r2, [r6+{ARGS_AT}]",
        f"ldxdw r3, [r6+{ARGS_AT + 8}]",
        f"ldxdw r4, [r6+{ARGS_AT + 16}]",
        f"ldxdw r5, [r6+{ARGS_AT + 24}]",
        f"ldxdw r7, [r6+{ARGS_AT + 32}]",
        "mul r7, r10",
        "add r3, r7",
        f"ldxdw r1, [r6+{ARGS_AT + 40}]",
        "mul r1, r6",
        f"ldxdw r7, [r6+{ARGS_AT + 48}]",
        "add r1, r7",
        f"ldxdw r7, [r6+{ARGS_AT + 56}]",
        "mul r7, r10",
        "add r1, r7",
        f"call {helper}",
        "mov r9, r0",           # the frame's bytes back into the image, to be compared
        *(f"ldxdw r8, [r10-{BUFFER - 8 * k}]\nstxdw [r6+{BUFFER_AT + 8 * k}], r8"
          for k in range(BUFFER // 8)),
        "mov r0, r9",
        "exit",
    ])
    registry = HelperRegistry()
    skb.add_tc_helpers(registry)
    register_kernel_helpers(registry)
    text = re.sub(r"\br(\d+)", r"%r\1", text)
    prog = Program.from_bytes(assemble(text), name=f"h{helper}", helpers=registry)
    if not core:
        prog._core = 0
    return prog


def _case(rng: random.Random, helper: int, frame_len: int) -> bytes:
    """The arguments and the frame's stack bytes of one call, near the edges the
    helpers check: offsets and lengths around the frame's end, 0x7fffffff, 0xffff,
    odd; pointers in the frame, across its ends, and none at all."""
    edge = [0, 1, 2, 13, frame_len - 2, frame_len - 1, frame_len, frame_len + 1,
            0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    off = rng.choice(edge + [rng.randrange(frame_len)] * 6)
    off |= rng.choice([0] * 6 + [1 << 32, 0xDEAD << 40])       # upper bits: ignored
    ptrs = [-BUFFER, -BUFFER, -40, -32, -20, -8, -4, -1, -BUFFER - 8, 8, -600]

    def pointer() -> tuple[int, int]:         # (value, r10's selector)
        if rng.random() < 0.1:
            return rng.getrandbits(64), 0
        return rng.choice(ptrs) & (1 << 64) - 1, 1
    ctx, r1, r1_r10 = 1, 0, 0
    if helper == ip.CSUM_DIFF:          # from (r1), from_size, to (r3), to_size, seed
        sizes = [0, 0, 1, 2, 3, 4, 8, 12, 20, 40, 63, 64, 65, 100000]
        (r1, r1_r10), (to, to_r10) = pointer(), pointer()
        ctx = 0
        regs = (rng.choice(sizes), to, rng.choice(sizes), rng.getrandbits(rng.choice([8, 32, 64])),
                to_r10)
    elif helper in (ip.SKB_STORE_BYTES, ip.SKB_LOAD_BYTES):
        n = rng.choice([0, 1, 2, 4, 8, 16, 33, 64, frame_len, 100000] + [rng.randrange(64)] * 4)
        flags = rng.choice([0, 0, ip.BPF_F_RECOMPUTE_CSUM, ip.BPF_F_INVALIDATE_HASH, 3, 4,
                            1 << 40])
        buf, buf_r10 = pointer()
        regs = (off, buf, n, flags, buf_r10)
    else:
        size = rng.choice([0, 2, 4, 1, 3, 8, 15])
        flags = size | rng.choice([0] * 4 + [ip.BPF_F_PSEUDO_HDR, ip.BPF_F_MARK_MANGLED_0,
                                             ip.BPF_F_MARK_MANGLED_0 | ip.BPF_F_MARK_ENFORCE,
                                             ip.BPF_F_IPV6, 1 << 8, 1 << 33])
        old = rng.choice([0, 0, rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(64)])
        new = rng.choice([0, rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(64)])
        regs = (off, old, new, flags, 0)
    stack = bytes(rng.getrandbits(8) for _ in range(BUFFER))
    return ARGS.pack(*regs, ctx, r1, r1_r10) + stack


def _frame(rng: random.Random) -> bytes:
    """An IPv4/UDP frame, its checksums sometimes zero (the mangled-zero cases)."""
    n = rng.choice([34, 42, 60, 61, 99])
    frame = bytearray(rng.getrandbits(8) for _ in range(n))
    frame[12:14] = b"\x08\x00"
    if rng.random() < 0.3:
        frame[24:26] = bytes(2)
    if rng.random() < 0.3 and n >= 42:
        frame[40:42] = bytes(2)
    return bytes(frame)


def _outcome(prog: Program, frame: bytes, args: bytes, tier: str, **run) -> dict:
    ctx = bytearray(skb.TC_HOOK.base_context(prog.space))
    start, end = skb.HEADROOM, skb.HEADROOM + len(frame)
    struct.pack_into("<I", ctx, skb.LEN, len(frame))
    buffer = bytes(skb.HEADROOM) + frame + bytes(skb.SHINFO_SIZE)
    base = prog.space.by_name["packet"].vaddr
    image = bytes(ctx) + skb.PTRS.pack(base + start, base + end, base + start) + args
    skb._STATES[prog.space] = skb.TC_HOOK.state()
    res = prog.run(image, packet=buffer, packet_window=(start, end), tier=tier, **run)
    return {"r0": res.r0, "error": str(res.error), "memory": res.memory,
            "packet": res.packet, "calls": res.helper_calls, "regions": res.region_counts,
            "runs": res.runs, "insns": res.insns}


def _served(prog: Program, helper: int) -> int:
    return int(prog._st[ip.S_CORE_CALLS + ip.CORE_IDS.index(helper)])


def _bits(*ids: int) -> int:
    return sum(1 << (ip.CORE_BIT + ip.CORE_IDS.index(h)) for h in ids)


SKB_AND_CSUM = (ip.SKB_LOAD_BYTES, ip.SKB_STORE_BYTES, ip.L3_CSUM_REPLACE, ip.L4_CSUM_REPLACE,
                ip.CSUM_DIFF)


@pytest.mark.parametrize("helper", SKB_AND_CSUM)
@pytest.mark.parametrize("tier", ["interp", "jit", "aarch64"])
def test_the_core_answers_as_python_does(helper, tier):
    rng = random.Random(helper)
    core, python = _program(helper, True), _program(helper, False)
    assert core._core == skb.PTRS_AT | _bits(*SKB_AND_CSUM) and python._core == 0
    cases = 40 if tier == "aarch64" else 300
    served = 0
    for _ in range(cases):
        frame = _frame(rng)
        args = _case(rng, helper, len(frame))
        got = _outcome(core, frame, args, tier)
        want = _outcome(python, frame, args, "interp")
        assert got == want, (args.hex(), frame.hex())
        served += _served(core, helper)
    if helper in (ip.L3_CSUM_REPLACE, ip.L4_CSUM_REPLACE):
        assert served == cases          # no pointer: every call is the core's
    else:       # the rest (a pointer that faults, BPF_F_INVALIDATE_HASH) are Python's
        assert cases // 8 < served < cases


def _lifted(prog: Program) -> str:
    from xsim.jit import lift
    return lift.lift_text(prog._code, prog._st[ip.C_BASE:], "case", core=prog._core)


#: skb_store_bytes of 4 bytes from r10 - 64 to offset 14, with BPF_F_INVALIDATE_HASH
INVALIDATING = ARGS.pack(14, -BUFFER & (1 << 64) - 1, 4, ip.BPF_F_INVALIDATE_HASH, 1, 1, 0,
                         0) + bytes(range(BUFFER))


@pytest.mark.parametrize("repeat", [1, 3])
def test_a_call_the_core_leaves_to_python_hands_the_runs_rest_over(repeat):
    """skb_store_bytes with BPF_F_INVALIDATE_HASH is Python's: native code, which has no
    way back from Python after a helper the core may serve, hands the rest of each run
    to the interpreter from the call, and the next run starts in native code again."""
    prog = _program(ip.SKB_STORE_BYTES, True)
    text = _lifted(prog)
    assert "handoff_run:" in text and "python_helper:" not in text
    frame = _frame(random.Random(5))
    got = [_outcome(prog, frame, INVALIDATING, tier, repeat=repeat)
           for tier in ("interp", "jit")]
    assert got[0] == got[1]
    assert got[0]["calls"] == {ip.SKB_STORE_BYTES: repeat} and got[0]["runs"] == repeat
    assert got[0]["packet"][skb.HEADROOM + 14:skb.HEADROOM + 18] == bytes(range(4))
    assert _served(prog, ip.SKB_STORE_BYTES) == 0
    one = _outcome(prog, frame, INVALIDATING, "interp")["insns"]
    for budget in range(1, one + 2):    # ending before, at and after the call
        ends = [_outcome(prog, frame, INVALIDATING, tier, repeat=repeat, budget=budget)
                for tier in ("interp", "jit")]
        assert ends[0] == ends[1], budget


def test_a_helper_a_user_registers_is_never_the_cores():
    prog = _program(ip.SKB_STORE_BYTES, True)
    mine = []
    registry = HelperRegistry(dict(prog.helpers.helpers), ctx_ptrs=skb.PTRS_AT)
    registry.register(ip.SKB_STORE_BYTES, "skb_store_bytes")(lambda call: mine.append(1) or 7)
    ours = Program(prog.insns, prog.n_slots, helpers=registry)
    others = set(SKB_AND_CSUM) - {ip.SKB_STORE_BYTES}
    assert ours._core == skb.PTRS_AT | _bits(*others)       # the others still the core's
    rng = random.Random(3)
    frame = _frame(rng)
    assert _outcome(ours, frame, _case(rng, ip.SKB_STORE_BYTES, len(frame)),
                    "interp")["r0"] == 7 and mine == [1]
    # native code calls it and comes back, run after run, rather than hand runs over
    assert "python_helper:" in _lifted(ours)
    mine.clear()
    got = _outcome(ours, frame, INVALIDATING, "jit", repeat=3)
    assert got["r0"] == 7 and got["runs"] == 3 and mine == [1, 1, 1]
    assert got == _outcome(ours, frame, INVALIDATING, "interp", repeat=3)


def test_skb_helpers_are_pythons_where_the_context_is_no_skb():
    prog = _program(ip.SKB_STORE_BYTES, True)
    other = Program(prog.insns, prog.n_slots, helpers=HelperRegistry(dict(prog.helpers.helpers)))
    assert other._core == _bits(ip.CSUM_DIFF)


def test_csum_diff_of_a_kernel_before_6_13_is_pythons():
    prog = _program(ip.CSUM_DIFF, True)
    rng = random.Random(7)
    args = ARGS.pack(6, -BUFFER & (1 << 64) - 1, 8, 0, 1, 0, -32 & (1 << 64) - 1, 1) + bytes(
        rng.getrandbits(8) for _ in range(BUFFER))        # 6 bytes: EINVAL before 6.13
    frame = _frame(rng)
    new = _outcome(prog, frame, args, "interp")
    assert _served(prog, ip.CSUM_DIFF) == 1
    prog.env.kconfig["LINUX_KERNEL_VERSION"] = (6 << 16) | (12 << 8)
    old = _outcome(prog, frame, args, "jit")
    assert _served(prog, ip.CSUM_DIFF) == 0 and old["calls"] == {ip.CSUM_DIFF: 1}
    assert new["r0"] < 1 << 16 and old["r0"] == (1 << 64) - errno.EINVAL


def test_calls_the_core_serves_count_in_every_run():
    prog = _program(ip.L3_CSUM_REPLACE, True)
    frame = _frame(random.Random(1))
    args = ARGS.pack(24, 0, 0x1234, 0, 0, 1, 0, 0) + bytes(BUFFER)   # a diff: always served
    for tier in ("interp", "jit"):
        res = _outcome(prog, frame, args, tier)
        assert res["error"] == "None" and res["calls"] == {ip.L3_CSUM_REPLACE: 1}
        ctx = bytearray(skb.TC_HOOK.base_context(prog.space))
        base = prog.space.by_name["packet"].vaddr
        image = (bytes(ctx) + skb.PTRS.pack(base + 64, base + 64 + len(frame), base + 64)
                 + args)
        res = prog.run(image, packet=bytes(64) + frame + bytes(320),
                       packet_window=(64, 64 + len(frame)), repeat=5, tier=tier)
        assert res.error is None and res.helper_calls == {ip.L3_CSUM_REPLACE: 5}


@pytest.mark.parametrize("tier", ["interp", "jit"])
@pytest.mark.parametrize("path, name, served", [
    (EXAMPLES / "nic" / "tc_marker.o", "tc_marker", ('"9": 1', '"10": 1')),
    (Path(__file__).parent / "data" / "nic" / "sock_basic.o", "load_bytes", ('"26": 2',))])
def test_a_capture_gives_the_same_records_with_the_core_serving(tier, path, name, served):
    outs = []
    for core in (True, False):
        obj = xsim.load(path)
        p = obj.programs[name]
        if not core:
            p.hooked()._core = 0
        records = io.StringIO()
        summary = run_pcap(obj, p, EXAMPLES / "nic" / "traffic.pcap", tier=tier,
                           records=records)
        outs.append((records.getvalue(), dict(summary.verdicts)))
    assert outs[0] == outs[1]
    assert all(s in outs[0][0] for s in served)


def test_the_cores_helper_ids_are_the_helper_tables():
    names = ("skb_load_bytes", "skb_store_bytes", "l3_csum_replace", "l4_csum_replace",
             "xdp_adjust_head", "csum_diff", "redirect", "redirect_map")
    assert ip.CORE_IDS == tuple(BY_NAME[n].id for n in names)
    assert ip.MAP_LOOKUP_ELEM == BY_NAME["map_lookup_elem"].id
    assert ip.TAIL_CALL == BY_NAME["tail_call"].id


def _xdp_program(core: bool) -> Program:
    """A read of data's first byte, bpf_xdp_adjust_head(ctx, delta from the image),
    then a read of the new data's first byte and a write of the next one (through the
    moved window); r0 the helper's plus 1000 times the second byte plus a million
    times the first."""
    args = xdp.CTX_REGION_SIZE + 4
    text = "\n".join([
        "mov %r6, %r1",
        f"ldxdw %r2, [%r1+{xdp.PTRS_AT}]",
        "ldxb %r7, [%r2+0]",            # the packet's row in the JIT's cache before the call
        f"ldxdw %r2, [%r1+{args}]",
        f"call {ip.XDP_ADJUST_HEAD}",
        "mov %r9, %r0",
        f"ldxdw %r2, [%r6+{xdp.PTRS_AT}]",
        "ldxb %r3, [%r2+0]",
        "stxb [%r2+1], %r3",
        "mul %r3, 1000",
        "add %r9, %r3",
        "mul %r7, 1000000",
        "add %r9, %r7",
        "mov %r0, %r9",
        "exit",
    ])
    registry = HelperRegistry()
    xdp.add_helpers(registry)
    prog = Program.from_bytes(assemble(text), name="adjust", helpers=registry)
    if not core:
        prog._core = 0
    return prog


@pytest.mark.parametrize("tier", ["interp", "jit", "aarch64"])
def test_xdp_adjust_head_in_the_core_answers_as_python_does(tier):
    core, python = _xdp_program(True), _xdp_program(False)
    assert core._core == xdp.PTRS_AT | _bits(ip.XDP_ADJUST_HEAD, ip.REDIRECT, ip.REDIRECT_MAP)
    rng = random.Random(44)
    served = 0
    cases = 40 if tier == "aarch64" else 300
    for _ in range(cases):
        headroom, metalen = 256, rng.choice([0, 0, 4, 8, 32])
        n = rng.choice([14, 15, 60, 100, 1500])
        delta = rng.choice([0, -1, -14, -42, -200, -216 + metalen, -217 + metalen, -256,
                            1, 14, n - 14, n - 13, n, 1 << 31, (1 << 32) - 20,
                            (1 << 40) - 8, rng.randrange(-300, 300) & (1 << 64) - 1])
        buffer = bytearray(rng.getrandbits(8) for _ in range(xdp.PAGE_SIZE))
        outs = []
        for prog, run_tier in ((core, tier), (python, "interp")):
            base = prog.space.by_name["packet"].vaddr
            image = (xdp.XDP_MD.pack(0, 0, 0, 1, 0, 0)
                     + xdp.PTRS.pack(base + headroom, base + headroom + n,
                                     base + headroom - metalen, base, xdp.PAGE_SIZE)
                     + bytes(4) + struct.pack("<Q", delta & (1 << 64) - 1))
            res = prog.run(image, packet=bytes(buffer),
                           packet_window=(headroom - metalen, headroom + n), tier=run_tier)
            outs.append({"r0": res.r0, "error": str(res.error), "memory": res.memory,
                         "packet": res.packet, "calls": res.helper_calls,
                         "regions": res.region_counts})
        assert outs[0] == outs[1], (delta, metalen, n)
        served += _served(core, ip.XDP_ADJUST_HEAD)
    assert served == cases          # every call is the core's: a delta out of range is its EINVAL


def _redirect_program(core: bool) -> tuple[Program, object, object]:
    """bpf_redirect(r1, r2), then bpf_redirect_map(r3's map, r4, r5) where r1 (from the
    memory's first word) is nonzero: the arguments from the memory; r0 the first
    call's plus 1000 times the second's.  The maps: a devmap and a devmap_hash."""
    from xsim.elf.kinds import MapType
    from xsim.elf.spec import MapSpec
    from xsim.runtime.maps import create_map
    from xsim.runtime.memory import run_space
    space = run_space()
    dev = create_map(MapSpec("dev", MapType.DEVMAP, 4, 4, 4), space, 1)
    hashed = create_map(MapSpec("hashed", MapType.DEVMAP_HASH, 4, 4, 4), space, 1)
    for m in (dev, hashed):
        m.update(1, struct.pack("<I", 7))
        m.update(2, struct.pack("<I", 9))
    text = "\n".join([
        "mov %r6, %r1",
        "ldxdw %r2, [%r6+8]",
        "ldxdw %r1, [%r6+0]",
        "jeq %r1, 0, +2",
        f"call {ip.REDIRECT}",
        "mul %r0, 1000",
        "mov %r7, %r0",
        "ldxdw %r1, [%r6+16]",
        "ldxdw %r2, [%r6+24]",
        "ldxdw %r3, [%r6+32]",
        f"call {ip.REDIRECT_MAP}",
        "add %r0, %r7",
        "exit",
    ])
    registry = HelperRegistry()
    xdp.add_helpers(registry)
    prog = Program.from_bytes(assemble(text), name="redirect", helpers=registry, space=space)
    if not core:
        prog._core = 0
    return prog, dev, hashed


@pytest.mark.parametrize("tier", ["interp", "jit", "aarch64"])
def test_xdp_redirects_in_the_core_answer_as_python_does(tier):
    """r0 and where the packet goes (the state words both sides write), for ifindexes
    and flags, devmap slots that are there or not, past the end, broadcasts, and a
    devmap_hash (Python's on both sides)."""
    rng = random.Random(23)
    core, dev, hashed = _redirect_program(True)
    python, pdev, phashed = _redirect_program(False)
    served = 0
    for _ in range(60 if tier == "aarch64" else 300):
        ifindex = rng.choice([0, 1, 5, (1 << 32) + 3])
        flags = rng.choice([0, 0, 0, 1, 2, 1 << 40])
        key = rng.choice([0, 1, 2, 3, 4, 1 << 32 | 1, 1 << 31])
        map_flags = rng.choice([0, 0, 1, 2, 3, ip.BPF_F_BROADCAST, ip.BPF_F_EXCLUDE_INGRESS,
                                4, 1 << 5])
        outs = []
        for prog, m, run_tier in ((core, rng.choice([dev, hashed]), tier),
                                  (python, None, "interp")):
            if m is None:
                m = pdev if outs[0][0] == "dev" else phashed
            memory = struct.pack("<5Q", ifindex, flags, m.vaddr, key, map_flags)
            res = prog.run(memory, tier=run_tier)
            assert res.error is None, res.error
            words = (int(prog._st[ip.S_REDIRECT]), int(prog._st[ip.S_REDIRECT_TO]))
            outs.append((m.name, res.r0, xdp.redirect_of(*words, prog.space)))
            if prog is core:
                served += res.helper_calls.get(ip.REDIRECT_MAP, 0) and int(
                    prog._st[ip.CORE_CALL_WORDS[ip.CORE_IDS.index(ip.REDIRECT_MAP)]])
        assert outs[0] == outs[1]
    assert served > 20
