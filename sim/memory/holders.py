"""What the KV cache reads and writes on the things that hold its blocks.

The cache works on any object with these fields (the scheduler's request views are one), so
memory depends on no scheduling type: scheduling builds on memory, not the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sim.memory.kv_cache import CachedBlock


class KVHolder(Protocol):
    """Holds ``kv_blocks`` blocks of the pool, of which ``kv_cached_blocks`` (a prefix) carry a
    reusable hash; the rest are anonymous."""

    kv_blocks: int
    kv_cached_blocks: list[CachedBlock]


class KVRequest(KVHolder, Protocol):
    """A request's token progress and prompt identity, as the cache needs them."""

    id: int
    prompt_tokens: int
    num_computed_tokens: int
    preemptions: int
    prefix_hashes: Sequence[int] | None     # ids of prefix_block_tokens-token prompt chunks
    prefix_block_tokens: int
    kv_block_hashes: list | None            # the cache's memo of the prompt's block hashes
    swapped_blocks: int                     # blocks held in host swap space

    @property
    def num_tokens(self) -> int:
        """Tokens known so far: the prompt plus what has been generated."""
