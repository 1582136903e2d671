"""Past-Future and its baselines: the peak formula, the conditional sampler, the admission rules,
and that only the oracle can read true output lengths."""

import copy

import numpy as np
import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.memory.kv_cache import KVCache
from sim.scheduling import SCHEDULERS
from sim.scheduling.engine import Engine
from sim.scheduling.past_future import (PastFutureConfig, PastFutureScheduler,
                                        future_peak_tokens, remaining_tokens,
                                        sample_final_lengths)
from sim.scheduling.view import OracleView, RequestView
from sim.workload.request import Request

POLICIES = ["aggressive", "conservative", "past_future", "oracle"]


# -- the peak formula ------------------------------------------------------------------------------

def test_peak_formula_hand_example():
    # sorted by remaining: (a=20, b=100), (30, 50), (10, 5)
    # j=1: 1*100 + 20 = 120; j=2: 2*50 + 50 = 150; j=3: 3*5 + 60 = 75  -> 150
    assert future_peak_tokens(np.array([10, 20, 30]), np.array([5, 100, 50]))[0] == 150


def test_peak_formula_several_lists_and_single_request():
    held = np.array([[10, 20], [10, 20]])
    rem = np.array([[0, 0], [7, 1]])
    # list 1: nothing grows -> 30; list 2: (10,7),(20,1): max(7+10, 2*1+30) = 32
    assert list(future_peak_tokens(held, rem)) == [30, 32]
    assert future_peak_tokens(np.array([100]), np.array([40]))[0] == 140


def test_peak_never_below_current_use_nor_above_everyone_at_max():
    rng = np.random.default_rng(0)
    a = rng.integers(1, 1000, size=(50, 30)).astype(float)
    b = rng.integers(0, 1000, size=(50, 30)).astype(float)
    peak = future_peak_tokens(a, b)
    assert np.all(peak >= a.sum(axis=1))
    assert np.all(peak <= (a + b).sum(axis=1))


# -- the conditional sampler -----------------------------------------------------------------------

def test_conditional_sampler_interpolates_over_longer_history():
    hist = np.array([10.0, 20.0, 30.0, 40.0])
    # d = 25: S = [25, 30, 40, 50] (max output 50 appended), |S| - 1 = 3
    d = np.full(3, 25.0)
    got = sample_final_lengths(hist, d, 50, np.array([0.0, 0.5, 0.9]))
    # u=0 -> 25; u=0.5 -> p=1.5 -> 30 + 0.5*(40-30) = 35; u=0.9 -> p=2.7 -> 40 + 0.7*10 = 47
    assert got == pytest.approx([25.0, 35.0, 47.0])


def test_conditional_sampler_exceeds_what_was_generated():
    rng = np.random.default_rng(1)
    hist = np.sort(rng.integers(1, 4096, 200).astype(float))
    d = rng.integers(0, 4096, 1000).astype(float)
    u = rng.random(1000)
    L = sample_final_lengths(hist, d, 4096, u)
    assert np.all(L >= d)
    assert np.all(L[(u > 0) & (d < 4096)] > d[(u > 0) & (d < 4096)])
    assert np.all(L <= np.maximum(4096, d))


def test_conditional_sampler_past_every_value_keeps_d():
    got = sample_final_lengths(np.array([10.0, 20.0]), np.array([60.0]), 50, np.array([0.7]))
    assert got[0] == 60.0


def test_remaining_tokens_rule():
    # b = max(0, min(max_out, max(d, L)) - d - 1), with d >= 1
    got = remaining_tokens(np.array([100.0, 5000.0, 3.0, 50.0]), np.array([10.0, 10.0, 10.0, 0.0]),
                           np.array([4096.0, 4096.0, 4096.0, 4096.0]))
    assert list(got) == [89.0, 4085.0, 0.0, 48.0]


def test_history_starts_pessimistic_and_learns():
    cfg = PastFutureConfig(window=6, max_new_tokens=1000)
    s = PastFutureScheduler(cfg, KVCache(100, 1))
    assert list(s.history) == [1000, 1000, 1000]
    for n in (5, 6, 7, 8):
        v = RequestView(Request(n, 0.0, 10, n))
        v.output_generated = n
        s.on_finish(v)
    assert list(s.history) == [1000, 1000, 5, 6, 7, 8]
    assert list(s.history_sorted()) == [5, 6, 7, 8, 1000, 1000]


# -- nobody but the oracle sees the future ---------------------------------------------------------

def test_view_has_no_output_length():
    req = Request(1, 0.0, 100, 42)
    view = RequestView(req)
    assert not hasattr(view, "output_tokens")
    with pytest.raises(AttributeError):
        view.output_tokens = 42          # slots: it cannot even be attached
    assert OracleView(req).output_tokens == 42


@pytest.mark.parametrize("name", ["fcfs"] + POLICIES)
def test_only_the_oracle_gets_true_lengths(name):
    cls = SCHEDULERS[name]
    engine = Engine(cls(cls.Config(), KVCache(1000, 16)))
    req = Request(7, 0.0, 100, 42)
    engine.add_request(req)
    view = engine.waiting.peek()
    assert (type(view) is OracleView) == (name == "oracle")
    assert hasattr(view, "output_tokens") == (name == "oracle")


# -- behaviour under memory pressure ---------------------------------------------------------------

BASE = {"model": "llama-2-7b", "hardware": "a100-80g-sxm", "seed": 5,
        "scheduler": {"name": "x", "kv_blocks": 20000, "block_size": 1, "prefix_caching": False,
                      "max_num_seqs": 512, "max_batched_tokens": 8192},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 4}, "num_requests": 300,
                     "prompt_tokens": {"dist": "uniform", "min": 32, "max": 2000},
                     "output_tokens": {"dist": "uniform", "min": 32, "max": 1500}},
        "simulation": {"check_invariants": True}}


def run(name, **sim):
    data = copy.deepcopy(BASE)
    data["scheduler"]["name"] = name
    data["simulation"].update(sim)
    return simulate(Scenario.from_dict(data))


@pytest.fixture(scope="module")
def results():
    return {name: run(name) for name in POLICIES}


def test_conservative_never_evicts_and_aggressive_does(results):
    assert results["conservative"].summary["preemptions"] == 0
    assert results["aggressive"].summary["preemptions"] > 20
    assert results["oracle"].summary["preemptions"] == 0


def test_past_future_uses_memory_better_than_conservative(results):
    pf, cons = results["past_future"].summary, results["conservative"].summary
    assert pf["kv_usage_mean"] > cons["kv_usage_mean"] + 0.15
    assert pf["preemptions"] < results["aggressive"].summary["preemptions"] / 4
    for s in (pf, cons):
        assert s["requests_completed"] == 300


@pytest.mark.parametrize("name", POLICIES)
def test_fast_forward_equals_stepping(name, results):
    stepped = run(name, fast_forward=False)
    pd.testing.assert_frame_equal(results[name].requests, stepped.requests)


def test_admission_waits_for_the_round():
    """A request arriving while a batch decodes is considered only every max_wait_tokens."""
    cls = SCHEDULERS["conservative"]
    engine = Engine(cls(cls.Config(max_wait_tokens=4, max_new_tokens=50), KVCache(10_000, 1)))
    first = Request(0, 0.0, 10, 40)
    engine.add_request(first)
    plan = engine.schedule(0.0)
    assert [v.id for v in plan.requests] == [0] and plan.admitted == 1
    engine.complete_iteration(plan, 1.0)              # iteration 1 done (round at 0)
    engine.add_request(Request(1, 1.0, 10, 40))
    admitted_at = None
    for it in range(1, 10):
        plan = engine.schedule(float(it))
        if plan.admitted:
            admitted_at = engine.scheduler.num_iterations
            break
        assert plan.stable and plan.stable_steps == 4 - it and not plan.wake_on_arrival
        engine.complete_iteration(plan, it + 1.0)
    assert admitted_at == 4


def test_conservative_reserves_the_maximum_output():
    cls = SCHEDULERS["conservative"]
    # 1000 tokens: each request reserves 100 prompt + 400 output - 1 = 499
    engine = Engine(cls(cls.Config(max_new_tokens=400), KVCache(1000, 1)))
    for i in range(3):
        engine.add_request(Request(i, 0.0, 100, 10))
    plan = engine.schedule(0.0)
    assert [v.id for v in plan.requests] == [0, 1]       # the third would need 1497 > 1000
    assert engine.kv.num_used == 200                     # yet only prompts are in memory


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lone_request_is_admitted_whatever_the_policy_reserves(policy):
    """A request whose reservation (conservative: prompt + 4096 output tokens) exceeds the
    capacity is still served when the replica is idle, instead of waiting for ever."""
    result = simulate(Scenario.from_dict({
        "name": "lone", "seed": 0, "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "scheduler": {"name": policy, "kv_blocks": 60, "block_size": 16},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 1.0}, "num_requests": 3,
                     "prompt_tokens": {"dist": "fixed", "value": 100},
                     "output_tokens": {"dist": "fixed", "value": 20}}}))
    assert result.summary["requests_completed"] == 3
    assert result.summary["preemptions"] == 0


# -- the Past-Future artifact's server options -----------------------------------------------------

def test_admission_rounds_admit_at_most_max_admit_per_round():
    cls = SCHEDULERS["past_future"]
    engine = Engine(cls(cls.Config(max_admit_per_round=1, max_wait_tokens=2, max_new_tokens=50),
                        KVCache(100_000, 1)))
    for i in range(3):
        engine.add_request(Request(i, 0.0, 10, 40))
    admitted = []
    for it in range(6):
        plan = engine.schedule(float(it))
        admitted.append(plan.admitted)
        engine.complete_iteration(plan, it + 1.0, float(it))
    assert admitted[:5] == [1, 0, 1, 0, 1]      # one at the empty batch, then one per round


def test_conservative_can_reserve_a_fixed_output_whatever_is_stated():
    cls = SCHEDULERS["conservative"]
    engine = Engine(cls(cls.Config(reserve_output_tokens=450), KVCache(1000, 1)))
    for i in range(3):            # each states 10 output tokens; 100 + 450 - 1 reserved each
        engine.add_request(Request(i, 0.0, 100, 10, max_new_tokens=10))
    assert [v.id for v in engine.schedule(0.0).requests] == [0]


def test_past_future_history_start_and_paused_tokens_options():
    cls = SCHEDULERS["past_future"]
    sched = cls(cls.Config(window=40, history_init_tokens=6000), KVCache(10_000, 1))
    assert list(sched.history) == [6000] * 20
    # a paused request (preempted, its KV dropped) comes off the limit unless told otherwise
    for subtract in (True, False):
        sched = cls(cls.Config(subtract_paused=subtract), KVCache(10_000, 1))
        paused = RequestView(Request(9, 0.0, 1000, 10))
        paused.preemptions = 1
        sched.waiting.push(paused)
        limit = sched.admission_limit_tokens(RequestView(Request(1, 0.0, 10, 10)))
        assert limit == 10_000 * 0.95 - (1000 if subtract else 0)


def test_stated_output_lengths_reach_the_scheduler():
    data = copy.deepcopy(BASE)
    data["scheduler"]["name"] = "past_future"
    data["workload"]["num_requests"] = 20
    data["workload"]["state_output_tokens"] = True
    from sim.workload import build_workload
    sc = Scenario.from_dict(data)
    workload = build_workload(sc.workload, np.random.default_rng(0))
    assert all(r.max_new_tokens == r.output_tokens for r in workload.requests())


def test_newest_arrival_is_paused_before_the_decode_when_memory_runs_short():
    """LightLLM's router pauses the newest arrival (highest id) before the iteration; vLLM's
    victim would be the most recently admitted."""
    from sim.scheduling.base import BatchPlan

    cls = SCHEDULERS["aggressive"]
    sched = cls(cls.Config(evict="newest_arrival"), KVCache(10, 1))
    for i in (9, 2, 5):                     # admitted in this order: 5 is the newest admitted
        view = RequestView(Request(i, 0.0, 2, 10))
        assert sched.kv.allocate(view, 3)   # 3 blocks each, all full: each decode needs one
        view.num_computed_tokens, view.output_generated = 3, 1
        sched.running.append(view)
    plan = BatchPlan()
    sched.make_room_for_decodes(plan)       # 3 needed, 1 free: pausing 9 frees 3
    assert [v.id for v in plan.preempted] == [9]
    assert [v.id for v in sched.running] == [2, 5] and sched.kv.num_free == 4
    assert sched.waiting.peek().id == 9


def test_newest_arrival_eviction_fast_forward_equals_stepping():
    runs = []
    for ff in (True, False):
        data = copy.deepcopy(BASE)
        data["scheduler"].update(name="aggressive", evict="newest_arrival", kv_blocks=8000)
        data["workload"]["num_requests"] = 120
        data["simulation"]["fast_forward"] = ff
        runs.append(simulate(Scenario.from_dict(data)))
    pd.testing.assert_frame_equal(runs[0].requests, runs[1].requests, check_exact=True)
    assert runs[0].summary["preemptions"] > 0
