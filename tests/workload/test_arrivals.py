import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.workload import ARRIVALS, ArrivalConfig

N = 20_000


def gaps(times: np.ndarray, start: float = 0.0) -> np.ndarray:
    return np.diff(np.concatenate([[start], times]))


def test_the_registry_is_what_the_config_accepts():
    """The kind is checked against ARRIVALS itself: a misspelt kind names the closest one."""
    with pytest.raises(ConfigValueError, match=r"known arrival kind .*did you mean 'poisson'"):
        ArrivalConfig("poison", rate_rps=1.0)


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


CONFIGS = {
    "poisson": {"rate_rps": 3.0},
    "constant": {"rate_rps": 3.0},
    "gamma": {"rate_rps": 3.0, "cv": 1.5},
    "burst": {},
    "piecewise": {"schedule": [[10.0, 3.0], [5.0, 0.0], [2.0, 20.0]]},
    "closed_loop": {"clients": 4, "think_time_s": 1.0},
    "diurnal": {"mean_rps": 3.0, "peak_to_trough": 4.0, "period_s": 60.0, "phase": 0.5},
}


def test_every_kind_has_a_test_config():
    assert set(CONFIGS) == set(ARRIVALS)


@pytest.mark.parametrize("kind", sorted(ARRIVALS))
def test_sorted_sized_and_deterministic(kind):
    cfg = ArrivalConfig(kind, start_s=1.0, **CONFIGS[kind])
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
    ({"kind": "piecewise"}, "schedule"),
    ({"kind": "piecewise", "schedule": []}, "schedule"),
    ({"kind": "piecewise", "schedule": [[10.0, 0.0]]}, "schedule"),         # never a request
    ({"kind": "piecewise", "schedule": [[0.0, 1.0]]}, "schedule"),
    ({"kind": "piecewise", "schedule": [[10.0, 1.0, 3.0]]}, "schedule"),
    ({"kind": "piecewise", "schedule": [[10.0, 1.0]], "rate_rps": 2.0}, "rate_rps"),
    ({"kind": "closed_loop"}, "clients"),
    ({"kind": "closed_loop", "clients": 0}, "clients"),
    ({"kind": "closed_loop", "clients": 2, "think_time_s": -1.0}, "think_time_s"),
    ({"kind": "closed_loop", "clients": 2, "rate_rps": 1.0}, "rate_rps"),
    ({"kind": "poisson", "rate_rps": 1.0, "clients": 3}, "clients"),
    ({"kind": "poisson", "rate_rps": 1.0, "think_time_s": 3.0}, "think_time_s"),
    ({"kind": "gamma", "rate_rps": 1.0, "schedule": [[1.0, 1.0]]}, "schedule"),
])
def test_invalid_config(kwargs, field):
    with pytest.raises(ConfigValueError) as exc:
        ArrivalConfig(**kwargs)
    assert exc.value.field == field


def test_burst_needs_no_rate():
    assert ArrivalConfig("burst").rate_rps is None


def test_piecewise_follows_the_schedule_and_repeats():
    # 100 s at 2/s, 50 s silent, 10 s at 50/s: 700 requests per 160 s pass
    cfg = ArrivalConfig("piecewise", schedule=[[100.0, 2.0], [50.0, 0.0], [10.0, 50.0]],
                        start_s=5.0)
    times = ARRIVALS["piecewise"](cfg, 7000, np.random.default_rng(3)) - 5.0
    phase = times % 160.0
    assert not np.any((phase >= 100.0) & (phase < 150.0))     # the pause has no arrivals
    passes = int(times[-1] // 160.0)
    assert passes >= 8                                         # the schedule repeated
    full = times < passes * 160.0
    per_pass_slow = np.count_nonzero(full & (phase < 100.0)) / passes
    per_pass_spike = np.count_nonzero(full & (phase >= 150.0)) / passes
    # Poisson counts: 200 +- 14 and 500 +- 22 per pass; over >= 8 passes well within 10%
    assert per_pass_slow == pytest.approx(200, rel=0.1)
    assert per_pass_spike == pytest.approx(500, rel=0.1)


def test_piecewise_within_segment_is_poisson():
    cfg = ArrivalConfig("piecewise", schedule=[[1000.0, 4.0]])
    g = gaps(ARRIVALS["piecewise"](cfg, N, np.random.default_rng(5)))
    assert g.mean() == pytest.approx(0.25, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.05)


def test_piecewise_with_a_tiny_rate_still_terminates_quickly():
    cfg = ArrivalConfig("piecewise", schedule=[[1.0, 0.001]])
    times = ARRIVALS["piecewise"](cfg, 50, np.random.default_rng(0))
    assert len(times) == 50 and times[-1] > 1000.0


def test_closed_loop_times_are_placeholders_at_start():
    cfg = ArrivalConfig("closed_loop", clients=2, start_s=3.0)
    assert ARRIVALS["closed_loop"](cfg, 4, np.random.default_rng(0)).tolist() == [3.0] * 4
