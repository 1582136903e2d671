"""Hugging Face ``config.json`` -> :class:`ModelSpec`.

One converter per architecture in ``ARCHITECTURES`` (the ``architectures[0]`` string of the
config); adding one is a function plus a line. Defaults for absent optional keys follow the
corresponding ``transformers`` config class, so a config means here what it means to HF.
Every problem is a one-line :class:`ModelError` naming the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import ModelError
from sim.models.spec import ModelSpec

# Element size of weights and KV cache. Absent dtype: serving is bf16 unless said otherwise.
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}


class _Config:
    """A parsed config.json plus its path, with typed getters that fail naming file and key."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    def error(self, key: str, problem: str) -> ModelError:
        return ModelError(f"{self.path}: {key}: {problem}")

    def positive_int(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "missing")
            return default
        # bool is an int subclass; `true` layers is a broken config, not 1 layer.
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.error(key, f"expected a positive integer, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def dtype_bytes(self) -> int:
        # transformers >= 4.56 writes "dtype"; older configs write "torch_dtype".
        key = "dtype" if "dtype" in self.data else "torch_dtype"
        value = self.data.get(key) or "bfloat16"
        if not isinstance(value, str) or value not in _DTYPE_BYTES:
            raise self.error(key, f"expected one of {', '.join(_DTYPE_BYTES)}, got {value!r}")
        return _DTYPE_BYTES[value]


def _decoder(cfg: _Config, name: str, *, qkv_bias: bool, head_dim_default: int | None = None,
             **moe: int) -> ModelSpec:
    """Fields shared by every supported architecture (Llama-style decoder), plus MoE extras."""
    hidden = cfg.positive_int("hidden_size")
    heads = cfg.positive_int("num_attention_heads")
    kv_heads = cfg.positive_int("num_key_value_heads", default=heads)   # absent: MHA
    if heads % kv_heads:
        raise cfg.error("num_key_value_heads",
                        f"{kv_heads} does not divide num_attention_heads {heads}")
    # head_dim may be null in configs written by transformers: same as absent.
    head_dim = cfg.positive_int("head_dim", default=head_dim_default or hidden // heads)
    return ModelSpec(
        name=name,
        num_layers=cfg.positive_int("num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=cfg.positive_int("intermediate_size"),
        vocab_size=cfg.positive_int("vocab_size"),
        max_context_tokens=cfg.positive_int("max_position_embeddings"),
        dtype_bytes=cfg.dtype_bytes(),
        tie_word_embeddings=cfg.flag("tie_word_embeddings", False),
        qkv_bias=qkv_bias,
        source=str(cfg.path),
        **moe,
    )


def _llama(cfg: _Config, name: str) -> ModelSpec:
    # attention_bias puts a bias on q, k, v and o; ModelSpec counts q/k/v's, o's is 1 vector.
    return _decoder(cfg, name, qkv_bias=cfg.flag("attention_bias", False))


def _mistral(cfg: _Config, name: str) -> ModelSpec:
    # sliding_window only bounds attention span; it does not change the weights or KV per token.
    return _decoder(cfg, name, qkv_bias=False)


def _mixtral(cfg: _Config, name: str) -> ModelSpec:
    # Every layer is MoE and HF's intermediate_size is the expert width.
    return _decoder(cfg, name, qkv_bias=False,
                  num_experts=cfg.positive_int("num_local_experts", default=8),
                  top_k=cfg.positive_int("num_experts_per_tok", default=2),
                  expert_intermediate_size=cfg.positive_int("intermediate_size"),
                  moe_layer_interval=1)


def _qwen2(cfg: _Config, name: str) -> ModelSpec:
    # Qwen2's q/k/v projections always have a bias; the config has no key for it.
    return _decoder(cfg, name, qkv_bias=True)


def _qwen3(cfg: _Config, name: str) -> ModelSpec:
    # transformers' Qwen3Config defaults head_dim to 128, not hidden/heads.
    return _decoder(cfg, name, qkv_bias=cfg.flag("attention_bias", False), head_dim_default=128)


def _qwen3_moe(cfg: _Config, name: str) -> ModelSpec:
    # num_experts 0 is transformers' way of saying dense. Absent is an error rather than
    # transformers' default of 128: the expert count is what makes the model.
    if cfg.data.get("num_experts") == 0:
        return _decoder(cfg, name, qkv_bias=cfg.flag("attention_bias", False))
    interval = cfg.positive_int("decoder_sparse_step", default=1)
    num_layers = cfg.positive_int("num_hidden_layers")
    _check_mlp_only_layers(cfg, num_layers, interval)
    # HF makes layer i MoE when (i + 1) % decoder_sparse_step == 0: the moe_layer_interval rule.
    return _decoder(cfg, name, qkv_bias=cfg.flag("attention_bias", False),
                  num_experts=cfg.positive_int("num_experts"),
                  top_k=cfg.positive_int("num_experts_per_tok"),
                  expert_intermediate_size=cfg.positive_int("moe_intermediate_size"),
                  moe_layer_interval=interval)


def _check_mlp_only_layers(cfg: _Config, num_layers: int, interval: int) -> None:
    """mlp_only_layers turns chosen MoE layers dense; representable only if it changes nothing."""
    layers = cfg.data.get("mlp_only_layers") or []
    if not isinstance(layers, list) or not all(isinstance(i, int) for i in layers):
        raise cfg.error("mlp_only_layers", f"expected a list of layer indices, got {layers!r}")
    turned_dense = sorted(i for i in layers if 0 <= i < num_layers and (i + 1) % interval == 0)
    if turned_dense:
        raise cfg.error("mlp_only_layers",
                        f"unsupported: dense layers {turned_dense} among MoE layers (ModelSpec "
                        f"needs every {interval}-th layer to be MoE)")


# architectures[0] -> converter. One line per supported architecture.
ARCHITECTURES: dict[str, Callable[[_Config, str], ModelSpec]] = {
    "LlamaForCausalLM": _llama,
    "MistralForCausalLM": _mistral,
    "MixtralForCausalLM": _mixtral,
    "Qwen2ForCausalLM": _qwen2,
    "Qwen3ForCausalLM": _qwen3,
    "Qwen3MoeForCausalLM": _qwen3_moe,
}


def load_hf_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a HF ``config.json`` (or a directory holding one) into a ModelSpec.

    ``name`` defaults to the directory the config sits in (``Llama-3.1-8B/config.json`` ->
    ``Llama-3.1-8B``), which is how HF checkouts are laid out.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(data).__name__}")
    cfg = _Config(path, data)
    archs = data.get("architectures")
    if not archs or not isinstance(archs, list):
        raise cfg.error("architectures", f"missing; supported: {', '.join(ARCHITECTURES)}")
    convert = ARCHITECTURES.get(archs[0]) if isinstance(archs[0], str) else None
    if convert is None:
        raise cfg.error("architectures",
                        f"unsupported {archs[0]!r}; supported: {', '.join(ARCHITECTURES)}")
    spec = convert(cfg, name or path.resolve().parent.name)
    check_spec(spec, str(path))
    return spec


def check_spec(spec: ModelSpec, where: str) -> None:
    """Consistency that field types cannot express; shared by the HF and YAML loaders."""
    def fail(field: str, problem: str) -> ModelError:
        return ModelError(f"{where}: {field}: {problem}")

    for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                  "vocab_size", "max_context_tokens", "dtype_bytes"):
        if getattr(spec, field) <= 0:
            raise fail(field, f"expected > 0, got {getattr(spec, field)}")
    if spec.num_heads % spec.num_kv_heads:
        raise fail("num_kv_heads", f"{spec.num_kv_heads} does not divide num_heads "
                                   f"{spec.num_heads}")
    if spec.is_moe:
        if not 0 < spec.top_k <= spec.num_experts:
            raise fail("top_k", f"expected 1..num_experts ({spec.num_experts}), got {spec.top_k}")
        if spec.expert_intermediate_size <= 0:
            raise fail("expert_intermediate_size", "expected > 0 for a MoE model")
        if not 0 < spec.moe_layer_interval <= spec.num_layers:
            raise fail("moe_layer_interval",
                       f"expected 1..num_layers ({spec.num_layers}), got {spec.moe_layer_interval}")
    if spec.num_dense_layers and spec.intermediate_size <= 0:
        raise fail("intermediate_size", f"expected > 0: {spec.num_dense_layers} dense layers")


__all__ = ["ARCHITECTURES", "check_spec", "load_hf_config"]
