"""Overload controls (sim/scheduling/overload.py) on hand-built timelines: the queue deadline,
the token-gap abort, the client timeout and retries; aborts land on iteration boundaries, no
request is lost or counted twice, and fast-forward equals stepping with aborts on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.errors import ScenarioError


def scenario(overload: dict, requests: int = 3, prompt: int = 100, output: int = 400,
             fast_forward: bool = True, **scheduler) -> dict:
    return {"model": "llama-3.1-8b", "hardware": "h100-sxm", "seed": 1,
            "scheduler": {"name": "fcfs", "max_num_seqs": 1, **scheduler},
            "workload": {"arrivals": {"kind": "burst"}, "num_requests": requests,
                         "prompt_tokens": {"dist": "fixed", "value": prompt},
                         "output_tokens": {"dist": "fixed", "value": output}},
            "simulation": {"fast_forward": fast_forward, "check_invariants": True},
            "overload": overload}


def boundaries(result) -> np.ndarray:
    it = result.iterations
    return np.sort((it["start_s"] + it["duration_s"]).to_numpy())


def test_queue_deadline_aborts_at_the_first_boundary_after_it():
    """One request at a time: the two behind the first wait; at the first iteration boundary at
    or after arrival + 0.5 s they are aborted, having computed nothing."""
    r = simulate(Scenario.from_dict(scenario({"queue_deadline_s": 0.5})))
    req = r.requests.set_index("request_id")
    assert req.loc[0, "state"] == "completed"
    first_boundary = boundaries(r)[boundaries(r) >= 0.5][0]
    for i in (1, 2):
        assert req.loc[i, "state"] == "rejected"
        assert req.loc[i, "reject_reason"] == "aborted: queue deadline"
        assert req.loc[i, "finish_s"] == first_boundary
        assert req.loc[i, "wasted_tokens"] == 0 and req.loc[i, "attempts"] == 1
    s = r.summary
    assert s["requests_aborted"] == 2 and s["aborted_attempts"] == 2 and s["attempts"] == 3
    assert s["simulated_duration_s"] == req["finish_s"].max()


def test_retries_resend_after_the_backoff_until_attempts_run_out():
    r = simulate(Scenario.from_dict(scenario(
        {"queue_deadline_s": 0.5, "retry": {"max_attempts": 3, "backoff_s": 0.25}})))
    req = r.requests.set_index("request_id")
    assert (req["state"] == "completed").all() or req["attempts"].max() == 3
    retried = req[req["attempts"] > 1]
    assert len(retried) >= 1
    # the attempt that counts was sent at an abort time + backoff, after the first arrival
    assert (retried["first_arrival_s"] == 0.0).all()
    assert (retried["arrival_s"] > 0.5).all()
    assert np.isin(retried["arrival_s"] - 0.25, boundaries(r)).all()
    assert (retried["abort_reason"] == "queue deadline").all()
    total = r.summary["requests_completed"] + r.summary["requests_rejected"]
    assert total == 3 == len(req)              # counted once, whatever the attempts
    assert r.summary["attempts"] == int(req["attempts"].sum())


def test_token_gap_aborts_a_decode_slowed_by_a_long_prefill(tmp_path):
    """A decoding request shares an iteration with a 6,000-token prefill: its gap exceeds
    the limit, so it is aborted at that iteration's end and its KV freed; the request being
    prefilled, which has no token yet, is not."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,100,2000\n0.5,6000,10\n")
    data = scenario({"token_gap_s": 0.05}, max_num_seqs=4, max_batched_tokens=8192)
    data["workload"] = {"trace": {"path": str(trace)}}
    plain = simulate(Scenario.from_dict({**data, "overload": {}}))
    per_step = plain.iterations["duration_s"] / plain.iterations["num_iterations"]
    assert per_step.max() > 0.05 > per_step.min()          # only the long prefill's step
    r = simulate(Scenario.from_dict(data))
    short, long = r.requests.iloc[0], r.requests.iloc[1]
    assert short["reject_reason"] == "aborted: token gap"
    assert short["max_tpot_s"] > 0.05
    assert short["finish_s"] == long["first_token_s"]    # the end of the long prefill's step
    assert short["wasted_tokens"] == 100 + short["output_generated"]
    assert long["state"] == "completed" and long["abort_reason"] == ""


def test_timeout_aborts_running_requests_too():
    r = simulate(Scenario.from_dict(scenario({"timeout_s": 1.0}, requests=1, output=4000)))
    row = r.requests.iloc[0]
    assert row["reject_reason"] == "aborted: timeout"
    assert 1.0 <= row["finish_s"] < 1.0 + r.iterations["duration_s"].max() * 1.0001
    assert row["wasted_tokens"] == 100 + row["output_generated"] > 100


@pytest.mark.parametrize("name", ["fcfs", "aggressive", "past_future", "batchllm"])
def test_fast_forward_equals_stepping_with_aborts(name):
    overload = {"queue_deadline_s": 1.0, "token_gap_s": 0.04, "timeout_s": 8.0,
                "retry": {"max_attempts": 3, "backoff_s": 0.1}}
    runs = []
    for ff in (True, False):
        data = scenario(overload, requests=120, prompt=300, output=300, fast_forward=ff,
                        max_num_seqs=32, kv_blocks=600)
        data["scheduler"]["name"] = name
        data["workload"]["arrivals"] = {"kind": "poisson", "rate_rps": 40}
        data["workload"]["prompt_tokens"] = {"dist": "uniform", "min": 20, "max": 3000}
        data["workload"]["output_tokens"] = {"dist": "uniform", "min": 10, "max": 600}
        runs.append(simulate(Scenario.from_dict(data)))
    pd.testing.assert_frame_equal(runs[0].requests, runs[1].requests, check_exact=True)
    s = runs[0].summary
    assert s["aborted_attempts"] > 0
    assert s["requests_completed"] + s["requests_rejected"] + s["requests_running"] == 120


def test_bad_overload_values_are_one_line_errors():
    with pytest.raises(ScenarioError, match=r"overload.token_gap_s: expected a number > 0"):
        Scenario.from_dict(scenario({"token_gap_s": 0}))
    with pytest.raises(ScenarioError, match=r"overload.retry.max_attempts"):
        Scenario.from_dict(scenario({"retry": {"max_attempts": 0}}))
    with pytest.raises(ScenarioError, match=r"slo.goodput_tokens: expected output or "):
        Scenario.from_dict({**scenario({}), "slo": {"goodput_tokens": "all"}})


def test_goodput_can_count_prompt_tokens():
    base = scenario({}, requests=4)
    base["slo"] = {"ttft_s": 100.0}
    out = simulate(Scenario.from_dict(base)).summary
    both = simulate(Scenario.from_dict({**base, "slo": {"ttft_s": 100.0,
                                                        "goodput_tokens": "prompt+output"}}))
    ratio = both.summary["goodput_tokens_per_s"] / out["goodput_tokens_per_s"]
    assert ratio == pytest.approx((100 + 400) / 400)


def test_a_new_attempt_forgets_the_aborted_one_but_its_traces():
    from sim.workload.request import Request

    req = Request(3, 1.0, 100, 50)
    req.first_token_s, req.last_token_s, req.finish_s, req.max_token_gap_s = 1.5, 2.0, 2.5, 0.4
    req.abort_reason, req.wasted_tokens, req.replica = "token gap", 120, 1
    req.new_attempt(3.0)
    req.new_attempt(4.0)
    assert (req.attempts, req.arrival_s, req.first_arrival_s) == (3, 4.0, 1.0)
    assert (req.abort_reason, req.wasted_tokens) == ("token gap", 120)
    assert np.isnan([req.first_token_s, req.last_token_s, req.finish_s]).all()
    assert req.max_token_gap_s == 0.0 and req.replica == -1 and req.view is None
