"""Multi-head latent attention and low-precision weights and KV: every term by hand."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sim import Scenario, simulate
from sim.cluster import resolve
from sim.cost.model import BatchShape, CostModel
from sim.cost.ops import LayerDims, attn_decode_cost, attn_prefill_cost, gemm_bytes, gemm_flops
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.memory import kv_bytes_per_token_per_device
from sim.models import get_model
from sim.models.spec import ModelSpec

# DeepSeek-V3's shape (deepseek-ai/DeepSeek-V3 config.json), built here so that these tests do
# not depend on the catalog
DSV3 = ModelSpec(
    name="dsv3", num_layers=61, hidden_size=7168, num_heads=128, num_kv_heads=128, head_dim=192,
    intermediate_size=18432, vocab_size=129280, max_context_tokens=163840, q_lora_rank=1536,
    kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
    num_experts=256, top_k=8, expert_intermediate_size=2048, num_shared_experts=1,
    shared_expert_intermediate_size=2048, first_k_dense_layers=3, moe_layer_interval=1)
H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})
L8 = get_model("llama-3.1-8b")


def test_mla_parameters_and_kv_bytes_by_hand():
    assert DSV3.num_moe_layers == 58 and DSV3.num_dense_layers == 3
    q = 7168 * 1536 + 1536 + 1536 * 128 * 192
    kv = 7168 * 576 + 512 + 512 * 128 * 256
    assert DSV3.attention_params_per_layer == q + kv + 128 * 128 * 7168
    assert DSV3.num_params == pytest.approx(671e9, rel=0.01)
    assert DSV3.num_active_params == pytest.approx(37e9, rel=0.03)
    assert DSV3.kv_bytes_per_token == 61 * (512 + 64) * 2 == 70_272


@pytest.mark.parametrize("tp", [1, 8])
def test_mla_decode_attention_reads_the_latent_once_for_all_heads(tp):
    d = LayerDims.of(DSV3, tp)
    heads = 128 // tp
    flops, nbytes = attn_decode_cost(4, 4 * 1000, d)
    assert flops == 2 * heads * (576 + 512) * 4000
    # per sequence: the latent query read and the output written (bf16), the new latent
    # written; per key: the cached latent read
    assert nbytes == 4 * heads * (576 + 512) * 2 + 4 * 576 * 2 + 4000 * 576 * 2
    # the latent is one vector for all heads: every device of the TP group holds it whole
    assert kv_bytes_per_token_per_device(DSV3, tp) == 70_272


def test_mla_prefill_attention_by_hand():
    d = LayerDims.of(DSV3, 8)
    q, c = 512, 1000                         # a 512-token chunk after 1,000 cached tokens
    pairs = q * c + q * (q + 1) // 2
    flops, nbytes = attn_prefill_cost(q, pairs, c + q, d)
    assert flops == 2 * 16 * (192 + 128) * pairs + 2 * c * 512 * 16 * (128 + 128)
    assert nbytes == q * 16 * (192 + 128) * 2 + (c + 2 * q) * 576 * 2


def test_mla_projections():
    one, eight = CostModel(DSV3, H100, 1), CostModel(DSV3, H100, 8)
    ops1 = {o.name: o for o in one.token_ops(16, 16)}
    ops8 = {o.name: o for o in eight.token_ops(16, 16)}
    assert {"q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj", "o_proj"} <= set(ops8)
    assert "qkv_proj" not in ops8
    # the latent projection is replicated; the per-head ones are split
    assert ops8["kv_a_proj"].flops == ops1["kv_a_proj"].flops == gemm_flops(16, 7168, 576)
    assert ops8["kv_b_proj"].flops * 8 == ops1["kv_b_proj"].flops == \
        gemm_flops(16, 512, 128 * 256)
    assert ops8["o_proj"].bytes == gemm_bytes(16, 16 * 128, 7168, 2)


def test_fp8_kv_halves_the_cache_and_its_reads():
    fp8 = dataclasses.replace(L8, kv_dtype_bytes=1)
    assert kv_bytes_per_token_per_device(fp8, 1) * 2 == kv_bytes_per_token_per_device(L8, 1)
    d16, d8 = LayerDims.of(L8), LayerDims.of(fp8)
    f16, b16 = attn_decode_cost(1, 1000, d16)
    f8, b8 = attn_decode_cost(1, 1000, d8)
    assert f16 == f8
    # the query and output stay bf16; keys and values are read at one byte
    assert b8 == 2 * 4096 * 2 + (1000 + 1) * 2 * 1024 * 1
    assert b16 == 2 * 4096 * 2 + (1000 + 1) * 2 * 1024 * 2


def test_fp8_weights_halve_the_weight_bytes_and_run_at_the_fp8_rate():
    fp8 = dataclasses.replace(L8, weight_bits=8)
    base, quant = CostModel(L8, H100, 1), CostModel(fp8, H100, 1)
    qkv16 = next(o for o in base.token_ops(1, 1) if o.name == "qkv_proj")
    qkv8 = next(o for o in quant.token_ops(1, 1) if o.name == "qkv_proj")
    n = 4096 + 2 * 1024
    assert qkv8.bytes == (4096 + n) * 2 + 4096 * n * 1.0
    assert qkv16.bytes == gemm_bytes(1, 4096, n, 2)
    # a large (compute-bound) GEMM runs twice as fast at the FP8 rate
    big16 = next(o for o in base.token_ops(8192, 1) if o.name == "mlp_up")
    big8 = next(o for o in quant.token_ops(8192, 1) if o.name == "mlp_up")
    assert quant._op_seconds(big8, 8192) == pytest.approx(
        base._op_seconds(big16, 8192) / 2, rel=0.02)
    # embeddings and the LM head stay bf16
    assert fp8.weight_bytes == pytest.approx(
        (L8.num_params - L8.embedding_params - 32 * 2 * 4096 - 4096) * 1
        + (L8.embedding_params + 32 * 2 * 4096 + 4096) * 2)


def test_four_bit_weights_move_a_quarter_and_compute_in_bf16():
    w4 = dataclasses.replace(L8, weight_bits=4)
    base, quant = CostModel(L8, H100, 1), CostModel(w4, H100, 1)
    assert quant._gemm_rates is quant.rates
    up = next(o for o in quant.token_ops(1, 1) if o.name == "mlp_up")
    assert up.bytes == (4096 + 2 * 14336) * 2 + 4096 * 2 * 14336 * 0.5
    decode16 = base.iteration_time(BatchShape.decode([1000]))[0]
    decode4 = quant.iteration_time(BatchShape.decode([1000]))[0]
    assert decode4 < 0.5 * decode16        # weight-bound decode: ~a quarter of the bytes


def _scenario(**extra) -> Scenario:
    return Scenario.from_dict({
        "model": "llama-3.1-70b", "hardware": "h100-sxm", "cluster": {"tensor_parallel": 4},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 2}, "num_requests": 30,
                     "prompt_tokens": {"dist": "fixed", "value": 500},
                     "output_tokens": {"dist": "fixed", "value": 50}}, **extra})


def test_precision_in_a_scenario_changes_memory_and_speed():
    base = resolve(_scenario())
    fp8 = resolve(_scenario(precision={"weights": "fp8", "kv_cache": "fp8"}))
    assert fp8.model.weight_bits == 8 and fp8.model.kv_dtype_bytes == 1
    # half the weights' bytes free memory, and each token's KV takes half: far more tokens
    assert fp8.kv_tokens > 2 * base.kv_tokens
    slow = simulate(_scenario()).summary["tpot_s"]["p50"]
    fast = simulate(_scenario(precision={"weights": "fp8"})).summary["tpot_s"]["p50"]
    assert fast < 0.75 * slow
    same = resolve(_scenario(precision={"weights": "bf16"}))
    assert same.model == base.model                         # bf16 is the model's own
    assert _scenario(precision={"kv_cache": "fp8"}).to_dict()["precision"] == \
        {"weights": "auto", "kv_cache": "fp8"}
    assert "precision" not in _scenario().to_dict()


def test_a_bad_precision_is_named():
    with pytest.raises(ScenarioError, match=r"precision\.weights.*fp8"):
        _scenario(precision={"weights": "fp6"})


def test_deepseek_v3_on_eight_h200s_with_fp8_weights():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scenarios" / "deepseek-v3-h200.yaml"
    dep = resolve(Scenario.from_yaml(path))
    assert dep.model.weight_bits == 8 and dep.tensor_parallel == 8
    assert dep.block_bytes // dep.block_size == 61 * (512 + 64) * 2 == 70_272
    # in bf16 the weights (1.34 TB) would not fit 8 x 141 GB; in FP8 ~84 GB per GPU
    from sim.memory.capacity import weight_bytes_per_device
    assert 80e9 < weight_bytes_per_device(dep.model, 8) < 90e9
    assert dep.kv_tokens > 500_000
    with pytest.raises(Exception, match="does not fit"):
        resolve(Scenario.from_yaml(path, ["precision.weights=bf16"]))


def test_kv_compression_scales_the_cache_and_its_reads():
    from sim.scenario import KvCompressionConfig

    cfg = KvCompressionConfig(bits=4, merge_from=0.5, retained=0.05, flops_per_value=0.1)
    assert cfg.ratio == pytest.approx(0.25 * (0.5 + 0.5 * 0.55))       # 5.16x smaller
    model = cfg.apply(L8)
    assert model.kv_bytes_per_token == math.ceil(L8.kv_bytes_per_token * cfg.ratio)
    assert kv_bytes_per_token_per_device(model, 1) == math.ceil(32 * 2 * 8 * 128 * 2 * cfg.ratio)
    plain, small = LayerDims.of(L8), LayerDims.of(model)
    f0, b0 = attn_decode_cost(1, 1000, plain)
    f1, b1 = attn_decode_cost(1, 1000, small)
    # keys and values read at the compressed size; 0.1 FLOP per value to dequantise
    assert b1 == pytest.approx(2 * 4096 * 2 + 1001 * 2 * 1024 * 2 * cfg.ratio)
    assert f1 == pytest.approx(f0 + 1000 * 0.1 * 2 * 1024)
    # an FP8 cache compressed to 4 bits: the bits replace the element size
    fp8 = cfg.apply(dataclasses.replace(L8, kv_dtype_bytes=1))
    assert fp8.kv_element_bytes == pytest.approx(model.kv_element_bytes)


def test_kv_compression_in_a_scenario():
    base = resolve(_scenario())
    small = resolve(_scenario(kv_compression={"bits": 4}))
    assert small.kv_tokens == pytest.approx(4 * base.kv_tokens, rel=0.01)
    assert _scenario(kv_compression={"bits": 8}).to_dict()["kv_compression"]["bits"] == 8
    with pytest.raises(ScenarioError, match=r"kv_compression\.bits"):
        _scenario(kv_compression={"bits": 5})
