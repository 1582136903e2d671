"""Statistics of the comparison: signed errors and throughput over time, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.compare.stats import error_pct, latency_stats, throughput_over_time, tokens_before


def frame(first_s, finish_s, tokens, arrival_s=None):
    return pd.DataFrame({"arrival_s": arrival_s if arrival_s is not None else [0.0] * len(tokens),
                         "first_token_s": first_s, "finish_s": finish_s,
                         "output_tokens": tokens})


def test_tokens_before_is_a_step_then_an_even_spread():
    one = frame([1.0], [3.0], [5])            # 1 token at t=1, 4 more spread over (1, 3]
    t = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 9.0])
    np.testing.assert_allclose(tokens_before(one, t), [0, 0, 2, 3, 5, 5])


def test_tokens_before_sums_requests_and_handles_single_and_instant_ones():
    many = frame([0.0, 1.0, 2.0], [2.0, 1.0, 2.0], [3, 1, 4])
    # request 0: 1 at 0, 2 over (0, 2]; request 1: 1 at 1; request 2: 1 + 3 at 2 (no span)
    np.testing.assert_allclose(tokens_before(many, np.array([0.0, 1.0, 2.0, 2.5])),
                               [0, 2 + 0, 3 + 1, 3 + 1 + 4])


def test_throughput_bins():
    real = frame([0.5], [2.5], [5])
    sim = frame([0.5], [1.5], [3])
    series = throughput_over_time(real, sim, bin_s=1.0)
    assert list(series["t_s"]) == [0.0, 1.0, 2.0]
    np.testing.assert_allclose(series["real"], [1 + 1, 2, 1])      # 4 tokens at 2/s after 0.5
    np.testing.assert_allclose(series["sim"], [1 + 1, 1, 0])


def test_latency_stats_and_errors():
    stats = latency_stats(pd.Series([1.0, 2.0, 3.0, 4.0, math.nan]))
    assert stats["mean"] == 2.5 and stats["p50"] == 2.5
    assert set(stats) == {"mean", "p50", "p90", "p95", "p99"}
    assert error_pct(1.1, 1.0) == pytest.approx(10.0)
    assert error_pct(0.9, 1.0) == pytest.approx(-10.0)
    assert math.isnan(error_pct(1.0, 0.0)) and math.isnan(error_pct(math.nan, 1.0))
    assert all(math.isnan(v) for v in latency_stats([]).values())
