"""Fitted efficiency curves: a roofline whose efficiencies grow with op size.

The datasheet roofline uses one compute and one memory efficiency for every kernel; measured
kernels reach a larger fraction of peak the larger they are. A curve per op kind,

    achieved fraction of peak(s) = fraction * s / (s + half)        (s = FLOPs, or bytes)

is the same as ``time = (s + half) / (peak * fraction)``: a straight line in ``s`` whose intercept
``half / (peak * fraction)`` is the fixed cost of a tiny kernel. Fitting it is linear least
squares (on relative error, since times span five decades); the op's time is the larger of its
compute line and its memory line, as in a roofline (:func:`sim.cost.roofline.op_seconds` with
:meth:`~sim.cost.roofline.Rates.of_curve`). Which line binds each measurement is decided by
alternating: assign, fit both lines, reassign, until nothing moves.
"""

from __future__ import annotations

import numpy as np

from sim.cost.roofline import Rates, is_compute_bound, slower
from sim.hardware.calibration.curves import KindCurve


def _fit_line(x: np.ndarray, t: np.ndarray) -> tuple[float, float] | None:
    """``(slope, intercept)`` >= 0 minimising the squared relative error of ``slope*x + b``."""
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    a_col, b_col = x / t, 1.0 / t          # (a x + b) / t - 1 = a (x/t) + b (1/t) - 1
    A = np.column_stack([a_col, b_col])
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if b < 0:                               # a negative fixed cost is noise: refit through 0
        b = 0.0
        a = float(a_col.sum() / (a_col @ a_col))
    if not a > 0:
        return None
    return float(a), float(b)


def _rel_error(pred: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.abs(pred / t - 1.0)))


def fit_curve(flops: np.ndarray, nbytes: np.ndarray, times_s: np.ndarray, peak_flops: float,
              bandwidth: float, start_compute: float = 0.7, start_memory: float = 0.85,
              max_rounds: int = 30) -> KindCurve:
    """Fit one kind's curve to measurements (arrays of equal length, times in seconds).

    A line with too few points to fit (e.g. the compute line of elementwise ops, which never
    bind) is set to the peak with no fixed cost, so it never binds in predictions either.
    Fractions above 1 (faster than the datasheet, e.g. boost clocks) are clamped to 1 with the
    fixed cost kept.
    """
    flops, nbytes, t = (np.asarray(a, dtype=float) for a in (flops, nbytes, times_s))

    def fit_lines(compute_bound: np.ndarray):
        comp = _fit_line(flops[compute_bound], t[compute_bound])
        mem = _fit_line(nbytes[~compute_bound], t[~compute_bound])
        a_c, b_c = comp if comp else (1.0 / peak_flops, 0.0)
        a_m, b_m = mem if mem else (1.0 / bandwidth, 0.0)
        return (a_c * flops + b_c, a_m * nbytes + b_m,
                _curve(a_c, b_c, a_m, b_m, peak_flops, bandwidth))

    start = is_compute_bound(flops, nbytes, Rates.datasheet(peak_flops, bandwidth, start_compute,
                                                            start_memory))
    return alternate_fit(start, fit_lines, lambda pred: _rel_error(pred, t), max_rounds)


def alternate_fit(compute_bound: np.ndarray, fit_lines, error, max_rounds: int = 30) -> KindCurve:
    """Which line binds each measurement, by alternating: fit both lines on their rows
    (``fit_lines(compute_bound) -> (compute prediction, memory prediction, curve)``), reassign
    every row to the line that binds, until nothing moves; the curve whose roofline (the larger
    prediction) has the lowest ``error``."""
    best: tuple[float, KindCurve] | None = None
    for _ in range(max_rounds):
        pred_c, pred_m, curve = fit_lines(compute_bound)
        err = error(slower(pred_c, pred_m))
        if best is None or err < best[0]:
            best = (err, curve)
        moved = pred_c > pred_m
        if (moved == compute_bound).all():
            break
        compute_bound = moved
    assert best is not None
    return best[1]


def _curve(a_c: float, b_c: float, a_m: float, b_m: float, peak_flops: float,
           bandwidth: float) -> KindCurve:
    fc = min(1.0 / (a_c * peak_flops), 1.0)
    fm = min(1.0 / (a_m * bandwidth), 1.0)
    # intercept b = half / (peak * fraction): keep the fitted fixed cost whatever the clamp did
    return KindCurve(fc, b_c * peak_flops * fc, fm, b_m * bandwidth * fm)
