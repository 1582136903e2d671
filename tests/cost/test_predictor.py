"""sim.cost.predictor: log-log interpolation, the fitted-roofline fallback, warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sim.cost.ops import ALLREDUCE, ELEMENTWISE, GEMM, Op, gemm_bytes, gemm_flops
from sim.cost.predictor import CalibrationWarning, Predictor, elementwise_name
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.curves import KindCurve

PEAK, BW = 1e15, 1e12
CURVE = KindCurve(compute_fraction=0.5, compute_half_flops=1e9, memory_fraction=0.8,
                  memory_half_bytes=1e6)
GEMM_M = np.array([1, 16, 256, 4096])
GEMM_T = np.array([10e-6, 12e-6, 40e-6, 500e-6])       # measured, deliberately off the curve


def predictor(**kwargs) -> Predictor:
    gemm = pd.DataFrame({"m": GEMM_M, "k": 1024, "n": 2048, "time_s": GEMM_T})
    elem = pd.DataFrame({"op": "rmsnorm", "tokens": [1, 64, 4096], "width": 1024,
                         "time_s": [3e-6, 4e-6, 20e-6]})
    ar = pd.DataFrame({"devices": 2, "bytes": [1024, 2**20], "time_s": [8e-6, 20e-6]})
    tables = tbl.Tables.of(gemm=gemm, elementwise=elem, allreduce=ar)
    return Predictor(tables, {"gemm": CURVE, "elementwise": CURVE}, peak_flops=PEAK,
                     bandwidth=BW, link_bandwidth=1e11, link_latency_s=1e-6, launch_s=2e-6,
                     dtype_bytes=2, **kwargs)


def fitted(m, k=1024, n=2048):
    return np.maximum((gemm_flops(m, k, n) + 1e9) / (PEAK * 0.5),
                      (gemm_bytes(m, k, n, 2) + 1e6) / (BW * 0.8))


def test_exact_at_grid_points_scalar_and_vector():
    p = predictor()
    for m, t in zip(GEMM_M, GEMM_T):
        assert p.gemm_s(int(m), 1024, 2048) == t
    assert np.array_equal(p.gemm_s(GEMM_M, 1024, 2048), GEMM_T)


def test_log_log_linear_and_monotone_between_grid_points():
    p = predictor()
    m = np.arange(1, 4097)
    t = p.gemm_s(m, 1024, 2048)
    assert np.all(np.diff(t) >= 0)                 # measured times increase: so do predictions
    for lo, hi, t_lo, t_hi in zip(GEMM_M[:-1], GEMM_M[1:], GEMM_T[:-1], GEMM_T[1:]):
        inside = t[(m > lo) & (m < hi)]
        assert np.all((inside > t_lo) & (inside < t_hi))
    # the geometric midpoint of a segment gets the geometric mean of its ends
    assert p.gemm_s(4, 1024, 2048) == pytest.approx(np.sqrt(10e-6 * 12e-6), rel=1e-12)


def test_outside_the_grid_scales_the_edge_by_the_fitted_roofline_and_warns_once():
    p = predictor()
    with pytest.warns(CalibrationWarning, match="outside the measured 1..4096") as caught:
        big = p.gemm_s(16384, 1024, 2048)
        p.gemm_s(8192, 1024, 2048)
    assert len(caught) == 1
    assert big == pytest.approx(GEMM_T[-1] * fitted(16384) / fitted(4096), rel=1e-12)
    assert big > GEMM_T[-1]
    # continuous at the edge
    assert p.gemm_s(4096.0001, 1024, 2048) == pytest.approx(GEMM_T[-1], rel=1e-6)


def test_unmeasured_shape_uses_the_fitted_roofline_with_one_warning():
    p = predictor()
    with pytest.warns(CalibrationWarning, match=r"no measured gemm table for \(k=512, n=512\)"):
        t = p.gemm_s(np.array([8, 64]), 512, 512)
        p.gemm_s(8, 512, 256)
    assert np.array_equal(t, fitted(np.array([8, 64]), 512, 512))


def test_no_warning_inside_the_grid_and_when_disabled():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor().gemm_s(100, 1024, 2048)
        predictor(warn=False).gemm_s(10**6, 1024, 2048)


def test_op_seconds_maps_cost_model_ops():
    p = predictor()
    assert elementwise_name("input_norm", True) == "rmsnorm"
    assert elementwise_name("mlp_act", True) == "silu_mul"
    assert elementwise_name("mlp_act", False) == "gelu"
    gemm = Op("qkv_proj", GEMM, gemm_flops(16, 1024, 2048), gemm_bytes(16, 1024, 2048, 2),
              shape=(16, 1024, 2048))
    assert p.op_seconds(gemm, gated=True, tp=1) == 12e-6
    norm = Op("post_attn_norm", ELEMENTWISE, 1.0, 1.0, shape=(64, 1024))
    assert p.op_seconds(norm, gated=True, tp=1) == 4e-6
    ar = Op("allreduce", ALLREDUCE, 0.0, 1024.0, shape=(1, 256))
    assert p.op_seconds(ar, gated=True, tp=2) == 8e-6
    assert p.op_seconds(ar, gated=True, tp=4) is None          # not measured: ring formula
    assert p.op_seconds(Op("x", GEMM, 1.0, 1.0), gated=True, tp=1) is None   # no shape


def test_moe_experts_sum_per_expert_gemms():
    p = predictor(warn=False)
    counts = np.array([16, 16, 256])
    t = p.moe_experts_s(counts, hidden=1024, width=1024, gated=True)
    expected = (p.gemm_s(counts, 1024, 2048).sum() + p.gemm_s(counts, 1024, 1024).sum()
                + p.elementwise_s("silu_mul", 288, 1024))
    assert t == pytest.approx(expected, rel=1e-12)
