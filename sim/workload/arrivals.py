"""Arrival processes: ``ARRIVALS[kind](cfg, n, rng)`` gives n sorted arrival times in seconds.

Each generator is vectorised (one numpy draw for all n requests). Poisson and gamma processes start
at ``start_s`` and their first arrival comes one gap later, as for a real process started then;
constant arrivals start at ``start_s`` itself, and a burst puts every request at ``start_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import require


@dataclass(frozen=True)
class ArrivalConfig:
    """``workload.arrivals``: how requests arrive."""

    kind: Literal["poisson", "constant", "gamma", "burst"] = "poisson"
    rate_rps: float | None = None   # mean requests per second; not needed for a burst
    cv: float = 1.0                 # gamma only: coefficient of variation of the gaps (1 = Poisson)
    start_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "burst":
            require(self.rate_rps is None or self.rate_rps > 0, "rate_rps",
                    "a number > 0 or null", self.rate_rps)
        else:
            require(self.rate_rps is not None, "rate_rps",
                    f"a number > 0 (required for kind '{self.kind}')", self.rate_rps)
            require(self.rate_rps > 0 and np.isfinite(self.rate_rps), "rate_rps",
                    "a number > 0", self.rate_rps)
        require(self.cv > 0 and np.isfinite(self.cv), "cv", "a number > 0", self.cv)
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


ArrivalGenerator = Callable[[ArrivalConfig, int, np.random.Generator], np.ndarray]

ARRIVALS: dict[str, ArrivalGenerator] = {
    "poisson": poisson_arrivals,
    "constant": constant_arrivals,
    "gamma": gamma_arrivals,
    "burst": burst_arrivals,
}
