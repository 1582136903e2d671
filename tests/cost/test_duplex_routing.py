"""MoE routing per iteration, expert layouts, and collectives over NVLink and InfiniBand."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cost.duplex import DuplexCostModel
from sim.cost.model import BatchShape
from sim.cost.moe_routing import ExpertRouter
from sim.cost.ops import expert_token_counts, ring_allreduce_time_s
from sim.cost.parallel import ExpertLayout, Topology
from sim.errors import HardwareError
from sim.hardware import load_device
from sim.hardware.duplex import RoutingSection
from sim.models import get_model


def router(kind="uniform", experts=8, top_k=2, **kw) -> ExpertRouter:
    return ExpertRouter(RoutingSection(kind=kind, **kw), experts, top_k)


def test_balanced_is_the_deterministic_default():
    r = router("balanced")
    assert not r.is_random
    assert np.array_equal(r.table(13)[0], expert_token_counts(13, 8, 2))
    assert np.array_equal(r.rows(13, 13, np.arange(5), 0, 0), np.zeros(5))


def test_uniform_draws_are_seeded_and_conserve_tokens():
    a, b, c = router(seed=1), router(seed=1), router(seed=2)
    t = a.table(100)
    assert t.shape == (64, 8) and np.all(t.sum(axis=1) == 200)
    assert np.array_equal(t, b.table(100)) and not np.array_equal(t, c.table(100))
    assert abs(t.mean() - 25) < 1.0 and t.std() > 2          # random, unbiased
    rows = a.rows(100, 100, 1000 + 100 * np.arange(200), 0, 0)
    assert np.array_equal(rows, b.rows(100, 100, 1000 + 100 * np.arange(200), 0, 0))
    assert len(set(rows.tolist())) > 40                         # steps see different draws
    one = [int(a.rows(100, 100, np.array([1000 + 100 * i]), 0, 0)[0]) for i in range(200)]
    assert one == rows.tolist()                                 # one at a time == all at once


def test_zipf_skews_towards_the_first_experts():
    t = router("zipf", zipf_s=1.0).table(4000).mean(axis=0)
    assert np.all(np.diff(t) < 0)
    assert t[0] / t[-1] == pytest.approx(8.0, rel=0.1)


def test_fixed_probabilities():
    t = router("fixed", probabilities=(4, 4, 1, 1, 1, 1, 1, 1)).table(7000).mean(axis=0)
    assert t[0] / t[2] == pytest.approx(4.0, rel=0.05)
    with pytest.raises(HardwareError, match="one per expert"):
        router("fixed", probabilities=(1, 1))
    with pytest.raises(HardwareError, match="1/top_k"):
        router("fixed", probabilities=(10, 1, 1, 1, 1, 1, 1, 1))


def test_skewed_routing_slows_expert_parallelism_more_than_tensor():
    model = get_model("mixtral-8x7b")
    shape = BatchShape.from_requests([4096], [0], 1)     # compute-bound experts: load matters

    def time(parallel: str, routing: dict) -> float:
        dev = load_device("gpu-h100", {"duplex": {"expert_parallel": parallel,
                                                  "routing": routing}})
        return DuplexCostModel(model, dev, 4).iteration_time(shape)[0]

    skew = {"kind": "zipf", "zipf_s": 1.0}
    balanced = {"kind": "balanced"}
    assert time("expert", skew) > time("expert", balanced) * 1.05   # the hot device waits
    assert time("tensor", skew) < time("expert", skew)


# -- layouts and collectives --------------------------------------------------------------------
def topo(devices, per_node=8) -> Topology:
    return Topology.of(devices, per_node, 360e9, 1e-6, 40e9, 5e-6)


@pytest.mark.parametrize("mode, devices, experts, groups, split", [
    ("tensor", 4, 8, 1, 4), ("expert", 4, 8, 4, 1), ("tensor", 16, 8, 2, 8),
    ("expert", 16, 8, 8, 2), ("expert", 8, 64, 8, 1), ("tensor", 1, 8, 1, 1)])
def test_expert_layouts(mode, devices, experts, groups, split):
    lay = ExpertLayout.of(mode, experts, topo(devices))
    assert (lay.groups, lay.split, lay.experts_per_group) == (groups, split, experts // groups)


def test_layout_errors():
    with pytest.raises(HardwareError):
        ExpertLayout.of("tensor", 3, topo(16))
    with pytest.raises(HardwareError):
        Topology.of(12, 8, 1, 0, 1, 0)


def test_one_node_allreduce_is_the_ring():
    for d in (2, 4, 8):
        assert topo(d).allreduce_s(1e6) == pytest.approx(ring_allreduce_time_s(1e6, d, 360e9,
                                                                                1e-6))


def test_two_node_allreduce_adds_the_infiniband_hop_by_hand():
    # 2 x 8: ring over 8 on NVLink (14/8 of 1 MB, 14 steps) + ring over 2 nodes of the 1/8 shard
    expected = 14 / 8 * 1e6 / 360e9 + 14e-6 + 2 / 2 * (1e6 / 8) / 40e9 + 2 * 5e-6
    assert topo(16).allreduce_s(1e6) == pytest.approx(expected)


def test_alltoall_uses_nvlink_inside_and_infiniband_across_nodes():
    one = topo(8).alltoall_s(8e6)                       # 7/8 of 8 MB over NVLink
    assert one == pytest.approx(7e6 / 360e9 + 1e-6)
    two = topo(16).alltoall_s(16e6)                     # 8 MB across nodes dominates
    assert two == pytest.approx(8e6 / 40e9 + 5e-6)
    assert topo(1).alltoall_s(1e6) == 0.0


def test_grok_on_two_nodes_pays_for_infiniband():
    grok, shape = get_model("grok-1"), BatchShape.decode([1000] * 64)

    def time(gb_s: float) -> float:
        dev = load_device("gpu-h100", {"duplex": {"topology": {"inter_node_gb_s": gb_s}}})
        return DuplexCostModel(grok, dev, 16).iteration_time(shape)[0]

    assert time(5.0) > time(50.0) > time(500.0)
