"""Built-in model catalog: published architecture numbers, keyed by the name a scenario writes.

Numbers come from each model's Hugging Face ``config.json`` (or its paper when there is none).
Convention for MoE models: ``intermediate_size`` mirrors HF's ``intermediate_size`` even when
every layer is MoE (it then only matters for dense layers, of which there are none), and the
routed expert width goes in ``expert_intermediate_size``. ``tests/models/test_catalog.py`` checks
every total against the published parameter count.
"""

from __future__ import annotations

from sim.models.spec import ModelSpec

_MODELS = (
    # -- Llama 2: MHA for 7B/13B, GQA-8 for 70B; 4k context ------------------------------------
    ModelSpec(
        name="llama-2-7b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=32,
        head_dim=128, intermediate_size=11008, vocab_size=32000, max_context_tokens=4096,
        source="meta-llama/Llama-2-7b-hf config.json"),
    ModelSpec(
        name="llama-2-13b", num_layers=40, hidden_size=5120, num_heads=40, num_kv_heads=40,
        head_dim=128, intermediate_size=13824, vocab_size=32000, max_context_tokens=4096,
        source="meta-llama/Llama-2-13b-hf config.json"),
    ModelSpec(
        name="llama-2-70b", num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8,
        head_dim=128, intermediate_size=28672, vocab_size=32000, max_context_tokens=4096,
        source="meta-llama/Llama-2-70b-hf config.json"),
    # -- Llama 3.1: GQA-8, 128k vocabulary and context ---------------------------------------
    ModelSpec(
        name="llama-3.1-8b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8,
        head_dim=128, intermediate_size=14336, vocab_size=128256, max_context_tokens=131072,
        source="meta-llama/Llama-3.1-8B config.json"),
    ModelSpec(
        name="llama-3.1-70b", num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8,
        head_dim=128, intermediate_size=28672, vocab_size=128256, max_context_tokens=131072,
        source="meta-llama/Llama-3.1-70B config.json"),
    # -- Qwen ---------------------------------------------------------------------------------
    ModelSpec(
        # Qwen2 always has bias on q/k/v projections. The base model's config says 131072
        # positions (the Instruct config says 32768 and reaches 128k with YaRN).
        name="qwen2.5-7b", num_layers=28, hidden_size=3584, num_heads=28, num_kv_heads=4,
        head_dim=128, intermediate_size=18944, vocab_size=152064, max_context_tokens=131072,
        qkv_bias=True, source="Qwen/Qwen2.5-7B config.json"),
    ModelSpec(
        # head_dim is 128, not hidden/heads = 80: Qwen3 sets it explicitly. The per-head q/k
        # RMSNorms (2 x 128 weights a layer) are not counted by ModelSpec; they are negligible.
        name="qwen3-32b", num_layers=64, hidden_size=5120, num_heads=64, num_kv_heads=8,
        head_dim=128, intermediate_size=25600, vocab_size=151936, max_context_tokens=40960,
        source="Qwen/Qwen3-32B config.json"),
    ModelSpec(
        # Every layer is MoE (decoder_sparse_step 1, mlp_only_layers []): the HF
        # intermediate_size 6144 is kept but unused. No shared experts.
        name="qwen3-30b-a3b", num_layers=48, hidden_size=2048, num_heads=32, num_kv_heads=4,
        head_dim=128, intermediate_size=6144, vocab_size=151936, max_context_tokens=40960,
        num_experts=128, top_k=8, expert_intermediate_size=768, moe_layer_interval=1,
        source="Qwen/Qwen3-30B-A3B config.json"),
    ModelSpec(
        # As qwen3-30b-a3b: every layer MoE, HF intermediate_size 12288 kept but unused, no
        # shared experts, per-head q/k RMSNorms (94 x 256 weights) not counted. Published 235B
        # total, 22B activated; ModelSpec gives 235.09B and 22.19B.
        name="qwen3-235b-a22b", num_layers=94, hidden_size=4096, num_heads=64, num_kv_heads=4,
        head_dim=128, intermediate_size=12288, vocab_size=151936, max_context_tokens=40960,
        num_experts=128, top_k=8, expert_intermediate_size=1536, moe_layer_interval=1,
        source="Qwen/Qwen3-235B-A22B config.json"),
    # -- Llama 4: MoE with a shared expert, chunked local attention ---------------------------
    ModelSpec(
        # Llama-4-Scout (text model of Llama4ForConditionalGeneration; the config's text_config):
        # 16 routed experts (top-1) of HF's intermediate_size 8192 plus 1 shared expert of 8192,
        # MoE every layer (interleave_moe_layer_step 1). intermediate_size here is HF's
        # intermediate_size_mlp 16384, the dense width (unused: no dense layer), not HF's
        # intermediate_size, which is the expert width. Attention: chunked local attention
        # (attention_chunk_size 8192) in 3 of every 4 layers, the 4th global and without RoPE
        # (no_rope_layer_interval 4): 36 chunked and 12 global layers. A chunked layer attends
        # only to the earlier tokens of its own 8192-token chunk, between 0 and 8192 of them;
        # it is modelled as an 8192-token sliding window, the upper bound, which is what the
        # simulator charges for it. The L2 q/k norm has no weights. Published 109B total, 17B
        # activated; ModelSpec gives 107.77B (-1.1%) and 17.17B (+1.0%) for the text model:
        # the published total presumably also counts the vision encoder and projector, which
        # are not modelled here.
        name="llama-4-scout", num_layers=48, hidden_size=5120, num_heads=40, num_kv_heads=8,
        head_dim=128, intermediate_size=16384, vocab_size=202048, max_context_tokens=10485760,
        num_experts=16, top_k=1, expert_intermediate_size=8192, num_shared_experts=1,
        shared_expert_intermediate_size=8192, moe_layer_interval=1,
        sliding_window=8192, sliding_window_layers=36,
        source="meta-llama/Llama-4-Scout-17B-16E config.json (text_config)"),
    ModelSpec(
        # Llama-4-Maverick: as Scout but 128 routed experts and MoE every other layer
        # (interleave_moe_layer_step 2: layers 1, 3, ..., 47 are MoE); the other 24 layers have
        # a dense MLP of intermediate_size_mlp 16384. 1M context. Published 400B total, 17B
        # activated; ModelSpec gives 400.71B (+0.2%) and 17.18B (+1.1%) for the text model
        # (vision encoder not modelled, as for Scout).
        name="llama-4-maverick", num_layers=48, hidden_size=5120, num_heads=40, num_kv_heads=8,
        head_dim=128, intermediate_size=16384, vocab_size=202048, max_context_tokens=1048576,
        num_experts=128, top_k=1, expert_intermediate_size=8192, num_shared_experts=1,
        shared_expert_intermediate_size=8192, moe_layer_interval=2,
        sliding_window=8192, sliding_window_layers=36,
        source="meta-llama/Llama-4-Maverick-17B-128E config.json (text_config)"),
    # -- Sliding-window and linear attention ---------------------------------------------------
    ModelSpec(
        # gpt-oss: layer_types alternate sliding (window 128) and full attention, 18 of each;
        # every layer MoE (128 experts of 2880, top-4, SwiGLU); q/k/v with bias; attention
        # sinks (64 per layer) not counted. The only published checkpoint stores the experts
        # in MXFP4 (quantization_config quant_method mxfp4): weight_bits 4 here, which also
        # counts the (bf16, ~1% of the weights) attention projections at 4 bits. Published
        # 116.8B total, 5.1B activated.
        name="gpt-oss-120b", num_layers=36, hidden_size=2880, num_heads=64, num_kv_heads=8,
        head_dim=64, intermediate_size=2880, vocab_size=201088, max_context_tokens=131072,
        qkv_bias=True, num_experts=128, top_k=4, expert_intermediate_size=2880,
        moe_layer_interval=1, sliding_window=128, sliding_window_layers=18, weight_bits=4,
        source="openai/gpt-oss-120b config.json"),
    ModelSpec(
        # As gpt-oss-120b with 24 layers (12 sliding) and 32 experts. Published 20.9B total,
        # 3.6B activated.
        name="gpt-oss-20b", num_layers=24, hidden_size=2880, num_heads=64, num_kv_heads=8,
        head_dim=64, intermediate_size=2880, vocab_size=201088, max_context_tokens=131072,
        qkv_bias=True, num_experts=32, top_k=4, expert_intermediate_size=2880,
        moe_layer_interval=1, sliding_window=128, sliding_window_layers=12, weight_bits=4,
        source="openai/gpt-oss-20b config.json"),
    ModelSpec(
        # MiniMax-M1 (text): lightning (linear) attention in 7 of every 8 layers, softmax
        # attention in the 8th (10 of 80); each linear layer keeps a 64 x 128 x 128 fp32 state
        # per sequence; 32 experts of 9216, top-2. The lightning layers' output gates and norms
        # are not counted (~2%). Published 456B total, 45.9B activated.
        name="minimax-m1", num_layers=80, hidden_size=6144, num_heads=64, num_kv_heads=8,
        head_dim=128, intermediate_size=9216, vocab_size=200064, max_context_tokens=1000000,
        num_experts=32, top_k=2, expert_intermediate_size=9216, moe_layer_interval=1,
        linear_attention_layers=70, source="MiniMaxAI/MiniMax-M1-80k config.json"),
    ModelSpec(
        # Qwen3-Next-80B-A3B: a very sparse MoE (512 routed experts of 512, top-10, ~2% of the
        # experts per token, plus one shared expert of 512) over a hybrid stack: Gated DeltaNet
        # (linear attention) in 3 of every 4 layers, gated softmax attention in the 4th
        # (full_attention_interval 4: 12 of 48, GQA 16/2 heads of 256). Each DeltaNet layer keeps
        # per sequence a 32 value heads x 128 x 128 state and a 3-step convolution state over
        # 8192 channels, both in the model dtype as vLLM keeps them: 1,097,728 bytes. Not
        # counted: the softmax layers' output gate (q_proj doubled) and the DeltaNet layers'
        # own projections are costed as the softmax layers' (33.6M against 27.3M a layer,
        # 0.2B in all), the shared-expert gate and the q/k norms. Published 80B total, 3B
        # activated (without the embeddings); ModelSpec gives 79.04B (-1.2%), and 3.24B
        # activated with both embeddings, 2.93B (-2.4%) without the input one.
        name="qwen3-next-80b-a3b", num_layers=48, hidden_size=2048, num_heads=16,
        num_kv_heads=2, head_dim=256, intermediate_size=5120, vocab_size=151936,
        max_context_tokens=262144, num_experts=512, top_k=10, expert_intermediate_size=512,
        num_shared_experts=1, shared_expert_intermediate_size=512, moe_layer_interval=1,
        linear_attention_layers=36, linear_state_bytes=32 * 128 * 128 * 2 + 3 * 8192 * 2,
        source="Qwen/Qwen3-Next-80B-A3B-Instruct config.json"),
    # -- Sparse attention over a full cache ----------------------------------------------------
    ModelSpec(
        # MiniCPM4-8B: a Llama-shaped dense decoder (32 layers, GQA 32/2 heads of 128, SwiGLU
        # 16384, untied embeddings of 73,448 tokens) with InfLLM v2 sparse attention in every
        # layer (sparse_config): past dense_len 8192 tokens a query reads its top-64 blocks of
        # 64 tokens (4096 keys, the first block and the 2048-token local window among them),
        # chosen with compressed keys every kernel_stride 16 tokens. The cache keeps every
        # token: 32 x 2 x 2 x 128 x 2 = 32,768 bytes per token; the compressed keys (1/32 more)
        # are not counted. muP scalings (scale_emb, dim_model_base, scale_depth) change no
        # shape. Published "8B"; ModelSpec gives 8.19B.
        name="minicpm4-8b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=2,
        head_dim=128, intermediate_size=16384, vocab_size=73448, max_context_tokens=32768,
        sparse_attention_tokens=64 * 64, sparse_attention_dense_tokens=8192,
        sparse_attention_stride=16, source="openbmb/MiniCPM4-8B config.json"),
    # -- Multi-head latent attention (DeepseekV3ForCausalLM) ----------------------------------
    ModelSpec(
        # MLA: the cache holds a 512-value latent + a 64-value rotary key per token and layer;
        # queries go through a 1536-rank projection. head_dim 192 = qk_nope 128 + qk_rope 64
        # (the q/k width per head; values are v_head_dim 128); num_kv_heads is HF's
        # num_key_value_heads (= heads: the latent expands to per-head K and V). The first
        # first_k_dense_replace = 3 layers have a dense 18432-wide MLP; the other 58 are MoE:
        # 256 routed experts (top-8) and 1 shared expert, all moe_intermediate_size 2048 wide.
        # The checkpoint ships block-wise FP8 weights (quantization_config fp8); weight_bits is
        # left 0 (bf16) here since the precision is a scenario choice. ModelSpec gives 671.03B
        # total, the published 671B main model: the 14B multi-token-prediction module (layer 61,
        # num_nextn_predict_layers 1) is not counted, nor the router's per-expert score bias
        # (e_score_correction_bias, 58 x 256). 37.55B activated vs the published 37B.
        name="deepseek-v3", num_layers=61, hidden_size=7168, num_heads=128, num_kv_heads=128,
        head_dim=192, intermediate_size=18432, vocab_size=129280, max_context_tokens=163840,
        q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128,
        num_experts=256, top_k=8, expert_intermediate_size=2048, num_shared_experts=1,
        shared_expert_intermediate_size=2048, first_k_dense_layers=3, moe_layer_interval=1,
        source="deepseek-ai/DeepSeek-V3 config.json"),
    ModelSpec(
        # DeepSeek-V3's architecture (DeepseekV3ForCausalLM) with 64 heads, 384 routed experts,
        # one dense layer (first_k_dense_replace 1) and a 163840 vocabulary; no MTP module
        # (num_nextn_predict_layers 0). Ships FP8 like DeepSeek-V3; weight_bits left 0.
        # ModelSpec gives 1026.4B total (published "1.04T"; the 1,026B also quoted matches) and
        # 32.86B activated (published 32B; the tech report's 32.6B).
        name="kimi-k2", num_layers=61, hidden_size=7168, num_heads=64, num_kv_heads=64,
        head_dim=192, intermediate_size=18432, vocab_size=163840, max_context_tokens=131072,
        q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128,
        num_experts=384, top_k=8, expert_intermediate_size=2048, num_shared_experts=1,
        shared_expert_intermediate_size=2048, first_k_dense_layers=1, moe_layer_interval=1,
        source="moonshotai/Kimi-K2-Instruct config.json"),
    # -- Other MoE ----------------------------------------------------------------------------
    ModelSpec(
        # Mixtral's HF intermediate_size is the expert width; every layer is MoE.
        name="mixtral-8x7b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8,
        head_dim=128, intermediate_size=14336, vocab_size=32000, max_context_tokens=32768,
        num_experts=8, top_k=2, expert_intermediate_size=14336, moe_layer_interval=1,
        source="mistralai/Mixtral-8x7B-v0.1 config.json"),
    ModelSpec(
        # GLaM (8B/64E), Du et al. 2022, Table 4. The paper gives no context length; 2048 is
        # assumed. The 143B total only adds up with 2-matrix (non-gated) FFNs: gated experts
        # would make it ~212B, so mlp_gated=False. Input/output embeddings assumed shared.
        name="glam-143b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=32,
        head_dim=128, intermediate_size=16384, vocab_size=256000, max_context_tokens=2048,
        mlp_gated=False, tie_word_embeddings=True,
        num_experts=64, top_k=2, expert_intermediate_size=16384, moe_layer_interval=2,
        source="GLaM paper (arXiv:2112.06905) Table 4; context 2048, FFN non-gated and tied "
               "embeddings assumed to match the published 143B"),
    ModelSpec(
        # Grok-1 shares the input embedding with the output projection (InOutEmbed).
        name="grok-1", num_layers=64, hidden_size=6144, num_heads=48, num_kv_heads=8,
        head_dim=128, intermediate_size=32768, vocab_size=131072, max_context_tokens=8192,
        tie_word_embeddings=True,
        num_experts=8, top_k=2, expert_intermediate_size=32768, moe_layer_interval=1,
        source="xai-org/grok-1 model.py / release notes"),
    # -- OPT: MHA, plain 2-matrix ReLU MLP, tied embeddings, biases everywhere -----------------
    ModelSpec(
        # ModelSpec omits OPT's learned position embeddings (2050 x 9216) and its non-qkv
        # biases (~25M together, <0.1%).
        name="opt-66b", num_layers=64, hidden_size=9216, num_heads=72, num_kv_heads=72,
        head_dim=128, intermediate_size=36864, vocab_size=50272, max_context_tokens=2048,
        mlp_gated=False, tie_word_embeddings=True, qkv_bias=True,
        source="facebook/opt-66b config.json"),
)

CATALOG: dict[str, ModelSpec] = {model.name: model for model in _MODELS}

# Hugging Face repository names (as vLLM runs and measured profiles write them) -> catalog
# names, lower-cased. Variants with the same architecture (an instruct or dated release) share
# their base model's entry.
HF_NAMES: dict[str, str] = {
    model.source.split()[0].lower(): model.name for model in _MODELS
    if "/" in model.source.split()[0]}
HF_NAMES.update({"meta-llama/llama-3.1-8b-instruct": "llama-3.1-8b",
                 "meta-llama/llama-3.1-70b-instruct": "llama-3.1-70b",
                 "qwen/qwen3-30b-a3b-instruct-2507": "qwen3-30b-a3b",
                 "qwen/qwen3-30b-a3b-thinking-2507": "qwen3-30b-a3b",
                 "qwen/qwen2.5-7b-instruct": "qwen2.5-7b",
                 "mistralai/mixtral-8x7b-instruct-v0.1": "mixtral-8x7b",
                 # DeepSeek-R1 and the base and 0324 releases share DeepSeek-V3's config
                 "deepseek-ai/deepseek-v3-base": "deepseek-v3",
                 "deepseek-ai/deepseek-v3-0324": "deepseek-v3",
                 "deepseek-ai/deepseek-r1": "deepseek-v3",
                 "moonshotai/kimi-k2-base": "kimi-k2",
                 "meta-llama/llama-4-scout-17b-16e-instruct": "llama-4-scout",
                 "meta-llama/llama-4-maverick-17b-128e-instruct": "llama-4-maverick"})


def catalog_name(name: str) -> str | None:
    """The catalog name of ``name``: a catalog name itself or a known HF repository name."""
    if name in CATALOG:
        return name
    return HF_NAMES.get(name.strip().lower())
