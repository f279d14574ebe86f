"""The ``xsim`` command: a thin layer over the library.

Exit codes: 0 the command did its job (for ``run``: the program ran to its
exit); 1 the program stopped with an error (fault, budget, helper); 2 bad
input (file, arguments, --maps-in; for ``--kernel``: bpf() unavailable); 3 the
program or object cannot be loaded (decode or ELF error; for ``--kernel``: the
kernel refuses it, verifier log on stderr); 4 no such program in the object; 5
the run refused its input as the kernel's test run refuses it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cc import add_cc_arguments
from .errors import AsmError, DecodeError, ElfError, ProgramNotFound, XsimError
from .isa.asm import assemble
from .isa.disasm import disassemble_lines
from .runtime import DEFAULT_BUDGET, Program
from .runtime.program import ISA_TIERS, TIERS
from .runtime.env import RunEnv
from .runtime.hooks import VerifierError
from .runtime.object import load
from .runtime.testrun import TestRunRefused, apply_maps_in, report, test_run
from .elf.loader import load_spec
from .runtime.source import ELF_MAGIC, elf_programs, read_code

EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_BAD_INPUT, EXIT_CANNOT_LOAD, EXIT_NO_PROGRAM, EXIT_REFUSED = range(6)


def _cmd_asm(args: argparse.Namespace) -> int:
    code = assemble(Path(args.file).read_text(), syntax=args.syntax)
    out = Path(args.output or Path(args.file).with_suffix(".bin"))
    out.write_bytes(code)
    print(f"{out}: {len(code) // 8} instruction slots")
    return EXIT_OK


def _cmd_disasm(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.read_bytes()[:4] == ELF_MAGIC and args.source:
        return _disasm_linked(args, path)
    if args.source:
        raise XsimError("--source needs an ELF object with BTF line info")
    if path.read_bytes()[:4] == ELF_MAGIC:
        progs = [p for p in elf_programs(path) if args.prog in (None, p.function, p.section)]
        if not progs:
            raise ProgramNotFound(f"{path} has no program {args.prog!r}",
                                  [p.name for p in elf_programs(path)])
    else:
        progs = [read_code(path, syntax=args.syntax)]
    for i, p in enumerate(progs):
        if len(progs) > 1 or p.section:
            print(("\n" if i else "") + f"{p.section or path.name}: <{p.function or p.name}>")
        for pc, text in disassemble_lines(p.code, syntax=args.syntax, symbol=p.function):
            print(f"{pc:8d}:\t{text}")
    return EXIT_OK


def _disasm_linked(args: argparse.Namespace, path: Path) -> int:
    """Each program as the loader links it, with its C source lines (llvm-objdump -S)."""
    spec = load_spec(path)
    progs = [p for p in spec.programs if args.prog in (None, p.name, p.section)]
    if not progs:
        raise ProgramNotFound(f"{path} has no program {args.prog!r}",
                              [p.name for p in spec.programs])
    for i, p in enumerate(progs):
        print(("\n" if i else "") + f"{p.section}: <{p.name}>")
        starts = {slot: name for slot, name in p.func_names}
        source = {slot: f"{file}:{num}: {text.strip()}" for slot, file, num, text in p.lines}
        last = None
        for pc, text in disassemble_lines(p.code, syntax=args.syntax, symbol=p.name):
            if pc in starts and pc:
                print(f"<{starts[pc]}>:")
            if pc in source and source[pc] != last:
                print(f"; {source[pc]}")
                last = source[pc]
            print(f"{pc:8d}:\t{text}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.read_bytes()[:4] == ELF_MAGIC:
        return _run_kernel(args, path) if args.kernel else _run_object(args, path)
    if args.kernel:
        raise XsimError("--kernel runs ELF objects only")
    if args.maps_in or args.data_in or args.ctx_in:
        raise XsimError("--maps-in, --data-in and --ctx-in need an ELF object")
    source = read_code(path, prog=args.prog)
    memory = Path(args.mem).read_bytes() if args.mem else b""
    packet = Path(args.packet).read_bytes() if args.packet else None
    prog = Program.from_bytes(source.code, name=source.name)
    res = prog.run(memory=memory, packet=packet, repeat=args.repeat, tier=args.tier,
                   budget=args.budget, histogram=args.histogram)
    jit = _jit_report(args.tier, prog)
    if args.json:
        print(json.dumps({"program": source.name, **res.to_dict(),
                          **({"jit": jit} if jit else {})}))
    else:
        print(res.summary())
        _print_jit(jit)
    return EXIT_OK if res.ok else EXIT_PROGRAM_ERROR


def _jit_report(tier: str, *programs: Program) -> dict | None:
    """What compiling the run's native code cost, if it ran on the JIT tier."""
    if tier == "interp":
        return None
    from .jit.driver import compile_report
    return compile_report(*programs)


def _print_jit(jit: dict | None) -> None:
    if jit is None:
        return
    if jit["from_cache"]:
        print(f"jit = loaded from the disk cache in {jit['load_ms']:.1f} ms")
    else:
        print(f"jit = compiled in {jit['compile_ms']:.1f} ms, loaded in {jit['load_ms']:.1f} ms")


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _maps_in(args: argparse.Namespace) -> object:
    if not args.maps_in:
        return None
    try:
        return json.loads(Path(args.maps_in).read_text())
    except json.JSONDecodeError as exc:
        raise XsimError(f"{args.maps_in}: not JSON: {exc}") from None


def _refused(args: argparse.Namespace, name: str | None, exc: TestRunRefused) -> int:
    if args.json:
        print(json.dumps({"program": name, "error": str(exc), "errno": exc.errno_name}))
    print(f"xsim: the test run refuses this input: {exc}", file=sys.stderr)
    return EXIT_REFUSED


def _run_object(args: argparse.Namespace, path: Path) -> int:
    net = None
    if args.net:
        from .nic.fib import NetConfig
        net = NetConfig.load(args.net)
    obj = load(path, env=RunEnv(ncpus=args.cpus, cpu=args.cpu, net=net))
    prog = obj.choose(args.prog)
    if args.pcap:
        return _run_pcap(args, obj, prog)
    entries = _maps_in(args)
    if entries is not None:
        apply_maps_in(obj, entries)
    try:
        out = test_run(prog, data_in=_read(args.data_in), ctx_in=_read(args.ctx_in),
                       memory=_read(args.mem), repeat=args.repeat, budget=args.budget,
                       tier=args.tier)
    except TestRunRefused as exc:
        return _refused(args, prog.name, exc)
    if args.data_out and out.data_out is not None:
        Path(args.data_out).write_bytes(out.data_out)
    if args.ctx_out and out.ctx_out is not None:
        Path(args.ctx_out).write_bytes(out.ctx_out)
    jit = _jit_report(args.tier, prog.program, *([prog._hooked] if prog._hooked else []))
    if args.json:
        print(json.dumps({**report(obj, prog, out), **({"jit": jit} if jit else {})}))
    else:
        for line in out.printk:
            print(f"printk: {line}")
        print(out.result.summary())
        _print_jit(jit)
    return EXIT_OK if out.result.ok else EXIT_PROGRAM_ERROR


def _run_kernel(args: argparse.Namespace, path: Path) -> int:
    """``xsim run --kernel``: the same run through bpf() in the running kernel."""
    from .elf.loader import load_spec
    from .kernel import KernelError, available, kernel_test_run
    ok, why = available()
    if not ok:
        print(f"xsim: --kernel: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.mem:
        raise XsimError("--mem has no kernel counterpart: use --ctx-in or --data-in")
    try:
        data = kernel_test_run(load_spec(path), args.prog, data_in=_read(args.data_in),
                               ctx_in=_read(args.ctx_in), repeat=args.repeat,
                               maps_in=_maps_in(args), cpu=args.cpu)
    except TestRunRefused as exc:
        return _refused(args, args.prog, exc)
    except KernelError as exc:
        if exc.log:
            print(exc.log.rstrip("\n"), file=sys.stderr)
        print(f"xsim: the kernel refuses: bpf({exc.command}): {exc.errno_name}"
              + (f": {exc.detail}" if exc.detail else ""), file=sys.stderr)
        return EXIT_PROGRAM_ERROR if exc.command == "PROG_TEST_RUN" else EXIT_CANNOT_LOAD
    for flag, key in ((args.data_out, "data_out"), (args.ctx_out, "ctx_out")):
        if flag and data[key] is not None:
            Path(flag).write_bytes(bytes.fromhex(data[key]))
    if args.json:
        print(json.dumps(data))
    else:
        print(f"retval = {data['retval']:#x} ({data['retval']})")
        print(f"time = {data['duration_ns']} ns per run (kernel)")
    return EXIT_OK


def _run_pcap(args: argparse.Namespace, obj, prog) -> int:
    from .nic.pcaprun import run_pcap
    from .nic.report import pcap_progress, print_summary

    if args.maps_in:
        apply_maps_in(obj, json.loads(Path(args.maps_in).read_text()))
    records = open(args.records, "w") if args.records else None
    try:
        with pcap_progress(enabled=not args.json) as progress:
            summary = run_pcap(obj, prog, args.pcap, out=args.out, records=records,
                               progress=progress, tier=args.tier)
    finally:
        if records is not None:
            records.close()
    if args.json:
        print(json.dumps(summary.to_dict(obj)))
    else:
        print_summary(summary, obj)
    return EXIT_OK


def _cmd_kernel_image(args: argparse.Namespace) -> int:
    """``xsim kernel-image``: record the running kernel's JIT image of a program."""
    from .kernel import KernelError, available
    from .kernel.image import fetch
    ok, why = available()
    if not ok:
        print(f"xsim: kernel-image: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        image = fetch(load_spec(args.file), args.prog)
    except KernelError as exc:
        if exc.log:
            print(exc.log.rstrip("\n"), file=sys.stderr)
        print(f"xsim: the kernel refuses: bpf({exc.command}): {exc.errno_name}"
              + (f": {exc.detail}" if exc.detail else ""), file=sys.stderr)
        return EXIT_CANNOT_LOAD
    out = Path(args.output or f"{image.program}.kernel.json")
    image.save(out)
    print(f"{out}: {image.program} ({image.prog_type.kernel_name}), {len(image.functions)} "
          f"function(s), {len(image.code)} bytes of x86-64 code at {image.entry:#x}, "
          f"{len(image.maps)} map(s), {len(image.externals)} kernel function(s) called")
    return EXIT_OK


def _cmd_jit(args: argparse.Namespace) -> int:
    """What the JIT tier makes of a program: LLVM IR, or host assembly with eBPF pcs."""
    from .jit import emit
    from .jit.lift import JitUnsupported

    from .crosscheck.command import assembly, program_of

    # a program that tail calls runs its object's linked code: that is what is shown
    prog = program_of(args.file, args.prog, args.raw).runner()
    try:
        if args.emit == "llvm":
            text = emit.llvm_ir(prog, optimized=not args.unoptimized)
        else:
            text = assembly(prog, args.isa) if args.isa else emit.assembly(prog)
    except JitUnsupported as exc:
        raise XsimError(f"program {prog.name!r} cannot be compiled: {exc}") from None
    sys.stdout.write(text)
    return EXIT_OK


def _frames(path: str) -> list[tuple[str, bytes]]:
    """A capture's frames for ``crosscheck --native --pcap``, labelled by their index."""
    from .nic.pcap import read_packets
    return [(f"packet {p.index}", p.data) for p in read_packets(path)]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="xsim", description="Run eBPF programs without a kernel.")
    sub = ap.add_subparsers(dest="command", required=True)
    syntaxes = ("auto", "ubpf", "llvm")

    p = sub.add_parser("asm", help="assemble text (uBPF or llvm-objdump syntax) to bytecode")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="output file (default: FILE with .bin)")
    p.add_argument("--syntax", choices=syntaxes, default="auto")
    p.set_defaults(func=_cmd_asm)

    add_cc_arguments(sub.add_parser("cc", help="compile C to a BPF object (ziglang's clang)"))

    p = sub.add_parser("disasm", help="disassemble bytecode, assembly or an ELF object")
    p.add_argument("file")
    p.add_argument("--syntax", choices=("ubpf", "llvm"), default="llvm")
    p.add_argument("--prog", help="only this program (function or section) of an ELF object")
    p.add_argument("--source", action="store_true",
                   help="programs as linked, with their C source lines (BTF line info)")
    p.set_defaults(func=_cmd_disasm)

    from .crosscheck.command import add_parser as add_crosscheck
    from .crosscheck.footprint import add_parser as add_footprint
    add_crosscheck(sub, frames=_frames)
    add_footprint(sub)
    from .nic.offload_cli import add_parsers as add_offload
    add_offload(sub)
    p = sub.add_parser("jit", help="show the JIT tier's code for a program: LLVM IR or "
                       "host assembly, annotated with eBPF pcs")
    p.add_argument("file")
    p.add_argument("--prog", help="the program of an ELF object: function or section name")
    p.add_argument("--emit", choices=("llvm", "asm"), default="asm")
    p.add_argument("--unoptimized", action="store_true",
                   help="with --emit llvm: the IR as lifted, before LLVM's optimizer")
    p.add_argument("--raw", action="store_true",
                   help="the program on raw memory, as `run --mem` runs it, not its hook's "
                        "rewritten form")
    p.add_argument("--isa", choices=ISA_TIERS,
                   help="with --emit asm: the code the JIT makes for this ISA")
    p.set_defaults(func=_cmd_jit)

    p = sub.add_parser("kernel-image", help="record the running kernel's x86-64 JIT image of "
                       "a program, for `xsim crosscheck --native` (Linux, root or CAP_BPF)")
    p.add_argument("file", help="ELF object")
    p.add_argument("--prog", help="the program: function or section name")
    p.add_argument("-o", "--output", help="the JSON file to write (default: PROG.kernel.json)")
    p.set_defaults(func=_cmd_kernel_image)

    p = sub.add_parser("run", help="run a program (ELF object, bytecode or .s file)")
    p.add_argument("file")
    p.add_argument("--prog", help="the program of an ELF object: function or section name")
    p.add_argument("--mem", help="input memory file: r1 points at it, r2 is its length")
    p.add_argument("--packet", help="packet for the legacy LD_ABS/LD_IND loads")
    p.add_argument("--repeat", type=int, default=1, help="runs on the same memory (mean time)")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                   help="instructions allowed per run")
    p.add_argument("--tier", choices=TIERS, default="interp",
                   help="interp (the interpreter), jit (native code from LLVM), auto (the "
                        "JIT for captures and --repeat of 64 or more), or an ISA's name "
                        "(as --isa)")
    p.add_argument("--isa", choices=ISA_TIERS,
                   help="run the JIT's code for this ISA under unicorn (same inputs, outputs "
                        "and JSON)")
    p.add_argument("--histogram", action="store_true", help="count instructions per class")
    p.add_argument("--data-in", help="packet data (BPF_PROG_TEST_RUN data_in)")
    p.add_argument("--data-out", help="write the data after the run here")
    p.add_argument("--ctx-in", help="the context (ctx_in); for syscall programs, its memory")
    p.add_argument("--ctx-out", help="write the context after the run here")
    p.add_argument("--maps-in", help="JSON list of map entries to apply before the run")
    p.add_argument("--pcap", help="run every packet of this pcap/pcapng capture")
    p.add_argument("--out", help="with --pcap: write the packets that pass here (OUT.tx.pcap, "
                                 "OUT.redirect-*.pcap beside it)")
    p.add_argument("--records", help="with --pcap: one JSON line per packet, with its path "
                                     "through the program (the run counts per pc): the "
                                     "workload `xsim offload --records` takes")
    p.add_argument("--net", help="devices, routes and neighbours (JSON) for bpf_fib_lookup")
    p.add_argument("--cpus", type=int, default=1, help="CPUs the per-CPU maps hold values for")
    p.add_argument("--cpu", type=int, default=0, help="the CPU the program runs on")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--kernel", action="store_true",
                   help="run in the running kernel through bpf() (Linux, root or CAP_BPF): "
                   "the same report; --cpu pins the run, --cpus/--budget/--tier do not apply")
    p.set_defaults(func=_cmd_run)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "isa", None):
        args.tier = args.isa
    try:
        return args.func(args)
    except ProgramNotFound as exc:
        print(f"xsim: {exc}", file=sys.stderr)
        return EXIT_NO_PROGRAM
    except (DecodeError, ElfError, VerifierError) as exc:
        print(f"xsim: cannot load: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LOAD
    except AsmError as exc:
        print(f"xsim: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into head & co
        sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        print(f"xsim: cannot open {exc.filename or 'a file'}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except XsimError as exc:
        print(f"xsim: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
