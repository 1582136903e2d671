"""Measured vLLM layer tables: per-layer times of a real engine, and how to read between them.

A hardware profile's ``measured:`` section lists, per model, dtype and tensor-parallel degree, a
folder of CSV tables timed inside vLLM on a real GPU (imported by
:mod:`sim.calibration.llmservingsim`). Their layout is the project's own (the current
LLMServingSim layout, which the importer also converts older layouts into):

- ``dense.csv`` (``layer, tokens, time_us``): one decoder layer's token-wise modules for a batch
  of ``tokens`` tokens: ``layernorm`` (one call; a layer makes two), ``qkv_proj``,
  ``rotary_emb``, ``o_proj``, ``gate_up_proj``, ``act_fn``, ``down_proj``, optional ``qk_norm``;
  and, once per forward pass, ``embedding`` and ``final_layernorm``.
- ``attention.csv`` (``prefill_chunk, kv_prefill, n_decode, kv_decode, time_us``): one attention
  call of a mixed batch: a prefill chunk of ``prefill_chunk`` new tokens after ``kv_prefill``
  cached ones, plus ``n_decode`` decodes of ``kv_decode`` context tokens each.
- ``per_sequence.csv`` (``layer, sequences, time_us``): ``lm_head`` and ``sampler``, once per
  sequence that emits a token.
- ``moe.csv`` (``tokens, activated_experts, time_us``), MoE models: one MoE block.

:class:`LayerTables` answers "how long" for any size: piecewise linear in each size between
measurements (exact at them), linear extrapolation past the largest (these times grow linearly
with size there), the smallest measurement below the smallest size. Attention reads three
slices of its table apart, because vLLM runs them with different kernels and their times are not
additive (a prefill chunk in the batch slows decode attention several-fold): pure decode over
``(n_decode, kv_decode)``, pure prefill over ``(prefill_chunk, kv_prefill)``, and mixed over all
four, each a multilinear interpolation on the grid of measured values. Grid points that were not
measured (a profile may merge grids or skip corners) are filled from a least-squares fit of the
slice to the work it does (tokens, query-key pairs, keys read), so any set of points can be read.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.calibration.schema import MEASURED_TABLES as TABLE_COLUMNS
from sim.hardware.calibration.schema import REQUIRED_MEASURED as REQUIRED_TABLES
from sim.hardware.calibration.schema import MeasuredSection

# pandas is imported where tables are read and merged: the cost models import this module for
# every run, and only profiles with measured layers use it
if TYPE_CHECKING:
    import pandas as pd

PER_LAYER = ("layernorm", "qkv_proj", "rotary_emb", "o_proj", "qk_norm")
MLP_LAYERS = ("gate_up_proj", "act_fn", "down_proj")
ONCE = ("embedding", "final_layernorm")
PER_SEQUENCE = ("lm_head", "sampler")
DENSE_LAYERS = PER_LAYER + MLP_LAYERS + ONCE


def read_csv_table(path: Path, need: tuple[str, ...], shown: str | None = None) -> pd.DataFrame:
    """A CSV table with (at least) the columns ``need``, or a one-line error naming the file."""
    import pandas as pd

    shown = shown or str(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScenarioError(shown, None, f"a CSV table with columns {', '.join(need)}",
                            hint=f"cannot read it: {' '.join(str(exc).split())[:200]}") from None
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ScenarioError(shown, missing[0], f"columns {', '.join(need)}",
                            f"columns {', '.join(map(str, frame.columns))[:200]}")
    return frame


def read_table(kind: str, path: Path, shown: str | None = None) -> pd.DataFrame:
    """One table, checked: the columns its kind needs, numbers where numbers go, times > 0."""
    shown = shown or str(path)
    return check_table(kind, read_csv_table(path, TABLE_COLUMNS[kind], shown), shown)


def check_table(kind: str, frame: pd.DataFrame, shown: str) -> pd.DataFrame:
    import pandas as pd

    cols = TABLE_COLUMNS[kind]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ScenarioError(shown, missing[0], f"columns {', '.join(cols)}",
                            f"columns {', '.join(map(str, frame.columns))}")
    frame = frame[list(cols)].copy()
    if frame.empty:
        raise ScenarioError(shown, None, f"at least one row of {', '.join(cols)}", "no rows")
    for col in cols:
        if col == "layer":
            frame[col] = frame[col].astype(str)
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | (values <= 0 if col == "time_us" else
                               values < 0 if col != "alpha" else False)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ScenarioError(shown, f"line {row + 2}: {col}",
                                "a number > 0" if col == "time_us" else "a number >= 0",
                                frame[col].iloc[row])
        frame[col] = values.astype(float)
    return frame


# -- interpolation -------------------------------------------------------------------------------
class Curve:
    """Time by one size: piecewise linear between measurements, extrapolated linearly past the
    largest (never decreasing), the smallest measurement below the smallest size. Scalars only:
    the cost model memoises what it asks."""

    def __init__(self, x: np.ndarray, t: np.ndarray):
        import pandas as pd

        order = np.argsort(x)
        frame = pd.DataFrame({"x": x[order], "t": t[order]}).groupby("x", sort=True)["t"].median()
        self.x = [float(v) for v in frame.index]
        self.t = [float(v) for v in frame.to_numpy()]
        # past the largest size: the slope over its upper half (one segment of a fine grid
        # is mostly noise); proportional if measurements do not grow there
        x_end, t_end = self.x[-1], self.t[-1]
        j = int(np.argmin([abs(v - x_end / 2) for v in self.x[:-1]])) if len(self.x) > 1 else 0
        slope = (t_end - self.t[j]) / (x_end - self.x[j]) if len(self.x) > 1 else 0.0
        self._slope = slope if slope > 0 else (t_end / x_end if x_end > 0 else 0.0)

    def __call__(self, size: float) -> float:
        x, t = self.x, self.t
        if size <= x[0]:
            return t[0]
        if size >= x[-1]:
            return t[-1] + (size - x[-1]) * self._slope
        i = bisect_right(x, size) - 1
        w = (size - x[i]) / (x[i + 1] - x[i])
        return t[i] + w * (t[i + 1] - t[i])


class Grid:
    """Multilinear interpolation over a rectilinear grid of measured values (``axes``: the
    sorted distinct values per dimension). ``model`` is a fit of time to the work a point does
    (positive, vectorised over rows of points): cells with no measurement that lie between
    measured ones along an axis are interpolated along it, the rest take the model's estimate;
    past an axis's last value the time at the grid's edge is scaled by the model (as the kernel
    predictor scales its edge measurements by the fitted roofline), below its first value the
    first value is used."""

    def __init__(self, points: np.ndarray, times: np.ndarray, model):
        import pandas as pd

        self.model = model
        self.axes = [np.unique(points[:, d]) for d in range(points.shape[1])]
        shape = tuple(len(a) for a in self.axes)
        values = np.full(shape, np.nan)
        index = tuple(np.searchsorted(a, points[:, d]) for d, a in enumerate(self.axes))
        # several rows at one point (merged grids): their median
        frame = pd.DataFrame({"i": np.ravel_multi_index(index, shape), "t": times})
        med = frame.groupby("i")["t"].median()
        values.flat[med.index.to_numpy()] = med.to_numpy()
        self.measured_fraction = float(np.isfinite(values).mean())
        if not np.isfinite(values).all():
            values = _fill_between(values, self.axes)
        if not np.isfinite(values).all():
            mesh = np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1).reshape(-1, len(shape))
            missing = ~np.isfinite(values.reshape(-1))
            values.reshape(-1)[missing] = model(mesh[missing])
        self.values = values
        self._rows = values.tolist()        # nested lists: cheaper to index than the array
        self._axes = [[float(v) for v in a] for a in self.axes]

    def __call__(self, *point: float) -> float:
        edge = [min(x, axis[-1]) for x, axis in zip(point, self._axes)]
        if edge != list(point):       # past the grid: its edge, scaled by the work model
            inside = self._interpolate(edge)
            ratio = self.model(np.array([point, edge], dtype=float))
            return inside * float(ratio[0] / ratio[1])
        return self._interpolate(point)

    def _interpolate(self, point) -> float:
        # (the simulator's hot path for measured attention: Python floats and nested lists)
        lows, weights = [], []
        for x, axis in zip(point, self._axes):
            if len(axis) == 1:
                lows.append(0)
                weights.append(0.0)
                continue
            i = bisect_right(axis, x) - 1
            i = 0 if i < 0 else (len(axis) - 2 if i > len(axis) - 2 else i)
            w = (x - axis[i]) / (axis[i + 1] - axis[i])
            lows.append(i)
            weights.append(w if w > 0.0 else 0.0)
        if len(lows) == 2:
            (i, j), (u, v) = lows, weights
            rows = self._rows
            a, b = rows[i], rows[i + 1] if len(rows) > 1 else rows[i]
            j1 = j + 1 if len(a) > 1 else j
            return (1.0 - u) * ((1.0 - v) * a[j] + v * a[j1]) \
                + u * ((1.0 - v) * b[j] + v * b[j1])
        total = 0.0
        values = self._rows
        for corner in range(1 << len(lows)):
            factor, cell = 1.0, values
            for d, (i, w) in enumerate(zip(lows, weights)):
                if corner >> d & 1:
                    factor *= w
                    cell = cell[i + 1 if len(self._axes[d]) > 1 else i]
                else:
                    factor *= 1.0 - w
                    cell = cell[i]
            if factor != 0.0:
                total += factor * cell
        return total


def _fill_between(values: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """Unmeasured cells that lie between measured ones along some axis: the mean of the linear
    interpolations along each such axis (repeated while that fills more)."""
    values = values.copy()
    for _ in range(values.ndim):
        missing = ~np.isfinite(values)
        if not missing.any():
            break
        total, count = np.zeros_like(values), np.zeros(values.shape)
        for d, axis in enumerate(axes):
            if len(axis) < 2:
                continue
            moved = np.moveaxis(values, d, -1).reshape(-1, len(axis))
            est = np.full_like(moved, np.nan)
            for row, line in enumerate(moved):
                ok = np.isfinite(line)
                if ok.sum() >= 2:
                    inside = ~ok & (axis > axis[ok][0]) & (axis < axis[ok][-1])
                    est[row, inside] = np.interp(axis[inside], axis[ok], line[ok])
            est = np.moveaxis(est.reshape(np.moveaxis(values, d, -1).shape), -1, d)
            has = np.isfinite(est) & missing
            total[has] += est[has]
            count[has] += 1
        filled = count > 0
        if not filled.any():
            break
        values[filled] = total[filled] / count[filled]
    return values


def _work_features(kind: str, pts: np.ndarray) -> np.ndarray:
    """What an attention call's time is linear in: a constant, query tokens, query-key pairs
    (prefill), and keys read (decode)."""
    one = np.ones(len(pts))
    if kind == "decode":
        n, kv = pts[:, 0], pts[:, 1]
        return np.column_stack([one, n, n * kv])
    if kind == "prefill":
        c, kp = pts[:, 0], pts[:, 1]
        return np.column_stack([one, c, c * kp + c * c / 2])
    if kind == "moe":       # routed token-expert pairs, expert weights read
        tokens, experts = pts[:, 0], pts[:, 1]
        return np.column_stack([one, tokens, experts])
    c, kp, n, kv = pts.T
    return np.column_stack([one, c, c * kp + c * c / 2, n, n * kv])


def _work_model(kind: str, pts: np.ndarray, times: np.ndarray):
    """A least-squares fit of time to work (relative error, times > 0): for unmeasured cells and
    beyond the grid."""
    X = _work_features(kind, pts)
    coef, *_ = np.linalg.lstsq(X / times[:, None], np.ones(len(times)), rcond=None)
    floor = float(times.min())
    return lambda p: np.maximum(_work_features(kind, p) @ coef, floor)


def _grid(kind: str, frame: pd.DataFrame, cols: list[str]) -> Grid | None:
    if frame.empty:
        return None
    pts = frame[cols].to_numpy(dtype=float)
    times = frame["time_us"].to_numpy(dtype=float) * 1e-6
    return Grid(pts, times, _work_model(kind, pts, times))


# -- one model's tables ----------------------------------------------------------------------------
class LayerTables:
    """The measured tables of one model at one TP degree, read as times in seconds."""

    def __init__(self, frames: dict[str, pd.DataFrame]):
        self.frames = frames
        dense = frames["dense"]
        self.dense = {name: Curve(g["tokens"].to_numpy(float), g["time_us"].to_numpy(float) * 1e-6)
                      for name, g in dense.groupby("layer")}
        per_seq = frames["per_sequence"]
        self.per_sequence = {name: Curve(g["sequences"].to_numpy(float),
                                         g["time_us"].to_numpy(float) * 1e-6)
                             for name, g in per_seq.groupby("layer")}
        att = frames["attention"]
        pf = att[(att.n_decode == 0) & (att.prefill_chunk > 0)]
        dc = att[(att.prefill_chunk == 0) & (att.n_decode > 0)]
        mx = att[(att.prefill_chunk > 0) & (att.n_decode > 0)]
        self.prefill = _grid("prefill", pf, ["prefill_chunk", "kv_prefill"])
        self.decode = _grid("decode", dc, ["n_decode", "kv_decode"])
        self.mixed = _grid("mixed", mx, ["prefill_chunk", "kv_prefill", "n_decode", "kv_decode"])
        skew = frames.get("skew_alpha")
        self.skew = None if skew is None or skew.empty else SkewFit(skew)
        moe = frames.get("moe")
        self.moe = None if moe is None else _grid("moe", moe, ["tokens", "activated_experts"])

    @property
    def has_mlp(self) -> bool:
        return all(name in self.dense for name in MLP_LAYERS)

    def layer_s(self, name: str, tokens: float) -> float:
        curve = self.dense.get(name)
        return 0.0 if curve is None else curve(tokens)

    def per_sequence_s(self, name: str, sequences: float) -> float:
        curve = self.per_sequence.get(name)
        return 0.0 if curve is None or sequences <= 0 else curve(sequences)

    def attention_s(self, chunk: float, kv_prefill: float, n_decode: float,
                    kv_decode: float) -> float | None:
        """One attention call (one layer); ``None`` if the needed slice was not measured."""
        if chunk > 0 and n_decode > 0:
            if self.mixed is not None:
                return self.mixed(chunk, kv_prefill, n_decode, kv_decode)
            if self.prefill is None or self.decode is None:
                return None
            # no mixed measurements (older layouts): the two kernels one after the other
            return self.prefill(chunk, kv_prefill) + self.decode(n_decode, kv_decode)
        if chunk > 0:
            return None if self.prefill is None else self.prefill(chunk, kv_prefill)
        if n_decode > 0:
            return None if self.decode is None else self.decode(n_decode, kv_decode)
        return 0.0

    def moe_s(self, tokens: float, activated_experts: float) -> float | None:
        return None if self.moe is None else self.moe(tokens, activated_experts)

    def skewed_attention_s(self, chunk: float, kv_prefill: float, n_decode: float,
                           kv_decode: float, kv_longest: float) -> float | None:
        """One attention call whose decodes average ``kv_decode`` context tokens, the longest
        ``kv_longest``: the skew fit's interpolation between the times at the mean and at the
        longest context (the mean's alone without a fit, or with equal contexts)."""
        at_mean = self.attention_s(chunk, kv_prefill, n_decode, kv_decode)
        if self.skew is None or at_mean is None or n_decode < 2 or kv_longest <= kv_decode:
            return at_mean
        alpha = self.skew.alpha(chunk, n_decode, kv_longest, kv_prefill)
        if alpha == 0.0:
            return at_mean
        return at_mean + alpha * (self.attention_s(chunk, kv_prefill, n_decode, kv_longest)
                                  - at_mean)


class SkewFit:
    """The fitted ``alpha`` per bucket of (prefill chunk, decodes, longest context, cached
    prefill tokens), averaged over the share of long sequences (which a batch's summed and
    longest context do not tell) by the buckets' sample counts, kept in [0, 1] (it interpolates
    between two times)."""

    def __init__(self, frame: pd.DataFrame):
        weight = frame["n_samples"].clip(lower=1) if "n_samples" in frame else 1.0
        f = frame.assign(w=weight, aw=frame["alpha"] * weight)
        self.pcs = sorted(f["pc"].unique())
        self._by: list[dict] = []
        # buckets from the most specific key down to the prefill chunk alone
        for keys in (["pc", "n_max", "kv_big_max", "kp_max"], ["pc", "n_max", "kv_big_max"],
                     ["pc", "n_max"], ["pc"]):
            sums = f.groupby(keys)[["aw", "w"]].sum()
            alpha = (sums["aw"] / sums["w"]).clip(0.0, 1.0)
            self._by.append({k if isinstance(k, tuple) else (k,): float(v)
                             for k, v in alpha.items()})
        self.n_bounds = sorted(f["n_max"].unique())
        self.kv_bounds = sorted(f["kv_big_max"].unique())
        self.kp_bounds = sorted(f["kp_max"].unique())

    @staticmethod
    def _bucket(bounds: list[float], value: float) -> float:
        """The smallest upper bound at or above ``value`` (the largest past them all)."""
        for bound in bounds:
            if value <= bound:
                return bound
        return bounds[-1]

    def alpha(self, chunk: float, n_decode: float, kv_longest: float, kv_prefill: float) -> float:
        positive = [p for p in self.pcs if p > 0]
        if chunk <= 0:
            if 0 not in self.pcs:
                return 0.0              # no fit of pure decode batches
            pc = 0
        elif not positive:
            return 0.0                  # no fit of mixed batches
        else:                           # the nearest fitted chunk, on a log scale
            pc = min(positive, key=lambda p: abs(np.log(p / chunk)))
        key = (pc, self._bucket(self.n_bounds, n_decode),
               self._bucket(self.kv_bounds, kv_longest), self._bucket(self.kp_bounds, kv_prefill))
        for depth, table in zip((4, 3, 2, 1), self._by):
            hit = table.get(key[:depth])
            if hit is not None:
                return hit
        return 0.0


# -- loaded -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MeasuredLayers:
    """A profile's measured tables, loaded; compared and hashed by a digest of the contents."""

    section: MeasuredSection
    tables: tuple[LayerTables, ...]
    source_path: str
    digest: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasuredLayers) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def find(self, model_names: set[str], tp: int, dtype: str) -> LayerTables | None:
        """The tables of a model (any of its names, lower case) at ``tp`` and ``dtype``."""
        for entry, tables in zip(self.section.entries, self.tables):
            if entry.model.lower() in model_names and entry.tp == tp and entry.dtype == dtype:
                return tables
        return None

    def summary(self) -> list[dict]:
        """What ``llmsim hardware show`` prints per imported table set."""
        return [{"model": e.model, "dtype": e.dtype, "tp": e.tp, "dir": e.dir,
                 "rows": dict(e.rows), "holdout_mape": dict(e.holdout_mape),
                 "notes": list(e.notes)} for e in self.section.entries]


def load_measured(section: MeasuredSection, yaml_path: str, shown: str) -> MeasuredLayers:
    """Read every table set a profile's ``measured:`` section names (folders relative to it)."""
    import pandas as pd

    folder = Path(yaml_path).parent
    loaded, h = [], hashlib.sha256()
    for i, entry in enumerate(section.entries):
        where = Path(entry.dir) if Path(entry.dir).is_absolute() else folder / entry.dir
        if not where.is_dir():
            raise ScenarioError(shown, f"measured.entries[{i}].dir",
                                "a folder of measured tables (relative to the profile)", str(where))
        frames = {}
        for kind in TABLE_COLUMNS:
            path = where / f"{kind}.csv"
            if not path.is_file():
                if kind in REQUIRED_TABLES:
                    raise ScenarioError(shown, f"measured.entries[{i}].dir",
                                        f"a folder holding {kind}.csv", str(where))
                continue
            frames[kind] = read_table(kind, path)
            h.update(pd.util.hash_pandas_object(frames[kind], index=False).to_numpy().tobytes())
        loaded.append(LayerTables(frames))
    h.update(repr(section).encode())
    return MeasuredLayers(section, tuple(loaded), shown, h.hexdigest()[:16])
