import typing

import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.workload import ARRIVALS, ArrivalConfig

N = 20_000


def gaps(times: np.ndarray, start: float = 0.0) -> np.ndarray:
    return np.diff(np.concatenate([[start], times]))


def test_registry_matches_config_kinds():
    kinds = typing.get_args(typing.get_type_hints(ArrivalConfig)["kind"])
    assert set(ARRIVALS) == set(kinds)


def test_poisson_mean_gap_and_cv():
    times = ARRIVALS["poisson"](ArrivalConfig("poisson", rate_rps=4.0), N, np.random.default_rng(1))
    g = gaps(times)
    # standard error of the mean gap: 0.25 / sqrt(20000) ~ 0.0018
    assert g.mean() == pytest.approx(0.25, abs=0.01)
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.05)
    assert times[0] > 0.0           # the first arrival comes one gap after start


def test_constant_is_exact():
    times = ARRIVALS["constant"](ArrivalConfig("constant", rate_rps=2.0, start_s=3.0), 4,
                                 np.random.default_rng(0))
    assert times.tolist() == [3.0, 3.5, 4.0, 4.5]
    assert times.dtype == np.float64


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_mean_and_cv(cv):
    times = ARRIVALS["gamma"](ArrivalConfig("gamma", rate_rps=10.0, cv=cv), N,
                              np.random.default_rng(2))
    g = gaps(times)
    assert g.mean() == pytest.approx(0.1, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.08)


def test_burst_all_at_start():
    times = ARRIVALS["burst"](ArrivalConfig("burst", start_s=7.0), 5, np.random.default_rng(0))
    assert times.tolist() == [7.0] * 5


@pytest.mark.parametrize("kind", sorted(ARRIVALS))
def test_sorted_sized_and_deterministic(kind):
    cfg = ArrivalConfig(kind, rate_rps=3.0, cv=1.5, start_s=1.0)
    a = ARRIVALS[kind](cfg, 1000, np.random.default_rng(42))
    b = ARRIVALS[kind](cfg, 1000, np.random.default_rng(42))
    assert len(a) == 1000 and a.dtype == np.float64
    assert np.all(np.diff(a) >= 0)
    assert a.min() >= 1.0
    np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    cfg = ArrivalConfig("poisson", rate_rps=3.0)
    a = ARRIVALS["poisson"](cfg, 10, np.random.default_rng(1))
    b = ARRIVALS["poisson"](cfg, 10, np.random.default_rng(2))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "poisson"}, "rate_rps"),
    ({"kind": "constant", "rate_rps": 0.0}, "rate_rps"),
    ({"kind": "gamma", "rate_rps": 1.0, "cv": 0.0}, "cv"),
    ({"kind": "poisson", "rate_rps": 1.0, "start_s": -1.0}, "start_s"),
    ({"kind": "burst", "rate_rps": -1.0}, "rate_rps"),
])
def test_invalid_config(kwargs, field):
    with pytest.raises(ConfigValueError) as exc:
        ArrivalConfig(**kwargs)
    assert exc.value.field == field


def test_burst_needs_no_rate():
    assert ArrivalConfig("burst").rate_rps is None
