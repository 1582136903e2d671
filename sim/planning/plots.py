"""Figures for reports: each function takes plain tables and returns a matplotlib Figure.

Readable defaults: one idea per figure, axes labelled with units, a legend when there is more than
one line, at most ``MAX_LINES`` lines (the rest are left out, and the title says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import rcParams
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

MAX_LINES = 12
_LATENCIES = (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "E2E latency (s)"))


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, layout=None, **kwargs):
    """``pyplot.subplots`` without pyplot: a Figure of its own (no global backend switch, no
    figure manager to close), saved with ``savefig`` or shown by Jupyter as it is."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _style(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)


def _legend(ax, n: int) -> None:
    if n > 1:
        ax.legend(fontsize=8, loc="best")


def _figure_legend(fig, n: int) -> None:
    """Many labels: one legend under the whole figure, so that no plot is squeezed or hidden."""
    if n > 1:
        fig.legend(loc="outside lower center", ncols=min(2, n), fontsize=7, frameon=False)


def _limited(items: Mapping) -> tuple[list, str]:
    keys = list(items)
    note = f" (first {MAX_LINES} of {len(keys)})" if len(keys) > MAX_LINES else ""
    return keys[:MAX_LINES], note


def latency_cdf(requests: Mapping[str, pd.DataFrame]) -> Figure:
    """CDFs of TTFT, TPOT and E2E over completed requests, one line per label."""
    labels, note = _limited(requests)
    fig, axes = subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for k, (ax, (col, name)) in enumerate(zip(axes, _LATENCIES)):
        for label in labels:
            df = requests[label]
            values = np.sort(df.loc[df["state"] == "completed", col].dropna().to_numpy())
            if values.size:
                ax.plot(values, np.arange(1, values.size + 1) / values.size,
                        label=str(label) if k == 0 else None)
        _style(ax, name, "fraction of requests", f"{name.split(' (')[0]} CDF")
        ax.set_ylim(0, 1.02)
        lows = [requests[lab][col].min() for lab in labels]
        if col != "tpot_s" and lows and min(lows) > 0:
            ax.set_xscale("log")        # queueing stretches the tail over decades
            # within one decade matplotlib labels minor ticks too, and they overlap
            ax.xaxis.set_minor_formatter(NullFormatter())
    _figure_legend(fig, len(labels))
    fig.suptitle("Latency CDFs (completed requests)" + note)
    return fig


def over_time(series: Mapping[str, pd.DataFrame], kv_blocks: Mapping[str, int]) -> Figure:
    """KV cache usage (%) and batch size over simulated time, per replica, per label."""
    labels, note = _limited(series)
    fig, (ax_kv, ax_bs) = subplots(2, 1, figsize=(12, 6), sharex=True, layout="constrained")
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(labels):
        it = series[label]
        color = colors[i % len(colors)]
        for r, (_, rows) in enumerate(it.groupby("replica", sort=True)):
            rows = rows.sort_values("start_s")
            t = rows["start_s"].to_numpy()
            kw = dict(color=color, lw=0.8, alpha=0.85, where="post")
            blocks = kv_blocks.get(label) or 1
            ax_kv.step(t, 100.0 * rows["kv_blocks_used"].to_numpy() / blocks,
                       label=str(label) if r == 0 else None, **kw)
            ax_bs.step(t, rows["num_seqs"].to_numpy(), **kw)
    _style(ax_kv, "", "KV cache used (%)", "KV cache usage over time (one line per replica)")
    _style(ax_bs, "simulated time (s)", "batch size (sequences)", "Batch size over time")
    ax_kv.set_ylim(0, 102)
    _figure_legend(fig, len(labels))
    if note:
        fig.suptitle(note.strip())
    return fig


def throughput_goodput_vs_rate(frame: pd.DataFrame, rate: str, group: str | None) -> Figure:
    """Output tokens/s and goodput (req/s meeting the SLO) against the offered rate."""
    fig, (ax_t, ax_g) = subplots(1, 2, figsize=(12, 4), layout="constrained")
    groups = [(None, frame)] if group is None else list(frame.groupby(group, sort=False))
    shown, note = _limited(dict(groups))
    for name, df in groups:
        if name not in shown:
            continue
        df = df.groupby(rate, sort=True).mean(numeric_only=True).reset_index()
        label = None if name is None else str(name)
        ax_t.plot(df[rate], df["throughput_tokens_per_s"], marker="o", label=label)
        ax_g.plot(df[rate], df["goodput_requests_per_s"], marker="o", label=label)
    lim = [0, float(frame[rate].max()) * 1.05]
    ax_g.plot(lim, lim, ls=":", color="grey", label="offered rate")
    _style(ax_t, "offered rate (requests/s)", "throughput (output tokens/s)",
           "Throughput vs rate" + note)
    _style(ax_g, "offered rate (requests/s)", "goodput (requests/s within SLO)",
           "Goodput vs rate" + note)
    _legend(ax_t, len(groups))
    _legend(ax_g, 2)
    return fig


def attainment_vs_rate(frame: pd.DataFrame, rate: str, group: str | None,
                       target: float | None = None) -> Figure:
    fig, ax = subplots(figsize=(7, 4), layout="constrained")
    groups = [(None, frame)] if group is None else list(frame.groupby(group, sort=False))
    for name, df in groups[:MAX_LINES]:
        df = df.groupby(rate, sort=True).mean(numeric_only=True).reset_index()
        ax.plot(df[rate], 100 * df["slo_attainment"], marker="o",
                label=None if name is None else str(name))
    if target is not None:
        ax.axhline(100 * target, ls="--", color="grey", label=f"target {target:.0%}")
    _style(ax, "offered rate (requests/s)", "SLO attainment (% of requests)",
           "SLO attainment vs rate")
    ax.set_ylim(0, 102)
    _legend(ax, len(groups) + (target is not None))
    return fig


def attainment_over_time(requests: pd.DataFrame, window_s: float | None = None,
                         met: np.ndarray | None = None) -> Figure:
    """SLO attainment of the requests arriving in each time window (a run's report)."""
    fig, ax = subplots(figsize=(10, 3.5), layout="constrained")
    ended = requests["state"].isin(["completed", "rejected"]).to_numpy()
    t = requests["arrival_s"].to_numpy()
    span = float(t.max() - t.min()) if len(t) else 0.0
    window = window_s or max(span / 40, 1e-3)
    bins = np.floor((t - (t.min() if len(t) else 0)) / window)
    frame = pd.DataFrame({"bin": bins[ended], "met": met[ended].astype(float)})
    agg = frame.groupby("bin")["met"].mean()
    ax.step(agg.index * window + (t.min() if len(t) else 0), 100 * agg.to_numpy(), where="post")
    _style(ax, "arrival time (s)", "SLO attainment (%)",
           f"SLO attainment of requests arriving in {window:.3g} s windows")
    ax.set_ylim(0, 102)
    return fig


def bars_with_ci(labels: Sequence[str], estimates: Sequence[Mapping], xlabel: str, title: str,
                 highlight: str | None = None, ax=None) -> Figure | None:
    """Horizontal bars of means with 95% CI whiskers (long configuration names stay readable
    on the y axis); ``highlight`` marks one label (the recommendation) in green."""
    own = ax is None
    if own:
        fig, ax = subplots(figsize=(8, _bars_height(len(labels))), layout="constrained")
    means = np.array([e.get("mean", math.nan) for e in estimates], dtype=float)
    lows = np.array([e.get("low", math.nan) for e in estimates], dtype=float)
    highs = np.array([e.get("high", math.nan) for e in estimates], dtype=float)
    err = np.clip(np.vstack([np.nan_to_num(means - lows), np.nan_to_num(highs - means)]), 0, None)
    colors = ["tab:green" if lab == highlight else "tab:blue" for lab in labels]
    y = np.arange(len(labels))
    ax.barh(y, np.nan_to_num(means), xerr=err, capsize=3, color=colors)
    ax.set_yticks(y, [str(lab) for lab in labels], fontsize=8)
    ax.invert_yaxis()            # first configuration on top, as in the tables
    _style(ax, xlabel, "", title)
    return fig if own else None


def _bars_height(n: int) -> float:
    return 1.2 + 0.32 * max(n, 3)


def _two_bar_panels(labels, left, right, highlight) -> Figure:
    fig, (a, b) = subplots(1, 2, figsize=(13, _bars_height(len(labels))), sharey=True,
                               layout="constrained")
    bars_with_ci(labels, left[0], left[1], left[2], highlight, ax=a)
    bars_with_ci(labels, right[0], right[1], right[2], highlight, ax=b)
    return fig


def cost_per_config(labels: Sequence[str], usd_per_hour: Sequence[Mapping],
                    usd_per_million: Sequence[Mapping], highlight: str | None = None) -> Figure:
    return _two_bar_panels(labels, (usd_per_hour, "cost ($/hour)", "Cost per hour"),
                           (usd_per_million, "cost ($ per million output tokens)",
                            "Cost per million output tokens"), highlight)


def pareto_front(points: pd.DataFrame, x: str, y: str, label: str, xlabel: str,
                 ylabel: str) -> Figure:
    """Scatter of configurations; the front (no other is both cheaper and faster) joined."""
    fig, ax = subplots(figsize=(8, 5), layout="constrained")
    pts = points.dropna(subset=[x, y])
    front = pareto_mask(pts[x].to_numpy(), pts[y].to_numpy())
    ax.scatter(pts.loc[~front, x], pts.loc[~front, y], color="tab:blue", alpha=0.6,
               label="dominated")
    on = pts[front].sort_values(x)
    ax.plot(on[x], on[y], color="tab:red", marker="o", label="Pareto front")
    # label dominated points too while they are few enough to stay readable
    for is_front, rows in ((False, pts[~front] if len(pts) <= 8 else pts[:0]), (True, on)):
        for _, row in rows.iterrows():
            ax.annotate(str(row[label]), (row[x], row[y]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points", color="black" if is_front else "grey")
    _style(ax, xlabel, ylabel, "Cost vs p90 latency: Pareto front")
    _legend(ax, 2)
    return fig


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True for points that no other point beats on both (lower is better on both axes)."""
    keep = np.ones(len(x), dtype=bool)
    for i in range(len(x)):
        dominated = (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        keep[i] = not dominated.any()
    return keep


def plan_recommendation(names: Sequence[str], rates: Sequence[Mapping],
                        replicas: Sequence[Mapping], recommended: str | None) -> Figure:
    return _two_bar_panels(names, (rates, "max rate per replica (requests/s)",
                                   "Max sustainable rate per replica (95% CI)"),
                           (replicas, "replicas", "Min replicas per seed: mean, 95% CI"),
                           recommended)
