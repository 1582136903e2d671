"""sim.calibration.fit: the efficiency curve recovers a known law."""

from __future__ import annotations

import numpy as np
import pytest

from sim.calibration.fit import fit_curve
from sim.cost.ops import gemm_bytes, gemm_flops
from sim.cost.roofline import Rates, op_seconds
from sim.hardware.calibration.curves import KindCurve

PEAK, BW = 1e15, 2e12


def test_recovers_a_two_regime_roofline():
    m = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192], dtype=float)
    k, n = 4096, 4096
    flops, nbytes = gemm_flops(m, k, n), gemm_bytes(m, k, n, 2)
    truth = KindCurve(0.6, 3e9, 0.8, 4e6)
    t = op_seconds(flops, nbytes, Rates.of_curve(truth, PEAK, BW))
    fit = fit_curve(flops, nbytes, t, PEAK, BW)
    assert fit.compute_fraction == pytest.approx(0.6, rel=1e-6)
    assert fit.compute_half_flops == pytest.approx(3e9, rel=1e-4)
    assert fit.memory_fraction == pytest.approx(0.8, rel=1e-6)
    assert fit.memory_half_bytes == pytest.approx(4e6, rel=1e-4)


def test_memory_only_ops_leave_the_compute_line_at_peak():
    nbytes = np.geomspace(1e4, 1e9, 12)
    t = (nbytes + 2e5) / (BW * 0.5)
    fit = fit_curve(0.1 * nbytes, nbytes, t, PEAK, BW)
    assert (fit.compute_fraction, fit.compute_half_flops) == (1.0, 0.0)
    assert fit.memory_fraction == pytest.approx(0.5, rel=1e-9)


def test_fractions_above_peak_are_clamped_keeping_the_fixed_cost():
    nbytes = np.geomspace(1e4, 1e9, 12)
    t = 1e-5 + nbytes / (BW * 1.3)        # faster than the datasheet bandwidth
    fit = fit_curve(0 * nbytes, nbytes, t, PEAK, BW)
    assert fit.memory_fraction == 1.0
    assert fit.memory_half_bytes / (BW * fit.memory_fraction) == pytest.approx(1e-5, rel=1e-6)

