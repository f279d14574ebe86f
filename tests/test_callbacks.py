"""Helpers that call back into the program (bpf_loop, bpf_for_each_map_elem), and
address-space changes made by a helper in the middle of a run."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import xsim
from xsim import CallDepthExceeded, HelperRegistry, Program
from xsim.isa.asm import assemble
from xsim.runtime.callback_helpers import register_callback_helpers

OBJ = Path(__file__).parent / "data" / "loader" / "callbacks.o"


@pytest.fixture()
def obj():
    return xsim.load(OBJ)


@pytest.mark.parametrize("loops, stop_at, expected", [
    (10, 100, sum(i * i for i in range(10)) * 100 + 10),   # runs to the end
    (10, 4, (0 + 1 + 4 + 9) * 100 + 5),                     # callback returns 1 at i == 4
    (0, 0, 0),
])
def test_bpf_loop(obj, loops: int, stop_at: int, expected: int) -> None:
    res = obj.programs["loop_prog"].run(struct.pack("<II", loops, stop_at))
    assert res.ok, res.error
    assert res.r0 == expected


def test_bpf_loop_refuses_too_many_loops(obj) -> None:
    res = obj.programs["loop_prog"].run(struct.pack("<II", (1 << 23) + 1, 0))
    assert res.ok and res.retval == -7 & 0xFFFFFFFF       # -E2BIG, and no callback ran


def test_for_each_map_elem_visits_and_writes_in_place(obj) -> None:
    obj.maps["hash"].update(struct.pack("<I", 3), struct.pack("<Q", 7))
    obj.maps["arr"].update(struct.pack("<I", 2), struct.pack("<Q", 5))
    res = obj.programs["each_prog"].run(b"")
    assert res.ok, res.error
    visited = 3 * 1000 + 7 + sum(k * 1000 for k in range(8)) + 5
    assert res.r0 == visited * 100 + 1 * 10 + 8
    assert obj.maps["hash"].lookup(struct.pack("<I", 3)) == struct.pack("<Q", 8)
    assert obj.maps["arr"].lookup(struct.pack("<I", 2)) == struct.pack("<Q", 6)


def _loop_program(callback_body: str) -> bytes:
    # r1 = 3 loops, r2 = &cb, r3 = ctx (r10-8), r4 = 0; return bpf_loop's result
    return assemble(f"""
        stdw [%r10-8], 0
        mov %r1, 3
        lddw %r2, func cb
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 181
        ldxdw %r1, [%r10-8]
        mul %r1, 10
        add %r0, %r1
        exit
        cb:
        {callback_body}
        """, syntax="ubpf")


def test_callback_reads_the_callers_stack_through_its_ctx() -> None:
    helpers = HelperRegistry()
    register_callback_helpers(helpers)
    code = _loop_program("ldxdw %r3, [%r2+0]\nadd %r3, %r1\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit")
    res = Program.from_bytes(code, helpers=helpers).run()
    assert res.ok, res.error
    assert res.r0 == 3 + (0 + 1 + 2) * 10


def test_callback_cannot_write_below_its_own_frame() -> None:
    helpers = HelperRegistry()
    register_callback_helpers(helpers)
    code = _loop_program("stdw [%r10-520], 1\nmov %r0, 0\nexit")
    res = Program.from_bytes(code, helpers=helpers).run()
    assert isinstance(res.error, xsim.MemoryAccessError) and res.error.region == "stack"


def test_callbacks_count_towards_the_call_depth() -> None:
    helpers = HelperRegistry()
    register_callback_helpers(helpers)
    # the callback calls bpf_loop again with itself: frames pile up until the limit
    code = assemble("""
        mov %r1, 1
        lddw %r2, func cb
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        cb:
        mov %r1, 1
        lddw %r2, func cb
        mov %r3, 0
        mov %r4, 0
        call 181
        mov %r0, 0
        exit
        """, syntax="ubpf")
    res = Program.from_bytes(code, helpers=helpers).run()
    assert isinstance(res.error, CallDepthExceeded)


def test_region_added_by_a_helper_mid_call_keeps_the_stack() -> None:
    """A helper that grows the address space while a subprogram runs (depth 1) must not
    move the caller's and callee's stack frames."""
    helpers = HelperRegistry()

    @helpers.register(70, "add_region")
    def _add(call):
        call.space.add(f"extra{len(call.space.regions)}", 1 << 16)
        return 0

    code = assemble("""
        stdw [%r10-8], 11
        call local f
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        exit
        f:
        stdw [%r10-8], 22
        call 70
        ldxdw %r0, [%r10-8]
        exit
        """, syntax="ubpf")
    res = Program.from_bytes(code, helpers=helpers).run()
    assert res.ok, res.error
    assert res.r0 == 33
