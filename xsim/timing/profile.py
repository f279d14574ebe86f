"""Hardware target profiles: TOML files under ``targets/``, checked against one schema.

A profile is data: the clock, the cores and how packets reach them, the cycles an
executed eBPF instruction of each class costs there, the cost of each helper and of
each verdict, the memories (latency, ports) that map values and packets live in,
and the link / DMA / PCIe path the target sits behind.  :data:`SCHEMA` is the one
table of what a profile may hold; a missing, unknown, mistyped or out-of-range
field is a :class:`ProfileError` naming the file and the dotted field.
"""
from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import XsimError
from ..runtime.helper_table import BY_NAME

#: the shipped profiles: ``targets/`` of the repository, which an installed xsim carries
#: as ``xsim/targets`` (setup.py copies it there); a source tree has only the first
_PACKAGED = Path(__file__).resolve().parents[1] / "targets"
TARGETS_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "targets"
#: directories of a user's own profiles, searched before the shipped ones (os.pathsep-separated)
USER_TARGETS_ENV = "XSIM_TARGETS"

KINDS = ("cpu", "vliw", "npu")
LOCATIONS = ("host", "nic")
DISPATCH = ("rss", "shared")
#: instruction classes a workload counts and a profile prices (see workload.CLASSES)
CLASSES = ("alu", "mul", "div", "jmp", "load", "store", "atomic", "lddw", "call", "exit",
           "ldpkt")
VERDICTS = ("drop", "pass", "tx", "redirect", "aborted")
MAP_OPS = ("lookup", "update", "delete")
#: the offload rule sets a profile may name: one TOML file each, read by xsim.nic.offload
RULES_DIR = TARGETS_DIR / "rules"
RULE_SETS = tuple(sorted(p.stem for p in RULES_DIR.glob("*.toml")))
_BIG = 1e12


@dataclass(frozen=True)
class Spec:
    """One field of the schema: its type, its range (inclusive) or choices, and whether
    a profile must have it (``required`` may name a kind: needed for that kind only)."""

    type: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    required: bool | str = True
    help: str = ""


def _num(lo: float, hi: float = _BIG, required: bool | str = True, help: str = "") -> Spec:
    return Spec(float, lo, hi, required=required, help=help)


def _int(lo: int, hi: int, required: bool | str = True, help: str = "") -> Spec:
    return Spec(int, lo, hi, required=required, help=help)


#: dotted field (``*`` matches one name) -> what it must be
SCHEMA: dict[str, Spec] = {
    "name": Spec(str, help="the target's name (the file's stem)"),
    "models": Spec(str, help="one line: what hardware and software path this models"),
    "kind": Spec(str, choices=KINDS),
    "offload_rules": Spec(str, choices=RULE_SETS, required=False),
    "clock.mhz": _num(1, 10_000),
    "cores.count": _int(1, 4096, help="execution units the program may use"),
    "cores.default": _int(1, 4096, help="units a study uses without --cores"),
    "cores.threads": _int(1, 64, help="hardware threads per unit that hide memory stalls"),
    "cores.dispatch": Spec(str, choices=DISPATCH),
    "cores.queue_depth": _int(1, 1 << 20, help="descriptors per receive queue"),
    "vliw.lanes": _int(1, 64, required="vliw"),
    "vliw.mem_ports": _int(1, 64, required="vliw"),
    "vliw.helpers_per_row": _int(1, 64, required="vliw"),
    "vliw.optimize": Spec(bool, required="vliw"),
    **{f"cycles.{c}": _num(0, 1e6) for c in CLASSES},
    "cycles.per_packet": _num(0, 1e7, help="fixed cost of each packet on its unit"),
    "helpers.default": _num(0, 1e7),
    "helpers.*": _num(0, 1e7, required=False),
    **{f"verdicts.{v}": _num(0, 1e7) for v in VERDICTS},
    "maps.memory": Spec(str, help="the memory map values and lookups go to"),
    **{f"maps.*.{op}": _num(0, 1e7, required=False) for op in MAP_OPS},
    "maps.*.memory": Spec(str, required=False),
    "memory.*.latency_cycles": _num(0, 1e6),
    "memory.*.ports": _int(1, 1024),
    "memory.*.occupancy_cycles": _num(0, 1e6, help="cycles one access holds a port"),
    "packet.memory": Spec(str),
    "path.location": Spec(str, choices=LOCATIONS, help="host: the program runs on the "
                          "host, packets cross PCIe to reach it; nic: on the card"),
    "link.gbps": _num(0.001, 10_000),
    "link.ports": _int(1, 64),
    "link.overhead_bytes": _num(0, 1000, help="preamble, SFD, IFG and FCS per frame"),
    "dma.gbps": _num(0.001, 100_000),
    "dma.per_packet_ns": _num(0, 1e9),
    "dma.latency_ns": _num(0, 1e9),
    "pcie.gbps": _num(0.001, 10_000),
    "pcie.latency_ns": _num(0, 1e9),
    "pcie.per_packet_bytes": _num(0, 1e6, help="descriptors and completions per packet"),
    "pcie.tlp_payload_bytes": _num(1, 4096),
    "pcie.tlp_overhead_bytes": _num(0, 1000),
    "calibration.file": Spec(str, required=False),
    "calibration.fitted": Spec(list, required=False),
}


class ProfileError(XsimError):
    """A target profile that cannot be used: the file, the dotted field and why."""

    def __init__(self, path: str | Path, reason: str, field: str | None = None) -> None:
        self.path, self.field, self.reason = str(path), field, reason
        where = f"{path}: field {field!r}" if field else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Memory:
    """A memory of the target: access latency and ports, in target cycles."""

    name: str
    latency_cycles: float
    ports: int
    occupancy_cycles: float


@dataclass(frozen=True)
class Profile:
    """A checked target profile: every number the timing model reads."""

    path: Path
    name: str
    models: str
    kind: str
    offload_rules: str | None
    mhz: float
    cores: int
    default_cores: int
    threads: int
    dispatch: str
    queue_depth: int
    cycles: dict[str, float]
    per_packet: float
    helpers: dict[str, float]
    helper_default: float
    verdicts: dict[str, float]
    map_memory: str
    map_types: dict[str, dict[str, Any]]
    memories: dict[str, Memory]
    packet_memory: str
    location: str
    link: dict[str, float]
    dma: dict[str, float]
    pcie: dict[str, float]
    vliw: dict[str, Any] = field(default_factory=dict)
    fitted: tuple[str, ...] = ()
    calibration: str | None = None

    @property
    def ns_per_cycle(self) -> float:
        return 1e3 / self.mhz

    def helper_cycles(self, name: str) -> float:
        return self.helpers.get(name, self.helper_default)

    def map_op_cycles(self, map_type: str, op: str) -> float | None:
        """Cycles of one map operation on a map of this type, when the profile prices it."""
        return self.map_types.get(map_type, {}).get(op)

    def memory_of_map(self, map_type: str) -> str:
        return self.map_types.get(map_type, {}).get("memory", self.map_memory)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _spec_of(name: str) -> tuple[str, Spec] | None:
    if name in SCHEMA:
        return name, SCHEMA[name]
    for pattern, spec in SCHEMA.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern) \
                and name.count(".") == pattern.count("."):
            return pattern, spec
    return None


def _check(path: Path, name: str, spec: Spec, value: Any) -> Any:
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise ProfileError(path, f"must be {spec.type.__name__}, got {value!r}", name)
    if spec.choices is not None and value not in spec.choices:
        raise ProfileError(path, f"{value!r} is not one of {', '.join(spec.choices)}", name)
    if spec.lo is not None and not spec.lo <= value <= (spec.hi if spec.hi is not None
                                                         else _BIG):
        raise ProfileError(path, f"{value} is out of range [{spec.lo:g}, {spec.hi:g}]", name)
    return value


def load_profile(path: str | Path) -> Profile:
    """Read and check one profile file; every problem is a ProfileError naming the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(path, f"cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, f"not TOML: {exc}") from None
    flat = _flatten(data)
    values: dict[str, Any] = {}
    for name, value in flat.items():
        found = _spec_of(name)
        if found is None:
            raise ProfileError(path, "unknown field (see xsim.timing.profile.SCHEMA)", name)
        values[name] = _check(path, name, found[1], value)
    kind = values.get("kind")
    for pattern, spec in SCHEMA.items():
        if "*" in pattern:
            continue
        needed = spec.required is True or (spec.required == kind)
        if needed and pattern not in values:
            raise ProfileError(path, "missing field" + (f" (needed for kind {kind!r})"
                                                        if spec.required is not True else ""),
                               pattern)
    return _build(path, values)


def _group(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


def _build(path: Path, v: dict[str, Any]) -> Profile:
    if v["name"] != path.stem:
        raise ProfileError(path, f"{v['name']!r} is not the file's name {path.stem!r}", "name")
    if v["cores.default"] > v["cores.count"]:
        raise ProfileError(path, f"{v['cores.default']} is more than cores.count "
                                 f"({v['cores.count']})", "cores.default")
    memories: dict[str, Memory] = {}
    for name in sorted({k.split(".")[1] for k in v if k.startswith("memory.")}):
        try:
            memories[name] = Memory(name, v[f"memory.{name}.latency_cycles"],
                                    v[f"memory.{name}.ports"],
                                    v[f"memory.{name}.occupancy_cycles"])
        except KeyError as exc:
            raise ProfileError(path, "missing field", exc.args[0]) from None
    helpers = {k: x for k, x in _group(v, "helpers.").items() if k != "default"}
    for name in helpers:
        if name not in BY_NAME:
            raise ProfileError(path, f"no helper is called {name!r} (names as in "
                                     "bpf_<name>, without the prefix)", f"helpers.{name}")
    map_types: dict[str, dict[str, Any]] = {}
    for key, x in _group(v, "maps.").items():
        if "." in key:
            mtype, op = key.split(".")
            map_types.setdefault(mtype, {})[op] = x
    for where, mem in [("maps.memory", v["maps.memory"]), ("packet.memory", v["packet.memory"])] \
            + [(f"maps.{t}.memory", m["memory"]) for t, m in map_types.items() if "memory" in m]:
        if mem not in memories:
            raise ProfileError(path, f"no [memory.{mem}] section: the memories are "
                                     f"{', '.join(memories) or 'none'}", where)
    fitted = tuple(v.get("calibration.fitted", ()))
    for name in fitted:
        if not isinstance(name, str) or (name not in v and _spec_of(name) is None):
            raise ProfileError(path, f"{name!r} names no field of this profile",
                               "calibration.fitted")
    return Profile(
        path=path, name=v["name"], models=v["models"], kind=v["kind"],
        offload_rules=v.get("offload_rules"), mhz=v["clock.mhz"], cores=v["cores.count"],
        default_cores=v["cores.default"], threads=v["cores.threads"],
        dispatch=v["cores.dispatch"], queue_depth=v["cores.queue_depth"],
        cycles={c: v[f"cycles.{c}"] for c in CLASSES}, per_packet=v["cycles.per_packet"],
        helpers=helpers, helper_default=v["helpers.default"],
        verdicts={x: v[f"verdicts.{x}"] for x in VERDICTS}, map_memory=v["maps.memory"],
        map_types=map_types, memories=memories, packet_memory=v["packet.memory"],
        location=v["path.location"], link=_group(v, "link."), dma=_group(v, "dma."),
        pcie=_group(v, "pcie."), vliw=_group(v, "vliw."), fitted=fitted,
        calibration=v.get("calibration.file"))


def target_dirs() -> list[Path]:
    """Where profiles are looked up by name: the directories of ``$XSIM_TARGETS`` in
    order, then the shipped ones, so a user's file of a shipped name replaces it."""
    user = [Path(d) for d in os.environ.get(USER_TARGETS_ENV, "").split(os.pathsep) if d]
    return [*user, TARGETS_DIR]


def target_paths(directories: list[Path] | None = None) -> list[Path]:
    """One profile file per name, the first directory that has the name winning."""
    found: dict[str, Path] = {}
    for d in target_dirs() if directories is None else directories:
        for path in sorted(d.glob("*.toml")):
            found.setdefault(path.stem, path)
    return sorted(found.values(), key=lambda p: p.stem)


def find_target(name: str) -> Profile:
    """A profile by name (``NAME.toml`` in :func:`target_dirs`) or by path to a TOML file."""
    candidate = Path(name)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_profile(candidate)
    for d in target_dirs():
        if (d / f"{name}.toml").exists():
            return load_profile(d / f"{name}.toml")
    names = ", ".join(p.stem for p in target_paths()) or "none"
    raise ProfileError(TARGETS_DIR / f"{name}.toml",
                       f"no target {name!r} (targets: {names}; or give a path to a .toml "
                       f"profile, or a directory of them in ${USER_TARGETS_ENV})")


def all_targets() -> list[Profile]:
    return [load_profile(p) for p in target_paths()]
