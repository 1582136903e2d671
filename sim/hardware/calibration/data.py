"""CalibrationData: a profile's measured tables and fitted curves, loaded into its DeviceSpec.

Equality and hashing go by a digest of the contents, so a DeviceSpec that carries calibration
stays a hashable frozen spec, and two specs differ exactly when their measurements differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import ScenarioError
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.curves import KindCurve, curves_of
from sim.hardware.calibration.schema import DTYPE_BYTES, TABLE_KINDS, CalibrationSection


@dataclass(frozen=True, eq=False)
class CalibrationData:
    source_path: str                   # the profile YAML, as shown in messages
    dtype: str
    tables: tbl.Tables
    curves: dict[str, KindCurve]
    mape: dict[str, float] = field(default_factory=dict)
    mape_by_op: dict[str, float] = field(default_factory=dict)
    source: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    table_paths: dict[str, str] = field(default_factory=dict)
    holdout_fraction: float = 0.2
    digest: str = ""

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CalibrationData) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def summary(self) -> dict:
        """What ``llmsim hardware show`` prints (JSON-ready)."""
        return {"mape": dict(self.mape), "mape_by_op": dict(self.mape_by_op),
                "holdout_fraction": self.holdout_fraction, "dtype": self.dtype,
                "source": self.source, "environment": dict(self.environment),
                "tables": {k: {"path": self.table_paths[k], "rows": n}
                           for k, n in self.tables.rows().items() if k in self.table_paths},
                "curves": {k: c.to_yaml() for k, c in self.curves.items() if ":" not in k},
                "elementwise_curves": {k.split(":", 1)[1]: c.to_yaml()
                                       for k, c in self.curves.items() if ":" in k}}


def load_calibration(section: CalibrationSection, yaml_path: str, shown: str) -> CalibrationData:
    """Read the tables named by a profile's ``calibration:`` section (paths relative to the
    YAML); a missing or malformed table is an error naming the file and the field."""
    folder = Path(yaml_path).parent
    frames, paths = {}, {}
    for kind in TABLE_KINDS:
        rel = getattr(section.tables, kind)
        if rel is None:
            continue
        path = Path(rel) if Path(rel).is_absolute() else folder / rel
        if not path.is_file():
            raise ScenarioError(shown, f"calibration.tables.{kind}",
                                "an existing Parquet file (relative to the profile)", str(path))
        frames[kind] = tbl.read(kind, path, _shown(path))
        paths[kind] = rel
    tables = tbl.Tables.of(**frames)
    curves = curves_of(section.curves)
    h = hashlib.sha256(tbl.digest(tables).encode())
    h.update(repr((section.dtype, sorted(curves.items()))).encode())
    return CalibrationData(source_path=shown, dtype=section.dtype, tables=tables, curves=curves,
                           mape=dict(section.mape), mape_by_op=dict(section.mape_by_op),
                           source=section.source,
                           environment={k: str(v) for k, v in section.environment.items()},
                           table_paths=paths, holdout_fraction=section.holdout_fraction,
                           digest=h.hexdigest()[:16])


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
