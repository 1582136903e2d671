"""Fitted efficiency curves as profile data: one :class:`KindCurve` per op kind.

A curve says what fraction of the datasheet peaks an op kind reaches as a function of its size,
``fraction * s / (s + half)`` for ``s`` its FLOPs (or bytes); :mod:`sim.cost.roofline` turns one
into rates and seconds, :mod:`sim.calibration.fit` fits one to measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.hardware.calibration.op_kinds import ELEMENTWISE
from sim.hardware.calibration.schema import CURVE_KINDS, CurveSection, CurvesSection


@dataclass(frozen=True)
class KindCurve:
    """One op kind's fitted curve. Fractions are of the profile's peaks; the half-sizes are the
    FLOPs (bytes) at which the kind reaches half its fraction."""

    compute_fraction: float = 1.0
    compute_half_flops: float = 0.0
    memory_fraction: float = 1.0
    memory_half_bytes: float = 0.0

    @classmethod
    def of(cls, section: CurveSection) -> "KindCurve":
        return cls(section.compute_fraction, section.compute_half_flops, section.memory_fraction,
                   section.memory_half_bytes)

    def to_yaml(self) -> dict[str, float]:
        return {"compute_fraction": _round(self.compute_fraction),
                "compute_half_flops": _round(self.compute_half_flops),
                "memory_fraction": _round(self.memory_fraction),
                "memory_half_bytes": _round(self.memory_half_bytes)}


def curves_of(section: CurvesSection) -> dict[str, KindCurve]:
    """A ``curves:`` section as curves by kind: ``gemm``, ``elementwise``, ``attn_prefill``,
    ``attn_decode``, and ``elementwise:<op>`` for each of ``elementwise_ops``."""
    curves = {k: KindCurve.of(getattr(section, k)) for k in CURVE_KINDS
              if getattr(section, k) is not None}
    curves.update({f"{ELEMENTWISE}:{op}": KindCurve.of(c)
                   for op, c in section.elementwise_ops.items()})
    return curves


def curves_yaml(curves: dict[str, KindCurve]) -> dict:
    """``curves`` as a ``curves:`` mapping, in their order (the inverse of :func:`curves_of`)."""
    out: dict = {k: c.to_yaml() for k, c in curves.items() if ":" not in k}
    out["elementwise_ops"] = {k.split(":", 1)[1]: c.to_yaml() for k, c in curves.items()
                              if ":" in k}
    return out


def _round(x: float) -> float:
    """Six significant digits: enough for a fit, short in YAML."""
    return float(f"{x:.6g}")
