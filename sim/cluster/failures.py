"""Failure what-ifs: ``failures:`` in a scenario.

Two kinds, each on one replica from ``at_s`` for ``duration_s`` seconds (null: to the end):

- ``replica_down``: the replica is lost. The iteration in progress is lost with it (iterations of a
  fast-forwarded decode run that ended before ``at_s`` are kept, as stepping would have them); its
  queued and running requests go back through the router to the replicas that are up, keeping the
  tokens already generated but not their KV (they are prefilled again, as after a recompute
  preemption, and count one more preemption). With no replica up they wait at the cluster and are
  routed when one comes back. A replica comes back empty: new engine, cold prefix cache.
- ``straggler``: the replica's iterations take ``factor`` times as long (thermal throttling, a
  slow link, a noisy neighbour). The factor applies to iterations that start inside the window;
  a fast-forwarded decode run is cut at the window's edges so that this stays exact.

Nothing is lost: every request still ends completed, rejected or running at the horizon.
``failure_window_attainment`` gives the SLO attainment of the requests that arrived during the
events (``slo_attainment_during_failures`` in the summary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from sim.config import require

if TYPE_CHECKING:   # the cluster imports this module; only type hints go the other way
    from sim.cluster.cluster import Cluster
    from sim.metrics.table import Columns

FAILURE_KINDS = ("replica_down", "straggler")


@dataclass(frozen=True)
class FailureConfig:
    kind: Literal["replica_down", "straggler"]
    replica: int = 0                    # index of the replica, < cluster.replicas
    at_s: float = 0.0                   # simulated time the event starts
    duration_s: float | None = None     # None: until the end of the run
    factor: float | None = None         # straggler: iteration time multiplier (> 1 is slower)

    def __post_init__(self):
        require(self.replica >= 0, "replica", "an integer >= 0", self.replica)
        require(self.at_s >= 0 and math.isfinite(self.at_s), "at_s", "a number >= 0", self.at_s)
        require(self.duration_s is None or (self.duration_s > 0 and math.isfinite(self.duration_s)),
                "duration_s", "a number > 0 or null (to the end)", self.duration_s)
        if self.kind == "straggler":
            require(self.factor is not None and self.factor > 0 and math.isfinite(self.factor),
                    "factor", "a number > 0 (iteration time multiplier) for a straggler",
                    self.factor)
        else:
            require(self.factor is None, "factor", "no value for replica_down", self.factor)

    @property
    def end_s(self) -> float:
        return math.inf if self.duration_s is None else self.at_s + self.duration_s


def speed_changes(failures: tuple[FailureConfig, ...], replica: int) -> np.ndarray:
    """Sorted times at which a straggler window of ``replica`` opens or closes."""
    times = {t for f in failures if f.kind == "straggler" and f.replica == replica
             for t in (f.at_s, f.end_s) if math.isfinite(t)}
    return np.array(sorted(times), dtype=np.float64)


def start_failures(cluster: "Cluster", failures: tuple[FailureConfig, ...]) -> None:
    """One SimPy process per event: open it at ``at_s``, close it after ``duration_s``."""
    for failure in failures:
        cluster.env.process(_event(cluster, failure))


def _event(cluster: "Cluster", failure: FailureConfig):
    env = cluster.env
    yield env.timeout(failure.at_s)
    _apply(cluster, failure, start=True)
    if failure.duration_s is not None:
        yield env.timeout(failure.duration_s)
        _apply(cluster, failure, start=False)


def _apply(cluster: "Cluster", failure: FailureConfig, start: bool) -> None:
    replica = cluster.replicas[failure.replica]
    if failure.kind == "replica_down":
        if start:
            cluster.take_down(failure.replica)
        else:
            cluster.bring_up(failure.replica)
        return
    # overlapping straggler windows multiply; recomputing the product from the open windows
    # (not dividing on close) brings the factor back to exactly 1.0
    if start:
        replica.slow_factors.append(failure.factor)
    else:
        replica.slow_factors.remove(failure.factor)
    replica.slowdown = float(np.prod(replica.slow_factors)) if replica.slow_factors else 1.0


def failure_window_attainment(requests: Columns, met: np.ndarray,
                              failures: tuple[FailureConfig, ...], end_s: float) -> float:
    """SLO attainment of the requests that arrived while some event was open (NaN: none ended)."""
    arrival = requests.numeric("arrival_s")
    inside = np.zeros(len(requests), dtype=bool)
    for f in failures:
        inside |= (arrival >= f.at_s) & (arrival < min(f.end_s, end_s))
    ended = inside & requests.mask("state", lambda s: s in ("completed", "rejected"))
    return float(met[ended].sum() / ended.sum()) if ended.any() else math.nan
