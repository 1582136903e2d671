"""Mean and 95% confidence interval over repeated seeds (Student's t, exact quantiles)."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np


@functools.lru_cache(maxsize=None)
def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom, t(0.975, df):
    exact for every df (a table that stops at 30 and then uses 1.96 makes intervals up to ~4%
    too narrow)."""
    if df < 1:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.975, df))


@dataclass(frozen=True)
class Estimate:
    """``mean`` with its 95% interval [``low``, ``high``] over ``n`` seeds."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def mean_ci(values) -> Estimate:
    """Mean and 95% CI of the finite values (a single value: a zero-width interval)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return Estimate(mean, mean, mean, 1)
    half = t975(n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)
