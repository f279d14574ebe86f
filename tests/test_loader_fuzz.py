"""The loader on mutated real objects: it gives a spec or an xsim error, nothing else."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_dir
from xsim.elf.loader import load_spec
from xsim.errors import XsimError
from xsim.runtime.object import Object

OBJECTS = sorted((Path(__file__).parent / "data").rglob("*.o"))
OBJECTS += sorted((shared_dir() / "bench-progs").glob("*.bpf.o"))
SEEDS = [p.read_bytes() for p in OBJECTS]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        how = draw(st.sampled_from(["flip", "u32", "truncate", "zero"]))
        at = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "u32":
            value = draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, len(data), 8, 0x40]))
            data[at:at + 4] = value.to_bytes(4, "little")
        elif how == "zero":
            data[at:at + 16] = bytes(min(16, len(data) - at))
        else:
            del data[at:]
            if not data:
                data = bytearray(b"\x7fELF")
    return bytes(data)


@pytest.mark.skipif(not SEEDS, reason="no objects to mutate")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_objects_give_spec_or_xsim_error(data: bytes) -> None:
    """Loading and instantiating (maps made, programs decoded and linked) either works
    or raises an XsimError; any other exception fails the test."""
    try:
        Object(load_spec(data, name="fuzz.o"))
    except XsimError:
        pass
