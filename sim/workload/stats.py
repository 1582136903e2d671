"""Statistics of a trace (``llmsim trace stats``): counts, rates, length percentiles, prefix sharing.

Rates: the mean is requests over the span from first to last arrival; the peak is the most
requests in one minute, counting minutes from the first arrival. A trace without timestamps
(ShareGPT) has null duration and rates.

``prefix_sharing_ratio`` is the fraction of prompt blocks (chunks of ``prefix_block_tokens``
tokens, ``ceil(prompt_tokens / prefix_block_tokens)`` per request) whose content was seen in an
earlier request: the hit rate of an infinite prefix cache. A block's content is its id *and*
everything before it (the KV cache chains ids the same way), so it counts as seen only when an
earlier request had the same ids up to and including it. Blocks without ids count as unseen; a
trace without prefix ids has ratio 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.workload.columns import IdLists, TraceColumns
from sim.workload.fit import fit_arrivals

PERCENTILES = (50, 90, 99)


def _lengths_summary(values: np.ndarray) -> dict:
    out = {"mean": float(values.mean()), "min": int(values.min())}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(values, p))
    out["max"] = int(values.max())
    return out


def rate_per_minute(arrival_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(minutes since the first arrival that saw requests, requests in each): sparse, so a trace
    spanning years costs its rows, not one counter per minute."""
    if len(arrival_s) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    minutes = ((arrival_s - arrival_s[0]) // 60.0).astype(np.int64)
    return np.unique(minutes, return_counts=True)


def seen_blocks(ids: IdLists) -> int:
    """Blocks (ids at a position) whose chain of ids up to them appeared in an earlier row.

    Level by level: at position j every row that reaches it gets a compact key for (its key at
    j - 1, its id at j); all but the first row with a key have seen it before. Vectorised per
    level; the levels are as many as the longest row.
    """
    lengths = ids.lengths
    if len(ids.values) == 0:
        return 0
    _, token = np.unique(ids.values, return_inverse=True)    # ids made compact: 0..m-1
    m = int(token.max()) + 1
    starts = ids.offsets[:-1]
    active = np.flatnonzero(lengths > 0)
    key = np.zeros(len(active), dtype=np.int64)
    seen = 0
    j = 0
    while len(active):
        combined = key * m + token[starts[active] + j]
        unique, key = np.unique(combined, return_inverse=True)
        seen += len(active) - len(unique)
        j += 1
        keep = lengths[active] > j
        active, key = active[keep], key[keep]
    return seen


def prefix_sharing_ratio(columns: TraceColumns, block_tokens: int) -> float:
    blocks = -(-columns.prompt_tokens // block_tokens)
    total = int(blocks.sum())
    if columns.prefix_hashes is None or total == 0:
        return 0.0
    return seen_blocks(columns.prefix_hashes.truncate(blocks)) / total


def trace_stats(columns: TraceColumns, block_tokens: int | None = None) -> dict:
    """The numbers ``llmsim trace stats`` prints (JSON-ready)."""
    a = columns.arrival_s
    block = block_tokens or columns.prefix_block_tokens or 16
    timed = columns.has_timestamps      # else: no duration or rates (ShareGPT)
    duration = float(a[-1] - a[0]) if len(a) and timed else None
    _, per_minute = rate_per_minute(a)
    fit = fit_arrivals(a) if timed else None
    return {
        "requests": len(columns),
        "duration_s": duration,
        "mean_rate_rps": (len(a) / duration) if duration else None,
        "mean_rate_per_min": (len(a) / duration * 60.0) if duration else None,
        "peak_rate_per_min": int(per_minute.max()) if len(per_minute) and timed else None,
        "prompt_tokens": _lengths_summary(columns.prompt_tokens),
        "output_tokens": _lengths_summary(columns.output_tokens),
        "total_prompt_tokens": int(columns.prompt_tokens.sum()),
        "total_output_tokens": int(columns.output_tokens.sum()),
        "has_timestamps": columns.has_timestamps,
        "has_prefix_hashes": columns.prefix_hashes is not None,
        "prefix_block_tokens": block,
        "prefix_sharing_ratio": prefix_sharing_ratio(columns, block),
        "sessions": (int(len(np.unique(columns.session[columns.session >= 0])))
                     if columns.session is not None else 0),
        "gap_cv": fit.cv if fit is not None and fit.kind == "gamma" else None,
    }


def plot_stats(columns: TraceColumns, out: Path, title: str = "") -> None:
    """Rate over time (requests per minute) and histograms of prompt and output lengths."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4))      # no pyplot: no global backend switch
    rate_ax, prompt_ax, output_ax = fig.subplots(1, 3)
    if columns.has_timestamps:
        minutes, per_minute = rate_per_minute(columns.arrival_s)
        if len(minutes) and minutes[-1] < 1_000_000:    # dense: minutes without requests at 0
            dense = np.zeros(minutes[-1] + 1, dtype=np.int64)
            dense[minutes] = per_minute
            minutes, per_minute = np.arange(len(dense)), dense
        rate_ax.step(minutes, per_minute, where="post")
        rate_ax.set_xlabel("minute since first arrival")
        rate_ax.set_ylabel("requests per minute")
    else:
        rate_ax.text(0.5, 0.5, "no timestamps", ha="center", va="center")
    rate_ax.set_title("arrival rate")
    for ax, values, name in ((prompt_ax, columns.prompt_tokens, "prompt tokens"),
                             (output_ax, columns.output_tokens, "output tokens")):
        lo, hi = int(values.min()), int(values.max())
        if hi > 100 * lo:       # long-tailed: log-spaced bins on a log axis
            ax.hist(values, bins=np.geomspace(lo, hi + 1, 60))
            ax.set_xscale("log")
        else:
            ax.hist(values, bins=min(100, max(10, int(np.sqrt(len(values))))))
        ax.set_xlabel(name)
        ax.set_ylabel("requests")
        ax.set_title(f"{name}: mean {values.mean():.0f}, p99 {np.percentile(values, 99):.0f}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
