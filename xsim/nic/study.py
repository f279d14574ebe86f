"""A study: one program's workload on one target profile at one offered load.

:func:`path_costs` prices each path of the workload on the target (cycles on an
execution unit, memory stalls, memory port demand); :func:`run_study` builds the
target's pipeline of :mod:`.model` stages from its profile, offers the capture's
frames (cycled to the study's length) at a constant rate, and reports throughput,
latency percentiles, drops, per-resource utilisation and the bottleneck.

Pipeline by ``path.location``::

    host: link-in -> cores -> pcie-up -> mem:* -> PASS: the stack (on the core, priced)
                                                  TX/REDIRECT: pcie-down -> link-out
    nic:  link-in -> dma-in -> cores -> mem:* -> PASS: pcie-up to the host
                                                TX/REDIRECT: link-out

On the host the receive ring admits a frame before its DMA (the NIC writes only into
posted descriptors), so the RX DMA over PCIe is accounted after the ring's admission;
in a tandem of FIFO stages the order changes no packet's total time but lets the ring,
not PCIe, turn away what the cores cannot take.

A multi-threaded unit (``cores.threads`` > 1) overlaps memory stalls of its threads:
it is occupied max(compute, (compute + stall) / threads) per packet, and a packet
takes compute + stall from start to done.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import XsimError
from ..runtime.helper_table import BY_ID
from ..timing.model import BATCH, Pipeline, Stage
from ..timing.profile import Profile
from ..timing.vliw import Schedule, schedule_program
from .workload import MAP_HELPERS, VERDICTS, Workload

DROP, PASS, TX, REDIRECT, ABORTED = (VERDICTS.index(v) for v in
                                     ("drop", "pass", "tx", "redirect", "aborted"))
DEFAULT_PACKETS = 100_000


class StudyError(XsimError):
    """A study the target cannot run: the target, the setting (rate, cores, ...) and why."""

    def __init__(self, target: str, setting: str, reason: str) -> None:
        self.target, self.setting, self.reason = target, setting, reason
        super().__init__(f"target {target}: {setting}: {reason}")


@dataclass
class PathCosts:
    """Per path of a workload, on one target (cycles of its clock)."""

    compute: np.ndarray
    stall: np.ndarray
    #: memory name -> port occupancy per packet (cycles)
    demand: dict[str, np.ndarray]
    #: VLIW targets: the schedule of each program
    schedules: dict[str, Schedule] = field(default_factory=dict)


def _helper_cycles(profile: Profile, workload: Workload, path) -> float:
    cycles = 0.0
    attributed: dict[str, int] = {}
    for mname, ops in path.maps.items():
        mtype = workload.map_types.get(mname, "")
        for op, n in ops.items():
            if op in ("load", "store"):
                continue
            attributed[op] = attributed.get(op, 0) + n
            price = profile.map_op_cycles(mtype, op)
            if price is None:
                price = profile.helper_cycles(f"map_{op}_elem")
            cycles += n * price
    for hid, n in path.helpers.items():
        name = BY_ID[hid].name if hid in BY_ID else f"helper_{hid}"
        op = MAP_HELPERS.get(hid)
        rest = n - attributed.get(op, 0) if op else n
        cycles += max(rest, 0) * profile.helper_cycles(name)
    return cycles


def path_costs(profile: Profile, workload: Workload) -> PathCosts:
    """What each path of ``workload`` costs on ``profile``'s execution units."""
    n = len(workload.paths)
    compute, stall = np.zeros(n), np.zeros(n)
    demand = {m: np.zeros(n) for m in profile.memories}
    schedules: dict[str, Schedule] = {}
    if profile.kind == "vliw":
        v = profile.vliw
        schedules = {name: schedule_program(prog, v["lanes"], v["mem_ports"],
                                            v["helpers_per_row"], v["optimize"])
                     for name, prog in workload.programs.items()}
    for k, path in enumerate(workload.paths):
        if schedules:
            body = sum(schedules[name].cycles(c) for name, c in path.counts.items())
        else:
            body = sum(profile.cycles[c] * count for c, count in path.classes.items())
        compute[k] = profile.per_packet + body + _helper_cycles(profile, workload, path)
        accesses: dict[str, int] = {profile.packet_memory: path.packet_accesses}
        for mname, ops in path.maps.items():
            mem = profile.memory_of_map(workload.map_types.get(mname, ""))
            accesses[mem] = accesses.get(mem, 0) + sum(ops.values())
        for mem, count in accesses.items():
            stall[k] += count * profile.memories[mem].latency_cycles
            demand[mem][k] += count * profile.memories[mem].occupancy_cycles
    return PathCosts(compute, stall, {m: d for m, d in demand.items() if d.any()}, schedules)


def dynamic_ipc(workload: Workload, costs: PathCosts) -> float:
    """eBPF instructions per VLIW row over the capture's packets (as they ran)."""
    insns = rows = 0
    for p in workload.paths:
        insns += p.insns * p.packets
        rows += sum(costs.schedules[n].cycles(c) for n, c in p.counts.items()) * p.packets
    return insns / rows if rows else 0.0


@dataclass
class StudyResult:
    """What one study measured."""

    target: str
    cores: int
    offered_mpps: float
    packets: int
    completed: int
    mpps: float
    gbps: float
    latency_us: dict[str, float]
    drop_rate: float
    dropped_at: dict[str, int]
    utilisation: dict[str, float]
    bottleneck: str
    verdicts: dict[str, int]
    latencies_us: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    ipc: float | None = None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("target", "cores", "offered_mpps", "packets",
                                               "completed", "mpps", "gbps", "latency_us",
                                               "drop_rate", "dropped_at", "utilisation",
                                               "bottleneck", "verdicts")}
        if self.ipc is not None:
            out["ipc"] = self.ipc
        return out


def line_rate_mpps(profile: Profile, workload: Workload) -> float:
    """The most the target's ports can carry of this capture's frame mix."""
    wire = float(np.mean(workload.len_in)) + profile.link["overhead_bytes"]
    return profile.link["ports"] * profile.link["gbps"] * 1e3 / (8 * wire)


def check_cores(profile: Profile, cores: int | None) -> int:
    cores = profile.default_cores if cores is None else cores
    if not 1 <= cores <= profile.cores:
        raise StudyError(profile.name, f"--cores {cores}",
                         f"the target has 1 to {profile.cores} (cores.count in "
                         f"{profile.path})")
    return cores


def check_rate(profile: Profile, workload: Workload, mpps: float | None) -> float:
    line = line_rate_mpps(profile, workload)
    if mpps is None:
        return line
    if not mpps > 0:
        raise StudyError(profile.name, f"--rate {mpps:g} Mpps", "a rate must be positive")
    if mpps > line * (1 + 1e-9):
        raise StudyError(profile.name, f"--rate {mpps:g} Mpps",
                         f"more than its {profile.link['ports']} x {profile.link['gbps']:g} "
                         f"Gbps ports carry of this capture's frames ({line:.2f} Mpps)")
    return mpps


def _pcie_bytes(profile: Profile, frame: np.ndarray) -> np.ndarray:
    p = profile.pcie
    tlps = np.ceil(frame / p["tlp_payload_bytes"])
    return frame + tlps * p["tlp_overhead_bytes"] + p["per_packet_bytes"]


def run_study(profile: Profile, workload: Workload, *, mpps: float | None = None,
              cores: int | None = None, packets: int = DEFAULT_PACKETS,
              costs: PathCosts | None = None, log: bool = False,
              batch: int = BATCH) -> StudyResult:
    """``packets`` frames of ``workload`` (cycled) offered at ``mpps`` (default: the
    ports' line rate) to ``profile`` with ``cores`` units; see the module docstring."""
    cores = check_cores(profile, cores)
    rate = check_rate(profile, workload, mpps)
    if packets < 1:
        raise StudyError(profile.name, f"--packets {packets}", "needs at least one packet")
    costs = costs or path_costs(profile, workload)
    rec = np.arange(packets) % len(workload)
    path = workload.path[rec]
    verdict = workload.verdict[rec].astype(np.int64)
    len_in = workload.len_in[rec].astype(np.float64)
    len_out = workload.len_out[rec].astype(np.float64)
    flow = workload.flow[rec].astype(np.int64)
    ns = profile.ns_per_cycle
    link = profile.link
    ports = int(link["ports"])
    port_in = np.arange(packets) % ports
    port_out = np.where(verdict == REDIRECT, (port_in + 1) % ports, port_in)
    wire_ns = 8.0 / link["gbps"]
    arrival = np.arange(packets) * (1e3 / rate)

    compute = (costs.compute[path] + np.array([profile.verdicts[v] for v in VERDICTS])
               [verdict]) * ns
    stall = costs.stall[path] * ns
    occupancy = np.maximum(compute, (compute + stall) / profile.threads)
    rss = profile.dispatch == "rss"
    stages = [
        Stage("link-in", lambda i: (len_in[i] + link["overhead_bytes"]) * wire_ns,
              queue=lambda i: port_in[i], queues=ports),
        Stage("cores", lambda i: occupancy[i], hold=lambda i: compute[i] + stall[i],
              queue=(lambda i: flow[i] % cores) if rss else None,
              queues=cores if rss else 1, servers=1 if rss else cores,
              depth=profile.queue_depth),
    ]
    pcie_ns = 8.0 / profile.pcie["gbps"]
    host = profile.location == "host"
    if host:    # the NIC DMAs only into posted descriptors: the ring admits first
        stages.append(Stage("pcie-up", lambda i: _pcie_bytes(profile, len_in[i]) * pcie_ns,
                            latency_ns=profile.pcie["latency_ns"]))
    else:       # the card's ingress takes the frame in before any unit sees it
        dma = profile.dma
        stages.insert(1, Stage("dma-in", lambda i: len_in[i] * 8.0 / dma["gbps"]
                               + dma["per_packet_ns"], latency_ns=dma["latency_ns"],
                               depth=profile.queue_depth))
    for name, demand in costs.demand.items():
        per = demand[path] * ns
        stages.append(Stage(f"mem:{name}", lambda i, per=per: per[i],
                            servers=profile.memories[name].ports))
    order = [s.name for s in stages]
    # after the program: TX/REDIRECT leave by a port (host: over PCIe first), PASS goes
    # to the host's stack (host: on the core, already priced) or up PCIe (nic)
    out_first = "pcie-down" if host else "link-out"
    stages.append(Stage("pcie-down" if host else "pcie-up",
                        lambda i: _pcie_bytes(profile, len_out[i]) * pcie_ns,
                        latency_ns=profile.pcie["latency_ns"]))
    stages.append(Stage("link-out", lambda i: (len_out[i] + link["overhead_bytes"]) * wire_ns,
                        queue=lambda i: port_out[i], queues=ports,
                        depth=profile.queue_depth))
    everything = lambda i: [(None, np.ones(len(i), dtype=bool))]  # noqa: E731

    def chain(nxt: str):
        return lambda i: [(nxt, np.ones(len(i), dtype=bool))]

    def verdicts(i):
        v = verdict[i]
        leave = (v == TX) | (v == REDIRECT)
        passed = v == PASS
        return [(out_first, leave), (None if host else "pcie-up", passed),
                (None, ~(leave | passed))]

    routes = {a: chain(b) for a, b in zip(order, order[1:])}
    routes[order[-1]] = verdicts
    routes["pcie-down" if host else "pcie-up"] = chain("link-out") if host else everything
    routes["link-out"] = everything
    pipe = Pipeline(stages, routes, "link-in", packets, log=log)
    pipe.run(arrival, batch)
    return _result(profile, workload, cores, rate, pipe, arrival, verdict, len_in, costs)


def _result(profile: Profile, workload: Workload, cores: int, rate: float, pipe: Pipeline,
            arrival: np.ndarray, verdict: np.ndarray, len_in: np.ndarray,
            costs: PathCosts) -> StudyResult:
    done = ~np.isnan(pipe.finish)
    finish = pipe.finish[done]
    n_done = int(done.sum())
    span = float(finish.max() - arrival[0]) if n_done else 0.0
    rate_span = float(finish.max() - finish.min()) if n_done > 1 else 0.0
    mpps = (n_done - 1) / rate_span * 1e3 if rate_span > 0 else 0.0
    gbps = float(len_in[done].sum()) * 8 / rate_span * (n_done - 1) / n_done \
        if rate_span > 0 else 0.0
    lat = (finish - arrival[done]) / 1e3
    pct = {f"p{q:g}": float(np.percentile(lat, q)) if n_done else 0.0
           for q in (50, 99, 99.9)}
    dropped = {name: s.dropped for name, s in pipe.stages.items() if s.dropped}
    util = {name: s.utilisation(span) for name, s in pipe.stages.items() if s.packets}
    # the link-in is the offered load itself, not a resource the target can run out of
    inside = {k: v for k, v in util.items() if k != "link-in"}
    bottleneck = max(inside, key=inside.get) if inside else ""
    counts = np.bincount(verdict[done], minlength=len(VERDICTS))
    ipc = dynamic_ipc(workload, costs) if costs.schedules else None
    return StudyResult(
        target=profile.name, cores=cores, offered_mpps=rate, packets=len(arrival),
        completed=n_done, mpps=mpps, gbps=gbps, latency_us=pct,
        drop_rate=1 - n_done / len(arrival), dropped_at=dropped, utilisation=util,
        bottleneck=bottleneck,
        verdicts={VERDICTS[i]: int(c) for i, c in enumerate(counts) if c},
        latencies_us=lat, ipc=ipc)
