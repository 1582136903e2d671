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
    dtype_bytes: int
    gated: bool

    @classmethod
    def of(cls, model: ModelSpec, tp: int = 1) -> "LayerDims":
        heads = model.num_heads // tp
        kv_heads = -(-model.num_kv_heads // tp)   # ceil: replicated when kv_heads < tp
        return cls(
            hidden=model.hidden_size, q_width=heads * model.head_dim,
            kv_width=kv_heads * model.head_dim, heads=heads, head_dim=model.head_dim,
            mlp_width=model.intermediate_size // tp,
            expert_width=model.expert_intermediate_size // tp,
            shared_expert_width=model.num_shared_experts * model.shared_expert_intermediate_size // tp,
            vocab=-(-model.vocab_size // tp), dtype_bytes=model.dtype_bytes, gated=model.mlp_gated)


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
    """
    flops = 4.0 * dims.heads * dims.head_dim * attn_pairs
    elems = 2.0 * query_tokens * dims.q_width + kv_tokens * 2.0 * dims.kv_width \
        + query_tokens * 2.0 * dims.kv_width
    return flops, elems * dims.dtype_bytes


def attn_decode_cost(num_seqs, context_tokens, dims: LayerDims) -> tuple:
    """Decode attention: each sequence's one query reads its whole KV (``context_tokens`` summed
    over sequences, the new token included); Op/B is about the GQA group size."""
    flops = 4.0 * dims.heads * dims.head_dim * context_tokens
    elems = 2.0 * num_seqs * dims.q_width + context_tokens * 2.0 * dims.kv_width \
        + num_seqs * 2.0 * dims.kv_width
    return flops, elems * dims.dtype_bytes


def mlp_gemm_shapes(hidden: int, width: int, gated: bool) -> tuple:
    """``((k, n) of the up projection, (k, n) of the down projection)`` of an MLP (dense, or one
    expert) of intermediate ``width``: gate and up fused into one GEMM when ``gated``."""
    return (hidden, 2 * width if gated else width), (width, hidden)


def expert_gemm_costs(tokens, hidden: int, width: int, gated: bool, dtype_bytes: int) -> tuple:
    """(up FLOPs, up bytes, down FLOPs, down bytes) of routed experts, ``tokens`` routed to each
    (an array, one entry per expert); every expert reads its own weights."""
    (up_k, up_n), (down_k, down_n) = mlp_gemm_shapes(hidden, width, gated)
    return (gemm_flops(tokens, up_k, up_n), gemm_bytes(tokens, up_k, up_n, dtype_bytes),
            gemm_flops(tokens, down_k, down_n), gemm_bytes(tokens, down_k, down_n, dtype_bytes))


def moe_experts_op(tokens, hidden: int, width: int, gated: bool, dtype_bytes: int,
                   count: int) -> Op:
    """Routed experts as one fused-MoE op (per device, per layer; ``count`` layers): their
    projections and activations summed over the experts, ``tokens`` routed to each (an array
    of the experts that got tokens)."""
    f_up, b_up, f_down, b_down = expert_gemm_costs(tokens, hidden, width, gated, dtype_bytes)
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
