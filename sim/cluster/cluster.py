"""Cluster: builds the replicas of a scenario, feeds them arrivals, and runs SimPy to the end."""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import simpy

from sim.cluster.autoscaler import DRAINING, Autoscaler
from sim.cluster.closed_loop import ClosedLoop
from sim.cluster.failures import failure_window_attainment, speed_changes, start_failures
from sim.cluster.kv_offload import host_tier, load_timing_args
from sim.cluster.kv_transfer import KvLink
from sim.cluster.lockstep import LockstepGroup
from sim.cluster.replica import Replica
from sim.cluster.router import ROUTERS, Router
from sim.cost.duplex import DuplexCostModel
from sim.cost.engine import EngineTiming
from sim.cost.factory import make_cost_model
from sim.cost.model import CostModel
from sim.cost.pipeline import PipelineCostModel
from sim.cost.speculative import SpeculativeCostModel
from sim.errors import CapacityError, LlmsimError, ScenarioError
from sim.hardware import DeviceSpec, load_device
from sim.hardware.duplex import DuplexSpec
from sim.memory import (KVCache, activation_reserve_bytes, kv_bytes_per_token_per_device,
                        kv_cache_blocks)
from sim.memory.blocks import peak_blocks
from sim.memory.capacity import GIB, weight_bytes_per_device
from sim.metrics.records import IterationTotals, Recorder
from sim.metrics.result import Result
from sim.metrics.summary import slo_met, summarize
from sim.metrics.table import Columns
from sim.models import ModelSpec, get_model
from sim.scheduling import SCHEDULERS
from sim.scheduling.engine import Engine
from sim.scheduling.speculative import AcceptanceSampler
from sim.workload import Request, RequestStatus, Workload, build_workload

if TYPE_CHECKING:    # (the scenario module sits above the cluster: it validates its sections)
    from sim.scenario import Scenario

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Deployment:
    """What a scenario resolves to before any event: the model, the device and the capacity."""

    model: ModelSpec
    device: DeviceSpec
    tensor_parallel: int
    kv_blocks: int
    block_size: int
    max_model_len: int
    host_swap_blocks: int
    block_bytes: int                  # one block on one device (its stage's layers)
    pipeline_parallel: int = 1

    @property
    def kv_tokens(self) -> int:
        return self.kv_blocks * self.block_size

    @property
    def devices_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


def resolve(scenario: Scenario) -> Deployment:
    """Load model and hardware and size the KV cache; every error names the scenario field."""
    path, base = scenario.path, scenario.base_dir
    model = scenario.kv_compression.apply(scenario.precision.apply(
        _named(path, "model", lambda: get_model(scenario.model, base_dir=base))))
    device = _named(path, "hardware", lambda: load_device(
        scenario.hardware.name, scenario.hardware.overrides or None, base_dir=base))
    tp, cfg = scenario.cluster.tensor_parallel, scenario.scheduler
    pp = scenario.cluster.pipeline_parallel
    if model.num_heads % tp:
        raise ScenarioError(path, "cluster.tensor_parallel",
                            f"a divisor of {model.name}'s {model.num_heads} attention heads", tp)
    ranks = scenario.cluster.replicas
    if scenario.cluster.expert_parallel and model.num_experts and model.num_experts % ranks:
        raise ScenarioError(path, "cluster.replicas",
                            f"a divisor of {model.name}'s {model.num_experts} experts with "
                            "expert_parallel (each rank holds whole experts)", ranks)
    if pp > model.num_layers:
        raise ScenarioError(path, "cluster.pipeline_parallel",
                            f"at most {model.name}'s {model.num_layers} layers", pp)
    if cfg.max_model_len is not None and cfg.max_model_len > model.max_context_tokens:
        raise ScenarioError(path, "scheduler.max_model_len",
                            f"at most {model.name}'s context length ({model.max_context_tokens})",
                            cfg.max_model_len)
    max_model_len = cfg.max_model_len or model.max_context_tokens
    if cfg.activation_reserve_gib is not None:
        reserve = cfg.activation_reserve_gib * GIB
    else:
        reserve = activation_reserve_bytes(model, tp, cfg.max_batched_tokens, cfg.max_num_seqs)
    block_bytes = cfg.block_size * kv_bytes_per_token_per_device(model, tp, pp)
    if cfg.kv_blocks is not None:
        blocks = cfg.kv_blocks
    else:
        try:
            shards = scenario.cluster.replicas if scenario.cluster.expert_parallel else 1
            blocks = kv_cache_blocks(model, device, tp, cfg.block_size,
                                     cfg.gpu_memory_utilization, reserve, expert_shards=shards,
                                     pp=pp, max_num_seqs=cfg.max_num_seqs)
        except CapacityError as exc:
            raise CapacityError(f"{path or 'scenario'}: {exc}") from None
    host_blocks = int(cfg.swap_space_gib * GIB // block_bytes)
    return Deployment(model, device, tp, blocks, cfg.block_size, max_model_len, host_blocks,
                      block_bytes, pp)


def deployment_cost_model(scenario: Scenario, dep: Deployment | None = None) -> CostModel:
    """The cost model every replica of ``scenario`` uses: the device's (measured tables where
    its profile has them for this model) with the scenario's engine terms."""
    dep = dep or resolve(scenario)
    cfg, cluster = scenario.scheduler, scenario.cluster
    if cluster.expert_parallel and cluster.replicas == 1 and dep.model.is_moe \
            and dep.tensor_parallel > 1 and not isinstance(dep.device, DuplexSpec):
        # experts spread over the replica's devices: the Duplex model's expert layout and
        # routing on a device without a PIM (it costs everything else as CostModel does)
        spec = dataclasses.replace(DuplexSpec.from_device(dep.device), expert_parallel="expert",
                                   routing=cluster.moe_routing)
        cost = DuplexCostModel(dep.model, spec, dep.tensor_parallel, engine=EngineTiming(
            scenario.engine, cfg.max_num_seqs, cfg.max_batched_tokens))
    else:
        cost = make_cost_model(dep.model, dep.device, dep.tensor_parallel, scenario.engine,
                               max_num_seqs=cfg.max_num_seqs,
                               max_batched_tokens=cfg.max_batched_tokens)
    spec = scenario.speculative
    if spec.enabled:                # the draft's runs, added to each step
        if spec.method == "draft":
            draft = _named(scenario.path, "speculative.draft_model", lambda: get_model(
                spec.draft_model, base_dir=scenario.base_dir))
            cost = SpeculativeCostModel(cost, draft, spec.num_tokens)
        else:
            cost = SpeculativeCostModel.head(cost, spec.draft_layers, spec.num_tokens)
    if dep.pipeline_parallel > 1:   # stages on the device's link (NVLink inside a node)
        device = dep.device
        cost = PipelineCostModel(cost, dep.pipeline_parallel,
                                 device.interconnect_bandwidth * device.efficiency.interconnect,
                                 device.interconnect_latency_s)
    return cost


@dataclass
class PoolPlan:
    """One pool of a cluster: its role, the scenario as it applies to it (its hardware,
    tensor_parallel and replica count) and its deployment."""

    role: str
    scenario: Scenario
    deployment: Deployment
    router: str


def resolve_pools(scenario: Scenario) -> list[PoolPlan]:
    """The cluster's pools, each resolved (one colocated pool without ``cluster.pools``)."""
    cluster = scenario.cluster
    if not cluster.pools:
        if scenario.autoscaler is not None:     # every replica it may start, most of them off
            scenario = dataclasses.replace(scenario, cluster=dataclasses.replace(
                cluster, replicas=scenario.autoscaler.max_replicas))
        return [PoolPlan("colocated", scenario, resolve(scenario), cluster.router)]
    plans = []
    for i, pool in enumerate(cluster.pools):
        hardware = scenario.hardware if pool.hardware is None else pool.hardware
        tp = pool.tensor_parallel or cluster.tensor_parallel
        pp = pool.pipeline_parallel or cluster.pipeline_parallel
        sub = dataclasses.replace(scenario, hardware=hardware, cluster=dataclasses.replace(
            cluster, pools=(), replicas=pool.replicas, tensor_parallel=tp,
            pipeline_parallel=pp))
        try:
            dep = resolve(sub)
        except ScenarioError as exc:     # the field as the pool's: which pool, which field
            raise ScenarioError(exc.path, f"cluster.pools.{i} ({exc.field})", exc.expected,
                                exc.got, exc.hint) from None
        except CapacityError as exc:
            raise CapacityError(f"cluster.pools.{i} ({pool.role}): {exc}") from None
        plans.append(PoolPlan(pool.role, sub, dep, pool.router or cluster.router))
    return plans


def _named(path, field, load):
    try:
        return load()
    except ScenarioError:
        raise                  # already names its file and field
    except LlmsimError as exc:  # ModelError / HardwareError: prefix with where it was asked for
        raise type(exc)(f"{path or 'scenario'}: {field}: {exc}") from None


def rejection_reason(req: Request, dep: Deployment, scenario: Scenario) -> str:
    """Why a request can never be served on this deployment ('' if it can)."""
    total = req.prompt_tokens + req.output_tokens
    if total > dep.max_model_len:
        return f"prompt + output tokens ({total}) exceed max_model_len ({dep.max_model_len})"
    peak = peak_blocks(req.prompt_tokens, req.output_tokens, dep.block_size)
    if peak > dep.kv_blocks:
        return (f"needs {peak} KV blocks at its peak, a replica has {dep.kv_blocks}")
    cfg = scenario.scheduler
    if not cfg.chunked_prefill:
        # whole prompts only, and a request preempted by recomputation is prefilled again with
        # its generated tokens: it must fit one batch (vLLM v0 demands max_num_batched_tokens >=
        # max_model_len) and the pool less the admission watermark, or it would wait for ever
        # and hold up the queue behind it
        if req.prompt_tokens > cfg.max_batched_tokens:
            return (f"prompt ({req.prompt_tokens} tokens) exceeds max_batched_tokens "
                    f"({cfg.max_batched_tokens}) with chunked_prefill off")
        if total > cfg.max_batched_tokens:
            return (f"prompt + output tokens ({total}) exceed max_batched_tokens "
                    f"({cfg.max_batched_tokens}) with chunked_prefill off")
        watermark = int(getattr(cfg, "watermark", 0.0) * dep.kv_blocks)
        if watermark and peak > dep.kv_blocks - watermark:
            return (f"needs {peak} KV blocks at its peak, a replica admits at most "
                    f"{dep.kv_blocks - watermark} with chunked_prefill off (watermark)")
    return ""


def always_served_tokens(dep: Deployment, scenario: Scenario) -> int:
    """Prompt + output tokens at or below which rejection_reason is always '' (so the arrival
    path skips it): every limit it checks, as a bound on the total."""
    cfg = scenario.scheduler
    limit = min(dep.max_model_len, dep.kv_blocks * dep.block_size)
    if not cfg.chunked_prefill:
        watermark = int(getattr(cfg, "watermark", 0.0) * dep.kv_blocks)
        limit = min(limit, cfg.max_batched_tokens, (dep.kv_blocks - watermark) * dep.block_size)
    return limit


class Cluster:
    """Replicas behind a router, fed by the workload's arrival process. With ``cluster.pools``,
    prefill replicas hand prefilled requests to decode replicas over KV transfer links."""

    def __init__(self, scenario: Scenario, deployment: Deployment, workload: Workload,
                 rng: np.random.Generator, progress: Progress | None = None,
                 pools: list[PoolPlan] | None = None, stream_dir: Path | None = None,
                 router: Router | None = None):
        self.scenario, self.deployment, self.workload = scenario, deployment, workload
        self.env = simpy.Environment()
        sim = scenario.simulation
        self.recorder = Recorder(iteration_rows=sim.iteration_rows,
                                 sample_every=sim.iteration_sample_every, stream_dir=stream_dir)
        self.pools = pools or [PoolPlan("colocated", scenario, deployment,
                                        scenario.cluster.router)]
        self.router = router if router is not None else ROUTERS[scenario.cluster.router](rng)
        self._always_served = min(always_served_tokens(p.deployment, p.scenario)
                                  for p in self.pools)
        self.progress = progress
        self.ended = 0
        self.arrived = 0                 # requests offered to the cluster (retries included)
        self.last_end_s: float | None = None      # when the last request ended
        # data-parallel ranks of a MoE model with expert parallelism step together
        lockstep = scenario.cluster.expert_parallel and deployment.model.num_moe_layers > 0 \
            and scenario.cluster.replicas > 1
        self.replicas: list[Replica] = []
        self._pool_of: list[PoolPlan] = []        # per replica index
        self.links: dict[int, KvLink] = {}        # prefill replica index -> its KV link
        transfer = scenario.cluster.kv_transfer
        for pool in self.pools:
            dep = pool.deployment
            cost = deployment_cost_model(pool.scenario, dep)
            swap_s = dep.block_bytes / dep.device.pcie_bandwidth
            for _ in range(pool.scenario.cluster.replicas):
                i = len(self.replicas)
                self._pool_of.append(pool)
                self.replicas.append(Replica(
                    self.env, i, self._make_engine(i, cost=cost), cost, self.recorder,
                    # speculative steps emit at random: no decode runs to cost ahead
                    fast_forward=scenario.simulation.fast_forward
                    and not scenario.speculative.enabled,
                    swap_seconds_per_block=swap_s,
                    **load_timing_args(scenario.scheduler.kv_offload, dep),
                    check_invariants=scenario.simulation.check_invariants,
                    on_finish=self._on_end, on_abort=self._on_abort, lockstep=lockstep,
                    role=pool.role, on_prefilled=self._on_prefilled,
                    on_reserved=self._send))
                if pool.role == "prefill":
                    self.links[i] = KvLink(self.env, transfer.bandwidth_gb_s * 1e9,
                                           transfer.latency_us * 1e-6, self._on_transferred)
        self.recorder.totals = self._iteration_totals()
        # an elastic fleet: replicas beyond cluster.replicas start off
        self.autoscaler: Autoscaler | None = None
        self._failed: set[int] = set()            # held down by a failure what-if
        if scenario.autoscaler is not None:
            initial = scenario.cluster.replicas
            dep = self.pools[0].deployment
            weights = weight_bytes_per_device(dep.model, dep.tensor_parallel,
                                              pp=dep.pipeline_parallel)
            self.autoscaler = Autoscaler(self, scenario.autoscaler, initial,
                                         scenario.autoscaler.cold_start_s(weights))
            for replica in self.replicas[initial:]:
                replica.start_off()
            self.autoscaler.start()
        self.group = LockstepGroup(self.env, self.replicas, self.replicas[0].cost) \
            if lockstep else None
        decode_pools = [p for p in self.pools if p.role == "decode"]
        self.decode_router = ROUTERS[decode_pools[0].router](rng) if decode_pools else None
        # in flight, by id: (request, prefill replica, its engine then, decode replica)
        self._transfers: dict[int, tuple[Request, Replica, Engine, Replica]] = {}
        self._upcoming = self.workload.requests()
        self._next: Request | None = None    # taken from the workload, not yet arrived
        # failure what-ifs: the replicas routers may pick, engines of lost replicas (for their
        # counters), requests waiting for any replica to come back, re-routings so far
        self._set_up()
        self.router.bind([r for r in self.replicas if r.role != "decode"])
        if self.decode_router is not None:
            self.decode_router.bind(self._decode_up)
        self.retired_engines: list[Engine] = []
        self._parked: list[Request] = []
        self.rerouted = 0
        self._resending: dict[int, Request] = {}   # aborted, to be sent again after a backoff
        if scenario.failures:
            for replica in self.replicas:
                replica.speed_changes_s = speed_changes(scenario.failures, replica.index)
            start_failures(self, scenario.failures)
        self.env.process(self._arrivals())

    def _iteration_totals(self) -> IterationTotals:
        """What the summary totals over the iteration rows: each replica's KV blocks, and for
        pipelined pools the share of a stage's time an even layer split keeps busy."""
        kv_blocks = np.array([p.deployment.kv_blocks for p in self._pool_of], dtype=np.int64)
        pipelines = []
        for pool in self.pools:
            pp = pool.deployment.pipeline_parallel
            if pp > 1:
                layers = pool.deployment.model.num_layers
                pipelines.append((np.array([r.index for r in self.replicas_of(pool)]), pp,
                                  layers / (pp * -(-layers // pp))))
        return IterationTotals(kv_blocks, pipelines)

    def replicas_of(self, pool: PoolPlan) -> list[Replica]:
        return [r for r in self.replicas if self._pool_of[r.index] is pool]

    def _set_up(self) -> None:
        """The replicas up: those arrivals may go to (prefill or colocated), and decode ones."""
        self._up = [r for r in self.replicas if not r.is_down and r.role != "decode"]
        self._decode_up = [r for r in self.replicas if not r.is_down and r.role == "decode"]
        if self.autoscaler is not None:       # (not the draining ones), the router's heaps
            self._up = [r for r in self._up if self.autoscaler.routable(r.index)]
            self.router.bind(self._up)          # standing for them

    @property
    def parked(self) -> list[Request]:
        """Requests waiting for any replica to come up."""
        return self._parked

    @property
    def ttft_slo_s(self) -> float | None:
        return self.scenario.slo.targets(self.workload.slo_class).ttft_s

    # -- the elastic fleet (sim/cluster/autoscaler.py) ------------------------------------------
    def fleet_changed(self) -> None:
        """Replicas started or stopped draining: the router's choice changes."""
        self._set_up()

    def replica_ready(self, index: int) -> None:
        """A provisioned replica is up (unless a failure what-if holds it down)."""
        if index not in self._failed:
            self._switch_on(index)
        else:
            self._set_up()

    def replica_off(self, index: int) -> None:
        """A drained replica (empty) stops."""
        if not self.replicas[index].is_down:
            self.replicas[index].fail()
        self._set_up()

    def _make_engine(self, index: int, restart: int = 0, cost: CostModel | None = None) -> Engine:
        """``cost``: the replica's cost model (by default its replica's: a restart)."""
        pool = self._pool_of[index]
        cfg, dep, seed = self.scenario.scheduler, pool.deployment, self.scenario.seed
        # a restarted replica's sampling policy gets its own stream, still from the scenario seed
        rng = np.random.default_rng((seed, 1, index) if restart == 0 else (seed, 1, index, restart))
        tier = None
        if cfg.kv_offload is not None:      # (a restart's tier starts empty, like its cache)
            tier = host_tier(cfg.kv_offload, dep, cost or self.replicas[index].cost,
                             cfg.max_batched_tokens)
        kv = KVCache(dep.kv_blocks, dep.block_size, cfg.prefix_caching, host_tier=tier)
        # stepping (fast_forward off) is the reference: every request updated every iteration
        spec = self.scenario.speculative
        sampler = None if not spec.enabled else AcceptanceSampler(
            spec, np.random.default_rng((seed, 3, index, restart)))
        return Engine(SCHEDULERS[cfg.name](cfg, kv, host_swap_blocks=dep.host_swap_blocks, rng=rng),
                      decode_cohort=self.scenario.simulation.fast_forward,
                      overload=self.scenario.overload, hand_off=pool.role == "prefill",
                      speculative=sampler, speculative_tokens=spec.num_tokens)

    # -- arrivals (open loop from the workload, or closed-loop clients) -----------------------
    _closed_loop: ClosedLoop | None = None   # the clients, for closed-loop workloads

    def _arrivals(self):
        env = self.env
        if self.workload.closed_loop is not None:
            # clients send requests as earlier ones end; run() records what none has sent
            self._closed_loop = ClosedLoop(env, self._upcoming, self.workload.closed_loop,
                                           self._admit)
            self._upcoming = self._closed_loop
            self._closed_loop.start()
            return
        scheduled_s = env.now         # when the event that woke this process was scheduled
        for req in self._upcoming:
            delay = req.arrival_s - env.now
            if delay > 0:
                self._next = req
                scheduled_s = env.now
                yield env.timeout(delay)
                self._next = None
            self._admit(req, req.arrival_s, scheduled_s)

    def _admit(self, req: Request, now_s: float | None = None,
               scheduled_s: float | None = None) -> None:
        """An arrival (at ``now_s`` exactly, if given, by an event scheduled at
        ``scheduled_s``): rejected at once if it can never be served, else routed to a
        replica."""
        self.arrived += 1
        reason = "" if req.prompt_tokens + req.output_tokens <= self._always_served else \
            next(filter(None, (rejection_reason(req, p.deployment, p.scenario)
                               for p in self.pools)), "")
        if reason:
            req.status = RequestStatus.FINISHED_REJECTED
            req.reject_reason = reason
            req.finish_s = self.env.now if now_s is None else now_s
            self.recorder.request(req)
            self._on_end(req)
            return
        self._route(req, now_s, scheduled_s)

    def _route(self, req: Request, now_s: float | None = None,
               scheduled_s: float | None = None) -> None:
        if not self._up:
            self._parked.append(req)       # every replica is down: wait for one to come back
            return
        replica = self.router.pick(req, self._up)
        replica.submit(req, now_s, scheduled_s)
        self.router.load_changed(replica)
    # -- end of arrivals ------------------------------------------------------------------------

    # -- failures (sim/cluster/failures.py) -----------------------------------------------------
    def take_down(self, index: int) -> None:
        """A failure: the replica is lost, its requests routed elsewhere."""
        self._failed.add(index)
        replica = self.replicas[index]
        if replica.is_down:
            return
        evacuated = replica.fail()
        if self.autoscaler is not None:
            self.autoscaler.lost(index)
        self._set_up()
        for req in evacuated:
            self._reroute(req)

    def bring_up(self, index: int) -> None:
        """A failure ends: the replica restarts (if the fleet still has it)."""
        self._failed.discard(index)
        if self.autoscaler is None or self.autoscaler.routable(index):
            self._switch_on(index)

    def _switch_on(self, index: int) -> None:
        replica = self.replicas[index]
        if not replica.is_down:
            return
        self.retired_engines.append(replica.engine)
        replica.recover(self._make_engine(index, restart=len(self.retired_engines)))
        self._set_up()
        parked, self._parked = self._parked, []
        for req in parked:
            if req.view is None:
                self._route(req)           # arrived while every replica was down
            else:
                self._reroute(req)         # evacuated from a lost replica

    def _reroute(self, req: Request) -> None:
        """Send a lost replica's request to a live one with its progress but not its KV: it is
        prefilled again (prompt + tokens generated so far), like a recompute preemption."""
        if not self._up:
            self._parked.append(req)
            return
        old = req.view
        req.view = None
        self.rerouted += 1
        replica = self.router.pick(req, self._up)
        replica.submit(req)
        self.router.load_changed(replica)
        new = req.view
        new.output_generated = old.output_generated
        new.preemptions = old.preemptions + 1
        new.prefill_tokens_computed = old.prefill_tokens_computed
        new.cached_prompt_tokens = old.cached_prompt_tokens
        new.first_scheduled_s = old.first_scheduled_s

    # -- prefill/decode disaggregation ---------------------------------------------------------
    def _on_prefilled(self, req: Request, replica: Replica) -> None:
        """``replica`` prefilled ``req`` (its first token is out): the decode router picks a
        decode replica, which sets blocks aside for its KV (or queues it until blocks free up
        there); then the KV goes out on the prefill replica's link, one device's shard per
        link."""
        self.router.load_changed(replica)
        req.prefill_replica = replica.index
        if not self._decode_up:             # every decode replica is down: the request
            replica.release_transferred(req)   # waits for one, to be prefilled again
            self._parked.append(req)
            return
        decode = self.decode_router.pick(req, self._decode_up)
        self._transfers[req.id] = (req, replica, replica.engine, decode)
        decode.await_kv(req)                # blocks set aside at its next boundary: _send

    def _send(self, req: Request) -> None:
        """``req``'s decode replica set blocks aside: its KV goes out."""
        _, prefill, _, _ = self._transfers[req.id]
        dep = self._pool_of[prefill.index].deployment
        self.links[prefill.index].send(
            req, req.num_computed_tokens * dep.block_bytes / dep.block_size)

    def _on_transferred(self, req: Request, started_s: float) -> None:
        """``req``'s KV arrived: freed on the prefill side, the request queued on its decode
        replica in the blocks it set aside, to decode from where the prefill left off."""
        _, prefill, engine, decode = self._transfers.pop(req.id)
        req.kv_transfer_s = self.env.now - started_s
        if prefill.engine is engine:        # (not if the replica was lost and restarted since)
            prefill.release_transferred(req)
        decode.submit(req, transferred=True)
        self.decode_router.load_changed(decode)

    # -- aborts and client retries (sim/scheduling/overload.py) ---------------------------------
    def _on_abort(self, req: Request) -> None:
        """An attempt was aborted at ``req.finish_s``: its client sends the request again after
        the backoff, as a new attempt, while attempts remain; else it ends rejected."""
        self._load_changed(req.replica)
        req.wasted_tokens += req.prefill_tokens_computed + req.output_generated
        retry = self.scenario.overload.retry
        if req.attempts >= retry.max_attempts:
            req.status = RequestStatus.FINISHED_REJECTED
            req.reject_reason = f"aborted: {req.abort_reason}"
            self.recorder.request(req)
            self._on_end(req)
            return
        resend_s = req.finish_s + retry.backoff_s
        req.new_attempt(resend_s)
        self._resending[req.id] = req
        self.env.process(self._resend(req, resend_s))

    def _resend(self, req: Request, resend_s: float):
        scheduled_s = self.env.now
        if resend_s > self.env.now:
            yield self.env.timeout(resend_s - self.env.now)
        del self._resending[req.id]
        self._admit(req, resend_s, scheduled_s)

    def _load_changed(self, index: int) -> None:
        """A request left replica ``index`` (-1: none): its router sees the new load."""
        if index >= 0:
            replica = self.replicas[index]
            router = self.decode_router if replica.role == "decode" else self.router
            router.load_changed(replica)

    def _on_end(self, req: Request) -> None:
        self._load_changed(req.replica)
        if self.autoscaler is not None:
            self.autoscaler.on_request_end(self.env.now, req.first_token_s - req.arrival_s)
            if req.replica >= 0 and self.autoscaler.state[req.replica] == DRAINING:
                # (from outside the replica's own process, which this end may be running in)
                self.env.timeout(0).callbacks.append(
                    lambda _, i=req.replica: self.autoscaler.maybe_off(i))
        if self._closed_loop is not None:     # closed loop: the request's client may send again
            self._closed_loop.on_end(req)
        self.ended += 1
        if self.ended == len(self.workload):
            self.last_end_s = self.env.now
        if self.progress is not None and (self.ended % 512 == 0):
            self.progress(self.ended, len(self.workload))

    def run(self) -> float:
        """Run to the end (or the horizon); returns the simulated duration in seconds."""
        horizon = self.scenario.simulation.horizon_s
        if horizon is None:
            self.env.run()
        else:
            self.env.run(until=horizon)
        # the end: when the last request ended (deadline timers of requests long gone may fire
        # after it, and mean nothing), else when the events ran out, or the horizon
        end = self.env.now if horizon is None else horizon
        if horizon is None and self.last_end_s is not None:
            end = self.last_end_s
        if self.autoscaler is not None:
            self.autoscaler.close(end)
        for replica in self.replicas:
            replica.settle(end)      # a decode run cut by the horizon: apply its past iterations
        # in-flight requests at the horizon are reported, not lost
        for replica in self.replicas:
            if replica.is_down:
                continue           # its requests were routed elsewhere or are parked
            for req in replica.engine.in_flight():
                self.recorder.request(req)
        for req in self._parked:
            self.recorder.request(req)
        for req, *_ in self._transfers.values():   # KV on the wire, or waiting for blocks
            self.recorder.request(req)
        for req in self._resending.values():      # aborted, their next attempt not sent yet
            req.arrival_s = math.nan
            self.recorder.request(req)
        # so are those that had not arrived yet (state "waiting", no replica)
        if self._next is not None:
            self.recorder.request(self._next)
        for req in self._upcoming:
            self.recorder.request(req)
        if self.progress is not None:
            self.progress(self.ended, len(self.workload))
        return float(end)


@dataclass
class RunStats:
    """What a run's summary needs from its replicas and engines besides the two tables (plain
    data: a partitioned run's workers send theirs back to be added up)."""

    busy_s: list[float]              # per replica index
    energy_j: list[float]            # per replica index
    iterations: int
    kv_hits: int
    kv_queries: int
    preemptions: int                 # scheduler preemptions and re-routings
    rerouted: int
    speculative_accepted: int
    speculative_checks: int
    totals: IterationTotals
    # per replica, the seconds it was provisioned (an autoscaled fleet; None: the whole run)
    provisioned_s: list[float] | None = None
    # the host KV tier (scheduler.kv_offload): prompt blocks loaded from it at first admission,
    # all blocks loaded, blocks stored in it, blocks it dropped
    host_hits: int = 0
    host_loads: int = 0
    host_stores: int = 0
    host_evictions: int = 0

    @classmethod
    def of(cls, cluster: Cluster) -> "RunStats":
        engines = [r.engine for r in cluster.replicas] + cluster.retired_engines
        samplers = [e.speculative for e in engines if e.speculative is not None]
        replicas = cluster.replicas
        return cls(
            busy_s=[r.busy_s for r in replicas], energy_j=[r.energy_j for r in replicas],
            iterations=sum(r.iterations for r in replicas),
            kv_hits=sum(e.kv.hits for e in engines),
            kv_queries=sum(e.kv.queries for e in engines),
            preemptions=sum(e.scheduler.num_preemptions for e in engines) + cluster.rerouted,
            rerouted=cluster.rerouted,
            speculative_accepted=sum(s.accepted_total for s in samplers),
            speculative_checks=sum(s.verifications for s in samplers),
            totals=cluster.recorder.totals,
            provisioned_s=None if cluster.autoscaler is None
            else list(cluster.autoscaler.provisioned_s),
            host_hits=sum(e.kv.host_hits for e in engines),
            host_loads=sum(e.kv.host_loads for e in engines),
            host_stores=sum(e.kv.host_stores for e in engines),
            host_evictions=sum(e.kv.host_evictions for e in engines))

    def add(self, other: "RunStats") -> None:
        """Add another partition's figures (each replica is simulated in one partition)."""
        self.busy_s = [a + b for a, b in zip(self.busy_s, other.busy_s)]
        self.energy_j = [a + b for a, b in zip(self.energy_j, other.energy_j)]
        for name in ("iterations", "kv_hits", "kv_queries", "preemptions", "rerouted",
                     "speculative_accepted", "speculative_checks", "host_hits", "host_loads",
                     "host_stores", "host_evictions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.totals.add_totals(other.totals)


def simulate(scenario: Scenario, progress: Progress | None = None, backend: str = "local",
             address: str | None = None) -> Result:
    """Run a scenario and return its Result (tables, summary, resolved scenario). ``backend``
    and ``address``: where a partitioned run's parts run (sim/cluster/partition.py)."""
    if backend != "local" or address is not None:
        from sim.cluster.partition import BACKENDS
        if backend not in BACKENDS:
            raise LlmsimError(f"backend: unknown backend {backend!r}; expected one of "
                              f"{', '.join(BACKENDS)}")
        if backend == "local":
            raise LlmsimError("--address is for --backend ray; the local backend uses this "
                              "machine")
        if scenario.simulation.partitions == 1:
            raise LlmsimError(f"backend {backend}: only a partitioned run has parts to run "
                              "elsewhere; set simulation.partitions >= 2")
    if scenario.simulation.partitions > 1:
        from sim.cluster.partition import simulate_partitioned
        return simulate_partitioned(scenario, progress, backend, address)
    started = time.perf_counter()
    pools = resolve_pools(scenario)
    rng = np.random.default_rng(scenario.seed)      # the workload's draws, then the router's
    workload = scenario_workload(scenario, pools, rng)
    # long runs stream their tables to files as rows complete (removed with the Result)
    stream_dir = Path(tempfile.mkdtemp(prefix="llmsim-")) \
        if scenario.simulation.stream_outputs else None
    cluster = Cluster(scenario, pools[0].deployment, workload, rng, progress, pools, stream_dir)
    duration = cluster.run()
    recorder = cluster.recorder
    recorder.finish()
    requests = recorder.request_columns()
    wall = time.perf_counter() - started
    stats = RunStats.of(cluster)
    topology = {}
    if scenario.cluster.pools:
        topology.update(disaggregation_summary(cluster, requests, duration))
    if cluster.group is not None and cluster.group.step_s:
        # of the expert-parallel group's step time, the MoE layers' token exchange
        topology["expert_exchange_share"] = cluster.group.exchange_s / cluster.group.step_s
    summary = run_summary(scenario, pools, workload, requests, stats, duration, wall, topology,
                          cluster.autoscaler)
    result = Result.of(recorder, summary, scenario.to_dict())
    if cluster.autoscaler is not None:
        result.fleet_events = cluster.autoscaler.events
    return result


def scenario_workload(scenario: Scenario, pools: list[PoolPlan],
                      rng: np.random.Generator) -> Workload:
    """The scenario's requests, drawn from ``rng`` (which the run's router then goes on with)."""
    return build_workload(scenario.workload, rng, base_dir=scenario.base_dir,
                          source=scenario.path,
                          max_model_len=min(p.deployment.max_model_len for p in pools))


def run_summary(scenario: Scenario, pools: list[PoolPlan], workload: Workload,
                requests: Columns, stats: RunStats, duration: float, wall: float,
                topology: dict, fleet: Autoscaler | None = None) -> dict:
    """The summary of a finished run (or of a partitioned run's added-up partitions)."""
    met = slo_met(requests, scenario.slo)       # each request's SLO outcome, once
    energy = cost = 0.0
    devices = first = 0
    for pool in pools:          # replicas are numbered pool after pool
        dev, tp = pool.deployment.device, pool.deployment.devices_per_replica
        n = pool.scenario.cluster.replicas
        busy_s, energy_j = stats.busy_s[first:first + n], stats.energy_j[first:first + n]
        # replica-seconds paid for: the whole run, or each replica's provisioned time
        paid_s = n * duration if stats.provisioned_s is None else \
            sum(stats.provisioned_s[first:first + n])
        first += n
        idle_s = max(paid_s - sum(busy_s), 0.0)
        energy += sum(energy_j) + idle_s * dev.idle_w * tp
        devices += n * tp
        cost += n * tp * dev.price_usd_per_hour * duration / 3600.0 \
            if stats.provisioned_s is None else tp * dev.price_usd_per_hour * paid_s / 3600.0
    deployment = pools[0].deployment
    totals = stats.totals
    extra = {
        # time-weighted over busy time, all replicas
        "kv_usage_mean": totals.kv_usage_mean(bool(sum(stats.busy_s))),
        "requests_clipped": int(workload.clipped_requests),   # lengths cut to max_model_len
        "kv_blocks_per_replica": deployment.kv_blocks,
        "kv_tokens_per_replica": deployment.kv_tokens,
        "prefix_cache_hit_rate": stats.kv_hits / stats.kv_queries if stats.kv_queries else 0.0,
        "iterations": stats.iterations,
        "events": totals.rows + len(workload),
        "devices": devices,
        **topology,
    }
    if scenario.scheduler.kv_offload is not None and scenario.scheduler.kv_offload.enabled:
        queries = stats.kv_queries
        extra["kv_offload"] = {     # prompt blocks at first admission, as prefix_cache_hit_rate
            "host_hit_rate": stats.host_hits / queries if queries else 0.0,
            "hit_rate": (stats.kv_hits + stats.host_hits) / queries if queries else 0.0,
            "blocks_loaded": stats.host_loads, "blocks_stored": stats.host_stores,
            "blocks_dropped": stats.host_evictions}
    if scenario.speculative.enabled:
        checks = stats.speculative_checks
        extra["speculative_tokens_per_step"] = 1 + stats.speculative_accepted / checks \
            if checks else 0.0
    if any(p.deployment.pipeline_parallel > 1 for p in pools):
        extra["pipeline_bubble_fraction"] = totals.pipeline_bubble_fraction
    if scenario.failures:
        extra["requests_rerouted"] = stats.rerouted
        extra["slo_attainment_during_failures"] = failure_window_attainment(
            requests, met, scenario.failures, duration)
    if fleet is not None:
        extra["autoscaler"] = fleet.summary(requests, met, duration)
    summary = summarize(requests, slo=scenario.slo, duration_s=duration,
                        wall_time_s=wall, energy_j=energy, cost_usd=cost,
                        preemptions=stats.preemptions,
                        batch_size_mean=totals.batch_size_mean, extra=extra, met=met)
    assert summary["requests_total"] == len(workload), "a request was lost"
    if scenario.simulation.check_invariants:
        check_outcomes(requests, scenario)
    return summary


def disaggregation_summary(cluster: Cluster, requests: Columns, duration: float) -> dict:
    """Pools, KV transfer times (and their share of the end-to-end latency) and how busy the
    prefill replicas' links were."""
    transfer_all = requests.numeric("kv_transfer_s")
    sent = np.isfinite(transfer_all)
    transfer = transfer_all[sent]
    done = sent & requests.mask("state", "completed")
    e2e = float(requests.numeric("e2e_s")[done].sum())
    links = [link.busy_s / duration for link in cluster.links.values()] if duration else []
    pools = []
    for pool in cluster.pools:
        dep = pool.deployment
        pools.append({"role": pool.role, "replicas": pool.scenario.cluster.replicas,
                      "tensor_parallel": dep.tensor_parallel,
                      "pipeline_parallel": dep.pipeline_parallel, "hardware": dep.device.name,
                      "kv_blocks_per_replica": dep.kv_blocks})
    return {
        "pools": pools,
        "kv_transfers": int(len(transfer)),
        "kv_transfer_s": {"mean": float(transfer.mean()) if len(transfer) else 0.0,
                          "p50": float(np.percentile(transfer, 50)) if len(transfer) else 0.0,
                          "p99": float(np.percentile(transfer, 99)) if len(transfer) else 0.0},
        # of the completed transferred requests' end-to-end time, the part spent on the wire
        "kv_transfer_share": float(transfer_all[done].sum() / e2e) if e2e > 0 else 0.0,
        "kv_link_utilisation": {"mean": float(np.mean(links)) if links else 0.0,
                                "max": float(np.max(links)) if links else 0.0},
    }


def check_outcomes(requests: Columns, scenario: Scenario) -> None:
    """Every request ended completed or rejected with a reason, or is still in flight (only with
    a horizon, or with failures that left it without a replica); each appears once."""
    ids = requests.numeric("request_id")
    assert len(np.unique(ids)) == len(ids), "a request recorded twice"
    rejected = requests.mask("state", "rejected")
    no_reason = requests.mask("reject_reason", "")
    assert not (rejected & no_reason).any(), "a rejection without a reason"
    assert (rejected | no_reason).all(), "a reason without a rejection"
    if scenario.simulation.horizon_s is None and not scenario.failures:
        assert (rejected | requests.mask("state", "completed")).all(), \
            "a request unfinished without horizon"
