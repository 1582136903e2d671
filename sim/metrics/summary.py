"""Summary metrics of a run, with vLLM benchmark definitions (see DESIGN.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERCENTILES = (50, 90, 99)


def distribution(values: pd.Series | np.ndarray) -> dict[str, float]:
    """``{mean, p50, p90, p99}`` of the finite values (NaN when there are none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": math.nan, **{f"p{p}": math.nan for p in PERCENTILES}}
    pct = np.percentile(arr, PERCENTILES)
    return {"mean": float(arr.mean()), **{f"p{p}": float(v) for p, v in zip(PERCENTILES, pct)}}


def slo_met(requests: pd.DataFrame, slo) -> np.ndarray:
    """Per request: completed and within every target of its class (TPOT only if it has one)."""
    ok = (requests["state"] == "completed").to_numpy().copy()
    if slo is None:
        return ok
    classes = requests["slo_class"].astype(object).to_numpy()
    for cls in np.unique(classes) if len(classes) else []:
        targets = slo.targets(cls)
        rows = classes == cls
        for name in ("ttft_s", "tpot_s", "e2e_s", "max_tpot_s"):
            limit = getattr(targets, name, None)
            if limit is None:
                continue
            values = requests[name].to_numpy()
            within = values <= limit
            if name in ("tpot_s", "max_tpot_s"):
                within |= np.isnan(values) & (requests["output_generated"].to_numpy() <= 1)
            ok[rows] &= within[rows]
    return ok


def goodput_tokens(requests: pd.DataFrame, met: np.ndarray, slo) -> int:
    """Tokens of the requests that met their targets: output tokens, or prompt + output when
    the scenario's ``slo.goodput_tokens`` says so."""
    counted = requests.loc[met, "output_tokens"].sum()
    if getattr(slo, "goodput_tokens", "output") == "prompt+output":
        counted += requests.loc[met, "prompt_tokens"].sum()
    return int(counted)


def overload_summary(requests: pd.DataFrame) -> dict:
    """Aborts and retries (sim/scheduling/overload.py): attempts made, attempts aborted by
    reason, requests that ended aborted, and the tokens aborted attempts computed in vain."""
    attempts = requests["attempts"].to_numpy()
    ended_aborted = requests["reject_reason"].str.startswith("aborted").fillna(False)
    # every attempt but a request's last was aborted; its last was, if it ended aborted
    aborted_attempts = int((attempts - 1).sum() + ended_aborted.sum())
    return {"attempts": int(attempts.sum()), "aborted_attempts": aborted_attempts,
            "requests_aborted": int(ended_aborted.sum()),
            "requests_retried": int((attempts > 1).sum()),
            "wasted_tokens": int(requests["wasted_tokens"].sum())}


def summarize(requests: pd.DataFrame, iterations: pd.DataFrame, *, slo, duration_s: float,
              wall_time_s: float, energy_j: float, cost_usd: float, preemptions: int,
              extra: dict | None = None) -> dict:
    completed = requests[requests["state"] == "completed"]
    rejected = int((requests["state"] == "rejected").sum())
    ended = len(completed) + rejected
    met = slo_met(requests, slo)
    output_tokens = int(completed["output_tokens"].sum())
    duration = duration_s if duration_s > 0 else math.nan
    summary = {
        "requests_total": int(len(requests)),
        "requests_completed": int(len(completed)),
        "requests_rejected": rejected,
        "requests_running": int(len(requests) - ended),
        "preemptions": int(preemptions),
        "ttft_s": distribution(completed["ttft_s"]),
        "tpot_s": distribution(completed["tpot_s"]),
        "e2e_s": distribution(completed["e2e_s"]),
        "queue_s": distribution(completed["queue_s"]),
        "max_tpot_s": distribution(completed["max_tpot_s"]),
        "throughput_tokens_per_s": output_tokens / duration,
        "throughput_requests_per_s": len(completed) / duration,
        "goodput_requests_per_s": int(met.sum()) / duration,
        "goodput_tokens_per_s": goodput_tokens(requests, met, slo) / duration,
        # evictions: preemption events, as % of completed requests (Past-Future's measure)
        "evict_pct": 100.0 * preemptions / len(completed) if len(completed) else math.nan,
        "evicted_requests": int((requests["preemptions"] > 0).sum()),
        "recomputed_tokens": int(requests["recomputed_tokens"].sum()),
        "slo_attainment": float(met.sum() / ended) if ended else math.nan,
        "simulated_duration_s": float(duration_s),
        "wall_time_s": float(wall_time_s),
        "energy_j": float(energy_j),
        "energy_j_per_output_token": float(energy_j / output_tokens) if output_tokens else math.nan,
        "cost_usd": float(cost_usd),
    }
    if len(iterations):
        weights = iterations["duration_s"].to_numpy()
        total = weights.sum()
        if total > 0:
            summary["batch_size_mean"] = float((iterations["num_seqs"] * weights).sum() / total)
    reasons = requests.loc[requests["state"] == "rejected", "reject_reason"].value_counts()
    summary["rejected_reasons"] = {str(k): int(v) for k, v in reasons.items()}
    if "abort_reason" in requests and (requests["abort_reason"] != "").any():
        summary.update(overload_summary(requests))      # only runs where something was aborted
    if extra:
        summary.update(extra)
    return summary
