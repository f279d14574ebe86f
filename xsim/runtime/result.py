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
    #: region name -> (loads, stores); an atomic counts as both
    region_accesses: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: instruction class name -> instructions executed (with ``histogram=True``)
    histogram: dict[str, int] | None = None
    #: the input memory and packet after the run(s)
    memory: bytes = b""
    packet: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retval(self) -> int:
        """r0 as the kernel's test run reports it: the low 32 bits."""
        return self.r0 & 0xFFFFFFFF

    def raise_for_error(self) -> "RunResult":
        if self.error is not None:
            raise self.error
        return self
