"""``llmsim plan`` over fleets: fixed fleets against autoscaled ones (and a KV tier on or off)
on the base scenario's own traffic, e.g. a diurnal day.

A plan file with a ``fleets`` section compares whole fleets instead of searching a rate per
replica: each fixed size in ``fleets.fixed`` and each autoscaler section in
``fleets.autoscaler``, each with every entry of ``fleets.kv_offload`` (null: no tier), runs once
per seed on the scenario's workload as it is. A fleet qualifies when every seed meets the plan's
SLO (its percentile targets and attainment); the answer is the qualifying fleet of lowest mean
cost. Cost, SLO attainment and the checked metrics are reported as the mean and 95% CI over the
seeds, with the autoscaler's replica-hours and scale events.

```yaml
scenario: diurnal-day.yaml
slo: {ttft_s: {p90: 2.0}, attainment: {fraction: 0.99, ttft_s: 2.0, tpot_s: 0.1}}
seeds: 3
fleets:
  fixed: [4, 5, 6]
  autoscaler:
    - {policy: queue, target: 40, min_replicas: 1, max_replicas: 7}
  kv_offload: [null, {capacity_gib: 128, bandwidth_gb_s: 25}]
```
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.config import require
from sim.planning.runs import RunTask, run_key
from sim.planning.stats import mean_ci
from sim.planning.store import ResultsStore
from sim.scenario import Scenario, apply_overrides

if TYPE_CHECKING:
    from sim.planning.backends import Backend
    from sim.planning.plan import Plan, Progress

FLEETS_JSON = "plan.json"


@dataclass(frozen=True)
class FleetsConfig:
    fixed: list[int] | None = None                 # fixed fleet sizes
    autoscaler: list[dict] | None = None           # autoscaler sections (sim/cluster/autoscaler)
    kv_offload: list[dict | None] | None = None    # scheduler.kv_offload settings; null: none

    def __post_init__(self):
        require(self.fixed or self.autoscaler, "fixed", "a list of replica counts, or "
                "autoscaler sections to compare", self.fixed)
        require(self.fixed is None or all(isinstance(n, int) and n > 0 for n in self.fixed),
                "fixed", "a list of integers > 0", self.fixed)
        require(self.autoscaler is None or all(isinstance(a, dict) for a in self.autoscaler),
                "autoscaler", "a list of autoscaler sections", self.autoscaler)
        require(self.kv_offload is None or (len(self.kv_offload) > 0 and all(
            k is None or isinstance(k, dict) for k in self.kv_offload)), "kv_offload",
            "a list of scheduler.kv_offload sections or nulls", self.kv_offload)


@dataclass
class Fleet:
    name: str
    data: dict                  # the scenario of this fleet (no seed yet)
    kind: str                   # fixed | autoscaled
    replicas: int | None        # fixed size
    kv_offload: dict | None


def fleets_of(plan: Plan, base: dict) -> list[Fleet]:
    """Every fleet x KV tier of the plan, each scenario checked now (one-line errors)."""
    cfg: FleetsConfig = plan.config.fleets
    tiers = cfg.kv_offload or [None]
    out: list[Fleet] = []
    sizes = [("fixed", n, None) for n in cfg.fixed or []]
    sizes += [("autoscaled", None, a) for a in cfg.autoscaler or []]
    for kind, n, auto in sizes:
        for tier in tiers:
            data = dict(base)
            data.pop("autoscaler", None)
            scheduler = dict(data.get("scheduler") or {})
            scheduler.pop("kv_offload", None)
            if tier is not None:
                scheduler["kv_offload"] = tier
            data["scheduler"] = scheduler
            cluster = dict(data.get("cluster") or {})
            if kind == "fixed":
                cluster["replicas"] = n
                name = f"fixed x{n}"
            else:
                data["autoscaler"] = auto
                cluster["replicas"] = auto.get("min_replicas", 1)
                name = "autoscaled " + ", ".join(f"{k}={v}" for k, v in auto.items())
            data["cluster"] = cluster
            if tier is not None:
                name += " + kv tier " + ", ".join(f"{k}={v}" for k, v in tier.items())
            Scenario.from_dict(data, path=f"{plan.path}: fleet {name}", base_dir=plan.base_dir)
            out.append(Fleet(name, data, kind, n, tier))
    return out


def run_fleets(plan: Plan, base: dict, out_dir: str | Path, backend: Backend,
               progress: Progress | None = None) -> dict:
    from sim.metrics.result import jsonable
    from sim.planning.plan import _slo_dict, meets

    cfg = plan.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(out / "fleets.parquet", lead=("fleet", "seed"))
    checks = cfg.slo.targets()
    fleets = fleets_of(plan, base)
    tasks: list[RunTask] = []
    for fleet in fleets:
        for seed in plan.seeds:
            source = f"{plan.path}: fleet {fleet.name}, seed {seed}"
            data = apply_overrides(fleet.data, [f"seed={seed}"], source)
            if cfg.slo.attainment is not None:      # its per-request targets: the scenario's
                data["slo"] = {k: v for k, v in asdict(cfg.slo.attainment).items()
                               if k != "fraction"}
            scenario = Scenario.from_dict(data, path=source, base_dir=plan.base_dir)
            tasks.append(RunTask(index=len(tasks), key=run_key(scenario), scenario=data,
                                 params={"fleet": fleet.name, "seed": seed}, source=source,
                                 base_dir=str(plan.base_dir),
                                 percentiles=cfg.slo.percentiles()))
    todo = [t for t in tasks if t.key not in store]
    for done, (_, row) in enumerate(backend.run(todo), 1):
        store.add(row)
        if progress is not None:
            progress("fleets", done, len(todo))
    results = []
    for fleet in fleets:
        rows = [store.row(t.key) for t in tasks if t.params["fleet"] == fleet.name]
        met = [meets(r, checks) for r in rows]
        entry: dict[str, Any] = {
            "fleet": fleet.name, "kind": fleet.kind, "replicas": fleet.replicas,
            "kv_offload": fleet.kv_offload, "seeds_meeting": int(sum(met)),
            "seeds": len(rows), "meets": all(met),
            "cost_usd": mean_ci([r["cost_usd"] for r in rows]).to_dict(),
            "slo_attainment": mean_ci([r["slo_attainment"] for r in rows]).to_dict(),
            "metrics": {c: mean_ci([r.get(c, math.nan) for r in rows]).to_dict()
                        for c, _, _ in checks},
        }
        if fleet.kind == "autoscaled":
            autos = [json.loads(r["autoscaler"]) if isinstance(r.get("autoscaler"), str)
                     else r.get("autoscaler") or {} for r in rows]
            for key in ("replica_hours", "scale_events", "mean_replicas",
                        "slo_attainment_in_ramps"):
                entry[key] = mean_ci([a.get(key, math.nan) for a in autos]).to_dict()
        results.append(entry)
    ranked = sorted((e for e in results if e["meets"]), key=lambda e: e["cost_usd"]["mean"])
    for rank, e in enumerate(ranked, 1):
        e["rank"] = rank
    report = {"kind": "fleets", "name": plan.name, "plan_file": plan.path,
              "slo": _slo_dict(cfg), "seeds": plan.seeds, "fleets": results,
              "recommendation": ranked[0]["fleet"] if ranked else None}
    if store:
        store.write_combined()
    tmp = out / f".{FLEETS_JSON}.tmp"
    tmp.write_text(json.dumps(jsonable(report), indent=2) + "\n")
    tmp.replace(out / FLEETS_JSON)
    return report
