"""Prefill/decode disaggregation: pools, KV transfer links, hand-off and conservation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import simpy

from sim import Scenario, simulate
from sim.cluster.cluster import Cluster, resolve_pools
from sim.cluster.kv_transfer import KvLink
from sim.errors import ScenarioError
from sim.memory import kv_bytes_per_token_per_device
from sim.models import get_model
from sim.workload import Request, build_workload

PD = [{"role": "prefill", "replicas": 2}, {"role": "decode", "replicas": 2}]


def scenario(pools=PD, n=120, rate=6.0, prompt=1500, output=120, **extra) -> Scenario:
    data = {"name": "pd", "seed": 3, "model": "llama-3.1-8b", "hardware": "h100-sxm",
            "cluster": {"pools": pools, "router": "least-outstanding", **extra.pop("cluster", {})},
            "scheduler": {"name": "fcfs", **extra.pop("scheduler", {})},
            "workload": {"arrivals": {"kind": "poisson", "rate_rps": rate}, "num_requests": n,
                         "prompt_tokens": {"dist": "uniform", "min": prompt // 2,
                                           "max": prompt * 3 // 2},
                         "output_tokens": {"dist": "uniform", "min": 1, "max": output}},
            "simulation": {"check_invariants": True, **extra.pop("simulation", {})}, **extra}
    return Scenario.from_dict(data)


def run_cluster(s: Scenario) -> tuple[Cluster, pd.DataFrame]:
    pools = resolve_pools(s)
    rng = np.random.default_rng(s.seed)
    workload = build_workload(s.workload, rng, max_model_len=pools[0].deployment.max_model_len)
    cluster = Cluster(s, pools[0].deployment, workload, rng, None, pools)
    cluster.run()
    return cluster, cluster.recorder.requests_frame()


def test_every_request_is_prefilled_once_transferred_once_and_decoded_once():
    cluster, r = run_cluster(scenario())
    assert (r["state"] == "completed").all() and len(r) == 120
    prefill = {rep.index for rep in cluster.replicas if rep.role == "prefill"}
    decode = {rep.index for rep in cluster.replicas if rep.role == "decode"}
    assert prefill == {0, 1} and decode == {2, 3}
    one = r["output_tokens"] == 1          # done with the first token: never leaves its replica
    assert r.loc[one, "replica"].isin(prefill).all() and r.loc[one, "kv_transfer_s"].isna().all()
    moved = r[~one]
    assert moved["prefill_replica"].isin(prefill).all() and moved["replica"].isin(decode).all()
    assert (moved["kv_transfer_s"] > 0).all()
    # no memory pressure: each prompt computed exactly once, on its prefill replica
    assert (r["prefill_tokens_computed"] == r["prompt_tokens"]).all()
    assert (r["output_generated"] == r["output_tokens"]).all()
    # every transfer was sent once: the links' counts add up to the moved requests
    assert sum(link.transfers for link in cluster.links.values()) == len(moved)


def test_kv_is_freed_on_both_sides():
    cluster, _ = run_cluster(scenario())
    for replica in cluster.replicas:
        assert replica.engine.kv.num_used == 0
        assert replica.engine.scheduler.transferring == []
        assert replica.engine.scheduler.incoming == []
    assert not cluster._transfers and not any(r.awaiting_kv for r in cluster.replicas)


def test_transfer_time_by_hand():
    # one request at a time (rate low): latency + one device's KV of the prompt at link rate
    s = scenario(n=5, rate=0.05, prompt=2000, output=50,
                 cluster={"kv_transfer": {"bandwidth_gb_s": 25.0, "latency_us": 20.0}})
    r = simulate(s).requests
    per_token = kv_bytes_per_token_per_device(get_model("llama-3.1-8b"), 1)
    moved = r[r["output_tokens"] > 1]
    expected = 20e-6 + moved["prompt_tokens"] * per_token / 25e9
    assert np.allclose(moved["kv_transfer_s"], expected, rtol=1e-9)
    # the decode replica's first token waits for the transfer: the gap includes it
    assert (moved["max_tpot_s"] >= moved["kv_transfer_s"]).all()


def test_concurrent_transfers_share_the_link():
    env = simpy.Environment()
    done = {}
    link = KvLink(env, 100.0, 0.5, lambda req, start: done.__setitem__(req.id, env.now))
    a, b = Request(0, 0.0, 10, 2), Request(1, 0.0, 10, 2)
    link.send(a, 100.0)                     # alone from 0.5 to 1.0 (50 bytes), then shared
    env.timeout(0.5).callbacks.append(lambda _: link.send(b, 50.0))
    env.run()
    # b joins at 1.0 (latency): both at 50 B/s; a has 50 left, b 50 -> both end at 2.0
    assert done == {0: pytest.approx(2.0), 1: pytest.approx(2.0)}
    assert link.busy_s == pytest.approx(1.5) and link.bytes_sent == pytest.approx(150.0)


def test_fast_forward_equals_stepping():
    fast = simulate(scenario()).requests
    step = simulate(scenario(simulation={"fast_forward": False})).requests
    pd.testing.assert_frame_equal(fast, step)


def test_a_slow_link_costs_latency():
    fast = simulate(scenario(cluster={"kv_transfer": {"bandwidth_gb_s": 400.0}})).summary
    slow = simulate(scenario(cluster={"kv_transfer": {"bandwidth_gb_s": 2.0}})).summary
    assert slow["kv_transfer_s"]["mean"] > 50 * fast["kv_transfer_s"]["mean"]
    assert slow["kv_transfer_share"] > fast["kv_transfer_share"]
    assert slow["e2e_s"]["p50"] > fast["e2e_s"]["p50"]
    assert 0 < slow["kv_link_utilisation"]["max"] <= 1


def test_decode_pool_under_memory_pressure_still_conserves():
    # a small decode pool preempts (recomputes locally); nothing lost, KV freed
    pools = [{"role": "prefill", "replicas": 1},
             {"role": "decode", "replicas": 1, "hardware": {"name": "h100-sxm"}}]
    cluster, r = run_cluster(scenario(pools=pools, rate=20.0, output=400,
                                      scheduler={"kv_blocks": 400}))
    assert (r["state"] == "completed").all()
    assert cluster.replicas[1].engine.scheduler.num_preemptions > 0
    assert all(rep.engine.kv.num_used == 0 for rep in cluster.replicas)


def test_colocated_and_disaggregated_pools_behind_one_router():
    pools = [{"role": "colocated", "replicas": 1}, {"role": "prefill", "replicas": 1},
             {"role": "decode", "replicas": 1, "tensor_parallel": 2}]
    result = simulate(scenario(pools=pools))
    r = result.requests
    assert (r["state"] == "completed").all()
    assert set(r["replica"]) >= {0, 2}                  # served whole, and decoded after moving
    assert (r.loc[r["replica"] == 0, "prefill_replica"] == -1).all()
    assert result.summary["devices"] == 4
    assert [p["role"] for p in result.summary["pools"]] == ["colocated", "prefill", "decode"]


@pytest.mark.parametrize("pools, field", [
    ([{"role": "prefill"}], "cluster.pools"),
    ([{"role": "decode"}, {"role": "colocated"}], "cluster.pools"),
    ([{"role": "prefill", "tensor_parallel": 3}, {"role": "decode"}],
     "cluster.pools.0.tensor_parallel"),
    ([{"role": "prefil"}, {"role": "decode"}], "cluster.pools.0.role"),
])
def test_bad_topologies_are_one_line_errors(pools, field):
    with pytest.raises(ScenarioError) as err:
        scenario(pools=pools)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_a_pool_that_does_not_fit_names_its_pool():
    pools = [{"role": "prefill", "replicas": 1, "tensor_parallel": 1},
             {"role": "decode", "replicas": 1}]
    s = Scenario.from_dict({"model": "llama-3.1-70b", "cluster": {"pools": pools},
                            "workload": {"arrivals": {"kind": "poisson", "rate_rps": 1},
                                         "num_requests": 2,
                                         "prompt_tokens": {"dist": "fixed", "value": 10},
                                         "output_tokens": {"dist": "fixed", "value": 10}}})
    with pytest.raises(Exception, match=r"cluster\.pools\.0 \(prefill\)"):
        simulate(s)


def test_the_decode_replica_sets_blocks_aside_before_the_kv_is_sent():
    # a small decode pool: prefilled requests wait (their KV held on the prefill side) until
    # blocks free up there; the transfer starts only then, and nothing is lost
    pools = [{"role": "prefill", "replicas": 2}, {"role": "decode", "replicas": 1}]
    s = scenario(pools=pools, rate=30.0, output=300, scheduler={"kv_blocks": 600})
    pools_ = resolve_pools(s)
    rng = np.random.default_rng(s.seed)
    workload = build_workload(s.workload, rng, max_model_len=pools_[0].deployment.max_model_len)
    cluster = Cluster(s, pools_[0].deployment, workload, rng, None, pools_)
    decode = cluster.replicas[2]
    waited = []
    original = decode._reserve_awaiting

    def spy():
        waited.append(len(decode.awaiting_kv))
        original()
    decode._reserve_awaiting = spy
    cluster.run()
    r = cluster.recorder.requests_frame()
    assert (r["state"] == "completed").all()
    assert max(waited) > 1                      # requests queued for blocks
    assert all(rep.engine.kv.num_used == 0 for rep in cluster.replicas)
    # the wire time is the link's alone: at most a 2,250-token prompt's shard at 50 GB/s,
    # shared by the transfers in flight
    moved = r[r["output_tokens"] > 1]
    assert (moved["kv_transfer_s"] > 0).all()
