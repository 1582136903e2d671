"""ModelSpec: the shape of a decoder-only transformer, as the cost and memory models need it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers of a dense, GQA, MLA or MoE decoder.

    Attention: ``num_heads`` query heads and ``num_kv_heads`` key/value heads (GQA when fewer),
    each ``head_dim`` wide. MLP: ``mlp_gated`` (SwiGLU: gate+up then down, 3 matrices) or plain
    (up then down, 2 matrices, e.g. OPT). MoE layers replace the dense MLP by ``num_experts``
    experts of width ``expert_intermediate_size`` (top-``top_k`` routed, plus ``num_shared_experts``
    always-on experts of width ``shared_expert_intermediate_size``). ``moe_layer_interval`` k means
    every k-th layer is MoE (1: all, 2: every other layer as in GLaM); 0 when dense.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int            # dense MLP width (0 if every layer is MoE and has no dense MLP)
    vocab_size: int
    max_context_tokens: int
    dtype_bytes: int = 2              # weights and KV cache element size (bf16/fp16 = 2)
    mlp_gated: bool = True
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    num_experts: int = 0
    top_k: int = 0
    expert_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    moe_layer_interval: int = 0
    # the first layers keep a dense MLP before the MoE layers start (DeepSeek's
    # first_k_dense_replace); the MoE interval counts from there
    first_k_dense_layers: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): per token and layer the cache holds
    # one compressed latent of kv_lora_rank values and a rotary key of qk_rope_head_dim values,
    # shared by every head; queries and keys have qk_nope_head_dim + qk_rope_head_dim per head,
    # values v_head_dim. q_lora_rank: the query's low-rank projection (0: a plain one).
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Layers that do not keep every token's KV: ``sliding_window_layers`` attend to the last
    # ``sliding_window`` tokens only (gpt-oss, Gemma; Llama-4's chunked attention, counted at
    # its chunk size), ``linear_attention_layers`` keep a constant state per sequence instead of
    # a cache (MiniMax's lightning attention: ``linear_state_bytes`` per layer and sequence; 0:
    # heads x head_dim^2 in fp32). The other layers are full (softmax) attention.
    sliding_window: int = 0
    sliding_window_layers: int = 0
    linear_attention_layers: int = 0
    linear_state_bytes: int = 0
    # Sparse attention over a full cache (MiniCPM4's InfLLM v2): the full layers keep every
    # token's KV, but once a sequence is longer than ``sparse_attention_dense_tokens`` a query
    # reads only ``sparse_attention_tokens`` keys (its top-k blocks, which include the first
    # block and the local window), chosen by scoring one compressed key (K only) per
    # ``sparse_attention_stride`` tokens. 0: dense attention.
    sparse_attention_tokens: int = 0
    sparse_attention_dense_tokens: int = 0
    sparse_attention_stride: int = 0
    # precision: weight bits per parameter of the linear layers (0: 8 x dtype_bytes; 8 = FP8,
    # 4 = FP4/INT4) and KV cache element bytes (0: dtype_bytes; 1 = FP8)
    weight_bits: int = 0
    kv_dtype_bytes: int = 0
    # KV compression (sim/scenario.py's kv_compression: quantisation, cross-layer merging): the
    # factor on each cached value's bytes, and the FLOPs it adds per value read (dequantising)
    kv_compression: float = 1.0
    kv_compression_flops_per_value: float = 0.0
    source: str = field(default="", compare=False)   # where the numbers come from

    # -- derived shapes ------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        return (self.num_layers - self.first_k_dense_layers) // self.moe_layer_interval

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def kv_element_bytes(self) -> float:
        """Bytes of one cached K/V (or latent) value (fractional when compressed)."""
        size = self.kv_dtype_bytes or self.dtype_bytes
        return size if self.kv_compression == 1.0 else size * self.kv_compression

    @property
    def linear_weight_bytes(self) -> float:
        """Bytes of one linear-layer weight (fractional below 8 bits)."""
        return self.weight_bits / 8 if self.weight_bits else float(self.dtype_bytes)

    @property
    def full_attention_layers(self) -> int:
        """Layers whose cache grows with every token."""
        return self.num_layers - self.sliding_window_layers - self.linear_attention_layers

    @property
    def has_bounded_layers(self) -> bool:
        return bool(self.sliding_window_layers or self.linear_attention_layers)

    @property
    def has_sparse_attention(self) -> bool:
        return self.sparse_attention_tokens > 0

    @property
    def linear_state_bytes_per_layer(self) -> int:
        """One sequence's state in one linear-attention layer (whole model, all heads)."""
        return self.linear_state_bytes or self.num_heads * self.head_dim ** 2 * 4

    @property
    def kv_bytes_per_sequence(self) -> int:
        """The cache a sequence holds whatever its length, once past the window: the sliding
        layers' last ``sliding_window`` tokens and the linear layers' states (whole model)."""
        return (self.sliding_window_layers * self.sliding_window * self.kv_values_per_token_layer
                * self.kv_element_bytes
                + self.linear_attention_layers * self.linear_state_bytes_per_layer)

    @property
    def kv_values_per_token_layer(self) -> int:
        """Values cached per token and layer, whole model (every KV head, K and V)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def gqa_group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.mlp_gated else 2

    # -- parameter counts (weights only; norms and biases are counted, they are tiny) ----------
    @property
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        if self.is_mla:
            heads, qk = self.num_heads, self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:      # down-projection, its norm, up-projection
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * heads * qk
            else:
                q = h * heads * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank \
                + self.kv_lora_rank * heads * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv + heads * self.v_head_dim * h
        params = h * (self.q_size + 2 * self.kv_size) + self.q_size * h
        if self.qkv_bias:
            params += self.q_size + 2 * self.kv_size
        return params

    @property
    def dense_mlp_params(self) -> int:
        return self.mlp_matrices * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        """Parameters of one routed expert."""
        return self.mlp_matrices * self.hidden_size * self.expert_intermediate_size

    @property
    def moe_mlp_params(self) -> int:
        shared = self.num_shared_experts * self.mlp_matrices * self.hidden_size * \
            self.shared_expert_intermediate_size
        router = self.hidden_size * self.num_experts
        return self.num_experts * self.expert_params + shared + router

    @property
    def norm_params_per_layer(self) -> int:
        return 2 * self.hidden_size

    @property
    def embedding_params(self) -> int:
        emb = self.vocab_size * self.hidden_size
        return emb if self.tie_word_embeddings else 2 * emb

    @property
    def num_params(self) -> int:
        layers = self.num_layers * (self.attention_params_per_layer + self.norm_params_per_layer)
        layers += self.num_dense_layers * self.dense_mlp_params
        layers += self.num_moe_layers * self.moe_mlp_params
        return layers + self.embedding_params + self.hidden_size  # + final norm

    @property
    def num_active_params(self) -> int:
        """Parameters touched by one token (MoE: only top_k routed experts)."""
        if not self.is_moe:
            return self.num_params
        idle = self.num_moe_layers * (self.num_experts - self.top_k) * self.expert_params
        return self.num_params - idle

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights: linear layers at ``weight_bits``; embeddings, norms and the
        MoE router at ``dtype_bytes`` (as FP8 and FP4 checkpoints keep them)."""
        if not self.weight_bits:
            return self.num_params * self.dtype_bytes
        kept = self.embedding_params + self.num_layers * self.norm_params_per_layer \
            + self.hidden_size + self.num_moe_layers * self.hidden_size * self.num_experts
        return int((self.num_params - kept) * self.linear_weight_bytes
                   + kept * self.dtype_bytes)

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache per token, whole model: full-attention layers x values per layer
        (2 x kv_heads x head_dim; MLA: latent + rotary key) x the KV element size. Sliding-window
        and linear layers hold a bounded amount per sequence (``kv_bytes_per_sequence``)."""
        return math.ceil(self.full_attention_layers * self.kv_values_per_token_layer
                         * self.kv_element_bytes)
