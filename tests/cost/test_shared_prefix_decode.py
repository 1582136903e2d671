"""Shared-prefix decode attention (BatchShape.decode_shared_kv_tokens), by hand.

A group's members decoding together read the group's prefix KV once (a cascade kernel): the
duplicate keys cost no bytes, every query still attends to them (FLOPs unchanged). Round-number
device: 1 PFLOP/s, 1 TB/s, efficiencies 1, no launch or iteration overhead.
"""

from __future__ import annotations

import pytest

from sim.cost.model import BatchShape, CostModel
from sim.hardware import DeviceSpec, Efficiency, load_device
from sim.models import CATALOG

LLAMA = CATALOG["llama-3.1-8b"]     # 32 layers, 32 query heads and 8 KV heads of 128, bf16


def round_device() -> DeviceSpec:
    return DeviceSpec(
        name="round", kind="gpu", vendor="test", bf16_flops=1e15, fp16_flops=1e15,
        fp8_flops=2e15, fp32_flops=1e14, hbm_bytes=100e9, hbm_bandwidth=1e12,
        interconnect_bandwidth=1e11, interconnect_latency_s=1e-6, pcie_bandwidth=5e10,
        tdp_w=1000.0, idle_w=100.0, energy_pj_per_flop=1.0, energy_pj_per_hbm_byte=10.0,
        price_usd_per_hour=1.0,
        efficiency=Efficiency(compute=1.0, memory=1.0, interconnect=1.0, kernel_launch_s=0.0,
                              iteration_overhead_s=0.0))


# four members of one group decode with 999 cached keys each (1000 read), 896 of them the
# group's prefix: the prefix is read once instead of four times, 3 * 896 keys saved
NEW, COMPUTED, SHARED = [1, 1, 1, 1], [999] * 4, 3 * 896


def test_decode_attention_bytes_drop_flops_stay():
    cm = CostModel(LLAMA, round_device())
    plain = {op.name: op for op in cm.attention_ops(BatchShape.from_requests(NEW, COMPUTED, 4))}
    shared = {op.name: op for op in cm.attention_ops(
        BatchShape.from_requests(NEW, COMPUTED, 4, SHARED))}
    keys = 4 * 1000
    assert shared["attn_decode"].flops == plain["attn_decode"].flops == 4 * 32 * 128 * keys
    # bytes: Q in and O out (2 x 4 x 4096), keys read (2 x 1024 each), new K/V written
    assert plain["attn_decode"].bytes == (2 * 4 * 4096 + keys * 2 * 1024 + 4 * 2 * 1024) * 2
    assert shared["attn_decode"].bytes == \
        (2 * 4 * 4096 + (keys - SHARED) * 2 * 1024 + 4 * 2 * 1024) * 2


def test_iteration_time_by_hand():
    cm = CostModel(LLAMA, round_device())
    plain = cm.iteration_time(BatchShape.from_requests(NEW, COMPUTED, 4))[0]
    shared = cm.iteration_time(BatchShape.from_requests(NEW, COMPUTED, 4, SHARED))[0]
    # memory-bound either way (4 flops per byte per key): 32 layers x saved bytes / 1 TB/s
    assert plain - shared == pytest.approx(32 * SHARED * 2 * 1024 * 2 / 1e12, rel=1e-9)
    it = cm.iteration(BatchShape.from_requests(NEW, COMPUTED, 4, SHARED))
    assert it.time_s == shared


def test_zero_is_the_old_shape_exactly():
    new, computed = [512, 1, 1, 1], [0, 10, 20, 4000]
    shape = BatchShape.from_requests(new, computed, 4)
    assert shape == BatchShape.from_requests(new, computed, 4, 0)
    assert shape.decode_shared_kv_tokens == 0
    assert BatchShape.decode([5, 6]) == BatchShape(2, 2, 2, 13, decode_max_context=7)


@pytest.mark.parametrize("device", ["round", "a100-80g-sxm"])
def test_decode_run_with_shared_keys_is_bit_identical_to_stepping(device):
    dev = round_device() if device == "round" else load_device(device)
    model = CATALOG["qwen2.5-7b"]
    contexts, shared, steps = [2100, 2150, 2200, 300], 2 * 1984, 30
    n = len(contexts)
    run_t, run_e = CostModel(model, dev).decode_run(n, sum(contexts) + n, steps, shared)
    step_model = CostModel(model, dev)
    times, energies = [], []
    for k in range(steps):
        shape = BatchShape.from_requests([1] * n, [c + k for c in contexts], n, shared)
        t, e = step_model.iteration_time(shape)
        times.append(t)
        energies.append(e)
    assert run_t.tolist() == times and run_e.tolist() == energies
    plain_t, _ = CostModel(model, dev).decode_run(n, sum(contexts) + n, steps)
    assert (run_t < plain_t).all()
