"""sim.hardware.calibration.curves: a profile's ``curves:`` section and curves by kind."""

from __future__ import annotations

from sim.config import parse
from sim.hardware.calibration.curves import KindCurve, curves_of, curves_yaml
from sim.hardware.calibration.op_kinds import ATTN_DECODE, GEMM
from sim.hardware.calibration.schema import CurvesSection

CURVES = {GEMM: KindCurve(0.77, 2.4e9, 0.86, 4e6), ATTN_DECODE: KindCurve(1.0, 0.0, 0.7, 1.3e7),
          "elementwise:rmsnorm": KindCurve(1.0, 0.0, 0.9, 1.8e6)}


def test_yaml_mapping_by_hand():
    assert curves_yaml(CURVES) == {
        "gemm": {"compute_fraction": 0.77, "compute_half_flops": 2.4e9, "memory_fraction": 0.86,
                 "memory_half_bytes": 4e6},
        "attn_decode": {"compute_fraction": 1.0, "compute_half_flops": 0.0,
                        "memory_fraction": 0.7, "memory_half_bytes": 1.3e7},
        "elementwise_ops": {"rmsnorm": {"compute_fraction": 1.0, "compute_half_flops": 0.0,
                                        "memory_fraction": 0.9, "memory_half_bytes": 1.8e6}}}


def test_section_round_trip():
    section = parse(CurvesSection, curves_yaml(CURVES), path="test.yaml", field="curves")
    assert curves_of(section) == CURVES


def test_to_yaml_keeps_six_significant_digits():
    assert KindCurve(0.123456789, 1234567.89, 1.0, 0.0).to_yaml() == {
        "compute_fraction": 0.123457, "compute_half_flops": 1234570.0, "memory_fraction": 1.0,
        "memory_half_bytes": 0.0}
