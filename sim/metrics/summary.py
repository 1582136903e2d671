"""Summary metrics of a run, with vLLM benchmark definitions (see DESIGN.md)."""

from __future__ import annotations

import math

import numpy as np

from sim.metrics.table import Columns

PERCENTILES = (50, 90, 99)


def distribution(values) -> dict[str, float]:
    """``{mean, p50, p90, p99}`` of the finite values (NaN when there are none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": math.nan, **{f"p{p}": math.nan for p in PERCENTILES}}
    pct = np.percentile(arr, PERCENTILES)
    return {"mean": float(arr.mean()), **{f"p{p}": float(v) for p, v in zip(PERCENTILES, pct)}}


def slo_met(requests: Columns, slo) -> np.ndarray:
    """Per request: completed and within every target of its class (TPOT only if it has one).
    ``requests``: a :class:`~sim.metrics.table.Columns` or a request DataFrame."""
    requests = _columns(requests)
    ok = requests.mask("state", "completed").copy()
    if slo is None:
        return ok
    codes, classes = requests.text("slo_class")
    for code in np.unique(codes) if len(codes) else []:
        targets = slo.targets(classes[code])
        rows = codes == code
        for name in ("ttft_s", "tpot_s", "e2e_s", "max_tpot_s"):
            limit = getattr(targets, name, None)
            if limit is None:
                continue
            values = requests.numeric(name)
            within = values <= limit
            if name in ("tpot_s", "max_tpot_s"):
                within |= np.isnan(values) & (requests.numeric("output_generated") <= 1)
            ok[rows] &= within[rows]
    return ok


def goodput_tokens(requests: Columns, met: np.ndarray, slo) -> int:
    """Tokens of the requests that met their targets: output tokens, or prompt + output when
    the scenario's ``slo.goodput_tokens`` says so."""
    counted = requests.numeric("output_tokens")[met].sum()
    if getattr(slo, "goodput_tokens", "output") == "prompt+output":
        counted += requests.numeric("prompt_tokens")[met].sum()
    return int(counted)


def overload_summary(requests: Columns) -> dict:
    """Aborts and retries (sim/scheduling/overload.py): attempts made, attempts aborted by
    reason, requests that ended aborted, and the tokens aborted attempts computed in vain."""
    attempts = requests.numeric("attempts")
    ended_aborted = requests.mask("reject_reason", lambda r: r.startswith("aborted"))
    # every attempt but a request's last was aborted; its last was, if it ended aborted
    aborted_attempts = int((attempts - 1).sum() + ended_aborted.sum())
    return {"attempts": int(attempts.sum()), "aborted_attempts": aborted_attempts,
            "requests_aborted": int(ended_aborted.sum()),
            "requests_retried": int((attempts > 1).sum()),
            "wasted_tokens": int(requests.numeric("wasted_tokens").sum())}


def summarize(requests: Columns, *, slo, duration_s: float, wall_time_s: float,
              energy_j: float, cost_usd: float, preemptions: int,
              batch_size_mean: float | None = None, extra: dict | None = None,
              met: np.ndarray | None = None) -> dict:
    """The run's summary from its request table (read a column at a time) and the
    time-weighted mean batch size over its iterations."""
    requests = _columns(requests)
    done = requests.mask("state", "completed")
    rejected_rows = requests.mask("state", "rejected")
    num_done, rejected = int(done.sum()), int(rejected_rows.sum())
    ended = num_done + rejected
    if met is None:         # (a caller that needed it already passes it)
        met = slo_met(requests, slo)
    output_tokens = int(requests.numeric("output_tokens")[done].sum())
    duration = duration_s if duration_s > 0 else math.nan
    summary = {
        "requests_total": len(requests),
        "requests_completed": num_done,
        "requests_rejected": rejected,
        "requests_running": len(requests) - ended,
        "preemptions": int(preemptions),
        **{name: distribution(requests.numeric(name)[done])
           for name in ("ttft_s", "tpot_s", "e2e_s", "queue_s", "max_tpot_s")},
        "throughput_tokens_per_s": output_tokens / duration,
        "throughput_requests_per_s": num_done / duration,
        "goodput_requests_per_s": int(met.sum()) / duration,
        "goodput_tokens_per_s": goodput_tokens(requests, met, slo) / duration,
        # evictions: preemption events, as % of completed requests (Past-Future's measure)
        "evict_pct": 100.0 * preemptions / num_done if num_done else math.nan,
        "evicted_requests": int((requests.numeric("preemptions") > 0).sum()),
        "recomputed_tokens": int(requests.numeric("recomputed_tokens").sum()),
        "slo_attainment": float(met.sum() / ended) if ended else math.nan,
        "simulated_duration_s": float(duration_s),
        "wall_time_s": float(wall_time_s),
        "energy_j": float(energy_j),
        "energy_j_per_output_token": float(energy_j / output_tokens) if output_tokens else math.nan,
        "cost_usd": float(cost_usd),
    }
    if batch_size_mean is not None:
        summary["batch_size_mean"] = batch_size_mean
    codes, reasons = requests.text("reject_reason")
    counts = np.bincount(codes[rejected_rows], minlength=len(reasons)) if rejected else []
    summary["rejected_reasons"] = {
        reasons[code]: int(counts[code])
        for code in sorted(np.flatnonzero(counts).tolist(), key=lambda c: (-counts[c], c))}
    if requests.mask("abort_reason", lambda r: r != "").any():
        summary.update(overload_summary(requests))      # only runs where something was aborted
    if extra:
        summary.update(extra)
    return summary


def _columns(requests) -> Columns:
    return requests if isinstance(requests, Columns) else Columns.from_frame(requests)
