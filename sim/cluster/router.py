"""Routers: which replica gets an arriving request. ``ROUTERS`` maps YAML names to classes."""

from __future__ import annotations

from operator import attrgetter
from typing import Protocol, Sequence

import numpy as np

from sim.registry import Registry
from sim.workload.request import Request


class ReplicaView(Protocol):
    index: int

    @property
    def num_outstanding(self) -> int: ...

    @property
    def kv_blocks_used(self) -> int: ...

    @property
    def kv_blocks_total(self) -> int: ...


_outstanding = attrgetter("num_outstanding")


class Router:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, request: Request, replicas: Sequence[ReplicaView]) -> ReplicaView:
        raise NotImplementedError


class RoundRobinRouter(Router):
    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self._next = 0

    def pick(self, request, replicas):
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica


class RandomRouter(Router):
    def pick(self, request, replicas):
        return replicas[int(self.rng.integers(len(replicas)))]


class LeastOutstandingRouter(Router):
    """Fewest requests waiting or running; ties go to the lowest index."""

    def pick(self, request, replicas):
        return min(replicas, key=_outstanding)


class LeastKvLoadRouter(Router):
    """Lowest fraction of KV blocks in use; ties broken by fewer outstanding requests."""

    def pick(self, request, replicas):
        return min(replicas, key=lambda r: (r.kv_blocks_used / r.kv_blocks_total,
                                            r.num_outstanding))


ROUTERS: Registry[type[Router]] = Registry("router", {
    "round-robin": RoundRobinRouter,
    "random": RandomRouter,
    "least-outstanding": LeastOutstandingRouter,
    "least-kv-load": LeastKvLoadRouter,
})
