"""RunResult: what one call of ``Program.run`` did, for users and timing models."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import XsimError


@dataclass
class RunResult:
    """The outcome of ``repeat`` runs of a program on the same memory.

    ``r0`` and ``insns`` are those of the last run; ``duration_ns`` is the mean
    wall time of one run, measured around the compiled loop.  ``error`` is set
    (and ``r0`` is meaningless) when the program stopped abnormally.
    """

    r0: int
    insns: int
    duration_ns: float
    runs: int = 1
    insns_total: int = 0
    error: XsimError | None = None
    helper_calls: dict[int, int] = field(default_factory=dict)
    #: region names and their [loads, stores] counts, in region order (see region_accesses)
    region_names: list[str] = field(default_factory=list, repr=False)
    region_counts: list[list[int]] = field(default_factory=list, repr=False)
    #: instruction class name -> instructions executed (with ``histogram=True``)
    histogram: dict[str, int] | None = None
    #: the input memory and packet after the run(s)
    memory: bytes = b""
    packet: bytes | None = None
    #: lines bpf_trace_printk / bpf_printk printed during these runs
    printk: list[str] = field(default_factory=list)

    @property
    def region_accesses(self) -> dict[str, tuple[int, int]]:
        """Region name -> (loads, stores) made by the program; an atomic counts as both."""
        return {n: (c[0], c[1]) for n, c in zip(self.region_names, self.region_counts)}

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retval(self) -> int:
        """r0 as the kernel's test run reports it: the low 32 bits."""
        return self.r0 & 0xFFFFFFFF

    def to_dict(self) -> dict:
        """Plain data for ``--json`` and other tools; the error with its fields."""
        error = None
        if self.error is not None:
            error = {"type": type(self.error).__name__, "message": str(self.error)}
            error.update({k: v for k, v in vars(self.error).items() if not k.startswith("_")})
        return {
            "r0": self.r0, "retval": self.retval, "insns": self.insns, "runs": self.runs,
            "insns_total": self.insns_total, "duration_ns": self.duration_ns, "error": error,
            "helper_calls": {str(k): v for k, v in self.helper_calls.items()},
            "region_accesses": {k: list(v) for k, v in self.region_accesses.items()},
            "histogram": self.histogram, "printk": self.printk,
        }

    def summary(self) -> str:
        """The few lines ``xsim run`` prints."""
        lines = []
        if self.error is None:
            lines.append(f"r0 = {self.r0:#x} ({self.r0})")
        lines.append(f"insns = {self.insns}")
        per = "per run" if self.runs <= 1 else f"per run, mean of {self.runs} runs"
        lines.append(f"time = {self.duration_ns:.0f} ns {per}")
        if self.histogram:
            lines.append("histogram: " + ", ".join(f"{k} {v}" for k, v in self.histogram.items()))
        if self.error is not None:
            lines.append(f"error: {self.error}")
            if getattr(self.error, "source", None):
                lines.append(f"  at {self.error.source}")
        return "\n".join(lines)

    def raise_for_error(self) -> "RunResult":
        if self.error is not None:
            raise self.error
        return self
