"""Block arithmetic: how many KV blocks tokens fill, now and as decodes grow.

Every count of blocks for a number of tokens in the simulator comes from
:func:`blocks_for_tokens`, so the rounding lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

Tokens = TypeVar("Tokens", int, np.ndarray)


def blocks_for_tokens(num_tokens: Tokens, block_size: int) -> Tokens:
    """Blocks that hold ``num_tokens`` tokens: the ceiling of ``num_tokens / block_size``
    (elementwise for an integer array)."""
    return -(-num_tokens // block_size)


def peak_blocks(prompt_tokens: int, output_tokens: int, block_size: int) -> int:
    """Blocks a request holds at its peak: every token of its prompt and output but the last,
    which is emitted and never fed back."""
    return blocks_for_tokens(prompt_tokens + output_tokens - 1, block_size)


class DecodeGrowth:
    """Blocks that a fixed set of decodes needs to advance ``k`` more tokens each, beyond the
    blocks they hold now: built once per stable decode run and evaluated for many ``k`` (a binary
    search over the run's length), so the per-request work is one numpy expression."""

    __slots__ = ("_block_size", "_computed", "_held")

    def __init__(self, block_size: int, computed_tokens: Sequence[int],
                 held_blocks: Sequence[int]):
        self._block_size = block_size
        self._computed = np.fromiter(computed_tokens, np.int64, len(computed_tokens))
        self._held = np.fromiter(held_blocks, np.int64, len(held_blocks))

    def blocks(self, k: int) -> int:
        need = blocks_for_tokens(self._computed + k, self._block_size) - self._held
        return int(need[need > 0].sum())
