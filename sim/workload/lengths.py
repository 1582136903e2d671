"""Token-length distributions: ``sample_lengths(cfg, n, rng)`` draws n lengths as int64.

``LENGTH_DISTS[dist](cfg, n, rng, values)`` draws raw (real-valued) samples; :func:`sample_lengths`
rounds them to integers and clips them to ``[max(1, min), max]``, so every length is at least one
token. ``values`` is only read by ``empirical``: the trace column to resample, which
:func:`sim.workload.build_workload` loads (configs do no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import require
from sim.registry import Registry
from sim.workload.traces import TraceConfig

# Which optional fields each distribution reads; the others must be left unset, so a misplaced
# parameter (``std`` on a lognormal) is an error rather than silently ignored.
_USES: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": (),
    "normal": ("mean", "std"),
    "lognormal": ("mean", "sigma"),
    "empirical": ("trace", "column"),
}


@dataclass(frozen=True)
class LengthConfig:
    """A distribution of token counts (``workload.prompt_tokens`` / ``workload.output_tokens``).

    - ``fixed``: always ``value``.
    - ``uniform``: integers in ``[min, max]``, both inclusive.
    - ``normal``: mean ``mean``, standard deviation ``std``.
    - ``lognormal``: ``mean`` is the mean of the lengths themselves (not of their logarithm) and
      ``sigma`` the standard deviation of the logarithm, so ``mu = ln(mean) - sigma**2 / 2``.
      Clipping at ``max`` lowers the sample mean below ``mean`` when ``max`` is not far above it.
    - ``empirical``: lengths drawn with replacement from column ``column`` (``prompt_tokens`` or
      ``output_tokens``; default: the one being configured) of the trace ``trace`` (after its
      transformations).

    Every sample is rounded to an integer and clipped to ``[max(1, min), max]``.
    """

    dist: str                                      # a LENGTH_DISTS name
    value: int | None = None
    min: int = 1
    max: int | None = None
    mean: float | None = None
    std: float | None = None
    sigma: float | None = None
    trace: TraceConfig | None = None
    column: Literal["prompt_tokens", "output_tokens"] | None = None

    def __post_init__(self) -> None:
        LENGTH_DISTS.require(self.dist, "dist")
        for name in ("value", "mean", "std", "sigma", "trace", "column"):
            if name not in _USES.get(self.dist, ()):
                require(getattr(self, name) is None, name,
                        f"no value (not used by dist '{self.dist}')", getattr(self, name))
        require(self.max is None or self.max >= max(1, self.min), "max",
                f"an integer >= {max(1, self.min)} (and >= min)", self.max)
        if self.dist == "fixed":
            require(self.value is not None and self.value >= 1, "value", "an integer >= 1",
                    self.value)
            require(self.value >= self.min and (self.max is None or self.value <= self.max),
                    "value", "a value within [min, max]", self.value)
        elif self.dist == "uniform":
            require(self.max is not None, "max", "an integer >= min (required for uniform)",
                    self.max)
        elif self.dist == "normal":
            require(self.mean is not None and math.isfinite(self.mean), "mean",
                    "a number (required for normal)", self.mean)
            require(self.std is not None and self.std >= 0 and math.isfinite(self.std), "std",
                    "a number >= 0 (required for normal)", self.std)
        elif self.dist == "lognormal":
            require(self.mean is not None and self.mean > 0 and math.isfinite(self.mean), "mean",
                    "a number > 0 (required for lognormal)", self.mean)
            require(self.sigma is not None and self.sigma >= 0 and math.isfinite(self.sigma),
                    "sigma", "a number >= 0 (required for lognormal)", self.sigma)
        elif self.dist == "empirical":
            require(self.trace is not None, "trace", "a trace {path: ...} (required for empirical)",
                    self.trace)


Values = np.ndarray | None


def _fixed(cfg: LengthConfig, n: int, rng: np.random.Generator,
           values: Values = None) -> np.ndarray:
    return np.full(n, cfg.value, dtype=np.int64)


def _uniform(cfg: LengthConfig, n: int, rng: np.random.Generator,
             values: Values = None) -> np.ndarray:
    return rng.integers(max(1, cfg.min), cfg.max, size=n, endpoint=True, dtype=np.int64)


def _normal(cfg: LengthConfig, n: int, rng: np.random.Generator,
            values: Values = None) -> np.ndarray:
    return rng.normal(cfg.mean, cfg.std, size=n)


def _lognormal(cfg: LengthConfig, n: int, rng: np.random.Generator,
               values: Values = None) -> np.ndarray:
    mu = math.log(cfg.mean) - cfg.sigma ** 2 / 2
    return rng.lognormal(mu, cfg.sigma, size=n)


def _empirical(cfg: LengthConfig, n: int, rng: np.random.Generator,
               values: Values = None) -> np.ndarray:
    if values is None or len(values) == 0:
        raise ValueError("empirical lengths need the trace column's values")
    return np.asarray(values, dtype=np.int64)[rng.integers(0, len(values), size=n)]


LengthSampler = Callable[[LengthConfig, int, np.random.Generator, Values], np.ndarray]

LENGTH_DISTS: Registry[LengthSampler] = Registry("length distribution", {
    "fixed": _fixed,
    "uniform": _uniform,
    "normal": _normal,
    "lognormal": _lognormal,
    "empirical": _empirical,
})


_NO_MAX = float(2 ** 53)   # the cap without ``max``: an overflowing draw (inf) still casts to int64


def sample_lengths(cfg: LengthConfig, n: int, rng: np.random.Generator,
                   values: Values = None) -> np.ndarray:
    """n lengths from ``cfg``: rounded to integers and clipped to ``[max(1, min), max]``.

    ``values``: the trace column an ``empirical`` distribution resamples.
    """
    raw = np.asarray(LENGTH_DISTS[cfg.dist](cfg, n, rng, values))
    if raw.dtype.kind == "f":
        # Clip as floats first: a huge normal/lognormal draw must not overflow int64.
        hi = _NO_MAX if cfg.max is None else cfg.max
        raw = np.rint(np.clip(raw, max(1, cfg.min), hi))
    return np.clip(raw, max(1, cfg.min), cfg.max).astype(np.int64, copy=False)
