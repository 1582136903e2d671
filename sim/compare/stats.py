"""Real vs simulated statistics: latency distributions, signed errors, output throughput over time.

Both sides go through the same functions on the same columns, so a difference in the table is a
difference in the timestamps, never in how they were summarised.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LATENCIES = ("ttft_s", "tpot_s", "e2e_s")
STATS = ("mean", "p50", "p90", "p95", "p99")
THROUGHPUT = "throughput_tokens_per_s"


def latency_stats(values: pd.Series | np.ndarray) -> dict[str, float]:
    """``{mean, p50, p90, p95, p99}`` of the finite values (NaN when there are none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return dict.fromkeys(STATS, math.nan)
    pct = np.percentile(arr, [50, 90, 95, 99])
    return {"mean": float(arr.mean()), **{f"p{p}": float(v) for p, v in
                                          zip((50, 90, 95, 99), pct)}}


def side_stats(requests: pd.DataFrame) -> dict:
    """One side's numbers for compare.json: each latency's stats, and output tokens per second
    from the first arrival to the last token."""
    out = {name: latency_stats(requests[name]) for name in LATENCIES}
    out[THROUGHPUT] = mean_throughput(requests)
    return out


def mean_throughput(requests: pd.DataFrame) -> float:
    if len(requests) == 0:
        return math.nan
    span_s = float(requests["finish_s"].max() - requests["arrival_s"].min())
    return float(requests["output_tokens"].sum()) / span_s if span_s > 0 else math.nan


def error_pct(sim: float, real: float) -> float:
    """Signed percentage error of the simulation, (sim - real) / real x 100 (NaN if undefined)."""
    if not (math.isfinite(sim) and math.isfinite(real)) or real == 0:
        return math.nan
    return (sim - real) / real * 100.0


def errors(real: dict, sim: dict) -> dict:
    """The signed % error of every number in :func:`side_stats`, in the same layout."""
    out = {name: {stat: error_pct(sim[name][stat], real[name][stat]) for stat in STATS}
           for name in LATENCIES}
    out[THROUGHPUT] = error_pct(sim[THROUGHPUT], real[THROUGHPUT])
    return out


def comparison_rows(real: dict, sim: dict, error: dict) -> pd.DataFrame:
    """One row per (metric, stat): real, sim and the signed % error."""
    rows = [(name, stat, real[name][stat], sim[name][stat], error[name][stat])
            for name in LATENCIES for stat in STATS]
    rows.append((THROUGHPUT, "mean", real[THROUGHPUT], sim[THROUGHPUT], error[THROUGHPUT]))
    return pd.DataFrame(rows, columns=["metric", "stat", "real", "sim", "error_pct"])


# -- output throughput over time ----------------------------------------------------------------
def throughput_over_time(real: pd.DataFrame, sim: pd.DataFrame, bin_s: float) -> pd.DataFrame:
    """Output tokens per second in ``bin_s`` bins from t = 0 (the first arrival) to the last
    token of either side: columns ``t_s`` (bin start), ``real``, ``sim``."""
    end_s = max(float(real["finish_s"].max()), float(sim["finish_s"].max()), 0.0)
    edges = bin_s * np.arange(math.floor(end_s / bin_s) + 2)
    return pd.DataFrame({"t_s": edges[:-1],
                         "real": np.diff(tokens_before(real, edges)) / bin_s,
                         "sim": np.diff(tokens_before(sim, edges)) / bin_s})


def tokens_before(requests: pd.DataFrame, t_s: np.ndarray) -> np.ndarray:
    """Output tokens emitted strictly before each time in ``t_s``, summed over requests.

    A request emits its first token at ``first_token_s`` and the others spread evenly up to
    ``finish_s``: per request a step plus a ramp, so the sum is a piecewise-linear function,
    evaluated for all times at once from sorted cumulative sums (no loop over tokens, which a
    long run has hundreds of millions of)."""
    first = requests["first_token_s"].to_numpy(dtype=np.float64)
    finish = requests["finish_s"].to_numpy(dtype=np.float64)
    rest = requests["output_tokens"].to_numpy(dtype=np.float64) - 1
    ok = np.isfinite(first) & np.isfinite(finish)
    first, finish, rest = first[ok], finish[ok], rest[ok]
    t_s = np.asarray(t_s, dtype=np.float64)
    total = _steps(first, np.ones_like(first), t_s)
    span = finish - first
    instant = (rest > 0) & (span <= 0)
    total += _steps(finish[instant], rest[instant], t_s)
    ramp = (rest > 0) & (span > 0)
    slope = rest[ramp] / span[ramp]
    total += _hinges(first[ramp], slope, t_s) - _hinges(finish[ramp], slope, t_s)
    return total


def _steps(at_s: np.ndarray, weight: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """sum of weight_i over i with at_i < t, for each t."""
    order = np.argsort(at_s, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(weight[order])])
    return cum[np.searchsorted(at_s[order], t_s, side="left")]


def _hinges(at_s: np.ndarray, slope: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """sum of slope_i * (t - at_i) over i with at_i < t, for each t."""
    order = np.argsort(at_s, kind="stable")
    at_sorted, slope_sorted = at_s[order], slope[order]
    slopes = np.concatenate([[0.0], np.cumsum(slope_sorted)])
    offsets = np.concatenate([[0.0], np.cumsum(slope_sorted * at_sorted)])
    idx = np.searchsorted(at_sorted, t_s, side="left")
    return t_s * slopes[idx] - offsets[idx]
