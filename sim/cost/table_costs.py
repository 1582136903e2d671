"""FLOPs and bytes of measured kernel-table rows, by the cost model's own formulas.

A row of a kernel table (:mod:`sim.hardware.calibration.tables`) is costed with the same
functions as the operator it measures (:mod:`sim.cost.ops`), so a fitted efficiency means the
same thing in a table and in a simulation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.cost.ops import (ATTN_DECODE, LayerDims, activation_cost, attn_decode_cost,
                          attn_prefill_cost, gemm_bytes, gemm_flops, norm_cost, residual_add_cost,
                          rotary_cost)
from sim.hardware.calibration.tables import SCHEMAS

if TYPE_CHECKING:
    import pandas as pd


def _dims(dtype_bytes: int, q_width=0, kv_width=0, heads=0, head_dim=0) -> LayerDims:
    """A LayerDims carrying only what one op's formula reads (fields may be arrays)."""
    return LayerDims(hidden=0, q_width=q_width, kv_width=kv_width, heads=heads,
                     head_dim=head_dim, mlp_width=0, expert_width=0, shared_expert_width=0,
                     vocab=0, dtype_bytes=dtype_bytes, gated=True)


def elementwise_cost(op: str, tokens, width, dtype_bytes: int) -> tuple:
    """(flops, bytes) of an elementwise op of ``tokens x width`` (scalars or arrays)."""
    if op == "rmsnorm":
        return norm_cost(tokens, width, dtype_bytes)
    if op == "add":
        return residual_add_cost(tokens, width, dtype_bytes)
    if op in ("silu_mul", "gelu"):
        return activation_cost(tokens, width, op == "silu_mul", dtype_bytes)
    if op == "rotary":     # width = query + key width, as rotary_cost's q_width + kv_width
        return rotary_cost(tokens, _dims(dtype_bytes, q_width=width))
    # embedding (gather rows, write them) and copy: no arithmetic, read + write
    return 0.0 * tokens, 2.0 * tokens * width * dtype_bytes


def attention_cost(op: str, batch, query_tokens, context_tokens, heads, kv_heads, head_dim,
                   dtype_bytes: int) -> tuple:
    dims = _dims(dtype_bytes, q_width=heads * head_dim, kv_width=kv_heads * head_dim,
                 heads=heads, head_dim=head_dim)
    if op == ATTN_DECODE:
        return attn_decode_cost(batch, batch * context_tokens, dims)
    q, c = query_tokens, context_tokens
    pairs = batch * (q * (c - q) + q * (q + 1) // 2)
    return attn_prefill_cost(batch * q, pairs, batch * c, dims)


def row_costs(kind: str, frame: pd.DataFrame, dtype_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(flops, bytes) arrays of every row of a table (allreduce: 0 FLOPs, message bytes)."""
    col = {c: frame[c].to_numpy() for c in frame.columns}
    n = len(frame)
    flops, nbytes = np.zeros(n), np.zeros(n)
    if kind == "gemm":
        m, k, nn = (col[c].astype(float) for c in ("m", "k", "n"))
        return gemm_flops(m, k, nn), gemm_bytes(m, k, nn, dtype_bytes)
    if kind == "allreduce":
        return flops, col["bytes"].astype(float)
    for op in np.unique(col["op"]) if n else ():
        sel = col["op"] == op
        if kind == "elementwise":
            f, b = elementwise_cost(op, col["tokens"][sel].astype(float),
                                    col["width"][sel].astype(float), dtype_bytes)
        else:
            f, b = attention_cost(op, *(col[c][sel].astype(float) for c in SCHEMAS[kind][1:]),
                                  dtype_bytes=dtype_bytes)
        flops[sel], nbytes[sel] = f, b
    return flops, nbytes
