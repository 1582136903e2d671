"""BatchLlmScheduler driven by hand through an Engine (no SimPy), then end to end.

Block size 4 throughout; a request's prompt is its prefix ids (4 tokens each) plus a suffix that
carries no ids (content no other request has).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from sim.cluster.cluster import Cluster, resolve
from sim.config import ConfigValueError
from sim.memory.kv_cache import KVCache
from sim.scenario import Scenario
from sim.scheduling import SCHEDULERS
from sim.scheduling.base import Scheduler
from sim.scheduling.batchllm import BatchLlmConfig, BatchLlmScheduler
from sim.scheduling.engine import Engine
from sim.scheduling.view import RequestView
from sim.workload.request import Request, RequestStatus
from sim.workload.workload import Workload

BS = 4


def make(num_blocks: int = 100, **cfg) -> Engine:
    cfg.setdefault("block_size", BS)
    cfg.setdefault("default_max_new_tokens", 3)
    return Engine(BatchLlmScheduler(BatchLlmConfig(**cfg), KVCache(num_blocks, BS)))


def req(i: int, prefix=(), suffix: int = 4, output: int = 3, arrival: float = 0.0,
        max_new: int | None = None) -> Request:
    ids = tuple(prefix)
    return Request(id=i, arrival_s=arrival, prompt_tokens=len(ids) * BS + suffix,
                   output_tokens=output, prefix_hashes=ids or None, prefix_block_tokens=BS,
                   max_new_tokens=max_new)


def check(e: Engine, plan=None) -> None:
    s: BatchLlmScheduler = e.scheduler
    s.kv.check(s.kv_holders())
    assert not {id(r) for r in s.running} & {id(r) for r in s.waiting}
    assert len(s.running) <= s.config.max_num_seqs
    for view in list(s.running) + list(s.waiting):
        assert type(view) is RequestView and not hasattr(view, "output_tokens")
    if plan is not None:
        # chunks count against the budget, decodes do not (nor need they fit in it)
        chunks = sum(q for q in plan.num_new_tokens if q > 1)
        assert chunks <= plan.batched_tokens <= s.config.max_batched_tokens


def step(e: Engine, now: float):
    plan = e.schedule(now)
    check(e, plan)
    finished = e.complete_iteration(plan, now + 1.0)
    check(e)
    return plan, finished


def entries(plan) -> list[tuple[int, int, int]]:
    return list(zip([r.id for r in plan.requests], plan.num_new_tokens, plan.computed_before))


def run_all(e: Engine, limit: int = 200) -> list:
    plans = []
    t = 0.0
    while e.has_work and t < limit:
        plans.append(step(e, t)[0])
        t += 1.0
    assert not e.has_work
    return plans


# -- configuration -------------------------------------------------------------------------------

def test_config_validation():
    assert BatchLlmConfig().max_batched_tokens == 2048
    for bad in ({"chunked_prefill": False}, {"prefix_caching": False}, {"kv_usage_cap": 0.0},
                {"kv_usage_cap": 1.5}, {"default_max_new_tokens": 0},
                {"batch_window_s": -1.0}, {"batch_window_s": float("nan")}):
        with pytest.raises(ConfigValueError):
            BatchLlmConfig(**bad)
    BatchLlmConfig(batch_window_s=float("inf"))


def test_scenario_section_validates_against_its_config(monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "batchllm", BatchLlmScheduler)
    sc = Scenario.from_dict(scenario_dict({"kv_usage_cap": 0.8, "batch_window_s": 2.0}))
    assert isinstance(sc.scheduler, BatchLlmConfig) and sc.scheduler.kv_usage_cap == 0.8


def test_scheduler_sees_views_without_output_lengths():
    e = make()
    r = req(0, (1, 2), output=5)
    e.add_request(r)
    view = e.waiting.peek()
    assert BatchLlmScheduler.view_type is RequestView
    assert type(view) is RequestView and not hasattr(view, "output_tokens")
    run_all(e)          # check() asserts the same of every view at every step
    assert r.output_generated == 5 and r.status == RequestStatus.FINISHED_COMPLETED


# -- the shared prefix: computed once, pinned, read once -----------------------------------------

def test_prefix_is_prefilled_once_then_members_hit_it():
    e = make(max_batched_tokens=16)
    group = [req(i, (1, 2, 3)) for i in range(3)]       # 12 shared + 4 own tokens each
    for r in group:
        e.add_request(r)
    plan, _ = step(e, 0.0)
    # the first member alone (the budget ends with it); its allocation registers the prefix
    assert entries(plan) == [(0, 16, 0)]
    plan, _ = step(e, 1.0)
    assert entries(plan) == [(0, 1, 16), (1, 4, 12), (2, 4, 12)]
    assert plan.shared_kv_tokens == 0                   # one decode only
    plan, _ = step(e, 2.0)
    assert entries(plan) == [(0, 1, 17), (1, 1, 16), (2, 1, 16)]
    assert plan.shared_kv_tokens == 2 * 12              # three members read 12 keys once
    assert plan.stable
    run_all(e)
    assert [r.prefill_tokens_computed for r in group] == [16, 4, 4]
    assert [r.cached_prompt_tokens for r in group] == [0, 12, 12]


def test_members_wait_while_the_prefix_is_computed():
    e = make(max_batched_tokens=8)
    for i in range(3):
        e.add_request(req(i, (1, 2, 3)))
    plan, _ = step(e, 0.0)
    assert entries(plan) == [(0, 8, 0)]                 # 8 of the 12 prefix tokens
    plan, _ = step(e, 1.0)
    # the prefix is complete after this chunk: members may be admitted behind it
    assert entries(plan) == [(0, 8, 8)]
    plan, _ = step(e, 2.0)
    assert entries(plan) == [(0, 1, 16), (1, 4, 12), (2, 4, 12)]


def test_prefix_is_pinned_until_the_last_member_finishes():
    # one request at a time: member 0 finishes before member 1 is admitted
    e = make(num_blocks=8, max_num_seqs=1)
    a, b = req(0, (1, 2), output=1), req(1, (1, 2), output=1)
    e.add_request(a)
    e.add_request(b)
    s = e.scheduler
    step(e, 0.0)
    assert a.status == RequestStatus.FINISHED_COMPLETED and b.status == RequestStatus.WAITING
    prefix = s.kv.get_computed_blocks(b.view)
    assert len(prefix) == 2 and all(blk.ref_cnt == 1 for blk in prefix)   # the pin's reference
    assert s.kv.num_free == 6                           # pinned blocks are not evictable
    # take every free block: LRU would evict an unpinned prefix; this one stays
    filler = RequestView(req(99, suffix=24))
    assert s.kv.allocate(filler, 24)
    assert s.kv.get_computed_blocks(b.view) == prefix
    s.kv.free(filler)
    plan, _ = step(e, 1.0)
    assert entries(plan) == [(1, 4, 8)]                 # b hit the pinned prefix
    assert s.kv.num_free == 8 and s.kv_holders() == []  # pin released after the last member
    assert all(blk.ref_cnt == 0 for blk in prefix)
    assert s.kv.get_computed_blocks(RequestView(req(2, (1, 2)))) == prefix   # still cached


def test_shared_keys_count_decoding_members_per_group():
    e = make(max_batched_tokens=64)
    for i in range(3):
        e.add_request(req(i, (1, 2, 3)))                # group A: 12 shared
    for i in range(3, 5):
        e.add_request(req(i, (7, 8)))                   # group B: 8 shared
    e.add_request(req(5, suffix=8))                     # no ids: alone
    step(e, 0.0)
    plan, _ = step(e, 1.0)
    assert all(q == 1 for q in plan.num_new_tokens) and len(plan.requests) == 6
    assert plan.shared_kv_tokens == 2 * 12 + 1 * 8


# -- ordering, budget, memory --------------------------------------------------------------------

def test_groups_ordered_by_expected_decode_over_prompt():
    e = make(max_batched_tokens=1000, default_max_new_tokens=50)
    e.add_request(req(0, (1, 2, 3), max_new=10))        # 10 / 16: 0.625
    e.add_request(req(1, (1, 2, 3), max_new=10))
    e.add_request(req(2, (5, 6, 7)))                    # default 50 / 16: 3.1
    e.add_request(req(3, (5, 6, 7)))
    e.add_request(req(4, suffix=20, max_new=30))        # alone, 30 / 20: 1.5
    e.add_request(req(5, suffix=20, max_new=30))        # the same ratio: arrival order
    plan, _ = step(e, 0.0)
    assert [r.id for r in plan.requests] == [2, 3, 4, 5, 0, 1]


def test_prefill_budget_caps_chunks_but_not_decodes():
    e = make(max_batched_tokens=4)
    for i in range(6):
        e.add_request(req(i, suffix=2, output=5))
    counts = []
    for t in range(4):
        plan, _ = step(e, float(t))
        counts.append((plan.num_tokens, plan.batched_tokens, plan.admitted))
    assert counts == [(4, 4, 2), (6, 4, 2), (8, 4, 2), (6, 0, 0)]   # 6 decodes > budget 4


def test_kv_usage_cap_limits_the_estimated_peak():
    # peak per request: 8 prompt + 5 expected output - 1 = 12 tokens = 3 blocks; cap 10 blocks
    e = make(num_blocks=20, kv_usage_cap=0.5, default_max_new_tokens=5, max_batched_tokens=100)
    for i in range(5):
        e.add_request(req(i, suffix=8, output=2))
    s = e.scheduler
    plan, _ = step(e, 0.0)
    assert plan.admitted == 3 and s.reservations.total == 9 and s.kv.num_used == 6
    plan, finished = step(e, 1.0)
    assert plan.admitted == 0 and [r.id for r in finished] == [0, 1, 2]
    plan, _ = step(e, 2.0)
    assert plan.admitted == 2 and s.reservations.total == 6


def test_a_request_larger_than_the_cap_runs_alone():
    e = make(num_blocks=20, kv_usage_cap=0.2, max_batched_tokens=100)   # cap: 4 blocks
    e.add_request(req(0, suffix=30, output=2, max_new=30))     # 15 blocks at its peak
    e.add_request(req(1, suffix=4, output=2))                  # a lower ratio: after 0
    plan, _ = step(e, 0.0)
    assert [r.id for r in plan.requests] == [0]
    run_all(e)


def test_preemption_when_outputs_exceed_the_estimate():
    # expected 1 output token, true 12: the estimate lets in more than memory can hold
    e = make(num_blocks=12, default_max_new_tokens=1, kv_usage_cap=1.0, max_batched_tokens=64)
    group = [req(i, (1, 2), output=12) for i in range(4)]
    for r in group:
        e.add_request(r)
    run_all(e)
    assert sum(r.preemptions for r in group) > 0
    assert all(r.output_generated == 12 for r in group)
    assert e.kv.num_free == 12


def test_pins_give_way_when_nothing_can_run():
    # C runs from the first batch; A and B (a group with a 2-block prefix) join it. Outputs
    # outgrow the 1-token estimate: B, then A, then C are preempted, leaving only the pin in
    # memory, and C (now 8 blocks + 1) cannot come back beside it: rather than wait for ever,
    # the pin is released.
    e = make(num_blocks=10, default_max_new_tokens=1, kv_usage_cap=1.0, max_batched_tokens=64)
    c = req(2, suffix=16, output=24)
    e.add_request(c)
    step(e, 0.0)
    a, b = req(0, (1, 2), output=20, arrival=0.5), req(1, (1, 2), output=20, arrival=0.5)
    e.add_request(a)
    e.add_request(b)
    plans = run_all(e)
    assert c.preemptions == 1 and a.preemptions >= 1 and b.preemptions >= 1
    assert [r.output_generated for r in (a, b, c)] == [20, 20, 24]
    assert e.kv.num_free == 10 and e.scheduler.reservations.total == 0
    assert any(p.admitted and p.requests[0] is c.view for p in plans)


# -- batches -------------------------------------------------------------------------------------

def test_later_instant_is_a_later_batch():
    # one request at a time; a request arriving at t=1 waits behind the t=0 batch, even with a
    # larger ratio
    e = make(max_num_seqs=1, default_max_new_tokens=2)
    e.add_request(req(0, suffix=8, output=2))
    e.add_request(req(1, suffix=8, output=2))
    step(e, 0.0)
    e.add_request(req(2, suffix=1, output=2, arrival=1.0, max_new=50))
    order = [p.requests[0].id for p in run_all(e) if p.admitted]
    assert order == [1, 2]


def test_window_merges_arrivals_with_groups_not_started():
    e = make(max_num_seqs=1, batch_window_s=5.0)
    s = e.scheduler
    e.add_request(req(0, suffix=8, output=6))
    step(e, 0.0)                                        # 0 runs; the window closes at 5
    e.add_request(req(1, (1, 2), arrival=1.0))
    step(e, 1.0)
    assert s.group_members(1) == [1]                    # alone so far
    e.add_request(req(2, (1, 2), arrival=2.0))
    e.add_request(req(3, (1, 2), arrival=6.0))          # after the window: the next batch
    step(e, 2.0)
    assert s.group_members(1) == s.group_members(2) == [1, 2]
    assert s.group_members(3) == [3]
    assert [v.id for v in s.waiting] == [1, 2, 3]


# -- end to end ----------------------------------------------------------------------------------

def scenario_dict(scheduler: dict | None = None, **sim) -> dict:
    return {"name": "b", "seed": 1, "model": "qwen2.5-7b", "hardware": "a100-80g-sxm",
            "cluster": {"replicas": 1},
            "scheduler": {"name": "batchllm", "block_size": 16, "max_batched_tokens": 512,
                          "kv_blocks": 400, **(scheduler or {})},
            "workload": {"arrivals": {"kind": "burst"}, "num_requests": 1,
                         "prompt_tokens": {"dist": "fixed", "value": 100},
                         "output_tokens": {"dist": "fixed", "value": 10}},
            "simulation": sim}


def shared_workload(n: int, share: int, seed: int, rate: float | None = None) -> Workload:
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.arange(n) % max(n // share, 1))
    hashes = [tuple(range(g * 20, g * 20 + int(rng.integers(5, 20)))) for g in group.tolist()]
    prompts = [len(h) * 16 + int(rng.integers(1, 200)) for h in hashes]
    arrivals = np.zeros(n) if rate is None else np.cumsum(rng.exponential(1 / rate, n))
    return Workload(arrivals, np.array(prompts), rng.integers(1, 120, n), hashes, 16)


def simulate(data: dict, workload: Workload) -> pd.DataFrame:
    sc = Scenario.from_dict(data)
    cluster = Cluster(sc, resolve(sc), workload, np.random.default_rng(sc.seed))
    cluster.run()
    return cluster.recorder.requests_frame()


CASES = {
    "burst": ({}, dict(n=300, share=8, seed=2)),
    "tight": ({"kv_blocks": 150, "default_max_new_tokens": 8},
              dict(n=200, share=4, seed=3)),
    "window": ({"batch_window_s": 3.0}, dict(n=300, share=6, seed=4, rate=20.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_forward_equals_stepping(case, monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "batchllm", BatchLlmScheduler)
    sched, wl = CASES[case]
    ff = simulate(scenario_dict(sched, fast_forward=True), shared_workload(**wl))
    stepped = simulate(scenario_dict(sched, fast_forward=False), shared_workload(**wl))
    pd.testing.assert_frame_equal(ff, stepped)
    assert (ff["state"] == "completed").all()
    if case == "tight":
        assert ff["preemptions"].sum() > 0


@pytest.mark.skipif(not hasattr(Scheduler, "kv_holders"),
                    reason="the replica's invariant check needs Scheduler.kv_holders")
@pytest.mark.parametrize("case", sorted(CASES))
def test_replica_invariants_hold(case, monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "batchllm", BatchLlmScheduler)
    sched, wl = CASES[case]
    done = simulate(scenario_dict(sched, check_invariants=True), shared_workload(**wl))
    assert (done["state"] == "completed").all()


def test_saves_prefill_against_fcfs_with_lru(monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "batchllm", BatchLlmScheduler)
    data = scenario_dict({"kv_blocks": 300})
    lru = copy.deepcopy(data)
    lru["scheduler"] = {"name": "fcfs", "block_size": 16, "max_batched_tokens": 512,
                        "kv_blocks": 300, "prefix_caching": True}
    wl = dict(n=400, share=8, seed=5)
    b = simulate(data, shared_workload(**wl))
    f = simulate(lru, shared_workload(**wl))
    assert b["prefill_tokens_computed"].sum() < 0.8 * f["prefill_tokens_computed"].sum()



def test_reorder_puts_decode_heavy_groups_first(tmp_path):
    """Group A (long prompts, short outputs) arrives with group B (short prompts, long
    outputs): reordering starts B first (larger expected decode/prompt ratio); without it,
    arrival order."""
    from sim import Scenario, simulate

    rows = ["arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens"]
    rows += [f"0,3000,20,1 2 {10 + i},1000" for i in range(3)]          # A: ratio 0.007
    rows += [f"0,1000,400,{20 + i},1000" for i in range(3)]              # B: ratio 0.4
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(rows) + "\n")

    def first_scheduled(reorder: bool):
        data = {"model": "llama-3.1-8b",
                "scheduler": {"name": "batchllm", "max_batched_tokens": 1024, "reorder": reorder},
                "workload": {"trace": {"path": str(trace)}, "state_output_tokens": True}}
        req = simulate(Scenario.from_dict(data)).requests.set_index("request_id")
        assert (req["state"] == "completed").all()
        return req.loc[[0, 1, 2], "first_scheduled_s"].min(), \
            req.loc[[3, 4, 5], "first_scheduled_s"].min()

    a, b = first_scheduled(True)
    assert b < a
    a, b = first_scheduled(False)
    assert a < b
