"""Closed-loop arrivals in the cluster: at most N requests in flight, think times, rejections,
the horizon, sessions kept by one client, and fast-forward still exactly equal to stepping."""

import math

import numpy as np
import pandas as pd
import pytest

import sim

LENGTHS = {
    "prompt_tokens": {"dist": "lognormal", "mean": 600, "sigma": 1.0, "max": 4000},
    "output_tokens": {"dist": "lognormal", "mean": 150, "sigma": 1.0, "max": 1500},
}


def scenario(workload: dict, fast_forward=True, replicas=2, **sections) -> sim.Scenario:
    data = {"name": "closed", "seed": 3, "model": "llama-3.1-8b", "hardware": "h100-sxm",
            "cluster": {"replicas": replicas, "router": "least-outstanding"},
            "workload": workload,
            "simulation": {"fast_forward": fast_forward, "check_invariants": True}}
    data.update(sections)
    return sim.Scenario.from_dict(data)


def closed(clients, think=0.0, n=240, **extra):
    return {"arrivals": {"kind": "closed_loop", "clients": clients, "think_time_s": think},
            "num_requests": n, **LENGTHS, **extra}


def max_in_flight(requests: pd.DataFrame) -> int:
    # an end at t frees its client before an arrival at t counts
    events = sorted([(t, 1) for t in requests.arrival_s] + [(t, -1) for t in requests.finish_s])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("clients, think", [(1, 0.0), (6, 0.0), (6, 0.7)])
def test_at_most_n_in_flight_and_all_complete(clients, think):
    result = sim.simulate(scenario(closed(clients, think)))
    r = result.requests
    assert result.summary["requests_completed"] == 240
    assert max_in_flight(r) == clients          # never more, and the clients do fill up
    assert r.arrival_s.min() == 0.0
    assert (r.arrival_s == 0.0).sum() == clients    # every client starts at t = 0


@pytest.mark.parametrize("think", [0.0, 0.3])
def test_fast_forward_equals_stepping(think):
    a = sim.simulate(scenario(closed(5, think), fast_forward=True)).requests
    b = sim.simulate(scenario(closed(5, think), fast_forward=False)).requests
    pd.testing.assert_frame_equal(a, b)


def test_one_client_sends_after_the_end_plus_think_time():
    r = sim.simulate(scenario(closed(1, think=0.25, n=30))).requests.sort_values("arrival_s")
    np.testing.assert_array_equal(r.arrival_s.to_numpy()[1:], r.finish_s.to_numpy()[:-1] + 0.25)
    assert r.request_id.tolist() == list(range(30))      # the next request in workload order


def test_a_rejected_request_frees_its_client_at_once(tmp_path):
    path = tmp_path / "t.csv"
    # 200k tokens exceed llama-3.1-8b's context: rejected on arrival
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,5\n0,200000,5\n0,100,5\n")
    workload = {"trace": {"path": str(path)},
                "arrivals": {"kind": "closed_loop", "clients": 1, "think_time_s": 1.0}}
    r = sim.simulate(scenario(workload, replicas=1)).requests
    assert r.state.tolist() == ["completed", "rejected", "completed"]
    first_end = r.finish_s[0]
    assert r.arrival_s[1] == first_end + 1.0 and r.finish_s[1] == r.arrival_s[1]
    assert r.arrival_s[2] == r.arrival_s[1] + 1.0


def test_horizon_reports_requests_never_sent():
    result = sim.simulate(scenario(closed(2, n=200), simulation={"horizon_s": 5.0}))
    s, r = result.summary, result.requests
    assert s["requests_total"] == 200
    assert s["requests_completed"] + s["requests_rejected"] + s["requests_running"] == 200
    unsent = r[r.arrival_s.isna()]
    assert len(unsent) > 0 and (unsent.replica == -1).all()
    assert max_in_flight(r[r.arrival_s.notna()].fillna({"finish_s": math.inf})) <= 2


def test_sessions_stay_with_one_client_and_hit_the_prefix_cache():
    workload = closed(3, think=0.5, n=60, sessions={"turns": {"dist": "fixed", "value": 4}})
    on = sim.simulate(scenario(workload, replicas=1)).requests
    off = sim.simulate(scenario(workload, replicas=1,
                                scheduler={"prefix_caching": False})).requests
    assert off.cached_prompt_tokens.sum() == 0
    on = on.sort_values("request_id")
    for _, turns in on.groupby(on.request_id // 4):        # session s = requests 4s .. 4s+3
        t = turns.sort_values("request_id")
        # each turn is sent after the previous one ended, plus the think time
        np.testing.assert_allclose(t.arrival_s.to_numpy()[1:],
                                   t.finish_s.to_numpy()[:-1] + 0.5)
        # a later turn hits exactly the full 16-token blocks of the previous turn's prompt (the
        # previous answer was never cached: the engine caches prompt blocks only)
        prompts = t.prompt_tokens.to_numpy()
        np.testing.assert_array_equal(t.cached_prompt_tokens.to_numpy()[1:],
                                      prompts[:-1] // 16 * 16)
        assert t.cached_prompt_tokens.iloc[0] == 0         # sessions share nothing


def test_an_arrival_at_the_instant_an_iteration_ends_waits_for_it_as_when_stepping():
    """Two identical replicas end iterations at the same instants; a client whose request
    finished on one sends its next at once, exactly when the other's iteration ends. Stepping
    ends that iteration first (its event was scheduled earlier), so the request starts one
    iteration later; fast-forward must cut its decode run the same way (found by fuzzing)."""
    data = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "seed": 0,
            "cluster": {"replicas": 2, "router": "round-robin"},
            "scheduler": {"name": "fcfs", "kv_blocks": 60, "block_size": 1,
                          "prefix_caching": False, "max_num_seqs": 4, "max_batched_tokens": 23,
                          "chunked_prefill": False},
            "workload": {"arrivals": {"kind": "closed_loop", "clients": 6}, "num_requests": 7,
                         "prompt_tokens": {"dist": "uniform", "min": 1, "max": 1},
                         "output_tokens": {"dist": "uniform", "min": 1, "max": 25}}}
    results = []
    for fast_forward in (True, False):
        data["simulation"] = {"fast_forward": fast_forward}
        results.append(sim.simulate(sim.Scenario.from_dict(data)).requests)
    late = results[1].set_index("request_id").loc[6]
    assert late["first_scheduled_s"] > late["arrival_s"]        # the tie this test is about
    pd.testing.assert_frame_equal(results[0], results[1], check_exact=True)
