"""Failure what-ifs (sim/cluster/failures.py): a lost replica's requests are re-routed or wait,
never lost; a straggler's iterations stretch exactly; fast-forward stays equal to stepping."""

import copy

import numpy as np
import pandas as pd
import pytest

import sim
from sim.errors import ScenarioError

BASE = {
    "name": "f", "seed": 7, "model": "llama-3.1-8b", "hardware": "h100-sxm",
    "cluster": {"replicas": 2, "router": "least-outstanding"},
    "scheduler": {"name": "fcfs", "max_num_seqs": 64},
    "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20}, "num_requests": 200,
                 "prompt_tokens": {"dist": "lognormal", "mean": 400, "sigma": 0.8, "max": 4000},
                 "output_tokens": {"dist": "lognormal", "mean": 150, "sigma": 0.8, "max": 1500}},
    "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
}
DOWN = {"kind": "replica_down", "replica": 0, "at_s": 3.0, "duration_s": 4.0}


def run(failures, fast_forward=True, **changes):
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        section, name = key.split("__")
        data[section][name] = value
    data["failures"] = failures
    data["simulation"] = {"fast_forward": fast_forward, "check_invariants": True}
    return sim.simulate(sim.Scenario.from_dict(data))


def test_no_failures_leaves_scenario_and_results_alone():
    plain = sim.Scenario.from_dict(BASE)
    assert plain.failures == () and "failures" not in plain.to_dict()
    a, b = sim.simulate(plain), run([])
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert "requests_rerouted" not in a.summary


@pytest.mark.parametrize("failure, field", [
    ({"kind": "replica_down", "replica": 2, "at_s": 1}, "failures[0].replica"),
    ({"kind": "straggler", "replica": 0, "at_s": 1}, "failures[0].factor"),
    ({"kind": "replica_down", "at_s": 1, "factor": 2.0}, "failures[0].factor"),
    ({"kind": "meteor", "at_s": 1}, "failures[0].kind"),
    ({"kind": "replica_down", "at_s": 1, "duration_s": 0}, "failures[0].duration_s"),
])
def test_bad_failures_name_the_field(failure, field):
    with pytest.raises(ScenarioError) as err:
        sim.Scenario.from_dict({**BASE, "failures": [failure]}, path="s.yaml")
    assert str(err.value).startswith(f"s.yaml: {field}: ")


def test_lost_replica_requests_are_rerouted_not_lost():
    result = run([DOWN])
    s, req, it = result.summary, result.requests, result.iterations
    assert s["requests_completed"] == 200 and s["requests_running"] == 0
    assert s["requests_rerouted"] > 0 and s["preemptions"] >= s["requests_rerouted"]
    assert req["preemptions"].sum() == s["preemptions"]
    # nothing runs on replica 0 while it is down; its last iteration before started earlier
    down = it[(it["replica"] == 0) & (it["start_s"] >= 3.0) & (it["start_s"] < 7.0)]
    assert down.empty
    assert (it.loc[it["replica"] == 0, "start_s"] >= 7.0).any()       # back to work after
    # rerouted requests kept their tokens: prefill work counts the prompt again (recompute)
    moved = req[req["preemptions"] > 0]
    assert (moved["recomputed_tokens"] > 0).any()
    assert 0 <= s["slo_attainment_during_failures"] <= 1


@pytest.mark.parametrize("failures", [
    [DOWN],
    [DOWN, {"kind": "replica_down", "replica": 1, "at_s": 4.0, "duration_s": 2.0}],
    [{"kind": "straggler", "replica": 1, "at_s": 2.0, "duration_s": 3.0, "factor": 3.0},
     {"kind": "straggler", "replica": 1, "at_s": 4.0, "factor": 1.5}],
])
def test_fast_forward_equals_stepping_with_failures(failures):
    a, b = run(failures, True), run(failures, False)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert a.summary["requests_completed"] == 200


def test_all_replicas_down_requests_wait_then_complete():
    result = run([DOWN], cluster__replicas=1)
    req, it = result.requests, result.iterations
    assert result.summary["requests_completed"] == 200
    assert it[(it["start_s"] >= 3.0) & (it["start_s"] < 7.0)].empty
    arrived_during = req[(req["arrival_s"] >= 3.0) & (req["arrival_s"] < 7.0)]
    assert len(arrived_during) and (arrived_during["first_scheduled_s"] >= 7.0).all()


def test_replica_lost_for_good_leaves_the_others_to_serve():
    result = run([{"kind": "replica_down", "replica": 0, "at_s": 2.0}])
    req = result.requests
    assert result.summary["requests_completed"] == 200
    assert (req.loc[req["finish_s"] > 2.0, "replica"] == 1).all()


def test_straggler_stretches_every_iteration_by_its_factor():
    one = {"workload__arrivals": {"kind": "constant", "rate_rps": 1.0},
           "workload__num_requests": 1, "cluster__replicas": 1}
    fast, slow = run([], **one), run([{"kind": "straggler", "replica": 0, "factor": 2.5}],
                                     **one)
    np.testing.assert_allclose(slow.iterations["duration_s"],
                               2.5 * fast.iterations["duration_s"], rtol=1e-12)
    np.testing.assert_allclose(slow.requests["e2e_s"], 2.5 * fast.requests["e2e_s"], rtol=1e-12)
