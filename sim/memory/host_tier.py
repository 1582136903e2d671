"""Host-memory KV tier: prefix blocks the device pool evicts, kept in CPU memory (LMCache's CPU
backend, vLLM's KV offloading) so a later prompt with that prefix loads them instead of
recomputing them.

Only block hashes are kept: the tier is an LRU set of at most ``capacity_blocks`` of them. A hash
may be in the tier and in the device pool at once (a loaded block's host copy stays). The copies'
time is the replica's concern; the tier knows what a load costs only to decide, as LMCache does,
whether loading beats recomputing.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence


class HostKVTier:
    """LRU set of evicted prefix-block hashes in host memory, with the cost of loading them."""

    __slots__ = ("capacity_blocks", "load_latency_s", "load_s_per_block",
                 "recompute_s_per_token", "stores", "evictions", "_lru")

    def __init__(self, capacity_blocks: int, load_latency_s: float = 0.0,
                 load_s_per_block: float = 0.0, recompute_s_per_token: float = math.inf):
        if capacity_blocks <= 0:
            raise ValueError("capacity_blocks must be > 0")
        self.capacity_blocks = capacity_blocks
        self.load_latency_s = load_latency_s
        self.load_s_per_block = load_s_per_block
        self.recompute_s_per_token = recompute_s_per_token
        self.stores = 0          # blocks moved in (a hash already here is refreshed, not stored)
        self.evictions = 0       # blocks dropped to make room
        self._lru: OrderedDict[object, None] = OrderedDict()    # least recently used first

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._lru

    def hashes(self) -> list:
        """The tier's hashes, least recently used first."""
        return list(self._lru)

    def store(self, block_hash: object) -> None:
        """A block the device pool evicts comes here (most recently used), evicting the least
        recently used hash if the tier is full."""
        lru = self._lru
        if block_hash in lru:
            lru.move_to_end(block_hash)     # the same content: nothing to copy
            return
        if len(lru) >= self.capacity_blocks:
            lru.popitem(last=False)
            self.evictions += 1
        lru[block_hash] = None
        self.stores += 1

    def touch(self, block_hashes: Sequence) -> None:
        """These hashes were just loaded: most recently used, in order."""
        lru = self._lru
        for h in block_hashes:
            lru.move_to_end(h)

    def run_length(self, block_hashes: Sequence, start: int, stop: int) -> int:
        """How many of ``block_hashes[start:stop]``, from ``start`` on, are here in a row."""
        lru = self._lru
        n = 0
        for i in range(start, stop):
            if block_hashes[i] not in lru:
                break
            n += 1
        return n

    def load_s(self, blocks: int) -> float:
        """Seconds to load ``blocks`` blocks (one transfer's latency plus the bytes)."""
        return self.load_latency_s + blocks * self.load_s_per_block if blocks else 0.0

    def worth_loading(self, blocks: int, block_size: int) -> bool:
        """Whether loading ``blocks`` blocks beats recomputing their tokens (LMCache takes the
        cheaper)."""
        return blocks > 0 and self.load_s(blocks) < blocks * block_size * self.recompute_s_per_token
