"""Routers (sim/cluster/router.py) on tiny fake replicas: the indexed-heap least-outstanding pick
equals the scan, prefix-aware and session-affinity routers pick what their rules say, and both
run end to end."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import pytest

import sim
from sim.cluster.router import ROUTERS, Router, _IndexedHeap
from sim.workload.request import Request

scan = attrgetter("num_outstanding")


@dataclass
class Fake:
    index: int
    num_outstanding: int = 0
    kv_blocks_used: int = 0
    kv_blocks_total: int = 100


def fakes(n: int, **fields) -> list[Fake]:
    return [Fake(i, **fields) for i in range(n)]


def request(hashes=None, session=-1, id=0) -> Request:
    return Request(id=id, arrival_s=0.0, prompt_tokens=16 * len(hashes or (1,)), output_tokens=4,
                   prefix_hashes=None if hashes is None else tuple(hashes), session=session)


def router(name: str, replicas: list[Fake] | None = None) -> Router:
    """A router of ``name``, bound to ``replicas`` if given (else it scans every pick)."""
    r = ROUTERS[name](np.random.default_rng(0))
    if replicas is not None:
        r.bind(replicas)
    return r


def set_load(r: Router, replica: Fake, count: int) -> None:
    replica.num_outstanding = count
    r.load_changed(replica)


# -- least-outstanding -----------------------------------------------------------------------
def test_heap_least_outstanding_equals_the_scan_with_ties():
    rng = np.random.default_rng(3)
    replicas = fakes(7)
    bound, plain = router("least-outstanding", replicas), router("least-outstanding")
    for step in range(3000):
        if rng.random() < 0.55:                  # an arrival: submitted to the picked replica
            picked = bound.pick(request(id=step), replicas)
            assert picked is plain.pick(request(id=step), replicas) \
                is min(replicas, key=scan)
            set_load(bound, picked, picked.num_outstanding + 1)
        else:                                    # a request ends somewhere
            busy = [r for r in replicas if r.num_outstanding > 0]
            if busy:
                done = busy[int(rng.integers(len(busy)))]
                set_load(bound, done, done.num_outstanding - 1)
    assert bound.loads.covers(replicas)         # the heap answered, not the scan


@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_indexed_heap_top_is_the_least_key_then_slot(n):
    # keys of either sign (the max-heap holds negated counts), many ties
    rng = np.random.default_rng(n)
    keys = [int(k) for k in rng.integers(-3, 4, n)]
    heap = _IndexedHeap(keys)
    for _ in range(2000):
        assert heap.top == min(range(n), key=lambda s: (keys[s], s))
        assert [heap.key(s) for s in range(n)] == keys
        assert sorted(heap.heap) == list(range(n)) and \
            all(heap.heap[heap.where[s]] == s for s in range(n))
        slot = int(rng.integers(n))
        keys[slot] += int(rng.integers(-2, 3))
        heap.update(slot, keys[slot])


def test_least_outstanding_ties_go_to_the_lowest_index():
    replicas = fakes(4, num_outstanding=2)
    r = router("least-outstanding", replicas)
    assert r.pick(request(), replicas) is replicas[0]
    set_load(r, replicas[0], 3)
    assert r.pick(request(), replicas) is replicas[1]
    set_load(r, replicas[3], 1)
    set_load(r, replicas[2], 1)
    assert r.pick(request(), replicas) is replicas[2]


def test_least_outstanding_scans_a_subset_and_resyncs_on_the_full_list():
    replicas = fakes(4, num_outstanding=5)
    r = router("least-outstanding", replicas)
    assert r.pick(request(), replicas) is replicas[0]
    up = [replicas[1], replicas[3]]             # 0 and 2 are down
    set_load(r, replicas[3], 4)
    assert r.pick(request(), up) is replicas[3]
    replicas[0].num_outstanding = 0             # a fresh engine, replaced without a hook call
    replicas[2].num_outstanding = 1
    assert r.pick(request(), up) is replicas[3]
    everyone = list(replicas)                   # back up: a new list with every replica
    assert r.pick(request(), everyone) is replicas[0]
    set_load(r, replicas[0], 9)
    assert r.pick(request(), everyone) is replicas[2]


def test_least_outstanding_without_bind_is_the_scan():
    replicas = [Fake(0, 3), Fake(1, 1), Fake(2, 1)]
    r = router("least-outstanding")
    assert r.pick(request(), replicas) is replicas[1]
    assert r.pick(request(), replicas[2:]) is replicas[2]


# -- prefix-aware ----------------------------------------------------------------------------
@pytest.mark.parametrize("bind", [True, False])
def test_shared_prefix_goes_to_the_same_replica(bind):
    replicas = fakes(4)
    r = router("prefix-aware", replicas if bind else None)
    first = r.pick(request([1, 2, 3, 10]), replicas)
    assert first is replicas[0]
    set_load(r, first, 2)                       # now the busiest
    assert r.pick(request([1, 2, 3, 20]), replicas) is first
    assert r.pick(request([7, 8]), replicas) is replicas[1]     # no match: least outstanding


@pytest.mark.parametrize("bind", [True, False])
def test_longer_match_wins_then_fewer_outstanding(bind):
    replicas = fakes(3)
    r = router("prefix-aware", replicas if bind else None)
    assert r.pick(request([1, 2]), replicas) is replicas[0]
    # replica 0 is down: replica 1 gets the longer prompt with the same head
    assert r.pick(request([1, 2, 3, 4]), replicas[1:]) is replicas[1]
    set_load(r, replicas[0], 1)
    set_load(r, replicas[1], 3)
    assert r.pick(request([1, 2, 3, 7]), replicas) is replicas[1]     # 3 blocks beat 2
    assert r.pick(request([1, 2, 8]), replicas) is replicas[0]        # 2 and 2: fewer queued
    set_load(r, replicas[1], 1)
    assert r.pick(request([1, 5]), replicas) is replicas[0]           # 1 block, 1 queued: index


def test_request_without_hashes_goes_to_the_least_outstanding():
    replicas = fakes(3, num_outstanding=2)
    r = router("prefix-aware", replicas)
    assert r.pick(request([1, 2]), replicas) is replicas[0]
    set_load(r, replicas[2], 1)
    assert r.pick(request(None), replicas) is replicas[2]
    assert r.pick(request(()), replicas) is replicas[2]
    assert r.prefixes.holders == {1: {0}, 2: {0}}


@pytest.mark.parametrize("bind", [True, False])
def test_load_guard_routes_by_load_when_imbalanced(bind):
    replicas = fakes(3)
    r = router("prefix-aware", replicas if bind else None)
    assert r.pick(request([1, 2]), replicas) is replicas[0]
    set_load(r, replicas[0], 32)
    set_load(r, replicas[1], 1)
    # 32 - 0 is not > 32: the cache wins
    assert r.pick(request([1, 2, 3]), replicas) is replicas[0]
    set_load(r, replicas[0], 33)
    # 33 - 0 > 32 and 33 > 1.0001 * 0: least outstanding, which now holds the prefix too
    assert r.pick(request([1, 2, 4]), replicas) is replicas[2]
    assert r.prefixes.holders[1] == {0, 2}
    # huge queues: 40 apart but within 0.01% of each other is balanced
    for replica, count in zip(replicas, (1_000_040, 1_000_000, 1_000_010)):
        set_load(r, replica, count)
    assert r.pick(request([1, 2, 3, 9]), replicas) is replicas[0]


def test_lru_eviction_removes_hashes_from_the_index():
    replicas = fakes(2, kv_blocks_total=4)
    r = router("prefix-aware", replicas)
    only0 = replicas[:1]
    assert r.pick(request([1, 2, 3]), only0) is replicas[0]
    assert r.pick(request([10, 11, 12]), only0) is replicas[0]
    # 6 hashes, room for 4: the tail of the older prompt goes first, its head stays
    assert list(r.prefixes.lru[0]) == [1, 12, 11, 10]
    assert set(r.prefixes.holders) == {1, 10, 11, 12}
    set_load(r, replicas[0], 1)
    assert r.pick(request([1, 2, 5]), replicas) is replicas[0]       # still matches 1 block
    assert list(r.prefixes.lru[0]) == [10, 5, 2, 1]
    assert r.pick(request([20, 21, 22]), only0) is replicas[0]
    assert list(r.prefixes.lru[0]) == [1, 22, 21, 20]
    assert set(r.prefixes.holders) == {1, 20, 21, 22}
    assert r.pick(request([10, 11]), replicas) is replicas[1]        # evicted: scored 0 there


def test_prefix_aware_bound_and_unbound_pick_alike():
    rng = np.random.default_rng(11)
    replicas = fakes(5, kv_blocks_total=12)
    bound, plain = router("prefix-aware", replicas), router("prefix-aware")
    for step in range(2000):
        if rng.random() < 0.6:
            group = int(rng.integers(6))
            hashes = [100 * group + k for k in range(int(rng.integers(0, 6)))]
            req = request(hashes, id=step)
            picked = bound.pick(req, replicas)
            assert plain.pick(req, replicas) is picked
            set_load(bound, picked, picked.num_outstanding + int(rng.integers(1, 30)))
        else:
            done = replicas[int(rng.integers(5))]
            set_load(bound, done, max(0, done.num_outstanding - int(rng.integers(1, 30))))
    assert bound.prefixes.holders == plain.prefixes.holders


# -- session-affinity ------------------------------------------------------------------------
@pytest.mark.parametrize("bind", [True, False])
def test_session_sticks_to_its_replica(bind):
    replicas = fakes(3)
    r = router("session-affinity", replicas if bind else None)
    assert r.pick(request(session=5), replicas) is replicas[0]
    set_load(r, replicas[0], 4)
    assert r.pick(request(session=5), replicas) is replicas[0]
    assert r.pick(request(session=6), replicas) is replicas[1]
    assert r.pick(request(session=-1), replicas) is replicas[1]      # no session: least


def test_full_replica_repins_the_session():
    replicas = fakes(3)
    r = router("session-affinity", replicas)
    assert r.pick(request(session=1), replicas) is replicas[0]
    replicas[0].kv_blocks_used = 94
    assert r.pick(request(session=1), replicas) is replicas[0]
    replicas[0].kv_blocks_used = 95
    set_load(r, replicas[1], 1)
    assert r.pick(request(session=1), replicas) is replicas[0]       # full but the least loaded
    set_load(r, replicas[0], 2)
    assert r.pick(request(session=1), replicas) is replicas[2]       # full: re-pinned
    replicas[0].kv_blocks_used = 0
    assert r.pick(request(session=1), replicas) is replicas[2]       # stays re-pinned


def test_session_replica_not_given_is_not_picked():
    replicas = fakes(3)
    r = router("session-affinity", replicas)
    assert r.pick(request(session=3), replicas) is replicas[0]
    set_load(r, replicas[1], 2)
    up = [replicas[1], replicas[2]]                                  # replica 0 is down
    assert r.pick(request(session=3), up) is replicas[2]
    assert r.pick(request(session=3), replicas) is replicas[2]       # re-pinned to 2


# -- end to end ------------------------------------------------------------------------------
def scenario(router_name: str, **workload) -> sim.Scenario:
    return sim.Scenario.from_dict({
        "name": "routers", "seed": 5, "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "cluster": {"replicas": 4, "router": router_name},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20},
                     "output_tokens": {"dist": "uniform", "min": 4, "max": 40}, **workload}})


PREFIXES = {"num_requests": 96, "prefix_sharing": {
    "groups": 4, "share_degree": 24, "prefix_tokens": 512,
    "suffix_tokens": {"dist": "uniform", "min": 16, "max": 200}}}
SESSIONS = {"num_requests": 60, "sessions": {"turns": {"dist": "uniform", "min": 2, "max": 5},
                                             "think_time_s": 0.5},
            "prompt_tokens": {"dist": "uniform", "min": 50, "max": 300}}


@pytest.mark.parametrize("name, workload", [("prefix-aware", PREFIXES),
                                            ("session-affinity", SESSIONS)])
def test_cache_aware_routers_run_end_to_end(name, workload):
    result = sim.simulate(scenario(name, **workload))
    s = result.summary
    assert s["requests_completed"] == s["requests_total"] == workload["num_requests"]
    assert result.scenario["cluster"]["router"] == name
    spread = sim.simulate(scenario("round-robin", **workload)).summary
    assert s["prefix_cache_hit_rate"] > spread["prefix_cache_hit_rate"]


@dataclass
class TokenFake(Fake):
    kv_tokens_total: int = 1600


def test_a_replica_holds_as_many_hashes_as_its_tokens_cover():
    # 1,600 KV tokens and 512-token hashes: room for 3 hashes, not 100 (its blocks)
    replica = TokenFake(0)
    r = router("prefix-aware", [replica])
    big = Request(id=1, arrival_s=0.0, prompt_tokens=5 * 512, output_tokens=4,
                  prefix_hashes=(1, 2, 3, 4, 5), prefix_block_tokens=512)
    r.pick(big, [replica])
    assert len(r.prefixes.lru[0]) == 3 and list(r.prefixes.lru[0]) == [3, 2, 1]
