"""The ``llmsim plan`` file: traffic, SLOs, candidate configurations, seeds, search, what-ifs.

```yaml
name: plan_quickstart
scenario: quickstart.yaml          # model, lengths (or trace), router, scheduler options
set: [scheduler.max_num_seqs=128]  # overrides of the base, as in a sweep
traffic: {rate_rps: 24, requests_per_replica: 300}   # the target aggregate rate
slo:                               # percentile targets (any pXX) and an attainment fraction
  ttft_s: {p90: 0.5}
  tpot_s: {p90: 0.05}
  e2e_s: {p99: 30}
  attainment: {fraction: 0.95, ttft_s: 1.0, tpot_s: 0.10}   # share of requests within these
candidates:                        # hardware x tensor_parallel x scheduler; replica counts
  hardware: [h100-sxm, a100-80g-sxm]
  tensor_parallel: [1]
  scheduler: [fcfs, past_future]
  replicas: null                   # allowed cluster sizes (null: any up to max_replicas)
  max_replicas: 64
seeds: 5                           # or a list; >= 5 for a confidence interval worth the name
search: {min_rps: 0.25, max_rps: 128, iterations: 7}   # bisection of the rate per replica
what_if: {spare_replicas: 1}       # N+k: lose a replica (or `failures:` as in a scenario)
```

Or, instead of ``traffic``/``candidates``/``search``, ``fleets:`` compares fixed and autoscaled
fleets (and a KV tier) on the scenario's own traffic (sim/planning/fleets.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from sim.cluster.failures import FailureConfig
from sim.config import require
from sim.planning.fleets import FleetsConfig

PERCENTILE_METRICS = ("ttft_s", "tpot_s", "e2e_s")
_PCT = re.compile(r"^p(\d+(\.\d+)?)$")


def percentile_of(name: str) -> float | None:
    """``p90`` -> 90.0; ``p99.9`` -> 99.9; anything else -> None."""
    match = _PCT.match(name)
    if not match:
        return None
    q = float(match.group(1))
    return q if 0 < q < 100 else None


@dataclass(frozen=True)
class AttainmentTarget:
    fraction: float                   # share of ended requests that must meet the targets below
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def __post_init__(self):
        require(0 < self.fraction <= 1, "fraction", "a number in (0, 1]", self.fraction)
        for name in PERCENTILE_METRICS:
            value = getattr(self, name)
            require(value is None or value > 0, name, "a number > 0 or null", value)
        require(any(getattr(self, n) is not None for n in PERCENTILE_METRICS), "ttft_s",
                "at least one of ttft_s, tpot_s, e2e_s", None)


@dataclass(frozen=True)
class PlanSlo:
    ttft_s: dict[str, float] = field(default_factory=dict)   # {p90: 0.5}: p90 TTFT <= 0.5 s
    tpot_s: dict[str, float] = field(default_factory=dict)
    e2e_s: dict[str, float] = field(default_factory=dict)
    attainment: AttainmentTarget | None = None

    def __post_init__(self):
        for metric in PERCENTILE_METRICS:
            for name, limit in getattr(self, metric).items():
                require(percentile_of(name) is not None, f"{metric}.{name}",
                        "a percentile key like p50, p90, p99.9", name)
                require(limit > 0 and math.isfinite(limit), f"{metric}.{name}",
                        "a number > 0 (seconds)", limit)
        require(self.attainment is not None or any(getattr(self, m) for m in PERCENTILE_METRICS),
                "ttft_s", "at least one target (a percentile or attainment)", None)

    def percentiles(self) -> tuple[tuple[str, float], ...]:
        """(metric, q) pairs to compute for every run."""
        return tuple((m, percentile_of(name)) for m in PERCENTILE_METRICS
                     for name in getattr(self, m))

    def targets(self) -> list[tuple[str, float, str]]:
        """(column, limit, direction): the checks a run's row must pass."""
        from sim.planning.runs import percentile_column
        checks = [(percentile_column(m, percentile_of(name)), limit, "<=")
                  for m in PERCENTILE_METRICS for name, limit in getattr(self, m).items()]
        if self.attainment is not None:
            checks.append(("slo_attainment", self.attainment.fraction, ">="))
        return checks


@dataclass(frozen=True)
class TrafficConfig:
    rate_rps: float                      # the target aggregate rate
    requests_per_replica: int = 300      # each simulation sends this many per replica

    def __post_init__(self):
        require(self.rate_rps > 0 and math.isfinite(self.rate_rps), "rate_rps", "a number > 0",
                self.rate_rps)
        require(self.requests_per_replica >= 20, "requests_per_replica", "an integer >= 20",
                self.requests_per_replica)


@dataclass(frozen=True)
class CandidatesConfig:
    hardware: list[str] | None = None        # None: the base scenario's
    tensor_parallel: list[int] | None = None
    pipeline_parallel: list[int] | None = None
    expert_parallel: list[bool] | None = None   # MoE: experts spread over the devices or not
    scheduler: list[str] | None = None
    router: list[str] | None = None
    # disaggregated units, each a list of cluster.pools entries (e.g. 1 prefill : 3 decode
    # replicas); "replicas" then counts copies of a unit. Searched beside the colocated grid
    # (tensor_parallel x pipeline_parallel), or alone with colocated: false
    pools: list[list[dict]] | None = None
    colocated: bool = True
    replicas: list[int] | None = None        # allowed cluster sizes; None: 1..max_replicas
    max_replicas: int = 64

    def __post_init__(self):
        require(self.colocated or self.pools, "colocated",
                "true unless pools lists disaggregated units", self.colocated)
        for name in ("hardware", "tensor_parallel", "pipeline_parallel", "expert_parallel",
                     "scheduler", "router", "pools", "replicas"):
            value = getattr(self, name)
            require(value is None or len(value) > 0, name, "a non-empty list or null", value)
        require(self.max_replicas > 0, "max_replicas", "an integer > 0", self.max_replicas)
        require(self.replicas is None or all(r > 0 for r in self.replicas), "replicas",
                "a list of integers > 0", self.replicas)

    def allowed(self, needed: int) -> int | None:
        """The smallest allowed replica count >= needed (None: none is)."""
        if self.replicas is None:
            return needed if needed <= self.max_replicas else None
        fits = [r for r in sorted(self.replicas) if r >= needed and r <= self.max_replicas]
        return fits[0] if fits else None

    def neighbour(self, n: int, step: int) -> int | None:
        """The allowed count just below (step -1) or above (step +1) ``n``."""
        pool = sorted(self.replicas) if self.replicas is not None \
            else range(1, self.max_replicas + 1)
        pool = [r for r in pool if r <= self.max_replicas]
        side = [r for r in pool if (r < n if step < 0 else r > n)]
        if not side:
            return None
        return side[-1] if step < 0 else side[0]


@dataclass(frozen=True)
class SearchConfig:
    min_rps: float = 0.25            # per replica; a candidate failing here is infeasible
    max_rps: float = 128.0
    iterations: int = 7              # bisection steps (geometric): resolution (max/min)^(1/2^n)

    def __post_init__(self):
        require(self.min_rps > 0, "min_rps", "a number > 0", self.min_rps)
        require(self.max_rps > self.min_rps, "max_rps", f"a number > min_rps ({self.min_rps})",
                self.max_rps)
        require(1 <= self.iterations <= 30, "iterations", "an integer in [1, 30]",
                self.iterations)


@dataclass(frozen=True)
class WhatIfConfig:
    spare_replicas: int = 1                       # k of N+k
    failures: list[FailureConfig] | None = None   # None: lose replica 0 for the middle third

    def __post_init__(self):
        require(self.spare_replicas >= 0, "spare_replicas", "an integer >= 0",
                self.spare_replicas)


@dataclass(frozen=True)
class PlanConfig:
    scenario: str | dict[str, Any]
    slo: PlanSlo
    traffic: TrafficConfig | None = None     # the rate search's target (not with fleets)
    candidates: CandidatesConfig = field(default_factory=CandidatesConfig)
    name: str | None = None
    description: str = ""
    set: list[str] = field(default_factory=list)
    seeds: int | list[int] = 5
    search: SearchConfig = field(default_factory=SearchConfig)
    what_if: WhatIfConfig | None = None
    # compare whole fleets (fixed, autoscaled, KV tier) on the scenario's own traffic instead
    # of searching a rate per replica: sim/planning/fleets.py
    fleets: FleetsConfig | None = None

    def __post_init__(self):
        require(self.traffic is not None or self.fleets is not None, "traffic",
                "{rate_rps: ...} (required unless the plan compares fleets)", self.traffic)
        require(self.traffic is None or self.fleets is None, "traffic",
                "no traffic with fleets (fleets run the scenario's own traffic)", "set")
        if isinstance(self.seeds, int):
            require(1 <= self.seeds <= 100, "seeds", "an integer in [1, 100] or a list", self.seeds)
        else:
            require(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds)
                    and all(s >= 0 for s in self.seeds), "seeds",
                    "a list of distinct integers >= 0", self.seeds)

    def seed_list(self, base_seed: int) -> list[int]:
        if isinstance(self.seeds, int):
            return [base_seed + i for i in range(self.seeds)]
        return list(self.seeds)
