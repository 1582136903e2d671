"""How many KV blocks fit on a replica, and what a request needs."""

from __future__ import annotations

import math

from sim.errors import CapacityError
from sim.hardware.device import DeviceSpec
from sim.models.spec import ModelSpec

GIB = 2**30


def kv_bytes_per_token_per_device(model: ModelSpec, tp: int, pp: int = 1) -> int:
    """KV bytes one token occupies on each device: 2 (K and V) x layers x kv_heads x head_dim x
    KV element bytes / tp. KV heads are split across the TP group, and replicated when fewer
    than tp; with ``pp`` pipeline stages a device holds its stage's layers (the largest
    stage's count). MLA caches one latent + rotary key per token and layer for all heads: every
    device of the TP group holds it whole."""
    layers = -(-model.full_attention_layers // pp)
    if model.is_mla:
        return math.ceil(layers * model.kv_values_per_token_layer * model.kv_element_bytes)
    kv_heads_per_device = -(-model.num_kv_heads // tp)
    return math.ceil(2 * layers * kv_heads_per_device * model.head_dim * model.kv_element_bytes)


def activation_reserve_bytes(model: ModelSpec, tp: int, max_num_batched_tokens: int,
                             max_num_seqs: int) -> int:
    """Peak non-KV, non-weight memory vLLM's profiling run would find, estimated.

    The largest live activations of one forward pass over ``max_num_batched_tokens`` tokens (hidden
    state, residual, QKV, the MLP's up projection and activation output) plus fp32 logits for
    ``max_num_seqs`` rows, plus 1 GiB for the CUDA context, cuBLAS workspaces and CUDA graphs.
    """
    h, d = model.hidden_size, model.dtype_bytes
    width = max(model.intermediate_size, model.expert_intermediate_size * max(model.top_k, 1))
    per_token = (2 * h + (model.q_size + 2 * model.num_kv_heads * model.head_dim) // tp
                 + 3 * width // tp) * d
    logits = max_num_seqs * (model.vocab_size // tp) * 4
    return max_num_batched_tokens * per_token + logits + GIB


def weight_bytes_per_device(model: ModelSpec, tp: int, expert_shards: int = 1,
                            pp: int = 1) -> float:
    """Weights one device holds: a TP shard of everything (of its stage's share of the layers,
    with ``pp`` pipeline stages); with expert parallelism over ``expert_shards`` data-parallel
    ranks, only 1/expert_shards of the routed experts."""
    experts = model.num_moe_layers * model.num_experts * model.expert_params \
        * model.linear_weight_bytes
    share = -(-model.num_layers // pp) / model.num_layers
    return (model.weight_bytes - experts * (1 - 1 / expert_shards)) / tp * share


def bounded_kv_bytes_per_device(model: ModelSpec, tp: int, pp: int = 1) -> float:
    """One sequence's sliding-window and linear-attention cache on one device (split as the
    heads are, over its stage's share of the layers)."""
    if not model.has_bounded_layers:
        return 0.0
    kv_share = -(-model.num_kv_heads // tp) / model.num_kv_heads
    sliding = model.sliding_window_layers * model.sliding_window \
        * model.kv_values_per_token_layer * model.kv_element_bytes
    linear = model.linear_attention_layers * model.linear_state_bytes_per_layer
    return (sliding * kv_share + linear / tp) / pp


def kv_cache_blocks(model: ModelSpec, device: DeviceSpec, tp: int, block_size: int,
                    gpu_memory_utilization: float, reserve_bytes: float,
                    expert_shards: int = 1, pp: int = 1, max_num_seqs: int = 0) -> int:
    """Blocks per replica: (capacity x utilization - weights - activation reserve) / block bytes,
    per device (each device holds its stage's layers of every token's KV). A model with
    sliding-window or linear-attention layers first sets aside their bounded cache for
    ``max_num_seqs`` sequences (as vLLM's hybrid manager must find room for them); the blocks
    count the full-attention layers' cache, which grows with every token.

    Raises CapacityError, with the numbers and layouts that would fit, if nothing is left.
    """
    usable = device.hbm_bytes * gpu_memory_utilization
    weights = weight_bytes_per_device(model, tp, expert_shards, pp)
    free = usable - weights - reserve_bytes \
        - max_num_seqs * bounded_kv_bytes_per_device(model, tp, pp)
    block_bytes = block_size * kv_bytes_per_token_per_device(model, tp, pp)
    if free < block_bytes:
        # the smallest degrees that validation accepts (a power of two dividing the heads; a
        # stage count up to the layers) and that leave a tenth of the memory for the KV cache
        def fits(t: int, p: int) -> bool:
            return usable - weight_bytes_per_device(model, t, expert_shards, p) \
                - reserve_bytes >= 0.1 * usable
        tps = [t for t in (2 ** i for i in range(1, 11)) if t > tp and model.num_heads % t == 0
               and fits(t, pp)]
        pps = [p for p in (2, 4, 8, 16) if p > pp and p <= model.num_layers and fits(tp, p)]
        options = ([f"cluster.tensor_parallel: {tps[0]}"] if tps else []) + \
            ([f"cluster.pipeline_parallel: {pps[0]}"] if pps else [])
        hint = f"try {' or '.join(options)} or a larger device" if options else \
            "no tensor- or pipeline-parallel degree fits it: try a larger device"
        layout = f"tensor_parallel={tp}" + (f", pipeline_parallel={pp}" if pp > 1 else "")
        raise CapacityError(
            f"{model.name} does not fit on {device.name} with {layout}: weights "
            f"{weights / 1e9:.1f} GB + activation reserve {reserve_bytes / 1e9:.1f} GB > usable "
            f"{usable / 1e9:.1f} GB ({gpu_memory_utilization:g} x {device.hbm_bytes / 1e9:.1f} GB); "
            f"{hint}")
    return int(free // block_bytes)
