"""Transformations of a trace's columns: vectorised functions of columns (and numbers, and an
rng) that return the transformed columns (the ones given may be updated in place). :func:`sim.workload.traces.load_trace` applies them in the
order the scenario reference documents."""

from __future__ import annotations

import numpy as np

from sim.workload.columns import IdLists, TraceColumns


def out_of_order(arrival_s: np.ndarray) -> int:
    """Rows that arrive before the row above them."""
    return int(np.count_nonzero(arrival_s[1:] < arrival_s[:-1])) if len(arrival_s) > 1 else 0


def sort_by_arrival(columns: TraceColumns) -> TraceColumns:
    """Stable: rows with equal arrival keep their file order."""
    if out_of_order(columns.arrival_s) == 0:
        return columns
    return columns.take(np.argsort(columns.arrival_s, kind="stable"))


def window(columns: TraceColumns, start_s: float | None, end_s: float | None) -> TraceColumns:
    """Rows with ``start_s <= arrival_s < end_s`` (sorted columns)."""
    lo = 0 if start_s is None else int(np.searchsorted(columns.arrival_s, start_s, "left"))
    hi = len(columns) if end_s is None else int(np.searchsorted(columns.arrival_s, end_s, "left"))
    if lo == 0 and hi == len(columns):
        return columns
    return columns.take(np.arange(lo, hi))


def head(columns: TraceColumns, limit: int | None) -> TraceColumns:
    if limit is None or limit >= len(columns):
        return columns
    return columns.take(np.arange(limit))


def sample(columns: TraceColumns, frac: float | None, rng: np.random.Generator) -> TraceColumns:
    """``round(frac * n)`` rows (at least one) chosen without replacement, order kept."""
    if frac is None or frac >= 1.0:
        return columns
    k = max(1, int(round(frac * len(columns))))
    return columns.take(np.sort(rng.choice(len(columns), size=k, replace=False)))


def shift_to_zero(columns: TraceColumns) -> TraceColumns:
    if len(columns) == 0 or columns.arrival_s[0] == 0:
        return columns
    columns.arrival_s = columns.arrival_s - columns.arrival_s[0]
    return columns


def rate_rps(arrival_s: np.ndarray) -> float:
    """Mean arrival rate: (n - 1) gaps over the span; inf if every request arrives at once."""
    span = float(arrival_s[-1] - arrival_s[0]) if len(arrival_s) else 0.0
    return (len(arrival_s) - 1) / span if span > 0 else float("inf")


def scale_gaps(columns: TraceColumns, time_scale: float = 1.0,
               target_rate_rps: float | None = None) -> TraceColumns:
    """Multiply every gap by ``time_scale``, or by what makes the mean rate ``target_rate_rps``.
    The first arrival stays put."""
    if target_rate_rps is not None:
        current = rate_rps(columns.arrival_s)
        if not np.isfinite(current):
            return columns        # nothing to stretch: one request, or all at the same time
        time_scale = current / target_rate_rps
    if time_scale == 1.0 or len(columns) == 0:
        return columns
    first = columns.arrival_s[0]
    columns.arrival_s = first + (columns.arrival_s - first) * time_scale
    return columns


def repeat(columns: TraceColumns, times: int) -> TraceColumns:
    """Tile the trace ``times`` times, each copy starting one mean gap after the previous ends.

    Copies are new requests: their prefix ids and sessions are renumbered (copy ``c`` uses ids
    ``c * m ... c * m + m - 1`` for the ``m`` distinct ids of the trace) so that a copy does not hit
    the cache of the one before it.
    """
    if times <= 1 or len(columns) == 0:
        return columns
    a = columns.arrival_s
    span = float(a[-1] - a[0])
    gap = span / (len(a) - 1) if len(a) > 1 and span > 0 else 1.0
    period = span + gap
    n = len(columns)
    copy = np.repeat(np.arange(times), n)
    out = columns.take(np.tile(np.arange(n), times))
    out.arrival_s = out.arrival_s + copy * period
    if columns.prefix_hashes is not None and len(columns.prefix_hashes.values):
        distinct, compact = np.unique(columns.prefix_hashes.values, return_inverse=True)
        per_id = np.repeat(np.arange(times, dtype=np.int64), len(compact))
        out.prefix_hashes = IdLists(out.prefix_hashes.offsets,
                                    np.tile(compact, times) + per_id * len(distinct))
    if columns.session is not None:
        width = int(columns.session.max()) + 1
        out.session = np.where(out.session >= 0, out.session + copy * width, -1)
    return out


def clip_to_context(columns: TraceColumns, max_model_len: int,
                    block_tokens: int) -> tuple[TraceColumns, int]:
    """Cut lengths so that prompt + output <= ``max_model_len``; returns the number of requests cut.

    The prompt keeps at most ``max_model_len - 1`` tokens (its beginning: prefix ids are cut to
    match, so shared prefixes stay shared), then the output gets what is left.
    """
    prompt = np.minimum(columns.prompt_tokens, max_model_len - 1)
    output = np.minimum(columns.output_tokens, max_model_len - prompt)
    clipped = int(np.count_nonzero((prompt != columns.prompt_tokens)
                                   | (output != columns.output_tokens)))
    if clipped:
        columns.prompt_tokens, columns.output_tokens = prompt, output
        if columns.prefix_hashes is not None:
            columns.prefix_hashes = columns.prefix_hashes.truncate(-(-prompt // block_tokens))
    return columns, clipped
