"""The comparison's figures: latency CDFs (real vs simulated) and output throughput over time."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from sim.planning.plots import latency_cdf, subplots


def cdf_figure(real: pd.DataFrame, sim: pd.DataFrame, title: str) -> Figure:
    """Three panels (TTFT, TPOT, E2E), the real and the simulated CDF in each: the planning
    report's figure, so that both read the same way."""
    real = real.assign(state="completed")       # failed real requests were left out on reading
    fig = latency_cdf({"real": real, "simulated": sim})
    fig.suptitle(f"{title}: latency CDFs, real vs simulated")
    return fig


def throughput_figure(series: pd.DataFrame, bin_s: float, title: str) -> Figure:
    """Output tokens/s per ``bin_s`` bin, real and simulated, against time since the first
    arrival."""
    fig, ax = subplots(figsize=(10, 3.8), layout="constrained")
    for column, label in (("real", "real"), ("sim", "simulated")):
        ax.step(series["t_s"], series[column], where="post", lw=1.0, label=label)
    ax.set_xlabel("time since the first arrival (s)")
    ax.set_ylabel("output tokens/s")
    ax.set_title(f"{title}: output throughput ({bin_s:g} s bins)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_ylim(bottom=0)
    return fig


def save_figure(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
