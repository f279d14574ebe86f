"""Differential runs: one program, one input, several tiers, the first difference.

Every tier must give the same :class:`~xsim.runtime.RunResult` (r0,
instruction counts, runs, the error's type, message and fields, the memory
after the run, the per-region access counts and the helper calls; not the
wall time).  Each tier runs on a Program of its own, so no run sees what
another left in the stack or the registers.  A tier that raises instead of
returning a result (a lifter that refuses the program, say) is a difference
too, of the kind ``"raised"``.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..conformance import HELPERS
from ..isa.disasm import disassemble
from ..runtime import Program, RunResult

#: the RunResult fields compared, in the order differences are reported
FIELDS = ("error", "r0", "insns", "insns_total", "runs", "memory", "region_counts",
          "helper_calls")


@dataclass
class Difference:
    """Where two tiers disagree: the first differing field and both sides' facts."""

    field: str                  # one of FIELDS, or "raised"
    tiers: tuple[str, str]
    facts: tuple[dict, dict]

    def __str__(self) -> str:
        a, b = self.tiers
        fa, fb = self.facts
        lines = [f"tier {b} differs from tier {a} in {self.field}:",
                 f"  {a}: {_show(self.field, fa)}", f"  {b}: {_show(self.field, fb)}"]
        for name in FIELDS if self.field != "raised" else ():
            if name != self.field and fa.get(name) != fb.get(name):
                lines.append(f"  also {name}: {a} {_show(name, fa)} / {b} {_show(name, fb)}")
        return "\n".join(lines)


def _show(name: str, facts: dict) -> str:
    value = facts.get(name)
    if name == "r0" and isinstance(value, int):
        return f"{value:#x}"
    if name == "memory" and isinstance(value, bytes):
        return value.hex()
    return repr(value)


def facts(result: RunResult) -> dict:
    """What of a RunResult the tiers must agree on, as plain data."""
    error = None
    if result.error is not None:
        fields = {k: v for k, v in sorted(vars(result.error).items()) if not k.startswith("_")}
        error = (type(result.error).__name__, str(result.error), fields)
    return {"error": error, "r0": result.r0, "insns": result.insns,
            "insns_total": result.insns_total, "runs": result.runs,
            "memory": bytes(result.memory), "region_counts": result.region_counts,
            "helper_calls": dict(sorted(result.helper_calls.items()))}


def run_tier(code: bytes, memory: bytes, tier: str, budget: int = 10_000,
             repeat: int = 1) -> dict:
    """The facts of one run on ``tier``, or ``{"raised": "Type: message"}``."""
    try:
        prog = Program.from_bytes(code, helpers=HELPERS)
        return facts(prog.run(memory=memory, tier=tier, budget=budget, repeat=repeat))
    except Exception as exc:     # a tier's refusal or crash is a verdict to compare
        return {"raised": f"{type(exc).__name__}: {exc}"}


def differences(code: bytes, memory: bytes, tiers: Sequence[str] = ("interp", "jit"),
                budget: int = 10_000, repeat: int = 1) -> Difference | None:
    """The first difference between ``tiers[0]`` and any other tier, or None."""
    return _first(code, memory, tiers, budget, repeat)[1]


def between(ref: dict, other: dict, tiers: tuple[str, str]) -> Difference | None:
    """The first field where two runs' facts differ, or None."""
    if "raised" in ref or "raised" in other:
        if ref.get("raised") != other.get("raised"):
            return Difference("raised", tiers, (ref, other))
        return None
    for name in FIELDS:
        if ref[name] != other[name]:
            return Difference(name, tiers, (ref, other))
    return None


#: the keys of a test run's facts (``command.object_facts``, ``native``), in report order;
#: "run", "maps" and "regions" hold one entry per field, map or region
TEST_RUN_KEYS = ("raised", "run", "data_out", "ctx_out", "redirect", "printk", "maps",
                 "regions")


def first_difference(ref: dict, other: dict) -> str | None:
    """The first field where one test run's facts ``other`` differ from ``ref``, with both
    values (a map: its first differing entry; a region: that its bytes differ)."""
    for key in TEST_RUN_KEYS:
        a, b = ref.get(key), other.get(key)
        if key in ("run", "maps", "regions") and a is not None and b is not None:
            for name in a:
                if a[name] == b.get(name):
                    continue
                if key == "run":
                    return f"run.{name}: {_short(a[name])} != {_short(b.get(name))}"
                if key == "regions":
                    return f"region {name!r}: bytes differ"
                return f"map {name!r}: {_map_difference(a[name], b.get(name))}"
        elif a != b:
            return f"{key}: {_short(a)} != {_short(b)}"
    return None


def _map_difference(a: dict, b: dict | None) -> str:
    """The first entry (or property) where two ``dump_map`` dumps differ."""
    if b is None:
        return "missing"
    for field in a:
        if field != "entries" and a[field] != b.get(field):
            return f"{field}: {_short(a[field])} != {_short(b.get(field))}"
    mine = {e["key"]: e for e in a.get("entries", [])}
    theirs = {e["key"]: e for e in b.get("entries", [])}
    for key in sorted(set(mine) | set(theirs)):
        x, y = mine.get(key), theirs.get(key)
        if x == y:
            continue
        if x is None or y is None:
            return f"key {key}: {'missing' if x is None else 'present'} != " \
                   f"{'missing' if y is None else 'present'}"
        field = next(f for f in sorted(set(x) | set(y)) if x.get(f) != y.get(f))
        return f"key {key}: {field} {_short(x.get(field))} != {_short(y.get(field))}"
    return "entries differ"


def _short(v) -> str:
    text = v.hex() if isinstance(v, bytes) else repr(v)
    return text if len(text) <= 160 else text[:157] + "..."


def _first(code: bytes, memory: bytes, tiers: Sequence[str], budget: int,
           repeat: int) -> tuple[dict, Difference | None]:
    """(the reference tier's facts, the first difference or None)."""
    ref = run_tier(code, memory, tiers[0], budget, repeat)
    for tier in tiers[1:]:
        d = between(ref, run_tier(code, memory, tier, budget, repeat), (tiers[0], tier))
        if d is not None:
            return ref, d
    return ref, None


def compare(code: bytes, memory: bytes, tiers: Sequence[str] = ("interp", "jit"),
            budget: int = 10_000, *, repeat: int = 1) -> str | None:
    """None when every tier gives the same RunResult, else a description of the first
    difference (the differing field, both values and the other fields that differ)."""
    diff = differences(code, memory, tiers, budget, repeat)
    return None if diff is None else str(diff)


def shrink_difference(code: bytes, memory: bytes, tiers: Sequence[str] = ("interp", "jit"),
                      budget: int = 10_000, repeat: int = 1,
                      **kw) -> tuple[bytes, Difference | None]:
    """Minimize a program while it differs in the same field (a refusal stays a
    refusal, a wrong r0 a wrong r0); the small program and its difference."""
    from .generate import minimize

    first = differences(code, memory, tiers, budget, repeat)
    if first is None:
        return code, None
    same: Callable[[bytes], bool] = lambda c: (  # noqa: E731
        (d := differences(c, memory, tiers, budget, repeat)) is not None
        and d.field == first.field)
    small = minimize(code, same, **kw)
    return small, differences(small, memory, tiers, budget, repeat)


def report(code: bytes, memory: bytes, diff: Difference | None) -> str:
    """A difference with the program's listing and the input, for a bug report."""
    return "\n".join([f"program ({len(code) // 8} slots):", disassemble(code),
                      f"memory: {bytes(memory).hex()}", str(diff) if diff else "no difference"])


# -- campaigns: many seeded programs, on several processes ---------------------------------------
@dataclass
class Case:
    """One seeded differential case: a program, its input and how it is run."""

    seed: int
    code: bytes
    memory: bytes
    budget: int = 10_000
    repeat: int = 1


def case(seed: int, budget: int = 10_000) -> Case:
    """The case of one seed: sizes, helpers, calls and the memory size vary; one case in
    eight runs on a small budget (so that it stops anywhere: inside a block, a callee, at
    a helper) and one in ten repeats its run."""
    from .generate import MEMORY_SIZE, generate, random_memory

    rng = random.Random(seed)
    n = rng.choice((6, 12, 20, 30, 45))
    helpers = rng.random() < 0.5
    calls = rng.random() < 0.8
    mem_size = rng.choice((MEMORY_SIZE,) * 6 + (8, 200))
    code = generate(rng, n, helpers=helpers, calls=calls, mem_size=mem_size)
    if rng.random() < 0.03:
        mem_size = rng.choice((0, mem_size // 2))    # smaller than the program thinks
    memory = random_memory(rng, mem_size)
    if rng.random() < 0.125:
        budget = rng.randint(1, 300)
    repeat = rng.choice((2, 3)) if rng.random() < 0.1 else 1
    return Case(seed, code, memory, budget, repeat)


@dataclass
class CaseResult:
    seed: int
    verdict: str                  # the reference tier's error type, "ok" or "raised"
    difference: str | None        # compare()'s description, None when the tiers agree


def _verdict(f: dict) -> str:
    if "raised" in f:
        return "raised"
    return f["error"][0] if f["error"] else "ok"


def run_cases(seeds: Iterable[int], tiers: Sequence[str] = ("interp", "jit"),
              budget: int = 10_000) -> list[CaseResult]:
    """Every seed's case through ``tiers``, in this process."""
    out = []
    for seed in seeds:
        c = case(seed, budget)
        ref, diff = _first(c.code, c.memory, tiers, c.budget, c.repeat)
        out.append(CaseResult(seed, _verdict(ref), None if diff is None else str(diff)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xsim.crosscheck --seeds 0:1000 --jobs 2``: run seeded cases,
    print each difference minimized; exit status 1 if any."""
    import argparse
    import os

    ap = argparse.ArgumentParser(prog="python -m xsim.crosscheck")
    ap.add_argument("--seeds", default="0:300", help="start:stop")
    ap.add_argument("--tiers", default="interp,jit")
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-minimize", action="store_true")
    args = ap.parse_args(argv)
    start, stop = (int(x) for x in args.seeds.split(":"))
    tiers = tuple(args.tiers.split(","))
    from .campaign import run
    bad = run(range(start, stop), tiers, args.budget, args.jobs).differing
    for seed in bad:
        c = case(seed, args.budget)
        code = c.code
        if not args.no_minimize:
            code, _ = shrink_difference(code, c.memory, tiers, c.budget, c.repeat)
        print(f"== seed {seed} (budget {c.budget}, repeat {c.repeat})")
        print(report(code, c.memory, differences(code, c.memory, tiers, c.budget, c.repeat)))
    print(f"{stop - start} cases, {len(bad)} with differences")
    return 1 if bad else 0

