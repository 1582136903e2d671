"""sim.cost.roofline, the cost core: the formula by hand, and every cost model pricing its ops
through it (the GPU model, the Duplex model's xPU and PIM, a calibrated curve)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cost.duplex import DuplexCostModel
from sim.cost.model import BatchShape, CostModel
from sim.cost.ops import gemm_bytes, gemm_flops
from sim.cost.roofline import Rates, is_compute_bound, line_times, op_seconds, slower
from sim.hardware import DeviceSpec, Efficiency, load_device
from sim.hardware.calibration.curves import KindCurve
from sim.models import CATALOG

PEAK, BW = 1e15, 1e12
MIXTRAL = CATALOG["mixtral-8x7b"]


# -- the formula ------------------------------------------------------------------------------
def test_datasheet_roofline_by_hand():
    rates = Rates.datasheet(PEAK, BW, compute=0.5, memory=0.8, launch_s=5e-6)
    assert (rates.flops_per_s, rates.bytes_per_s, rates.launch_s) == (5e14, 8e11, 5e-6)
    assert op_seconds(2e12, 1e9, rates) == 2e12 / 5e14 + 5e-6       # compute-bound
    assert op_seconds(1e12, 3e9, rates) == 3e9 / 8e11 + 5e-6         # memory-bound
    assert op_seconds(1e12, 3e9, rates, launch=False) == 3e9 / 8e11  # part of a fused kernel
    assert rates.ridge_op_b == 5e14 / 8e11


def test_fitted_curve_by_hand():
    curve = KindCurve(compute_fraction=0.5, compute_half_flops=1e9, memory_fraction=0.8,
                      memory_half_bytes=1e6)
    rates = Rates.of_curve(curve, PEAK, BW)
    assert rates == Rates(5e14, 8e11, 0.0, 1e9, 1e6)
    # a tiny kernel: the half-sizes are its fixed cost; no launch on top
    assert op_seconds(0.0, 0.0, rates) == max(1e9 / 5e14, 1e6 / 8e11)
    assert op_seconds(1e12, 1e6, rates) == (1e12 + 1e9) / 5e14
    assert op_seconds(1e6, 1e10, rates) == (1e10 + 1e6) / 8e11


def test_line_times_and_which_binds():
    rates = Rates(1e15, 1e12)
    assert line_times(2e12, 1e9, rates) == (2e-3, 1e-3)
    assert is_compute_bound(2e12, 1e9, rates) and not is_compute_bound(1e12, 3e9, rates)
    mask = is_compute_bound(np.array([2e12, 1e12]), np.array([1e9, 3e9]), rates)
    assert mask.tolist() == [True, False]


@pytest.mark.parametrize("rates", [Rates(PEAK * 0.7, BW * 0.85, 2e-6),
                                   Rates.of_curve(KindCurve(0.55, 1.234e9, 0.77, 3.21e6), PEAK,
                                                  BW)])
def test_scalar_and_array_agree_bitwise(rates):
    flops = np.array([1e6, 3.3e9, 7.7e12, 1e15])
    nbytes = np.array([5e5, 1e7, 3e8, 1e9])
    vector = op_seconds(flops, nbytes, rates)
    scalar = [op_seconds(float(f), float(b), rates) for f, b in zip(flops, nbytes)]
    assert vector.tolist() == scalar
    assert all(type(t) is float for t in scalar)     # the engine's scalar path keys on float


@pytest.mark.parametrize("rates", [Rates(7e14, 2.8e12, 2e-6), Rates(5e14, 8e11, 0.0, 1e9, 1e6)])
def test_op_seconds_is_the_slower_line_plus_launch(rates):
    # op_seconds inlines line_times and slower (hot path): the three must agree to the bit
    rng = np.random.default_rng(0)
    flops, nbytes = rng.uniform(0, 1e13, 50), rng.uniform(0, 1e10, 50)
    expected = slower(*line_times(flops, nbytes, rates)) + rates.launch_s
    assert op_seconds(flops, nbytes, rates).tolist() == expected.tolist()
    assert [op_seconds(float(f), float(b), rates) for f, b in zip(flops, nbytes)] == \
        expected.tolist()


def test_rates_of_several_devices_at_once():
    peaks, bws = np.array([1e15, 2e15]), np.array([1e12, 4e12])
    rates = Rates.datasheet(peaks, bws, 0.5, 0.5, 1e-6)
    got = op_seconds(np.array([1e12, 1e12]), np.array([1e9, 1e9]), rates)
    assert got.tolist() == [1e12 / 5e14 + 1e-6, 1e12 / 1e15 + 1e-6]


# -- every cost model prices its ops here ---------------------------------------------------------
def gpu(launch: float = 3e-6) -> DeviceSpec:
    return DeviceSpec(
        name="round", kind="gpu", vendor="test", bf16_flops=PEAK, fp16_flops=PEAK,
        fp8_flops=2 * PEAK, fp32_flops=PEAK / 10, hbm_bytes=100e9, hbm_bandwidth=BW,
        interconnect_bandwidth=1e11, interconnect_latency_s=1e-6, pcie_bandwidth=5e10,
        tdp_w=1000.0, idle_w=100.0, energy_pj_per_flop=1.0, energy_pj_per_hbm_byte=10.0,
        price_usd_per_hour=1.0,
        efficiency=Efficiency(compute=0.5, memory=0.8, interconnect=1.0, kernel_launch_s=launch,
                              iteration_overhead_s=0.0))


def test_gpu_model_ops_are_the_core_at_the_datasheet_rates():
    cm = CostModel(CATALOG["llama-3.1-8b"], gpu())
    hand = Rates(5e14, 8e11, 3e-6)            # 0.5 x 1 PFLOP/s, 0.8 x 1 TB/s, 3 us
    assert cm.rates == hand
    shape = BatchShape.decode([999] * 4)      # 4 sequences reading 1000 keys each
    qkv, = [op for op in cm.token_ops(4, 4) if op.name == "qkv_proj"]
    f, b = gemm_flops(4, 4096, 6144), gemm_bytes(4, 4096, 6144, 2)
    assert cm.op_seconds_in(qkv, shape) == 32 * (max(f / 5e14, b / 8e11) + 3e-6)
    attn, = cm.attention_ops(shape)
    f = 4.0 * 32 * 128 * 4000
    b = (2 * 4 * 4096 + 4000 * 2 * 1024 + 4 * 2 * 1024) * 2.0
    assert cm.op_seconds_in(attn, shape) == 32 * op_seconds(f, b, hand)
    assert op_seconds(f, b, hand) == max(f / 5e14, b / 8e11) + 3e-6


def test_duplex_xpu_and_pim_are_the_core_at_their_own_rates():
    cost = DuplexCostModel(MIXTRAL, load_device("duplex-h100"))
    # duplex-h100.yaml: xPU 989.4 TFLOP/s, 3352 GB/s; Logic-PIM 106.5 TFLOP/s, 13408 GB/s; both
    # at 0.70 compute, 0.85 memory, 2 us per kernel
    xpu = Rates(989.4e12 * 0.70, 3352e9 * 0.85, 2e-6)
    pim = Rates(106.5e12 * 0.70, 13408e9 * 0.85, 2e-6)
    assert cost.xpu.rates == xpu == cost.rates     # the xPU is the GPU model's processor
    assert cost.pim.rates == pim
    f, b = 4.0 * 32 * 128 * 1000, (2 * 4096 + 1000 * 2 * 1024 + 2 * 1024) * 2.0
    assert cost.pim.seconds(f, b) == max(f / pim.flops_per_s, b / pim.bytes_per_s) + 2e-6
    assert cost.xpu.seconds(f, b) == max(f / xpu.flops_per_s, b / xpu.bytes_per_s) + 2e-6
    assert cost.pim.busy_seconds(f, b) == op_seconds(f, b, pim, launch=False)
    # placed: decode attention on the PIM (paper policy), the QKV projection on the xPU
    rows = {p.op.name: p for p in cost.placed_ops(BatchShape.decode([999]))}
    assert rows["attn_decode"].processor == "pim"
    assert rows["attn_decode"].seconds == 32 * float(op_seconds(f, b, pim))
    n = 4096 + 2 * 1024
    qkv_f, qkv_b = gemm_flops(1, 4096, n), gemm_bytes(1, 4096, n, 2)
    assert rows["qkv_proj"].processor == "xpu"
    assert rows["qkv_proj"].seconds == 32 * float(op_seconds(qkv_f, qkv_b, xpu))
