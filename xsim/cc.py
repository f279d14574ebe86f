"""Compile C to BPF ELF objects: the ``ziglang`` package's clang by default, or a
system clang.

The default command is ``python -m ziglang cc -target bpfel-freestanding -O2 -g
-c`` (plus ``-fno-unwind-tables -fno-asynchronous-unwind-tables``, so that the
object has no ``.eh_frame``); with ``clang=`` it is ``<clang> -target bpf -O2
-g -c``.  zig's freestanding target implies ``-fno-builtin``: copy with
``__builtin_memcpy``, not ``memcpy``.  Either way the
headers xsim ships (``xsim/include``: ``bpf/bpf_helpers.h``, ``linux/bpf.h``,
``linux/ip.h``, ...) come after the caller's ``include_dirs``, so a program
needs neither libbpf nor kernel headers.  A compiler that is missing or fails
raises :class:`CompileError` with the compiler's diagnostics.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import XsimError

__all__ = ["INCLUDE_DIR", "CompileError", "compile_c", "compiler_command",
           "add_cc_arguments", "run_cc"]

#: The C headers xsim ships.
INCLUDE_DIR = Path(__file__).resolve().parent / "include"


class CompileError(XsimError):
    """A C file that did not compile, or no compiler: the command, its exit status
    (None when it could not be started) and what it printed on stderr."""

    def __init__(self, reason: str, command: Sequence[str], returncode: int | None,
                 stderr: str = "") -> None:
        self.reason, self.command = reason, list(command)
        self.returncode, self.stderr = returncode, stderr
        diag = f":\n{stderr.rstrip()}" if stderr.strip() else ""
        super().__init__(f"{reason}{diag}")


def _find_clang(clang: str) -> str:
    """A path to run for ``clang=``: a path as given, or a name looked up on PATH."""
    if os.sep in clang or (os.altsep and os.altsep in clang):
        if not Path(clang).is_file():
            raise CompileError(f"compiler {clang!r} does not exist", [clang], None)
        return clang
    found = shutil.which(clang)
    if found is None:
        raise CompileError(f"compiler {clang!r} not found on PATH: install clang, pass its "
                           "path, or leave clang unset to use the ziglang package", [clang], None)
    return found


def compiler_command(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                     cflags: Sequence[str] = (), clang: str | None = None,
                     include_dirs: Sequence[str | os.PathLike[str]] = ()) -> list[str]:
    """The command :func:`compile_c` runs (``clang`` is looked up on PATH here)."""
    if clang is None:
        # zig cc asks for unwind tables; without them it emits no (allocated) .eh_frame,
        # as clang -target bpf does not.
        cc = [sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding",
              "-fno-unwind-tables", "-fno-asynchronous-unwind-tables"]
    else:
        cc = [_find_clang(clang), "-target", "bpf"]
    incs = [arg for d in [*include_dirs, INCLUDE_DIR] for arg in ("-I", str(d))]
    # source paths in the debug info and BTF line info relative to here: the same
    # object wherever the tree is checked out
    here = f"-fdebug-prefix-map={os.getcwd()}=."
    return [*cc, "-O2", "-g", here, *incs, *cflags, "-c", str(src), "-o", str(out)]


def _compile(src: Path, out: Path, cflags: Sequence[str], clang: str | None,
             include_dirs: Sequence[str | os.PathLike[str]]) -> tuple[Path, str]:
    """Compile; return the object and the compiler's warnings."""
    cmd = compiler_command(src, out, cflags=cflags, clang=clang, include_dirs=include_dirs)
    if clang is None and importlib.util.find_spec("ziglang") is None:
        raise CompileError("the ziglang package is not installed: pip install ziglang, or "
                           "pass clang='clang' (or a path) to use a system clang", cmd, None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise CompileError(f"cannot run {cmd[0]}: {exc}", cmd, None) from exc
    if proc.returncode != 0:
        raise CompileError(f"{src}: compilation failed (exit status {proc.returncode})",
                           cmd, proc.returncode, proc.stderr)
    return out, proc.stderr


def compile_c(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
              cflags: Sequence[str] = (), clang: str | None = None,
              include_dirs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Compile the C file ``src`` to the BPF object ``out`` (with BTF, ``-g``) and
    return ``out``.

    ``clang`` is None for the ziglang package's clang, else a name looked up on
    PATH ("clang", "clang-18") or a path.  ``include_dirs`` are searched before
    xsim's headers.  Raises :class:`CompileError`.
    """
    return _compile(Path(src), Path(out), cflags, clang, include_dirs)[0]


def add_cc_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``xsim cc FILE.c [-o FILE.o] [--clang PATH] [-I DIR] [-D X]``;
    sets ``func`` to :func:`run_cc`."""
    parser.add_argument("file", help="the C source")
    parser.add_argument("-o", "--output", help="the object (default: FILE with .o)")
    parser.add_argument("--clang", default=None, metavar="PATH",
                        help="use this system clang (a path, or a name on PATH such as "
                             "clang) instead of the ziglang package's")
    parser.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                        help="add an include directory (searched before xsim's headers)")
    parser.add_argument("-D", dest="define", action="append", default=[], metavar="X",
                        help="define a macro (NAME or NAME=VALUE)")
    parser.set_defaults(func=run_cc)


def run_cc(args: argparse.Namespace) -> int:
    """``xsim cc``: compile, print the compiler's warnings to stderr; 0 on success.
    Errors raise :class:`CompileError`."""
    src = Path(args.file)
    out = Path(args.output) if args.output else src.with_suffix(".o")
    _, warnings = _compile(src, out, [f"-D{d}" for d in args.define], args.clang, args.include)
    if warnings.strip():
        print(warnings.rstrip(), file=sys.stderr)
    print(f"{out}: compiled from {src}")
    return 0
