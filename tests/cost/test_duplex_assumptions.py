"""``duplex.assumptions: paper``: the Duplex authors' simulator's rules, each checked by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.cost.duplex import DuplexCostModel, greedy_split
from sim.cost.model import BatchShape, CostModel
from sim.cost.moe_routing import distinct_uniform_counts
from sim.cost.op_table import batch_shape
from sim.cost.ops import attn_decode_cost, gemm_bytes, gemm_flops
from sim.cost.parallel import ExpertLayout, Topology
from sim.config import ConfigValueError
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.hardware.calibration.learned import learned_calibration
from sim.hardware.duplex import PAPER_ASSUMPTIONS
from sim.models import get_model

MIXTRAL, LLAMA8 = get_model("mixtral-8x7b"), get_model("llama-3.1-8b")
PAPER = {"duplex": {"assumptions": "paper"}}


def paper(profile: str = "duplex-h100", **duplex) -> object:
    return load_device(profile, {"duplex": {"assumptions": "paper", **duplex}})


def placed(cost: DuplexCostModel, shape: BatchShape) -> dict:
    return {p.op.name: p for p in cost.placed_ops(shape)}


# -- the overlay -------------------------------------------------------------------------------
def test_paper_mode_sets_the_authors_numbers():
    d = paper()
    assert dataclasses.astuple(d.efficiency) == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert d.idle_w == 0.0
    assert (d.pim.compute_efficiency, d.pim.memory_efficiency, d.pim.kernel_launch_s) == \
        (1.0, 1.0, 0.0)
    assert d.interconnect_bandwidth == 450e9 and d.interconnect_latency_s == pytest.approx(0.8e-6)
    assert d.inter_node_bandwidth == 50e9 and d.inter_node_latency_s == pytest.approx(0.13e-6)
    assert d.placement.policy == "fastest_allowed" and d.collectives == "paper"
    assert d.coprocessing.expert_split == "greedy" and d.coprocessing.expert_groups == 4
    assert not d.bundle_contention and not d.embedding_and_lm_head
    # the profile's own numbers are kept where the authors' simulator uses them
    real = load_device("duplex-h100")
    assert (d.pim.flops, d.pim.bandwidth, d.energy_pj_per_hbm_byte) == \
        (real.pim.flops, real.pim.bandwidth, real.energy_pj_per_hbm_byte)


def test_realistic_mode_is_the_profile_as_written():
    assert load_device("duplex-h100", {"duplex": {"assumptions": "realistic"}}) == \
        load_device("duplex-h100")


def test_a_scenario_override_wins_over_the_paper_overlay():
    d = load_device("duplex-h100", {"duplex": {"assumptions": "paper",
                                               "pim": {"efficiency": {"compute": 0.5}}},
                                    "power": {"idle_w": 30}})
    assert d.pim.compute_efficiency == 0.5 and d.pim.memory_efficiency == 1.0
    assert d.idle_w == 30 and d.efficiency.compute == 1.0


def test_paper_mode_on_the_gpu_baseline_has_no_pim():
    d = paper("gpu-h100")
    assert d.pim is None and d.efficiency.memory == 1.0 and d.idle_w == 0.0


def test_a_bad_assumptions_value_is_named():
    with pytest.raises(ScenarioError, match=r"duplex\.assumptions.*paper"):
        load_device("duplex-h100", {"duplex": {"assumptions": "optimistic"}})


def test_the_overlay_only_names_fields_of_the_profile_schema():
    # every key is a real field: loading with the overlay as overrides must not complain
    load_device("duplex-h100", PAPER_ASSUMPTIONS)


# -- op costs by hand --------------------------------------------------------------------------
def test_a_gemm_costs_its_roofline_at_peak_without_launch():
    cost = DuplexCostModel(MIXTRAL, paper(), 1)
    row = placed(cost, BatchShape.decode([100] * 4))["qkv_proj"]
    n = 4096 + 2 * 1024
    flops, nbytes = gemm_flops(4, 4096, n), gemm_bytes(4, 4096, n, 2)
    assert row.processor == "xpu"      # dense layers stay on the xPU even where the PIM is faster
    assert row.seconds == pytest.approx(32 * max(flops / 989.4e12, nbytes / 3352e9), rel=1e-12)
    pim_seconds = max(flops / 106.5e12, nbytes / 13408e9)
    assert pim_seconds < row.seconds / 32


def test_decode_attention_runs_on_the_pim_at_its_peak():
    cost = DuplexCostModel(MIXTRAL, paper(), 1)
    row = placed(cost, BatchShape.decode([999] * 8))["attn_decode"]
    flops, nbytes = attn_decode_cost(8, 8000, cost.dims)
    assert row.processor == "pim"
    assert row.seconds == pytest.approx(32 * max(flops / 106.5e12, nbytes / 13408e9), rel=1e-12)


def test_experts_go_to_the_faster_unit():
    cost = DuplexCostModel(MIXTRAL, paper(), 1)
    few = placed(cost, BatchShape.decode([100] * 16))["moe_experts"]      # 4 tokens per expert
    many = placed(cost, batch_shape(0, 0, prefill_tokens=2048))["moe_experts"]
    assert few.processor == "pim" and many.processor == "xpu"


def test_embedding_and_lm_head_cost_nothing_and_there_is_no_overhead():
    cost = DuplexCostModel(MIXTRAL, paper(), 1)
    shape = BatchShape.decode([100] * 16)
    rows = placed(cost, shape)
    assert "embedding" not in rows and "lm_head" not in rows
    time_s, energy_j = cost.iteration_time(shape)
    assert time_s == pytest.approx(sum(p.seconds for p in rows.values()), rel=1e-12)
    # dynamic energy only: no static power
    assert energy_j == pytest.approx(sum(p.joules for p in rows.values()), rel=1e-12)
    real = DuplexCostModel(MIXTRAL, load_device("duplex-h100"), 1)
    assert "lm_head" in placed(real, shape)


def test_co_processed_stages_join_by_a_max_without_contention():
    shape = batch_shape(32, 2000, prefill_tokens=1024)
    cop = {"coprocessing": {"attention": True}}
    free = DuplexCostModel(MIXTRAL, paper(**cop), 1)
    shared = DuplexCostModel(MIXTRAL, paper(bundle_contention=True, **cop), 1)
    assert free.iteration_time(shape)[0] <= shared.iteration_time(shape)[0]
    # attention alone: prefill on the xPU and decode on the PIM overlap fully
    rows = placed(free, shape)
    serial = rows["attn_prefill"].seconds + rows["attn_decode"].seconds
    overlap = rows["attn_overlap"].seconds
    assert serial + overlap == pytest.approx(max(rows["attn_prefill"].seconds,
                                                 rows["attn_decode"].seconds), rel=1e-12)


# -- expert co-processing: the greedy split ------------------------------------------------------
def test_greedy_split_moves_heaviest_groups_while_the_time_falls():
    # stage[j]: time with the j least-loaded of 8 experts on the PIM; groups of 2 (4 groups)
    stage = np.array([9.0, 8.5, 8.0, 7.5, 5.0, 6.0, 4.0, 4.5, 7.0])
    # candidates 8, 6, 4, 2, 0: 7.0 -> 4.0 (falls) -> 5.0 (rises): stop at 6
    assert greedy_split(stage, 4) == 6
    assert int(np.argmin(stage)) == 6
    # a local minimum the greedy search stops at, where the optimum is further on
    trap = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 3.0, 4.0, 7.0])
    assert greedy_split(trap, 4) == 6 and int(np.argmin(trap)) == 0


def test_greedy_split_steps_one_expert_at_a_time_with_few_experts():
    stage = np.array([[5.0, 4.0, 3.0, 4.0, 6.0]])          # 4 experts, 4 groups: one each
    assert greedy_split(stage, 4).tolist() == [2]
    falling = np.array([4.0, 3.0, 2.0, 1.5, 9.0])
    assert greedy_split(falling, 4) == 3
    always = np.array([1.0, 2.0, 3.0, 4.0, 5.0])            # falls all the way to all-on-xPU
    assert greedy_split(always, 4) == 0


def test_paper_coprocessing_uses_the_greedy_split():
    shape = BatchShape.decode([1000] * 128)
    cop = {"coprocessing": {"attention": True, "experts": True}, "expert_parallel": "tensor"}
    greedy = DuplexCostModel(MIXTRAL, paper(**cop), 4)
    best = DuplexCostModel(MIXTRAL, paper(expert_parallel="tensor", coprocessing={
        "attention": True, "experts": True, "expert_split": "optimal"}), 4)
    assert greedy.iteration_time(shape)[0] >= best.iteration_time(shape)[0] * (1 - 1e-12)
    # 8 experts per group move in groups of 2: an even number of them stays on the PIM
    where = placed(greedy, shape)["moe_experts"].processor
    k = 8 if where == "pim" else 0 if where == "xpu" else int(where.split(":")[1].split("/")[0])
    assert k % 2 == 0


# -- collectives -------------------------------------------------------------------------------
def test_paper_allreduce_by_hand():
    topo = Topology.of(16, 8, 450e9, 0.8e-6, 50e9, 0.13e-6, "paper")
    message = 64 * 6144 * 2
    # a ring over all 16 devices at NVLink parameters, across the two nodes too
    assert topo.allreduce_s(message) == pytest.approx(30 * 0.8e-6 + message / 16 / 450e9)


def test_paper_moe_dispatch_by_hand():
    topo = Topology.of(16, 8, 450e9, 0.8e-6, 50e9, 0.13e-6, "paper")
    ep = ExpertLayout.of("expert", 8, topo)            # 8 groups of 2 devices
    row = 6144 * 2
    remote = 128 * 2 * 7 / 8 * row / 16                # bound for other groups, per device
    ring = 2 * 0.8e-6 + 128 * row / 2 / 450e9          # the 2 devices splitting an expert
    assert ep.comm_s(topo, 128, 2, row, decode_only=True) == pytest.approx(
        remote / 50e9 + 0.13e-6 + ring)
    assert ep.comm_s(topo, 128, 2, row, decode_only=False) == pytest.approx(
        remote / 450e9 + 0.8e-6 + ring)
    one_node = Topology.of(4, 8, 450e9, 0.8e-6, 50e9, 0.13e-6, "paper")
    et = ExpertLayout.of("tensor", 8, one_node)        # one group: no dispatch, a 4-way ring
    assert et.comm_s(one_node, 64, 2, row, True) == pytest.approx(
        6 * 0.8e-6 + 64 * row / 4 / 450e9)


# -- routing: distinct experts -------------------------------------------------------------------
def test_uniform_routing_picks_distinct_experts():
    rng = np.random.default_rng(3)
    counts = distinct_uniform_counts(rng, 4000, 64, 8, 2)
    assert (counts.sum(axis=1) == 128).all() and counts.max() <= 64
    # variance per expert: T k/E (1 - k/E) (E - k)/(E - 1)... for distinct picks, 0.1875 T here;
    # independent slots would give 0.219 T
    assert counts.var() == pytest.approx(0.1875 * 64, rel=0.05)
    one = distinct_uniform_counts(np.random.default_rng(0), 500, 1, 3, 3)
    assert (one == 1).all()                            # every expert exactly once


# -- arrivals: a warm start ----------------------------------------------------------------------
def test_initial_requests_arrive_together_then_the_process_runs():
    from sim.workload.arrivals import ArrivalConfig, arrival_times
    cfg = ArrivalConfig(kind="constant", rate_rps=4.0, start_s=1.0, initial_requests=3)
    times = arrival_times(cfg, 7, np.random.default_rng(0))
    assert times.tolist() == [1.0, 1.0, 1.0, 1.0, 1.25, 1.5, 1.75]
    with pytest.raises(ConfigValueError, match="initial_requests"):
        ArrivalConfig(kind="closed_loop", clients=4, initial_requests=2)


# -- a calibrated xPU ----------------------------------------------------------------------------
def test_a_calibrated_xpu_prices_its_ops_from_the_calibration():
    # the learned GEMM curves on the GPU baseline's xPU: dense GEMMs cost what CostModel says
    device = dataclasses.replace(load_device("gpu-h100"), calibration=learned_calibration())
    duplex, gpu = DuplexCostModel(LLAMA8, device, 1), \
        CostModel(LLAMA8, dataclasses.replace(device, kind="gpu"), 1)
    shape = BatchShape.decode([500] * 16)
    ours = placed(duplex, shape)["qkv_proj"]
    op = next(o for o in gpu.token_ops(16, 16) if o.name == "qkv_proj")
    assert ours.seconds == pytest.approx(op.count * gpu._op_seconds(op, 16), rel=1e-12)
    plain = placed(DuplexCostModel(LLAMA8, load_device("gpu-h100"), 1), shape)["qkv_proj"]
    assert ours.seconds != pytest.approx(plain.seconds, rel=1e-3)


# -- end to end ----------------------------------------------------------------------------------
def test_a_paper_mode_run_spends_dynamic_energy_only():
    data = {"name": "paper", "seed": 0, "model": "mixtral-8x7b",
            "hardware": {"name": "duplex-h100", "duplex": {"assumptions": "paper",
                                                           "routing": {"kind": "uniform"}}},
            "cluster": {"tensor_parallel": 4},
            "scheduler": {"name": "fcfs", "max_num_seqs": 16, "chunked_prefill": False},
            "workload": {"arrivals": {"kind": "constant", "rate_rps": 4.0, "initial_requests": 8},
                         "num_requests": 24, "prompt_tokens": {"dist": "fixed", "value": 512},
                         "output_tokens": {"dist": "fixed", "value": 64}}}
    result = simulate(Scenario.from_dict(data))
    assert result.summary["requests_completed"] == 24
    it = result.iterations
    assert result.summary["energy_j"] == pytest.approx(float(it["energy_j"].sum()), rel=1e-9)
    # prefill-only iterations: an iteration with a prefill has no decodes
    assert ((it["prefill_tokens"] == 0) | (it["decode_tokens"] == 0)).all()
