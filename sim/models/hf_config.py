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

    def non_negative_int(self, key: str, default: int) -> int:
        """An integer >= 0; absent or null: ``default``."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.error(key, f"expected an integer >= 0, got {value!r}")
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

    def weight_bits(self) -> int:
        """ModelSpec.weight_bits from ``quantization_config`` (absent: 0, the dtype's width).

        ``quant_method: fp8`` is the block-wise FP8 of DeepSeek-V3 and Kimi-K2 (and Qwen's -FP8
        releases): every linear layer of the decoder stores e4m3 weights (1 byte) plus a float32
        scale per 128 x 128 block (1/16384 of the weights, not counted), while the embeddings,
        norms and the MoE router stay in the config's dtype, which is what ModelSpec's
        weight_bits 8 means. GPTQ and AWQ store ``bits``-bit integer weights with per-group
        scales (the scales not counted); ``mxfp4`` (gpt-oss) 4-bit floats. Other methods
        (compressed-tensors, ...) lay out their weights differently and are refused rather than
        silently simulated at the dtype.
        """
        quant = self.data.get("quantization_config")
        if quant is None:
            return 0
        if not isinstance(quant, dict):
            raise self.error("quantization_config", f"expected an object, got {quant!r}")
        method = quant.get("quant_method")
        if method == "fp8":
            return 8
        if method == "mxfp4":
            return 4
        if method in ("gptq", "awq"):
            bits = quant.get("bits", 4)
            if bits not in (4, 8):
                raise self.error("quantization_config.bits", f"expected 4 or 8, got {bits!r}")
            return bits
        raise self.error("quantization_config.quant_method",
                         f"unsupported {method!r}; supported: 'fp8', 'mxfp4', 'gptq', 'awq' (or "
                         f"remove quantization_config to simulate the model at its dtype)")


def _decoder(cfg: _Config, name: str, *, qkv_bias: bool, head_dim_default: int | None = None,
             head_dim: int | None = None, kv_heads_default: int | None = None,
             **extra: int) -> ModelSpec:
    """Fields shared by every supported architecture (Llama-style decoder), plus MoE and MLA
    extras. ``head_dim`` given: the config's head_dim key is not read. ``kv_heads_default``:
    num_key_value_heads when the key is absent (null stays MHA, as in transformers)."""
    hidden = cfg.positive_int("hidden_size")
    heads = cfg.positive_int("num_attention_heads")
    if kv_heads_default is not None and "num_key_value_heads" not in cfg.data:
        kv_heads = kv_heads_default
    else:
        kv_heads = cfg.positive_int("num_key_value_heads", default=heads)   # absent: MHA
    if heads % kv_heads:
        raise cfg.error("num_key_value_heads",
                        f"{kv_heads} does not divide num_attention_heads {heads}")
    if head_dim is None:
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
        weight_bits=cfg.weight_bits(),
        tie_word_embeddings=cfg.flag("tie_word_embeddings", False),
        qkv_bias=qkv_bias,
        source=str(cfg.path),
        **extra,
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


def _deepseek(cfg: _Config, name: str, *, first_k_dense_default: int,
              shared_default: int) -> ModelSpec:
    """DeepSeek-V2/V3 (and Kimi-K2): multi-head latent attention, fine-grained MoE with shared
    experts after ``first_k_dense_replace`` dense layers.

    The MLA shape keys are required (they are what makes the model, as num_experts is for
    Qwen3-MoE); the others default as transformers' DeepseekV2Config / DeepseekV3Config have
    them. transformers' DeepseekV3Config sets head_dim = qk_rope_head_dim (for its rotary
    embedding) and may write that to a saved config: the key is ignored, ModelSpec's head_dim is
    the query/key width per head, qk_nope_head_dim + qk_rope_head_dim.
    """
    nope = cfg.positive_int("qk_nope_head_dim")
    mla = dict(
        kv_lora_rank=cfg.positive_int("kv_lora_rank"),
        # null (DeepSeek-V2-Lite): a plain h x heads*qk query projection. Absent: 1536, the
        # transformers default.
        q_lora_rank=(0 if "q_lora_rank" in cfg.data and cfg.data["q_lora_rank"] is None
                     else cfg.positive_int("q_lora_rank", default=1536)),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=cfg.positive_int("qk_rope_head_dim"),
        v_head_dim=cfg.positive_int("v_head_dim"),
    )
    head_dim = nope + mla["qk_rope_head_dim"]
    # n_routed_experts null: every layer dense (the checkpoints' modeling_deepseek.py rule).
    # Absent is an error rather than a transformers default: the expert count makes the model.
    if "n_routed_experts" in cfg.data and cfg.data["n_routed_experts"] is None:
        return _decoder(cfg, name, qkv_bias=False, head_dim=head_dim, **mla)
    num_layers = cfg.positive_int("num_hidden_layers")
    first_dense = cfg.non_negative_int("first_k_dense_replace", default=first_k_dense_default)
    if first_dense >= num_layers:
        raise cfg.error("first_k_dense_replace",
                        f"{first_dense} leaves no MoE layer of num_hidden_layers {num_layers}")
    # modeling_deepseek.py makes layer i MoE when i >= first_k_dense_replace and
    # i % moe_layer_freq == 0 (counted from layer 0); ModelSpec counts the interval from
    # first_k_dense_layers. Only the number of MoE layers matters to the simulator: refuse a
    # combination where the two rules give different numbers (every published config has 1).
    freq = cfg.positive_int("moe_layer_freq", default=1)
    hf_moe_layers = sum(1 for i in range(first_dense, num_layers) if i % freq == 0)
    if not hf_moe_layers:
        raise cfg.error("moe_layer_freq", f"{freq} leaves no MoE layer after "
                                          f"first_k_dense_replace {first_dense} of "
                                          f"num_hidden_layers {num_layers}")
    if hf_moe_layers != (num_layers - first_dense) // freq:
        raise cfg.error("moe_layer_freq",
                        f"unsupported: {freq} with first_k_dense_replace {first_dense} makes "
                        f"{hf_moe_layers} MoE layers, ModelSpec's interval rule "
                        f"{(num_layers - first_dense) // freq}")
    expert_width = cfg.positive_int("moe_intermediate_size")
    # Shared experts are one MLP n_shared_experts x moe_intermediate_size wide; ModelSpec
    # counts n_shared_experts of moe_intermediate_size, the same parameters and FLOPs. null:
    # none (modeling_deepseek.py's test); absent: the transformers default.
    shared = (0 if "n_shared_experts" in cfg.data and cfg.data["n_shared_experts"] is None
              else cfg.non_negative_int("n_shared_experts", default=shared_default))
    return _decoder(cfg, name, qkv_bias=False, head_dim=head_dim, **mla,
                    num_experts=cfg.positive_int("n_routed_experts"),
                    top_k=cfg.positive_int("num_experts_per_tok"),
                    expert_intermediate_size=expert_width,
                    num_shared_experts=shared,
                    shared_expert_intermediate_size=expert_width if shared else 0,
                    first_k_dense_layers=first_dense,
                    moe_layer_interval=freq)


def _deepseek_v2(cfg: _Config, name: str) -> ModelSpec:
    # DeepseekV2Config defaults: first_k_dense_replace 0, n_shared_experts None.
    return _deepseek(cfg, name, first_k_dense_default=0, shared_default=0)


def _deepseek_v3(cfg: _Config, name: str) -> ModelSpec:
    # DeepseekV3Config defaults: first_k_dense_replace 3, n_shared_experts 1. V3's router adds
    # a per-expert score bias (e_score_correction_bias, n_routed_experts values a MoE layer)
    # that ModelSpec does not count: 14,848 parameters in DeepSeek-V3. The multi-token-
    # prediction layers (num_nextn_predict_layers) are not part of the served model.
    return _deepseek(cfg, name, first_k_dense_default=3, shared_default=1)


def _gpt_oss(cfg: _Config, name: str) -> ModelSpec:
    """openai/gpt-oss-*: every layer MoE (num_local_experts experts of intermediate_size, gated,
    no shared expert), attention with q/k/v/o biases, and ``layer_types`` alternating sliding-
    window and full attention. Defaults as transformers' GptOssConfig: head_dim 64 (null:
    hidden/heads), num_key_value_heads 8, 128 experts top-4, sliding_window 128, attention_bias
    true, layer_types absent: sliding, full, sliding, ... (half of the layers sliding). The
    attention sinks (heads values a layer) and the experts' biases are not counted."""
    num_layers = cfg.positive_int("num_hidden_layers")
    hidden = cfg.positive_int("hidden_size")
    heads = cfg.positive_int("num_attention_heads")
    # the published configs write both num_experts_per_tok and experts_per_token (the original
    # openai config's name); transformers reads the former
    top_k = cfg.positive_int("num_experts_per_tok", default=0) or \
        cfg.positive_int("experts_per_token", default=4)
    if "experts_per_token" in cfg.data and top_k != cfg.positive_int("experts_per_token"):
        raise cfg.error("experts_per_token", f"{cfg.data['experts_per_token']!r} differs from "
                                             f"num_experts_per_tok {top_k}")
    # absent, as transformers: layer i sliding when (i + 1) is odd
    layer_types = _layer_types(cfg, num_layers, "sliding_attention",
                               lambda i: "sliding_attention" if (i + 1) % 2 else "full_attention")
    sliding_layers = layer_types.count("sliding_attention")
    window = 0
    if sliding_layers:
        if "sliding_window" in cfg.data and cfg.data["sliding_window"] is None:
            raise cfg.error("sliding_window", f"null, but {sliding_layers} layers are "
                                              f"sliding_attention")
        window = cfg.positive_int("sliding_window", default=128)
    head_dim = (hidden // heads if "head_dim" in cfg.data and cfg.data["head_dim"] is None
                else cfg.positive_int("head_dim", default=64))
    return _decoder(cfg, name, qkv_bias=cfg.flag("attention_bias", True), head_dim=head_dim,
                    kv_heads_default=8,
                    num_experts=cfg.positive_int("num_local_experts", default=128),
                    top_k=top_k,
                    expert_intermediate_size=cfg.positive_int("intermediate_size"),
                    moe_layer_interval=1,
                    sliding_window=window, sliding_window_layers=sliding_layers)


def _minimax(cfg: _Config, name: str) -> ModelSpec:
    """MiniMax-Text-01 / MiniMax-M1 (the checkpoints' remote code): ``attn_type_list`` gives
    each layer's attention, 0 lightning (linear) attention with a constant state, 1 softmax
    attention; every layer MoE (num_local_experts experts of intermediate_size, top
    num_experts_per_tok), no shared expert. Defaults as transformers' MiniMaxConfig:
    num_key_value_heads 8, head_dim hidden/heads, 8 experts top-2. Absent attn_type_list is
    refused rather than guessed (transformers' MiniMaxConfig would alternate, which is not
    the published models' 7-in-8). The lightning layers' output gates and norms are not
    counted."""
    num_layers = cfg.positive_int("num_hidden_layers")
    types = cfg.data.get("attn_type_list")
    if types is None:
        raise cfg.error("attn_type_list", "missing (needed: which layers are linear attention, "
                                          "0, and which softmax attention, 1)")
    if not isinstance(types, list) or len(types) != num_layers:
        raise cfg.error("attn_type_list", f"expected a list of num_hidden_layers ({num_layers}) "
                                          f"entries, got {_short(types)}")
    bad = [t for t in types if not isinstance(t, int) or isinstance(t, bool) or t not in (0, 1)]
    if bad:
        raise cfg.error("attn_type_list", f"expected 0 (linear) or 1 (softmax), got {bad[0]!r}")
    if 1 not in types:
        raise cfg.error("attn_type_list", "no softmax-attention layer (1); at least one is "
                                          "modelled")
    shared = cfg.data.get("shared_intermediate_size")
    if shared not in (None, 0):
        raise cfg.error("shared_intermediate_size", f"unsupported {shared!r} (shared experts "
                                                    f"are not modelled for MiniMax; 0 or absent)")
    return _decoder(cfg, name, qkv_bias=False, kv_heads_default=8,
                    num_experts=cfg.positive_int("num_local_experts", default=8),
                    top_k=cfg.positive_int("num_experts_per_tok", default=2),
                    expert_intermediate_size=cfg.positive_int("intermediate_size"),
                    moe_layer_interval=1,
                    linear_attention_layers=types.count(0))


def _qwen3_next(cfg: _Config, name: str) -> ModelSpec:
    """Qwen3-Next: Gated DeltaNet (linear attention) and gated softmax attention layers,
    ``layer_types`` ("linear_attention" / "full_attention") or, absent, every
    ``full_attention_interval``-th layer softmax (transformers' default 4); every layer MoE
    (``decoder_sparse_step``) with one shared expert of ``shared_expert_intermediate_size``.
    A DeltaNet layer's state per sequence: ``linear_num_value_heads`` x ``linear_key_head_dim``
    x ``linear_value_head_dim`` plus the convolution's last ``linear_conv_kernel_dim`` - 1
    steps over its q, k and v channels, in the model dtype (vLLM's default for this state).
    Not counted: the attention output gate and the DeltaNet projections' own shapes (costed
    as the softmax layers'), as in the catalog entry."""
    num_layers = cfg.positive_int("num_hidden_layers")
    every = cfg.positive_int("full_attention_interval", default=4)
    types = _layer_types(cfg, num_layers, "linear_attention",
                         lambda i: "full_attention" if (i + 1) % every == 0
                         else "linear_attention")
    interval = cfg.positive_int("decoder_sparse_step", default=1)
    _check_mlp_only_layers(cfg, num_layers, interval)
    key_heads = cfg.positive_int("linear_num_key_heads", default=16)
    value_heads = cfg.positive_int("linear_num_value_heads", default=32)
    key_dim = cfg.positive_int("linear_key_head_dim", default=128)
    value_dim = cfg.positive_int("linear_value_head_dim", default=128)
    conv_steps = cfg.positive_int("linear_conv_kernel_dim", default=4) - 1
    channels = 2 * key_heads * key_dim + value_heads * value_dim
    state = (value_heads * key_dim * value_dim + conv_steps * channels) * cfg.dtype_bytes()
    shared = cfg.non_negative_int("shared_expert_intermediate_size", default=0)
    return _decoder(cfg, name, qkv_bias=False, head_dim_default=256,
                    num_experts=cfg.positive_int("num_experts"),
                    top_k=cfg.positive_int("num_experts_per_tok"),
                    expert_intermediate_size=cfg.positive_int("moe_intermediate_size"),
                    num_shared_experts=1 if shared else 0,
                    shared_expert_intermediate_size=shared, moe_layer_interval=interval,
                    linear_attention_layers=types.count("linear_attention"),
                    linear_state_bytes=state)


def _minicpm(cfg: _Config, name: str) -> ModelSpec:
    """MiniCPM (openbmb's remote code): a Llama-shaped decoder; MiniCPM4's ``sparse_config``
    (InfLLM v2) turns on sparse attention in every layer: ``topk`` blocks of ``block_size``
    tokens per query past ``dense_len``, chosen with compressed keys every ``kernel_stride``
    tokens. Absent ``sparse_config`` (MiniCPM 1-3): dense attention. The muP keys
    (scale_emb, dim_model_base, scale_depth) change no shape."""
    sparse = cfg.data.get("sparse_config")
    extra: dict[str, int] = {}
    if sparse is not None:
        if not isinstance(sparse, dict):
            raise cfg.error("sparse_config", f"expected an object, got {_short(sparse)}")
        sub = _Config(cfg.path, sparse)
        try:
            extra = {"sparse_attention_tokens": sub.positive_int("topk")
                     * sub.positive_int("block_size"),
                     "sparse_attention_dense_tokens": sub.non_negative_int("dense_len", 0),
                     "sparse_attention_stride": sub.positive_int("kernel_stride")}
        except ModelError as exc:        # name the key as sparse_config.<key>
            raise ModelError(str(exc).replace(f"{cfg.path}: ", f"{cfg.path}: sparse_config.",
                                              1)) from None
    return _decoder(cfg, name, qkv_bias=False, **extra)


def _layer_types(cfg: _Config, num_layers: int, other: str,
                 default: Callable[[int], str]) -> list[str]:
    """``layer_types``: each layer's "full_attention" or ``other`` kind (absent: ``default(i)``
    for layer i); at least one full-attention layer (the cache that grows is modelled)."""
    types = cfg.data.get("layer_types")
    if types is None:
        types = [default(i) for i in range(num_layers)]
    elif not isinstance(types, list) or len(types) != num_layers:
        raise cfg.error("layer_types", f"expected a list of num_hidden_layers ({num_layers}) "
                                       f"entries, got {_short(types)}")
    bad = [t for t in types if t not in (other, "full_attention")]
    if bad:
        raise cfg.error("layer_types", f"expected {other!r} or 'full_attention', got "
                                       f"{bad[0]!r}")
    if "full_attention" not in types:
        raise cfg.error("layer_types", f"every layer is {other}; at least one full_attention "
                                       "layer is modelled")
    return types


def _short(value: Any) -> str:
    """A config value for a one-line message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# architectures[0] -> converter. One line per supported architecture.
ARCHITECTURES: dict[str, Callable[[_Config, str], ModelSpec]] = {
    "LlamaForCausalLM": _llama,
    "MistralForCausalLM": _mistral,
    "MixtralForCausalLM": _mixtral,
    "Qwen2ForCausalLM": _qwen2,
    "Qwen3ForCausalLM": _qwen3,
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "DeepseekV2ForCausalLM": _deepseek_v2,
    "DeepseekV3ForCausalLM": _deepseek_v3,
    "GptOssForCausalLM": _gpt_oss,
    "MiniMaxM1ForCausalLM": _minimax,
    "MiniMaxText01ForCausalLM": _minimax,
    "Qwen3NextForCausalLM": _qwen3_next,
    "MiniCPMForCausalLM": _minicpm,
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
    for field in ("intermediate_size", "num_experts", "top_k", "expert_intermediate_size",
                  "num_shared_experts", "shared_expert_intermediate_size", "moe_layer_interval",
                  "first_k_dense_layers", *_MLA_FIELDS, "weight_bits", "kv_dtype_bytes",
                  "sliding_window", "sliding_window_layers", "linear_attention_layers",
                  "linear_state_bytes", *_SPARSE_FIELDS):
        if getattr(spec, field) < 0:
            raise fail(field, f"expected >= 0, got {getattr(spec, field)}")
    if spec.full_attention_layers < 1:
        raise fail("sliding_window_layers", "sliding-window + linear-attention layers leave no "
                   f"full-attention layer of {spec.num_layers} (at least one is modelled)")
    if (spec.sliding_window > 0) != (spec.sliding_window_layers > 0):
        raise fail("sliding_window", "a window > 0 with sliding_window_layers > 0 (and only "
                   f"then), got {spec.sliding_window} with {spec.sliding_window_layers} layers")
    if spec.num_heads % spec.num_kv_heads:
        raise fail("num_kv_heads", f"{spec.num_kv_heads} does not divide num_heads "
                                   f"{spec.num_heads}")
    if spec.weight_bits > 32:
        raise fail("weight_bits", f"expected 0 (the dtype) or 1..32, got {spec.weight_bits}")
    _check_mla(spec, fail)
    if spec.has_sparse_attention != bool(spec.sparse_attention_stride):
        raise fail("sparse_attention_stride", "expected > 0 with sparse_attention_tokens > 0 "
                   f"(and only then), got {spec.sparse_attention_stride} with "
                   f"{spec.sparse_attention_tokens} tokens")
    if spec.sparse_attention_dense_tokens and not spec.has_sparse_attention:
        raise fail("sparse_attention_dense_tokens", "expected 0 without sparse attention "
                   "(sparse_attention_tokens 0)")
    if spec.first_k_dense_layers >= spec.num_layers:
        raise fail("first_k_dense_layers", f"expected < num_layers ({spec.num_layers}), got "
                                           f"{spec.first_k_dense_layers}")
    if spec.is_moe:
        if not 0 < spec.top_k <= spec.num_experts:
            raise fail("top_k", f"expected 1..num_experts ({spec.num_experts}), got {spec.top_k}")
        if spec.expert_intermediate_size <= 0:
            raise fail("expert_intermediate_size", "expected > 0 for a MoE model")
        # the interval counts from the first layer after the dense ones
        moe_span = spec.num_layers - spec.first_k_dense_layers
        if not 0 < spec.moe_layer_interval <= moe_span:
            raise fail("moe_layer_interval",
                       f"expected 1..{moe_span} (num_layers - first_k_dense_layers), got "
                       f"{spec.moe_layer_interval}")
    if spec.num_shared_experts:
        if not spec.is_moe:
            raise fail("num_shared_experts", "expected 0 without routed experts (num_experts 0)")
        if spec.shared_expert_intermediate_size <= 0:
            raise fail("shared_expert_intermediate_size",
                       f"expected > 0 with {spec.num_shared_experts} shared experts")
    if spec.num_dense_layers and spec.intermediate_size <= 0:
        raise fail("intermediate_size", f"expected > 0: {spec.num_dense_layers} dense layers")


_SPARSE_FIELDS = ("sparse_attention_tokens", "sparse_attention_dense_tokens",
                  "sparse_attention_stride")

# Multi-head latent attention fields besides kv_lora_rank, which turns MLA on.
_MLA_FIELDS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
               "v_head_dim")


def _check_mla(spec: ModelSpec, fail: Callable[[str, str], ModelError]) -> None:
    """MLA shape: kv_lora_rank > 0 turns it on and needs the rotary key and value widths;
    head_dim is then the query/key width per head. Without it the other MLA fields would be
    silently ignored (a GQA model), so they must be 0."""
    if not spec.is_mla:
        stray = [f for f in _MLA_FIELDS[1:] if getattr(spec, f)]
        if stray:
            raise fail("kv_lora_rank", f"expected > 0 (multi-head latent attention) when "
                                       f"{', '.join(stray)} are set")
        return
    for field in ("qk_rope_head_dim", "v_head_dim"):
        if getattr(spec, field) <= 0:
            raise fail(field, f"expected > 0 with kv_lora_rank {spec.kv_lora_rank} (multi-head "
                              f"latent attention)")
    qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
    if spec.head_dim != qk:
        raise fail("head_dim", f"expected qk_nope_head_dim + qk_rope_head_dim = {qk} with "
                               f"multi-head latent attention, got {spec.head_dim}")


__all__ = ["ARCHITECTURES", "check_spec", "load_hf_config"]
