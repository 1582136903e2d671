"""``llmsim plan``: the cheapest configuration that meets the SLOs at the target traffic.

For each candidate (hardware x layout x expert parallelism x scheduler x router; a layout is
tensor x pipeline parallel, or a disaggregated unit of prefill and decode pools) and each seed:

1. **Max sustainable rate per replica**: one replica, ``requests_per_replica`` requests at rate r;
   r is bisected geometrically in [min_rps, max_rps] (a candidate that misses the SLO at min_rps
   is infeasible). All searches advance in lock-step rounds, so every round's probes run in
   parallel on the backend.
2. **Min replicas**: simulate the whole cluster at the target rate, every seed, from
   ceil(target / mean max rate) (rounded up to an allowed count) up until every seed meets the
   SLO, then down until none does. Each seed's answer is the smallest count from which on it
   meets the SLO; the recommended deployment is the count at which every seed does.
3. **Cost**: $/hour = replicas x devices per replica x the device's price (a disaggregated
   unit's replica is one copy of its pools, every pool's devices at its own price); $ per million output tokens
   from the cluster runs. Candidates are ranked by $/hour, then $ per million tokens.

Every number is reported as the mean and 95% CI over the seeds (Student's t): the max rate, the
metrics at the answer, and the answer itself (the seeds' own minimum counts; the interval in
whole replicas). Each seed is judged on its own, in the probes and the cluster runs alike. The
recommendation then gets a failure what-if: N and N+k replicas at the target rate while replicas
are lost (``what_if``), with the SLO attainment of the requests that arrived during the event.

Runs are stored keyed, one file per run (``probes/``, ``clusters/``, ``what_if/``, each combined
into ``probes.parquet`` etc. when the plan finishes; :mod:`sim.planning.store`), so a plan that
was killed resumes where it stopped, as a sweep does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sim.config import parse
from sim.errors import CapacityError, ScenarioError
from sim.metrics.result import jsonable
from sim.planning.backends import Backend
from sim.planning.plan_config import PlanConfig
from sim.planning.runs import RunTask, execute, run_key
from sim.planning.stats import Estimate, mean_ci
from sim.planning.store import ResultsStore
from sim.planning.sweep import base_scenario, load_yaml
from sim.scenario import Scenario, apply_overrides, scenario_path

PLAN_JSON = "plan.json"
RECOMMENDED_DIR = "recommended"
_LEAD = ("candidate", "seed", "replicas", "rate_rps")
_RATE_ARRIVALS = ("poisson", "constant", "gamma")
Progress = Callable[[str, int, int], None]


@dataclass
class Candidate:
    index: int
    hardware: str
    tensor_parallel: int
    scheduler: str
    data: dict                         # the base scenario with this candidate's overrides
    usd_per_device_hour: float = math.nan
    infeasible: str = ""               # why it cannot serve at all (empty: it can)
    pipeline_parallel: int = 1
    router: str | None = None          # None: the base scenario's
    pools: list[dict] | None = None    # a disaggregated unit; "replicas" count its copies
    expert_parallel: bool | None = None   # None: the base scenario's
    devices_per_replica: int = 0       # devices of one replica (or unit)
    usd_per_replica_hour: float = math.nan

    @property
    def name(self) -> str:
        if self.pools is not None:
            layout = ":".join(f"{p.get('replicas', 1)}{p['role'][0].upper()}"
                              f"(tp{p.get('tensor_parallel', self.tensor_parallel)})"
                              for p in self.pools)
        else:
            layout = f"tp{self.tensor_parallel}" + (
                f" pp{self.pipeline_parallel}" if self.pipeline_parallel > 1 else "")
        router = f" {self.router}" if self.router else ""
        ep = {None: "", True: " ep", False: " no-ep"}[self.expert_parallel]
        return f"{self.hardware} {layout}{ep} {self.scheduler}{router}"


@dataclass
class Plan:
    name: str
    path: str
    config: PlanConfig
    base_dir: Path
    seeds: list[int]
    candidates: list[Candidate] = field(default_factory=list)
    base: dict = field(default_factory=dict)    # the base scenario, the plan's overrides applied


def load_plan(path: str | Path) -> Plan:
    """Parse a plan file and check every candidate's scenario before anything runs."""
    from sim.cluster.cluster import resolve_pools

    path = scenario_path(path)          # a file, or a shipped example's name
    config = parse(PlanConfig, load_yaml(path, "plan"), path=str(path))
    data, base_dir, label = base_scenario(config.scenario, path)
    data = apply_overrides(data, config.set, label) if config.set else data
    base = Scenario.from_dict(data, path=label, base_dir=base_dir)
    plan = Plan(name=config.name or path.stem, path=str(path), config=config, base_dir=base_dir,
                seeds=config.seed_list(base.seed), base=data)
    if config.fleets is not None:       # whole fleets on the scenario's traffic: no candidates
        from sim.planning.fleets import fleets_of
        fleets_of(plan, data)            # every fleet's scenario checked before anything runs
        return plan
    cand = config.candidates
    layouts: list[tuple[int, int, list[dict] | None]] = []
    if cand.colocated:
        layouts += [(t, p, None) for t in cand.tensor_parallel or [base.cluster.tensor_parallel]
                    for p in cand.pipeline_parallel or [base.cluster.pipeline_parallel]]
    layouts += [(base.cluster.tensor_parallel, 1, unit) for unit in cand.pools or []]
    grid = [(h, layout, e, s, r) for h in cand.hardware or [base.hardware.name]
            for layout in layouts
            for e in cand.expert_parallel or [None]
            for s in cand.scheduler or [base.scheduler.name]
            for r in cand.router or [None]]
    for i, (hw, (tp, pp, unit), ep, sched, router) in enumerate(grid):
        candidate = Candidate(i, hw, tp, sched, {}, pipeline_parallel=pp, router=router,
                              pools=unit, expert_parallel=ep)
        source = f"{path}: candidate {candidate.name}"
        sets = [f"hardware={json.dumps(hw)}", f"cluster.tensor_parallel={tp}",
                f"scheduler.name={json.dumps(sched)}"]
        if unit is None:
            sets.append(f"cluster.pipeline_parallel={pp}")
        else:
            sets += [f"cluster.pools={json.dumps(unit)}", "cluster.replicas=1"]
        if router is not None:
            sets.append(f"cluster.router={json.dumps(router)}")
        if ep is not None:
            sets.append(f"cluster.expert_parallel={json.dumps(ep)}")
        candidate.data = apply_overrides(data, sets, source)
        probe = Scenario.from_dict(with_traffic(candidate.data, config.search.min_rps, 20, 1,
                                                base.seed, source),
                                   path=source, base_dir=base_dir)
        try:
            pools = resolve_pools(probe)
            candidate.usd_per_device_hour = pools[0].deployment.device.price_usd_per_hour
            candidate.devices_per_replica = sum(
                p.scenario.cluster.replicas * p.deployment.devices_per_replica for p in pools)
            candidate.usd_per_replica_hour = sum(
                p.scenario.cluster.replicas * p.deployment.devices_per_replica
                * p.deployment.device.price_usd_per_hour for p in pools)
        except CapacityError as exc:
            candidate.infeasible = str(exc).split(": ", 1)[-1]
        plan.candidates.append(candidate)
    return plan


def with_traffic(data: dict, rate_rps: float, num_requests: int, replicas: int, seed: int,
                 source: str, failures: list | None = None) -> dict:
    """The scenario at ``rate_rps`` with ``num_requests`` on ``replicas`` replicas."""
    data = dict(data)
    data.pop("failures", None)        # the base's own what-ifs do not apply to the search
    if failures:
        data["failures"] = failures
    workload = dict(data.get("workload") or {})
    unit = (data.get("cluster") or {}).get("pools")
    if unit:        # a disaggregated unit: ``replicas`` copies of each of its pools
        scaled = [{**p, "replicas": p.get("replicas", 1) * replicas} for p in unit]
        sets = [f"cluster.pools={json.dumps(scaled)}", f"seed={seed}"]
    else:
        sets = [f"cluster.replicas={replicas}", f"seed={seed}"]
    if "trace" in workload:
        trace = dict(workload["trace"] or {})
        trace.pop("time_scale", None)
        workload["trace"] = trace
        sets.append(f"workload.trace.limit={num_requests}")
        key = "workload.arrivals.rate_rps" if "arrivals" in workload \
            else "workload.trace.target_rate_rps"
        sets.append(f"{key}={rate_rps!r}")
    else:
        kind = (workload.get("arrivals") or {}).get("kind", "poisson")
        if kind not in _RATE_ARRIVALS:
            raise ScenarioError(source, "workload.arrivals.kind",
                                f"one of {', '.join(_RATE_ARRIVALS)} (the plan sets the rate), "
                                "or a trace", kind)
        sets += [f"workload.arrivals.rate_rps={rate_rps!r}",
                 f"workload.num_requests={num_requests}"]
    data["workload"] = workload
    return apply_overrides(data, sets, source)


def meets(row: dict, checks: list[tuple[str, float, str]]) -> bool:
    """Every check passes (a NaN metric fails), and every request ended."""
    if row.get("requests_running", 0) or not row.get("requests_completed", 0):
        return False
    for column, limit, direction in checks:
        value = row.get(column, math.nan)
        if not (value <= limit if direction == "<=" else value >= limit):
            return False
    return True


class Planner:
    def __init__(self, plan: Plan, out_dir: str | Path, backend: Backend,
                 progress: Progress | None = None):
        self.plan, self.backend, self.progress = plan, backend, progress
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg = plan.config
        self.checks = self.cfg.slo.targets()
        self.stores = {name: ResultsStore(self.out / f"{name}.parquet", lead=_LEAD)
                       for name in ("probes", "clusters", "what_if")}

    # -- tasks ---------------------------------------------------------------------------------
    def _task(self, cand: Candidate, seed: int, rate: float, replicas: int, index: int,
              failures: list | None = None, save_dir: str | None = None) -> RunTask:
        source = f"{self.plan.path}: {cand.name} x{replicas} at {rate:.4g} req/s, seed {seed}"
        data = with_traffic(cand.data, rate, self.cfg.traffic.requests_per_replica * replicas,
                            replicas, seed, source, failures)
        data = self._with_attainment(data)
        scenario = Scenario.from_dict(data, path=source, base_dir=self.plan.base_dir)
        return RunTask(index=index, key=run_key(scenario), scenario=data,
                       params={"candidate": cand.name, "seed": seed, "replicas": replicas,
                               "rate_rps": float(rate)},
                       source=source, base_dir=str(self.plan.base_dir),
                       percentiles=self.cfg.slo.percentiles(), save_dir=save_dir)

    def _with_attainment(self, data: dict) -> dict:
        """The per-request targets of ``slo.attainment`` become the scenario's SLO."""
        target = self.cfg.slo.attainment
        if target is None:
            return data
        data = dict(data)
        data["slo"] = {k: v for k, v in asdict(target).items() if k != "fraction"}
        return data

    def _run(self, store: str, phase: str, tasks: list[RunTask]) -> dict[str, dict]:
        """Rows of ``tasks`` by key: stored ones reused, the others simulated now."""
        st = self.stores[store]
        todo, seen = [], set()
        for t in tasks:
            if t.key not in st and t.key not in seen:
                todo.append(t)
                seen.add(t.key)
        for done, (_, row) in enumerate(self.backend.run(todo), 1):
            st.add(row)
            if self.progress is not None:
                self.progress(phase, done, len(todo))
        return {t.key: st.row(t.key) for t in tasks}

    # -- 1. max rate per replica ---------------------------------------------------------------
    def max_rates(self, cands: list[Candidate]) -> dict[tuple[int, int], tuple[float, bool]]:
        """(candidate, seed) -> (max sustainable rate per replica, capped at max_rps)."""
        search = self.cfg.search
        state = {(c.index, s): [search.min_rps, search.max_rps, False] for c in cands
                 for s in self.plan.seeds}            # [lo (ok), hi (fails), failed once]
        by_index = {c.index: c for c in cands}
        seed_pos = {s: i for i, s in enumerate(self.plan.seeds)}
        alive = set(state)
        for rnd in range(search.iterations + 1):
            probes = {}
            for ci, seed in sorted(alive):
                lo, hi, _ = state[(ci, seed)]
                rate = lo if rnd == 0 else math.sqrt(lo * hi)
                index = (ci * 100 + seed_pos[seed]) * 100 + rnd
                probes[(ci, seed)] = self._task(by_index[ci], seed, rate, 1, index)
            rows = self._run("probes", f"max rate, round {rnd + 1}/{search.iterations + 1}",
                             list(probes.values()))
            for (ci, seed), task in probes.items():
                rate = task.params["rate_rps"]
                ok = meets(rows[task.key], self.checks)
                st = state[(ci, seed)]
                if rnd == 0:
                    if not ok:        # misses the SLO even at min_rps
                        st[0] = 0.0
                        alive.discard((ci, seed))
                elif ok:
                    st[0] = rate
                else:
                    st[1], st[2] = rate, True
        return {k: (v[0], not v[2]) for k, v in state.items()}

    # -- 2. min replicas -----------------------------------------------------------------------
    def min_replicas(self, cand: Candidate, rate: Estimate) -> dict[int, dict]:
        """Cluster runs at the target rate, every seed, over enough counts to bracket each
        seed's own answer: up from ceil(target / mean rate) until every seed meets the SLO, then
        down from the smallest tested count until none does. Returns {count: {seed: row}}."""
        allowed = self.cfg.candidates
        target = self.cfg.traffic.rate_rps
        tested: dict[int, dict] = {}

        def run(n: int) -> list[bool]:
            tasks = {s: self._task(cand, s, target, n, (cand.index * 100 + i) * 1000 + n)
                     for i, s in enumerate(self.plan.seeds)}
            rows = self._run("clusters", f"{cand.name}: {n} replicas at {target:g} req/s",
                             list(tasks.values()))
            tested[n] = {s: rows[t.key] for s, t in tasks.items()}
            return [meets(row, self.checks) for row in tested[n].values()]

        n = allowed.allowed(max(1, math.ceil(target / rate.mean)))
        while n is not None and not all(run(n)):
            n = allowed.neighbour(n, +1)
        if n is None:
            return tested                    # no allowed count where every seed meets the SLO
        n = allowed.neighbour(min(tested), -1)
        while n is not None and any(meets(r, self.checks) for r in tested[min(tested)].values()):
            if not any(run(n)):
                break
            n = allowed.neighbour(n, -1)
        return tested

    def replicas_per_seed(self, tested: dict[int, dict]) -> list[int | None]:
        """Each seed's own answer: the smallest tested count from which on (every larger tested
        count too) it meets the SLO; None if it never does."""
        counts = sorted(tested)
        answers = []
        for seed in self.plan.seeds:
            n_s = None
            for n in reversed(counts):
                if not meets(tested[n][seed], self.checks):
                    break
                n_s = n
            answers.append(n_s)
        return answers

    # -- 3. what-if ----------------------------------------------------------------------------
    def what_if(self, cand: Candidate, replicas: int) -> dict:
        wi = self.cfg.what_if
        target = self.cfg.traffic.rate_rps
        out = {"spare_replicas": wi.spare_replicas, "deployments": []}
        for n in sorted({replicas, replicas + wi.spare_replicas}):
            window = self.cfg.traffic.requests_per_replica * n / target
            failures = [asdict(f) for f in wi.failures] if wi.failures else [
                {"kind": "replica_down", "replica": 0, "at_s": round(window / 3, 3),
                 "duration_s": round(window / 3, 3)}]
            failures = [{k: v for k, v in f.items() if v is not None} for f in failures]
            tasks = [self._task(cand, s, target, n, (cand.index * 100 + i) * 1000 + n,
                                failures=failures) for i, s in enumerate(self.plan.seeds)]
            rows = list(self._run("what_if", f"what-if: {n} replicas with failures",
                                  tasks).values())
            out["deployments"].append({
                "replicas": n, "failures": failures,
                "meets_slo": meets(mean_row(rows), self.checks),
                "slo_attainment_during_failures": _est(rows, "slo_attainment_during_failures"),
                "slo_attainment": _est(rows, "slo_attainment"),
                "requests_rerouted": _est(rows, "requests_rerouted"),
                "metrics": {c: _est(rows, c) for c, _, _ in self.checks}})
        return out

    # -- all of it -----------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, target = self.cfg, self.cfg.traffic.rate_rps
        feasible = [c for c in self.plan.candidates if not c.infeasible]
        rates = self.max_rates(feasible)
        results = []
        for cand in self.plan.candidates:
            entry = {"candidate": cand.name, "hardware": cand.hardware,
                     "tensor_parallel": cand.tensor_parallel,
                     "pipeline_parallel": cand.pipeline_parallel, "scheduler": cand.scheduler,
                     "router": cand.router, "pools": cand.pools,
                     "expert_parallel": cand.expert_parallel,
                     "usd_per_device_hour": cand.usd_per_device_hour, "feasible": False,
                     "reason": cand.infeasible}
            results.append(entry)
            if cand.infeasible:
                continue
            per_seed = [rates[(cand.index, s)][0] for s in self.plan.seeds]
            rate = mean_ci(per_seed)
            entry["max_rate_per_replica"] = {**rate.to_dict(), "per_seed": per_seed,
                                             "capped": any(rates[(cand.index, s)][1]
                                                           for s in self.plan.seeds)}
            if min(per_seed) <= 0:
                entry["reason"] = f"misses the SLO at {cfg.search.min_rps:g} req/s per replica"
                continue
            tested = self.min_replicas(cand, rate)
            per_seed_n = self.replicas_per_seed(tested) if tested else [None]
            if None in per_seed_n:
                entry["reason"] = (f"needs more than {cfg.candidates.max_replicas} replicas "
                                   "(or no allowed count meets the SLO in every seed)")
                continue
            # deploy the count at which every seed meets the SLO; the answer's CI is that of the
            # seeds' own minimum counts, in whole replicas
            n = max(per_seed_n)
            rows = tested[n]
            est_n = mean_ci(per_seed_n)
            low = max(min(per_seed_n), math.floor(est_n.low + 1e-9))
            high = min(n, math.ceil(est_n.high - 1e-9))
            devices = n * cand.devices_per_replica
            device_hour = cand.usd_per_replica_hour     # one replica (or unit), all its devices
            values = list(rows.values())
            entry.update({
                "feasible": True, "replicas": n, "replicas_ci": [low, high],
                "replicas_per_seed": per_seed_n, "replicas_mean": est_n.mean,
                "devices": devices, "usd_per_hour": n * device_hour,
                "usd_per_hour_ci": [low * device_hour, high * device_hour],
                "usd_per_million_output_tokens": mean_ci(
                    [steady_usd_per_million(r, n * device_hour, target)
                     for r in values]).to_dict(),
                "metrics": {c: _est(values, c) for c in _REPORTED + tuple(
                    c for c, _, _ in self.checks) if c in values[0]},
            })
        ranked = sorted((e for e in results if e["feasible"]),
                        key=lambda e: (e["usd_per_hour"],
                                       e["usd_per_million_output_tokens"]["mean"]))
        for rank, e in enumerate(ranked, 1):
            e["rank"] = rank
        out = {"kind": "plan", "name": self.plan.name, "plan_file": self.plan.path,
               "traffic": asdict(cfg.traffic), "slo": _slo_dict(cfg), "seeds": self.plan.seeds,
               "search": asdict(cfg.search), "candidates": results, "recommendation": None}
        if ranked:
            best = ranked[0]
            cand = next(c for c in self.plan.candidates if c.name == best["candidate"])
            rec = {k: best[k] for k in ("candidate", "replicas", "replicas_ci", "replicas_mean",
                                        "replicas_per_seed", "usd_per_hour",
                                        "usd_per_hour_ci", "usd_per_million_output_tokens",
                                        "max_rate_per_replica", "metrics")}
            if cfg.what_if is not None:
                rec["what_if"] = self.what_if(cand, best["replicas"])
                k = cfg.what_if.spare_replicas
                rec["headroom"] = {"replicas": best["replicas"] + k, "spare_replicas": k,
                                   "capacity_over_target": (best["replicas"] + k)
                                   * best["max_rate_per_replica"]["mean"] / target - 1.0}
            save = str((self.out / RECOMMENDED_DIR).resolve())
            execute(self._task(cand, self.plan.seeds[0], target, best["replicas"], 0,
                               save_dir=save))
            out["recommendation"] = rec
        for st in self.stores.values():
            if len(st):
                st.write_combined()
        tmp = self.out / f".{PLAN_JSON}.tmp"
        tmp.write_text(json.dumps(jsonable(out), indent=2) + "\n")
        tmp.replace(self.out / PLAN_JSON)
        return out


# metrics reported for every candidate at its answer, besides the SLO's own
_REPORTED = ("ttft_s.p90", "tpot_s.p90", "e2e_s.p90", "slo_attainment", "throughput_tokens_per_s",
             "goodput_requests_per_s", "kv_usage_mean", "batch_size_mean")


def mean_row(rows: list[dict]) -> dict:
    """Column means over seeds (numbers only); counts of running requests are summed."""
    out: dict = {}
    for key in rows[0]:
        values = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
               for v in values):
            out[key] = float(np.sum(values)) if key == "requests_running" \
                else float(np.mean(values))
    return out


def steady_usd_per_million(row: dict, usd_per_hour: float, rate_rps: float) -> float:
    """$ per million output tokens when the cluster serves ``rate_rps`` for an hour: the run's
    mean output tokens per request times the rate (not the run's own tokens per second, which
    its start and its drain tail dilute)."""
    completed = row.get("requests_completed") or 0
    tokens = row.get("throughput_tokens_per_s", math.nan) * row.get("simulated_duration_s",
                                                                      math.nan)
    if not completed or not tokens > 0:
        return math.nan
    return usd_per_hour / (rate_rps * tokens / completed * 3600.0) * 1e6


def _est(rows: list[dict], column: str) -> dict:
    return mean_ci([r.get(column, math.nan) for r in rows]).to_dict()


def _slo_dict(cfg: PlanConfig) -> dict:
    slo = asdict(cfg.slo)
    return {k: v for k, v in slo.items() if v}


def run_plan(plan: Plan, out_dir: str | Path, backend: Backend,
             progress: Progress | None = None) -> dict:
    if plan.config.fleets is not None:
        from sim.planning.fleets import run_fleets
        return run_fleets(plan, plan.base, out_dir, backend, progress)
    return Planner(plan, out_dir, backend, progress).run()
