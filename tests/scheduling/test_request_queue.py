"""sim.scheduling.request_queue: the waiting queue's order, alone and as schedulers use it."""

from __future__ import annotations

import pytest

from sim.memory.kv_cache import KVCache
from sim.scheduling.base import BatchPlan
from sim.scheduling.engine import Engine
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.scheduling.request_queue import FcfsQueue, RequestQueue
from sim.scheduling.view import RequestView
from sim.workload.request import Request


def views(n: int) -> list[RequestView]:
    return [RequestView(Request(id=i, arrival_s=float(i), prompt_tokens=4, output_tokens=4))
            for i in range(n)]


def _view(i: int, prompt_tokens: int) -> RequestView:
    return RequestView(Request(id=i, arrival_s=float(i), prompt_tokens=prompt_tokens,
                               output_tokens=4))


def ids(queue: RequestQueue) -> list[int]:
    return [r.id for r in queue]


def test_fcfs_pushes_at_the_tail_and_requeues_at_the_head():
    q = FcfsQueue()
    assert not q and len(q) == 0
    v = views(5)
    for r in v[:3]:
        q.push(r)
    assert ids(q) == [0, 1, 2] and len(q) == 3 and q
    q.push_front(v[3])                      # preempted: ahead of everyone
    assert q.peek() is v[3] and ids(q) == [3, 0, 1, 2]
    assert q.pop() is v[3] and ids(q) == [0, 1, 2]
    q.push(v[4])
    q.remove(v[1])
    assert ids(q) == [0, 2, 4]
    q.remove_all([v[4], v[0]])
    assert ids(q) == [2]
    q.remove_all([])
    assert ids(q) == [2]
    with pytest.raises(ValueError):
        q.remove(v[1])                      # not there
    q.pop()
    with pytest.raises(IndexError):
        q.peek()


def test_remove_all_finds_by_identity():
    a, b = views(2)
    twin = RequestView(Request(id=0, arrival_s=0.0, prompt_tokens=4, output_tokens=4))
    q = FcfsQueue([a, b])
    q.remove_all([twin])                    # same id, another request
    assert list(q) == [a, b]


def test_the_interface_is_abstract():
    with pytest.raises(TypeError):
        RequestQueue()


def test_preempted_requests_resume_in_admission_order():
    """Victims leave from the end of running (newest first) and each goes to the queue's head,
    so the earlier admitted of two resumes first, then the requests that never started."""
    config = FcfsConfig(block_size=4, prefix_caching=False)
    e = Engine(FcfsScheduler(config, KVCache(100, 4, prefix_caching=False)))
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=4, output_tokens=10) for i in range(4)]
    for r in reqs[:3]:
        e.add_request(r)
    e.complete_iteration(e.schedule(0.0), 1.0)
    e.add_request(reqs[3])
    s, plan = e.scheduler, BatchPlan()
    assert [v.id for v in s.running] == [0, 1, 2] and ids(s.waiting) == [3]
    s.preempt(s.running.pop(), plan)
    s.preempt(s.running.pop(), plan)
    assert ids(s.waiting) == [1, 2, 3] and [v.id for v in plan.preempted] == [2, 1]


# -- shortest prompt first ---------------------------------------------------------------------
def test_shortest_prompt_first_with_ties_in_arrival_order_and_preempted_at_the_head():
    from sim.scheduling.request_queue import ShortestPromptQueue

    views = {i: _view(i, prompt) for i, prompt in enumerate([500, 20, 300, 20, 900])}
    q = ShortestPromptQueue()
    for v in views.values():
        q.push(v)
    assert [v.id for v in q] == [1, 3, 2, 0, 4]            # 20, 20 (arrival order), 300, ...
    assert q.pop().id == 1
    q.push_front(_view(9, 5000))                           # a preempted request resumes first
    assert q.peek().id == 9 and len(q) == 5
    q.remove(views[2])
    assert [q.pop().id for _ in range(len(q))] == [9, 3, 0, 4]
    assert not q


def test_shortest_prompt_lets_a_short_arrival_overtake_in_a_run():
    """Burst of long prompts then short ones: with shortest_prompt the short ones start first,
    and fast-forward still equals stepping (an arrival may now lead the queue)."""
    from sim import Scenario, simulate

    def run(queue, ff):
        data = {"model": "llama-3.1-8b", "scheduler": {"name": "fcfs", "queue": queue,
                                                       "max_num_seqs": 4},
                "simulation": {"fast_forward": ff},
                "workload": {"arrivals": {"kind": "poisson", "rate_rps": 50}, "num_requests": 60,
                             "prompt_tokens": {"dist": "uniform", "min": 10, "max": 3000},
                             "output_tokens": {"dist": "uniform", "min": 20, "max": 200}}}
        return simulate(Scenario.from_dict(data)).requests

    fcfs, sjf, sjf_stepped = run("fcfs", True), run("shortest_prompt", True), \
        run("shortest_prompt", False)
    cols = ["first_token_s", "finish_s"]
    assert sjf[cols].equals(sjf_stepped[cols])
    short = sjf["prompt_tokens"] < 500
    assert sjf.loc[short, "queue_s"].mean() < fcfs.loc[short, "queue_s"].mean()
