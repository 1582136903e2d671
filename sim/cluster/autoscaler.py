"""Autoscaling: a fleet that grows and shrinks with its load, each new replica paying a cold start.

The scenario's ``autoscaler`` section turns it on. The cluster is built with ``max_replicas``
replicas, of which ``cluster.replicas`` are up at the start and the others off. Every
``interval_s`` the policy (``POLICIES``: one function per policy) reads the fleet and names the
replica count it wants, between ``min_replicas`` and ``max_replicas``:

- ``queue``: requests outstanding (running and waiting), averaged over the last ``window_s``
  from samples every ``sample_s``, over ``target`` per replica, as KServe and Knative size a
  service by its concurrency (Knative's stable window: 60 s of 1 s samples; default target 8).
  As Knative's panic mode, when the mean over the last ``panic_window_s`` wants
  ``panic_threshold`` times the up replicas or more, it follows that mean instead, and scales
  no replica down, for the next ``window_s``;
- ``target-utilisation``: as Kubernetes' horizontal autoscaler, current replicas x mean use /
  ``target`` (default 0.7), the use being the KV blocks in use (``metric: kv``) or the running
  sequences over ``max_num_seqs`` (``metric: running``);
- ``slo``: one replica more when the p90 TTFT of the requests that finished in the last
  ``window_s`` exceeds ``target`` (default 0.8) of the TTFT SLO, one fewer when it is below half
  of that and nothing waits;
- ``rate``: the arrival rate ``lookahead_s`` ahead over ``target`` requests/s per replica (a load
  test's figure; required), as Knative's ``rps`` metric, with the trend of the last two
  ``window_s`` windows extrapolated as predictive scalers do; the look-ahead defaults to the cold
  start plus one interval, when a replica asked for now starts serving at the latest. It never
  wants fewer replicas than the rate now needs (scaling down takes no time to act).

A replica's life: off -> provisioning (``cold_start_s``: ``provisioning_s`` for the instance and
engine to start, then the weights of one device loaded at the ``weight_source``'s bandwidth) ->
up (routed to) -> draining (no new requests; it finishes what it holds) -> off. A provisioning
replica costs money and serves nothing. Scale-up acts once its need has held for
``scale_up_delay_s``, first taking back draining replicas. Scale-down, as the Kubernetes HPA's
stabilisation window, goes only to the most replicas wanted over the last
``scale_down_cooldown_s`` (and not within that long of a scale-up); it cancels provisioning
replicas first, then drains the up ones with the fewest requests. Failure what-ifs still apply
to up replicas.

Records: every transition (``Result.fleet``), each replica's provisioned seconds (the cost and
idle energy are charged for those, not the whole run), and the ramps, from a scale-up decision to
its replicas being up, for the SLO attainment inside and outside them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from sim.config import require
from sim.registry import Registry

if TYPE_CHECKING:
    from sim.cluster.cluster import Cluster

# per-device weight load bandwidth of each source, GB/s: a local PCIe 4 NVMe drive; a 10 Gb/s
# object store or network file system; a running replica's GPUs over RDMA (weights streamed
# GPU to GPU, as in fast-scaling systems)
LOAD_BANDWIDTH_GB_S = {"nvme": 5.0, "network": 1.25, "peer": 40.0}
DEFAULT_TARGETS = {"queue": 8.0, "target-utilisation": 0.7, "slo": 0.8}

OFF, PROVISIONING, UP, DRAINING = "off", "provisioning", "up", "draining"


@dataclass(frozen=True)
class AutoscalerConfig:
    """``autoscaler``: how the fleet scales (see the module doc)."""

    policy: str = "queue"                   # a POLICIES name
    min_replicas: int = 1
    max_replicas: int = 8
    interval_s: float = 15.0
    target: float | None = None             # the policy's target (None: DEFAULT_TARGETS)
    metric: Literal["kv", "running"] = "kv"     # target-utilisation's use
    window_s: float = 60.0                  # queue, slo, rate: the recent past they look at
    sample_s: float = 1.0                   # queue: how often outstanding requests are counted
    panic_window_s: float = 6.0             # queue: Knative's panic window (10% of the stable)
    panic_threshold: float = 2.0            # queue: panic at this many times the up replicas
    lookahead_s: float | None = None        # rate: how far ahead (None: cold start + interval)
    scale_up_delay_s: float = 0.0
    scale_down_cooldown_s: float = 300.0     # the scale-down stabilisation window
    provisioning_s: float = 60.0            # instance and engine start, before the weights load
    weight_source: Literal["nvme", "network", "peer"] = "nvme"
    load_bandwidth_gb_s: float | None = None    # per device (None: the source's default)

    def __post_init__(self) -> None:
        POLICIES.require(self.policy, "policy")
        require(self.min_replicas >= 1, "min_replicas", "an integer >= 1", self.min_replicas)
        require(self.max_replicas >= self.min_replicas, "max_replicas",
                f"an integer >= min_replicas ({self.min_replicas})", self.max_replicas)
        for name in ("interval_s", "window_s", "sample_s", "panic_window_s", "panic_threshold"):
            value = getattr(self, name)
            require(value > 0 and math.isfinite(value), name, "a number > 0", value)
        require(self.policy != "rate" or self.target is not None, "target",
                "the requests/s one replica should serve (required by policy rate)", None)
        require(self.lookahead_s is None or (self.lookahead_s >= 0
                                             and math.isfinite(self.lookahead_s)),
                "lookahead_s", "a number >= 0 or null (cold start + interval)", self.lookahead_s)
        for name in ("scale_up_delay_s", "scale_down_cooldown_s", "provisioning_s"):
            value = getattr(self, name)
            require(value >= 0 and math.isfinite(value), name, "a number >= 0", value)
        require(self.target is None or (self.target > 0 and math.isfinite(self.target)),
                "target", "a number > 0 or null (the policy's default)", self.target)
        require(self.policy != "target-utilisation" or self.target is None or self.target <= 1,
                "target", "a fraction in (0, 1] for target-utilisation", self.target)
        require(self.load_bandwidth_gb_s is None or self.load_bandwidth_gb_s > 0,
                "load_bandwidth_gb_s", "a number > 0 or null", self.load_bandwidth_gb_s)

    @property
    def policy_target(self) -> float:
        return DEFAULT_TARGETS[self.policy] if self.target is None else self.target

    @property
    def bandwidth_gb_s(self) -> float:
        return self.load_bandwidth_gb_s or LOAD_BANDWIDTH_GB_S[self.weight_source]

    def cold_start_s(self, weight_bytes_per_device: float) -> float:
        """Provisioning, then one device's weights over the source's link (the devices of a
        replica load their shards side by side)."""
        return self.provisioning_s + weight_bytes_per_device / (self.bandwidth_gb_s * 1e9)


class Autoscaler:
    """Runs the policy every ``interval_s`` and moves replicas between the states."""

    def __init__(self, cluster: Cluster, config: AutoscalerConfig, initial: int,
                 cold_start_s: float):
        self.cluster, self.config, self.cold_start_s = cluster, config, cold_start_s
        n = len(cluster.replicas)
        self.state = [UP if i < initial else OFF for i in range(n)]
        self._since = [0.0 if i < initial else math.nan for i in range(n)]  # provisioned since
        self.provisioned_s = [0.0] * n
        self._generation = [0] * n      # provisionings started: a cancelled one's timer is stale
        self.events: list[tuple[float, int, str]] = [(0.0, i, UP) for i in range(initial)]
        self.ramps: list[list[float]] = []          # [decided, ready] of each scale-up
        self.scale_events = 0
        self._last_up_s = -math.inf             # the last scale-up decision
        self._up_need_since: float | None = None
        self._wanted: deque[tuple[float, int]] = deque()    # (time, replicas wanted)
        self.finished: deque[tuple[float, float]] = deque()   # (end time, ttft), slo policy
        self.arrived: deque[tuple[float, int]] = deque([(0.0, 0)])  # (time, arrivals), rate
        self.outstanding: deque[tuple[float, int]] = deque()    # (time, requests), queue
        self.panic_until_s = -math.inf          # queue: in Knative's panic mode until then

    # -- the loop ----------------------------------------------------------------------------
    def start(self) -> None:
        self.cluster.env.process(self._loop())
        if self.config.policy == "queue":
            self.cluster.env.process(self._sample_outstanding())

    def _sample_outstanding(self):
        """Count the requests outstanding every ``sample_s``, keeping a window's worth (the
        counts are exact at any instant, so sampling never cuts a decode run)."""
        env, cluster, samples = self.cluster.env, self.cluster, self.outstanding
        window = self.config.window_s
        while cluster.ended < len(cluster.workload):
            samples.append((env.now, outstanding_requests(self)))
            while samples[0][0] <= env.now - window:
                samples.popleft()
            yield env.timeout(self.config.sample_s)

    def _loop(self):
        env, cluster = self.cluster.env, self.cluster
        while True:
            yield env.timeout(self.config.interval_s)
            if cluster.ended >= len(cluster.workload):
                return                  # every request has ended: nothing left to scale for
            self.decide(env.now)

    def decide(self, now_s: float) -> None:
        """Up at once to what the policy wants now (after ``scale_up_delay_s`` of wanting it);
        down only to the most it wanted over the last ``scale_down_cooldown_s``, as the
        Kubernetes HPA's scale-down stabilisation window: quick to add, slow to remove."""
        cfg = self.config
        current = self.count(UP) + self.count(PROVISIONING)
        wanted = POLICIES[cfg.policy](self, now_s)
        wanted = min(max(wanted, cfg.min_replicas), cfg.max_replicas)
        recent = self._wanted
        recent.append((now_s, wanted))
        while recent[0][0] < now_s - cfg.scale_down_cooldown_s:
            recent.popleft()
        if wanted > current:
            if self._up_need_since is None:
                self._up_need_since = now_s
            if now_s - self._up_need_since >= cfg.scale_up_delay_s:
                self._scale_up(now_s, wanted - current)
                self._up_need_since = None
            return
        self._up_need_since = None
        floor = max(w for _, w in recent)
        if floor < current and now_s - self._last_up_s >= cfg.scale_down_cooldown_s:
            self._scale_down(now_s, current - floor)

    def count(self, state: str) -> int:
        return sum(1 for s in self.state if s == state)

    def routable(self, index: int) -> bool:
        return self.state[index] == UP

    def lost(self, index: int) -> None:
        """A failure what-if took the replica down: a draining one stays off (its requests went
        elsewhere); an up one stays in the fleet, to restart when the failure ends."""
        if self.state[index] == DRAINING:
            now_s = self.cluster.env.now
            self._set(index, OFF, now_s)
            self._off(index, now_s)

    # -- transitions -------------------------------------------------------------------------
    def _scale_up(self, now_s: float, more: int) -> None:
        self.scale_events += 1
        self._last_up_s = now_s
        taken_back = [i for i, s in enumerate(self.state) if s == DRAINING][:more]
        for i in taken_back:
            self._set(i, UP, now_s)             # taken back at once
        more -= len(taken_back)
        if taken_back:
            self.cluster.fleet_changed()
        starting = [i for i, s in enumerate(self.state) if s == OFF][:more]
        if not starting:
            return
        for i in starting:
            self._set(i, PROVISIONING, now_s)
            self._since[i] = now_s
            self._generation[i] += 1
        ready = now_s + self.cold_start_s
        self.ramps.append([now_s, ready])
        started = [(i, self._generation[i]) for i in starting]
        event = self.cluster.env.timeout(self.cold_start_s)
        event.callbacks.append(lambda _: self._ready(started, ready))

    def _ready(self, started: list[tuple[int, int]], ready_s: float) -> None:
        for i, generation in started:
            if self.state[i] == PROVISIONING and self._generation[i] == generation:
                self._set(i, UP, ready_s)       # (not cancelled meanwhile)
                self.cluster.replica_ready(i)
        self.cluster.fleet_changed()

    def _scale_down(self, now_s: float, fewer: int) -> None:
        self.scale_events += 1
        for i in [i for i, s in enumerate(self.state) if s == PROVISIONING][::-1][:fewer]:
            self._set(i, OFF, now_s)            # cancelled: stops paying at once
            self._off(i, now_s)
            fewer -= 1
        replicas = self.cluster.replicas
        up = sorted((i for i, s in enumerate(self.state) if s == UP),
                    key=lambda i: (replicas[i].num_outstanding, -i))
        for i in up[:fewer]:
            self._set(i, DRAINING, now_s)
        self.cluster.fleet_changed()
        for i in up[:fewer]:
            self.maybe_off(i)

    def maybe_off(self, index: int) -> None:
        """A draining replica with nothing left turns off."""
        if self.state[index] == DRAINING and self.cluster.replicas[index].num_outstanding == 0:
            now_s = self.cluster.env.now
            self._set(index, OFF, now_s)
            self._off(index, now_s)
            self.cluster.replica_off(index)

    def _set(self, index: int, state: str, now_s: float) -> None:
        self.state[index] = state
        self.events.append((now_s, index, state))

    def _off(self, index: int, now_s: float) -> None:
        self.provisioned_s[index] += now_s - self._since[index]
        self._since[index] = math.nan

    # -- records -----------------------------------------------------------------------------
    def close(self, end_s: float) -> None:
        """The run ended at ``end_s``: replicas still provisioned are charged until then."""
        for i, since in enumerate(self._since):
            if since == since:
                self.provisioned_s[i] += max(end_s - since, 0.0)
                self._since[i] = math.nan

    def on_request_end(self, end_s: float, ttft_s: float) -> None:
        if self.config.policy == "slo":
            self.finished.append((end_s, ttft_s))

    def summary(self, requests, met: np.ndarray, end_s: float) -> dict:
        """Fleet figures for the run summary; ``met``: each request's SLO outcome."""
        arrival = requests.numeric("arrival_s")
        ended = requests.mask("state", lambda s: s in ("completed", "rejected"))
        inside = np.zeros(len(arrival), dtype=bool)
        for decided, ready in self.ramps:
            inside |= (arrival >= decided) & (arrival < min(ready, end_s))

        def attainment(rows):
            rows = rows & ended
            return float(met[rows].sum() / rows.sum()) if rows.any() else math.nan

        over_time = replicas_over_time(self.events, end_s)
        return {
            "policy": self.config.policy,
            "scale_events": self.scale_events,
            "cold_start_s": self.cold_start_s,
            "replica_hours": sum(self.provisioned_s) / 3600.0,
            "mean_replicas": sum(self.provisioned_s) / end_s if end_s > 0 else math.nan,
            "peak_replicas": int(over_time["provisioned"].max()) if len(over_time["time_s"])
            else 0,
            "ramp_s": float(sum(min(r, end_s) - d for d, r in self.ramps if d < end_s)),
            "slo_attainment_in_ramps": attainment(inside),
            "slo_attainment_outside_ramps": attainment(~inside),
        }


def replicas_over_time(events: list[tuple[float, int, str]], end_s: float) -> dict:
    """Replicas provisioned (provisioning, up or draining) and up after each transition:
    ``{time_s, provisioned, up}`` arrays (step functions starting at each time)."""
    state: dict[int, str] = {}
    times, provisioned, up = [], [], []
    for time_s, replica, new in sorted(events, key=lambda e: e[0]):
        if time_s > end_s:
            break
        state[replica] = new
        if times and times[-1] == time_s:
            times.pop(), provisioned.pop(), up.pop()
        times.append(time_s)
        provisioned.append(sum(1 for s in state.values() if s != OFF))
        up.append(sum(1 for s in state.values() if s == UP))
    return {"time_s": np.array(times), "provisioned": np.array(provisioned, dtype=np.int64),
            "up": np.array(up, dtype=np.int64)}


def cost_by_minute(events: list[tuple[float, int, str]], end_s: float,
                   usd_per_replica_hour: float) -> np.ndarray:
    """The fleet's cost in each minute of the run (provisioned replica-seconds x price)."""
    series = replicas_over_time(events, end_s)
    minutes = int(math.ceil(end_s / 60.0)) if end_s > 0 else 0
    edges = np.arange(minutes + 1) * 60.0
    cost = np.zeros(minutes)
    times = np.append(series["time_s"], end_s)
    for start, stop, count in zip(times[:-1], times[1:], series["provisioned"]):
        if stop <= start or not count:
            continue
        # seconds of [start, stop) inside each minute
        overlap = np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0, None)
        cost += overlap * count
    return cost * usd_per_replica_hour / 3600.0


# -- policies: the replica count each wants ----------------------------------------------------
def outstanding_requests(scaler: Autoscaler) -> int:
    """Requests running or waiting on up and draining replicas, or waiting for any replica."""
    cluster = scaler.cluster
    return sum(cluster.replicas[i].num_outstanding for i, s in enumerate(scaler.state)
               if s in (UP, DRAINING)) + len(cluster.parked)


def queue_policy(scaler: Autoscaler, now_s: float) -> int:
    cfg = scaler.config
    samples = scaler.outstanding or deque([(now_s, outstanding_requests(scaler))])
    stable = sum(n for _, n in samples) / len(samples)
    recent = [n for t, n in samples if t > now_s - cfg.panic_window_s] or [samples[-1][1]]
    panic = math.ceil(sum(recent) / len(recent) / cfg.policy_target)
    up = scaler.count(UP)
    if up and panic >= cfg.panic_threshold * up:
        scaler.panic_until_s = now_s + cfg.window_s
    if now_s < scaler.panic_until_s:            # never down while panicking
        return max(panic, up + scaler.count(PROVISIONING))
    return math.ceil(stable / cfg.policy_target)


def utilisation_policy(scaler: Autoscaler, now_s: float) -> int:
    replicas = scaler.cluster.replicas
    up = [replicas[i] for i, s in enumerate(scaler.state) if s == UP]
    if not up:
        return scaler.config.min_replicas
    if scaler.config.metric == "kv":
        use = sum(r.kv_blocks_used / r.kv_blocks_total for r in up) / len(up)
    else:
        use = sum(len(r.engine.scheduler.running) / r.engine.scheduler.config.max_num_seqs
                  for r in up) / len(up)
    current = scaler.count(UP) + scaler.count(PROVISIONING)
    return math.ceil(current * use / scaler.config.policy_target)


def slo_policy(scaler: Autoscaler, now_s: float) -> int:
    finished = scaler.finished
    while finished and finished[0][0] < now_s - scaler.config.window_s:
        finished.popleft()
    current = scaler.count(UP) + scaler.count(PROVISIONING)
    if not finished:
        return current
    p90 = float(np.percentile([t for _, t in finished], 90))
    limit = scaler.config.policy_target * scaler.cluster.ttft_slo_s
    waiting = sum(len(scaler.cluster.replicas[i].engine.scheduler.waiting)
                  for i, s in enumerate(scaler.state) if s == UP)
    if p90 > limit:
        return current + 1
    if p90 < limit / 2 and not waiting:
        return current - 1
    return current


def rate_policy(scaler: Autoscaler, now_s: float) -> int:
    """The arrival rate over the last ``window_s``, plus its trend carried on to ``lookahead_s``
    ahead. The trend is the change between the last two spans of ``trend_s`` (at least the
    look-ahead, since extrapolating further than one has looked back amplifies Poisson noise)."""
    cfg = scaler.config
    lookahead = scaler.cold_start_s + cfg.interval_s if cfg.lookahead_s is None \
        else cfg.lookahead_s
    trend_s = max(cfg.window_s, lookahead)
    history = scaler.arrived
    history.append((now_s, scaler.cluster.arrived))
    while len(history) > 2 and history[1][0] <= now_s - 2 * trend_s:
        history.popleft()           # (keeps one sample at or before two spans ago)
    times = np.array([t for t, _ in history])
    counts = np.array([c for _, c in history], dtype=float)

    def rate(start_s: float, end_s: float) -> float:
        """Arrivals per second over [start_s, end_s], linear between the samples."""
        begin, end = np.interp([start_s, end_s], times, counts)
        return (end - begin) / (end_s - start_s)

    if now_s <= 0:
        return scaler.count(UP) + scaler.count(PROVISIONING)
    window, trend_s = min(cfg.window_s, now_s), min(trend_s, now_s / 2)
    level = rate(now_s - window, now_s)
    slope = (rate(now_s - trend_s, now_s) - rate(now_s - 2 * trend_s, now_s - trend_s)) \
        / trend_s if trend_s > 0 else 0.0
    # ahead for scaling up (a replica takes the look-ahead to serve); never below the rate now,
    # since a replica scaled down stops serving at once (as predictive scalers only scale out)
    now_rate = level + slope * window / 2
    forecast = max(now_rate + slope * lookahead, now_rate)
    return math.ceil(max(forecast, 0.0) / cfg.policy_target)


Policy = Callable[[Autoscaler, float], int]
POLICIES: Registry[Policy] = Registry("autoscaler policy", {
    "queue": queue_policy,
    "target-utilisation": utilisation_policy,
    "slo": slo_policy,
    "rate": rate_policy,
})
