"""sim.memory.capacity: KV bytes per token, blocks that fit, and the error when nothing fits."""

from __future__ import annotations

import dataclasses

import pytest

from sim.errors import CapacityError
from sim.hardware import load_device
from sim.memory import (activation_reserve_bytes, kv_bytes_per_token_per_device, kv_cache_blocks,
                        weight_bytes_per_device)
from sim.models import CATALOG

LLAMA8 = CATALOG["llama-3.1-8b"]
LLAMA70 = CATALOG["llama-3.1-70b"]
GIB = 2**30


def test_kv_bytes_per_token_llama_8b():
    # K and V x 32 layers x 8 KV heads x 128 x 2 bytes
    assert kv_bytes_per_token_per_device(LLAMA8, 1) == 2 * 32 * 8 * 128 * 2 == 131072
    assert kv_bytes_per_token_per_device(LLAMA8, 2) == 131072 // 2
    assert kv_bytes_per_token_per_device(LLAMA8, 8) == 2 * 32 * 1 * 128 * 2


def test_kv_heads_replicated_when_fewer_than_tp():
    # 8 KV heads over 16 devices: each device keeps one whole head, so no saving past TP=8
    assert kv_bytes_per_token_per_device(LLAMA8, 16) == 2 * 32 * 1 * 128 * 2 == 16384
    assert kv_bytes_per_token_per_device(LLAMA8, 16) == kv_bytes_per_token_per_device(LLAMA8, 8)
    # a model with 1 KV head (MQA) never shrinks
    mqa = dataclasses.replace(LLAMA8, num_kv_heads=1)
    assert kv_bytes_per_token_per_device(mqa, 1) == kv_bytes_per_token_per_device(mqa, 4) == \
        2 * 32 * 128 * 2


def test_weight_bytes_per_device():
    # 32 x (4096*6144 + 4096*4096 + 2*4096 + 3*4096*14336) + 2*128256*4096 + 4096 params, bf16
    params = 32 * (4096 * 6144 + 4096 * 4096 + 2 * 4096 + 3 * 4096 * 14336) + 2 * 128256 * 4096 + 4096
    assert params == 8_030_261_248
    assert weight_bytes_per_device(LLAMA8, 1) == 2 * params
    assert weight_bytes_per_device(LLAMA8, 2) == params


def test_kv_cache_blocks_llama_8b_on_h100():
    h100 = load_device("h100-sxm")
    weights = 2 * 8_030_261_248
    usable = 80 * GIB * 0.9
    blocks = kv_cache_blocks(LLAMA8, h100, tp=1, block_size=16, gpu_memory_utilization=0.9,
                             reserve_bytes=GIB)
    assert blocks == int((usable - weights - GIB) // (16 * 131072))
    # (77309411328 - 16060522496 - 1073741824) / 2097152 = 28693.86
    assert blocks == 28693


def test_kv_cache_blocks_tp2_holds_more_than_twice_the_tokens():
    h100 = load_device("h100-sxm")
    one = kv_cache_blocks(LLAMA8, h100, 1, 16, 0.9, GIB)
    two = kv_cache_blocks(LLAMA8, h100, 2, 16, 0.9, GIB)
    # per device: half the weights and half the KV per token
    assert two == int((80 * GIB * 0.9 - 8_030_261_248 - GIB) // (16 * 65536))
    assert two > 2 * one


def test_kv_cache_blocks_boundary():
    h100 = load_device("h100-sxm")
    block = 16 * 131072
    weights = 16_060_522_496
    # utilization 1.0 keeps the arithmetic exact: leave exactly one block
    reserve = 80 * GIB - weights - block
    assert kv_cache_blocks(LLAMA8, h100, 1, 16, 1.0, reserve) == 1
    with pytest.raises(CapacityError):
        kv_cache_blocks(LLAMA8, h100, 1, 16, 1.0, reserve + 1)


def test_activation_reserve_llama_8b():
    # per token (2*4096 + 4096 + 2*8*128 + 3*14336) x 2 bytes, 8192 tokens; fp32 logits of 256
    # rows x 128256; plus 1 GiB
    per_token = (2 * 4096 + 4096 + 2 * 1024 + 3 * 14336) * 2
    assert per_token == 114688
    expected = 8192 * per_token + 256 * 128256 * 4 + GIB
    assert activation_reserve_bytes(LLAMA8, 1, 8192, 256) == expected == 2_144_600_064
    assert activation_reserve_bytes(LLAMA8, 2, 8192, 256) < expected


def test_capacity_error_70b_on_one_l4():
    l4 = load_device("l4")
    with pytest.raises(CapacityError) as info:
        kv_cache_blocks(LLAMA70, l4, tp=1, block_size=16, gpu_memory_utilization=0.9,
                        reserve_bytes=GIB)
    msg = str(info.value)
    # weights: 70,553,706,496 params x 2 bytes = 141.1 GB; usable 0.9 x 24 GiB = 23.2 GB
    assert "llama-3.1-70b" in msg
    assert "141.1 GB" in msg
    assert "23.2 GB" in msg
    assert "l4" in msg
    assert "tensor_parallel" in msg
    # weights/tp must leave 10% of usable after the reserve: 141.1/tp < 0.9*23.19 - 1.07 = 19.8
    # -> tp = 8 (17.6 GB)
    assert "tensor_parallel: 8" in msg


def test_70b_fits_on_h100_with_tp2_not_tp1():
    h100 = load_device("h100-sxm")
    with pytest.raises(CapacityError):
        kv_cache_blocks(LLAMA70, h100, 1, 16, 0.9, GIB)
    # per device: 0.9 x 80 GiB - 141.1/2 GB - 1 GiB, over 16 x (2*80*4*128*2 bytes)
    expected = (80 * GIB * 0.9 - 141_107_412_992 / 2 - GIB) // (16 * 2 * 80 * 4 * 128 * 2)
    assert kv_cache_blocks(LLAMA70, h100, 2, 16, 0.9, GIB) == int(expected)
