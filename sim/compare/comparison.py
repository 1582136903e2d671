"""``compare_run``: read a real run, replay it in llmsim, and put the two side by side."""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.compare.replay import scenario_data, write_trace
from sim.metrics.result import jsonable
from sim.compare.runs import REQUEST_COLUMNS, RealRun, RunWarning, load_run
from sim.compare.stats import comparison_rows, errors, side_stats, throughput_over_time
from sim.errors import ModelError, ScenarioError
from sim.metrics import Result
from sim.scenario import Scenario, apply_overrides
from sim.workload.traces import TraceWarning

Progress = Callable[[int, int], None]


@dataclass
class CompareResult:
    """A real run and its simulation: per-request tables, their statistics and the errors.

    ``real`` and ``sim`` have one row per request (REQUEST_COLUMNS: ``ttft_s``, ``tpot_s``,
    ``e2e_s``, ...); ``sim`` holds the requests the simulation completed. ``table`` has one row
    per (metric, stat) with ``real``, ``sim`` and ``error_pct`` = (sim - real) / real x 100.
    """

    run: RealRun
    hardware: str
    model: str
    scenario: Scenario
    simulation: Result
    real: pd.DataFrame
    sim: pd.DataFrame
    real_stats: dict
    sim_stats: dict
    error: dict
    table: pd.DataFrame
    throughput: pd.DataFrame          # t_s, real, sim: output tokens/s per bin
    bin_s: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The content of compare.json (NaN as null)."""
        return jsonable({
            "run": str(self.run.path), "kind": self.run.kind, "hardware": self.hardware,
            "model": self.model, "device_name": self.run.device_name,
            "requests": int(len(self.real)), "requests_simulated": int(len(self.sim)),
            "bin_s": self.bin_s, "real": self.real_stats, "sim": self.sim_stats,
            "error": self.error, "warnings": list(self.warnings)})

    def save(self, out_dir: str | Path) -> Path:
        """compare.json, the simulation's usual outputs, cdf.png, throughput.png and the
        throughput series (throughput.csv)."""
        from sim.compare.plots import cdf_figure, save_figure, throughput_figure

        out = self.simulation.save(out_dir)
        (out / "compare.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
        self.throughput.to_csv(out / "throughput.csv", index=False)
        title = self.run.name
        save_figure(cdf_figure(self.real, self.sim, title), out / "cdf.png")
        save_figure(throughput_figure(self.throughput, self.bin_s, title), out / "throughput.png")
        return out


def compare_run(run: str | Path, hardware: str, *, model: str | None = None,
                overrides: Sequence[str] = (), out: str | Path | None = None,
                bin_s: float = 1.0, progress: Progress | None = None) -> CompareResult:
    """Replay the real run at ``run`` (a vLLM run folder or benchmark result JSON) on
    ``hardware`` (a profile name or YAML path) and compare latencies and throughput.

    ``model`` replaces the run's own (needed when the run names a model llmsim does not know);
    ``overrides`` are ``--set`` items applied to the replay scenario; with ``out`` every output
    is written there (the replayed trace included), else the trace lives in a temporary folder.
    Warnings about what was left out or approximated are issued as :class:`RunWarning` and kept
    in the result's ``warnings``.
    """
    if not (isinstance(bin_s, (int, float)) and math.isfinite(bin_s) and bin_s > 0):
        raise ScenarioError(None, "--bin-s", "a number > 0 (seconds)", bin_s)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TraceWarning)
            outcome = _compare(Path(run), hardware, model, list(overrides), out, float(bin_s),
                               progress)
    finally:            # pass them on, now that they are recorded (also before an error)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    outcome.warnings = [str(w.message) for w in caught if issubclass(w.category, TraceWarning)]
    if out is not None:
        outcome.save(out)
    return outcome


def _compare(run_path: Path, hardware: str, model: str | None, overrides: list[str],
             out: str | Path | None, bin_s: float, progress: Progress | None) -> CompareResult:
    from sim.cluster import simulate

    real = load_run(run_path)
    model_name = _model_name(real, model)
    hardware = _absolute_if_file(hardware)
    with tempfile.TemporaryDirectory(prefix="llmsim-compare-") as tmp:
        trace_dir = Path(out) if out is not None else Path(tmp)
        trace_dir.mkdir(parents=True, exist_ok=True)
        trace = write_trace(real, trace_dir).resolve()
        data = scenario_data(real, hardware, model_name, trace)
        if overrides:
            data = apply_overrides(data, overrides, str(real.source))
        scenario = Scenario.from_dict(data, path=str(real.source), base_dir=Path.cwd())
        result = simulate(scenario, progress=progress)
    sim = simulated_requests(result, real)
    real_stats, sim_stats = side_stats(real.requests), side_stats(sim)
    error = errors(real_stats, sim_stats)
    return CompareResult(
        run=real, hardware=hardware, model=model_name, scenario=scenario, simulation=result,
        real=real.requests, sim=sim, real_stats=real_stats, sim_stats=sim_stats, error=error,
        table=comparison_rows(real_stats, sim_stats, error),
        throughput=throughput_over_time(real.requests, sim, bin_s), bin_s=bin_s)


def simulated_requests(result: Result, real: RealRun) -> pd.DataFrame:
    """The simulation's completed requests in REQUEST_COLUMNS (plus ``request_id`` = the row of
    the real request it replays); says how many did not complete."""
    frame = result.requests
    done = frame["state"] == "completed"
    if not done.all():
        states = frame.loc[~done, "state"].astype(str).value_counts()
        reasons = frame.loc[frame["state"] == "rejected", "reject_reason"].astype(str)
        detail = f"; first reason: {reasons.iloc[0]}" if len(reasons) else ""
        warnings.warn(f"{real.path}: the simulation did not complete "
                      f"{int((~done).sum())} of {len(frame)} requests "
                      f"({', '.join(f'{n} {s}' for s, n in states.items())}{detail}): left out "
                      "of its statistics", RunWarning, stacklevel=3)
    columns = ["request_id", "state", *REQUEST_COLUMNS]
    return frame.loc[done, columns].reset_index(drop=True)


def _model_name(real: RealRun, model: str | None) -> str:
    """``--model`` (a path made absolute), else the run's model, which llmsim must know."""
    from sim.models import get_model

    if model is not None:
        return _absolute_if_file(model)
    if not real.model:
        raise ModelError(f"{real.source}: the run names no model: pass --model NAME_OR_PATH "
                         "(a catalog name, or a HF config.json)")
    try:
        get_model(real.model)
    except ModelError as exc:
        raise ModelError(f"{real.source}: model {real.model!r} is not one llmsim knows ({exc}): "
                         "pass --model NAME_OR_PATH (a catalog name, or a HF config.json)") \
            from None
    return real.model


def _absolute_if_file(name: str) -> str:
    """A relative path made absolute, so that the scenario echo (scenario.yaml) works from any
    folder; a profile or catalog name as it is."""
    looks_like_path = "/" in name or "\\" in name or name.endswith((".yaml", ".yml", ".json"))
    path = Path(name).expanduser()
    return str(path.resolve()) if looks_like_path and path.exists() else name


