"""``llmsim sweep``: a base scenario times a grid (and/or zipped lists) of dotted-key overrides.

```yaml
name: rates-x-schedulers
scenario: quickstart.yaml          # a path (relative to this file) or an inline scenario mapping
set: [workload.num_requests=300]   # overrides every run shares
grid:                              # every combination ...
  workload.arrivals.rate_rps: [4, 8, 16]
  scheduler.name: [fcfs, past_future]
zip:                               # ... times each row of these equal-length lists
  hardware: [h100-sxm, a100-80g-sxm]
  cluster.tensor_parallel: [1, 2]
keep_runs: false                   # true: also write each run's tables to DIR/runs/<key>/
```

Every run is built and resolved (model, hardware, KV size) before the first one starts, so a bad
value fails at once, naming the sweep file, the run and the field. What it writes in ``DIR``:

    sweep.json             the sweep's name and swept keys (what ``llmsim report`` needs)
    results/<key>.parquet  each finished run's row, written as it finishes
    results.parquet        every row, one per run in run order, written when the sweep finishes
    runs/<key>/            each run's tables, with ``keep_runs: true``

Runs whose key is already stored are skipped, which makes a re-run of a killed sweep finish the
rest (:mod:`sim.planning.store`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.config import parse, require
from sim.errors import ScenarioError
from sim.planning.backends import Backend
from sim.planning.runs import RunTask, run_key
from sim.planning.store import ResultsStore
from sim.config import read_mapping, read_text
from sim.scenario import Scenario, apply_overrides, scenario_path

RESULTS = "results.parquet"
META = "sweep.json"


@dataclass(frozen=True)
class SweepConfig:
    scenario: str | dict[str, Any]
    name: str | None = None
    description: str = ""
    set: list[str] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    keep_runs: bool = False

    def __post_init__(self):
        for section in ("grid", "zip"):
            for key, values in getattr(self, section).items():
                require(len(values) > 0, f"{section}.{key}", "a non-empty list of values", values)
        lengths = {len(v) for v in self.zip.values()}
        require(len(lengths) <= 1, "zip", "lists of equal length",
                {k: len(v) for k, v in self.zip.items()})
        both = set(self.grid) & set(self.zip)
        require(not both, "zip", "keys not also in grid", sorted(both))


@dataclass(frozen=True)
class Sweep:
    name: str
    path: str
    config: SweepConfig
    tasks: list[RunTask]
    params: list[str]          # the swept keys: result columns after run and key


def load_yaml(path: str | Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), None, f"an existing {what} file", hint="file not found")
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(str(path), f"line {mark.line + 1}" if mark else None, "valid YAML",
                            hint=str(getattr(exc, "problem", exc))) from None
    if not isinstance(data, dict):
        raise ScenarioError(str(path), None, f"a mapping (a {what})", data)
    return data


def base_scenario(value: str | dict, owner: Path, field_name: str = "scenario"
                  ) -> tuple[dict, Path, str]:
    """The base scenario mapping, the folder its relative paths start from, and its label."""
    if isinstance(value, dict):
        return value, owner.resolve().parent, str(owner)
    path = Path(value)
    if not path.is_absolute():
        path = owner.resolve().parent / path
    if not path.is_file():
        raise ScenarioError(str(owner), field_name, "a scenario file or an inline mapping", value,
                            hint=f"{path} not found")
    return load_yaml(path, "scenario"), path.parent, str(Path(value))


def load_sweep(path: str | Path, out_dir: str | Path | None = None) -> Sweep:
    """Parse a sweep file and build (and check) every run."""
    path = scenario_path(path)          # a file, or a shipped example's name
    config = parse(SweepConfig, load_yaml(path, "sweep"), path=str(path))
    data, base_dir, label = base_scenario(config.scenario, path)
    data = apply_overrides(data, config.set, label) if config.set else data
    params = list(config.grid) + list(config.zip)
    combos = list(itertools.product(*config.grid.values())) or [()]
    rows = list(zip(*config.zip.values())) or [()]
    tasks = []
    for i, (g, z) in enumerate(itertools.product(combos, rows)):
        values = dict(zip(params, (*g, *z)))
        overrides = [f"{k}={json.dumps(v)}" for k, v in values.items()]
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        source = f"{path}: run {i}" + (f" ({shown})" if shown else "")
        run_data = apply_overrides(data, overrides, source)
        scenario = Scenario.from_dict(run_data, path=source, base_dir=base_dir)
        _check_resolves(scenario)
        key = run_key(scenario)
        save = str(Path(out_dir).resolve() / "runs" / key) if config.keep_runs and out_dir \
            else None
        tasks.append(RunTask(index=i, key=key, scenario=run_data, params=values, source=source,
                             base_dir=str(base_dir), save_dir=save))
    name = config.name or path.stem
    return Sweep(name=name, path=str(path), config=config, tasks=tasks, params=params)


def _check_resolves(scenario: Scenario) -> None:
    """Load model and hardware and size the KV cache now, not in the middle of the sweep."""
    from sim.cluster import resolve
    resolve(scenario)


Progress = Callable[[int, int, RunTask, dict], None]


@dataclass
class SweepOutcome:
    total: int
    skipped: int               # already stored
    ran: int
    wall_s: float
    results: Path              # DIR/results.parquet


def run_sweep(sweep: Sweep, out_dir: str | Path, backend: Backend,
              progress: Progress | None = None, force: bool = False) -> SweepOutcome:
    """Run the sweep's runs not yet in ``out_dir`` (a sweep resumes where it stopped). A folder
    holding another sweep's results (another name or other swept keys) is refused unless
    ``force``: the two would mix in one results table."""
    from sim.errors import OutputError, ResultError
    from sim.metrics.result import prepare_output_dir

    out = prepare_output_dir(out_dir)
    if (out / META).is_file() and not force:
        meta = read_mapping(out / META, ResultError)
        if (meta.get("name"), meta.get("params")) != (sweep.name, sweep.params):
            raise OutputError(f"{out}: holds the results of another sweep ({meta.get('name')!r} "
                              f"over {', '.join(map(str, meta.get('params') or [])) or '-'}); "
                              "choose another folder, or pass --force to add to it")
    store = ResultsStore(out / RESULTS, lead=tuple(sweep.params))
    _write_meta(out, sweep)
    done = store.keys
    seen: set[str] = set()
    todo = []
    for task in sweep.tasks:
        if task.key not in done and task.key not in seen:   # equal runs: simulate once
            todo.append(task)
        seen.add(task.key)
    started = time.perf_counter()
    ran = 0
    for task, row in backend.run(todo):
        store.add(row)
        ran += 1
        if progress is not None:
            progress(ran, len(todo), task, row)
    store.write_combined()
    return SweepOutcome(total=len(sweep.tasks), skipped=len(sweep.tasks) - len(todo), ran=ran,
                        wall_s=time.perf_counter() - started, results=store.path)


def _write_meta(out: Path, sweep: Sweep) -> None:
    """What the report needs to know about the sweep (its swept keys), written atomically."""
    meta = {"kind": "sweep", "name": sweep.name, "sweep_file": sweep.path,
            "params": sweep.params, "runs": len(sweep.tasks),
            "keep_runs": sweep.config.keep_runs,
            "description": sweep.config.description}
    tmp = out / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(out / META)


def results_without_volatile(frame):
    """Sweep results minus columns that differ between identical runs (wall time)."""
    from sim.planning.runs import VOLATILE_COLUMNS
    return frame.drop(columns=[c for c in VOLATILE_COLUMNS if c in frame.columns])


__all__ = ["SweepConfig", "Sweep", "load_sweep", "run_sweep", "SweepOutcome", "RESULTS", "META",
           "results_without_volatile"]
