"""Program.run: the address space checks, budget, call frames, helpers, repeat, results."""
from __future__ import annotations

import struct

import pytest

from xsim import (BudgetExceeded, CallDepthExceeded, HelperError, HelperRegistry,
                  MemoryAccessError, Program, UnresolvedReference, XsimError)
from xsim.isa import opcodes as oc
from xsim.isa.asm import assemble
from xsim.isa.insn import encode, make
from xsim.runtime.memory import STACK_SIZE, slot_address


def prog(text: str, **kw) -> Program:
    return Program.from_bytes(assemble(text, syntax="ubpf"), **kw)


def test_r1_r2_point_at_memory() -> None:
    res = prog("ldxb %r0, [%r1+2]\nadd %r0, %r2\nexit").run(memory=b"\x00\x00\x07\x00")
    assert res.ok and res.r0 == 7 + 4
    assert res.region_accesses["memory"] == (1, 0)


def test_stores_are_visible_in_the_result() -> None:
    res = prog("stw [%r1+0], 0x11223344\nmov %r0, 0\nexit").run(memory=bytes(8))
    assert res.memory == bytes.fromhex("4433221100000000")
    assert res.region_accesses["memory"] == (0, 1)


def test_null_pointer_is_no_region() -> None:
    res = prog("mov %r3, 0\nldxw %r0, [%r3+0]\nexit").run()
    err = res.error
    assert isinstance(err, MemoryAccessError)
    assert (err.pc, err.address, err.size, err.access, err.region) == (1, 0, 4, "read", None)
    assert str(err) == "pc 1: invalid read of 4 bytes at 0x0: no region"


def test_out_of_bounds_read_names_region() -> None:
    res = prog("ldxw %r0, [%r1+2]\nexit").run(memory=b"abcd")
    err = res.error
    assert isinstance(err, MemoryAccessError)
    assert err.region == "memory" and err.address == slot_address(2) + 2 and err.size == 4
    assert "out of bounds" in str(err)


def test_stack_window_is_r10_minus_512_to_r10() -> None:
    ok = prog("mov %r1, 5\nstxdw [%r10-512], %r1\nldxdw %r0, [%r10-512]\nexit").run()
    assert ok.ok and ok.r0 == 5
    below = prog("mov %r1, 5\nstxdw [%r10-520], %r1\nmov %r0, 0\nexit").run()
    assert isinstance(below.error, MemoryAccessError)
    assert below.error.region == "stack" and below.error.access == "write"
    assert "below the current frame" in str(below.error)
    above = prog("ldxb %r0, [%r10+0]\nexit").run()
    assert isinstance(above.error, MemoryAccessError) and above.error.region == "stack"


CALLEE_READS_CALLER = """
stw [%r10-4], 42
mov %r1, %r10
call local f
exit
f:
ldxw %r0, [%r1-4]
exit
"""


def test_callee_gets_a_fresh_frame_and_may_read_its_callers() -> None:
    res = prog(CALLEE_READS_CALLER).run()
    assert res.ok and res.r0 == 42
    # the callee's frame is 512 bytes below the caller's: r10 moved down by 512
    res = prog("mov %r6, %r10\ncall local f\nsub %r6, %r0\nmov %r0, %r6\nexit\n"
               "f:\nmov %r0, %r10\nexit").run()
    assert res.r0 == 512


def test_callee_cannot_write_below_its_frame() -> None:
    res = prog("call local f\nexit\nf:\nstdw [%r10-520], 1\nexit").run()
    assert isinstance(res.error, MemoryAccessError) and res.error.pc == 2


def test_callee_saved_registers_restored() -> None:
    res = prog("mov %r6, 6\ncall local f\nmov %r0, %r6\nexit\nf:\nmov %r6, 99\nmov %r0, 0\nexit").run()
    assert res.r0 == 6


def test_call_depth_limit_is_the_kernels() -> None:
    # depth n: main calls f1 ... f(n-1); 8 frames in all are allowed
    def chain(frames: int) -> str:
        lines = ["call local f1", "exit"]
        for i in range(1, frames):
            lines += [f"f{i}:"] + ([f"call local f{i + 1}"] if i < frames - 1 else
                                   ["mov %r0, 7"]) + ["exit"]
        return "\n".join(lines)
    assert prog(chain(oc.MAX_CALL_FRAMES)).run().r0 == 7
    res = prog(chain(oc.MAX_CALL_FRAMES + 1)).run()
    assert isinstance(res.error, CallDepthExceeded) and res.error.limit == 8


def test_budget_stops_runaway_loop() -> None:
    res = prog("mov %r0, 0\nloop:\nadd %r0, 1\nja loop").run(budget=1000)
    err = res.error
    assert isinstance(err, BudgetExceeded)
    assert err.insns == 1000 and err.budget == 1000 and res.insns == 1000
    assert "budget of 1000" in str(err)


def test_repeat_runs_on_the_same_memory() -> None:
    p = prog("ldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nexit")
    res = p.run(memory=bytes(8), repeat=5)
    assert res.ok and res.runs == 5 and res.r0 == 5
    assert res.insns == 4 and res.insns_total == 20
    assert struct.unpack("<Q", res.memory)[0] == 5
    assert res.duration_ns > 0


def test_python_helper_gets_arguments_and_memory() -> None:
    helpers = HelperRegistry()

    @helpers.register(1, "sum_bytes")
    def _sum(call):
        ptr, n = call.args[0], call.args[1]
        return sum(call.read(ptr, n)) + call.args[2]

    res = prog("mov %r2, 3\nmov %r3, 100\ncall 1\nexit", helpers=helpers).run(memory=b"\x01\x02\x03\x04")
    assert res.ok and res.r0 == 1 + 2 + 3 + 100
    assert res.helper_calls == {1: 1}


def test_helper_writes_are_checked() -> None:
    helpers = HelperRegistry()
    helpers.register(2, "poke")(lambda call: call.write(call.args[0], b"\xff" * 16) or 0)
    res = prog("call 2\nexit", helpers=helpers).run(memory=bytes(8))
    assert isinstance(res.error, MemoryAccessError) and res.error.region == "memory"


def test_missing_helper_names_its_id() -> None:
    res = prog("call 77\nexit").run()
    assert isinstance(res.error, HelperError)
    assert res.error.helper_id == 77 and res.error.pc == 0
    assert "helper 77" in str(res.error)


def test_a_kernel_helper_xsim_lacks_is_named() -> None:
    res = prog("call 27\nexit").run()             # bpf_get_stackid: no stack traces here
    assert isinstance(res.error, HelperError) and res.error.name == "bpf_get_stackid"
    assert str(res.error) == "pc 0: helper 27 (bpf_get_stackid): xsim does not provide this helper here"
    res = prog("call 9999\nexit").run()
    assert "the kernel has no helper with this id" in str(res.error)


def test_printk_lines_of_the_run_are_on_the_result() -> None:
    from xsim.runtime.kernel_helpers import register_kernel_helpers
    helpers = HelperRegistry()
    register_kernel_helpers(helpers)
    # "hi %d\0" on the stack, then trace_printk(fmt, 6, 42)
    code = ("lddw %r1, 0x0064252069680000\nstxdw [%r10-8], %r1\nmov %r1, %r10\n"
            "add %r1, -6\nmov %r2, 6\nmov %r3, 42\ncall 6\nexit")
    p = prog(code, helpers=helpers)
    res = p.run(repeat=2)
    assert res.printk == ["hi 42", "hi 42"] and res.retval == 5
    assert p.run().printk == ["hi 42"]


def test_helper_bug_is_reported_as_helper_error() -> None:
    helpers = HelperRegistry()
    helpers.register(3, "broken")(lambda call: 1 // 0)
    res = prog("call 3\nexit", helpers=helpers).run()
    assert isinstance(res.error, HelperError) and "ZeroDivisionError" in str(res.error)


def test_helper_can_stop_the_program() -> None:
    helpers = HelperRegistry()
    helpers.register(4, "stop")(lambda call: call.stop(9) or 0)
    res = prog("call 4\nmov %r0, 1\nexit", helpers=helpers).run(repeat=3)
    assert res.ok and res.r0 == 9 and res.runs == 3


def test_callx_calls_the_helper_in_a_register() -> None:
    helpers = HelperRegistry()
    helpers.register(6, "six")(lambda call: 66)
    assert prog("mov %r3, 6\ncall %r3\nexit", helpers=helpers).run().r0 == 66


def _ldpkt(name: str, imm: int, src: int = 0) -> list:
    return [make(oc.BY_NAME[name], src=src, imm=imm)]


def test_legacy_packet_loads_are_big_endian() -> None:
    mov = oc.BY_KEY[(oc.ALU64 | oc.K | oc.ALU_OPS["mov"][0], 0)]
    code = encode(_ldpkt("ldabsh", 12) + [make(oc.BY_NAME["exit"])])
    pkt = bytes(range(32))
    assert Program.from_bytes(code).run(packet=pkt).r0 == 0x0C0D
    code = encode([make(mov, dst=3, imm=4)] + _ldpkt("ldindw", 2, src=3) + [make(oc.BY_NAME["exit"])])
    assert Program.from_bytes(code).run(packet=pkt).r0 == 0x06070809


def test_legacy_packet_load_out_of_bounds_returns_zero() -> None:
    mov = oc.BY_KEY[(oc.ALU64 | oc.K | oc.ALU_OPS["mov"][0], 0)]
    code = encode([make(mov, dst=0, imm=5)] + _ldpkt("ldabsw", 30) + [make(oc.BY_NAME["exit"])])
    res = Program.from_bytes(code).run(packet=bytes(32))
    assert res.ok and res.r0 == 0
    no_packet = Program.from_bytes(code).run()
    assert isinstance(no_packet.error, MemoryAccessError)


def test_unresolved_map_reference_is_a_clear_error() -> None:
    lddw_map = oc.BY_KEY[(oc.OPCODE_LDDW, 1)]
    code = encode([make(lddw_map, dst=1, imm=3), make(oc.BY_NAME["exit"])])
    res = Program.from_bytes(code).run()
    assert isinstance(res.error, UnresolvedReference) and "map by file descriptor" in str(res.error)
    kfunc = oc.BY_KEY[(oc.JMP | oc.JMP_CALL, oc.CALL_KFUNC)]
    res = Program.from_bytes(encode([make(kfunc, imm=1234), make(oc.BY_NAME["exit"])])).run()
    assert isinstance(res.error, UnresolvedReference) and "1234" in str(res.error)


def test_histogram_counts_instruction_classes() -> None:
    res = prog("mov %r0, 0\nmov32 %r1, 3\nloop:\nadd %r0, 2\nsub32 %r1, 1\njne %r1, 0, loop\nexit"
               ).run(histogram=True)
    assert res.r0 == 6
    assert res.histogram == {"alu64": 1 + 3, "alu": 1 + 3, "jmp": 3 + 1}
    assert sum(res.histogram.values()) == res.insns


def test_unknown_tier_is_refused() -> None:
    with pytest.raises(XsimError, match="tier 'gpu' is not available"):
        prog("mov %r0, 0\nexit").run(tier="gpu")


def test_stack_is_4k_for_eight_frames() -> None:
    assert STACK_SIZE == oc.STACK_FRAME_SIZE * oc.MAX_CALL_FRAMES == 4096
