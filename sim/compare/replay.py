"""The replay of a real run: its requests as a generic trace, its engine as a scenario.

The scenario is built as the mapping a user would write in YAML, so ``--set`` overrides it the
way it overrides any scenario, and ``Scenario.from_dict`` validates every field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.compare.runs import RealRun
from sim.workload.columns import TraceColumns
from sim.workload.formats.generic import write_generic

TRACE_NAME = "trace.csv"


def write_trace(run: RealRun, out_dir: Path) -> Path:
    """``out_dir/trace.csv``: arrival_s, prompt_tokens, output_tokens of the run's requests, in
    arrival order (request ``i`` of the simulation is row ``i`` of ``run.requests``)."""
    frame = run.requests
    path = Path(out_dir) / TRACE_NAME
    write_generic(TraceColumns(arrival_s=frame["arrival_s"].to_numpy(dtype=np.float64),
                               prompt_tokens=frame["prompt_tokens"].to_numpy(dtype=np.int64),
                               output_tokens=frame["output_tokens"].to_numpy(dtype=np.int64)),
                  path)
    return path


def scenario_data(run: RealRun, hardware: str, model: str, trace_path: Path) -> dict:
    """The scenario mapping that replays ``run`` on ``hardware``: the run's engine settings, its
    requests from ``trace_path``, llmsim's defaults for everything the run does not say."""
    settings = run.settings
    workload: dict = {"trace": {"path": str(trace_path), "format": "generic"}}
    if run.arrivals is not None:
        workload["arrivals"] = dict(run.arrivals)
    scheduler = {"name": "fcfs", "chunked_prefill": True, **settings.get("scheduler", {})}
    return {
        "name": f"compare-{run.name}",
        "description": f"replay of the real run {run.path} ({run.kind})",
        "seed": run.seed,
        "model": model,
        "hardware": hardware,
        "cluster": dict(settings.get("cluster", {})),
        "scheduler": scheduler,
        "engine": dict(settings.get("engine", {})),
        "workload": workload,
    }
