"""RunEnv: the world a program's helpers see, set by the user and kept across runs.

Everything here is deterministic by default (a virtual clock, a seeded random
generator), so two runs of the same program on the same input agree.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import XsimError


@dataclass
class ProcessContext:
    """What bpf_get_current_pid_tgid / uid_gid / comm report."""

    pid: int = 1000
    tgid: int = 1000
    uid: int = 0
    gid: int = 0
    comm: str = "xsim"


@dataclass
class RunEnv:
    """CPU choice, virtual clock, random source, process, and captured output."""

    ncpus: int = 1
    cpu: int = 0
    #: virtual CLOCK_MONOTONIC in ns; advanced by ``clock_step_ns`` at each read
    clock_ns: int = 1_000_000_000
    clock_step_ns: int = 0
    seed: int = 0
    process: ProcessContext = field(default_factory=ProcessContext)
    kconfig: dict[str, int | str | bool] = field(default_factory=dict)
    #: lines printed by bpf_trace_printk / bpf_printk
    printk: list[str] = field(default_factory=list)
    #: devices, routes and neighbours for the networking hooks (xsim.nic.fib.NetConfig);
    #: None is loopback alone
    net: object = None

    def __post_init__(self) -> None:
        if self.ncpus < 1:
            raise XsimError(f"{self.ncpus} CPUs: a run needs at least 1 (--cpus)")
        if not 0 <= self.cpu < self.ncpus:
            raise XsimError(f"cpu {self.cpu} is not one of the {self.ncpus} CPUs (--cpu 0 to "
                            f"{self.ncpus - 1}, or more --cpus)")
        self.random = random.Random(self.seed)

    def now_ns(self) -> int:
        t = self.clock_ns
        self.clock_ns += self.clock_step_ns
        return t
