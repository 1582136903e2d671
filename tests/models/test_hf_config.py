"""HF config.json -> ModelSpec, and get_model's name / directory / YAML resolution."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sim.errors import LlmsimError, ModelError, ScenarioError
from sim.models import ARCHITECTURES, CATALOG, ModelSpec, get_model, load_hf_config

# As published on the Hub; keys ModelSpec ignores (rope_scaling, ...) are kept on purpose.
LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}
MISTRAL_7B: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 32000,
}
MIXTRAL_8X7B: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1e6, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 32000,
}
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu", "hidden_size": 3584,
    "intermediate_size": 18944, "max_position_embeddings": 131072, "max_window_layers": 28,
    "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28,
    "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1e6,
    "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_sliding_window": False, "vocab_size": 152064,
}
QWEN3_32B: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 5120, "intermediate_size": 25600,
    "max_position_embeddings": 40960, "model_type": "qwen3", "num_attention_heads": 64,
    "num_hidden_layers": 64, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_theta": 1e6, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}
QWEN3_30B_A3B: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False,
    "decoder_sparse_step": 1, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 6144, "max_position_embeddings": 40960, "mlp_only_layers": [],
    "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": True,
    "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 48, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1e6, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}
# DeepSeek-V3's config.json as published (auto_map left out); DeepSeek-R1's is the same.
_FP8_BLOCKS = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
               "weight_block_size": [128, 128]}
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1,
    "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
    "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "quantization_config": _FP8_BLOCKS, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "seq_aux": True, "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True,
    "v_head_dim": 128, "vocab_size": 129280,
}
# Kimi-K2-Instruct: the same architecture and keys, other numbers.
KIMI_K2: dict[str, Any] = {
    **DEEPSEEK_V3, "bos_token_id": 163584, "eos_token_id": 163585, "first_k_dense_replace": 1,
    "max_position_embeddings": 131072, "model_type": "kimi_k2", "n_group": 1,
    "n_routed_experts": 384, "num_attention_heads": 64, "num_key_value_heads": 64,
    "num_nextn_predict_layers": 0, "rope_theta": 50000.0, "routed_scaling_factor": 2.827,
    "rope_scaling": {"beta_fast": 1.0, "beta_slow": 1.0, "factor": 32.0, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "topk_group": 1, "vocab_size": 163840,
}
# DeepSeek-V2-Lite: no query low-rank projection (q_lora_rank null), 2 shared experts, bf16.
DEEPSEEK_V2_LITE: dict[str, Any] = {
    "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": False, "aux_loss_alpha": 0.001,
    "first_k_dense_replace": 1, "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 10944, "kv_lora_rank": 512, "max_position_embeddings": 163840,
    "model_type": "deepseek_v2", "moe_intermediate_size": 1408, "moe_layer_freq": 1,
    "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": False,
    "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27,
    "num_key_value_heads": 16, "q_lora_rank": None, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "routed_scaling_factor": 1.0, "scoring_func": "softmax",
    "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy",
    "torch_dtype": "bfloat16", "v_head_dim": 128, "vocab_size": 102400,
}
# A small DeepseekV3 config: 6 layers, the first 2 dense; tests vary one key at a time.
TINY_MLA: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
    "max_position_embeddings": 1024, "num_attention_heads": 8, "num_hidden_layers": 6,
    "vocab_size": 1000, "kv_lora_rank": 64, "q_lora_rank": 96, "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16, "v_head_dim": 32, "n_routed_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 64, "n_shared_experts": 1, "first_k_dense_replace": 2,
}
# openai/gpt-oss-120b's config.json keys (written here with the catalog's numbers): both
# experts_per_token and num_experts_per_tok, layer_types alternating from sliding, MXFP4 experts.
_OSS_LAYER_TYPES = ["sliding_attention", "full_attention"]
GPT_OSS_120B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
    "intermediate_size": 2880, "layer_types": _OSS_LAYER_TYPES * 18,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_experts_per_tok": 4, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "num_local_experts": 128, "output_router_logits": False, "pad_token_id": 199999,
    "quantization_config": {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                     "original_max_position_embeddings": 4096, "rope_type": "yarn",
                     "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
    "swiglu_limit": 7.0, "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0",
    "use_cache": True, "vocab_size": 201088,
}
GPT_OSS_20B: dict[str, Any] = {
    **GPT_OSS_120B, "layer_types": _OSS_LAYER_TYPES * 12, "num_hidden_layers": 24,
    "num_local_experts": 32,
}
# MiniMax-M1's config.json keys with the catalog's numbers: softmax attention (1) in every 8th
# of 80 layers, lightning attention (0) in the others; no shared experts.
MINIMAX_M1: dict[str, Any] = {
    "architectures": ["MiniMaxM1ForCausalLM"], "attn_type_list": ([0] * 7 + [1]) * 10,
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 6144, "initializer_range": 0.02,
    "intermediate_size": 9216, "layernorm_full_attention_alpha": 3.5565588200778455,
    "layernorm_full_attention_beta": 1.0, "layernorm_linear_attention_alpha": 3.5565588200778455,
    "layernorm_linear_attention_beta": 1.0, "layernorm_mlp_alpha": 3.5565588200778455,
    "layernorm_mlp_beta": 1.0, "max_position_embeddings": 1000000, "model_type": "minimax_m1",
    "num_attention_heads": 64, "num_experts_per_tok": 2, "num_hidden_layers": 80,
    "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": False,
    "postnorm": True, "rms_norm_eps": 1e-05, "rope_theta": 10000000, "rotary_dim": 64,
    "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0, "shared_intermediate_size": 0,
    "shared_moe_mode": "sigmoid", "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 200064,
}
# Qwen/Qwen3-Next-80B-A3B-Instruct's config.json keys (written here with the catalog's numbers).
QWEN3_NEXT: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645,
    "full_attention_interval": 4, "head_dim": 256, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 5120, "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_value_head_dim": 128, "max_position_embeddings": 262144, "mlp_only_layers": [],
    "model_type": "qwen3_next", "moe_intermediate_size": 512, "norm_topk_prob": True,
    "num_attention_heads": 16, "num_experts": 512, "num_experts_per_tok": 10,
    "num_hidden_layers": 48, "num_key_value_heads": 2, "output_router_logits": False,
    "partial_rotary_factor": 0.25, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 10000000, "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 512, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}
# openbmb/MiniCPM4-8B's config.json keys (the remote code's MiniCPMConfig) with the catalog's
# numbers; sparse_config is InfLLM v2's.
MINICPM4_8B: dict[str, Any] = {
    "architectures": ["MiniCPMForCausalLM"], "bos_token_id": 1, "eos_token_id": [2, 73440],
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.1,
    "intermediate_size": 16384, "max_position_embeddings": 32768, "model_type": "minicpm",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "scale_emb": 12, "dim_model_base": 256,
    "scale_depth": 1.4, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 73448, "sparse_config": {
        "kernel_size": 32, "kernel_stride": 16, "init_blocks": 1, "block_size": 64,
        "window_size": 2048, "topk": 64, "use_nope": False, "dense_len": 8192},
}
# A minimal config each architecture accepts; tests vary one key at a time.
TINY: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
    "max_position_embeddings": 1024, "num_attention_heads": 8, "num_hidden_layers": 4,
    "vocab_size": 1000,
}


def write(tmp_path: Path, data: Any, dirname: str = "m") -> Path:
    path = tmp_path / dirname / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


_DROP = object()     # a value for tiny(): remove the key


def tiny(**changes: Any) -> dict[str, Any]:
    data = {**TINY, **changes}
    return {k: v for k, v in data.items() if v is not _DROP}


def tiny_mla(**changes: Any) -> dict[str, Any]:
    data = {**TINY_MLA, **changes}
    return {k: v for k, v in data.items() if v is not _DROP}


# -- real configs reproduce the catalog ---------------------------------------------------------
@pytest.mark.parametrize("name, config", [
    ("llama-3.1-8b", LLAMA_31_8B), ("mixtral-8x7b", MIXTRAL_8X7B), ("qwen2.5-7b", QWEN25_7B),
    ("qwen3-32b", QWEN3_32B), ("qwen3-30b-a3b", QWEN3_30B_A3B),
])
def test_real_config_matches_catalog(tmp_path: Path, name: str, config: dict) -> None:
    spec = load_hf_config(write(tmp_path, config), name=name)
    assert spec == CATALOG[name]        # every field but source


@pytest.mark.parametrize("name, config", [
    ("gpt-oss-120b", GPT_OSS_120B), ("gpt-oss-20b", GPT_OSS_20B), ("minimax-m1", MINIMAX_M1),
    ("qwen3-next-80b-a3b", QWEN3_NEXT), ("minicpm4-8b", MINICPM4_8B),
])
def test_bounded_attention_config_matches_catalog(tmp_path: Path, name: str,
                                                  config: dict) -> None:
    spec = load_hf_config(write(tmp_path, config), name=name)
    assert spec == CATALOG[name]        # every field but source
    assert spec.num_params == CATALOG[name].num_params
    assert spec.kv_bytes_per_token == CATALOG[name].kv_bytes_per_token
    assert spec.kv_bytes_per_sequence == CATALOG[name].kv_bytes_per_sequence


@pytest.mark.parametrize("name, config", [("deepseek-v3", DEEPSEEK_V3), ("kimi-k2", KIMI_K2)])
def test_real_mla_config_matches_catalog(tmp_path: Path, name: str, config: dict) -> None:
    spec = load_hf_config(write(tmp_path, config), name=name)
    # the checkpoints ship FP8; the catalog leaves the precision to the scenario
    assert spec.weight_bits == 8
    assert dataclasses.replace(spec, weight_bits=0) == CATALOG[name]
    assert spec.num_params == CATALOG[name].num_params
    assert spec.num_active_params == CATALOG[name].num_active_params
    assert spec.kv_bytes_per_token == 61 * (512 + 64) * 2 == 70272


def test_deepseek_v3_fields(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, DEEPSEEK_V3, dirname="DeepSeek-V3"))
    assert spec.name == "DeepSeek-V3"
    assert spec.is_mla and spec.is_moe
    assert (spec.kv_lora_rank, spec.q_lora_rank, spec.qk_nope_head_dim, spec.qk_rope_head_dim,
            spec.v_head_dim, spec.head_dim) == (512, 1536, 128, 64, 128, 192)
    assert (spec.num_experts, spec.top_k, spec.expert_intermediate_size) == (256, 8, 2048)
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (1, 2048)
    assert (spec.first_k_dense_layers, spec.num_dense_layers, spec.num_moe_layers) == (3, 3, 58)
    assert spec.dtype_bytes == 2 and spec.linear_weight_bytes == 1.0


def test_fp8_weights_only_shrink_the_linear_layers(tmp_path: Path) -> None:
    fp8 = load_hf_config(write(tmp_path, DEEPSEEK_V3, "a"))
    bf16 = load_hf_config(write(tmp_path, {**DEEPSEEK_V3, "quantization_config": None}, "b"))
    assert (fp8.weight_bits, bf16.weight_bits) == (8, 0)
    assert fp8.num_params == bf16.num_params
    assert bf16.weight_bytes == 2 * bf16.num_params
    kept = fp8.embedding_params + 61 * 2 * 7168 + 7168 + 58 * 7168 * 256   # stay bf16
    assert fp8.weight_bytes == (fp8.num_params - kept) + 2 * kept


def test_fp8_applies_to_other_architectures(tmp_path: Path) -> None:
    # e.g. Qwen/Qwen3-235B-A22B-FP8 (Qwen3MoeForCausalLM) ships the same block-wise FP8
    spec = load_hf_config(write(tmp_path, {**QWEN3_30B_A3B, "quantization_config": _FP8_BLOCKS}))
    assert spec.weight_bits == 8


def test_deepseek_v2_lite(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, DEEPSEEK_V2_LITE))
    assert spec.q_lora_rank == 0 and spec.is_mla        # null: a plain query projection
    assert spec.attention_params_per_layer == \
        2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256 + 16 * 128 * 2048
    assert (spec.num_shared_experts, spec.shared_expert_intermediate_size) == (2, 1408)
    assert (spec.num_dense_layers, spec.num_moe_layers) == (1, 26)
    assert spec.num_params == 15_706_484_224           # the HF safetensors total ("15.7B")
    assert spec.weight_bits == 0 and spec.kv_bytes_per_token == 27 * 576 * 2


def test_deepseek_defaults(tmp_path: Path) -> None:
    # absent optional keys take transformers' DeepseekV3Config / DeepseekV2Config defaults
    absent = {k: _DROP for k in ("q_lora_rank", "n_shared_experts", "first_k_dense_replace",
                                 "num_key_value_heads", "moe_layer_freq")}
    v3 = load_hf_config(write(tmp_path, tiny_mla(**absent), "a"))
    assert (v3.q_lora_rank, v3.num_shared_experts, v3.first_k_dense_layers) == (1536, 1, 3)
    assert (v3.num_kv_heads, v3.moe_layer_interval, v3.weight_bits) == (8, 1, 0)
    v2 = load_hf_config(write(tmp_path, tiny_mla(architectures=["DeepseekV2ForCausalLM"],
                                                 **absent), "b"))
    assert (v2.num_shared_experts, v2.shared_expert_intermediate_size) == (0, 0)
    assert (v2.first_k_dense_layers, v2.num_moe_layers) == (0, 6)


def test_deepseek_nulls(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, tiny_mla(q_lora_rank=None, n_shared_experts=None)))
    assert (spec.q_lora_rank, spec.num_shared_experts) == (0, 0)
    dense = load_hf_config(write(tmp_path, tiny_mla(n_routed_experts=None), "dense"))
    assert not dense.is_moe and dense.is_mla and dense.num_dense_layers == 6


def test_deepseek_head_dim_key_is_ignored(tmp_path: Path) -> None:
    # transformers' DeepseekV3Config saves head_dim = qk_rope_head_dim (its rotary width)
    spec = load_hf_config(write(tmp_path, tiny_mla(head_dim=16)))
    assert spec.head_dim == 32 + 16


def test_deepseek_moe_layer_freq(tmp_path: Path) -> None:
    # layers 2..5, every 2nd: HF's rule (i % 2 == 0) and ModelSpec's both give 2 MoE layers
    spec = load_hf_config(write(tmp_path, tiny_mla(moe_layer_freq=2)))
    assert (spec.moe_layer_interval, spec.num_moe_layers, spec.num_dense_layers) == (2, 2, 4)


def test_deepseek_moe_layer_freq_unrepresentable(tmp_path: Path) -> None:
    # 7 layers, 2 dense, every 3rd: HF makes layers 3 and 6 MoE, ModelSpec's rule only 1
    path = write(tmp_path, tiny_mla(num_hidden_layers=7, moe_layer_freq=3))
    with pytest.raises(ModelError, match=f"^{path}: moe_layer_freq: unsupported: 3 .* 2 MoE "
                                         f"layers, ModelSpec's interval rule 1$"):
        load_hf_config(path)


def test_llama_31_8b_fields(tmp_path: Path) -> None:
    path = write(tmp_path, LLAMA_31_8B, dirname="Llama-3.1-8B")
    spec = load_hf_config(path)
    assert spec.name == "Llama-3.1-8B"          # default name: the checkout directory
    assert (spec.num_layers, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
            spec.head_dim) == (32, 4096, 32, 8, 128)
    assert (spec.intermediate_size, spec.vocab_size, spec.max_context_tokens) == \
        (14336, 128256, 131072)
    assert spec.dtype_bytes == 2 and spec.mlp_gated and not spec.qkv_bias
    assert not spec.tie_word_embeddings and not spec.is_moe
    assert spec.num_params == 8_030_261_248
    assert spec.source == str(path)


def test_mistral(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, MISTRAL_7B))
    assert (spec.num_kv_heads, spec.head_dim, spec.max_context_tokens) == (8, 128, 32768)
    assert spec.num_params == 7_241_732_096         # Mistral-7B-v0.1 safetensors total


def test_mixtral_experts(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, {**MIXTRAL_8X7B, "num_local_experts": 4,
                                           "num_experts_per_tok": 1}))
    assert (spec.num_experts, spec.top_k, spec.expert_intermediate_size) == (4, 1, 14336)
    assert spec.moe_layer_interval == 1 and spec.num_dense_layers == 0


def test_qwen2_always_has_qkv_bias(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, tiny(architectures=["Qwen2ForCausalLM"])))
    assert spec.qkv_bias
    assert spec.attention_params_per_layer == 4 * 256 * 256 + 3 * 256


def test_llama_attention_bias(tmp_path: Path) -> None:
    assert load_hf_config(write(tmp_path, tiny(attention_bias=True))).qkv_bias


def test_qwen3_head_dim_defaults_to_128(tmp_path: Path) -> None:
    # transformers' Qwen3Config default, not hidden/heads (= 32 here)
    spec = load_hf_config(write(tmp_path, tiny(architectures=["Qwen3ForCausalLM"])))
    assert spec.head_dim == 128


def test_qwen3_moe_sparse_step(tmp_path: Path) -> None:
    config = {**QWEN3_30B_A3B, "decoder_sparse_step": 2, "mlp_only_layers": [0, 2]}
    spec = load_hf_config(write(tmp_path, config))
    # layers 1, 3, ..., 47 are MoE (HF: (i + 1) % step == 0); 0 and 2 were dense anyway
    assert (spec.moe_layer_interval, spec.num_moe_layers, spec.num_dense_layers) == (2, 24, 24)
    assert spec.intermediate_size == 6144       # now used by the 24 dense layers


def test_qwen3_moe_mlp_only_layers_on_moe_layer_is_unsupported(tmp_path: Path) -> None:
    path = write(tmp_path, {**QWEN3_30B_A3B, "mlp_only_layers": [3]})
    with pytest.raises(ModelError, match=r"mlp_only_layers: unsupported.*\[3\]") as info:
        load_hf_config(path)
    assert str(path) in str(info.value)


def test_qwen3_moe_zero_experts_is_dense(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, {**QWEN3_30B_A3B, "num_experts": 0}))
    assert not spec.is_moe and spec.num_dense_layers == 48


def test_absent_kv_heads_means_mha_and_head_dim_is_hidden_over_heads(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, tiny()))
    assert (spec.num_kv_heads, spec.head_dim, spec.gqa_group_size) == (8, 32, 1)


def test_null_head_dim_is_absent(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, tiny(architectures=["MistralForCausalLM"],
                                               head_dim=None)))
    assert spec.head_dim == 32


@pytest.mark.parametrize("key, dtype, size", [
    ("torch_dtype", "bfloat16", 2), ("torch_dtype", "float16", 2), ("torch_dtype", "float32", 4),
    ("dtype", "float32", 4),            # transformers >= 4.56 key
    ("torch_dtype", _DROP, 2),          # absent: bf16
])
def test_dtype_bytes(tmp_path: Path, key: str, dtype: Any, size: int) -> None:
    spec = load_hf_config(write(tmp_path, tiny(**{key: dtype})))
    assert spec.dtype_bytes == size
    assert spec.kv_bytes_per_token == 2 * 4 * 8 * 32 * size


def test_tied_embeddings(tmp_path: Path) -> None:
    tied = load_hf_config(write(tmp_path, tiny(tie_word_embeddings=True), "a"))
    untied = load_hf_config(write(tmp_path, tiny(), "b"))
    assert tied.tie_word_embeddings and not untied.tie_word_embeddings
    assert untied.num_params - tied.num_params == 1000 * 256


def test_registry_covers_the_promised_architectures() -> None:
    assert set(ARCHITECTURES) == {
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
        "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM", "GptOssForCausalLM", "MiniMaxM1ForCausalLM",
        "MiniMaxText01ForCausalLM", "Qwen3NextForCausalLM", "MiniCPMForCausalLM"}


# -- errors: one line, naming file and key ------------------------------------------------------
def test_unknown_architecture_lists_supported(tmp_path: Path) -> None:
    path = write(tmp_path, tiny(architectures=["GPT2LMHeadModel"]))
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: architectures: unsupported 'GPT2LMHeadModel'")
    assert all(arch in message for arch in ARCHITECTURES)
    assert "\n" not in message


@pytest.mark.parametrize("key", ["hidden_size", "num_attention_heads", "num_hidden_layers",
                                 "intermediate_size", "vocab_size", "max_position_embeddings"])
def test_missing_field_names_file_and_field(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, tiny(**{key: _DROP}))
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    assert str(info.value) == f"{path}: {key}: missing"


@pytest.mark.parametrize("key", ["num_experts", "num_experts_per_tok", "moe_intermediate_size"])
def test_missing_moe_field(tmp_path: Path, key: str) -> None:
    config = {k: v for k, v in QWEN3_30B_A3B.items() if k != key}
    path = write(tmp_path, config)
    with pytest.raises(ModelError, match=f"^{path}: {key}: missing$"):
        load_hf_config(path)


@pytest.mark.parametrize("key", ["kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                                 "v_head_dim", "n_routed_experts", "num_experts_per_tok",
                                 "moe_intermediate_size"])
def test_missing_deepseek_field(tmp_path: Path, key: str) -> None:
    # e.g. kv_lora_rank absent while the other MLA keys are there: refused, not a default
    path = write(tmp_path, tiny_mla(**{key: _DROP}))
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    assert str(info.value) == f"{path}: {key}: missing"


@pytest.mark.parametrize("changes, needle", [
    ({"first_k_dense_replace": -1}, "first_k_dense_replace: expected an integer >= 0, got -1"),
    ({"first_k_dense_replace": 6}, "first_k_dense_replace: 6 leaves no MoE layer"),
    ({"first_k_dense_replace": 1.5}, "first_k_dense_replace: expected an integer >= 0, got 1.5"),
    ({"n_shared_experts": -1}, "n_shared_experts: expected an integer >= 0, got -1"),
    ({"kv_lora_rank": 0}, "kv_lora_rank: expected a positive integer, got 0"),
    ({"q_lora_rank": 0}, "q_lora_rank: expected a positive integer, got 0"),
    ({"v_head_dim": None}, "v_head_dim: missing"),
    ({"num_experts_per_tok": 9}, "top_k: expected 1..num_experts (8), got 9"),
    ({"moe_layer_freq": 5}, "moe_layer_freq: unsupported: 5 with first_k_dense_replace 2 "
                            "makes 1 MoE layers, ModelSpec's interval rule 0"),
    ({"moe_layer_freq": 7}, "moe_layer_freq: 7 leaves no MoE layer after first_k_dense_replace 2 "
                            "of num_hidden_layers 6"),
    ({"quantization_config": {"quant_method": "compressed-tensors"}},
     "quantization_config.quant_method: unsupported 'compressed-tensors'; supported: 'fp8'"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 3}},
     "quantization_config.bits: expected 4 or 8, got 3"),
    ({"quantization_config": "fp8"}, "quantization_config: expected an object, got 'fp8'"),
])
def test_bad_deepseek_values(tmp_path: Path, changes: dict, needle: str) -> None:
    path = write(tmp_path, tiny_mla(**changes))
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {needle}")
    assert "\n" not in message


def test_missing_architectures(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="architectures: missing; supported: LlamaForCausalLM"):
        load_hf_config(write(tmp_path, tiny(architectures=_DROP)))


@pytest.mark.parametrize("changes, needle", [
    ({"num_hidden_layers": "32"}, "num_hidden_layers: expected a positive integer, got '32'"),
    ({"hidden_size": 0}, "hidden_size: expected a positive integer, got 0"),
    ({"vocab_size": True}, "vocab_size: expected a positive integer, got True"),
    ({"num_key_value_heads": 3}, "num_key_value_heads: 3 does not divide num_attention_heads 8"),
    ({"torch_dtype": "int4"}, "torch_dtype: expected one of bfloat16"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings: expected true or false, got 'yes'"),
])
def test_bad_values(tmp_path: Path, changes: dict, needle: str) -> None:
    path = write(tmp_path, tiny(**changes))
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    assert str(info.value).startswith(f"{path}: {needle}")


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"architectures": ["LlamaForCausalLM"],')
    with pytest.raises(ModelError, match=f"^{path}: not valid JSON"):
        load_hf_config(path)


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="expected a JSON object, got list"):
        load_hf_config(write(tmp_path, [1, 2]))


def test_unreadable_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "config.json"
    with pytest.raises(ModelError, match=f"^{path}: cannot read"):
        load_hf_config(path)


# -- get_model ----------------------------------------------------------------------------------
def test_get_model_unknown_name_suggests(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'llama-3-8b'.*did you mean "
                                         r"'llama-3.1-8b'\?"):
        get_model("llama-3-8b", base_dir=tmp_path)


def test_get_model_hopeless_name_lists_catalog() -> None:
    with pytest.raises(ModelError) as info:
        get_model("zzzzzz")
    assert all(name in str(info.value) for name in CATALOG)


def test_get_model_directory_relative_to_base_dir(tmp_path: Path) -> None:
    write(tmp_path, LLAMA_31_8B, dirname="Llama-3.1-8B")
    spec = get_model("Llama-3.1-8B", base_dir=tmp_path)
    assert spec.name == "Llama-3.1-8B"
    assert dataclasses.replace(spec, name="llama-3.1-8b") == CATALOG["llama-3.1-8b"]


def test_get_model_config_json_path(tmp_path: Path) -> None:
    path = write(tmp_path, MIXTRAL_8X7B)
    assert get_model(str(path)).num_experts == 8


def test_get_model_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty/config.json: cannot read"):
        get_model("empty", base_dir=tmp_path)


def test_get_model_yaml(tmp_path: Path) -> None:
    (tmp_path / "tiny-moe.yaml").write_text(
        "num_layers: 4\nhidden_size: 64\nnum_heads: 4\nnum_kv_heads: 2\nhead_dim: 16\n"
        "intermediate_size: 128\nvocab_size: 100\nmax_context_tokens: 512\n"
        "num_experts: 4\ntop_k: 2\nexpert_intermediate_size: 32\nmoe_layer_interval: 2\n")
    spec = get_model("tiny-moe.yaml", base_dir=tmp_path)
    assert isinstance(spec, ModelSpec)
    assert spec.name == "tiny-moe"              # defaults to the file stem
    assert (spec.num_moe_layers, spec.num_dense_layers, spec.gqa_group_size) == (2, 2, 2)
    assert spec.kv_bytes_per_token == 2 * 4 * 2 * 16 * 2


def test_get_model_yaml_bad_field_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nnum_layers: 2\nhidden_size: 64\nnum_heads: 4\nnum_kv_heads: 4\n"
                    "head_dim: 16\nintermediate_size: 128\nvocab_size: 100\n"
                    "max_context_tokens: 512\nnum_layer: 3\n")
    with pytest.raises(ScenarioError, match=f"^{path}: num_layer: unknown key; did you mean "
                                            f"'num_layers'\\?"):
        get_model(str(path))


def test_get_model_yaml_inconsistent_spec(tmp_path: Path) -> None:
    path = tmp_path / "moe.yaml"
    path.write_text("num_layers: 2\nhidden_size: 64\nnum_heads: 4\nnum_kv_heads: 4\n"
                    "head_dim: 16\nintermediate_size: 128\nvocab_size: 100\n"
                    "max_context_tokens: 512\nnum_experts: 4\ntop_k: 5\n"
                    "expert_intermediate_size: 32\nmoe_layer_interval: 1\n")
    with pytest.raises(ModelError, match=f"^{path}: top_k: expected 1..num_experts"):
        get_model(str(path))


_MLA_YAML = ("num_layers: 4\nhidden_size: 64\nnum_heads: 4\nnum_kv_heads: 4\nhead_dim: 24\n"
             "intermediate_size: 128\nvocab_size: 100\nmax_context_tokens: 512\n"
             "kv_lora_rank: 32\nqk_nope_head_dim: 16\nqk_rope_head_dim: 8\nv_head_dim: 16\n"
             "num_experts: 4\ntop_k: 2\nexpert_intermediate_size: 32\nmoe_layer_interval: 1\n"
             "num_shared_experts: 1\nshared_expert_intermediate_size: 32\n"
             "first_k_dense_layers: 1\n")


def test_get_model_yaml_mla(tmp_path: Path) -> None:
    (tmp_path / "tiny-mla.yaml").write_text(_MLA_YAML)
    spec = get_model("tiny-mla.yaml", base_dir=tmp_path)
    assert spec.is_mla and (spec.num_dense_layers, spec.num_moe_layers) == (1, 3)
    assert spec.kv_bytes_per_token == 4 * (32 + 8) * 2


@pytest.mark.parametrize("change, needle", [
    ("kv_lora_rank: 0", "kv_lora_rank: expected > 0 (multi-head latent attention) when "
                        "qk_nope_head_dim, qk_rope_head_dim, v_head_dim are set"),
    ("qk_rope_head_dim: 0", "qk_rope_head_dim: expected > 0 with kv_lora_rank 32"),
    ("v_head_dim: 0", "v_head_dim: expected > 0 with kv_lora_rank 32"),
    ("head_dim: 16", "head_dim: expected qk_nope_head_dim + qk_rope_head_dim = 24"),
    ("first_k_dense_layers: 4", "first_k_dense_layers: expected < num_layers (4), got 4"),
    ("first_k_dense_layers: -1", "first_k_dense_layers: expected >= 0, got -1"),
    ("moe_layer_interval: 4", "moe_layer_interval: expected 1..3"),
    ("shared_expert_intermediate_size: 0", "shared_expert_intermediate_size: expected > 0"),
    ("weight_bits: 64", "weight_bits: expected 0 (the dtype) or 1..32, got 64"),
])
def test_get_model_yaml_bad_mla(tmp_path: Path, change: str, needle: str) -> None:
    key = change.split(":")[0]
    text = "".join(line + "\n" for line in _MLA_YAML.splitlines()
                   if not line.startswith(key + ":")) + change + "\n"
    path = tmp_path / "bad-mla.yaml"
    path.write_text(text)
    with pytest.raises(ModelError, match="^" + re.escape(f"{path}: {needle}")):
        get_model(str(path))


def test_get_model_yaml_shared_experts_need_routed_ones(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text("num_layers: 2\nhidden_size: 64\nnum_heads: 4\nnum_kv_heads: 4\n"
                    "head_dim: 16\nintermediate_size: 128\nvocab_size: 100\n"
                    "max_context_tokens: 512\nnum_shared_experts: 1\n"
                    "shared_expert_intermediate_size: 32\n")
    with pytest.raises(ModelError, match=f"^{path}: num_shared_experts: expected 0 without"):
        get_model(str(path))


def test_get_model_unsupported_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(LlmsimError, match="expected a HF config.json"):
        get_model(str(path))


@pytest.mark.parametrize("quant, bits", [({"quant_method": "gptq", "bits": 4}, 4),
                                         ({"quant_method": "awq", "bits": 4}, 4),
                                         ({"quant_method": "gptq", "bits": 8}, 8),
                                         ({"quant_method": "mxfp4"}, 4),
                                         ({"quant_method": "fp8"}, 8)])
def test_quantized_checkpoints_set_the_weight_bits(tmp_path: Path, quant: dict, bits: int) -> None:
    spec = load_hf_config(write(tmp_path, tiny_mla(quantization_config=quant)))
    assert spec.weight_bits == bits


# -- gpt-oss and MiniMax: sliding-window and linear-attention layers ----------------------------
def oss(**changes: Any) -> dict[str, Any]:
    data = {**GPT_OSS_20B, **changes}
    return {k: v for k, v in data.items() if v is not _DROP}


def minimax(**changes: Any) -> dict[str, Any]:
    data = {**MINIMAX_M1, **changes}
    return {k: v for k, v in data.items() if v is not _DROP}


def test_gpt_oss_fields(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, GPT_OSS_120B, dirname="gpt-oss-120b"))
    assert spec.name == "gpt-oss-120b"
    assert (spec.sliding_window, spec.sliding_window_layers, spec.full_attention_layers) == \
        (128, 18, 18)
    assert (spec.num_experts, spec.top_k, spec.expert_intermediate_size) == (128, 4, 2880)
    assert (spec.num_moe_layers, spec.num_shared_experts, spec.mlp_gated) == (36, 0, True)
    assert spec.qkv_bias and spec.weight_bits == 4
    assert spec.kv_bytes_per_token == 18 * 2 * 8 * 64 * 2


@pytest.mark.parametrize("layers, sliding", [(24, 12), (7, 4)])
def test_gpt_oss_without_layer_types_alternates_from_sliding(tmp_path: Path, layers: int,
                                                             sliding: int) -> None:
    # transformers' GptOssConfig: layer i sliding when i + 1 is odd, so half (rounded up)
    spec = load_hf_config(write(tmp_path, oss(layer_types=_DROP, num_hidden_layers=layers)))
    assert (spec.sliding_window, spec.sliding_window_layers) == (128, sliding)


def test_gpt_oss_counts_the_sliding_layers(tmp_path: Path) -> None:
    types = ["sliding_attention"] * 20 + ["full_attention"] * 4
    spec = load_hf_config(write(tmp_path, oss(layer_types=types, sliding_window=256)))
    assert (spec.sliding_window, spec.sliding_window_layers) == (256, 20)
    none = load_hf_config(write(tmp_path, oss(layer_types=["full_attention"] * 24), "b"))
    assert (none.sliding_window, none.sliding_window_layers) == (0, 0)


def test_gpt_oss_defaults(tmp_path: Path) -> None:
    # absent keys as transformers' GptOssConfig: head_dim 64 (not 2880 / 64 = 45), 8 KV heads,
    # 128 experts top-4, window 128, attention biases; experts_per_token alone is accepted
    absent = ("head_dim", "num_key_value_heads", "num_local_experts", "num_experts_per_tok",
              "experts_per_token", "sliding_window", "attention_bias", "quantization_config")
    spec = load_hf_config(write(tmp_path, oss(**{key: _DROP for key in absent})))
    assert (spec.head_dim, spec.num_kv_heads, spec.num_experts, spec.top_k) == (64, 8, 128, 4)
    assert (spec.sliding_window, spec.qkv_bias, spec.weight_bits) == (128, True, 0)
    alias = load_hf_config(write(tmp_path, oss(num_experts_per_tok=_DROP, experts_per_token=2),
                                 "b"))
    assert alias.top_k == 2
    # null head_dim and num_key_value_heads: hidden / heads and MHA, as in transformers
    nulls = load_hf_config(write(tmp_path, oss(head_dim=None, num_key_value_heads=None), "c"))
    assert (nulls.head_dim, nulls.num_kv_heads) == (45, 64)


def test_gpt_oss_mxfp4_weights(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, oss(quantization_config={"quant_method": "mxfp4"})))
    assert spec.weight_bits == 4
    assert spec.linear_weight_bytes == 0.5


def test_minimax_fields(tmp_path: Path) -> None:
    spec = load_hf_config(write(tmp_path, MINIMAX_M1, dirname="MiniMax-M1-80k"))
    assert spec.name == "MiniMax-M1-80k"
    assert (spec.linear_attention_layers, spec.full_attention_layers) == (70, 10)
    assert (spec.num_experts, spec.top_k, spec.expert_intermediate_size) == (32, 2, 9216)
    assert spec.kv_bytes_per_sequence == 70 * 64 * 128 * 128 * 4
    text01 = load_hf_config(write(tmp_path, minimax(architectures=["MiniMaxText01ForCausalLM"]),
                                  "b"), name="minimax-m1")
    assert text01 == CATALOG["minimax-m1"]


def test_minimax_defaults(tmp_path: Path) -> None:
    # transformers' MiniMaxConfig: head_dim hidden / heads, 8 KV heads, 8 experts top-2
    absent = ("head_dim", "num_key_value_heads", "num_local_experts", "num_experts_per_tok")
    spec = load_hf_config(write(tmp_path, minimax(**{key: _DROP for key in absent})))
    assert (spec.head_dim, spec.num_kv_heads, spec.num_experts, spec.top_k) == (96, 8, 8, 2)


@pytest.mark.parametrize("config, needle", [
    (minimax(attn_type_list=_DROP), "attn_type_list: missing"),
    (minimax(attn_type_list=None), "attn_type_list: missing"),
    (minimax(attn_type_list=[0, 1] * 39), "attn_type_list: expected a list of "
                                          "num_hidden_layers (80) entries, got [0, 1, "),
    (minimax(attn_type_list=[0] * 79 + [2]), "attn_type_list: expected 0 (linear) or 1 "
                                             "(softmax), got 2"),
    (minimax(attn_type_list=[0] * 79 + [True]), "attn_type_list: expected 0 (linear) or 1 "
                                                "(softmax), got True"),
    (minimax(attn_type_list=[0] * 80), "attn_type_list: no softmax-attention layer"),
    (minimax(shared_intermediate_size=4096), "shared_intermediate_size: unsupported 4096"),
    (oss(layer_types=["sliding_attention"] * 23 + ["chunked_attention"]),
     "layer_types: expected 'sliding_attention' or 'full_attention', got 'chunked_attention'"),
    (oss(layer_types="sliding_attention"), "layer_types: expected a list of num_hidden_layers "
                                           "(24) entries, got 'sliding_attention'"),
    (oss(layer_types=_OSS_LAYER_TYPES * 11), "layer_types: expected a list of "
                                             "num_hidden_layers (24) entries"),
    (oss(layer_types=["sliding_attention"] * 24), "layer_types: every layer is "
                                                  "sliding_attention"),
    (oss(sliding_window=None), "sliding_window: null, but 12 layers are sliding_attention"),
    (oss(sliding_window=0), "sliding_window: expected a positive integer, got 0"),
    (oss(experts_per_token=2), "experts_per_token: 2 differs from num_experts_per_tok 4"),
    (oss(num_experts_per_tok=33, experts_per_token=_DROP),
     "top_k: expected 1..num_experts (32), got 33"),
    (oss(attention_bias="yes"), "attention_bias: expected true or false, got 'yes'"),
])
def test_bad_bounded_attention_configs(tmp_path: Path, config: dict, needle: str) -> None:
    path = write(tmp_path, config)
    with pytest.raises(ModelError) as info:
        load_hf_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {needle}")
    assert "\n" not in message


def test_qwen3_next_layer_types_and_defaults(tmp_path: Path) -> None:
    types = (["linear_attention"] * 3 + ["full_attention"]) * 12
    listed = load_hf_config(write(tmp_path, {**QWEN3_NEXT, "layer_types": types}, "a"),
                            name="qwen3-next-80b-a3b")
    assert listed == CATALOG["qwen3-next-80b-a3b"]
    every_other = load_hf_config(write(tmp_path, {**QWEN3_NEXT, "full_attention_interval": 2},
                                       "b"))
    assert every_other.linear_attention_layers == 24
    # no shared expert when its width is 0
    plain = load_hf_config(write(tmp_path, {**QWEN3_NEXT, "shared_expert_intermediate_size": 0},
                                 "c"))
    assert plain.num_shared_experts == 0


@pytest.mark.parametrize("changes, message", [
    ({"layer_types": ["full_attention"] * 3}, "layer_types: expected a list of "
                                              "num_hidden_layers"),
    ({"layer_types": ["linear_attention"] * 48}, "layer_types: every layer is linear_attention"),
    ({"layer_types": ["sliding_attention"] * 48}, "layer_types: expected 'linear_attention'"),
    ({"num_experts": 0}, "num_experts: expected a positive integer"),
    ({"linear_num_value_heads": -1}, "linear_num_value_heads: expected a positive integer"),
])
def test_bad_qwen3_next_configs_are_named(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_hf_config(write(tmp_path, {**QWEN3_NEXT, **changes}))


def test_minicpm_without_sparse_config_is_dense(tmp_path: Path) -> None:
    dense = {k: v for k, v in MINICPM4_8B.items() if k != "sparse_config"}
    spec = load_hf_config(write(tmp_path, dense))
    assert not spec.has_sparse_attention
    assert spec.num_params == CATALOG["minicpm4-8b"].num_params


@pytest.mark.parametrize("sparse, message", [
    ("yes", "sparse_config: expected an object"),
    ({"topk": 64, "block_size": 64}, "sparse_config.kernel_stride: missing"),
    ({"topk": 0, "block_size": 64, "kernel_stride": 16}, "sparse_config.topk: expected a "
                                                         "positive integer"),
])
def test_bad_minicpm_sparse_config_is_named(tmp_path: Path, sparse: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_hf_config(write(tmp_path, {**MINICPM4_8B, "sparse_config": sparse}))
