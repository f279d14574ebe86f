"""A test run shaped like ``bpftool prog run``: inputs in, the kernel's refusals, a JSON report.

``test_run`` takes what BPF_PROG_TEST_RUN takes (data, ctx, repeat), refuses
what the kernel's test run refuses for that program type (with the errno the
kernel gives), and reports return value, outputs and every map of the object
as ``xsim run --json`` prints them.  ``apply_maps_in`` fills maps first, from
the ``--maps-in`` JSON list.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any

from ..elf.kinds import MapType, ProgType
from ..errors import XsimError
from .maps import Map
from .maps.base import BPF_ANY, BPF_EXIST, BPF_NOEXIST
from .hooks import HOOKS
from .object import Object, ObjectProgram
from .program import Tier
from .result import RunResult

#: BPF_PROG_TEST_RUN for syscall programs: ctx only, at most U16_MAX bytes.
SYSCALL_CTX_MAX = 0xFFFF
_FLAGS = {"any": BPF_ANY, "noexist": BPF_NOEXIST, "exist": BPF_EXIST}


class TestRunRefused(XsimError):
    """The run's inputs are ones the kernel's test run refuses: the errno says which way."""

    __test__ = False  # not a pytest class

    def __init__(self, reason: str, errno: int = _errno.EINVAL) -> None:
        self.reason, self.errno = reason, errno
        self.errno_name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"{reason} ({self.errno_name})")


class MapsInError(XsimError):
    """A --maps-in entry that names no map, has bad hex, or the wrong sizes."""


@dataclass
class TestRunOutput:
    """What a test run gives back, as BPF_PROG_TEST_RUN and bpftool report it."""

    __test__ = False

    result: RunResult
    data_out: bytes | None = None
    ctx_out: bytes | None = None
    printk: list[str] = field(default_factory=list)
    #: where a redirect sent the packet: ("ifindex", n) or (map name, key)
    redirect: tuple[str, int] | None = None
    #: copies sent on the way (bpf_clone_redirect): (ifindex, frame)
    clones: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def retval(self) -> int:
        return self.result.retval


def test_run(prog: ObjectProgram, *, data_in: bytes | None = None, ctx_in: bytes | None = None,
             memory: bytes | None = None, repeat: int = 1, budget: int | None = None,
             tier: str | Tier = "interp") -> TestRunOutput:
    """Run ``prog`` the way its program type's test run does, on ``tier``.

    ``memory`` runs any program on raw memory (r1 = memory, r2 = its length),
    the convention of uBPF and of the bench programs, whatever its type.
    """
    kw: dict[str, Any] = {"repeat": repeat, "tier": tier, "budget": budget}
    if memory is not None:
        if data_in is not None or ctx_in is not None:
            raise TestRunRefused("--mem runs on raw memory and takes no data or ctx")
        res = prog.run(memory, **kw)
        return TestRunOutput(res, data_out=res.memory, printk=res.printk)
    if prog.spec.prog_type is ProgType.SYSCALL:
        if data_in is not None:
            raise TestRunRefused("syscall programs take no data_in, only ctx_in")
        if repeat != 1:
            raise TestRunRefused("syscall programs run once: the kernel refuses repeat")
        ctx = ctx_in or b""
        if len(ctx) > SYSCALL_CTX_MAX:
            raise TestRunRefused(f"ctx_in of {len(ctx)} bytes is more than {SYSCALL_CTX_MAX}")
        need = prog.max_ctx_offset
        if len(ctx) < need:
            raise TestRunRefused(f"ctx_in of {len(ctx)} bytes is shorter than the {need} bytes "
                                 "the program reads or writes")
        res = prog.run(ctx, **kw)
        return TestRunOutput(res, ctx_out=res.memory if ctx_in is not None else None,
                             printk=res.printk)
    hook = HOOKS.get(prog.spec.prog_type)
    if hook is not None:
        return hook.test_run(prog, data_in=data_in, ctx_in=ctx_in, repeat=repeat,
                             budget=budget, tier=tier)
    raise TestRunRefused(f"running {prog.prog_type} programs needs their hook's context "
                         "model, which xsim does not have yet; run it on raw memory with "
                         "--mem", _errno.ENOTSUP)


# -- --maps-in ----------------------------------------------------------------------------

def _hex(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise MapsInError(f"{what} must be a hex string, got {text!r}")
    try:
        return bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise MapsInError(f"{what} is not hex: {text!r}") from None


def apply_maps_in(obj: Object | Any, entries: Any) -> None:
    """Apply ``[{"map": NAME, "key": HEX, "value": HEX | "value_prog": PROG, "flags": ...}]``.

    ``obj`` is an xsim Object or a kernel one (``xsim.kernel.KernelObject``): both
    find maps with ``obj.map(name)``, and their maps take the same updates (a
    prog array's ``value_prog`` is a program name for both)."""
    if not isinstance(entries, list):
        raise MapsInError("--maps-in must hold a JSON list of entries")
    for n, e in enumerate(entries):
        where = f"--maps-in entry {n}"
        if not isinstance(e, dict) or "map" not in e:
            raise MapsInError(f"{where}: needs a \"map\" field")
        m = obj.map(e["map"])
        if m is None:
            raise MapsInError(f"{where}: no map {e['map']!r} (maps: {', '.join(obj.maps)})")
        flags = _FLAGS.get(str(e.get("flags", "any")).lower())
        if flags is None:
            raise MapsInError(f"{where}: flags must be any, exist or noexist")
        try:
            if m.type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
                m.push(_hex(e.get("value"), f"{where}: value"), flags)
                continue
            key = _hex(e.get("key"), f"{where}: key")
            if "value_prog" in e:
                if e["value_prog"] not in obj.programs:
                    raise MapsInError(f"{where}: no program {e['value_prog']!r}")
                m.update(key, e["value_prog"], flags)
            else:
                m.update(key, _hex(e.get("value"), f"{where}: value"), flags)
        except MapsInError:
            raise
        except XsimError as exc:      # MapError here, KernelError for the kernel's maps
            raise MapsInError(f"{where}: {exc}") from None


# -- the JSON report ----------------------------------------------------------------------

def dump_map(m: Map | Any) -> dict[str, Any]:
    """One map as ``xsim run --json`` shows it (hex keys and values, bpftool's type name).

    Any map with the runtime maps' attributes and read API works (duck typing): the
    kernel backend's maps (xsim.kernel.objects.ObjectMap) are dumped the same way."""
    out: dict[str, Any] = {"type": m.type.bpftool_name, "key_size": m.key_size,
                           "value_size": m.value_size, "max_entries": m.max_entries,
                           "flags": m.flags}
    t = m.type
    if t is MapType.RINGBUF or t is MapType.PERF_EVENT_ARRAY:
        out["records"] = [r.hex() for r in m.records()]
    elif t in (MapType.QUEUE, MapType.STACK):
        out["items"] = [v.hex() for v in m.values()]
    elif t is MapType.BLOOM_FILTER:
        pass                         # a bloom filter cannot be listed
    else:
        entries = []
        for key, value in m.items():
            if t is MapType.PROG_ARRAY:
                entries.append({"key": key.hex(), "prog": value})
            elif isinstance(value, (bytes, bytearray)):
                entries.append({"key": key.hex(), "value": value.hex()})
            elif isinstance(value, list):
                entries.append({"key": key.hex(), "values": [v.hex() for v in value]})
            else:                    # an inner map (a runtime Map or a kernel map view)
                entries.append({"key": key.hex(), "map": value.name})
        out["entries"] = entries
    return out


def report(obj: Object | Any, prog: ObjectProgram | Any, out: TestRunOutput) -> dict[str, Any]:
    """The ``--json`` object: return value, outputs, printk, counters and every map.

    ``obj`` needs only ``.maps`` (name -> map) and ``prog`` only ``.name``, so the kernel
    backend reports through here too."""
    res = out.result
    data = {
        "program": prog.name, "retval": res.retval,
        "retval_s32": res.retval - (1 << 32) if res.retval >> 31 else res.retval,
        "data_out": out.data_out.hex() if out.data_out is not None else None,
        "data_out_len": len(out.data_out) if out.data_out is not None else 0,
        "ctx_out": out.ctx_out.hex() if out.ctx_out is not None else None,
        "insns": res.insns, "duration_ns": res.duration_ns, "printk": out.printk,
        "maps": {name: dump_map(m) for name, m in obj.maps.items()},
        "error": res.to_dict()["error"],
    }
    return data
