"""sim.cost.ops: per-operator FLOPs and bytes as pure functions of shapes, against hand formulas."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cost.ops import (MOE_EXPERT, Op, LayerDims, activation_cost, attn_decode_cost,
                          attn_prefill_cost, expert_gemm_costs, expert_token_counts, gemm_bytes,
                          gemm_flops, mlp_gemm_shapes, moe_experts_op, norm_cost,
                          residual_add_cost, ring_allreduce_time_s, rotary_cost)
from sim.models import CATALOG

LLAMA = CATALOG["llama-3.1-8b"]
MIXTRAL = CATALOG["mixtral-8x7b"]


# -- LayerDims ---------------------------------------------------------------------------------
def test_layer_dims_llama_tp1_are_the_model_widths():
    d = LayerDims.of(LLAMA, 1)
    assert (d.hidden, d.q_width, d.kv_width, d.heads, d.head_dim) == (4096, 32 * 128, 8 * 128, 32, 128)
    assert (d.mlp_width, d.expert_width, d.shared_expert_width) == (14336, 0, 0)
    assert (d.vocab, d.dtype_bytes, d.gated) == (128256, 2, True)


def test_layer_dims_tp2_halves_heads_mlp_and_vocab_not_hidden():
    d = LayerDims.of(LLAMA, 2)
    assert d.hidden == 4096                     # activations are replicated
    assert (d.heads, d.q_width, d.kv_width) == (16, 16 * 128, 4 * 128)
    assert d.mlp_width == 14336 // 2 == 7168
    assert d.vocab == 128256 // 2 == 64128


def test_layer_dims_kv_heads_replicated_when_fewer_than_tp():
    # 8 KV heads on 16 devices: each device keeps one whole KV head (ceil), not half a head.
    d = LayerDims.of(LLAMA, 16)
    assert d.heads == 2
    assert d.kv_width == 1 * 128
    # vocab that does not divide: ceil
    assert LayerDims.of(LLAMA, 7).vocab == -(-128256 // 7) == 18323


def test_layer_dims_mixtral_expert_width_split_by_tp():
    assert LayerDims.of(MIXTRAL, 1).expert_width == 14336
    assert LayerDims.of(MIXTRAL, 2).expert_width == 7168


# -- elementary costs --------------------------------------------------------------------------
def test_gemm_flops_and_bytes():
    # [3, 5] x [5, 7]: 2*3*5*7 = 210 FLOPs; 15 + 35 + 21 = 71 elements of 2 bytes
    assert gemm_flops(3, 5, 7) == 210
    assert gemm_bytes(3, 5, 7, 2) == 142
    assert gemm_bytes(3, 5, 7, 4) == 284


def test_gemm_on_numpy_arrays_is_elementwise():
    m = np.array([1, 2])
    assert list(gemm_flops(m, 10, 100)) == [2000, 4000]
    assert list(gemm_bytes(m, 10, 100, 1)) == [10 + 1000 + 100, 20 + 1000 + 200]


def test_norm_residual_rotary_activation():
    # RMSNorm on 10 tokens of width 8: 4 FLOPs/element; read x (80), write y (80), weight (8)
    assert norm_cost(10, 8, 2) == (320, (80 + 80 + 8) * 2)
    # residual add: 1 FLOP/element; read two, write one
    assert residual_add_cost(10, 8, 2) == (80, 3 * 80 * 2)
    d = LayerDims.of(LLAMA, 1)
    # rotary over q (4096) and k (1024): 3 FLOPs/element, read + write in place
    assert rotary_cost(10, d) == (3 * 10 * 5120, 2 * 10 * 5120 * 2)
    # gated SiLU-and-mul: 5 FLOPs/output, read gate and up, write out
    assert activation_cost(10, 100, True, 2) == (5000, 3 * 1000 * 2)
    assert activation_cost(10, 100, False, 2) == (4000, 2 * 1000 * 2)


def test_attention_prefill_cost_hand_formula():
    d = LayerDims.of(LLAMA, 1)
    # one chunk of q=100 new tokens after c=50 cached: pairs = 100*50 + 100*101/2 = 10050
    pairs = 100 * 50 + 100 * 101 // 2
    assert pairs == 10050
    flops, nbytes = attn_prefill_cost(100, pairs, 150, d)
    assert flops == 4 * 32 * 128 * 10050
    # read Q (100 x 4096), write O (100 x 4096), read K and V of 150 tokens (2 x 1024 each),
    # write new K and V of 100 tokens
    assert nbytes == (2 * 100 * 4096 + 150 * 2 * 1024 + 100 * 2 * 1024) * 2


def test_attention_decode_cost_hand_formula():
    d = LayerDims.of(LLAMA, 1)
    # 4 sequences reading 4000 keys in total
    flops, nbytes = attn_decode_cost(4, 4000, d)
    assert flops == 4 * 32 * 128 * 4000
    assert nbytes == (2 * 4 * 4096 + 4000 * 2 * 1024 + 4 * 2 * 1024) * 2
    # per key: 4*32*128 = 16384 FLOPs over 2*1024*2 = 4096 bytes of K and V: Op/B tends to 4,
    # the GQA group size (32 query heads / 8 KV heads)
    intensity = flops / nbytes
    assert 3.9 < intensity < 4.0
    # under TP=2 a device reads half the KV and does half the FLOPs
    d2 = LayerDims.of(LLAMA, 2)
    flops2, nbytes2 = attn_decode_cost(4, 4000, d2)
    assert flops2 == flops / 2
    assert nbytes2 == (2 * 4 * 2048 + 4000 * 2 * 512 + 4 * 2 * 512) * 2


# -- MoE routing -------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens, top_k, experts, expected", [
    (1, 2, 8, [1, 1, 0, 0, 0, 0, 0, 0]),
    (4, 2, 8, [1] * 8),
    (5, 2, 8, [2, 2, 1, 1, 1, 1, 1, 1]),
    (100, 2, 8, [25] * 8),
    (0, 2, 8, [0] * 8),
    (3, 8, 128, [1] * 24 + [0] * 104),
])
def test_expert_token_counts_are_balanced(tokens, top_k, experts, expected):
    counts = expert_token_counts(tokens, experts, top_k)
    assert counts.tolist() == expected
    assert counts.sum() == tokens * top_k


# -- MLP and expert GEMMs -----------------------------------------------------------------------
def test_mlp_gemm_shapes_fuse_gate_and_up_when_gated():
    assert mlp_gemm_shapes(4096, 14336, gated=True) == ((4096, 28672), (14336, 4096))
    assert mlp_gemm_shapes(4096, 16384, gated=False) == ((4096, 16384), (16384, 4096))


def test_expert_costs_by_hand():
    # two experts of Mixtral's width (hidden 4096, intermediate 14336, gated), 3 and 5 tokens
    t, h, w = np.array([3, 5]), 4096, 14336
    f_up, b_up, f_down, b_down = expert_gemm_costs(t, h, w, True, 2)
    assert f_up.tolist() == [2 * 3 * h * 2 * w, 2 * 5 * h * 2 * w]
    assert b_up.tolist() == [2 * (c * h + h * 2 * w + c * 2 * w) for c in (3, 5)]
    assert f_down.tolist() == [2 * 3 * w * h, 2 * 5 * w * h]
    assert b_down.tolist() == [2 * (c * w + w * h + c * h) for c in (3, 5)]
    op = moe_experts_op(t, h, w, True, 2, count=32)
    # the op adds the SiLU-and-mul of each expert's tokens: 5 FLOPs and 3 elements per output
    assert (op.kind, op.count) == (MOE_EXPERT, 32)
    assert op.flops == sum(2 * c * h * 2 * w + 2 * c * w * h + 5 * c * w for c in (3, 5))
    assert op.bytes == sum(2 * (c * h + h * 2 * w + c * 2 * w + c * w + w * h + c * h + 3 * c * w)
                           for c in (3, 5))


# -- all-reduce --------------------------------------------------------------------------------
def test_ring_allreduce_time():
    # 1 MB over 4 devices at 100 GB/s, 1 us per step: 2*3/4 * 1e6 / 1e11 + 6 * 1e-6
    t = ring_allreduce_time_s(1e6, 4, 1e11, 1e-6)
    assert t == pytest.approx(1.5e6 / 1e11 + 6e-6, rel=1e-12)
    # two devices: each link carries the whole message once (2*1/2), 2 steps
    assert ring_allreduce_time_s(8e6, 2, 1e11, 0.0) == pytest.approx(8e6 / 1e11, rel=1e-12)
    assert ring_allreduce_time_s(8e6, 1, 1e11, 1e-6) == 0.0


def test_op_intensity():
    assert Op("x", "gemm", 100.0, 50.0).intensity == 2.0
    assert Op("x", "gemm", 100.0, 0.0).intensity == float("inf")
    assert Op("x", "gemm", 1.0, 1.0).count == 1
