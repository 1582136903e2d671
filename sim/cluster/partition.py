"""Partitioned runs: one simulation's replicas split over worker processes.

A router that picks a replica from the arrival sequence alone (``round-robin``: the k-th routed
request to replica k mod R; ``random``: the router's draws, in arrival order, from the stream the
workload was drawn from) sends every request where it would go in one process whatever the
replicas do. So each of N workers can build the same workload, compute the same assignment, and
simulate its share of the replicas (every N-th, so that the load is even) on their requests
alone; replicas share nothing else. Each worker writes its tables to Parquet files; the parent
adds up the workers' figures (:class:`~sim.cluster.cluster.RunStats`) and summarises as one run.

Workers are processes on this machine (``backend="local"``), or Ray tasks (``backend="ray"``) on
a local Ray instance or the cluster at ``address``, whose nodes must have llmsim installed; a
Ray worker sends its Parquet files back with its figures (compressed: ~50 bytes a request), so
no shared file system is needed.

The request table is the single-process run's, row for row. Limits, each refused with a one-line
error: routers that look at the replicas (least-outstanding, least-kv-load, prefix-aware,
session-affinity: their picks depend on every replica's state), disaggregated pools (the decode
router sees the prefill pool's output), failure what-ifs (they re-route), client retries (a
resend is routed again, its turn depending on every replica's aborts), closed-loop clients (a
client's next request follows its previous one's end, on any replica), data-parallel expert
parallelism (ranks step together) and autoscaling (the fleet follows every replica's load). Also: the iteration table holds the same rows, ordered by
start time and replica where one process orders simultaneous iterations by event; the summary's
iteration means are added up per partition (equal to rounding); one case, an arrival at exactly
the instant one of its replica's iterations ends, may be ordered differently, as SimPy orders
simultaneous events by when they were scheduled, which differs between a partition and the
whole (continuous arrival times make it vanishingly rare).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.cluster.router import Router
from sim.errors import LlmsimError, ScenarioError

if TYPE_CHECKING:
    from sim.cluster.cluster import Progress, RunStats
    from sim.metrics.result import Result
    from sim.scenario import Scenario

PARTITIONABLE_ROUTERS = ("round-robin", "random")
BACKENDS = ("local", "ray")


def start_ray(workers: int, address: str | None):
    """``(ray, owns)``: Ray, initialised here unless it already was (``owns``: shut it down when
    done): connected to the cluster at ``address``, else a new local instance of ``workers``
    CPUs (never one found through RAY_ADDRESS)."""
    try:
        import ray
    except ImportError:
        raise LlmsimError("--backend ray needs Ray: pip install 'llmsim[ray]'") from None
    owns = not ray.is_initialized()
    if owns:
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        if address:
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise LlmsimError(f"--address {address}: no Ray cluster there ({exc})") from None
        else:
            ray.init(address="local", num_cpus=workers, **options)
    return ray, owns


def check_partitionable(scenario: Scenario) -> None:
    """A one-line ScenarioError naming the setting that keeps the run in one process."""
    n = scenario.simulation.partitions
    if n == 1:
        return
    c = scenario.cluster

    def refuse(field: str, expected: str, got: object, why: str) -> ScenarioError:
        return ScenarioError(scenario.path, field, expected, got,
                             f"simulation.partitions {n}: {why}")

    if c.pools:
        raise refuse("cluster.pools", "none", "pools", "the decode router sees every prefill "
                                                       "replica's output")
    if c.router not in PARTITIONABLE_ROUTERS:
        raise refuse("cluster.router", f"{' or '.join(PARTITIONABLE_ROUTERS)}", c.router,
                     "the others pick from every replica's state")
    if n > c.replicas:
        raise refuse("cluster.replicas", f">= {n}", c.replicas, "one replica or more a part")
    if scenario.failures:
        raise refuse("failures", "none", f"{len(scenario.failures)} events",
                     "failures re-route requests")
    if scenario.overload.retry.max_attempts > 1:
        raise refuse("overload.retry.max_attempts", "1", scenario.overload.retry.max_attempts,
                     "a resend is routed again")
    if scenario.workload.arrivals.kind == "closed_loop":
        raise refuse("workload.arrivals.kind", "open-loop arrivals", "closed_loop",
                     "a client's next request follows its last one's end on any replica")
    if c.expert_parallel and c.replicas > 1:
        raise refuse("cluster.expert_parallel", "false", True, "ranks step together")
    if scenario.autoscaler is not None:
        raise refuse("autoscaler", "none", scenario.autoscaler.policy,
                     "the fleet changes with every replica's load")


def assignment(scenario: Scenario, pools, workload, rng: np.random.Generator) -> np.ndarray:
    """The replica each request goes to, as the router picks in one process (-1: rejected on
    arrival, never routed). ``rng``: the stream the workload was drawn from, as the run's
    router goes on with it."""
    from sim.cluster.cluster import always_served_tokens, rejection_reason

    n, replicas = len(workload), scenario.cluster.replicas
    served = np.ones(n, dtype=bool)
    always = min(always_served_tokens(p.deployment, p.scenario) for p in pools)
    doubtful = np.flatnonzero(workload.prompt_tokens + workload.output_tokens > always)
    if len(doubtful):
        sub = workload.subset(doubtful)
        for i, req in zip(doubtful.tolist(), sub.requests()):
            served[i] = not any(rejection_reason(req, p.deployment, p.scenario) for p in pools)
    routed = int(served.sum())
    picks = np.arange(routed) % replicas if scenario.cluster.router == "round-robin" \
        else rng.integers(replicas, size=routed)
    out = np.full(n, -1, dtype=np.int64)
    out[served] = picks
    return out


class PresetRouter(Router):
    """Picks the replica assigned beforehand to each request (by request id)."""

    def __init__(self, replica_of: dict[int, int]):
        super().__init__(np.random.default_rng(0))
        self.replica_of = replica_of

    def pick(self, request, replicas):
        return replicas[self.replica_of[request.id]]


def run_partition(scenario: Scenario, part: int, out_dir: Path) -> dict:
    """Worker ``part`` of ``scenario.simulation.partitions``: simulate replicas part, part + N,
    ... on their requests; tables go to Parquet files in ``out_dir``."""
    from sim.cluster.cluster import Cluster, RunStats, resolve_pools, scenario_workload

    n = scenario.simulation.partitions
    pools = resolve_pools(scenario)
    rng = np.random.default_rng(scenario.seed)
    workload = scenario_workload(scenario, pools, rng)
    replica = assignment(scenario, pools, workload, rng)
    mine = np.flatnonzero((replica % n == part) & (replica >= 0) if part else
                          (replica % n == 0) | (replica < 0))   # rejections: worker 0 records
    router = PresetRouter(dict(zip(mine.tolist(), replica[mine].tolist())))
    cluster = Cluster(scenario, pools[0].deployment, workload.subset(mine), rng, None, pools,
                      out_dir, router)
    cluster.run()
    cluster.recorder.finish()
    return {"stats": RunStats.of(cluster), "last_end_s": cluster.last_end_s,
            "now_s": cluster.env.now, "dir": out_dir}


def run_partition_returning_files(scenario: Scenario, part: int) -> dict:
    """:func:`run_partition` in a temporary folder of the worker's machine, its Parquet files
    returned as bytes (a Ray worker may be on another machine)."""
    import shutil

    out_dir = Path(tempfile.mkdtemp(prefix="llmsim-part-"))
    try:
        out = run_partition(scenario, part, out_dir)
        out["files"] = {f.name: f.read_bytes() for f in sorted(out_dir.glob("*.parquet"))}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    del out["dir"]
    return out


def _run_on_ray(scenario: Scenario, dirs: list[Path], address: str | None) -> list[dict]:
    ray, owns = start_ray(len(dirs), address)
    try:
        remote = ray.remote(num_cpus=1)(run_partition_returning_files)
        parts = ray.get([remote.remote(scenario, k) for k in range(len(dirs))])
    finally:
        if owns and ray.is_initialized():
            ray.shutdown()
    for part, d in zip(parts, dirs):
        for name, data in part.pop("files").items():
            (d / name).write_bytes(data)
        part["dir"] = d
    return parts


def _pool(workers: int) -> ProcessPoolExecutor:
    """Forked workers where that is safe (no other thread: a script need not guard its main
    module), else a fork server (a progress bar's thread must not be forked)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["sim.cluster"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def simulate_partitioned(scenario: Scenario, progress: Progress | None = None,
                         backend: str = "local", address: str | None = None) -> Result:
    """``simulate`` with the replicas split over ``simulation.partitions`` processes (local) or
    Ray tasks (``backend="ray"``, at ``address`` or on a local instance)."""
    from sim.cluster.cluster import resolve_pools, run_summary, scenario_workload
    from sim.metrics.result import Result
    from sim.metrics.table import Columns

    check_partitionable(scenario)
    started = time.perf_counter()
    n = scenario.simulation.partitions
    pools = resolve_pools(scenario)
    workload = scenario_workload(scenario, pools, np.random.default_rng(scenario.seed))
    root = Path(tempfile.mkdtemp(prefix="llmsim-parts-"))
    dirs = [root / f"part-{k}" for k in range(n)]
    for d in dirs:
        d.mkdir()
    if backend == "ray":
        parts = _run_on_ray(scenario, dirs, address)
    else:
        with _pool(n) as pool:
            parts = list(pool.map(run_partition, [scenario] * n, range(n), dirs))
    stats: RunStats = parts[0]["stats"]
    for p in parts[1:]:
        stats.add(p["stats"])
    horizon = scenario.simulation.horizon_s
    ends = [p["last_end_s"] for p in parts if p["last_end_s"] is not None]
    duration = horizon if horizon is not None else (max(ends) if ends else
                                                    max(p["now_s"] for p in parts))
    files = {name: [d / f"{name}.parquet" for d in dirs] for name in ("requests", "iterations")}
    requests = Columns.from_parquet(files["requests"])
    wall = time.perf_counter() - started
    summary = run_summary(scenario, pools, workload, requests, stats, duration, wall, {})
    summary["partitions"] = n
    if progress is not None:
        progress(len(workload), len(workload))
    return Result(summary=summary, scenario=scenario.to_dict(), files=files, stream_dir=root)
