"""From measured tables to a calibrated profile: fit curves, score a held-out split, write files.

Shared by ``llmsim calibrate`` (torch measurements) and ``llmsim calibrate import-vidur``. The
profile is the base profile's datasheet numbers (a shipped YAML, or a synthesised one for a
CPU) plus a ``calibration:`` section; the tables go to ``<out stem>/<kind>.parquet`` beside it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sim.calibration.fit import fit_curve
from sim.cost.predictor import Predictor
from sim.cost.table_costs import row_costs
from sim.hardware import PROFILE_DIR, DeviceSpec, list_devices, load_device
from sim.hardware.calibration import tables as tbl
from sim.hardware.calibration.curves import KindCurve, curves_yaml
from sim.hardware.calibration.schema import DTYPE_BYTES

HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class Peaks:
    """The device numbers that fractions and fallbacks refer to."""

    flops: float
    bandwidth: float
    link_bandwidth: float
    link_latency_s: float
    launch_s: float

    @classmethod
    def of(cls, device: DeviceSpec, dtype: str) -> "Peaks":
        eff = device.efficiency
        return cls(device.peak_flops(dtype), device.hbm_bandwidth,
                   device.interconnect_bandwidth * eff.interconnect,
                   device.interconnect_latency_s, eff.kernel_launch_s)


def fit_curves(tables: tbl.Tables, peaks: Peaks, dtype_bytes: int) -> dict[str, KindCurve]:
    """One curve per op kind that has measurements (attention: prefill and decode apart)."""
    groups = {"gemm": tables.gemm, "elementwise": tables.elementwise}
    for op in tbl.ATTENTION_OPS:
        groups[op] = tables.attention[tables.attention["op"] == op]
    for op in tbl.ELEMENTWISE_OPS:       # "elementwise:<op>": see CurvesSection.elementwise_ops
        groups[f"elementwise:{op}"] = tables.elementwise[tables.elementwise["op"] == op]
    curves = {}
    for kind, frame in groups.items():
        if len(frame) == 0:
            continue
        table_kind = "attention" if kind.startswith("attn") else kind.split(":")[0]
        flops, nbytes = row_costs(table_kind, frame, dtype_bytes)
        curves[kind] = fit_curve(flops, nbytes, frame["time_s"].to_numpy(), peaks.flops,
                                 peaks.bandwidth)
    return curves


def predictor(tables: tbl.Tables, curves: dict[str, KindCurve], peaks: Peaks, dtype_bytes: int,
              warn: bool = False) -> Predictor:
    return Predictor(tables, curves, peak_flops=peaks.flops, bandwidth=peaks.bandwidth,
                     link_bandwidth=peaks.link_bandwidth, link_latency_s=peaks.link_latency_s,
                     launch_s=peaks.launch_s, dtype_bytes=dtype_bytes, warn=warn)


def holdout_mape(tables: tbl.Tables, peaks: Peaks, dtype_bytes: int,
                 fraction: float = HOLDOUT_FRACTION, seed: int = 0
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Mean absolute percentage error (as a fraction) per op kind, and per elementwise op, of a
    predictor built from a random ``1 - fraction`` of the rows, on the other rows."""
    rng = np.random.default_rng(seed)
    held = {k: rng.random(len(tables.get(k))) < fraction for k in tbl.SCHEMAS}
    train = tables.select({k: ~m for k, m in held.items()})
    test = tables.select(held)
    p = predictor(train, fit_curves(train, peaks, dtype_bytes), peaks, dtype_bytes)
    errors: dict[str, list[np.ndarray]] = {}
    by_op: dict[str, list[np.ndarray]] = {}

    def score(kind: str, predicted, measured, op: str | None = None) -> None:
        if predicted is None:
            return
        err = np.abs(np.asarray(predicted) / measured - 1.0)
        errors.setdefault(kind, []).append(err)
        if op is not None:
            by_op.setdefault(op, []).append(err)

    for (k, n), g in test.gemm.groupby(["k", "n"]):
        score("gemm", p.gemm_s(g["m"].to_numpy(), int(k), int(n)), g["time_s"].to_numpy())
    for (op, width), g in test.elementwise.groupby(["op", "width"]):
        score("elementwise", p.elementwise_s(op, g["tokens"].to_numpy(), int(width)),
              g["time_s"].to_numpy(), op)
    for op, g in test.attention.groupby("op"):
        if p.has_curve(op):
            flops, nbytes = row_costs("attention", g, dtype_bytes)
            score(op, p.fitted_s(op, flops, nbytes), g["time_s"].to_numpy())
    for (devices,), g in test.allreduce.groupby(["devices"]):
        score("allreduce", p.allreduce_s(g["bytes"].to_numpy(), int(devices)),
              g["time_s"].to_numpy())
    mean = {k: float(np.mean(np.concatenate(v))) for k, v in errors.items()}
    return mean, {k: float(np.mean(np.concatenate(v))) for k, v in sorted(by_op.items())}


@dataclass(frozen=True)
class Built:
    path: Path
    device: DeviceSpec
    mape: dict[str, float]
    mape_by_op: dict[str, float]
    rows: dict[str, int]


def write_profile(out: Path, base: dict, tables: tbl.Tables, *, dtype: str, source: str,
                  environment: dict[str, str], header: str = "",
                  fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> Built:
    """Write ``out`` (YAML: ``base`` renamed to ``out``'s stem, plus ``calibration:``) and its
    tables; fit on all rows, MAPE from the held-out split. Returns the loaded device."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = {k: v for k, v in base.items() if k != "calibration"}
    profile["name"] = out.stem
    # First the datasheet part alone: loading it validates the base and gives the peaks.
    _dump(out, profile, header)
    plain = load_device(str(out))
    peaks, dt = Peaks.of(plain, dtype), DTYPE_BYTES[dtype]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the split's own fallbacks are part of its score
        mape, mape_by_op = holdout_mape(tables, peaks, dt, fraction, seed)
    curves = fit_curves(tables, peaks, dt)
    written = tbl.write(tables, out.parent / out.stem)
    profile["calibration"] = {
        "dtype": dtype, "source": source,
        "environment": {k: str(v) for k, v in environment.items()},
        "tables": {k: (f"{out.stem}/{written[k].name}" if k in written else None)
                   for k in tbl.SCHEMAS},
        "curves": curves_yaml(curves),
        "mape": {k: round(v, 5) for k, v in mape.items()},
        "mape_by_op": {k: round(v, 5) for k, v in mape_by_op.items()},
        "holdout_fraction": fraction,
    }
    _dump(out, profile, header)
    return Built(out, load_device(str(out)), mape, mape_by_op, tables.rows())


def _dump(path: Path, data: dict, header: str) -> None:
    text = yaml.safe_dump(data, sort_keys=False, width=100)
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(lines + text, encoding="utf-8")


def read_base(name_or_path: str) -> dict:
    """The raw mapping of a profile (by name or path) to copy datasheet numbers from."""
    name = str(name_or_path)
    path = PROFILE_DIR / f"{name}.yaml" if name in list_devices() else Path(name)
    load_device(str(path))       # validates it (errors name file and field)
    return yaml.safe_load(path.read_text(encoding="utf-8"))
