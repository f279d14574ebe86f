"""The shared simpy pieces: a packet source, FIFO stages (links, DMA engines, PCIe
directions, receive queues with their cores, memories with ports), and the
pipeline that moves packets through them.

Packets move in batches: one simpy event per batch and stage, not per packet.  A
stage takes a batch from its store, computes every packet's start and finish time
exactly (FIFO, ``servers`` in parallel per queue, a bounded queue dropping what
overflows) in the compiled :func:`_fifo` kernel from the packets' own ready times
and the servers' state, waits in simulated time until the batch's last packet is
done, then routes each packet on to the next stage of its verdict.  Times are in
nanoseconds.  Because each packet carries its own times, batching changes how many
events simpy handles, not the answer, as long as each stage sees its packets in
ready-time order (they are sorted within each batch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import simpy
from numba import njit

#: packets per simpy event
BATCH = 8192


@njit(cache=True)
def _fifo(ready, service, hold, queue_of, free, ring, head, count, depth,
          start, done, accepted):
    """FIFO queues with ``free.shape[1]`` servers each: packet i waits in queue
    ``queue_of[i]`` from ``ready[i]``, is dropped if ``depth`` packets already wait
    there (depth 0: unbounded), else starts on the earliest free server, keeps it
    busy for ``service[i]`` and is done ``hold[i]`` after its start."""
    n = len(ready)
    servers = free.shape[1]
    for i in range(n):
        q = queue_of[i]
        a = ready[i]
        if depth > 0:
            # packets that started by now no longer wait (starts are monotone per queue)
            while count[q] > 0 and ring[q, head[q]] <= a:
                head[q] = (head[q] + 1) % depth
                count[q] -= 1
            if count[q] >= depth:
                accepted[i] = False
                start[i] = a
                done[i] = a
                continue
        k = 0
        for s in range(1, servers):
            if free[q, s] < free[q, k]:
                k = s
        t = max(a, free[q, k])
        free[q, k] = t + service[i]
        start[i] = t
        done[i] = t + hold[i]
        accepted[i] = True
        if depth > 0 and t > a:
            ring[q, (head[q] + count[q]) % depth] = t
            count[q] += 1


@dataclass
class Batch:
    """Packets in flight: indices into the study's per-packet arrays, and when each is
    ready for the next stage."""

    index: np.ndarray
    ready: np.ndarray


@dataclass
class Stage:
    """A resource packets queue for: ``queues`` FIFO queues of ``servers`` servers.

    ``service(index)`` and ``hold(index)`` give each packet's server occupancy and its
    time from start to done (ns); ``queue(index)`` its queue; ``latency_ns`` is added
    after ``done`` (a pipe, not a queue); ``depth`` bounds each queue (0: unbounded).
    ``route(index) -> [(stage name or None, mask)]`` says where packets go next."""

    name: str
    service: Callable[[np.ndarray], np.ndarray]
    hold: Callable[[np.ndarray], np.ndarray] | None = None
    queue: Callable[[np.ndarray], np.ndarray] | None = None
    queues: int = 1
    servers: int = 1
    depth: int = 0
    latency_ns: float = 0.0
    busy_ns: float = 0.0
    packets: int = 0
    dropped: int = 0
    first_ns: float = np.inf
    last_ns: float = 0.0
    events: list[tuple[float, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free = np.zeros((self.queues, self.servers))
        self.ring = np.zeros((self.queues, max(self.depth, 1)))
        self.head = np.zeros(self.queues, dtype=np.int64)
        self.count = np.zeros(self.queues, dtype=np.int64)

    def run(self, batch: Batch) -> tuple[Batch, np.ndarray]:
        """Every packet of ``batch`` through this stage: the accepted packets with their
        new ready times, and the indices of the dropped ones."""
        order = np.argsort(batch.ready, kind="stable")
        index, ready = batch.index[order], batch.ready[order]
        service = self.service(index)
        hold = service if self.hold is None else self.hold(index)
        queue = (np.zeros(len(index), dtype=np.int64) if self.queue is None
                 else self.queue(index))
        start = np.empty(len(index))
        done = np.empty(len(index))
        ok = np.empty(len(index), dtype=np.bool_)
        _fifo(ready, service, hold, queue, self.free, self.ring, self.head, self.count,
              self.depth, start, done, ok)
        self.busy_ns += float(service[ok].sum())
        self.packets += int(ok.sum())
        self.dropped += int((~ok).sum())
        if ok.any():
            self.first_ns = min(self.first_ns, float(start[ok][0]))
            self.last_ns = max(self.last_ns, float(done[ok].max()))
        return Batch(index[ok], done[ok] + self.latency_ns), index[~ok]

    def utilisation(self, span_ns: float) -> float:
        """Busy time over the study's span, per server."""
        return self.busy_ns / (self.queues * self.servers * span_ns) if span_ns > 0 else 0.0


Route = Callable[[np.ndarray], list[tuple[str | None, np.ndarray]]]


class Pipeline:
    """Stages joined by routes, driven by simpy: the source puts batches in the first
    stage's store, each stage runs as a simpy process.  ``finish[i]`` is when packet i
    left the system (NaN if a queue dropped it); ``dropped_at[i]`` names the stage."""

    def __init__(self, stages: list[Stage], routes: dict[str, Route], first: str,
                 n_packets: int, log: bool = False) -> None:
        self.env = simpy.Environment()
        self.stages = {s.name: s for s in stages}
        self.routes = routes
        self.first = first
        self.stores = {s.name: simpy.Store(self.env) for s in stages}
        self.finish = np.full(n_packets, np.nan)
        self.dropped_at = np.full(n_packets, -1, dtype=np.int16)
        self.names = [s.name for s in stages]
        self.log = log
        for s in stages:
            self.env.process(self._serve(s))

    def _serve(self, stage: Stage) -> Iterator[simpy.Event]:
        store = self.stores[stage.name]
        while True:
            batch = yield store.get()
            out, dropped = stage.run(batch)
            if len(dropped):
                self.dropped_at[dropped] = self.names.index(stage.name)
            if len(out.index):
                wait = float(out.ready.max()) - self.env.now
                yield self.env.timeout(max(wait, 0.0))
            if self.log:
                stage.events.append((self.env.now, stage.name, len(out.index)))
            for target, mask in self.routes[stage.name](out.index):
                if not mask.any():
                    continue
                part = Batch(out.index[mask], out.ready[mask])
                if target is None:
                    self.finish[part.index] = part.ready
                else:
                    self.stores[target].put(part)

    def source(self, arrival: np.ndarray, batch: int = BATCH) -> Iterator[simpy.Event]:
        """Put the packets into the first stage in batches, each when its first packet
        arrives."""
        for lo in range(0, len(arrival), batch):
            hi = min(lo + batch, len(arrival))
            yield self.env.timeout(max(float(arrival[lo]) - self.env.now, 0.0))
            self.stores[self.first].put(Batch(np.arange(lo, hi), arrival[lo:hi]))

    def run(self, arrival: np.ndarray, batch: int = BATCH) -> None:
        self.env.process(self.source(arrival, batch))
        self.env.run()
