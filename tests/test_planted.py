"""Planted JIT bugs (xsim/jit/plant.py): the generator and the differential check find
each known JIT bug class, and minimize it to a handful of instructions.

For each class, with ``XSIM_JIT_PLANT`` naming it, seeded cases (``diff.case``) run on
the interpreter and a JIT tier, seed 0 upwards, until one differs; the difference is
then minimized with ``diff.shrink_difference``.  Seeds whose program has none of the
exec names the class changes (``plant.execs``) are passed over: their planted code
computes what the correct code does, so they cannot differ.  The same seed and the
minimized program must not differ with nothing planted (which also shows that the
disk cache keeps planted and correct builds apart).

The host "jit" tier is tested for every class; ``test_isa_*`` runs two classes on the
three ISA tiers under unicorn.  ``pytest -s`` prints each class's seed and minimized
program.
"""
from __future__ import annotations

import pytest

pytest.importorskip("llvmlite")

from xsim.crosscheck import diff  # noqa: E402
from xsim.errors import XsimError  # noqa: E402
from xsim.isa.insn import decode  # noqa: E402
from xsim.jit import plant  # noqa: E402
from xsim.runtime.program import ISA_TIERS  # noqa: E402

#: seeds tried per class before the test gives up
CAP = 10_000
#: the most instructions a minimized difference may have (an lddw counts as one)
SMALL = 5
#: the classes also run on the ISA tiers (cheap ones: an ISA compile costs 50-100 ms)
ISA_PLANTS = ("alu32_no_zext", "helper_arg_reg")


def hunt(name: str, tier: str) -> tuple[diff.Case, diff.Difference, int]:
    """The first seeded case that differs on ``tier`` (the plant set), its difference and
    how many cases ran."""
    execs = plant.execs(name)
    ran = 0
    for seed in range(CAP):
        c = diff.case(seed)
        if not execs & {i.op.exec for i in decode(c.code)}:
            continue
        ran += 1
        _, d = diff._first(c.code, c.memory, ("interp", tier), c.budget, c.repeat)
        if d is not None:
            return c, d, ran
    pytest.fail(f"{name}: no seed in 0..{CAP - 1} differs on tier {tier} ({ran} cases ran "
                f"with {sorted(execs)})")


def found_and_minimized(name: str, tier: str, monkeypatch) -> None:
    # compiles in this process: a forked child of a pytest process spends more time in
    # copy-on-write page faults than in the compile (these programs are known to compile)
    monkeypatch.setenv("XSIM_JIT_FORK", "0")
    monkeypatch.setenv(plant.ENV, name)
    tiers = ("interp", tier)
    c, first, ran = hunt(name, tier)
    small, d = diff.shrink_difference(c.code, c.memory, tiers, c.budget, c.repeat)
    n = len(decode(small))
    text = diff.report(small, c.memory, d)
    runs = f"{ran} case{'s' * (ran != 1)} run"
    print(f"\n== {name} on {tier}: seed {c.seed} ({runs}, budget {c.budget}, repeat "
          f"{c.repeat}), first in {first.field}; minimized to {n} instructions\n{text}")
    assert d is not None and diff.differences(small, c.memory, tiers, c.budget, c.repeat), \
        f"{name} on {tier}: seed {c.seed}'s minimized program no longer differs\n{text}"
    assert n <= SMALL, f"{name} on {tier}: seed {c.seed} minimized to {n} > {SMALL} " \
                       f"instructions\n{text}"
    # with nothing planted, the same seed and the small program agree
    monkeypatch.delenv(plant.ENV)
    for code in (c.code, small):
        clean = diff.differences(code, c.memory, tiers, c.budget, c.repeat)
        assert clean is None, f"{name} on {tier}: seed {c.seed} differs with nothing " \
                              f"planted\n{diff.report(code, c.memory, clean)}"


@pytest.mark.parametrize("name", list(plant.PLANTS))
def test_jit_finds_planted_bug(name: str, monkeypatch) -> None:
    found_and_minimized(name, "jit", monkeypatch)


# -- the ISA tiers: the same code compiled for x86-64, aarch64 and riscv64, under unicorn --------
@pytest.mark.parametrize("tier", ISA_TIERS)
@pytest.mark.parametrize("name", ISA_PLANTS)
def test_isa_finds_planted_bug(name: str, tier: str, monkeypatch) -> None:
    pytest.importorskip("unicorn")
    found_and_minimized(name, tier, monkeypatch)


# -- the switch --------------------------------------------------------------------------------
def test_the_table() -> None:
    assert len(plant.PLANTS) >= 10
    for name, p in plant.PLANTS.items():
        assert p.description and p.where, name
        assert plant.execs(name), f"{name}: its exec patterns match no exec name"


def test_unknown_class_is_an_error_naming_the_classes(monkeypatch) -> None:
    monkeypatch.setenv(plant.ENV, "no_such_bug")
    with pytest.raises(XsimError, match="no_such_bug") as info:
        plant.active()
    assert all(name in str(info.value) for name in plant.PLANTS)
    monkeypatch.setenv(plant.ENV, "")
    assert plant.active() is None
    monkeypatch.delenv(plant.ENV)
    assert plant.active() is None


def test_a_planted_build_is_never_the_correct_one(monkeypatch) -> None:
    """Planted, clean, planted again: the disk cache gives each its own build."""
    import xsim
    code = xsim.assemble("mov32 %r0, -1\nexit")        # r0 = 0xffffffff
    for planted, want in ((True, (1 << 64) - 1), (False, 0xFFFFFFFF), (True, (1 << 64) - 1)):
        if planted:
            monkeypatch.setenv(plant.ENV, "alu32_no_zext")
        else:
            monkeypatch.delenv(plant.ENV)
        assert diff.run_tier(code, b"", "jit")["r0"] == want, planted
