"""The built-in catalog against published parameter counts and hand-computed shapes."""

from __future__ import annotations

import pytest

from sim.models import CATALOG, get_model, list_models
from sim.models.hf_config import check_spec

# name -> (published total parameters, relative tolerance). Tolerance 0: the HF safetensors
# total, which ModelSpec must reproduce exactly (these models have nothing ModelSpec omits).
PUBLISHED = {
    "llama-2-7b": (6_738_415_616, 0),
    "llama-2-13b": (13_015_864_320, 0),
    "llama-2-70b": (68_976_648_192, 0),
    "llama-3.1-8b": (8_030_261_248, 0),
    "llama-3.1-70b": (70_553_706_496, 0),
    "qwen2.5-7b": (7_615_616_512, 0),
    "mixtral-8x7b": (46_702_792_704, 0),
    # Qwen3 adds per-head q/k RMSNorms (256 weights a layer) that ModelSpec does not count.
    "qwen3-32b": (32_762_123_264, 1e-6),
    "qwen3-30b-a3b": (30_532_122_624, 1e-6),
    "opt-66b": (66e9, 0.01),        # "66B"; OPT's position embeddings and biases are left out
    "grok-1": (314e9, 0.01),
    "gpt-oss-120b": (116.8e9, 0.01),
    "gpt-oss-20b": (20.9e9, 0.01),
    # the lightning layers' output gates and norms are not counted
    "minimax-m1": (456e9, 0.03),
    "glam-143b": (143e9, 0.02),
    # Qwen3-235B-A22B: "235B"; its q/k norms (94 x 256) are not counted.
    "qwen3-235b-a22b": (235e9, 0.02),
    # DeepSeek-V3's HF total, 684,531,386,000, is this main model (671B) + its 14B multi-token
    # prediction module + the FP8 checkpoint's float32 block scales; see test_deepseek_v3_hf_total.
    "deepseek-v3": (671e9, 0.02),
    "kimi-k2": (1.04e12, 0.02),     # "1.04T"; 1,026B is also quoted (test_kimi_k2_params)
    # Llama 4: "109B" / "400B" total; ModelSpec counts the text model only (no vision encoder):
    # 107.77B (-1.1%) and 400.71B (+0.2%)
    "llama-4-scout": (109e9, 0.02),
    "llama-4-maverick": (400e9, 0.02),
    # "80B": the DeltaNet projections are costed as the softmax layers' (0.2B fewer) and the
    # attention output gate is not counted: 79.04B (-1.2%)
    "qwen3-next-80b-a3b": (80e9, 0.02),
    "minicpm4-8b": (8e9, 0.03),     # "8B"; ModelSpec 8.19B with untied embeddings
}

# name -> published activated parameters (one token's share of a MoE), tolerance 2%. Kimi-K2's
# is its tech report's 32.6B (arXiv:2507.20534, Table 2); the headline "32B" is 2.7% below
# ModelSpec's 32.86B.
PUBLISHED_ACTIVE = {
    # gpt-oss's model card counts the activated parameters without the input embedding (a
    # lookup): 5.1B and 3.6B; ModelSpec counts both embeddings (tested below without it)
    "qwen3-235b-a22b": 22e9,
    "deepseek-v3": 37e9,
    "kimi-k2": 32.6e9,
    # "17B" activated for both: ModelSpec gives 17.17B and 17.18B
    "llama-4-scout": 17e9,
    "llama-4-maverick": 17e9,
}


def test_every_catalog_entry_has_a_published_total() -> None:
    assert set(PUBLISHED) == set(CATALOG)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_total_matches_published(name: str) -> None:
    published, tolerance = PUBLISHED[name]
    assert CATALOG[name].num_params == pytest.approx(published, rel=tolerance, abs=0)


@pytest.mark.parametrize("name", sorted(PUBLISHED_ACTIVE))
def test_active_params_match_published(name: str) -> None:
    assert CATALOG[name].num_active_params == pytest.approx(PUBLISHED_ACTIVE[name], rel=0.02)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_entries_are_consistent(name: str) -> None:
    spec = CATALOG[name]
    assert spec.name == name
    assert spec.source
    assert spec.dtype_bytes == 2
    check_spec(spec, "catalog")     # raises on inconsistency


def test_kv_bytes_per_token_by_hand() -> None:
    # 2 (K and V) x layers x kv_heads x head_dim x 2 bytes
    assert CATALOG["llama-3.1-8b"].kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131072
    assert CATALOG["mixtral-8x7b"].kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert CATALOG["llama-2-7b"].kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524288
    assert CATALOG["llama-2-70b"].kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert CATALOG["qwen2.5-7b"].kv_bytes_per_token == 2 * 28 * 4 * 128 * 2 == 57344
    # head_dim 128 rather than hidden/heads = 80 is what makes this 262144
    assert CATALOG["qwen3-32b"].kv_bytes_per_token == 2 * 64 * 8 * 128 * 2 == 262144
    assert CATALOG["qwen3-30b-a3b"].kv_bytes_per_token == 2 * 48 * 4 * 128 * 2
    assert CATALOG["qwen3-235b-a22b"].kv_bytes_per_token == 2 * 94 * 4 * 128 * 2 == 192512
    # MLA: layers x (latent 512 + rotary key 64) x 2 bytes, whatever the head count
    assert CATALOG["deepseek-v3"].kv_bytes_per_token == 61 * (512 + 64) * 2 == 70272
    assert CATALOG["kimi-k2"].kv_bytes_per_token == 61 * (512 + 64) * 2 == 70272


@pytest.mark.parametrize("name, group", [
    ("llama-2-7b", 1), ("llama-2-13b", 1), ("llama-2-70b", 8), ("llama-3.1-8b", 4),
    ("llama-3.1-70b", 8), ("qwen2.5-7b", 7), ("qwen3-32b", 8), ("qwen3-30b-a3b", 8),
    ("mixtral-8x7b", 4), ("grok-1", 6), ("opt-66b", 1), ("glam-143b", 1),
    ("qwen3-235b-a22b", 16), ("deepseek-v3", 1), ("kimi-k2", 1), ("llama-4-scout", 5),
    ("llama-4-maverick", 5),
])
def test_gqa_group_size(name: str, group: int) -> None:
    assert CATALOG[name].gqa_group_size == group


def test_mixtral_active_params_by_hand() -> None:
    h, layers = 4096, 32
    attention = h * (4096 + 2 * 1024) + 4096 * h
    two_experts = 2 * 3 * h * 14336
    router = h * 8
    per_layer = attention + two_experts + router + 2 * h
    expected = layers * per_layer + 2 * 32000 * h + h
    assert CATALOG["mixtral-8x7b"].num_active_params == expected
    assert expected == pytest.approx(12.9e9, rel=0.01)     # published "12.9B active"


def test_qwen3_moe_active_params() -> None:
    spec = CATALOG["qwen3-30b-a3b"]
    assert spec.num_active_params == pytest.approx(3.3e9, rel=0.03)    # "A3B": 3.3B active
    assert (spec.num_moe_layers, spec.num_dense_layers) == (48, 0)


def test_glam_every_other_layer_is_moe() -> None:
    spec = CATALOG["glam-143b"]
    assert (spec.num_moe_layers, spec.num_dense_layers) == (16, 16)
    h = 4096
    attention, ffn = 4 * h * h, 2 * h * 16384
    expected_active = 32 * (attention + 2 * h) + 16 * ffn + 16 * (2 * ffn + h * 64) \
        + 256000 * h + h
    assert spec.num_active_params == expected_active
    # The paper's 8.7B active excludes the (shared) embedding.
    assert expected_active - 256000 * h == pytest.approx(8.7e9, rel=0.02)


def test_grok_active_params_by_hand() -> None:
    h = 6144
    per_layer = h * (6144 + 2 * 1024) + 6144 * h + 2 * 3 * h * 32768 + h * 8 + 2 * h
    expected = 64 * per_layer + 131072 * h + h
    assert CATALOG["grok-1"].num_active_params == expected


def _deepseek_mla_params(h: int, heads: int) -> int:
    """One DeepSeek-V3-shaped MLA block by hand (HF DeepseekV3Attention's weights)."""
    q = h * 1536 + 1536 + 1536 * heads * (128 + 64)    # q_a_proj, q_a_layernorm, q_b_proj
    kv = h * (512 + 64) + 512 + 512 * heads * (128 + 128)  # kv_a_proj_with_mqa, norm, kv_b_proj
    return q + kv + heads * 128 * h                     # o_proj


def test_deepseek_v3_shape_by_hand() -> None:
    spec = CATALOG["deepseek-v3"]
    h = 7168
    assert spec.is_mla and spec.is_moe
    assert (spec.num_dense_layers, spec.num_moe_layers) == (3, 58)
    assert spec.attention_params_per_layer == _deepseek_mla_params(h, 128) == 187_107_328
    expert = 3 * h * 2048
    dense_layer = _deepseek_mla_params(h, 128) + 2 * h + 3 * h * 18432
    moe_layer = _deepseek_mla_params(h, 128) + 2 * h + (256 + 1) * expert + h * 256
    expected = 3 * dense_layer + 58 * moe_layer + 2 * 129280 * h + h
    assert spec.num_params == expected == 671_026_404_352
    assert spec.num_active_params == expected - 58 * (256 - 8) * expert == 37_552_282_624


def test_deepseek_v3_hf_total() -> None:
    """The Hub's 684,531,386,000 for deepseek-ai/DeepSeek-V3, rebuilt from ModelSpec: what the
    main model leaves out is exactly the router's score bias, the MTP module and FP8 scales."""
    spec, h = CATALOG["deepseek-v3"], 7168
    bias = 58 * 256                     # e_score_correction_bias, one per expert and MoE layer
    # MTP module (layer 61): a MoE decoder layer (+ its bias), eh_proj (2h -> h), 3 norms and
    # its own copies of the embedding and output head
    mtp_layer = spec.attention_params_per_layer + spec.norm_params_per_layer \
        + spec.moe_mlp_params + 256
    mtp = mtp_layer + 2 * h * h + 3 * h + spec.embedding_params

    def blocks(rows: int, cols: int) -> int:      # float32 scale per 128 x 128 FP8 block
        return -(-rows // 128) * -(-cols // 128)

    attention = blocks(1536, h) + blocks(128 * 192, 1536) + blocks(576, h) \
        + blocks(128 * 256, 512) + blocks(h, 128 * 128)

    def mlp(width: int) -> int:
        return 2 * blocks(width, h) + blocks(h, width)

    # FP8: every linear layer of the 61 + 1 decoder layers (eh_proj, router stay bf16)
    scales = 3 * (attention + mlp(18432)) + 59 * (attention + 257 * mlp(2048))
    assert spec.num_params + bias + mtp + scales == 684_531_386_000


def test_kimi_k2_params() -> None:
    spec = CATALOG["kimi-k2"]
    assert (spec.num_dense_layers, spec.num_moe_layers) == (1, 60)
    assert spec.attention_params_per_layer == _deepseek_mla_params(7168, 64)
    assert spec.num_params == pytest.approx(1.026e12, rel=1e-3)     # the "1,026B" figure
    assert spec.num_active_params == pytest.approx(32e9, rel=0.03)  # the headline "32B"


def test_deepseek_r1_is_deepseek_v3() -> None:
    assert get_model("deepseek-ai/DeepSeek-R1") is CATALOG["deepseek-v3"]
    assert get_model("moonshotai/Kimi-K2-Instruct") is CATALOG["kimi-k2"]
    assert get_model("Qwen/Qwen3-235B-A22B") is CATALOG["qwen3-235b-a22b"]


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3.1-70b", "qwen3-32b", "opt-66b"])
def test_dense_models_have_no_moe(name: str) -> None:
    spec = CATALOG[name]
    assert not spec.is_moe
    assert spec.num_moe_layers == 0
    assert spec.num_active_params == spec.num_params


def test_list_models_is_the_catalog_sorted() -> None:
    names = [m.name for m in list_models()]
    assert names == sorted(CATALOG)
    assert get_model("llama-3.1-8b") is CATALOG["llama-3.1-8b"]


@pytest.mark.parametrize("name, active", [("gpt-oss-120b", 5.1e9), ("gpt-oss-20b", 3.6e9)])
def test_gpt_oss_active_params_without_the_input_embedding(name: str, active: float) -> None:
    spec = CATALOG[name]
    lookup = spec.vocab_size * spec.hidden_size
    assert spec.num_active_params - lookup == pytest.approx(active, rel=0.03)


def test_qwen3_next_is_very_sparse_and_hybrid() -> None:
    spec = CATALOG["qwen3-next-80b-a3b"]
    lookup = spec.vocab_size * spec.hidden_size
    # "3B" activated, counted without the input embedding: 10 of 512 experts per token
    assert spec.num_active_params - lookup == pytest.approx(3e9, rel=0.03)
    assert spec.top_k / spec.num_experts < 0.02
    # 12 gated softmax layers of 2 KV heads x 256 grow per token; 36 DeltaNet layers hold a
    # 32 x 128 x 128 state and 3 convolution steps over 2 x 16 x 128 + 32 x 128 channels
    assert spec.full_attention_layers == 12
    assert spec.kv_bytes_per_token == 12 * 2 * 2 * 256 * 2 == 24_576
    assert spec.kv_bytes_per_sequence == 36 * (32 * 128 * 128 + 3 * 8192) * 2


def test_minicpm4_keeps_every_token_but_reads_few() -> None:
    spec = CATALOG["minicpm4-8b"]
    assert spec.kv_bytes_per_token == 32 * 2 * 2 * 128 * 2 == 32_768
    assert spec.kv_bytes_per_sequence == 0 and not spec.has_bounded_layers
    assert spec.has_sparse_attention and spec.sparse_attention_tokens == 64 * 64


def test_bounded_layers_hold_a_bounded_cache() -> None:
    oss = CATALOG["gpt-oss-120b"]
    # only the 18 full-attention layers grow per token; the 18 sliding ones hold 128 tokens
    assert oss.kv_bytes_per_token == 18 * 2 * 8 * 64 * 2 == 36_864
    assert oss.kv_bytes_per_sequence == 18 * 128 * 2 * 8 * 64 * 2
    m1 = CATALOG["minimax-m1"]
    # softmax attention in 10 of 80 layers; 70 lightning layers with a 64 x 128 x 128 fp32 state
    assert m1.full_attention_layers == 10
    assert m1.kv_bytes_per_token == 10 * 2 * 8 * 128 * 2 == 40_960
    assert m1.kv_bytes_per_sequence == 70 * 64 * 128 * 128 * 4


def test_llama_4_chunked_attention_cache_by_hand() -> None:
    scout = CATALOG["llama-4-scout"]
    # chunked attention in 36 of 48 layers, charged at the 8192-token chunk (the upper bound);
    # only the 12 global (NoPE) layers grow per token
    assert (scout.sliding_window, scout.sliding_window_layers) == (8192, 36)
    assert scout.full_attention_layers == 12
    assert scout.kv_bytes_per_token == 12 * 2 * 8 * 128 * 2 == 49_152
    assert scout.kv_bytes_per_sequence == 36 * 8192 * 2 * 8 * 128 * 2
    maverick = CATALOG["llama-4-maverick"]
    assert maverick.kv_bytes_per_token == scout.kv_bytes_per_token
    assert maverick.kv_bytes_per_sequence == scout.kv_bytes_per_sequence


def test_llama_4_params_by_hand() -> None:
    h = 5120
    attention = h * (40 * 128 + 2 * 8 * 128) + 40 * 128 * h
    expert = 3 * h * 8192                   # routed and shared experts alike
    dense_mlp = 3 * h * 16384
    embeddings = 2 * 202048 * h             # untied
    scout, maverick = CATALOG["llama-4-scout"], CATALOG["llama-4-maverick"]
    moe = 16 * expert + expert + h * 16     # routed + shared + router
    assert scout.num_params == 48 * (attention + 2 * h + moe) + embeddings + h
    assert scout.num_active_params == 48 * (attention + 2 * h + 2 * expert + h * 16) \
        + embeddings + h
    assert (maverick.num_moe_layers, maverick.num_dense_layers) == (24, 24)
    moe = 128 * expert + expert + h * 128
    assert maverick.num_params == 48 * (attention + 2 * h) + 24 * (moe + dense_mlp) \
        + embeddings + h
    assert maverick.num_active_params == 48 * (attention + 2 * h) \
        + 24 * (2 * expert + h * 128 + dense_mlp) + embeddings + h
