"""Arrival processes: ``ARRIVALS[kind](cfg, n, rng)`` gives n sorted arrival times in seconds.

Each generator is vectorised (one numpy draw for all n requests). Poisson and gamma processes start
at ``start_s`` and their first arrival comes one gap later, as for a real process started then;
constant arrivals start at ``start_s`` itself, and a burst puts every request at ``start_s``.

``piecewise`` is a Poisson process whose rate follows ``schedule``, a list of
``[duration_s, rate_rps]`` segments (ramps, diurnal curves, spikes; a rate of 0 is a pause); the
schedule repeats until n requests have arrived. ``diurnal`` is a Poisson process whose rate
follows a day: a sine around ``mean_rps`` with a ``peak_to_trough`` ratio and a ``period_s``.

``closed_loop`` has no times to draw: ``clients`` clients each send a request, wait until it ends
(completed or rejected), think ``think_time_s`` seconds and send the next one (the next in
workload order, or the next turn of the client's session). Every client sends its first request
at ``start_s``. The cluster runs that loop (:mod:`sim.cluster.closed_loop`); the generator here
returns ``start_s`` for every request as a placeholder, replaced by the time each is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.config import require
from sim.registry import Registry


@dataclass(frozen=True)
class ArrivalConfig:
    """``workload.arrivals``: how requests arrive."""

    kind: str = "poisson"           # an ARRIVALS name
    rate_rps: float | None = None   # mean requests per second; not needed for a burst
    cv: float = 1.0                 # gamma only: coefficient of variation of the gaps (1 = Poisson)
    start_s: float = 0.0
    schedule: list[list[float]] | None = None   # piecewise: [[duration_s, rate_rps], ...]
    # diurnal: a Poisson process whose rate swings as a sine around mean_rps, peak_to_trough
    # times higher at its peak than at its trough, once every period_s; phase is where in the
    # period start_s falls (a fraction: 0 the mean rising, 0.25 the peak, 0.75 the trough)
    mean_rps: float | None = None
    peak_to_trough: float | None = None
    period_s: float = 86400.0
    phase: float = 0.0
    clients: int | None = None      # closed_loop: concurrent clients
    think_time_s: float = 0.0       # closed_loop: pause between a request's end and the next
    # requests sent together at start_s before the process's own arrivals: a system that
    # starts loaded (the Duplex authors start their Poisson sweep with 0.7 x max batch)
    initial_requests: int = 0

    def __post_init__(self) -> None:
        ARRIVALS.require(self.kind, "kind")
        uses = {"piecewise": ("schedule",), "closed_loop": ("clients", "think_time_s"),
                "diurnal": ("mean_rps", "peak_to_trough", "period_s", "phase")}
        for name, default in (("schedule", None), ("clients", None), ("think_time_s", 0.0),
                              ("mean_rps", None), ("peak_to_trough", None),
                              ("period_s", 86400.0), ("phase", 0.0)):
            if name not in uses.get(self.kind, ()):
                require(getattr(self, name) == default, name,
                        f"no value (not used by kind '{self.kind}')", getattr(self, name))
        if self.kind in ("piecewise", "closed_loop", "diurnal"):
            require(self.rate_rps is None, "rate_rps",
                    f"no value (kind '{self.kind}' sets its own rate)", self.rate_rps)
        if self.kind == "diurnal":
            require(self.mean_rps is not None and self.mean_rps > 0
                    and np.isfinite(self.mean_rps), "mean_rps",
                    "a number > 0 (required for kind 'diurnal')", self.mean_rps)
            require(self.peak_to_trough is not None and self.peak_to_trough >= 1
                    and np.isfinite(self.peak_to_trough), "peak_to_trough",
                    "a number >= 1 (required for kind 'diurnal'; 1: a flat rate)",
                    self.peak_to_trough)
            require(self.period_s > 0 and np.isfinite(self.period_s), "period_s",
                    "a number > 0", self.period_s)
            require(np.isfinite(self.phase), "phase", "a fraction of the period",
                    self.phase)
        elif self.kind == "burst":
            require(self.rate_rps is None or self.rate_rps > 0, "rate_rps",
                    "a number > 0 or null", self.rate_rps)
        elif self.kind == "piecewise":
            ok = bool(self.schedule) and all(
                len(seg) == 2 and seg[0] > 0 and seg[1] >= 0 and np.isfinite(seg).all()
                for seg in self.schedule)
            require(ok and any(seg[1] > 0 for seg in self.schedule), "schedule",
                    "a list of [duration_s > 0, rate_rps >= 0] with some rate > 0", self.schedule)
        elif self.kind == "closed_loop":
            require(self.clients is not None and self.clients > 0, "clients",
                    "an integer > 0 (required for closed_loop)", self.clients)
            require(self.think_time_s >= 0 and np.isfinite(self.think_time_s), "think_time_s",
                    "a number >= 0", self.think_time_s)
        else:
            require(self.rate_rps is not None, "rate_rps",
                    f"a number > 0 (required for kind '{self.kind}')", self.rate_rps)
            require(self.rate_rps > 0 and np.isfinite(self.rate_rps), "rate_rps",
                    "a number > 0", self.rate_rps)
        require(self.cv > 0 and np.isfinite(self.cv), "cv", "a number > 0", self.cv)
        require(self.initial_requests >= 0, "initial_requests", "an integer >= 0",
                self.initial_requests)
        require(self.initial_requests == 0 or self.kind != "closed_loop", "initial_requests",
                "0 with kind closed_loop (its clients send the first requests)",
                self.initial_requests)
        require(self.start_s >= 0 and np.isfinite(self.start_s), "start_s", "a number >= 0",
                self.start_s)


def poisson_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    gaps = rng.exponential(1.0 / cfg.rate_rps, size=n)
    return cfg.start_s + np.cumsum(gaps)


def constant_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    return cfg.start_s + np.arange(n, dtype=np.float64) / cfg.rate_rps


def gamma_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    # Gamma(shape k, scale θ): mean kθ, cv 1/sqrt(k); so k = 1/cv², θ = mean/k.
    shape = 1.0 / cfg.cv ** 2
    gaps = rng.gamma(shape, (1.0 / cfg.rate_rps) / shape, size=n)
    return cfg.start_s + np.cumsum(gaps)


def burst_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.full(n, cfg.start_s, dtype=np.float64)


def piecewise_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    durations = np.array([seg[0] for seg in cfg.schedule], dtype=np.float64)
    rates = np.array([seg[1] for seg in cfg.schedule], dtype=np.float64)
    period = float(durations.sum())
    expected = float((rates * durations).sum())          # requests per pass over the schedule
    out, have, cycle = [], 0, 0
    while have < n:
        # enough passes at once for the requests still missing (plus a margin): Poisson counts
        # per segment, then times uniform within each segment
        k = int(np.ceil((n - have) / expected * 1.05)) + 1
        seg_durations, seg_rates = np.tile(durations, k), np.tile(rates, k)
        seg_starts = cycle * period + np.concatenate(([0.0], np.cumsum(seg_durations)[:-1]))
        counts = rng.poisson(seg_rates * seg_durations)
        times = rng.uniform(0.0, 1.0, int(counts.sum())) * np.repeat(seg_durations, counts) \
            + np.repeat(seg_starts, counts)
        times.sort()
        out.append(times)
        have += len(times)
        cycle += k
    return cfg.start_s + np.concatenate(out)[:n]


def diurnal_rate(cfg: ArrivalConfig, t_s: np.ndarray | float) -> np.ndarray | float:
    """The diurnal process's rate (requests/s) at times ``t_s``: mean x (1 + a sin(2 pi x
    (phase + (t - start) / period))), a = (peak/trough - 1) / (peak/trough + 1)."""
    a = (cfg.peak_to_trough - 1.0) / (cfg.peak_to_trough + 1.0)
    x = 2.0 * np.pi * (cfg.phase + (np.asarray(t_s) - cfg.start_s) / cfg.period_s)
    return cfg.mean_rps * (1.0 + a * np.sin(x))


def diurnal_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """By time rescaling: unit-rate Poisson points E_k mapped through the inverse of the
    cumulative rate L(t) = mean x (t + a P / 2pi x (cos(2pi phase) - cos(2pi (phase + t / P))))
    (t from start_s), solved by Newton's method (L is increasing: the rate never falls below
    mean x (1 - a) > 0)."""
    a = (cfg.peak_to_trough - 1.0) / (cfg.peak_to_trough + 1.0)
    mean, period, w = cfg.mean_rps, cfg.period_s, 2.0 * np.pi / cfg.period_s
    theta0 = 2.0 * np.pi * cfg.phase
    target = np.cumsum(rng.exponential(1.0, size=n))

    def cumulative(t):
        return mean * (t + a / w * (np.cos(theta0) - np.cos(theta0 + w * t)))

    t = target / mean
    for _ in range(100):
        step = (cumulative(t) - target) / (mean * (1.0 + a * np.sin(theta0 + w * t)))
        t -= step
        if not len(t) or np.max(np.abs(step)) <= 1e-9 * max(period, 1.0):
            break
    return cfg.start_s + np.maximum.accumulate(np.maximum(t, 0.0)) if len(t) else t


def closed_loop_arrivals(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.full(n, cfg.start_s, dtype=np.float64)     # placeholders: the cluster sends them


ArrivalGenerator = Callable[[ArrivalConfig, int, np.random.Generator], np.ndarray]

ARRIVALS: Registry[ArrivalGenerator] = Registry("arrival kind", {
    "poisson": poisson_arrivals,
    "constant": constant_arrivals,
    "gamma": gamma_arrivals,
    "burst": burst_arrivals,
    "piecewise": piecewise_arrivals,
    "diurnal": diurnal_arrivals,
    "closed_loop": closed_loop_arrivals,
})


def arrival_times(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` arrival times: the first ``cfg.initial_requests`` together at ``start_s``, then
    the process of ``cfg.kind``."""
    initial = min(cfg.initial_requests, n)
    times = ARRIVALS[cfg.kind](cfg, n - initial, rng)
    if not initial:
        return times
    return np.concatenate([np.full(initial, cfg.start_s), times])
