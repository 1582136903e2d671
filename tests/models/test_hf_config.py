"""HF config.json -> ModelSpec, and get_model's name / directory / YAML resolution."""

from __future__ import annotations

import dataclasses
import json
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


# -- real configs reproduce the catalog ---------------------------------------------------------
@pytest.mark.parametrize("name, config", [
    ("llama-3.1-8b", LLAMA_31_8B), ("mixtral-8x7b", MIXTRAL_8X7B), ("qwen2.5-7b", QWEN25_7B),
    ("qwen3-32b", QWEN3_32B), ("qwen3-30b-a3b", QWEN3_30B_A3B),
])
def test_real_config_matches_catalog(tmp_path: Path, name: str, config: dict) -> None:
    spec = load_hf_config(write(tmp_path, config), name=name)
    assert spec == CATALOG[name]        # every field but source


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
        "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"}


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


def test_get_model_unsupported_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(LlmsimError, match="expected a HF config.json"):
        get_model(str(path))
