"""FLOPs and bytes of the operators of one transformer layer: pure functions of shapes.

Conventions: a GEMM ``[m, k] x [k, n]`` costs ``2*m*k*n`` FLOPs and moves ``(m*k + k*n + m*n)``
elements (read activation and weight once, write the output); an elementwise op reads its inputs
and writes its output once. Attention follows FlashAttention: Q, K and V are read once, O is
written once, the new K and V are written to the paged cache. Shapes are per device under tensor
parallelism (heads and MLP width split ``tp`` ways; KV heads replicated when fewer than ``tp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the kind names live with the profile data that also names them (curves, tables per kind)
from sim.hardware.calibration.op_kinds import (ALLREDUCE, ALLTOALL, ATTN_DECODE,  # noqa: F401
                                               ATTN_PREFILL, ELEMENTWISE, GEMM, MOE_EXPERT,
                                               OP_KINDS)
from sim.models.spec import ModelSpec


@dataclass(frozen=True)
class Op:
    """One operator of an iteration: what it computes and moves, per device, per execution."""

    name: str            # e.g. "qkv_proj"
    kind: str            # one of OP_KINDS
    flops: float
    bytes: float
    count: int = 1       # executions per iteration (e.g. number of layers that run it)
    # Size key for measured tables: GEMM (m, k, n); elementwise and all-reduce
    # (tokens, width); () when unknown (the roofline then decides alone).
    shape: tuple = ()

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte (Op/B)."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(frozen=True)
class LayerDims:
    """Per-device widths of one layer under tensor parallelism ``tp``."""

    hidden: int
    q_width: int          # query heads on this device x head_dim
    kv_width: int         # KV heads on this device x head_dim
    heads: int            # query heads on this device
    head_dim: int
    mlp_width: int        # dense MLP intermediate on this device
    expert_width: int     # one expert's intermediate on this device
    shared_expert_width: int
    vocab: int            # LM-head columns on this device
    dtype_bytes: int      # activations (and weights and KV unless set below)
    gated: bool
    weight_bytes: float = 0.0   # one linear-layer weight (0: dtype_bytes)
    kv_bytes: float = 0         # one cached value (0: dtype_bytes; fractional if compressed)
    kv_flops_per_key: float = 0.0   # compression: FLOPs per key read (dequantising)
    # multi-head latent attention (0: none): the cached latent + rotary key per token, the
    # latent's rank, the query/key width per head (nope + rope), its non-rotary part, the value
    # width per head, the query's low rank
    mla_latent: int = 0
    mla_kv_lora: int = 0
    mla_qk: int = 0
    mla_nope: int = 0
    mla_v: int = 0
    q_lora: int = 0

    @classmethod
    def of(cls, model: ModelSpec, tp: int = 1) -> "LayerDims":
        heads = model.num_heads // tp
        kv_heads = -(-model.num_kv_heads // tp)   # ceil: replicated when kv_heads < tp
        mla = {}
        if model.is_mla:
            qk = model.qk_nope_head_dim + model.qk_rope_head_dim
            mla = dict(mla_latent=model.kv_lora_rank + model.qk_rope_head_dim,
                       mla_kv_lora=model.kv_lora_rank, mla_qk=qk,
                       mla_nope=model.qk_nope_head_dim, mla_v=model.v_head_dim,
                       q_lora=model.q_lora_rank)
        return cls(
            hidden=model.hidden_size, q_width=heads * model.head_dim,
            kv_width=kv_heads * model.head_dim, heads=heads, head_dim=model.head_dim,
            mlp_width=model.intermediate_size // tp,
            expert_width=model.expert_intermediate_size // tp,
            shared_expert_width=model.num_shared_experts * model.shared_expert_intermediate_size // tp,
            vocab=-(-model.vocab_size // tp), dtype_bytes=model.dtype_bytes, gated=model.mlp_gated,
            weight_bytes=model.linear_weight_bytes if model.weight_bits else 0.0,
            kv_bytes=model.kv_element_bytes if model.kv_compression != 1.0
            else model.kv_dtype_bytes,
            kv_flops_per_key=model.kv_compression_flops_per_value * (
                mla.get("mla_latent") or 2 * kv_heads * model.head_dim), **mla)

    @property
    def kv_element_bytes(self) -> float:
        return self.kv_bytes or self.dtype_bytes

    def linear_bytes(self, m, k, n):
        """Bytes of ``[m, k] x [k, n]`` with the weight at its precision."""
        return weighted_gemm_bytes(m, k, n, self.dtype_bytes, self.weight_bytes)


def weighted_gemm_bytes(m, k, n, dtype_bytes: int, weight_bytes: float = 0.0):
    """``gemm_bytes`` with the ``[k, n]`` weight at ``weight_bytes`` per element (0: the
    activations' size, the same numbers as gemm_bytes)."""
    if not weight_bytes or weight_bytes == dtype_bytes:
        return gemm_bytes(m, k, n, dtype_bytes)
    return (m * k + m * n) * float(dtype_bytes) + k * n * weight_bytes


def gemm_flops(m, k, n):
    return 2.0 * m * k * n


def gemm_bytes(m, k, n, dtype_bytes: int):
    return (m * k + k * n + m * n) * float(dtype_bytes)


def norm_cost(tokens, hidden: int, dtype_bytes: int) -> tuple:
    """RMSNorm: square, mean, rsqrt, scale (~4 FLOPs/element); read x and the weight, write y."""
    return 4.0 * tokens * hidden, (2.0 * tokens * hidden + hidden) * dtype_bytes


def residual_add_cost(tokens, hidden: int, dtype_bytes: int) -> tuple:
    return 1.0 * tokens * hidden, 3.0 * tokens * hidden * dtype_bytes


def rotary_cost(tokens, dims: LayerDims) -> tuple:
    """RoPE on Q and K: x*cos + rotate(x)*sin (3 FLOPs/element), read and write in place."""
    elems = tokens * (dims.q_width + dims.kv_width)
    return 3.0 * elems, 2.0 * elems * dims.dtype_bytes


def activation_cost(tokens, width: int, gated: bool, dtype_bytes: int) -> tuple:
    """SiLU-and-mul (gated: read 2 halves, write 1; ~5 FLOPs/output) or a plain activation."""
    if gated:
        return 5.0 * tokens * width, 3.0 * tokens * width * dtype_bytes
    return 4.0 * tokens * width, 2.0 * tokens * width * dtype_bytes


def attn_prefill_cost(query_tokens, attn_pairs, kv_tokens, dims: LayerDims) -> tuple:
    """Causal attention of prefill chunks.

    ``attn_pairs`` = sum over requests of (query, key) pairs = q*c + q*(q+1)/2 for a chunk of q new
    tokens after c cached ones; each pair costs 2 FLOPs per head_dim element for QK^T and 2 for PV.
    ``kv_tokens`` = sum of (c + q): keys/values read. New K/V (q per request) are written to cache.

    MLA (vLLM's prefill path, weights not absorbed): the cached tokens' latents are projected up
    to per-head keys and values first (the new tokens' by the kv_b_proj op), then attention runs
    per head on (nope + rope) query/key and v value widths; the latents are read and written.
    """
    if dims.mla_latent:
        h, qk, v = dims.heads, dims.mla_qk, dims.mla_v
        cached = kv_tokens - query_tokens
        flops = 2.0 * h * (qk + v) * attn_pairs \
            + 2.0 * cached * dims.mla_kv_lora * h * (dims.mla_nope + v)
        return flops, query_tokens * h * (qk + v) * float(dims.dtype_bytes) \
            + (kv_tokens + query_tokens) * dims.mla_latent * float(dims.kv_element_bytes)
    flops = 4.0 * dims.heads * dims.head_dim * attn_pairs
    if dims.kv_bytes and dims.kv_bytes != dims.dtype_bytes:
        return flops, 2.0 * query_tokens * dims.q_width * dims.dtype_bytes \
            + (kv_tokens + query_tokens) * 2.0 * dims.kv_width * dims.kv_bytes
    elems = 2.0 * query_tokens * dims.q_width + kv_tokens * 2.0 * dims.kv_width \
        + query_tokens * 2.0 * dims.kv_width
    return flops, elems * dims.dtype_bytes


def attn_decode_cost(num_seqs, context_tokens, dims: LayerDims) -> tuple:
    """Decode attention: each sequence's one query reads its whole KV (``context_tokens`` summed
    over sequences, the new token included); Op/B is about the GQA group size."""
    a, b_seq, b_key = decode_attention_coeffs(dims)
    return a * context_tokens, b_seq * num_seqs + b_key * context_tokens


def decode_attention_coeffs(dims: LayerDims) -> tuple[float, float, float]:
    """Decode attention is linear in the keys read: FLOPs = a x keys, bytes = b_seq x sequences
    + b_key x keys. Standard attention: per key 4 FLOPs per head_dim element (QK^T and PV), its K
    and V read; per sequence, the query read, the output and the new K/V written.

    MLA with absorbed weights (vLLM's decode path): each head's query is projected into the
    latent space, so every head attends over the shared latent + rotary key (2 x (rank + rope)
    FLOPs per key for the scores, 2 x rank for the values) and each key reads only the latent:
    one cached vector for all heads, hence the high Op/B."""
    dt, kvb = float(dims.dtype_bytes), float(dims.kv_element_bytes)
    if dims.mla_latent:
        h, latent, rank = dims.heads, dims.mla_latent, dims.mla_kv_lora
        return (2.0 * h * (latent + rank) + dims.kv_flops_per_key,
                h * (latent + rank) * dt + latent * kvb, latent * kvb)
    if dims.kv_flops_per_key:
        return (4.0 * dims.heads * dims.head_dim + dims.kv_flops_per_key,
                2.0 * dims.q_width * dt + 2.0 * dims.kv_width * kvb, 2.0 * dims.kv_width * kvb)
    if kvb == dt:
        return (4.0 * dims.heads * dims.head_dim, (2.0 * dims.q_width + 2.0 * dims.kv_width) * dt,
                2.0 * dims.kv_width * dt)
    return (4.0 * dims.heads * dims.head_dim, 2.0 * dims.q_width * dt + 2.0 * dims.kv_width * kvb,
            2.0 * dims.kv_width * kvb)


def mlp_gemm_shapes(hidden: int, width: int, gated: bool) -> tuple:
    """``((k, n) of the up projection, (k, n) of the down projection)`` of an MLP (dense, or one
    expert) of intermediate ``width``: gate and up fused into one GEMM when ``gated``."""
    return (hidden, 2 * width if gated else width), (width, hidden)


def expert_gemm_costs(tokens, hidden: int, width: int, gated: bool, dtype_bytes: int,
                      weight_bytes: float = 0.0) -> tuple:
    """(up FLOPs, up bytes, down FLOPs, down bytes) of routed experts, ``tokens`` routed to each
    (an array, one entry per expert); every expert reads its own weights (at ``weight_bytes``
    each, if set)."""
    (up_k, up_n), (down_k, down_n) = mlp_gemm_shapes(hidden, width, gated)
    return (gemm_flops(tokens, up_k, up_n),
            weighted_gemm_bytes(tokens, up_k, up_n, dtype_bytes, weight_bytes),
            gemm_flops(tokens, down_k, down_n),
            weighted_gemm_bytes(tokens, down_k, down_n, dtype_bytes, weight_bytes))


def moe_experts_op(tokens, hidden: int, width: int, gated: bool, dtype_bytes: int,
                   count: int, weight_bytes: float = 0.0) -> Op:
    """Routed experts as one fused-MoE op (per device, per layer; ``count`` layers): their
    projections and activations summed over the experts, ``tokens`` routed to each (an array
    of the experts that got tokens)."""
    f_up, b_up, f_down, b_down = expert_gemm_costs(tokens, hidden, width, gated, dtype_bytes,
                                                   weight_bytes)
    act_flops, act_bytes = activation_cost(tokens, width, gated, dtype_bytes)
    return Op("moe_experts", MOE_EXPERT, float((f_up + f_down + act_flops).sum()),
              float((b_up + b_down + act_bytes).sum()), count=count)


def expert_token_counts(num_tokens: int, num_experts: int, top_k: int) -> np.ndarray:
    """Tokens routed to each expert under balanced routing: num_tokens*top_k spread evenly.

    Deterministic (the expectation of uniform routing, rounded), so iteration costs can be cached.
    """
    assignments = num_tokens * top_k
    base, extra = divmod(assignments, num_experts)
    counts = np.full(num_experts, base, dtype=np.int64)
    counts[:extra] += 1
    return counts


def ring_allreduce_time_s(message_bytes, devices: int, link_bandwidth: float,
                          latency_s: float):
    """Ring all-reduce: 2(p-1)/p of the message crosses each link, in 2(p-1) latency-bound steps."""
    if devices <= 1:
        return 0.0 * message_bytes
    steps = 2 * (devices - 1)
    return steps / devices * message_bytes / link_bandwidth + steps * latency_s
