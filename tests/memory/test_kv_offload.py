"""The host-memory KV tier (``scheduler.kv_offload``): the tier's LRU by hand, evicted prefix blocks
found there and loaded again, the load's time by hand, loading only when it beats recomputing,
config errors, and end to end on multi-turn chat (hit rate, TTFT, fast-forward == stepping).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

import sim
from sim.cluster import deployment_cost_model, resolve
from sim.cost.model import BatchShape
from sim.errors import ScenarioError
from sim.memory import HostKVTier, KVCache
from sim.scheduling.base import KvOffloadConfig
from sim.scheduling.engine import Engine
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.scheduling.view import RequestView
from sim.workload.request import Request

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
_ids = iter(range(10**9))


def req(prompt: int, hashes: tuple | None = None, chunk: int = 4) -> RequestView:
    return RequestView(Request(id=next(_ids), arrival_s=0.0, prompt_tokens=prompt,
                               output_tokens=10, prefix_hashes=hashes, prefix_block_tokens=chunk))


# -- the tier by hand ------------------------------------------------------------------------------

def test_tier_is_an_lru_set_of_hashes():
    tier = HostKVTier(3)
    for h in "abc":
        tier.store(h)
    assert tier.hashes() == ["a", "b", "c"] and (tier.stores, tier.evictions) == (3, 0)
    tier.store("d")                             # full: the least recently used goes
    assert tier.hashes() == ["b", "c", "d"] and (tier.stores, tier.evictions) == (4, 1)
    assert "a" not in tier and "b" in tier and len(tier) == 3
    tier.store("b")                             # already there: refreshed, not stored again
    assert tier.hashes() == ["c", "d", "b"] and (tier.stores, tier.evictions) == (4, 1)
    tier.touch(["c"])                           # loaded: most recently used
    assert tier.hashes() == ["d", "b", "c"]
    tier.store("e")
    assert tier.hashes() == ["b", "c", "e"] and tier.evictions == 2
    # consecutive hashes from a start, up to a stop
    assert tier.run_length(["x", "b", "c", "d"], 1, 4) == 2
    assert tier.run_length(["x", "b", "c", "d"], 0, 4) == 0
    assert tier.run_length(["b", "c", "e"], 0, 2) == 2
    with pytest.raises(ValueError):
        HostKVTier(0)


def test_tier_size_and_load_time_from_the_config():
    cfg = KvOffloadConfig(capacity_gib=1.5, bandwidth_gb_s=25.0, latency_us=20.0)
    block_bytes = 2 * 2**20
    assert cfg.enabled and cfg.capacity_blocks(block_bytes) == 768
    assert cfg.latency_s == pytest.approx(20e-6)
    assert cfg.load_s_per_block(block_bytes) == block_bytes / 25e9
    assert not KvOffloadConfig().enabled and KvOffloadConfig().capacity_blocks(block_bytes) == 0
    # loading 4 blocks: latency + 4 x per block; worth it only while under the recompute time
    tier = HostKVTier(10, load_latency_s=1e-3, load_s_per_block=1e-4, recompute_s_per_token=1e-4)
    assert tier.load_s(4) == pytest.approx(1e-3 + 4e-4) and tier.load_s(0) == 0.0
    assert tier.worth_loading(4, block_size=4)          # 1.4 ms < 16 tokens x 0.1 ms
    assert not tier.worth_loading(2, block_size=4)      # 1.2 ms > 8 tokens x 0.1 ms
    assert not tier.worth_loading(0, block_size=4)


# -- the KV cache with a tier ----------------------------------------------------------------------

def test_evicted_prefix_blocks_move_to_the_tier_and_load_again():
    kv = KVCache(6, 4, host_tier=HostKVTier(10))
    a = req(13, (1, 2, 3))                      # 4 blocks, the first 3 cached
    assert kv.allocate(a, 13)
    a.num_computed_tokens = 13
    hashes = kv.prompt_block_hashes(a)
    kv.free(a)                                  # queue: [run 2, run 1, c2, c1, c0]
    b = req(20)                                 # no ids: 5 anonymous blocks evict c2, c1
    assert kv.allocate(b, 20)
    assert kv.host_tier.hashes() == [hashes[2], hashes[1]]      # in eviction order
    assert (kv.host_stores, kv.host_evictions, kv.num_cached) == (2, 0, 1)
    kv.check([b])
    kv.free(b)
    c = req(13, (1, 2, 3))                      # the same prefix: c0 on the device, c1 c2 on host
    hit = kv.get_computed_blocks(c)
    assert [blk.hash for blk in hit] == hashes[:1]
    assert kv.host_blocks_to_load(c, len(hit)) == 2
    assert kv.allocate(c, 1, hit, 2)
    assert c.kv_blocks == 4 and [blk.hash for blk in c.kv_cached_blocks] == hashes
    assert (kv.hits, kv.host_hits, kv.host_loads, kv.queries) == (1, 2, 2, 6)
    assert kv.host_tier.hashes() == [hashes[1], hashes[2]]      # the host copies stay, refreshed
    kv.check([c])


def test_loading_leaves_a_token_to_compute_and_respects_the_pool():
    kv = KVCache(3, 4, host_tier=HostKVTier(10))
    r = req(12, (1, 2, 3))
    for h in kv.prompt_block_hashes(r):
        kv.host_tier.store(h)
    assert kv.host_blocks_to_load(r, 0) == 2    # (12 - 1) // 4: the last token is computed
    assert kv.can_allocate(r, 4, [], 2)         # 2 loaded + 1 new blocks: the whole pool
    big = req(8)
    assert kv.allocate(big, 8)                  # 1 block left
    assert not kv.can_allocate(r, 4, [], 2)
    assert not kv.allocate(r, 4, [], 2)
    assert (r.kv_blocks, kv.num_free, kv.host_loads) == (0, 1, 0)
    kv.check([big])


def test_reset_prefix_cache_offloads_the_evictable_blocks():
    kv = KVCache(6, 4, host_tier=HostKVTier(2))
    a = req(13, (1, 2, 3))
    assert kv.allocate(a, 13)
    hashes = kv.prompt_block_hashes(a)
    kv.free(a)
    kv.reset_prefix_cache()                     # c2, c1, c0 in that order; room for two
    assert kv.host_tier.hashes() == [hashes[1], hashes[0]]
    assert (kv.num_cached, kv.host_stores, kv.host_evictions) == (0, 3, 1)
    kv.check([])


def test_a_scheduler_loads_without_spending_its_token_budget():
    kv = KVCache(10, 4, host_tier=HostKVTier(10))
    engine = Engine(FcfsScheduler(FcfsConfig(block_size=4, max_batched_tokens=2), kv))
    r = Request(id=0, arrival_s=0.0, prompt_tokens=13, output_tokens=5,
                prefix_hashes=(1, 2, 3), prefix_block_tokens=4)
    engine.add_request(r)
    for h in kv.prompt_block_hashes(r.view):
        kv.host_tier.store(h)
    plan = engine.schedule(0.0)
    assert plan.kv_load_blocks == 3 and plan.num_new_tokens == [1] and plan.batched_tokens == 1
    assert (r.view.num_computed_tokens, r.view.cached_prompt_tokens) == (12, 12)
    assert not plan.stable
    kv.check(engine.scheduler.kv_holders())


# -- config ----------------------------------------------------------------------------------------

def quickstart() -> dict:
    return yaml.safe_load(open(SCENARIOS / "quickstart.yaml"))


@pytest.mark.parametrize("section, field", [
    ({"capacity_gib": -1}, "capacity_gib"),
    ({"capacity_gib": math.inf}, "capacity_gib"),
    ({"capacity_gib": 4, "bandwidth_gb_s": 0}, "bandwidth_gb_s"),
    ({"bandwidth_gb_s": -5}, "bandwidth_gb_s"),
    ({"capacity_gib": 4, "latency_us": -1}, "latency_us"),
    ({"capacity_gib": 4, "bandwith_gb_s": 10}, "bandwith_gb_s"),
    ({"capacity_gib": "4"}, "capacity_gib"),
])
def test_bad_settings_are_one_line_errors_naming_the_field(section, field):
    data = quickstart()
    data["scheduler"]["kv_offload"] = section
    with pytest.raises(ScenarioError) as err:
        sim.Scenario.from_dict(data, path="s.yaml")
    message = str(err.value)
    assert f"s.yaml: scheduler.kv_offload.{field}" in message and "\n" not in message


def test_off_by_default_and_off_without_capacity():
    data = quickstart()
    assert sim.Scenario.from_dict(data).scheduler.kv_offload is None
    assert "kv_offload" not in sim.Scenario.from_dict(data).to_dict()["scheduler"]
    data["scheduler"] = {"kv_offload": {"capacity_gib": 0, "bandwidth_gb_s": 0}}
    assert not sim.Scenario.from_dict(data).scheduler.kv_offload.enabled


# -- end to end ------------------------------------------------------------------------------------

def trace(tmp_path, **offload) -> dict:
    """Three requests 10 s apart on 40 blocks of 16 tokens: r0 caches a 20-block prefix, r1
    (unrelated, 32 blocks) evicts its last 12 blocks, r2 comes back with r0's prefix."""
    rows = [(0.0, 320, 2, range(20)), (10.0, 500, 2, range(100, 132)),
            (20.0, 330, 2, [*range(20), 200])]
    lines = ["arrival_s,prompt_tokens,output_tokens,prefix_hashes"]
    lines += [f"{a},{p},{o}," + " ".join(map(str, ids)) for a, p, o, ids in rows]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    scheduler = {"kv_blocks": 40, "block_size": 16}
    if offload:
        scheduler["kv_offload"] = offload
    return {"name": "t", "seed": 0, "model": "llama-3.1-8b", "hardware": "h100-sxm",
            "cluster": {"replicas": 1}, "scheduler": scheduler,
            "workload": {"trace": {"path": str(path), "prefix_block_tokens": 16}},
            "simulation": {"check_invariants": True}}


def test_a_returning_prefix_loads_from_the_tier_and_pays_the_transfer(tmp_path):
    data = trace(tmp_path, capacity_gib=1.0, bandwidth_gb_s=25.0, latency_us=30.0)
    scenario = sim.Scenario.from_dict(data)
    r2 = sim.simulate(scenario).requests.loc[2]
    # 8 blocks still on the device, 12 loaded; 10 tokens computed
    assert (r2["cached_prompt_tokens"], r2["prefill_tokens_computed"]) == (320, 10)
    cost, block_bytes = deployment_cost_model(scenario), resolve(scenario).block_bytes
    prefill = cost.iteration_time(BatchShape.from_requests([10], [320], 1))[0]
    load = 30e-6 + 12 * block_bytes / 25e9
    assert r2["ttft_s"] == pytest.approx(prefill + load, rel=1e-12)
    # without the tier the 12 blocks are computed again
    r2 = sim.simulate(sim.Scenario.from_dict(trace(tmp_path))).requests.loc[2]
    assert (r2["cached_prompt_tokens"], r2["prefill_tokens_computed"]) == (128, 202)


def test_no_load_when_recomputing_is_cheaper(tmp_path):
    data = trace(tmp_path, capacity_gib=1.0, bandwidth_gb_s=0.001)   # 12 blocks take ~25 s
    scenario = sim.Scenario.from_dict(data)
    r2 = sim.simulate(scenario).requests.loc[2]
    assert (r2["cached_prompt_tokens"], r2["prefill_tokens_computed"]) == (128, 202)
    prefill = deployment_cost_model(scenario).iteration_time(
        BatchShape.from_requests([202], [128], 1))[0]
    assert r2["ttft_s"] == pytest.approx(prefill, rel=1e-12)


CHAT = ["workload.num_requests=600", "scheduler.kv_blocks=2000"]     # turns evict each other
TIER = ["scheduler.kv_offload={capacity_gib: 4}"]


def chat(*sets: str) -> sim.Result:
    return sim.simulate(sim.Scenario.from_yaml(SCENARIOS / "chat-sessions.yaml", [*CHAT, *sets]))


def hit_rate(requests: pd.DataFrame) -> float:
    """Prompt tokens served from cache, the device's or the host tier's."""
    return requests["cached_prompt_tokens"].sum() / requests["prompt_tokens"].sum()


def test_multi_turn_chat_hits_more_and_starts_sooner_with_a_tier():
    off, on = chat().requests, chat(*TIER).requests
    assert len(off) == len(on) == 600
    assert hit_rate(on) > hit_rate(off) + 0.2
    assert on["ttft_s"].median() < 0.8 * off["ttft_s"].median()
    assert on["prefill_tokens_computed"].sum() < off["prefill_tokens_computed"].sum()


@pytest.mark.parametrize("sets", [[], ["scheduler.kv_blocks=500"],
                                  ["scheduler.name=batchllm"],
                                  ["scheduler.name=aggressive", "scheduler.chunked_prefill=false"]])
def test_fast_forward_equals_stepping_with_a_tier(sets):
    sets = ["workload.num_requests=250", *sets]
    ff = chat(*TIER, *sets)
    step = chat(*TIER, *sets, "simulation.fast_forward=false")
    pd.testing.assert_frame_equal(ff.requests, step.requests, check_exact=True)
    assert ff.summary["iterations"] == step.summary["iterations"]
    assert len(ff.iterations) < len(step.iterations)
    assert hit_rate(ff.requests) > hit_rate(chat(*sets).requests)
