"""One simulation as a unit of work: a picklable task, its key, and the flat row it produces.

Sweeps and plans both reduce to "run these scenarios, keep one row each". A task carries the
scenario as the raw mapping (after overrides), so a worker process or a Ray node rebuilds it with
``Scenario.from_dict`` and nothing but plain data crosses the wire. The key is a hash of the
*resolved* scenario (every default filled in): two spellings of the same run share a key, and a
changed base file changes every key, so resuming never mixes runs of different scenarios.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.scenario import Scenario

# Columns of a row that come first, in this order; the rest follow sorted by name, so that the
# file does not depend on the order in which runs finished.
LEAD_COLUMNS = ("run", "key")
# Varies from run to run of the same scenario: excluded when comparing results.
VOLATILE_COLUMNS = ("wall_time_s",)


def run_key(scenario: Scenario) -> str:
    """sha256 of a stable JSON dump of the resolved scenario (first 16 hex digits)."""
    text = json.dumps(scenario.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunTask:
    index: int                       # position in the sweep (the row order of results)
    key: str
    scenario: dict                   # raw scenario mapping, overrides applied
    params: dict = field(default_factory=dict)   # what defines this run: become columns
    source: str | None = None        # names the run in error messages
    base_dir: str | None = None      # for relative paths inside the scenario (traces, models)
    percentiles: tuple[tuple[str, float], ...] = ()   # extra (metric, q) columns, e.g. p95 TTFT
    save_dir: str | None = None      # keep the full Result (tables) here


def build_scenario(task: RunTask) -> Scenario:
    base = Path(task.base_dir) if task.base_dir else None
    return Scenario.from_dict(task.scenario, path=task.source, base_dir=base)


def execute(task: RunTask) -> dict:
    """Simulate one task and return its row (runs in a worker process or a Ray task)."""
    from sim.cluster import simulate     # the worker imports the engine once, on first use

    result = simulate(build_scenario(task))
    if task.save_dir:
        _save_atomically(result, Path(task.save_dir))
    row: dict[str, Any] = {"run": task.index, "key": task.key}
    row.update({k: _cell(v) for k, v in task.params.items()})
    row.update(flatten_summary(result.summary))
    completed = result.requests[result.requests["state"] == "completed"]
    for metric, q in task.percentiles:
        values = completed[metric].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        row[percentile_column(metric, q)] = float(np.percentile(values, q)) if values.size \
            else math.nan
    return row


def percentile_column(metric: str, q: float) -> str:
    return f"{metric}.p{q:g}"


def flatten_summary(summary: dict) -> dict:
    """Summary -> flat columns: ``ttft_s.p90``; dicts of names -> JSON text; plus cost rates."""
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict) and value and all(isinstance(v, (int, float))
                                                     for v in value.values()) \
                and key != "rejected_reasons":
            for sub, v in value.items():
                row[f"{key}.{sub}"] = float(v)
        else:
            row[key] = _cell(value)
    duration = summary.get("simulated_duration_s") or math.nan
    tokens = summary.get("throughput_tokens_per_s", math.nan) * duration
    cost = summary.get("cost_usd", math.nan)
    row["usd_per_hour"] = cost / duration * 3600.0 if duration > 0 else math.nan
    row["usd_per_million_output_tokens"] = cost / tokens * 1e6 if tokens > 0 else math.nan
    return row


def _cell(value: Any) -> Any:
    """A parquet-friendly scalar: numbers and strings as they are, anything else as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return json.dumps(value, sort_keys=True, default=str)


def _save_atomically(result, out: Path) -> None:
    """Write the run's tables to a temporary folder and rename it: a folder that exists is whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)           # mkdtemp's 0700 would outlive the rename
    result.save(tmp)
    if out.exists():       # a run killed after the rename but before its row: same content
        shutil.rmtree(out)
    os.replace(tmp, out)
