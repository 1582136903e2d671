"""Fuzzing: random and mutated scenarios either run, with every request accounted for and the
invariants checked at every iteration, or fail with the project's own one-line error.

The normal suite runs a few dozen examples of each; the dedicated run takes thousands:

    LLMSIM_FUZZ_EXAMPLES=1000 python -m pytest -m fuzz tests/test_fuzz_scenarios.py
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import Scenario, simulate
from sim.errors import LlmsimError
from sim.scheduling import SCHEDULERS
from sim.cluster.router import ROUTERS

EXAMPLES = int(os.environ.get("LLMSIM_FUZZ_EXAMPLES", "40"))
# (the measured profile covers some models and TP degrees: the others fall back, with a warning)
pytestmark = [pytest.mark.fuzz,
              pytest.mark.filterwarnings("ignore::sim.cost.predictor.CalibrationWarning")]

BASE = {
    "model": "llama-3.1-8b",
    "hardware": "h100-sxm",
    "cluster": {"replicas": 2, "router": "round-robin"},
    "scheduler": {"name": "fcfs", "kv_blocks": 400},
    "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20.0}, "num_requests": 40,
                 "prompt_tokens": {"dist": "uniform", "min": 1, "max": 3000},
                 "output_tokens": {"dist": "uniform", "min": 1, "max": 400}},
    "simulation": {"check_invariants": True},
}

ARRIVALS = [{"kind": "poisson", "rate_rps": 30.0}, {"kind": "constant", "rate_rps": 15.0},
            {"kind": "gamma", "rate_rps": 25.0, "cv": 3.0}, {"kind": "burst"},
            {"kind": "closed_loop", "clients": 6}]
MODELS = ["llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b", "qwen3-30b-a3b", "llama-2-7b"]
HARDWARE = ["h100-sxm", "a100-80g-sxm", "h200-sxm", "mi300x", "l40s", "duplex-h100", "bankpim-h100",
            "gpu2x-h100"]


def _measured_profile() -> str:
    """A profile with synthetic measured vLLM tables (Llama-3.1-8B at TP 1 and 2 with a skew fit,
    Qwen3-30B-A3B's MoE block at TP 1), written once per test session."""
    sys.path.insert(0, str(Path(__file__).parent / "calibration"))
    from synthetic_vllm_tables import write_current

    from sim.calibration.llmservingsim import import_llmservingsim

    root = Path(tempfile.mkdtemp(prefix="llmsim-fuzz-"))
    for tp in (1, 2):
        write_current(root, tp=tp, skew=True)
    write_current(root, model="Qwen/Qwen3-30B-A3B", moe=True)
    out = root / "measured.yaml"
    import_llmservingsim(root / "perf" / "SYNTH", out, base="h100-sxm")
    return str(out)


HARDWARE.append(_measured_profile())


@st.composite
def valid_scenarios(draw) -> dict:
    data = copy.deepcopy(BASE)
    name = draw(st.sampled_from(sorted(SCHEDULERS)))
    sched = {"name": name, "kv_blocks": draw(st.integers(60, 3000)),
             "block_size": draw(st.sampled_from([1, 8, 16, 32])),
             "prefix_caching": draw(st.booleans()),
             "max_num_seqs": draw(st.integers(1, 64)),
             "preemption_mode": draw(st.sampled_from(["recompute", "swap"]))}
    sched["max_batched_tokens"] = draw(st.integers(sched["max_num_seqs"], 8192))
    if name == "fcfs":
        sched["chunked_prefill"] = draw(st.booleans())
    data["scheduler"] = sched
    data["model"] = draw(st.sampled_from(MODELS))
    data["hardware"] = draw(st.sampled_from(HARDWARE))
    data["cluster"] = {"replicas": draw(st.integers(1, 3)),
                       "router": draw(st.sampled_from(sorted(ROUTERS))),
                       "expert_parallel": draw(st.booleans())}
    if data["model"] == "mixtral-8x7b" or draw(st.booleans()):
        data["cluster"]["tensor_parallel"] = draw(st.sampled_from([2, 4]))
    data["workload"]["arrivals"] = draw(st.sampled_from(ARRIVALS))
    data["workload"]["num_requests"] = draw(st.integers(1, 40))
    data["workload"]["prompt_tokens"]["max"] = draw(st.integers(1, 6000))
    data["workload"]["output_tokens"]["max"] = draw(st.integers(1, 600))
    data["simulation"]["fast_forward"] = draw(st.booleans())
    if draw(st.booleans()):
        data["simulation"]["horizon_s"] = draw(st.floats(0.01, 30.0))
    if draw(st.booleans()):        # overload controls: aborts at boundaries, client retries
        data["overload"] = {
            "queue_deadline_s": draw(st.sampled_from([None, 0.05, 0.5, 3.0])),
            "token_gap_s": draw(st.sampled_from([None, 0.005, 0.02, 0.2])),
            "timeout_s": draw(st.sampled_from([None, 0.3, 5.0])),
            "retry": {"max_attempts": draw(st.integers(1, 4)),
                      "backoff_s": draw(st.sampled_from([0.0, 0.1]))}}
    data["seed"] = draw(st.integers(0, 2**31))
    return data


def check_result(result, n: int) -> None:
    s = result.summary
    assert s["requests_total"] == n
    assert s["requests_completed"] + s["requests_rejected"] + s["requests_running"] == n
    req = result.requests
    assert req["request_id"].is_unique and len(req) == n
    done = req[req["state"] == "completed"]
    assert (done["output_generated"] == done["output_tokens"]).all()
    # timestamps are monotone per request
    assert (done["first_scheduled_s"] >= done["arrival_s"]).all()
    assert (done["first_token_s"] >= done["first_scheduled_s"]).all()
    assert (done["finish_s"] >= done["first_token_s"]).all()
    rejected = req[req["state"] == "rejected"]
    assert (rejected["reject_reason"].str.len() > 0).all()
    # attempts: every retried request's earlier attempts were aborted, none counted as a request
    assert (req["attempts"] >= 1).all()
    retried = req[req["attempts"] > 1]
    assert (retried["abort_reason"].str.len() > 0).all()
    sent = retried[retried["arrival_s"].notna()]      # (else: to be resent after the horizon)
    assert (sent["first_arrival_s"] <= sent["arrival_s"]).all()
    aborted = rejected["reject_reason"].str.startswith("aborted: ")
    assert (rejected.loc[aborted, "abort_reason"].str.len() > 0).all()
    if (req["abort_reason"] != "").any():
        assert s["aborted_attempts"] == (req["attempts"] - 1).sum() + aborted.sum()


def run_or_own_error(data: dict) -> None:
    try:
        scenario = Scenario.from_dict(data, path="fuzz.yaml")
        result = simulate(scenario)
    except LlmsimError as exc:
        assert "\n" not in str(exc), "errors are one line"
        return
    n = data["workload"]["num_requests"]
    check_result(result, n)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_scenarios())
def test_random_valid_scenarios_run_with_invariants(data):
    run_or_own_error(data)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_scenarios())
def test_fast_forward_equals_stepping(data):
    """Decode fast-forward (with the decode cohort: sim/scheduling/cohort.py) changes nothing:
    the request table is identical to stepping every iteration, to the last bit."""
    runs = []
    for fast_forward in (True, False):
        data = copy.deepcopy(data)
        data["simulation"]["fast_forward"] = fast_forward
        try:
            runs.append(simulate(Scenario.from_dict(data, path="fuzz.yaml")))
        except LlmsimError:
            return              # an invalid combination: the other test checks the message
    ff, step = runs
    pd.testing.assert_frame_equal(ff.requests, step.requests, check_exact=True)
    assert ff.summary["iterations"] == step.summary["iterations"]
    assert ff.summary["energy_j"] == pytest.approx(step.summary["energy_j"], rel=1e-9)
    # a fast-forwarded row (several iterations) shows the batch and KV use that stepping shows
    # after its last iteration
    ends = []
    for result in (ff, step):
        it = result.iterations
        it = it.assign(iteration=it.groupby("replica")["num_iterations"].cumsum())
        ends.append(it[["replica", "iteration", "num_seqs", "kv_blocks_used", "waiting"]])
    rows = ends[0].merge(ends[1], on=["replica", "iteration"], how="left", suffixes=("", "_1"))
    for column in ("num_seqs", "kv_blocks_used", "waiting"):
        assert (rows[column] == rows[column + "_1"]).all(), column


# -- mutations: any field replaced by a value of another type or an out-of-range one ----------------

WEIRD = [None, -1, 0, 1.5, -0.5, "x", "", True, [], [1, 2], {}, {"a": 1}, 10**12, math.inf,
         math.nan, "fcfs", "poisson"]


def paths(data, prefix=()):
    for key, value in data.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from paths(value, prefix + (key,))


ALL_PATHS = list(paths(BASE)) + [("nonsense",), ("scheduler", "max_num_seq"),
                                 ("workload", "arrivals", "clients")]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_PATHS), st.sampled_from(WEIRD))
def test_mutated_scenarios_fail_cleanly(path, value):
    data = copy.deepcopy(BASE)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key), dict) else node
    node[path[-1]] = value
    run_or_own_error(data)
