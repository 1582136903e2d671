"""``llmsim run --trace-events FILE.json``: a run's iterations as Chrome / Perfetto trace events.

Open the file in https://ui.perfetto.dev or chrome://tracing. Each replica is a process; its
iterations are complete ("X") slices on one track, named by what they did (``prefill``,
``decode``, ``mixed``, or ``decode x N`` for a fast-forwarded run of N identical decode steps),
with the batch composition in ``args``; counters ("C") follow KV blocks in use, the waiting
queue and the batch size. Times are microseconds of simulated time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

_ARGS = ("num_iterations", "num_seqs", "prefill_tokens", "decode_tokens", "preempted", "waiting",
         "kv_blocks_used", "energy_j")


def _slice_name(prefill: int, decode: int, iterations: int) -> str:
    if iterations > 1:
        return f"decode x{iterations}"
    if prefill and decode:
        return "mixed"
    return "prefill" if prefill else "decode"


def chrome_trace(iterations: pd.DataFrame, name: str = "llmsim") -> dict:
    """The trace as a dict (``{"traceEvents": [...], ...}``)."""
    events: list[dict] = []
    for replica in sorted(iterations["replica"].unique().tolist()):
        events.append({"name": "process_name", "ph": "M", "pid": replica, "tid": 0,
                       "args": {"name": f"replica {replica}"}})
        events.append({"name": "thread_name", "ph": "M", "pid": replica, "tid": 0,
                       "args": {"name": "iterations"}})
    cols = {c: iterations[c].tolist() for c in ("replica", "start_s", "duration_s") + _ARGS
            if c in iterations.columns}
    for i in range(len(iterations)):
        pid = cols["replica"][i]
        ts = round(cols["start_s"][i] * 1e6, 3)
        args = {c: cols[c][i] for c in _ARGS if c in cols}
        events.append({"name": _slice_name(args.get("prefill_tokens", 0),
                                           args.get("decode_tokens", 0),
                                           args.get("num_iterations", 1)),
                       "cat": "iteration", "ph": "X", "ts": ts,
                       "dur": round(cols["duration_s"][i] * 1e6, 3), "pid": pid, "tid": 0,
                       "args": args})
        for counter, key, value in (("KV blocks used", "used", "kv_blocks_used"),
                                    ("waiting requests", "waiting", "waiting"),
                                    ("batch size", "seqs", "num_seqs")):
            if value in cols:
                events.append({"name": counter, "ph": "C", "ts": ts, "pid": pid,
                               "args": {key: cols[value][i]}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"source": "llmsim", "scenario": name}}


def write_trace_events(iterations: pd.DataFrame, path: str | Path, name: str = "llmsim") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(chrome_trace(iterations, name), fh, separators=(",", ":"))
    return path
