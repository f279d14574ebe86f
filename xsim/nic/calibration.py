"""Published figures and what the model makes of them: ``targets/calibration/*.toml``.

Each file lists figures of one paper: the program and capture of xsim's own that
stand in for the paper's, the target, the paper's number, and whether the number
was used to fit a profile parameter (``fits`` names it) or is a prediction.
:func:`reproduce` runs one figure's study through the model; :func:`table` renders
the rows for docs/offload.md.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..runtime.object import load
from ..runtime.testrun import apply_maps_in
from ..timing.profile import TARGETS_DIR, ProfileError, find_target
from .study import path_costs, run_study
from .workload import Workload, from_pcap

CALIBRATION_DIR = TARGETS_DIR / "calibration"
#: the figures' programs and captures are the repository's examples: a source tree's
ROOT = Path(__file__).resolve().parents[2]
PACKETS = 200_000


@dataclass(frozen=True)
class Figure:
    """One published figure and the study that stands for it."""

    file: str
    figure: str
    program: str
    pcap: str
    target: str
    metric: str
    paper: float
    role: str
    tolerance: float
    cores: int | None = None
    maps_in: str | None = None
    fits: str | None = None
    known_miss: str | None = None


_KEYS = {"figure", "program", "pcap", "target", "metric", "paper", "role", "cores",
         "maps_in", "fits", "known_miss"}


def figures(directory: Path = CALIBRATION_DIR) -> list[Figure]:
    out = []
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for k, row in enumerate(data.get("figure", [])):
            unknown = set(row) - _KEYS
            if unknown or row.get("role") not in ("fitted", "predicted"):
                raise ProfileError(path, f"figure {k}: unknown fields {sorted(unknown)} or "
                                         "a role other than fitted/predicted", "figure")
            out.append(Figure(file=path.name, tolerance=data["tolerance"], **row))
    return out


_WORKLOADS: dict[tuple, Workload] = {}


def workload(fig: Figure) -> Workload:
    """The figure's program over its capture (one run per program, capture and maps)."""
    key = (fig.program, fig.pcap, fig.maps_in)
    if key not in _WORKLOADS:
        if not (ROOT / fig.program).exists():
            raise ProfileError(CALIBRATION_DIR / fig.file,
                               f"figure {fig.figure!r}: its program {fig.program} is not "
                               f"under {ROOT}: calibration runs in a source checkout of xsim",
                               "program")
        obj = load(ROOT / fig.program)
        if fig.maps_in:
            apply_maps_in(obj, json.loads((ROOT / fig.maps_in).read_text()))
        _WORKLOADS[key] = from_pcap(obj, obj.choose(None), ROOT / fig.pcap)
    return _WORKLOADS[key]


def reproduce(fig: Figure, packets: int = PACKETS) -> float:
    """xsim's figure: the study at the target's line rate (the paper's offered load)."""
    profile = find_target(fig.target)
    w = workload(fig)
    if fig.metric == "mpps":
        return run_study(profile, w, cores=fig.cores, packets=packets).mpps
    if fig.metric == "static_ipc":
        return next(iter(path_costs(profile, w).schedules.values())).static_ipc
    raise ProfileError(CALIBRATION_DIR / fig.file, f"unknown metric {fig.metric!r}", "metric")


def table(rows: list[tuple[Figure, float]]) -> str:
    """Markdown: paper figure, xsim figure, error, fitted/predicted."""
    lines = ["| figure | target | paper | xsim | error | role |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for fig, value in rows:
        role = f"fitted ({fig.fits})" if fig.role == "fitted" else "predicted"
        if fig.known_miss:
            role += " - known miss"
        lines.append(f"| {fig.figure} | {fig.target} | {fig.paper:g} | {value:.2f} | "
                     f"{(value - fig.paper) / fig.paper:+.1%} | {role} |")
    return "\n".join(lines)
