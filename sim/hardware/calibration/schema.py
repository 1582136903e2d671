"""The ``calibration:`` section of a hardware profile YAML, validated like every other section.

Kept free of numpy/pandas imports: :mod:`sim.hardware.profiles` imports it for every profile,
calibrated or not. The tables themselves are read by :mod:`sim.hardware.calibration.data` only
when a profile has this section.

```yaml
calibration:
  dtype: bf16
  source: "llmsim calibrate --device cuda"      # or "vidur import: <dir>"
  environment: {device_name: NVIDIA H200, torch: 2.13.0, cuda: "12.8", driver: "570.86", date: ...}
  tables:                                        # Parquet files, paths relative to this YAML
    gemm: h200-cal/gemm.parquet
    elementwise: h200-cal/elementwise.parquet
    attention: h200-cal/attention.parquet
    allreduce: null
  curves:                                        # fitted efficiency per op kind (curves.py)
    gemm: {compute_fraction: 0.78, compute_half_flops: 2.1e9,
           memory_fraction: 0.88, memory_half_bytes: 9.0e6}
    elementwise_ops: {rmsnorm: {...}, rotary: {...}}
  mape: {gemm: 0.021, elementwise: 0.016}        # held-out (20%) mean absolute percentage error
  mape_by_op: {rmsnorm: 0.014, rotary: 0.016}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sim.config import require
from sim.hardware.calibration.op_kinds import (ALLREDUCE, ATTN_DECODE, ATTN_PREFILL, ELEMENTWISE,
                                               GEMM)

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}
# The kernel tables (one for both attention kinds) and the op kinds that can have a fitted curve.
TABLE_KINDS = (GEMM, ELEMENTWISE, "attention", ALLREDUCE)
CURVE_KINDS = (GEMM, ELEMENTWISE, ATTN_PREFILL, ATTN_DECODE)
# Measured vLLM layer tables (sim.hardware.calibration.layers): file stem -> columns
MEASURED_TABLES: dict[str, tuple[str, ...]] = {
    "dense": ("layer", "tokens", "time_us"),
    "attention": ("prefill_chunk", "kv_prefill", "n_decode", "kv_decode", "time_us"),
    "per_sequence": ("layer", "sequences", "time_us"),
    "moe": ("tokens", "activated_experts", "time_us"),
    # decode attention of unequal contexts: time = t(mean context) + alpha * (t(longest) -
    # t(mean)), alpha fitted per bucket (upper bounds; skew_rate: share of long sequences)
    "skew_alpha": ("pc", "n_max", "skew_rate_max", "kv_big_max", "kp_max", "alpha",
                   "n_samples"),
}
REQUIRED_MEASURED = ("dense", "attention", "per_sequence")


@dataclass(frozen=True)
class CurveSection:
    """Achieved fraction of peak as a function of op size ``s`` (FLOPs or bytes):
    ``fraction * s / (s + half)``. Equivalently ``time = (s + half) / (peak * fraction)``, a
    line in ``s`` whose intercept is the fixed cost of a small kernel."""

    compute_fraction: float = 1.0
    compute_half_flops: float = 0.0
    memory_fraction: float = 1.0
    memory_half_bytes: float = 0.0

    def check(self, at: str) -> None:
        for name in ("compute_fraction", "memory_fraction"):
            value = getattr(self, name)
            require(0 < value <= 1, f"{at}.{name}", "a fraction in (0, 1]", value)
        for name in ("compute_half_flops", "memory_half_bytes"):
            value = getattr(self, name)
            require(value >= 0, f"{at}.{name}", "a number >= 0", value)


@dataclass(frozen=True)
class CurvesSection:
    gemm: CurveSection | None = None
    elementwise: CurveSection | None = None
    attn_prefill: CurveSection | None = None
    attn_decode: CurveSection | None = None
    # one curve per elementwise op (rmsnorm, rotary, ...): their efficiencies differ ~5x
    # (an eager embedding gather vs a residual add), so one curve for all fits none well
    elementwise_ops: dict[str, CurveSection] = field(default_factory=dict)

    def check(self, at: str) -> None:
        for kind in CURVE_KINDS:
            curve = getattr(self, kind)
            if curve is not None:
                curve.check(f"{at}.{kind}")
        for op, curve in self.elementwise_ops.items():
            curve.check(f"{at}.elementwise_ops.{op}")


@dataclass(frozen=True)
class TablesSection:
    """Parquet files beside the YAML (relative paths are relative to the YAML's folder)."""

    gemm: str | None = None
    elementwise: str | None = None
    attention: str | None = None
    allreduce: str | None = None

    def check(self, at: str) -> None:
        for kind in TABLE_KINDS:
            value = getattr(self, kind)
            require(value is None or value.endswith(".parquet"), f"{at}.{kind}",
                    "a path to a .parquet file or null", value)


@dataclass(frozen=True)
class CalibrationSection:
    dtype: str = "bf16"
    source: str = ""
    environment: dict[str, str | int | float] = field(default_factory=dict)
    tables: TablesSection = TablesSection()
    curves: CurvesSection = CurvesSection()
    mape: dict[str, float] = field(default_factory=dict)
    mape_by_op: dict[str, float] = field(default_factory=dict)
    holdout_fraction: float = 0.2

    def check(self, at: str) -> None:
        require(self.dtype in DTYPE_BYTES, f"{at}.dtype", "one of " + ", ".join(DTYPE_BYTES),
                self.dtype)
        self.tables.check(f"{at}.tables")
        self.curves.check(f"{at}.curves")
        for name in ("mape", "mape_by_op"):
            for key, value in getattr(self, name).items():
                require(value >= 0, f"{at}.{name}.{key}", "a fraction >= 0", value)
        require(0 < self.holdout_fraction < 1, f"{at}.holdout_fraction", "a fraction in (0, 1)",
                self.holdout_fraction)


def table_stamps(yaml_path: Path, data: object) -> tuple[int, ...]:
    """Modification times of the tables a raw profile mapping names (-1: missing), so a cache
    keyed on the YAML's mtime also rereads a profile whose tables were rewritten."""
    try:
        named = sorted((str(k), v) for k, v in data["calibration"]["tables"].items())
    except (KeyError, TypeError, AttributeError):
        return ()
    stamps = []
    for _, rel in named:
        if isinstance(rel, str):
            path = Path(rel) if Path(rel).is_absolute() else Path(yaml_path).parent / rel
            stamps.append(path.stat().st_mtime_ns if path.is_file() else -1)
    return tuple(stamps)


# -- the profile's ``measured:`` section -----------------------------------------------------------
@dataclass(frozen=True)
class MeasuredEntrySection:
    """One imported table set: a model at a dtype and TP degree."""

    model: str                        # Hugging Face name, e.g. meta-llama/Llama-3.1-8B
    tp: int
    dir: str                          # folder of the CSV tables, relative to the profile YAML
    dtype: str = "bf16"
    layers: tuple[str, ...] = ()      # dense layers present
    rows: dict[str, int] = field(default_factory=dict)
    holdout_mape: dict[str, float] = field(default_factory=dict)   # held-out interpolation error
    notes: tuple[str, ...] = ()

    def check(self, at: str) -> None:
        require(self.tp >= 1, f"{at}.tp", "an integer >= 1", self.tp)
        require(self.dtype in DTYPE_BYTES, f"{at}.dtype", "one of " + ", ".join(DTYPE_BYTES),
                self.dtype)


@dataclass(frozen=True)
class MeasuredSection:
    """``measured:``: vLLM layer tables timed on this GPU, per model and TP degree."""

    source: str = ""                  # where they came from (the importer writes it)
    format: str = ""                  # the layout they were imported from
    gpu: str = ""
    vllm_version: str = ""
    entries: tuple[MeasuredEntrySection, ...] = ()

    def check(self, at: str) -> None:
        for i, entry in enumerate(self.entries):
            entry.check(f"{at}.entries[{i}]")


def measured_stamps(yaml_path: Path, data: object) -> tuple[int, ...]:
    """Modification times of the measured tables a raw profile names (-1: missing)."""
    try:
        entries = data["measured"]["entries"]
        dirs = [e["dir"] for e in entries]
    except (KeyError, TypeError):
        return ()
    stamps = []
    for rel in dirs:
        if not isinstance(rel, str):
            continue
        where = Path(rel) if Path(rel).is_absolute() else Path(yaml_path).parent / rel
        for kind in MEASURED_TABLES:
            path = where / f"{kind}.csv"
            stamps.append(path.stat().st_mtime_ns if path.is_file() else -1)
    return tuple(stamps)
