"""Autoscaling: replicas come and go, cold starts are paid, no request is lost."""

from __future__ import annotations

import math
from collections import deque
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.cluster.autoscaler import (AutoscalerConfig, cost_by_minute, queue_policy,
                                    rate_policy, replicas_over_time)
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.models import get_model
from sim.workload.arrivals import ArrivalConfig, arrival_times, diurnal_rate

# a quiet minute, a busy one, and quiet again: the fleet must grow and shrink
STEP_LOAD = {"kind": "piecewise", "schedule": [[60, 2], [60, 60], [300, 2]]}


def _scenario(autoscaler: dict | None = None, arrivals: dict | None = None,
              **sections) -> Scenario:
    data = {
        "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "cluster": {"replicas": 1, "router": "least-outstanding"},
        "scheduler": {"name": "fcfs", "max_num_seqs": 64, "max_batched_tokens": 4096},
        "workload": {"arrivals": arrivals or STEP_LOAD, "num_requests": 4000,
                     "prompt_tokens": {"dist": "uniform", "min": 200, "max": 2000},
                     "output_tokens": {"dist": "uniform", "min": 50, "max": 400}},
        "slo": {"ttft_s": 2.0},
        "autoscaler": {"policy": "queue", "min_replicas": 1, "max_replicas": 6,
                       "interval_s": 5, "target": 16, "provisioning_s": 20,
                       "scale_down_cooldown_s": 30, **(autoscaler or {})},
        "simulation": {"check_invariants": True},
    }
    data.update(sections)
    return Scenario.from_dict(data)


@pytest.fixture(scope="module")
def step_run():
    return simulate(_scenario())


def test_cold_start_by_hand():
    model = get_model("llama-3.1-8b")
    cfg = AutoscalerConfig(provisioning_s=20, weight_source="network")
    # 8.03B bf16 parameters (16.06 GB) over a 10 Gb/s store, after 20 s of provisioning
    assert cfg.cold_start_s(model.weight_bytes) == pytest.approx(
        20 + 8_030_261_248 * 2 / 1.25e9, rel=1e-12)
    assert AutoscalerConfig(load_bandwidth_gb_s=10).cold_start_s(20e9) == 60 + 2.0


def test_the_fleet_grows_and_shrinks_and_loses_nothing(step_run):
    s, fleet = step_run.summary, step_run.fleet
    auto = s["autoscaler"]
    assert auto["peak_replicas"] > 2 and auto["scale_events"] >= 2
    assert auto["cold_start_s"] == pytest.approx(20 + 8_030_261_248 * 2 / 5e9, rel=1e-9)
    assert set(fleet["state"]) == {"provisioning", "up", "draining", "off"}
    # every request ended, once
    req = step_run.requests
    assert (req["state"] == "completed").all() and req["request_id"].is_unique
    assert s["requests_completed"] == 4000
    # ramps: decided -> up one cold start later
    assert auto["ramp_s"] > 0 and not math.isnan(auto["slo_attainment_in_ramps"])


def _intervals(fleet: pd.DataFrame, replica: int, state: str) -> list[tuple[float, float]]:
    """[start, end) of each stretch the replica spent in ``state``."""
    rows = fleet[fleet["replica"] == replica].sort_values("time_s", kind="stable")
    out, start = [], None
    for t, st in zip(rows["time_s"], rows["state"]):
        if start is not None:
            out.append((start, t))
            start = None
        if st == state:
            start = t
    if start is not None:
        out.append((start, math.inf))
    return out


def test_requests_go_only_to_up_replicas_and_drained_ones_finish(step_run):
    req, fleet = step_run.requests, step_run.fleet
    for replica in sorted(set(fleet["replica"])):
        mine = req[req["replica"] == replica]
        up = _intervals(fleet, replica, "up")
        # routed (queued) only while up: arrival inside an up stretch
        inside = np.zeros(len(mine), dtype=bool)
        for a, b in up:
            inside |= (mine["arrival_s"] >= a).to_numpy() & (mine["arrival_s"] < b).to_numpy()
        assert inside.all(), replica
        # a drained replica turns off only once its last request has finished
        for a, b in _intervals(fleet, replica, "draining"):
            if b == math.inf:
                continue
            during = mine[(mine["arrival_s"] < a)]
            assert (during["finish_s"] <= b + 1e-9).all()


def test_cost_is_the_provisioned_time(step_run):
    s, events = step_run.summary, step_run.fleet_events
    end = s["simulated_duration_s"]
    series = replicas_over_time(events, end)
    times = np.append(series["time_s"], end)
    replica_s = float((np.diff(times) * series["provisioned"]).sum())
    price = load_device("h100-sxm").price_usd_per_hour      # per device-hour, TP 1
    assert s["cost_usd"] == pytest.approx(replica_s * price / 3600, rel=1e-9)
    assert s["autoscaler"]["replica_hours"] == pytest.approx(replica_s / 3600, rel=1e-9)
    assert cost_by_minute(events, end, price).sum() == pytest.approx(s["cost_usd"], rel=1e-9)
    # fewer replica-hours than the peak fleet kept up all along
    assert replica_s < s["autoscaler"]["peak_replicas"] * end


def test_cost_by_minute_by_hand():
    events = [(0.0, 0, "up"), (30.0, 1, "provisioning"), (90.0, 1, "up"), (150.0, 1, "off")]
    cost = cost_by_minute(events, 180.0, 3600.0)      # $1 per replica-second
    assert cost.tolist() == [60 + 30, 60 + 60, 60 + 30]


@pytest.mark.parametrize("policy, extra", [
    ("queue", {}),
    ("target-utilisation", {"target": 0.1, "metric": "kv"}),
    ("target-utilisation", {"target": 0.5, "metric": "running"}),
    ("slo", {"target": 0.5, "window_s": 20}),
    ("rate", {"target": 6, "window_s": 20}),
])
def test_fast_forward_equals_stepping(policy, extra):
    sets = {"policy": policy, **({"target": 16} if policy == "queue" else {}), **extra}
    fast = simulate(_scenario(sets))
    step = simulate(_scenario(sets, simulation={"fast_forward": False}))
    pd.testing.assert_frame_equal(fast.requests, step.requests)
    assert fast.fleet_events == step.fleet_events
    assert fast.summary["autoscaler"]["scale_events"] >= 1


def test_failures_while_the_fleet_changes_lose_nothing():
    run = simulate(_scenario(failures=[
        {"kind": "replica_down", "replica": 0, "at_s": 70, "duration_s": 40}]))
    assert (run.requests["state"] == "completed").all()
    assert run.summary["requests_rerouted"] >= 0


@pytest.mark.parametrize("change, field", [
    ({"min_replicas": 4, "max_replicas": 2}, "max_replicas"),
    ({"min_replicas": 2}, "cluster.replicas"),
    ({"policy": "magic"}, "policy"),
    ({"interval_s": 0}, "interval_s"),
    ({"policy": "target-utilisation", "target": 1.5}, "target"),
    ({"weight_source": "tape"}, "weight_source"),
    ({"provisioning_s": -1}, "provisioning_s"),
    ({"sample_s": 0}, "sample_s"),
    ({"panic_threshold": -1}, "panic_threshold"),
    ({"policy": "rate", "target": None}, "target"),
    ({"policy": "rate", "target": 5, "lookahead_s": -1}, "lookahead_s"),
])
def test_bad_autoscaler_settings_are_named(change, field):
    with pytest.raises(ScenarioError, match=field):
        _scenario(change)


def _queue_scaler(samples, up: int, provisioning: int = 0) -> SimpleNamespace:
    counts = {"up": up, "provisioning": provisioning}
    return SimpleNamespace(config=AutoscalerConfig(policy="queue", target=8),
                           outstanding=deque(samples), panic_until_s=-math.inf,
                           count=lambda state: counts.get(state, 0))


def test_queue_policy_averages_the_window_by_hand():
    # Knative's stable window: the mean of the samples, 20 requests, over 8 a replica: 3 (the
    # last 6 s want 3 too, under twice the 2 up replicas: no panic)
    scaler = _queue_scaler([(0.0, 10), (1.0, 20), (2.0, 30)], up=2)
    assert queue_policy(scaler, 2.0) == 3 and scaler.panic_until_s == -math.inf
    scaler.outstanding = deque([(2.0, 30)])       # the last sample alone: ceil(30 / 8)
    assert queue_policy(scaler, 2.0) == 4


def test_queue_policy_panics_on_a_burst_by_hand():
    # a minute at 8 outstanding, then 80 for the last 10 s: the stable mean is (50 x 8 + 10 x
    # 80) / 60 = 20 (3 replicas), but the last 6 s (t > 53) want ceil(80 / 8) = 10 >= 2 x 2 up:
    # panic, 10 replicas, and none fewer than the fleet until a window after (t = 119)
    burst = [(float(t), 8) for t in range(50)] + [(float(t), 80) for t in range(50, 60)]
    scaler = _queue_scaler(burst, up=2)
    assert queue_policy(scaler, 59.0) == 10 and scaler.panic_until_s == 119.0
    calm = _queue_scaler([(float(t), 8) for t in range(60, 100)], up=4, provisioning=6)
    calm.panic_until_s = scaler.panic_until_s
    assert queue_policy(calm, 99.0) == 10          # wants 1, keeps the 4 up + 6 starting
    assert queue_policy(calm, 120.0) == 1          # the panic is over


def test_queue_policy_reacts_to_the_window_not_a_moment():
    # a steady load: counts sampled every second and averaged over a minute hold the fleet
    # steadier (fewer scale events, fewer replicas held) than a count every 5 s alone (no
    # panic mode in either)
    steady = {"kind": "poisson", "rate_rps": 20}
    calm = {"target": 22, "panic_threshold": 1000}
    smooth = simulate(_scenario({**calm, "window_s": 60}, arrivals=steady))
    jumpy = simulate(_scenario({**calm, "window_s": 5, "sample_s": 5}, arrivals=steady))
    s, j = smooth.summary["autoscaler"], jumpy.summary["autoscaler"]
    assert s["scale_events"] < j["scale_events"] and s["mean_replicas"] < j["mean_replicas"]
    assert (smooth.requests["state"] == "completed").all()


def _rate_wanted(config: AutoscalerConfig, cold_start_s: float, arrived, until_s: float) -> int:
    """The rate policy's answer at ``until_s``, having sampled ``arrived(t)`` (arrivals by t)
    every interval from the start, as the autoscaler does."""
    scaler = SimpleNamespace(config=config, cold_start_s=cold_start_s,
                             arrived=deque([(0.0, 0)]), cluster=SimpleNamespace(arrived=0),
                             count=lambda state: 0)
    t = 0.0
    while t < until_s:
        t += config.interval_s
        scaler.cluster.arrived = arrived(t)
        wanted = rate_policy(scaler, t)
    return wanted


def test_rate_policy_forecasts_a_ramp_by_hand():
    # arrivals at 10 + 0.05 t per second: by t, 10 t + 0.025 t^2. At 600 s the rate is 40/s;
    # 45 s ahead, 42.25/s, which takes ceil(42.25 / 5) = 9 replicas of 5 req/s. The windows'
    # edges fall on the 15 s samples, so the straight line through them is exact.
    ramp = lambda t: 10 * t + 0.025 * t * t     # noqa: E731
    cfg = AutoscalerConfig(policy="rate", target=5, interval_s=15, window_s=60, lookahead_s=45)
    assert _rate_wanted(cfg, 0.0, ramp, 600) == 9
    # looking 0 s ahead: ceil(40 / 5) = 8; by default the cold start plus one interval ahead:
    # 45 + 15 s, 43/s, 9 replicas; 165 + 15 s: 49/s, 10 replicas
    assert _rate_wanted(AutoscalerConfig(policy="rate", target=5, interval_s=15,
                                         window_s=60, lookahead_s=0), 0.0, ramp, 600) == 8
    default = AutoscalerConfig(policy="rate", target=5, interval_s=15, window_s=60)
    assert _rate_wanted(default, 45.0, ramp, 600) == 9
    assert _rate_wanted(default, 165.0, ramp, 600) == 10
    # a steady rate: no trend, the rate over the target
    assert _rate_wanted(default, 165.0, lambda t: 12.5 * t, 900) == 3
    # a falling rate, 60 - 0.05 t: 30/s at 600 s, 21/s 180 s ahead; it keeps what the rate
    # needs now, ceil(30 / 5) = 6, not ceil(21 / 5) = 5
    assert _rate_wanted(default, 165.0, lambda t: 60 * t - 0.025 * t * t, 600) == 6


def test_rate_policy_scales_before_the_load_arrives():
    # a rising load: looking a cold start ahead, the fleet grows earlier than looking at now
    ramp = {"kind": "piecewise", "schedule": [[60, 4], [60, 12], [60, 20], [60, 28], [60, 36],
                                              [300, 2]]}
    sets = {"policy": "rate", "target": 6, "window_s": 30}

    def up_at(run, replicas):
        series = replicas_over_time(run.fleet_events, run.summary["simulated_duration_s"])
        return series["time_s"][np.argmax(series["provisioned"] >= replicas)]

    ahead = simulate(_scenario(sets, arrivals=ramp))
    now = simulate(_scenario({**sets, "lookahead_s": 0}, arrivals=ramp))
    assert up_at(ahead, 4) < up_at(now, 4)
    assert (ahead.requests["state"] == "completed").all()


def test_slo_policy_needs_a_ttft_target():
    with pytest.raises(ScenarioError, match="autoscaler.policy"):
        _scenario({"policy": "slo"}, slo={"tpot_s": 0.1})


# -- diurnal arrivals ----------------------------------------------------------------------------
def test_diurnal_arrivals_follow_the_day():
    cfg = ArrivalConfig(kind="diurnal", mean_rps=10, peak_to_trough=4, period_s=3600,
                        phase=0.75)
    t = arrival_times(cfg, 200_000, np.random.default_rng(3))
    assert np.all(np.diff(t) >= 0)
    # rate by hand at the trough (t = 0, phase 0.75) and the peak (half a period later):
    # mean x (1 -+ 3/5)
    assert diurnal_rate(cfg, 0.0) == pytest.approx(4.0)
    assert diurnal_rate(cfg, 1800.0) == pytest.approx(16.0)
    counts, edges = np.histogram(t, bins=24, range=(0, 3 * 3600))
    expected = [float(np.mean(diurnal_rate(cfg, np.linspace(a, b, 101)))) * (b - a)
                for a, b in zip(edges[:-1], edges[1:])]
    assert np.allclose(counts, expected, rtol=0.05)
    assert len(t) / t[-1] == pytest.approx(10, rel=0.02)


@pytest.mark.parametrize("fields, name", [
    ({"peak_to_trough": 4}, "mean_rps"),
    ({"mean_rps": 5, "peak_to_trough": 0.5}, "peak_to_trough"),
    ({"mean_rps": 5, "peak_to_trough": 2, "rate_rps": 5}, "rate_rps"),
    ({"mean_rps": 5, "peak_to_trough": 2, "period_s": 0}, "period_s"),
])
def test_bad_diurnal_settings_are_named(fields, name):
    with pytest.raises(ScenarioError, match=name):
        _scenario(arrivals={"kind": "diurnal", **fields})


@pytest.mark.parametrize("router", ["round-robin", "random", "least-kv-load", "prefix-aware",
                                    "session-affinity"])
def test_every_router_works_with_a_changing_fleet(router):
    run = simulate(_scenario(cluster={"replicas": 1, "router": router}))
    req, fleet = run.requests, run.fleet
    assert (req["state"] == "completed").all() and len(req) == 4000
    assert run.summary["autoscaler"]["peak_replicas"] > 1
    # nothing routed to a replica before it was first up
    first_up = fleet[fleet["state"] == "up"].groupby("replica")["time_s"].min()
    assert (req["arrival_s"].to_numpy() >= first_up.loc[req["replica"]].to_numpy()).all()
