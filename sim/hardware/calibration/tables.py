"""Measured kernel timings as four long tables, one Parquet file each beside the profile YAML.

| table | columns | size axis (interpolated) | key (one curve per key) |
|---|---|---|---|
| ``gemm`` | ``m, k, n, time_s`` | ``m`` (tokens) | ``(k, n)`` per TP shard |
| ``elementwise`` | ``op, tokens, width, time_s`` | ``tokens`` | ``(op, width)`` |
| ``attention`` | ``op, batch, query_tokens, context_tokens, heads, kv_heads, head_dim,
  time_s`` | - | - |
| ``allreduce`` | ``devices, bytes, time_s`` | ``bytes`` | ``devices`` |

``time_s`` is the median of repeats of one kernel (seconds). ``elementwise`` ops: ``rmsnorm``
(width = hidden), ``silu_mul`` / ``gelu`` (width = MLP intermediate per shard), ``rotary``
(width = query + key width per shard), ``add`` (residual), ``embedding``, ``copy`` (device memory
copy of ``tokens x width`` elements). ``attention`` rows: ``attn_prefill`` (``batch``
sequences of ``query_tokens`` new tokens, ``context_tokens`` keys each, causal) and
``attn_decode`` (one query per sequence, ``context_tokens`` keys each); heads are per shard.
FLOPs and bytes of a row come from the cost model's own formulas
(:mod:`sim.cost.table_costs`), so a fitted efficiency means the same thing in a table and in a
simulation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.calibration.op_kinds import ATTN_DECODE, ATTN_PREFILL

if TYPE_CHECKING:
    import pandas as pd

SCHEMAS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "k", "n"),
    "elementwise": ("op", "tokens", "width"),
    "attention": ("op", "batch", "query_tokens", "context_tokens", "heads", "kv_heads", "head_dim"),
    "allreduce": ("devices", "bytes"),
}
ELEMENTWISE_OPS = ("rmsnorm", "silu_mul", "gelu", "rotary", "add", "embedding", "copy")
ATTENTION_OPS = (ATTN_PREFILL, ATTN_DECODE)
_OP_VALUES = {"elementwise": ELEMENTWISE_OPS, "attention": ATTENTION_OPS}


def empty(kind: str) -> pd.DataFrame:
    import pandas as pd

    cols = {c: pd.Series(dtype=object if c == "op" else "int64") for c in SCHEMAS[kind]}
    return pd.DataFrame({**cols, "time_s": pd.Series(dtype="float64")})


class Tables:
    """The four tables (a kind with no measurements is an empty frame).

    A kind given as None (what :meth:`of` makes of a missing or empty table) reads as an empty
    frame, made on first use: a calibration without tables, such as the learned curves every
    datasheet profile carries, then needs no pandas to simulate with.
    """

    def __init__(self, gemm: pd.DataFrame | None = None, elementwise: pd.DataFrame | None = None,
                 attention: pd.DataFrame | None = None, allreduce: pd.DataFrame | None = None):
        self._frames = {"gemm": gemm, "elementwise": elementwise, "attention": attention,
                        "allreduce": allreduce}

    @classmethod
    def of(cls, **frames: pd.DataFrame | None) -> "Tables":
        return cls(**{k: None if frames.get(k) is None or len(frames[k]) == 0
                      else normalise(k, frames[k]) for k in SCHEMAS})

    def get(self, kind: str) -> pd.DataFrame:
        frame = self._frames[kind]
        if frame is None:
            frame = self._frames[kind] = empty(kind)
        return frame

    gemm = property(lambda self: self.get("gemm"))
    elementwise = property(lambda self: self.get("elementwise"))
    attention = property(lambda self: self.get("attention"))
    allreduce = property(lambda self: self.get("allreduce"))

    def rows(self) -> dict[str, int]:
        return {k: 0 if f is None else len(f) for k, f in self._frames.items()}

    def select(self, masks: dict[str, np.ndarray]) -> "Tables":
        """The rows where ``masks[kind]`` is true (all rows of a kind without a mask)."""
        return Tables(**{k: self.get(k)[masks[k]].reset_index(drop=True) if k in masks
                         else self.get(k) for k in SCHEMAS})


def normalise(kind: str, frame: pd.DataFrame | None) -> pd.DataFrame:
    """Schema columns only, integer shapes, and one row per shape (the median of duplicates:
    e.g. two models with the same layer widths, or input and post-attention norms)."""
    if frame is None or len(frame) == 0:
        return empty(kind)
    keys = list(SCHEMAS[kind])
    out = frame[keys + ["time_s"]].copy()
    for col in keys:
        if col != "op":
            out[col] = out[col].astype("int64")
    out["time_s"] = out["time_s"].astype("float64")
    out = out.groupby(keys, as_index=False, sort=True)["time_s"].median()
    return out.reset_index(drop=True)


def validate(kind: str, frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Check a table read from ``path``; errors name the file and the column."""
    import pandas as pd

    missing = [c for c in (*SCHEMAS[kind], "time_s") if c not in frame.columns]
    if missing:
        raise ScenarioError(path, missing[0], f"a column of the {kind} table",
                            hint="missing; found " + ", ".join(map(str, frame.columns)))
    for col in SCHEMAS[kind]:
        values = frame[col]
        if col == "op":
            bad = ~values.isin(_OP_VALUES[kind])
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ScenarioError(path, col, "one of " + ", ".join(_OP_VALUES[kind]),
                                    plain(values.iloc[row]), hint=f"row {row}")
            continue
        if not pd.api.types.is_integer_dtype(values):
            raise ScenarioError(path, col, "integers", str(values.dtype))
        _require_rows(values.to_numpy() > 0, path, col, "integers > 0", values)
    times = frame["time_s"]
    if not pd.api.types.is_float_dtype(times) and not pd.api.types.is_integer_dtype(times):
        raise ScenarioError(path, "time_s", "seconds (numbers)", str(times.dtype))
    t = times.to_numpy(dtype=float)
    _require_rows(np.isfinite(t) & (t > 0), path, "time_s", "seconds > 0", times)
    return normalise(kind, frame)


def _require_rows(ok: np.ndarray, path: str, col: str, expected: str, values: pd.Series) -> None:
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise ScenarioError(path, col, expected, plain(values.iloc[row]), hint=f"row {row}")


def plain(value: object) -> object:
    """A numpy scalar as the Python value (messages show ``-4``, not ``np.int64(-4)``)."""
    return value.item() if isinstance(value, np.generic) else value


def read(kind: str, path: Path, shown: str) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:   # pyarrow raises several types for a damaged or foreign file
        raise ScenarioError(shown, None, None,
                            hint=f"cannot read the {kind} table as Parquet: {exc}") from None
    return validate(kind, frame, shown)


def write(tables: Tables, folder: Path) -> dict[str, Path]:
    """Write the non-empty tables as ``folder/<kind>.parquet``; returns kind -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind in SCHEMAS:
        frame = tables.get(kind)
        path = folder / f"{kind}.parquet"
        if len(frame):
            frame.to_parquet(path, index=False)
            written[kind] = path
        elif path.exists():
            path.unlink()     # a stale table from an earlier run would be read back
    return written


def digest(tables: Tables) -> str:
    import pandas as pd

    h = hashlib.sha256()
    for kind in SCHEMAS:
        h.update(kind.encode())
        h.update(pd.util.hash_pandas_object(tables.get(kind), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
