import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.workload import LENGTH_DISTS, LengthConfig, sample_lengths


def rng(seed=0):
    return np.random.default_rng(seed)


def test_the_registry_is_what_the_config_accepts():
    with pytest.raises(ConfigValueError, match=r"known length distribution .*'lognormal'"):
        LengthConfig("lognormol", mean=10.0, sigma=1.0)
    assert {"fixed", "uniform", "normal", "lognormal", "empirical"} <= set(LENGTH_DISTS)


def test_fixed_exact():
    out = sample_lengths(LengthConfig("fixed", value=7), 5, rng())
    assert out.tolist() == [7] * 5
    assert out.dtype == np.int64


def test_uniform_in_range_and_covers_both_ends():
    out = sample_lengths(LengthConfig("uniform", min=3, max=6), 2000, rng())
    assert out.dtype == np.int64
    assert set(out.tolist()) == {3, 4, 5, 6}


def test_normal_clipped_to_bounds_and_rounded():
    out = sample_lengths(LengthConfig("normal", mean=10, std=20, min=2, max=15), 5000, rng())
    assert out.dtype == np.int64
    assert out.min() == 2 and out.max() == 15


def test_normal_never_below_one_even_with_min_zero():
    out = sample_lengths(LengthConfig("normal", mean=0, std=5, min=0), 1000, rng())
    assert out.min() == 1


def test_normal_mean():
    out = sample_lengths(LengthConfig("normal", mean=500, std=50), 20_000, rng(3))
    assert out.mean() == pytest.approx(500, abs=2)


def test_lognormal_mean_is_the_distribution_mean():
    # sigma=1: the sample mean has relative standard error sqrt(e-1)/sqrt(n) ~ 0.9%
    out = sample_lengths(LengthConfig("lognormal", mean=600, sigma=1.0, max=10**9), 20_000, rng(4))
    assert out.mean() == pytest.approx(600, rel=0.04)
    # and the median is exp(mu) = 600 / e^(1/2), well below the mean
    assert np.median(out) == pytest.approx(600 / np.exp(0.5), rel=0.05)


def test_lognormal_respects_max():
    out = sample_lengths(LengthConfig("lognormal", mean=600, sigma=2.0, max=1000), 5000, rng())
    assert out.max() == 1000 and out.min() >= 1


def test_lognormal_sigma_zero_is_constant():
    out = sample_lengths(LengthConfig("lognormal", mean=300, sigma=0.0), 10, rng())
    assert out.tolist() == [300] * 10


def test_huge_draws_do_not_overflow():
    # exp of a large normal draw is inf: it must not wrap around when cast to int64
    out = sample_lengths(LengthConfig("normal", mean=1e308, std=1e308), 1000, rng())
    assert out.min() >= 1


def test_deterministic():
    cfg = LengthConfig("lognormal", mean=100, sigma=1.0, max=4096)
    np.testing.assert_array_equal(sample_lengths(cfg, 100, rng(9)), sample_lengths(cfg, 100, rng(9)))


@pytest.mark.parametrize("kwargs, field", [
    ({"dist": "fixed"}, "value"),
    ({"dist": "fixed", "value": 0}, "value"),
    ({"dist": "fixed", "value": 10, "max": 5}, "value"),
    ({"dist": "uniform", "min": 5}, "max"),
    ({"dist": "uniform", "min": 5, "max": 4}, "max"),
    ({"dist": "normal", "std": 1.0}, "mean"),
    ({"dist": "normal", "mean": 1.0}, "std"),
    ({"dist": "normal", "mean": 1.0, "std": -1.0}, "std"),
    ({"dist": "lognormal", "mean": 0.0, "sigma": 1.0}, "mean"),
    ({"dist": "lognormal", "mean": 10.0}, "sigma"),
    ({"dist": "lognormal", "mean": 10.0, "sigma": -0.1}, "sigma"),
    ({"dist": "lognormal", "mean": 10.0, "sigma": 1.0, "std": 1.0}, "std"),
    ({"dist": "fixed", "value": 3, "mean": 3.0}, "mean"),
    ({"dist": "empirical"}, "trace"),
    ({"dist": "lognormal", "mean": 10.0, "sigma": 1.0, "column": "prompt_tokens"}, "column"),
])
def test_invalid_config(kwargs, field):
    with pytest.raises(ConfigValueError) as exc:
        LengthConfig(**kwargs)
    assert exc.value.field == field


def test_empirical_resamples_the_given_values_and_clips():
    from sim.workload import TraceConfig
    cfg = LengthConfig("empirical", trace=TraceConfig("t.csv"), max=250)
    values = np.array([10, 20, 300])
    out = sample_lengths(cfg, 3000, rng(5), values)
    assert set(out.tolist()) == {10, 20, 250}
    # each value drawn about a third of the time
    assert np.count_nonzero(out == 10) == pytest.approx(1000, rel=0.1)


def test_empirical_without_values_is_a_bug_not_a_silent_default():
    from sim.workload import TraceConfig
    with pytest.raises(ValueError):
        sample_lengths(LengthConfig("empirical", trace=TraceConfig("t.csv")), 3, rng())
