"""Predictor: kernel time from the measured tables, the fitted roofline where they end.

For an op with a measured curve (a GEMM's ``(k, n)``, an elementwise op's ``(op, width)``, an
all-reduce's device count) the time is interpolated linearly in ``log(size)`` vs ``log(time)``
between the two nearest measurements: exact at them, monotone between them (a straight segment),
and right for both regimes (time ~ size when bandwidth- or compute-bound, flat when
launch-bound). Outside a curve's measured range the prediction is the edge measurement scaled
by the fitted roofline, ``t(edge) * R(size) / R(edge)``: continuous at the edge, the fitted
efficiency clamped there rather than extrapolated (:mod:`sim.calibration.fit` keeps fractions
<= 1). An op with no table uses ``R`` itself, its kind's curve costed by the cost core
(:func:`sim.cost.roofline.op_seconds`). Both fallbacks warn once per predictor and
op kind (:class:`CalibrationWarning`). Attention has no tables in the predictor: it is costed by
its kind's fitted curve, a closed form that keeps the cost model's decode fast path exact.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from sim.cost.ops import (ALLREDUCE, ATTN_DECODE, ATTN_PREFILL, ELEMENTWISE, GEMM, Op,
                          gemm_bytes, gemm_flops, mlp_gemm_shapes, ring_allreduce_time_s)
from sim.cost.roofline import Rates, op_seconds
from sim.cost.table_costs import elementwise_cost
from sim.hardware.calibration.curves import KindCurve
from sim.hardware.calibration.tables import Tables

if TYPE_CHECKING:
    from sim.hardware.calibration.data import CalibrationData
    from sim.hardware.device import DeviceSpec
    from sim.models.spec import ModelSpec


def has_tables(tables: Tables) -> bool:
    return any(tables.rows().values())


class CalibrationWarning(UserWarning):
    """A prediction left the measured tables (emitted once per predictor and op kind)."""


# Cost-model op names -> elementwise table ops ("*_act" -> silu_mul or gelu by MLP gating).
ELEMENTWISE_NAMES = {"embedding": "embedding", "input_norm": "rmsnorm",
                     "post_attn_norm": "rmsnorm", "final_norm": "rmsnorm", "rotary": "rotary",
                     "residual_add": "add"}


def elementwise_name(op_name: str, gated: bool) -> str | None:
    if op_name.endswith("_act"):
        return "silu_mul" if gated else "gelu"
    return ELEMENTWISE_NAMES.get(op_name)


@dataclass(frozen=True, eq=False)
class _Measured:
    """One measured curve: sizes ascending and unique, their times, and both in logs."""

    x: np.ndarray
    t: np.ndarray
    log_x: np.ndarray
    log_t: np.ndarray


def _curves(tables: Tables, kind: str, keys: list[str], size: str) -> dict[tuple, _Measured]:
    out = {}
    if not tables.rows()[kind]:     # no rows: no frame to make (nor pandas to import)
        return out
    for key, g in tables.get(kind).groupby(keys, sort=False):
        g = g.sort_values(size)
        x, t = g[size].to_numpy(dtype=float), g["time_s"].to_numpy(dtype=float)
        out[key if isinstance(key, tuple) else (key,)] = _Measured(x, t, np.log(x), np.log(t))
    return out


class Predictor:
    """Times of single kernels on one device; every method takes scalars or numpy arrays."""

    def __init__(self, tables: Tables, curves: dict[str, KindCurve], *, peak_flops: float,
                 bandwidth: float, link_bandwidth: float, link_latency_s: float,
                 launch_s: float, dtype_bytes: int, source: str = "calibration",
                 warn: bool = True):
        # a calibration without tables (the learned defaults, sim.hardware.calibration.learned)
        # is curves by design: using them is not a fallback worth a warning
        self.dtype_bytes, self.source = dtype_bytes, source
        self._warn_on = warn and has_tables(tables)
        self._gemm = _curves(tables, "gemm", ["k", "n"], "m")
        self._elementwise = _curves(tables, "elementwise", ["op", "width"], "tokens")
        self._allreduce = _curves(tables, "allreduce", ["devices"], "bytes")
        self._rates = {kind: Rates.of_curve(c, peak_flops, bandwidth)
                       for kind, c in curves.items()}
        self._link = (link_bandwidth, link_latency_s, launch_s)
        self._warned: set[str] = set()

    # -- the fitted roofline -----------------------------------------------------------------
    def has_curve(self, kind: str) -> bool:
        return kind in self._rates

    def rates(self, kind: str) -> Rates | None:
        """The kind's curve as rates on this device (for the cost model's closed-form
        attention)."""
        return self._rates.get(kind)

    def fitted_s(self, kind: str, flops, nbytes):
        return op_seconds(flops, nbytes, self._rates[kind])

    # -- per kind ----------------------------------------------------------------------------
    def gemm_s(self, m, k: int, n: int):
        """``[m, k] x [k, n]``; ``None`` when there is neither a table nor a GEMM curve."""
        if not self._gemm and GEMM not in self._rates:
            return None
        dt = self.dtype_bytes

        def roofline(x):
            return self.fitted_s(GEMM, gemm_flops(x, k, n), gemm_bytes(x, k, n, dt))
        return self._lookup(GEMM, f"(k={k}, n={n})", self._gemm.get((k, n)), m, roofline)

    def elementwise_s(self, op: str, tokens, width: int):
        if not self._elementwise and ELEMENTWISE not in self._rates:
            return None
        dt = self.dtype_bytes

        kind = f"{ELEMENTWISE}:{op}" if f"{ELEMENTWISE}:{op}" in self._rates else ELEMENTWISE

        def roofline(x):
            return self.fitted_s(kind, *elementwise_cost(op, x, width, dt))
        return self._lookup(ELEMENTWISE, f"{op} (width={width})",
                            self._elementwise.get((op, width)), tokens, roofline)

    def allreduce_s(self, nbytes, devices: int):
        """Measured all-reduce of ``devices``; ``None`` (the cost model's ring formula) for a
        device count that was not measured. Outside the measured sizes: the ring formula
        scaled to the edge measurement."""
        measured = self._allreduce.get((devices,))
        if measured is None:
            return None
        bw, lat, launch = self._link

        def roofline(x):
            return ring_allreduce_time_s(x, devices, bw, lat) + launch
        return self._lookup(ALLREDUCE, f"({devices} devices)", measured, nbytes, roofline)

    def moe_experts_s(self, counts: np.ndarray, hidden: int, width: int, gated: bool):
        """A fused MoE layer as its per-expert GEMMs (tokens routed to each expert) plus one
        activation over all routed tokens: an upper bound on a grouped kernel, which launches
        once."""
        up_shape, down_shape = mlp_gemm_shapes(hidden, width, gated)
        up, down = self.gemm_s(counts, *up_shape), self.gemm_s(counts, *down_shape)
        act = self.elementwise_s("silu_mul" if gated else "gelu", int(counts.sum()), width)
        if up is None or down is None or act is None:
            return None
        return float(np.sum(up) + np.sum(down) + act)

    def op_seconds(self, op: Op, *, gated: bool, tp: int) -> float | None:
        """One execution of a cost-model op, or ``None`` to leave it to the roofline."""
        if not op.shape and op.kind not in (ATTN_PREFILL, ATTN_DECODE):
            return None
        if op.kind == GEMM:
            t = self.gemm_s(*op.shape)
        elif op.kind == ELEMENTWISE:
            name = elementwise_name(op.name, gated)
            if name is None:
                t = self.fitted_s(ELEMENTWISE, op.flops, op.bytes) \
                    if ELEMENTWISE in self._rates else None
            else:
                t = self.elementwise_s(name, *op.shape)
        elif op.kind == ALLREDUCE:
            t = self.allreduce_s(op.bytes, tp)
        elif op.kind in (ATTN_PREFILL, ATTN_DECODE):
            t = self.fitted_s(op.kind, op.flops, op.bytes) if op.kind in self._rates else None
        else:     # MOE_EXPERT needs the routing: see moe_experts_s
            t = None
        return None if t is None else float(t)

    # -- interpolation -----------------------------------------------------------------------
    def _lookup(self, kind: str, label: str, measured: _Measured | None, size,
                roofline: Callable[[np.ndarray], np.ndarray]):
        scalar = np.ndim(size) == 0
        if measured is None:
            self._warn(kind, f"{self.source}: no measured {kind} table for {label}; using the "
                             "fitted roofline")
            if scalar:      # (the curves are + / max only: the same on a float, without numpy)
                return float(roofline(float(size)))
            return roofline(np.asarray(size, dtype=float))
        x = np.atleast_1d(np.asarray(size, dtype=float))
        t = np.exp(np.interp(np.log(x), measured.log_x, measured.log_t))
        i = np.minimum(np.searchsorted(measured.x, x), len(measured.x) - 1)
        hit = measured.x[i] == x
        t = np.where(hit, measured.t[i], t)      # exact at measurements (no exp(log) rounding)
        lo, hi = measured.x[0], measured.x[-1]
        outside = (x < lo) | (x > hi)
        if outside.any():
            self._warn(kind + ":range",
                       f"{self.source}: {kind} {label} at size {x[outside][0]:g} is outside the "
                       f"measured {lo:g}..{hi:g}; extrapolating with the fitted roofline")
            edge = np.clip(x, lo, hi)
            t_edge = np.where(x < lo, measured.t[0], measured.t[-1])
            t = np.where(outside, t_edge * roofline(x) / roofline(edge), t)
        return float(t[0]) if scalar else t

    def _warn(self, key: str, message: str) -> None:
        if self._warn_on and key not in self._warned:
            self._warned.add(key)
            warnings.warn(message + " (warned once)", CalibrationWarning, stacklevel=4)


@functools.lru_cache(maxsize=32)
def predictor_for(data: CalibrationData, peak_flops: float, bandwidth: float, link_bandwidth: float,
                  link_latency_s: float, launch_s: float) -> Predictor:
    """One shared predictor per calibration and device numbers (its warnings fire once)."""
    return Predictor(data.tables, data.curves, peak_flops=peak_flops, bandwidth=bandwidth,
                     link_bandwidth=link_bandwidth, link_latency_s=link_latency_s,
                     launch_s=launch_s, dtype_bytes=data.dtype_bytes, source=data.source_path)


def cost_model_predictor(device: DeviceSpec, model: ModelSpec, dtype: str
                         ) -> tuple[Predictor | None, dict[str, Rates]]:
    """What a CostModel of ``model`` on ``device`` (calibrated) uses: the shared predictor and
    the attention curves as rates. A model whose element size differs from the calibration's
    (e.g. fp8 weights on a bf16 calibration) keeps the roofline, with a warning."""
    data = device.calibration
    if data.dtype_bytes != model.dtype_bytes:
        if not has_tables(data.tables):     # learned curves: silently not for this element size
            return None, {}
        warnings.warn(f"{data.source_path}: calibrated for {data.dtype} ({data.dtype_bytes}-byte "
                      f"elements), {model.name} uses {model.dtype_bytes}-byte elements; using "
                      "the roofline", CalibrationWarning, stacklevel=3)
        return None, {}
    eff = device.efficiency
    predictor = predictor_for(data, device.peak_flops(dtype), device.hbm_bandwidth,
                              device.interconnect_bandwidth * eff.interconnect,
                              device.interconnect_latency_s, eff.kernel_launch_s)
    attn = {k: predictor.rates(k) for k in (ATTN_PREFILL, ATTN_DECODE) if predictor.has_curve(k)}
    return predictor, attn
