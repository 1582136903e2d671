"""KV memory: the paged block pool with prefix caching, and capacity arithmetic."""

from sim.memory.capacity import (activation_reserve_bytes, kv_bytes_per_token_per_device,
                                 kv_cache_blocks, weight_bytes_per_device)
from sim.memory.kv_cache import CachedBlock, KVCache

__all__ = ["KVCache", "CachedBlock", "kv_cache_blocks", "kv_bytes_per_token_per_device",
           "activation_reserve_bytes", "weight_bytes_per_device"]
