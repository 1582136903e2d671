"""Learned default efficiency curves: what a GPU known only by its datasheet runs at.

A profile without measurements used to cost every kernel at one fixed fraction of its datasheet
peaks (``efficiency: {compute: 0.70, memory: 0.85, kernel_launch_us: 2}``). Measured kernel times
of several GPUs (Vidur's A100 and A40 tables, LLMServingSim's RTX 4090, H100 and A6000 tables;
``benchmarks/learn_efficiency.py`` reads them) show how far below the datasheet each op kind
runs, and how that grows with size. One curve per op kind, in the form of
:mod:`sim.calibration.fit` (costed by :func:`sim.cost.roofline.op_seconds`),

    time = max((flops + half_flops) / (peak * compute_fraction),
               (bytes + half_bytes) / (bandwidth * memory_fraction)),

is fitted to all GPUs at once, each row against its own GPU's datasheet ``peak`` and
``bandwidth``: the fractions and half-sizes are then what transfers to a GPU known only by
those two numbers. ``sim/hardware/learned_efficiency.yaml`` holds the result; a datasheet
profile (``efficiency: {model: learned}``, the default) carries it as a calibration without
tables (:func:`sim.hardware.calibration.learned.learned_calibration`), which the predictor costs
on the curves alone.

The fit (:func:`fit_kind`) is :func:`sim.calibration.fit.fit_curve`'s, generalised to rows of
several devices: the compute line is a line in ``flops`` of ``time * peak`` (of ``time *
bandwidth`` for the memory line), which is the same relative error; rows are weighted so that
every GPU counts equally, whatever its number of rows, and the error minimised is the absolute
one (a median-like fit, robust to one GPU that runs far from its datasheet).

:func:`leave_one_gpu_out` scores how well curves learned from the other GPUs predict each GPU,
next to the fixed-efficiency roofline on the same rows; :func:`selected_kinds` keeps a group
of curves (GEMM, elementwise, prefill or decode attention) only where it wins there. A group
it leaves out is not in the YAML's ``curves:``, and every profile costs it on the fixed
roofline (``compute``, ``memory``, ``kernel_launch_us``), as the predictor does for a kind
without a curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.calibration.fit import alternate_fit
from sim.cost.roofline import Rates, is_compute_bound, op_seconds
from sim.cost.table_costs import row_costs
from sim.hardware.calibration.curves import KindCurve
from sim.hardware.calibration.curves import curves_yaml as section_yaml
from sim.hardware.calibration.op_kinds import ATTN_DECODE, ATTN_PREFILL, ELEMENTWISE, GEMM

# Op kinds of a measurement: "gemm", "attn_prefill", "attn_decode", "elementwise:<op>" (op of
# sim.hardware.calibration.tables.ELEMENTWISE_OPS). The pooled "elementwise" curve is fitted on
# every elementwise row.
REPORT_KINDS = (GEMM, "elementwise:rmsnorm", "elementwise:rotary", "elementwise:silu_mul",
                "elementwise:add", "elementwise:embedding", ATTN_PREFILL, ATTN_DECODE)
COLUMNS = ("gpu", "kind", "flops", "bytes", "time_s", "peak_flops", "bandwidth")
# The roofline a datasheet profile used before (sim.hardware.device.Efficiency's defaults).
FIXED = {"compute": 0.70, "memory": 0.85, "kernel_launch_s": 2e-6}


def measurements(gpu: str, kind, flops, nbytes, time_s, peak_flops: float,
                 bandwidth: float) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` for one GPU (``kind`` a string or one per row)."""
    t = np.asarray(time_s, dtype=float)
    frame = pd.DataFrame({"gpu": gpu, "kind": kind, "flops": np.asarray(flops, dtype=float),
                          "bytes": np.asarray(nbytes, dtype=float), "time_s": t,
                          "peak_flops": float(peak_flops), "bandwidth": float(bandwidth)},
                         index=pd.RangeIndex(len(t)))
    return frame[list(COLUMNS)]


def table_measurements(gpu: str, table_kind: str, frame: pd.DataFrame, peak_flops: float,
                       bandwidth: float, dtype_bytes: int = 2) -> pd.DataFrame:
    """A table of :mod:`sim.hardware.calibration.tables` (``gemm``, ``elementwise`` or
    ``attention`` rows, not normalised) as measurements, FLOPs and bytes by the cost model's
    formulas."""
    flops, nbytes = row_costs(table_kind, frame, dtype_bytes)
    if table_kind == "elementwise":
        kind = ELEMENTWISE + ":" + frame["op"].astype(str).to_numpy(dtype=object)
    elif table_kind == "attention":
        kind = frame["op"].astype(str).to_numpy(dtype=object)
    else:
        kind = table_kind
    return measurements(gpu, kind, flops, nbytes, frame["time_s"].to_numpy(), peak_flops,
                        bandwidth)


# -- fitting ----------------------------------------------------------------------------------
def _fit_line_l2(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float] | None:
    """``(slope, intercept)`` >= 0 minimising the weighted squared relative error of ``slope*x +
    intercept`` against ``y`` (``fit._fit_line`` with weights)."""
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    sw = np.sqrt(w)
    a_col, b_col = x / y, 1.0 / y
    A = np.column_stack([a_col * sw, b_col * sw])
    (a, b), *_ = np.linalg.lstsq(A, sw, rcond=None)
    if b < 0:                      # a negative fixed cost is noise: refit through 0
        b = 0.0
        a = float((w * a_col).sum() / (w @ (a_col * a_col)))
    if not a > 0:
        return None
    return float(a), float(b)


def _fit_line(x: np.ndarray, y: np.ndarray, w: np.ndarray,
              rounds: int = 50) -> tuple[float, float] | None:
    """As :func:`_fit_line_l2`, minimising the weighted mean ABSOLUTE relative error
    (iteratively reweighted least squares). GPUs differ systematically (an RTX 4090 runs its
    GEMMs at ~95% of its datasheet peak, an A6000 at ~65%): the median-like fit follows the
    typical GPU instead of being pulled toward the outlying one, which is what carries over to
    a GPU not in the data (it wins leave-one-GPU-out for GEMMs; the squared error does not)."""
    line = _fit_line_l2(x, y, w)
    for _ in range(rounds):
        if line is None:
            return None
        a, b = line
        err = np.abs((a * x + b) / y - 1.0)
        nxt = _fit_line_l2(x, y, w / np.maximum(err, 1e-4))
        if nxt is None or (abs(nxt[0] - a) <= 1e-9 * a and abs(nxt[1] - b) <= 1e-9 * max(b, 1.0)):
            return nxt or line
        line = nxt
    return line


def gpu_weights(gpus: np.ndarray) -> np.ndarray:
    """Row weights that give every GPU the same total (1 / its number of rows)."""
    names, inverse, counts = np.unique(gpus, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def fit_kind(frame: pd.DataFrame, start_compute: float = FIXED["compute"],
             start_memory: float = FIXED["memory"], max_rounds: int = 30) -> KindCurve:
    """One curve for the rows of ``frame`` (any mix of GPUs; :data:`COLUMNS`).

    As :func:`sim.calibration.fit.fit_curve`: which line binds each row is decided by
    alternating (assign, fit both lines, reassign); a line with fewer than two distinct sizes is
    the peak with no fixed cost (never binds); a fraction above 1 is clamped to 1 keeping the
    fitted fixed cost, which is ``half / (peak * fraction)`` on each GPU."""
    f, b, t = (frame[c].to_numpy(dtype=float) for c in ("flops", "bytes", "time_s"))
    peak, bw = frame["peak_flops"].to_numpy(dtype=float), frame["bandwidth"].to_numpy(dtype=float)
    w = gpu_weights(frame["gpu"].to_numpy())
    # time * peak = (flops + half) / fraction: a line in flops, one for every GPU
    yc, ym = t * peak, t * bw

    def fit_lines(sel: np.ndarray):
        comp = _fit_line(f[sel], yc[sel], w[sel])
        mem = _fit_line(b[~sel], ym[~sel], w[~sel])
        a_c, h_c = comp if comp else (1.0, 0.0)
        a_m, h_m = mem if mem else (1.0, 0.0)
        fc, fm = min(1.0 / a_c, 1.0), min(1.0 / a_m, 1.0)
        # intercept = half / fraction (FLOP or byte equivalents): kept whatever the clamp did
        return (a_c * f + h_c) / peak, (a_m * b + h_m) / bw, KindCurve(fc, h_c * fc, fm, h_m * fm)

    def error(pred: np.ndarray) -> float:
        return float(np.sum(w * np.abs(pred / t - 1.0)) / w.sum())

    start = is_compute_bound(f, b, Rates.datasheet(peak, bw, start_compute, start_memory))
    return alternate_fit(start, fit_lines, error, max_rounds)


def fit_curves(frame: pd.DataFrame) -> dict[str, KindCurve]:
    """A curve per kind present in ``frame``, plus the pooled ``elementwise`` curve (used for an
    elementwise op without its own)."""
    curves = {}
    kinds = frame["kind"].to_numpy()
    for kind in sorted(set(kinds)):
        curves[kind] = fit_kind(frame[kinds == kind])
    is_elementwise = np.char.startswith(kinds.astype(str), ELEMENTWISE + ":")
    if is_elementwise.any():
        curves[ELEMENTWISE] = fit_kind(frame[is_elementwise])
    return curves


def curve_for(curves: dict[str, KindCurve], kind: str) -> KindCurve | None:
    """The curve the predictor uses for ``kind``: its own, else (elementwise) the pooled one."""
    if kind in curves:
        return curves[kind]
    return curves.get(ELEMENTWISE) if kind.startswith(ELEMENTWISE + ":") else None


def predict_s(frame: pd.DataFrame, curves: dict[str, KindCurve]) -> np.ndarray:
    """Each row's time on its kind's curve at its GPU's datasheet numbers (NaN: no curve)."""
    out = np.full(len(frame), np.nan)
    kinds = frame["kind"].to_numpy()
    for kind in set(kinds):
        curve = curve_for(curves, kind)
        if curve is None:
            continue
        sel = kinds == kind
        g = frame[sel]
        rates = Rates.of_curve(curve, g["peak_flops"].to_numpy(dtype=float),
                               g["bandwidth"].to_numpy(dtype=float))
        out[sel] = op_seconds(g["flops"].to_numpy(), g["bytes"].to_numpy(), rates)
    return out


def fixed_roofline_s(frame: pd.DataFrame, compute: float = FIXED["compute"],
                     memory: float = FIXED["memory"],
                     launch_s: float = FIXED["kernel_launch_s"]) -> np.ndarray:
    """The fixed-efficiency roofline of each row (what a datasheet profile with ``efficiency:
    {model: fixed}`` costs it at)."""
    rates = Rates.datasheet(frame["peak_flops"].to_numpy(), frame["bandwidth"].to_numpy(),
                            compute, memory, launch_s)
    return op_seconds(frame["flops"].to_numpy(), frame["bytes"].to_numpy(), rates)


# -- leave one GPU out ------------------------------------------------------------------------
def _errors(pred: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    e = np.abs(pred / t - 1.0)
    return float(np.median(e)), float(np.mean(e))


def leave_one_gpu_out(frame: pd.DataFrame, kinds: tuple[str, ...] = REPORT_KINDS
                      ) -> pd.DataFrame:
    """For each GPU: curves fitted on the other GPUs' rows, scored on its rows, per kind.

    Columns ``gpu, kind, rows, learned_median, learned_mean, fixed_median, fixed_mean``
    (absolute relative errors as fractions). Each row is predicted as at run time: an
    elementwise op without a curve of its own (e.g. measured on this GPU only) by the pooled
    elementwise curve; a row no curve covers is left out. Besides ``kinds``, kind
    ``elementwise`` scores all elementwise rows together (the group :func:`selected_kinds`
    decides on)."""
    rows = []
    gpus = frame["gpu"].to_numpy()
    for gpu in sorted(set(gpus)):
        curves = fit_curves(frame[gpus != gpu])
        test = frame[gpus == gpu]
        pred, fixed = predict_s(test, curves), fixed_roofline_s(test)
        t, test_kinds = test["time_s"].to_numpy(), test["kind"].to_numpy().astype(str)
        groups = {k: test_kinds == k for k in kinds}
        groups[ELEMENTWISE] = np.char.startswith(test_kinds, ELEMENTWISE + ":")
        for kind, sel in groups.items():
            sel = sel & np.isfinite(pred)
            if not sel.any():
                continue
            lm, la = _errors(pred[sel], t[sel])
            fm, fa = _errors(fixed[sel], t[sel])
            rows.append({"gpu": gpu, "kind": kind, "rows": int(sel.sum()), "learned_median": lm,
                         "learned_mean": la, "fixed_median": fm, "fixed_mean": fa})
    return pd.DataFrame(rows, columns=["gpu", "kind", "rows", "learned_median", "learned_mean",
                                       "fixed_median", "fixed_mean"])


# The groups a profile's learned calibration takes or leaves as a whole: the predictor costs
# elementwise ops on curves only when the pooled elementwise curve is there (then every op on
# its own curve or the pooled one), so elementwise ops are chosen together.
SELECTION_GROUPS = (GEMM, ELEMENTWISE, ATTN_PREFILL, ATTN_DECODE)


def selected_kinds(logo: pd.DataFrame) -> dict[str, bool]:
    """Per group of :data:`SELECTION_GROUPS` measured on at least two GPUs: whether its
    learned curves predict held-out GPUs better than the fixed roofline, i.e. whether both the
    median and the mean over held-out GPUs of their median error are lower. A group that
    fails keeps the fixed roofline in every profile (its curves are not written to
    ``curves:``)."""
    out = {}
    for kind in SELECTION_GROUPS:
        g = logo[logo["kind"] == kind]
        if len(g) < 2:
            continue
        learned_err, fixed_err = g["learned_median"], g["fixed_median"]
        out[kind] = bool(learned_err.median() < fixed_err.median()
                         and learned_err.mean() < fixed_err.mean())
    return out


def used_curves(curves: dict[str, KindCurve], selected: dict[str, bool]) -> dict[str, KindCurve]:
    """The curves of the selected groups (an elementwise op's curve goes with ``elementwise``)."""
    return {k: c for k, c in curves.items() if selected.get(k.split(":", 1)[0], False)}


def markdown_table(logo: pd.DataFrame) -> str:
    """``leave_one_gpu_out``'s frame as a Markdown table (errors in %)."""
    lines = ["| held-out GPU | op kind | rows | learned median % | learned mean % "
             "| fixed median % | fixed mean % |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in logo.itertuples(index=False):
        lines.append(f"| {r.gpu} | {r.kind} | {r.rows} | {100 * r.learned_median:.1f} | "
                     f"{100 * r.learned_mean:.1f} | {100 * r.fixed_median:.1f} | "
                     f"{100 * r.fixed_mean:.1f} |")
    return "\n".join(lines)


# -- the curves file ---------------------------------------------------------------------------
def curves_yaml(curves: dict[str, KindCurve]) -> dict:
    """``curves`` as a ``curves:`` mapping, kinds in sorted order (a stable file)."""
    return section_yaml(dict(sorted(curves.items())))
