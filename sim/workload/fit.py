"""Replay-fit: fit an arrival process and length distributions to a trace, then generate from them.

``workload.replay_fit: {trace: {...}, lengths: lognormal | empirical}`` with ``num_requests``
makes a synthetic workload as long as you like that looks like the trace in its mean rate, the
burstiness of its gaps and its length distributions:

- arrivals: a gamma process with the trace's mean rate ``(n - 1) / span`` and the coefficient of
  variation of its gaps (cv 1 is Poisson; a trace with equal gaps gives ``constant``, one whose
  requests all arrive at once a ``burst``);
- lengths: ``lognormal`` with the trace's mean and the standard deviation of its log lengths,
  clipped to the trace's min and max (``fixed`` if every length is the same); or ``empirical``, resampling the trace's columns.

Any of ``workload.arrivals``, ``prompt_tokens``, ``output_tokens`` given explicitly replaces the
fitted one. The fit ignores time-of-day structure: for that, replay the trace with ``repeat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.workload.arrivals import ArrivalConfig
from sim.workload.columns import TraceColumns
from sim.workload.lengths import LengthConfig
from sim.workload.traces import TraceConfig


@dataclass(frozen=True)
class ReplayFitConfig:
    """``workload.replay_fit``."""

    trace: TraceConfig
    lengths: Literal["lognormal", "empirical"] = "lognormal"


@dataclass(frozen=True)
class Fit:
    arrivals: ArrivalConfig
    prompt_tokens: LengthConfig
    output_tokens: LengthConfig


def fit_arrivals(arrival_s: np.ndarray) -> ArrivalConfig:
    gaps = np.diff(arrival_s)
    span = float(arrival_s[-1] - arrival_s[0]) if len(arrival_s) else 0.0
    if len(gaps) == 0 or span <= 0:
        return ArrivalConfig(kind="burst")
    rate = len(gaps) / span
    cv = float(gaps.std() / gaps.mean())
    if cv < 1e-9:
        return ArrivalConfig(kind="constant", rate_rps=rate)
    return ArrivalConfig(kind="gamma", rate_rps=rate, cv=cv)


def fit_lognormal(lengths: np.ndarray) -> LengthConfig:
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.min() == lengths.max():
        return LengthConfig(dist="fixed", value=int(lengths[0]))
    return LengthConfig(dist="lognormal", mean=float(lengths.mean()),
                        sigma=float(np.log(lengths).std()), min=int(lengths.min()),
                        max=int(lengths.max()))


def fit_trace(columns: TraceColumns) -> Fit:
    """The gamma arrivals and lognormal lengths that match ``columns``."""
    return Fit(fit_arrivals(columns.arrival_s), fit_lognormal(columns.prompt_tokens),
               fit_lognormal(columns.output_tokens))
