"""sim.memory.blocks: the blocks-for-tokens ceiling, a request's peak, and decode growth, each
against hand values."""

from __future__ import annotations

import numpy as np
import pytest

from sim.memory.blocks import DecodeGrowth, blocks_for_tokens, peak_blocks


@pytest.mark.parametrize("tokens, block_size, blocks", [
    (0, 16, 0), (1, 16, 1), (15, 16, 1), (16, 16, 1), (17, 16, 2), (32, 16, 2), (33, 16, 3),
    (1, 1, 1), (7, 1, 7), (5, 4, 2), (8, 4, 2), (9, 4, 3)])
def test_blocks_for_tokens_by_hand(tokens, block_size, blocks):
    assert blocks_for_tokens(tokens, block_size) == blocks


def test_blocks_for_tokens_elementwise():
    got = blocks_for_tokens(np.array([0, 1, 4, 5, 8, 9]), 4)
    assert got.tolist() == [0, 1, 1, 2, 2, 3]


def test_peak_blocks_leaves_out_the_last_token():
    # 10 prompt + 7 output tokens: the 17th is emitted, never fed back, so 16 tokens = 4 blocks
    assert peak_blocks(10, 7, 4) == 4
    assert peak_blocks(10, 8, 4) == 5
    assert peak_blocks(1, 1, 16) == 1


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 9, 100])
def test_decode_growth_sums_what_each_decode_needs(k):
    computed, held = [3, 4, 5, 8, 0], [1, 1, 2, 2, 0]
    expected = sum(max(0, -(-(c + k) // 4) - h) for c, h in zip(computed, held))
    assert DecodeGrowth(4, computed, held).blocks(k) == expected


def test_decode_growth_by_hand():
    # 4 tokens in 1 block: the 5th token needs a 2nd; 5 tokens in 2 blocks: room until 8
    growth = DecodeGrowth(4, [4, 5], [1, 2])
    assert [growth.blocks(k) for k in (1, 3, 4, 5)] == [1, 1, 2, 3]
    assert DecodeGrowth(4, [], []).blocks(10) == 0
