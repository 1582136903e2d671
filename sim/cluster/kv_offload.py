"""A replica's host-memory KV tier (``scheduler.kv_offload``), sized and timed for its pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.cost.model import BatchShape, CostModel
from sim.memory.host_tier import HostKVTier
from sim.scheduling.base import KvOffloadConfig

if TYPE_CHECKING:
    from sim.cluster.cluster import Deployment


def recompute_s_per_token(cost: CostModel, max_batched_tokens: int) -> float:
    """Prefill seconds per token, from one full ``max_batched_tokens`` chunk of a fresh prompt:
    what a host-tier load is weighed against (the cost model memoises the chunk)."""
    n = max_batched_tokens
    return cost.iteration_time(BatchShape.from_requests([n], [0], 1))[0] / n


def _active(offload: KvOffloadConfig | None, dep: Deployment) -> bool:
    """Whether the tier holds one block or more (off: null, or too small)."""
    return offload is not None and offload.capacity_blocks(dep.block_bytes) > 0


def host_tier(offload: KvOffloadConfig | None, dep: Deployment, cost: CostModel,
              max_batched_tokens: int) -> HostKVTier | None:
    """A fresh tier for one replica of the pool deployed as ``dep`` (None: off)."""
    if not _active(offload, dep):
        return None
    return HostKVTier(offload.capacity_blocks(dep.block_bytes), offload.latency_s,
                      offload.load_s_per_block(dep.block_bytes),
                      recompute_s_per_token(cost, max_batched_tokens))


def load_timing_args(offload: KvOffloadConfig | None, dep: Deployment) -> dict[str, float]:
    """The Replica's arguments timing an iteration's loads from the tier (none without one)."""
    if not _active(offload, dep):
        return {}
    return {"kv_load_latency_s": offload.latency_s,
            "kv_load_seconds_per_block": offload.load_s_per_block(dep.block_bytes)}
