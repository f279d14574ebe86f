"""The lifter's Builder (xsim/jit/irbuild.py) prints llvmlite's text byte for byte: it
follows one llvmlite version's constructors and formats, so a new llvmlite that prints
otherwise fails here, not as changed native code."""
import gc
import json
import random
from pathlib import Path

import pytest
from llvmlite import ir

import xsim
from xsim.conformance import HELPERS
from xsim.crosscheck.generate import MEMORY_SIZE, generate
from xsim.isa import interp as ip
from xsim.jit import lift
from xsim.runtime import Program
from xsim.runtime.testrun import apply_maps_in

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _programs():
    obj = xsim.load(EXAMPLES / "nic" / "firewall.o")
    apply_maps_in(obj, json.loads((EXAMPLES / "nic" / "blocklist.json").read_text()))
    yield "firewall", obj.programs["firewall"].hooked()
    for seed in range(12):
        code = generate(random.Random(seed), 50, helpers=True, calls=True,
                        mem_size=MEMORY_SIZE)
        yield f"gen{seed}", Program.from_bytes(code, helpers=HELPERS)


@pytest.mark.parametrize("options", [{}, {"profile": True},
                                     {"debug": True, "triple": "aarch64-unknown-linux-gnu"}])
def test_builder_prints_what_llvmlite_prints(monkeypatch, options):
    for name, p in _programs():
        args = (p._code, p._st[ip.C_BASE:], p.name)
        ours = str(lift.lift_module(*args, **options))
        with monkeypatch.context() as m:
            m.setattr(lift, "Builder", ir.IRBuilder)
            theirs = str(lift.lift_module(*args, **options))
        assert ours == theirs, name


def test_lift_text_leaves_nothing_for_the_cyclic_gc() -> None:
    """The module's text, and the module taken apart: a printed module leaves thousands
    of objects in cycles (7,640 for the firewall) that only a collection frees."""
    import gc
    for name, prog in _programs():
        args = (prog._code, prog._st[ip.C_BASE:], prog.name)
        assert lift.lift_text(*args) == str(lift.lift_module(*args)), name
        gc.collect()
        lift.lift_text(*args)
        assert gc.collect() < 100, name
