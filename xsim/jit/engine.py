"""Native code from the lifter's IR: optimized, cached on disk, loaded with MCJIT.

A program compiles to one relocatable object for a target (the host here),
kept in the cache directory under a key of the lowered program, the target
and xsim's version (with the sources of the lifter and of the interpreter's
tables it reads, so a changed lifter or table never loads stale code).  Hits
and misses load the object the same way, so the cache path is the path every
run takes.  ``XSIM_CACHE_DIR`` moves the cache;
``XSIM_JIT_CACHE=0`` turns it off.
"""
from __future__ import annotations

import faulthandler
import functools
import gc
import hashlib
import importlib.metadata
import os
import pickle
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from numba import carray, cfunc, types

from ..errors import XsimError
from ..isa import interp as ip
from . import lift, plant

_INITIALIZED = False
_FROZEN = False


def _freeze_heap() -> None:
    """Move every object alive now (numba's, llvmlite's and the loaded program's, from
    the imports on) out of the cyclic GC's reach, once per process.  Lifting makes
    thousands of IR objects, and the first full collection in a fresh process then
    walks the whole import graph: 60 to 100 ms of a first compile that would
    otherwise take 110 to 150 (the firewall example)."""
    global _FROZEN
    if not _FROZEN:
        gc.freeze()
        _FROZEN = True


def _init() -> None:
    global _INITIALIZED
    if not _INITIALIZED:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        # the stop stubs set their constants off the hot path; merging them into one
        # tail would set them up on it
        llvm.set_option("xsim", "-enable-tail-merge=false")
        llvm.set_option("xsim", "-sink-common-insts=false")
        # an out-of-order core gains nothing from a second schedule after register
        # allocation, and it took a tenth of code generation (4 ms on the firewall)
        llvm.set_option("xsim", "-post-RA-scheduler=false")
        # an innermost loop of up to 64 bytes then sits in one fetch line and one of the
        # uop cache's windows, wherever the code around it puts it: stack_sieve ran
        # 2.2x of gcc -O2 at LLVM's 16 bytes and 1.9x at 64 (32 made checksum_1500 1.5x
        # slower); the x86 back end's option, which the other targets ignore
        llvm.set_option("xsim", "-x86-experimental-pref-innermost-loop-alignment=6")
        _INITIALIZED = True


@cfunc(types.int64(types.CPointer(types.uint64), types.CPointer(types.uint8),
                   types.CPointer(types.uint64), types.int64, types.int64, types.int64),
       cache=True)
def _lookup(st_p, mem_p, rg_p, st_len, mem_len, rows):
    """The interpreter's in-core bpf_map_lookup_elem, for native code to call."""
    st = carray(st_p, (st_len,))
    mem = carray(mem_p, (mem_len,))
    rg = carray(rg_p, (rows, ip.RG_COLS))
    return ip.map_lookup(st, mem, rg)


LOOKUP_ADDRESS = _lookup.address


@cfunc(types.int64(types.CPointer(types.uint64), types.CPointer(types.uint8),
                   types.CPointer(types.uint64), types.int64, types.int64, types.int64),
       cache=True)
def _core_helper(st_p, mem_p, rg_p, st_len, mem_len, rows):
    """The interpreter's in-core helpers (bpf_skb_store_bytes, the checksum
    replacements, bpf_csum_diff, ...; the one in st[S_HELPER]), for native code."""
    st = carray(st_p, (st_len,))
    mem = carray(mem_p, (mem_len,))
    rg = carray(rg_p, (rows, ip.RG_COLS))
    return ip.serve_core(st, mem, rg)


CORE_ADDRESS = _core_helper.address


@cfunc(types.int64(types.CPointer(types.uint64), types.CPointer(types.uint8),
                   types.CPointer(types.uint64), types.int64, types.int64, types.int64),
       cache=True)
def _tail_call(st_p, mem_p, rg_p, st_len, mem_len, rows):
    """The interpreter's bpf_tail_call of a linked program (interp.tail_call: the pc + 1
    to go on at, 0 to go on after the call, -1 for Python), for native code."""
    st = carray(st_p, (st_len,))
    mem = carray(mem_p, (mem_len,))
    rg = carray(rg_p, (rows, ip.RG_COLS))
    return ip.tail_call(st, mem, rg)


TAIL_ADDRESS = _tail_call.address


def host_triple() -> str:
    return llvm.get_process_triple()


#: host features the JIT leaves off: a 16-bit MOVBE load writes only the low half of
#: its register, so the register's last value is an input and a loop that makes one
#: per iteration becomes one dependent chain (checksum_1500, whose two byte loads
#: LLVM combines into one: 458-466 ns a run with MOVBE, 247-263 without; gcc -O2 273)
HOST_FEATURES_OFF = ("movbe",)


def host_features() -> str:
    """The host CPU's features for LLVM, less HOST_FEATURES_OFF."""
    return llvm.get_host_cpu_features().flatten() + "".join(
        f",-{f}" for f in HOST_FEATURES_OFF)


def target_machine(triple: str | None = None,
                   code_model: str = "jitdefault") -> llvm.TargetMachine:
    """An optimizing target machine: the host's CPU and features for the host triple."""
    _init()
    triple = triple or host_triple()
    target = llvm.Target.from_triple(triple)
    if triple == host_triple():
        return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                            features=host_features(),
                                            opt=3, codemodel=code_model)
    return target.create_target_machine(opt=3, codemodel=code_model)


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The main function inlined into the run loop and its registers taken out of
    memory (SROA), then LLVM's O1 function pipeline: its CSE of loads, LICM and store
    elimination (pkt_parse 7.4 -> 5.5 ns, for about 8 ms more of compile time on the
    firewall example).  A pre-pass of our own (folding, constant propagation, jump
    threading, two InstCombines) before it cost 8-10 ms more on the firewall, and its
    jump threading made the sieve's loops worse: 15,264 x86-64 instructions a run,
    14,683 without it (pkt_parse 121 against 125).  Loop strength reduction is left to
    code generation, which runs it anyway."""
    pb = llvm.create_pass_builder(tm, llvm.PipelineTuningOptions(speed_level=2))
    pm = llvm.create_new_module_pass_manager()
    pm.add_always_inliner_pass()     # the main function into the run loop
    pm.add_sroa_pass()
    pm.run(module, pb)
    o1 = llvm.create_pass_builder(tm, llvm.PipelineTuningOptions(speed_level=1))
    fpm = o1.getFunctionPassManager()
    for fn in module.functions:
        if not fn.is_declaration:
            fpm.run(fn, o1)


def _cache_dir() -> Path | None:
    if os.environ.get("XSIM_JIT_CACHE", "1") == "0":
        return None
    base = os.environ.get("XSIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "xsim")
    return Path(base) / "jit"


try:
    _VERSION = importlib.metadata.version("xsim")
except importlib.metadata.PackageNotFoundError:     # run from a source tree
    _VERSION = "source"
#: every module of the lifter shapes the code it makes, and so do the interpreter's
#: tables it reads (state words, region columns, the helpers the core serves)
_LIFTER_HASH = hashlib.sha256(b"".join(
    p.read_bytes() for d in (Path(__file__).parent, Path(__file__).parents[1] / "isa")
    for p in sorted(d.glob("*.py")))).hexdigest()[:16]


def cache_key(code: np.ndarray, consts: np.ndarray, triple: str, cpu: str) -> str:
    h = hashlib.sha256()
    for part in (code.tobytes(), consts.tobytes(), triple.encode(), cpu.encode(),
                 _VERSION.encode(), _LIFTER_HASH.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


@dataclass
class NativeCode:
    """One program's native code in this process, and what making it cost."""

    engine: llvm.ExecutionEngine
    entry: int              # address of xsim_entry(st, env, runs, fresh)
    compile_s: float        # lifting + optimizing + code generation (0 from the cache)
    load_s: float
    from_cache: bool


def compile_program(code: np.ndarray, consts: np.ndarray, name: str = "prog",
                    profile: bool = False, entries: tuple[int, ...] = (),
                    core: int = 0) -> NativeCode:
    """Native code for the host of a lowered program (lift.JitUnsupported if it cannot);
    ``profile``: a build that counts executions per pc; ``entries``: a linked program's
    members' first pcs; ``core``: its S_CORE word (lift.Lifter)."""
    tm = target_machine()
    cpu = llvm.get_host_cpu_name() + host_features()
    obj, compile_s, hit = cached_object(code, consts, name, ("host",), host_triple(), cpu,
                                        profile, entries, core)
    t1 = time.perf_counter()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    entry = engine.get_function_address(lift.ENTRY)
    return NativeCode(engine, entry, compile_s, time.perf_counter() - t1, hit)


def object_for(code: np.ndarray, consts: np.ndarray, name: str, triple: str, cpu: str,
               features: str, code_model: str, profile: bool = False,
               entries: tuple[int, ...] = (), core: int = 0) -> tuple[bytes, float, bool]:
    """Position-independent relocatable object code of a lowered program for another
    target (the emulator links it): (object, compile seconds, from the disk cache)."""
    return cached_object(code, consts, name, (triple, cpu, features, code_model), triple,
                         f"{cpu}{features} pic {code_model}", profile, entries, core)


def machine_for(triple: str, cpu: str, features: str, code_model: str) -> llvm.TargetMachine:
    """An optimizing target machine for position-independent code of another target."""
    _init()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=3, reloc="pic", codemodel=code_model)


@functools.cache
def _machine(spec: tuple) -> llvm.TargetMachine:
    """The target machine a spec names: ``("host",)`` (the JIT's) or ``(triple, cpu,
    features, code model)`` (position-independent code for the emulator); made once
    per process and spec, not once per compile."""
    return target_machine() if spec == ("host",) else machine_for(*spec)


def cached_object(code: np.ndarray, consts: np.ndarray, name: str, spec: tuple,
                  triple: str, cpu: str, profile: bool, entries: tuple[int, ...] = (),
                  core: int = 0) -> tuple[bytes, float, bool]:
    """The program's object code for the machine ``spec`` names (see ``_machine``), from
    the disk cache or compiled (in the compiler process) and cached: (object, compile
    seconds, from the cache)."""
    cpu += " profile" if profile else ""
    cpu += f" entries {','.join(map(str, entries))}" if entries else ""
    core = lift.helper_bits(core)
    cpu += f" core {core:#x}" if core else ""
    planted = plant.active()            # a test's planted bug: never a correct build's key
    cpu += f" plant {planted}" if planted else ""
    key = cache_key(code, consts, triple, cpu)
    cache = _cache_dir()
    path = cache / f"{key}.o" if cache is not None else None
    t0 = time.perf_counter()
    obj = path.read_bytes() if path is not None and path.exists() else None
    if obj is not None:
        return obj, 0.0, True
    _freeze_heap()
    # the compiler process starts (and warms up) while this one lifts
    _compiler(spec, triple)
    # lifted here (JitUnsupported comes straight from it), compiled in the compiler process
    text = lifted(code, consts, name, profile=profile, entries=entries, core=core)
    obj = _compile(spec, text, triple)
    compile_s = time.perf_counter() - t0
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(obj)
            tmp.replace(path)
        except OSError:
            pass            # an unwritable cache only costs the next start a compile
    return obj, compile_s, False


class CompilerCrashed(XsimError):
    """LLVM died compiling a program (an assertion or a signal in the compiler)."""


_LIFTED: dict[tuple, str] = {}
#: lifted programs kept as IR text: the ISAs of one cross-check share one lifting
_LIFTED_KEEP = 8


def lifted(code: np.ndarray, consts: np.ndarray, name: str, **lift_options) -> str:
    """The lifter's IR text of a lowered program (``lift_module``'s options), without a
    target triple: the IR is the same for every target, so it is lifted once."""
    key = (code.tobytes(), consts.tobytes(), name, plant.active(),
           tuple(sorted(lift_options.items())))
    text = _LIFTED.get(key)
    if text is None:
        text = _LIFTED[key] = lift.lift_text(code, consts, name, **lift_options)
        while len(_LIFTED) > _LIFTED_KEEP:
            del _LIFTED[next(iter(_LIFTED))]
    return text


def optimized_text(text: str, tm: llvm.TargetMachine, triple: str | None = None
                   ) -> llvm.ModuleRef:
    """Lifted IR text, for ``triple`` (the host's by default), checked and optimized."""
    mod = llvm.parse_assembly(text)
    mod.triple = triple or host_triple()
    mod.verify()
    optimize(mod, tm)
    return mod


def optimized_module(code: np.ndarray, consts: np.ndarray, name: str,
                     tm: llvm.TargetMachine, triple: str | None = None,
                     **lift_options) -> llvm.ModuleRef:
    """A lowered program lifted (``lift_module``'s options) for ``triple`` (the host's
    by default), checked and optimized."""
    return optimized_text(lifted(code, consts, name, **lift_options), tm, triple)


def _build(spec: tuple, text: str, triple: str) -> bytes:
    tm = _machine(spec)
    return tm.emit_object(optimized_text(text, tm, triple))


def _send(f, data: bytes) -> None:
    f.write(len(data).to_bytes(8, "little") + data)
    f.flush()


def _receive(f) -> bytes | None:
    """One framed message, or None where the other side ended before it was whole."""
    head = f.read(8)
    if len(head) != 8:
        return None
    want = int.from_bytes(head, "little")
    data = f.read(want)
    return data if len(data) == want else None


class _Compiler:
    """A forked child that compiles IR text to object code, one request after another
    (target machine spec, IR text, triple in; the object or the error out).  An LLVM
    assertion or crash on some program takes down this process, not the host's, and
    the next compile starts another.  It is forked once, not once per program: a fork
    of a process that holds numba and LLVM, and the child's first writes to the pages
    it shares, cost 20-30 ms a compile (a quarter of a cross-check campaign)."""

    def __init__(self) -> None:
        _init()                  # LLVM's options are set before the fork, for both sides
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        pid = os.fork()
        if pid == 0:                              # the compiler: serve until the host goes
            faulthandler.disable()                # a crash here is reported by the host
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # the host's Ctrl-C is the host's
            try:
                os.close(req_w)
                os.close(resp_r)
                _serve(os.fdopen(req_r, "rb"), os.fdopen(resp_w, "wb"))
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(resp_w)
        self.pid, self.owner = pid, os.getpid()
        self.requests, self.answers = os.fdopen(req_w, "wb"), os.fdopen(resp_r, "rb")

    def send(self, spec: tuple, text: str | None, triple: str) -> bool:
        """Hand it a request (``text`` None: a warm-up, which it does not answer); False
        if it had already gone (it never saw this one)."""
        try:
            _send(self.requests, pickle.dumps((spec, text, triple)))
        except (BrokenPipeError, OSError):
            return False
        return True

    def answer(self) -> bytes | None:
        """The framed answer (kind byte, body), or None if the compiler died on it."""
        return _receive(self.answers)

    def end(self) -> int:
        """Close its pipes and reap it; its wait status."""
        for f in (self.requests, self.answers):
            try:
                f.close()
            except OSError:
                pass
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:                 # reaped already
            status = 0
        return status


#: a module for the compiler process to build before the first program comes: LLVM's
#: first build in a process sets up the target's tables (10-15 ms of the firewall's
#: first compile), and this one overlaps with the host's lifting
_WARM_UP = """define i64 @warm(ptr %p, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %j, %loop ]
  %s = phi i64 [ 0, %entry ], [ %t, %loop ]
  %q = getelementptr i64, ptr %p, i64 %i
  %v = load i64, ptr %q
  %t = add i64 %s, %v
  %j = add i64 %i, 1
  %c = icmp ult i64 %j, %n
  br i1 %c, label %loop, label %done
done:
  ret i64 %t
}
"""


def _serve(requests, answers) -> None:
    while (req := _receive(requests)) is not None:
        spec, text, triple = pickle.loads(req)
        if text is None:        # a warm-up for the machine ``spec`` names; no answer
            try:
                _build(spec, _WARM_UP, triple)
            except Exception:   # noqa: BLE001 - the real request reports what is wrong
                pass
            continue
        try:
            payload = b"O" + _build(spec, text, triple)
        except lift.JitUnsupported as exc:
            payload = b"U" + str(exc).encode()
        except BaseException as exc:             # noqa: BLE001 - reported to the host
            payload = b"E" + f"{type(exc).__name__}: {exc}".encode()
        _send(answers, payload)


_COMPILER: _Compiler | None = None


def stop_compiler() -> None:
    """End the compiler process (the next compile starts a new one, which sees this
    process's code and settings as they are then)."""
    global _COMPILER
    if _COMPILER is not None and _COMPILER.owner == os.getpid():
        _COMPILER.end()
    _COMPILER = None


def _forks() -> bool:
    return hasattr(os, "fork") and os.environ.get("XSIM_JIT_FORK", "1") != "0"


def _ours() -> bool:
    """Whether this process has a compiler process of its own (not none, or a parent's)."""
    return _COMPILER is not None and _COMPILER.owner == os.getpid()


def _compiler(spec: tuple, triple: str) -> None:
    """Start this process's compiler process if it has none of its own, and have it
    build a small module for ``spec``'s machine while this process lifts."""
    global _COMPILER
    if _forks() and not _ours():
        _COMPILER = _Compiler()
        _COMPILER.send(spec, None, triple)


def _compile(spec: tuple, text: str, triple: str) -> bytes:
    """Object code of lifted IR text for the machine ``spec`` names: in the compiler
    process where the OS has fork (``XSIM_JIT_FORK=0``: in this one), which
    :func:`_compiler` started.  A crash there is a CompilerCrashed; JitUnsupported
    comes back as itself."""
    global _COMPILER
    if not _forks():
        return _build(spec, text, triple)
    if not _COMPILER.send(spec, text, triple):    # gone before this program: another one
        _COMPILER.end()
        _COMPILER = _Compiler()
        _COMPILER.send(spec, text, triple)
    data = _COMPILER.answer()
    if data is None:                              # it died on this program
        status = _COMPILER.end()
        _COMPILER = None
        why = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        raise CompilerCrashed(f"LLVM crashed compiling this program ({why}); tier 'interp' "
                              "runs it")
    kind, body = data[:1], data[1:]
    if kind == b"U":
        raise lift.JitUnsupported(body.decode())
    if kind == b"E":
        raise XsimError(f"compiling the program failed: {body.decode()}")
    return body


def llvm_ir(code: np.ndarray, consts: np.ndarray, name: str = "prog",
            optimized: bool = False, entries: tuple[int, ...] = (), core: int = 0) -> str:
    """The program's LLVM IR, as lifted or after optimization (``entries``, ``core``:
    see compile_program)."""
    if not optimized:
        return lifted(code, consts, name, entries=entries, core=core)
    return str(optimized_module(code, consts, name, target_machine(), entries=entries,
                                core=core))
