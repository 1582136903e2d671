"""Data parallel with expert parallelism (vLLM DP + EP): ranks step in lockstep, idle ranks run
dummy batches, experts are spread over the ranks."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.cluster import Cluster, resolve
from sim.cluster.lockstep import DUMMY
from sim.cost.model import BatchShape, CostModel
from sim.cost.ops import ring_allreduce_time_s
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.models import get_model
from sim.workload import build_workload

MOE = {"model": "qwen3-30b-a3b", "hardware": "h100-sxm",
       "cluster": {"replicas": 4, "router": "round-robin", "expert_parallel": True},
       "workload": {"arrivals": {"kind": "poisson", "rate_rps": 40}, "num_requests": 300,
                    "prompt_tokens": {"dist": "lognormal", "mean": 500, "sigma": 0.8, "max": 3000},
                    "output_tokens": {"dist": "lognormal", "mean": 80, "sigma": 0.8, "max": 400}}}


def _scenario(**changes) -> Scenario:
    data = copy.deepcopy(MOE)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        data[section][field] = value
    return Scenario.from_dict(data)


def test_ranks_step_together():
    result = simulate(_scenario())
    assert result.summary["requests_completed"] == 300
    it = result.iterations
    # every step starts at one instant for all ranks that had work, and lasts as long for all
    steps = it.groupby("start_s")["duration_s"].agg(["min", "max", "count"])
    assert (steps["min"] == steps["max"]).all()
    assert (steps["count"] > 1).any()
    assert (it["num_iterations"] == 1).all()        # no decode fast-forward in a group


def test_an_idle_rank_runs_dummy_batches():
    scenario = _scenario(cluster__replicas=2)
    dep = resolve(scenario)
    rng = np.random.default_rng(0)
    workload = build_workload(scenario.workload, rng, max_model_len=dep.max_model_len)
    cluster = Cluster(scenario, dep, workload, rng)
    # send everything to rank 0: rank 1 has no request but is busy whenever rank 0 is
    cluster.router.pick = lambda req, replicas: replicas[0]
    cluster.run()
    busy0, busy1 = (r.busy_s for r in cluster.replicas)
    assert busy0 > 0 and busy1 == pytest.approx(busy0)
    assert cluster.replicas[1].iterations == 0      # no recorded iteration: dummies only


def test_expert_parallel_step_by_hand():
    model, device = get_model("qwen3-30b-a3b"), load_device("h100-sxm")
    cost = CostModel(model, device, 1)
    shape = BatchShape.decode([900] * 6)
    own, _ = cost.iteration_time(shape)
    group_tokens, ranks = 6 + 10 + 1 + 3, 4
    exchange = ring_allreduce_time_s(group_tokens * model.hidden_size * model.dtype_bytes, ranks,
                                     device.interconnect_bandwidth * device.efficiency.interconnect,
                                     device.interconnect_latency_s)
    want = own - cost.routed_experts_s(6) + cost.routed_experts_s(group_tokens) / ranks \
        + model.num_moe_layers * (exchange + device.efficiency.kernel_launch_s)
    assert cost.expert_parallel_time(shape, group_tokens, ranks)[0] == pytest.approx(want,
                                                                                     rel=1e-12)
    # experts spread over the ranks: a rank reads fewer expert weights than alone
    assert cost.routed_experts_s(group_tokens) / ranks < cost.routed_experts_s(6)
    assert cost.expert_parallel_time(DUMMY, group_tokens, ranks)[0] > 0


def test_dense_models_ignore_expert_parallel_as_vllm_does():
    data = copy.deepcopy(MOE)
    data["model"], data["workload"]["num_requests"] = "llama-3.1-8b", 120
    ra = simulate(Scenario.from_dict(data))
    data["cluster"]["expert_parallel"] = False
    rb = simulate(Scenario.from_dict(data))
    assert ra.requests["finish_s"].tolist() == rb.requests["finish_s"].tolist()


def test_expert_shards_leave_more_room_for_kv():
    ep, alone = resolve(_scenario()), resolve(_scenario(cluster__expert_parallel=False))
    model = get_model("qwen3-30b-a3b")
    experts = model.num_moe_layers * model.num_experts * model.expert_params * model.dtype_bytes
    gained = ep.kv_blocks - alone.kv_blocks
    assert gained == pytest.approx(experts * 3 / 4 / ep.block_bytes, abs=1)


def test_failures_with_expert_parallel_are_refused():
    data = copy.deepcopy(MOE)
    data["failures"] = [{"kind": "replica_down", "replica": 0, "at_s": 1.0, "duration_s": 1.0}]
    with pytest.raises(ScenarioError, match="expert_parallel"):
        Scenario.from_dict(data)


def test_the_token_exchange_share_is_reported_and_matches_its_formula():
    scenario = _scenario()
    result = simulate(scenario)
    share = result.summary["expert_exchange_share"]
    assert 0 < share < 1
    # one step by hand: a 4-rank group running 64 tokens exchanges an all-reduce's traffic per
    # MoE layer, plus a launch
    cost = CostModel(get_model("qwen3-30b-a3b"), load_device("h100-sxm"), 1)
    message = 64 * 2048 * 2
    ring = ring_allreduce_time_s(message, 4, cost._link_bytes_per_s,
                                 cost.device.interconnect_latency_s)
    assert cost.expert_exchange_s(64, 4) == pytest.approx(48 * (ring + cost._launch_s))
    assert "expert_exchange_share" not in simulate(_scenario(cluster__expert_parallel=False)).summary


def test_ranks_that_do_not_divide_the_experts_are_a_one_line_error():
    with pytest.raises(ScenarioError, match=r"cluster\.replicas.*128 experts") as err:
        simulate(_scenario(cluster__replicas=3))
    assert "\n" not in str(err.value)


def _one_replica(**cluster) -> Scenario:
    data = copy.deepcopy(MOE)
    data["cluster"] = {"replicas": 1, "tensor_parallel": 4, **cluster}
    return Scenario.from_dict(data)


def test_expert_parallel_inside_one_replica_dispatches_by_all_to_all():
    from sim.cluster.cluster import deployment_cost_model
    from sim.cost.duplex import DuplexCostModel

    plain = deployment_cost_model(_one_replica())
    ep = deployment_cost_model(_one_replica(expert_parallel=True))
    skew = deployment_cost_model(_one_replica(expert_parallel=True,
                                              moe_routing={"kind": "zipf", "zipf_s": 0.8}))
    assert isinstance(ep, DuplexCostModel) and not isinstance(plain, DuplexCostModel)
    assert ep.layout.mode == "expert" and ep.layout.experts_per_group == 32
    shape = BatchShape.decode([800] * 64)
    breakdown = ep.iteration(shape).breakdown_s
    assert breakdown["alltoall"] > 0 and "alltoall" not in plain.iteration(shape).breakdown_s
    # skewed routing: the busiest device's experts get more tokens, so the layer waits longer
    assert skew.iteration_time(shape)[0] > ep.iteration_time(shape)[0]
    # everything but the experts and their collectives costs what the plain model says
    ops = {p.op.name: p.seconds for p in ep.placed_ops(shape)}
    assert ops["qkv_proj"] == pytest.approx(
        plain.op_seconds_in(next(o for o in plain.token_ops(64, 64) if o.name == "qkv_proj"),
                            shape), rel=1e-12)
    result = simulate(_one_replica(expert_parallel=True))
    assert result.summary["requests_completed"] == 300
