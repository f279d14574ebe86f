"""``xsim crosscheck``: the interpreter against the JIT's code on each ISA.

``xsim crosscheck FILE [--prog NAME] [--isa LIST] [inputs as for xsim run]`` runs
one program on the interpreter and on each ISA under unicorn, on the same inputs,
each on a fresh load of the object (so maps start alike), and prints agreement or
the first difference: the run's facts (r0, counts, error, memory, region access
counts, helper calls), the test run's outputs and every region's bytes after it.

``xsim crosscheck --gen N --seed S [--isa LIST]`` checks N generated programs and
prints each difference minimized; ``--save DIR`` writes each as a bpf_conformance
``.data`` file (raw words, memory, the interpreter's r0 or error), which
``tests/test_regressions.py`` runs on every tier.  ``--log FILE`` keeps a record of
the campaign that the same command goes on from (:mod:`.campaign`).

``xsim crosscheck --native IMAGE [--isa x86_64] [--abi kernel] OBJ --prog NAME [inputs,
--pcap F]`` runs another JIT's code instead of xsim's: a kernel JIT image that
``xsim kernel-image`` recorded (:mod:`.native`), on each input (each frame of a
capture), and prints agreement or the first difference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import XsimError
from ..runtime import Program, testrun
from ..runtime.env import RunEnv
from ..runtime.object import load
from ..runtime.source import ELF_MAGIC, read_code
from . import campaign, diff, targets
from .diff import first_difference

ALL = ",".join(targets.ISAS)


def _isas(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    for n in names:
        targets.isa(n)
    return names


def object_facts(path: str, prog_name: str | None, tier: str, *, data_in: bytes | None,
                 ctx_in: bytes | None, maps_in: list | None, repeat: int,
                 budget: int | None, ncpus: int = 1, cpu: int = 0,
                 memory: bytes | None = None) -> dict:
    """One test run of an object's program on ``tier``, from a fresh load (per-CPU maps of
    ``ncpus`` CPUs, the run on ``cpu``): what the tiers must agree on (or ``{"raised":
    ...}``)."""
    try:
        obj = load(path, ncpus=ncpus, cpu=cpu)
        if maps_in:
            testrun.apply_maps_in(obj, maps_in)
        prog = obj.choose(prog_name)
        out = testrun.test_run(prog, data_in=data_in, ctx_in=ctx_in, memory=memory,
                               repeat=repeat, budget=budget, tier=tier)
        space = prog.hooked().space if prog._hooked else prog.program.space
        regions = {r.name: bytes(space.mem[r.host:r.host + r.size]) for r in space.regions}
        return {"run": diff.facts(out.result), "data_out": out.data_out,
                "ctx_out": out.ctx_out, "redirect": out.redirect, "regions": regions}
    except XsimError as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}


def check_file(args: argparse.Namespace) -> int:
    isas = _isas(args.isa or ALL)
    path = Path(args.file)
    data_in = Path(args.data_in).read_bytes() if args.data_in else None
    ctx_in = Path(args.ctx_in).read_bytes() if args.ctx_in else None
    maps_in = json.loads(Path(args.maps_in).read_text()) if args.maps_in else None
    raw = path.read_bytes()[:4] != ELF_MAGIC
    if raw:     # bytecode or a .s file
        code = read_code(path, prog=args.prog).code
        memory = Path(args.mem).read_bytes() if args.mem else b""
        ref = diff.run_tier(code, memory, "interp", args.budget, args.repeat)
        results = {i: diff.run_tier(code, memory, i, args.budget, args.repeat) for i in isas}
        found = {i: diff.between(ref, r, ("interp", i)) for i, r in results.items()}
        found = {i: (None if d is None else str(d)) for i, d in found.items()}
    else:
        # an object's program with its maps, on raw memory too (--mem)
        kw = dict(data_in=data_in, ctx_in=ctx_in, maps_in=maps_in, repeat=args.repeat,
                  budget=args.budget, ncpus=args.cpus, cpu=args.cpu,
                  memory=Path(args.mem).read_bytes() if args.mem else None)
        ref = object_facts(str(path), args.prog, "interp", **kw)
        found = {i: first_difference(ref, object_facts(str(path), args.prog, i, **kw))
                 for i in isas}
    if args.json:
        print(json.dumps({"agree": all(d is None for d in found.values()),
                          "differences": found}, indent=2))
    else:
        for i, d in found.items():
            print(f"{i}: " + ("agrees with the interpreter" if d is None else f"DIFFERS\n{d}"))
    return 0 if all(d is None for d in found.values()) else 1


def program_of(path: str | Path, prog_name: str | None, raw: bool = False) -> Program:
    """The Program the JIT compiles for a file: an ELF object's program as its hook
    rewrites it (unless ``raw``), or bytecode / a .s file as it is."""
    path = Path(path)
    if path.read_bytes()[:4] == ELF_MAGIC:
        obj = load(path)
        op = obj.choose(prog_name)
        return op.hooked() if _hooked(op) and not raw else op.program
    source = read_code(path, prog=prog_name)
    return Program.from_bytes(source.code, name=source.name)


def _hooked(op) -> bool:
    from ..runtime.hooks import HOOKS
    return op.spec.prog_type in HOOKS


def assembly(prog: Program, isa: str) -> str:
    """``isa``'s assembly of the program, marked with eBPF pcs (capstone)."""
    from ..jit import emit
    t = targets.isa(isa)
    return emit.assembly(prog, (t.triple, t.cpu, t.features, t.code_model),
                         (t.cs_arch, t.cs_mode))


def save_case(directory: Path, seed: int, code: bytes, memory: bytes, budget: int) -> Path:
    """The case as a bpf_conformance ``.data`` file, with the interpreter's verdict."""
    ref = Program.from_bytes(code, helpers=_helpers()).run(memory=memory, budget=budget)
    words = " ".join(f"{int.from_bytes(code[k:k + 8], 'little'):016x}"
                     for k in range(0, len(code), 8))
    lines = [f"# xsim crosscheck --gen, seed {seed}, budget {budget}", "-- raw", words,
             "-- mem", memory.hex(" ") if memory else ""]
    if ref.error is None:
        lines += ["-- result", f"{ref.r0:#x}"]
    else:
        lines += ["-- error", str(ref.error)]
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"seed{seed}.data"
    out.write_text("\n".join(lines) + "\n")
    return out


def _helpers():
    from ..conformance import HELPERS
    return HELPERS


def generate(args: argparse.Namespace) -> int:
    tiers = ("interp", *_isas(args.isa or ALL))
    seeds = range(args.seed, args.seed + args.gen)
    log = Path(args.log) if args.log else None
    note = (lambda line: print(line, file=sys.stderr, flush=True)) if log else None
    found = campaign.run(seeds, tiers, args.budget, args.jobs, log, args.chunk, note)
    for seed in found.differing:
        c = diff.case(seed, args.budget)
        code, _ = diff.shrink_difference(c.code, c.memory, tiers, c.budget, c.repeat)
        print(f"== seed {seed} (budget {c.budget}, repeat {c.repeat})")
        print(diff.report(code, c.memory, diff.differences(code, c.memory, tiers, c.budget,
                                                           c.repeat)))
        if args.save:
            print(f"saved {save_case(Path(args.save), seed, code, c.memory, c.budget)}")
    done = found.from_log + found.checked
    where = f" ({found.from_log} of them from {log})" if found.from_log else ""
    print(f"{done} programs on {', '.join(tiers[1:])}{where}: {len(found.differing)} with "
          "differences")
    if found.stopped:
        print(f"stopped with {args.gen - done} programs left"
              + (f"; the same command with --log {log} goes on from here" if log else ""))
        return 130
    return 1 if found.differing else 0


#: the calling conventions --native images can follow
ABIS = ("kernel",)


def check_native(args: argparse.Namespace) -> int:
    """``--native IMAGE``: the recorded kernel JIT image against the interpreter."""
    from . import native
    from ..kernel.image import KernelImage

    abi = args.abi or "kernel"
    if abi not in ABIS:
        raise XsimError(f"--abi {abi}: native images run with the kernel's x86-64 BPF calling "
                        "convention only (--abi kernel)")
    if (args.isa or "x86_64") != "x86_64":
        raise XsimError(f"--isa {args.isa}: native images are x86-64 code (the kernel's "
                        "x86-64 JIT); give --isa x86_64")
    for flag, given in (("--gen", args.gen), ("--emit", args.emit), ("--mem", args.mem)):
        if given:
            raise XsimError(f"{flag} does not go with --native: the image runs as the "
                            "kernel runs it, on --data-in/--ctx-in or --pcap")
    if not args.file:
        raise XsimError("--native IMAGE needs the object the image was made from: "
                        "xsim crosscheck --native IMAGE OBJ --prog NAME")
    image = KernelImage.load(args.native)
    if args.pcap:
        if args.frames is None:
            raise XsimError("--pcap needs a capture reader (the xsim command gives one)")
        runs = [native.RunInput(label, data) for label, data in args.frames(args.pcap)]
    else:
        runs = [native.RunInput("the run", _read(args.data_in), _read(args.ctx_in))]
    maps_in = json.loads(Path(args.maps_in).read_text()) if args.maps_in else None
    verdict = native.crosscheck(image, args.file, args.prog, runs, maps_in=maps_in,
                                repeat=args.repeat, budget=args.budget, ncpus=args.cpus,
                                cpu=args.cpu)
    what = f"x86_64 (the kernel's JIT image {Path(args.native).name})"
    if args.json:
        print(json.dumps({"agree": verdict.agree, "runs": verdict.runs,
                          "difference": verdict.difference}, indent=2))
    elif verdict.agree:
        print(f"{what}: agrees with the interpreter on {verdict.runs} "
              f"run{'s' if verdict.runs != 1 else ''}")
    else:
        print(f"{what}: DIFFERS\n{verdict.difference}")
    return 0 if verdict.agree else 1


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _main(args: argparse.Namespace) -> int:
    RunEnv(ncpus=args.cpus, cpu=args.cpu)    # a bad --cpus/--cpu stops here, not in each run
    if args.native:
        return check_native(args)
    if args.abi or args.pcap:
        raise XsimError("--abi and --pcap go with --native IMAGE (a kernel JIT image)")
    if args.gen:
        return generate(args)
    if args.log:
        raise XsimError("--log goes with --gen N: it records a generated campaign")
    if not args.file:
        raise XsimError("give a program to check, or --gen N for generated ones")
    if args.emit == "asm":
        prog = program_of(args.file, args.prog, raw=args.mem is not None)
        for isa in _isas(args.isa or ALL):
            print(f"== {isa}")
            print(assembly(prog, isa), end="")
        return 0
    return check_file(args)


def add_parser(sub, frames: Callable[[str], list[tuple[str, bytes]]] | None = None) -> None:
    """The ``crosscheck`` subcommand; ``frames(path)`` reads a capture's frames as
    (label, bytes) for ``--native --pcap`` (the networking hook's reader, which the
    command line above both layers hands down)."""
    p = sub.add_parser("crosscheck", help="the interpreter against the JIT's code on "
                       "x86_64, aarch64 and riscv64 under unicorn")
    p.add_argument("file", nargs="?", help="ELF object, raw bytecode or .s file")
    p.add_argument("--prog", help="the program of an ELF object: function or section name")
    p.add_argument("--isa", help=f"comma list of ISAs (default {ALL}; with --native: x86_64)")
    p.add_argument("--mem", help="run on this raw memory (r1 points at it, r2 its length)")
    p.add_argument("--data-in", help="packet data (BPF_PROG_TEST_RUN data_in)")
    p.add_argument("--ctx-in", help="the context (ctx_in)")
    p.add_argument("--maps-in", help="JSON list of map entries to apply before the run")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--cpus", type=int, default=1, help="CPUs the per-CPU maps hold values for")
    p.add_argument("--cpu", type=int, default=0, help="the CPU the runs are on")
    p.add_argument("--gen", type=int, default=0, help="check this many generated programs")
    p.add_argument("--seed", type=int, default=0, help="the first generated program's seed")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--log", help="with --gen: append each finished chunk of seeds to this "
                   "JSONL file and skip the seeds it already holds for the same code")
    p.add_argument("--chunk", type=int, default=campaign.CHUNK,
                   help="with --gen: seeds per logged chunk")
    p.add_argument("--save", help="write each minimized difference here as a .data file")
    p.add_argument("--emit", choices=["asm"], help="show each ISA's code (capstone), "
                   "marked with eBPF pcs, instead of running it")
    p.add_argument("--native", metavar="IMAGE", help="run this kernel JIT image (JSON, from "
                   "`xsim kernel-image`) instead of xsim's code for the ISA")
    p.add_argument("--abi", help="with --native: the image's calling convention (kernel)")
    p.add_argument("--pcap", help="with --native: run every frame of this capture")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_main, frames=frames)
