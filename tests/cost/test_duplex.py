"""DuplexCostModel: Op/B by hand, placement, co-processing bounds, energy by hand, exactness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim
from sim.cost.duplex import DuplexCostModel
from sim.cost.factory import COST_MODELS
from sim.cost.model import BatchShape, CostModel
from sim.cost.op_table import batch_shape, op_table
from sim.cost.ops import gemm_bytes, gemm_flops
from sim.hardware import load_device
from sim.models import get_model

MIXTRAL, LLAMA70, OPT = (get_model("mixtral-8x7b"), get_model("llama-3.1-70b"),
                         get_model("opt-66b"))
COPROCESS = {"coprocessing": {"attention": True, "experts": True}}


def duplex(model=MIXTRAL, tp=1, profile="duplex-h100", **section) -> DuplexCostModel:
    device = load_device(profile, {"duplex": section} if section else None)
    return DuplexCostModel(model, device, tp)


def placed(cost: DuplexCostModel, shape: BatchShape) -> dict:
    return {p.op.name: p for p in cost.placed_ops(shape)}


DECODE = BatchShape.decode([2000] * 32)
MIXED = batch_shape(32, 2000, prefill_tokens=1024)


# -- Op/B ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [8, 16, 64])
def test_expert_op_b_is_about_the_tokens_routed_to_it(batch):
    cost = duplex()
    tokens = batch * MIXTRAL.top_k // MIXTRAL.num_experts        # balanced: per expert
    op = placed(cost, BatchShape.decode([100] * batch))["moe_experts"].op
    # by hand, one expert of c tokens: up [c,4096]x[4096,2*14336], act, down [c,14336]x[14336,4096]
    c, h, w = tokens, 4096, 14336
    flops = 2 * c * h * 2 * w + 5 * c * w + 2 * c * w * h
    nbytes = 2 * (c * h + h * 2 * w + c * 2 * w + 3 * c * w + c * w + w * h + c * h)
    assert op.flops == pytest.approx(8 * flops)
    assert op.bytes == pytest.approx(8 * nbytes)
    assert 0.97 * tokens < op.intensity < tokens


@pytest.mark.parametrize("model, group", [(MIXTRAL, 4), (LLAMA70, 8), (OPT, 1)])
def test_decode_attention_op_b_is_about_the_gqa_group(model, group):
    cost = duplex(model, tp=4) if model.is_moe else DuplexCostModel(
        model, load_device("duplex-h100"), 4)
    op = placed(cost, DECODE)["attn_decode"].op
    assert model.gqa_group_size == group
    assert 0.97 * group < op.intensity <= group


# -- placement ------------------------------------------------------------------------------------
def test_paper_placement():
    cost = duplex()
    dec, mix = placed(cost, DECODE), placed(cost, MIXED)
    assert dec["attn_decode"].processor == "pim" and dec["moe_experts"].processor == "pim"
    assert dec["qkv_proj"].processor == "xpu" and dec["lm_head"].processor == "xpu"
    # with a prefill in the iteration the experts get many tokens: xPU; decode attention stays
    assert mix["moe_experts"].processor == "xpu" and mix["attn_decode"].processor == "pim"
    assert mix["attn_prefill"].processor == "xpu"


def test_fastest_placement_follows_the_rooflines():
    cost = duplex(placement={"policy": "fastest"})
    dec = placed(cost, BatchShape.decode([2000] * 8))
    assert dec["attn_decode"].processor == "pim"        # Op/B 4 < ridge 8
    assert dec["input_norm"].processor == "pim"         # elementwise: bandwidth-bound
    big = placed(cost, batch_shape(0, 0, prefill_tokens=4096))
    assert big["qkv_proj"].processor == "xpu" and big["attn_prefill"].processor == "xpu"
    assert big["moe_experts"].processor == "xpu"        # ~1000 tokens per expert


def test_threshold_placement_reads_its_yaml_numbers():
    below = duplex(placement={"policy": "threshold", "pim_max_op_b": 3.0})
    above = duplex(placement={"policy": "threshold", "pim_max_op_b": 5.0})
    assert placed(below, DECODE)["attn_decode"].processor == "xpu"     # Op/B ~4 > 3
    assert placed(above, DECODE)["attn_decode"].processor == "pim"
    assert placed(above, DECODE)["moe_experts"].processor == "xpu"     # 8 tokens each > 5
    none = duplex(placement={"policy": "threshold", "pim_kinds": []})
    assert {p.processor for p in none.placed_ops(DECODE)} == {"xpu"}


def test_no_pim_means_everything_on_the_xpu():
    cost = DuplexCostModel(MIXTRAL, load_device("gpu-h100"), 4)
    assert {p.processor for p in cost.placed_ops(MIXED)} == {"xpu"}


# -- co-processing --------------------------------------------------------------------------------
SINGLE = {  # every way to put attention and experts on one processor each
    "paper": {},
    "all_xpu": {"placement": {"policy": "threshold", "pim_kinds": []}},
    "all_pim": {"placement": {"policy": "threshold", "pim_max_op_b": 1e9,
                              "pim_kinds": ["attn_decode", "attn_prefill", "moe_expert"]}},
}


@pytest.mark.parametrize("profile", ["duplex-h100", "bankpim-h100"])
@pytest.mark.parametrize("parallel", ["expert", "tensor"])
@pytest.mark.parametrize("shape", [BatchShape.decode([3000] * 8), BatchShape.decode([500] * 128),
                                   batch_shape(64, 4000, 512), batch_shape(16, 1000, 2048)])
def test_coprocessing_is_never_slower_than_the_best_single_placement(profile, parallel, shape):
    # the paper policy keeps the other ops on the xPU, as every variant below does
    co = duplex(tp=4, profile=profile, expert_parallel=parallel, routing={"kind": "uniform"},
                **COPROCESS)
    t_co = co.iteration_time(shape)[0]
    for name, cfg in SINGLE.items():
        single = duplex(tp=4, profile=profile, expert_parallel=parallel,
                        routing={"kind": "uniform"}, **cfg)
        assert t_co <= single.iteration_time(shape)[0] * (1 + 1e-12), name


def test_expert_coprocessing_moves_least_loaded_experts_at_high_batch():
    # 128 decode tokens x top-2 / 8 experts = 32 tokens each: compute-bound on the PIM alone,
    # so the best split keeps some experts on the xPU
    co = duplex(tp=4, expert_parallel="tensor", **COPROCESS)
    row = placed(co, BatchShape.decode([1000] * 128))["moe_experts"]
    assert row.processor.startswith("xpu+pim:")
    k = int(row.processor.split(":")[1].split("/")[0])
    assert 0 < k < 8


# -- energy ---------------------------------------------------------------------------------------
def test_energy_of_one_op_by_hand():
    cost = duplex()
    shape = BatchShape.decode([999])            # one request reading 1000 keys
    row = placed(cost, shape)["attn_decode"]
    d = cost.dims
    flops = 4.0 * d.heads * d.head_dim * 1000
    nbytes = (2 * d.q_width + 1000 * 2 * d.kv_width + 2 * d.kv_width) * 2
    pj = 0.23 * flops + (14.5 + 0.888) * nbytes         # Logic-PIM path + row activation
    assert row.processor == "pim"
    assert row.joules == pytest.approx(MIXTRAL.num_layers * pj * 1e-12)
    qkv = placed(cost, shape)["qkv_proj"]
    n = d.q_width + 2 * d.kv_width
    pj = 0.23 * gemm_flops(1, 4096, n) + (27.84 + 0.888) * gemm_bytes(1, 4096, n, 2)
    assert qkv.processor == "xpu" and qkv.joules == pytest.approx(32 * pj * 1e-12)


def test_iteration_energy_is_static_plus_dynamic():
    cost = duplex(tp=4)
    time_s, energy_j = cost.iteration_time(DECODE)
    dynamic = sum(p.joules for p in cost.placed_ops(DECODE))
    assert energy_j == pytest.approx(80.0 * 4 * time_s + dynamic)


def test_pim_moves_bytes_for_less_energy_than_the_gpu():
    gpu = DuplexCostModel(MIXTRAL, load_device("gpu-h100"), 4)
    dup = duplex(tp=4)
    assert dup.iteration_time(DECODE)[1] < gpu.iteration_time(DECODE)[1]


# -- consistency ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("shape", [DECODE, MIXED])
def test_a_gpu_costs_the_same_as_in_cost_model(tp, shape):
    # the Duplex model costs its xPU on the fixed-efficiency roofline (it reads no calibration,
    # learned curves included): the same as CostModel on a GPU pinned to that roofline
    h100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})
    base, ours = CostModel(MIXTRAL, h100, tp), DuplexCostModel(MIXTRAL, h100, tp)
    assert ours.iteration_time(shape) == pytest.approx(base.iteration_time(shape), rel=1e-12)
    gpu = DuplexCostModel(MIXTRAL, load_device("gpu-h100"), tp)     # row activation energy too
    assert gpu.iteration_time(shape)[0] == pytest.approx(base.iteration_time(shape)[0], rel=1e-12)


@pytest.mark.parametrize("shape", [DECODE, MIXED])
def test_op_table_adds_up_to_the_iteration(shape):
    cost = duplex(tp=4, routing={"kind": "uniform"}, **COPROCESS)
    frame = op_table(cost, shape)
    assert frame["time_s"].sum() == pytest.approx(cost.iteration_time(shape)[0], rel=1e-9)
    assert frame["share"].sum() == pytest.approx(1.0, rel=1e-9)


def test_registry():
    assert COST_MODELS["gpu"] is CostModel and COST_MODELS["duplex"] is DuplexCostModel


@pytest.mark.parametrize("section", [
    {"routing": {"kind": "uniform", "seed": 7}, **COPROCESS},
    {"routing": {"kind": "zipf", "zipf_s": 0.8}, "expert_parallel": "tensor",
     "placement": {"policy": "fastest"}},
])
def test_decode_run_is_bit_identical_to_stepping(section):
    cost = duplex(tp=4, **section)
    n, first, steps = 24, 24 * 700, 300
    times, energies = cost.decode_run(n, first, steps)
    for i in (0, 1, 17, 150, 299):
        shape = BatchShape.from_requests([1] * n, [700 + i - 1] * n, n)
        assert shape.decode_context_tokens == first + n * i
        assert (times[i], energies[i]) == cost.iteration_time(shape)
    assert len(set(times.tolist())) > steps // 2      # routing differs from step to step


def _scenario(fast_forward: bool) -> sim.Scenario:
    return sim.Scenario.from_dict({
        "name": "duplex-ff", "seed": 3, "model": "mixtral-8x7b",
        "hardware": {"name": "duplex-h100", "duplex": {"routing": {"kind": "uniform", "seed": 1},
                                                       **COPROCESS}},
        "cluster": {"replicas": 2, "tensor_parallel": 4},
        "scheduler": {"name": "fcfs", "max_num_seqs": 24, "max_batched_tokens": 1024},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 8}, "num_requests": 120,
                     "prompt_tokens": {"dist": "normal", "mean": 600, "std": 200, "max": 2000},
                     "output_tokens": {"dist": "normal", "mean": 150, "std": 60, "max": 400}},
        "simulation": {"fast_forward": fast_forward, "check_invariants": True}})


def test_fast_forward_equals_stepping_on_a_duplex():
    ff, step = sim.simulate(_scenario(True)), sim.simulate(_scenario(False))
    pd.testing.assert_frame_equal(ff.requests, step.requests, check_exact=True)
    # a run's energy is summed in one call, so the total may differ in the last bits
    assert ff.summary["energy_j"] == pytest.approx(step.summary["energy_j"], rel=1e-12)
    assert len(ff.iterations) < len(step.iterations)
    assert ff.summary["requests_completed"] == 120
    assert np.all(ff.iterations["energy_j"] > 0)
    assert ff.summary["energy_j_per_output_token"] > 0


def test_decode_run_with_shared_prefix_reads_matches_stepping():
    cost = duplex(tp=2, routing={"kind": "uniform"})
    n, first, shared = 8, 8 * 900, 3000
    times, energies = cost.decode_run(n, first, 50, shared)
    shape = BatchShape.from_requests([1] * n, [899 + 20] * n, n, shared)
    assert (times[20], energies[20]) == cost.iteration_time(shape)
    assert times[20] < cost.decode_run(n, first, 50)[0][20]      # fewer KV bytes
