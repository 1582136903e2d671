"""Sliding-window, linear and sparse attention: cost by kind, bounded memory, end to end."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.cluster import resolve
from sim.cost.duplex import DuplexCostModel
from sim.cost.model import BatchShape, CostModel
from sim.cost.roofline import op_seconds
from sim.errors import HardwareError, ModelError
from sim.hardware import load_device
from sim.memory.capacity import bounded_kv_bytes_per_device, kv_cache_blocks
from sim.models import get_model
from sim.models.hf_config import check_spec

H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})
L8 = get_model("llama-3.1-8b")
SLIDING = dataclasses.replace(L8, sliding_window=512, sliding_window_layers=16)
LINEAR = dataclasses.replace(L8, linear_attention_layers=28)
SPARSE = dataclasses.replace(L8, sparse_attention_tokens=4096, sparse_attention_dense_tokens=8192,
                             sparse_attention_stride=16)


def _decode_attention_s(cost: CostModel, n: int, keys: int) -> float:
    a, b_seq, b_key = cost._decode_coeffs
    return op_seconds(a * keys, b_seq * n + b_key * keys, cost._decode_rates)


def test_sliding_layers_attend_to_the_window_only():
    cost, full = CostModel(SLIDING, H100, 1), CostModel(L8, H100, 1)
    shape = BatchShape.decode([8000] * 32)
    ctx = shape.decode_context_tokens
    att = cost._attention_part(shape, ctx)[0]
    assert att == pytest.approx(16 * _decode_attention_s(cost, 32, ctx)
                                + 16 * _decode_attention_s(cost, 32, 32 * 512), rel=1e-12)
    assert att < 0.6 * full._attention_part(shape, ctx)[0]
    # below the window the two kinds cost the same
    short = BatchShape.decode([100] * 32)
    assert cost._attention_part(short, short.decode_context_tokens)[0] == pytest.approx(
        full._attention_part(short, short.decode_context_tokens)[0], rel=1e-12)


def test_linear_layers_cost_the_same_at_any_context():
    cost = CostModel(LINEAR, H100, 1)
    short, long = BatchShape.decode([100] * 8), BatchShape.decode([50_000] * 8)
    t_short = cost._attention_part(short, short.decode_context_tokens)[0]
    t_long = cost._attention_part(long, long.decode_context_tokens)[0]
    full_only = 4 * (_decode_attention_s(cost, 8, long.decode_context_tokens)
                     - _decode_attention_s(cost, 8, short.decode_context_tokens))
    assert t_long - t_short == pytest.approx(full_only, rel=1e-9)    # only 4 full layers grow


@pytest.mark.parametrize("model", [SLIDING, LINEAR])
def test_a_decode_run_equals_stepping(model):
    cost = CostModel(model, H100, 1)
    times, energy = cost.decode_run_energy_sum(16, 16 * 600, 40)
    for k in (0, 7, 39):
        assert times[k] == cost.iteration_time(BatchShape(16, 16, 16, 16 * 600 + 16 * k))[0]
    assert energy(40) > 0
    # the op table adds up to the iteration
    shape = BatchShape.decode([3000] * 4)
    it = cost.iteration(shape)
    assert sum(it.breakdown_s.values()) == pytest.approx(it.time_s, rel=1e-9)


def test_bounded_cache_is_set_aside_per_sequence():
    per_seq = bounded_kv_bytes_per_device(SLIDING, 1)
    assert per_seq == SLIDING.kv_bytes_per_sequence == 16 * 512 * 2 * 8 * 128 * 2
    assert SLIDING.kv_bytes_per_token == 16 * 2 * 8 * 128 * 2
    with_seqs = kv_cache_blocks(SLIDING, H100, 1, 16, 0.9, 1e9, max_num_seqs=256)
    without = kv_cache_blocks(SLIDING, H100, 1, 16, 0.9, 1e9)
    block = 16 * SLIDING.kv_bytes_per_token
    assert without - with_seqs == pytest.approx(256 * per_seq / block, abs=1)
    assert bounded_kv_bytes_per_device(LINEAR, 2) == 28 * 32 * 128 * 128 * 4 / 2


def _scenario(model: str, hardware: str, tp: int, **extra) -> Scenario:
    return Scenario.from_dict({
        "model": model, "hardware": hardware, "cluster": {"tensor_parallel": tp},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 4}, "num_requests": 60,
                     "prompt_tokens": {"dist": "uniform", "min": 100, "max": 3000},
                     "output_tokens": {"dist": "uniform", "min": 1, "max": 300}},
        "simulation": {"check_invariants": True}, **extra})


def test_gpt_oss_120b_fits_one_h100_in_mxfp4():
    dep = resolve(_scenario("gpt-oss-120b", "h100-sxm", 1))
    assert dep.model.weight_bits == 4
    assert dep.block_bytes // dep.block_size == 18 * 2 * 8 * 64 * 2 == 36_864
    assert dep.kv_tokens > 100_000
    fast = simulate(_scenario("gpt-oss-120b", "h100-sxm", 1)).requests
    step = simulate(_scenario("gpt-oss-120b", "h100-sxm", 1,
                              simulation={"fast_forward": False})).requests
    assert (fast["state"] == "completed").all()
    pd.testing.assert_frame_equal(fast, step)


def test_minimax_m1_grows_only_in_its_softmax_layers():
    dep = resolve(_scenario("minimax-m1", "h200-sxm", 8))
    # 10 softmax layers x 2 x one KV head per device x 128 x 2 bytes
    assert dep.block_bytes // dep.block_size == 10 * 2 * 1 * 128 * 2
    assert simulate(_scenario("minimax-m1", "h200-sxm", 8)).summary["requests_completed"] == 60


def test_bad_layer_kinds_are_named():
    with pytest.raises(ModelError, match="sliding_window_layers"):
        check_spec(dataclasses.replace(L8, linear_attention_layers=32), "t")
    with pytest.raises(ModelError, match="sliding_window"):
        check_spec(dataclasses.replace(L8, sliding_window_layers=4), "t")
    with pytest.raises(HardwareError, match="sliding-window"):
        DuplexCostModel(SLIDING, load_device("duplex-h100"), 1)
    with pytest.raises(HardwareError, match="sparse attention"):
        DuplexCostModel(SPARSE, load_device("duplex-h100"), 1)
    with pytest.raises(ModelError, match="sparse_attention_stride"):
        check_spec(dataclasses.replace(SPARSE, sparse_attention_stride=0), "t")
    with pytest.raises(ModelError, match="sparse_attention_dense_tokens"):
        check_spec(dataclasses.replace(L8, sparse_attention_dense_tokens=8192), "t")


def test_sparse_attention_reads_the_top_k_blocks_past_the_dense_length():
    cost, full = CostModel(SPARSE, H100, 1), CostModel(L8, H100, 1)
    # below the dense length: dense attention, as the model without sparse attention
    short = BatchShape.decode([6000] * 8)
    assert cost._attention_part(short, short.decode_context_tokens)[0] == \
        full._attention_part(short, short.decode_context_tokens)[0]
    # past it: 4096 keys per sequence + one compressed key (K only: half a key) per 16 tokens
    long = BatchShape.decode([64_000] * 8)
    keys = 8 * 4096 + 8 * 64_001 / 32      # 64,001 keys each with the new token's
    assert cost._attention_part(long, long.decode_context_tokens)[0] == pytest.approx(
        32 * _decode_attention_s(cost, 8, keys), rel=1e-12)
    assert keys < 0.1 * 8 * 64_000
    # the cache still holds every token
    assert SPARSE.kv_bytes_per_token == L8.kv_bytes_per_token
    assert not SPARSE.has_bounded_layers
    assert bounded_kv_bytes_per_device(SPARSE, 1) == 0


def test_sparse_prefill_pairs_by_hand():
    cost, full = CostModel(SPARSE, H100, 1), CostModel(L8, H100, 1)
    # one 32k-token prompt: q = 32k queries, causal pairs q(q+1)/2
    q = 32_768
    shape = BatchShape.from_requests([q], [0], 1)
    pairs = shape.prefill_attn_pairs
    it, dense = cost.iteration(shape), full.iteration(shape)
    expected = q * 4096 + pairs / 32
    assert expected < pairs
    f_sparse = [op for op in it.ops if op.name == "attn_prefill"][0].flops
    f_dense = [op for op in dense.ops if op.name == "attn_prefill"][0].flops
    assert f_sparse / f_dense == pytest.approx(expected / pairs, rel=1e-9)


def test_sparse_decode_run_equals_stepping():
    cost = CostModel(SPARSE, H100, 1)
    times, _ = cost.decode_run_energy_sum(4, 4 * 8100, 30)      # crosses the dense length
    for k in (0, 12, 29):
        assert times[k] == cost.iteration_time(BatchShape(4, 4, 4, 4 * 8100 + 4 * k))[0]


def test_new_hybrid_and_sparse_models_run_end_to_end():
    # Qwen3-Next: 80B in bf16 on 2 H200s; its cache grows in 12 of 48 layers
    dep = resolve(_scenario("qwen3-next-80b-a3b", "h200-sxm", 2))
    assert dep.block_bytes // dep.block_size == 12 * 2 * 1 * 256 * 2
    assert simulate(_scenario("qwen3-next-80b-a3b", "h200-sxm", 2)).summary[
        "requests_completed"] == 60
    # MiniCPM4 with prompts on both sides of its dense length: fast-forward == stepping
    long = {"workload": {"arrivals": {"kind": "poisson", "rate_rps": 2}, "num_requests": 30,
                         "prompt_tokens": {"dist": "uniform", "min": 4000, "max": 12000},
                         "output_tokens": {"dist": "uniform", "min": 1, "max": 400}}}
    fast = simulate(_scenario("minicpm4-8b", "h100-sxm", 1, **long)).requests
    step = simulate(_scenario("minicpm4-8b", "h100-sxm", 1, **long,
                              simulation={"fast_forward": False,
                                          "check_invariants": True})).requests
    assert (fast["state"] == "completed").all()
    pd.testing.assert_frame_equal(fast, step)
