"""KV memory: the paged block pool with prefix caching, block arithmetic, host swap space, the
host KV tier, reservations, and capacity arithmetic. Nothing outside this package changes a block
count."""

from sim.memory.blocks import DecodeGrowth, blocks_for_tokens, peak_blocks
from sim.memory.capacity import (activation_reserve_bytes, kv_bytes_per_token_per_device,
                                 kv_cache_blocks, weight_bytes_per_device)
from sim.memory.holders import KVHolder, KVRequest
from sim.memory.host_tier import HostKVTier
from sim.memory.kv_cache import CachedBlock, KVCache, PrefixPin
from sim.memory.reservations import BlockReservations
from sim.memory.swap import SwapSpace

__all__ = ["KVCache", "CachedBlock", "PrefixPin", "KVHolder", "KVRequest", "SwapSpace",
           "HostKVTier", "BlockReservations", "DecodeGrowth", "blocks_for_tokens", "peak_blocks",
           "kv_cache_blocks", "kv_bytes_per_token_per_device", "activation_reserve_bytes",
           "weight_bytes_per_device"]
