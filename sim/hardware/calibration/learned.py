"""The learned default efficiency curves, read as a calibration without tables.

``sim/hardware/learned_efficiency.yaml`` holds one curve per op kind, fitted on measured GPUs as
fractions of each GPU's datasheet peak and bandwidth (:mod:`sim.calibration.learned` fits them,
``benchmarks/learn_efficiency.py`` writes the file). A datasheet profile (``efficiency: {model:
learned}``, the default) carries them as :func:`learned_calibration`, which the cost model costs
on the curves alone.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import yaml

from sim.config import ConfigValueError, parse
from sim.errors import HardwareError, ScenarioError
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.curves import KindCurve, curves_of
from sim.hardware.calibration.data import CalibrationData
from sim.hardware.calibration.schema import CurvesSection

LEARNED_PATH = Path(__file__).resolve().parents[1] / "learned_efficiency.yaml"
LEARNED_DTYPE = "bf16"       # 2-byte elements; a model of another element size keeps the roofline


def read_curves(path: Path = LEARNED_PATH) -> dict[str, KindCurve]:
    """The ``curves:`` of a learned-efficiency YAML, validated as a profile's curves are."""
    shown = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HardwareError(f"cannot read learned efficiency curves {shown}: "
                            f"{exc.strerror or exc}") from None
    if not isinstance(data, dict) or "curves" not in data:
        raise ScenarioError(shown, "curves", "a mapping of op kinds to curves", data)
    section = parse(CurvesSection, data["curves"], path=shown, field="curves")
    try:
        section.check("curves")
    except ConfigValueError as exc:
        raise ScenarioError(shown, exc.field, exc.expected, exc.got) from None
    return curves_of(section)


@functools.lru_cache(maxsize=4)
def learned_calibration(path: str = str(LEARNED_PATH)) -> CalibrationData:
    """The learned curves as a calibration without tables: every GEMM, elementwise and
    attention op of a datasheet profile is costed on its kind's curve (shared by all profiles;
    the curves are fractions of each profile's own datasheet numbers)."""
    curves = read_curves(Path(path))
    digest = hashlib.sha256(repr(("learned", LEARNED_DTYPE, sorted(curves.items()))).encode())
    return CalibrationData(source_path=str(path), dtype=LEARNED_DTYPE, tables=tbl.Tables.of(),
                           curves=curves, source="learned efficiency curves",
                           digest="learned-" + digest.hexdigest()[:16])
