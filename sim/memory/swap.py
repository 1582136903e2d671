"""Host swap space: where a preempted request's KV waits, in blocks (vLLM's ``swap_space``)."""

from __future__ import annotations

from sim.memory.holders import KVRequest
from sim.memory.kv_cache import KVCache


class SwapSpace:
    """Host memory for swapped-out KV blocks: a request's blocks leave the device pool whole
    and come back whole (the copies' time is the replica's concern)."""

    __slots__ = ("num_blocks", "num_used")

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.num_used = 0

    def swap_out(self, kv: KVCache, request: KVRequest) -> bool:
        """Move ``request``'s blocks from ``kv`` to host, recorded in its ``swapped_blocks``;
        False, changing nothing, if they do not fit."""
        blocks = request.kv_blocks
        if self.num_used + blocks > self.num_blocks:
            return False
        kv.free(request)
        request.swapped_blocks = blocks
        self.num_used += blocks
        return True

    def swap_in(self, request: KVRequest) -> int:
        """Release ``request``'s host blocks (its device blocks are allocated already); returns
        how many came back."""
        blocks = request.swapped_blocks
        self.num_used -= blocks
        request.swapped_blocks = 0
        return blocks
