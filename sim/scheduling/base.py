"""The scheduler interface, the engine options every scheduler shares, and the batch plan.

Like vLLM v1, a scheduler decides which requests run this iteration and how many new tokens each
computes; the :class:`~sim.memory.KVCache` says whether those tokens get blocks. The scheduler owns
the replica's ``waiting`` queue (a :class:`~sim.scheduling.request_queue.RequestQueue`) and
``running`` list and moves requests between them. :meth:`Scheduler.schedule` is vLLM v1's one
loop (running requests first, then waiting ones) and applying a finished iteration is shared code
here, so a policy writes hooks: which head of the queue may start (:meth:`Scheduler.admission`),
what follows an admission or a prefill chunk, and where decode tokens are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sim.config import require
from sim.memory.kv_cache import KVCache
from sim.memory.swap import SwapSpace
from sim.scheduling.cohort import DecodeCohort
from sim.scheduling.request_queue import QUEUES, RequestQueue
from sim.scheduling.view import RequestView
from sim.workload.request import RequestStatus


@dataclass(frozen=True)
class KvOffloadConfig:
    """``scheduler.kv_offload``: a host-memory KV tier per device (LMCache's CPU backend, vLLM's
    KV offloading). Prefix blocks the device cache evicts move there; a later prompt with that
    prefix loads them over the host link when that beats recomputing them. Off with no capacity.
    """

    capacity_gib: float = 0.0       # host memory per device for offloaded blocks (0: off)
    bandwidth_gb_s: float = 32.0    # host -> device, per device (PCIe 5 x16 as measured, about)
    latency_us: float = 10.0        # per load: the transfer's set-up

    def __post_init__(self):
        require(self.capacity_gib >= 0 and math.isfinite(self.capacity_gib), "capacity_gib",
                "a number >= 0 (GiB; 0: off)", self.capacity_gib)
        require(self.bandwidth_gb_s > 0 and math.isfinite(self.bandwidth_gb_s)
                or (self.capacity_gib == 0 and self.bandwidth_gb_s == 0), "bandwidth_gb_s",
                "a number > 0 (GB/s)", self.bandwidth_gb_s)
        require(self.latency_us >= 0 and math.isfinite(self.latency_us), "latency_us",
                "a number >= 0 (microseconds)", self.latency_us)

    @property
    def enabled(self) -> bool:
        return self.capacity_gib > 0

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6

    def capacity_blocks(self, block_bytes: int) -> int:
        """Blocks of ``block_bytes`` (one block on one device) the tier holds."""
        return int(self.capacity_gib * 2**30 // block_bytes)

    def load_s_per_block(self, block_bytes: int) -> float:
        """Seconds one block takes over the host link (every device loads its share at once)."""
        return block_bytes / (self.bandwidth_gb_s * 1e9) if self.bandwidth_gb_s else math.inf


@dataclass(frozen=True)
class EngineConfig:
    """Engine options shared by all schedulers (vLLM's names where it has them)."""

    name: str = "fcfs"
    max_num_seqs: int = 256                 # requests in a batch at most
    max_batched_tokens: int = 8192          # new tokens in one iteration at most
    block_size: int = 16                    # tokens per KV block
    prefix_caching: bool = True
    chunked_prefill: bool = True            # false: vLLM v0 (whole prompts, prefill first)
    gpu_memory_utilization: float = 0.9     # fraction of device memory the engine may use
    kv_blocks: int | None = None            # override the computed number of KV blocks
    activation_reserve_gib: float | None = None   # None: estimate (see sim.memory.capacity)
    preemption_mode: Literal["recompute", "swap"] = "recompute"
    swap_space_gib: float = 4.0             # host memory for swapped-out KV, per device
    max_model_len: int | None = None        # None: the model's context length
    queue: str = "fcfs"                     # the waiting queue's order (QUEUES)
    # host-memory KV tier (null, the default, or capacity 0: none); left out of the scenario's
    # echo while unset
    kv_offload: KvOffloadConfig | None = None

    def __post_init__(self):
        require(self.max_num_seqs > 0, "max_num_seqs", "an integer > 0", self.max_num_seqs)
        require(self.max_batched_tokens > 0, "max_batched_tokens", "an integer > 0",
                self.max_batched_tokens)
        require(self.chunked_prefill or self.max_batched_tokens >= self.max_num_seqs,
                "max_batched_tokens",
                f"an integer >= max_num_seqs ({self.max_num_seqs}) with chunked_prefill off "
                "(a decode iteration runs every running request, as in vLLM v0)",
                self.max_batched_tokens)
        require(self.block_size > 0, "block_size", "an integer > 0", self.block_size)
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization",
                "a number in (0, 1]", self.gpu_memory_utilization)
        require(self.kv_blocks is None or self.kv_blocks > 0, "kv_blocks", "an integer > 0 or null",
                self.kv_blocks)
        require(self.activation_reserve_gib is None or self.activation_reserve_gib >= 0,
                "activation_reserve_gib", "a number >= 0 or null", self.activation_reserve_gib)
        require(self.swap_space_gib >= 0, "swap_space_gib", "a number >= 0", self.swap_space_gib)
        require(self.max_model_len is None or self.max_model_len > 0, "max_model_len",
                "an integer > 0 or null", self.max_model_len)
        QUEUES.require(self.queue, "queue")


@dataclass(slots=True)
class BatchPlan:
    """One iteration: who runs, with how many new tokens, and what changed to make room."""

    requests: list[RequestView] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)
    computed_before: list[int] = field(default_factory=list)
    num_emitting: int = 0                   # requests whose chunk completes their known tokens
    preempted: list[RequestView] = field(default_factory=list)
    admitted: int = 0                       # requests moved from waiting to running
    swap_in_blocks: int = 0
    swap_out_blocks: int = 0
    kv_load_blocks: int = 0                 # prefix blocks loaded from the host KV tier
    # Fast-forward contract: a stable plan is decode-only and will be planned again, unchanged
    # but for context lengths, until a request finishes, memory runs out, (if wake_on_arrival) a
    # new request arrives, or stable_steps iterations have run (None: no such limit).
    stable: bool = False
    wake_on_arrival: bool = True
    stable_steps: int | None = None
    shared_kv_tokens: int = 0               # decode keys of shared prefixes read once per group
    batched_tokens: int = 0                 # tokens that count against max_batched_tokens
    # The scheduler's DecodeCohort (sim/scheduling/cohort.py), when it runs this iteration: that
    # many decodes, not listed in ``requests``, ahead of them in running order, with
    # ``cohort_context_tokens`` tokens computed before this iteration, summed, and at most
    # ``cohort_max_context`` for one of them.
    cohort_size: int = 0
    cohort_context_tokens: int = 0
    cohort_max_context: int = 0
    # speculative decoding: decodes verifying drafts (each scheduled 1 + drafts tokens), and
    # the tokens computed before this iteration by them, summed (the draft's own cost)
    num_speculative: int = 0
    speculative_context_tokens: int = 0

    def add(self, request: RequestView, num_new_tokens: int) -> None:
        self.requests.append(request)
        self.num_new_tokens.append(num_new_tokens)
        self.computed_before.append(request.num_computed_tokens)
        if request.num_computed_tokens + num_new_tokens >= request.num_tokens:
            self.num_emitting += 1

    @property
    def is_empty(self) -> bool:
        return not self.requests and not self.cohort_size

    @property
    def num_seqs(self) -> int:
        return len(self.requests) + self.cohort_size

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens) + self.cohort_size

    @property
    def context_tokens(self) -> int:
        """Tokens computed before this iteration, summed over its requests."""
        return sum(self.computed_before) + self.cohort_context_tokens

    @property
    def max_context_tokens(self) -> int:
        """Tokens computed before this iteration by the request that has the most."""
        return max(max(self.computed_before, default=0), self.cohort_max_context)


class Scheduler:
    """Base class: queues, vLLM v1's scheduling loop with its hooks, shared lifecycle, and the
    fast-forward helpers."""

    Config = EngineConfig
    view_type: type[RequestView] = RequestView    # OracleView for the one policy allowed to peek
    budget_counts_decodes = True    # decode tokens count against max_batched_tokens

    def __init__(self, config: EngineConfig, kv: KVCache, host_swap_blocks: int = 0,
                 rng: np.random.Generator | None = None):
        self.config = config
        self.kv = kv
        self.rng = rng if rng is not None else np.random.default_rng(0)   # for sampling policies
        self.waiting: RequestQueue = QUEUES[config.queue]()
        self.running: list[RequestView] = []
        # prefilled requests handed to another replica, holding their KV until it is sent;
        # and, on a decode replica, the blocks set aside for KV on its way here
        self.transferring: list[RequestView] = []
        self.incoming: list[RequestView] = []
        self.swap_space = SwapSpace(host_swap_blocks)     # for swapped-out KV
        self.num_preemptions = 0
        self.num_iterations = 0      # iterations completed (decode runs count every step)
        self.cohort: DecodeCohort | None = None   # set by the Engine if supports_decode_cohort
        # drafted tokens a decode verifies per step (speculative decoding; set by the Engine)
        self.speculative_tokens = 0

    # -- interface -----------------------------------------------------------------------------
    def add_request(self, request: RequestView) -> None:
        request.status = RequestStatus.WAITING
        self.waiting.push(request)

    def schedule(self, now_s: float) -> BatchPlan:
        """One iteration as vLLM v1 plans it: running requests first (:meth:`schedule_running`),
        then, unless someone was preempted, waiting ones (:meth:`admit_waiting`)."""
        plan = BatchPlan()
        budget, decode_only = self.schedule_running(plan, self.config.max_batched_tokens)
        if not plan.preempted:
            budget = self.admit_waiting(plan, budget, now_s)
        plan.batched_tokens = self.config.max_batched_tokens - budget
        plan.stable = decode_only and plan.admitted == 0 and not plan.preempted \
            and not plan.swap_in_blocks and plan.num_seqs == len(self.running)
        plan.wake_on_arrival = not self.waiting or self.waiting.arrival_may_lead
        return plan

    def on_finish(self, request: RequestView) -> None:
        """Called when a request completes (history-based policies learn from it)."""

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def supports_decode_cohort(self) -> bool:
        """Whether the engine may track this scheduler's steady decodes as a DecodeCohort: the
        scheduler must give every running request ahead of the first non-decoding one exactly
        one token per iteration, in ``running`` order, and read no member's progress (see
        sim/scheduling/cohort.py)."""
        return False

    def kv_holders(self) -> list:
        """Everything holding KV blocks, for KVCache.check: running requests and waiting ones
        that kept blocks (a policy holding blocks otherwise adds its holders)."""
        return list(self.running) + [r for r in self.waiting if r.kv_blocks] \
            + self.transferring + self.incoming

    # -- policy hooks --------------------------------------------------------------------------
    def admission(self, request: RequestView, computed: list, num_cached: int,
                  num_new: int) -> Any:
        """Whether the queue's head may start now with ``num_new`` tokens to compute after
        ``num_cached`` served by the ``computed`` prefix-cache blocks: None stops admission for
        this iteration; anything else lets it start, and is handed to :meth:`on_admitted` once
        its blocks are allocated."""
        return True

    def on_admitted(self, request: RequestView, num_new: int, admission: Any) -> None:
        """``request`` has joined the batch with ``num_new`` tokens this iteration."""

    def on_prefill_chunk(self, request: RequestView, num_tokens: int) -> None:
        """A running request got blocks for a prefill chunk that brings it to ``num_tokens``
        computed tokens."""

    def output_limit(self, view: RequestView) -> int:
        """The output length a policy plans with: the request's stated limit, else the
        policy's default (a scheduler never sees true output lengths)."""
        return view.max_new_tokens or self.default_output_limit

    @property
    def default_output_limit(self) -> int:
        """Output tokens assumed for a request that states no limit (policies that plan)."""
        raise NotImplementedError(f"{type(self).__name__} plans with no output length")

    # -- the loop ------------------------------------------------------------------------------
    def schedule_running(self, plan: BatchPlan, budget: int) -> tuple[int, bool]:
        """Running requests in admission order, each taking the tokens it still needs (one for
        a decode, the rest of its prompt for a prefill) cut to the token budget; a request that
        cannot get a block preempts the most recently admitted ones (possibly itself). Without
        ``budget_counts_decodes`` decodes never wait for budget, prefill chunks do. Returns the
        budget left and whether every request scheduled decodes."""
        running = self.running
        # plan.add inlined: without a cohort (stepping) this loop visits every running request
        scheduled, new_tokens, before = plan.requests, plan.num_new_tokens, plan.computed_before
        counts_decodes = self.budget_counts_decodes
        decode_only = True
        i = 0
        cohort = self.cohort
        if cohort is not None and cohort.size:
            # the steady decodes at the head of running, in one go (sim/scheduling/cohort.py)
            if cohort.allocate_step():
                i = cohort.size
                if counts_decodes:
                    budget -= i
            else:
                cohort.dissolve(running)    # memory pressure: every request in turn, below
        while i < len(running):
            req = running[i]
            computed, generated = req.num_computed_tokens, req.output_generated
            num_new = req.prompt_tokens + generated - computed
            if num_new == 1 and generated:          # a decode: one token, which it emits
                if counts_decodes and budget <= 0:
                    break                   # nobody behind it gets a token either
                if self.speculative_tokens:
                    # verify the drafts: its last token and each draft through the model
                    num_new = 1 + self.speculative_tokens
                    decode_only = False     # (a random number of tokens out: no fast-forward)
                    plan.num_speculative += 1
                    plan.speculative_context_tokens += computed
                if not self.allocate_or_preempt(req, num_new, plan):
                    break                   # the request preempted itself
                scheduled.append(req)
                new_tokens.append(num_new)
                before.append(computed)
                plan.num_emitting += 1
                if counts_decodes:
                    budget -= num_new
            else:                           # a prefill chunk (or a preempted one's recompute)
                decode_only = False
                if budget <= 0:
                    if counts_decodes:
                        break
                    i += 1                  # its next chunk waits for budget; decodes do not
                    continue
                if num_new > budget:
                    num_new = budget
                if not self.allocate_or_preempt(req, num_new, plan):
                    break
                scheduled.append(req)
                new_tokens.append(num_new)
                before.append(computed)
                if computed + num_new >= req.prompt_tokens + generated:
                    plan.num_emitting += 1
                budget -= num_new
                self.on_prefill_chunk(req, computed + num_new)
            i += 1
        if cohort is not None and cohort.step_allocated:
            plan.cohort_size = cohort.size
            plan.cohort_context_tokens = cohort.context_tokens
            plan.cohort_max_context = cohort.max_context_tokens
            plan.num_emitting += cohort.size
        return budget, decode_only

    def admit_waiting(self, plan: BatchPlan, budget: int, now_s: float) -> int:
        """Waiting requests in queue order while the token budget, ``max_num_seqs`` and KV
        blocks allow, stopping at the first that cannot start; with ``chunked_prefill`` the
        last one admitted may take a partial chunk, else prompts are admitted whole. Returns the
        budget left."""
        kv, waiting = self.kv, self.waiting
        chunked, max_num_seqs = self.config.chunked_prefill, self.config.max_num_seqs
        while waiting and budget > 0 and len(self.running) < max_num_seqs:
            req = waiting.peek()
            computed = self.cached_prefix(req)
            # host-tier blocks are cached tokens too (no budget), though they take new blocks
            loaded = self.host_prefix(req, computed)
            num_cached = (len(computed) + loaded) * kv.block_size
            num_new = req.num_tokens - req.num_computed_tokens - num_cached
            if num_new > budget:
                if not chunked:
                    break               # whole prompts only
                num_new = budget
            admission = self.admission(req, computed, num_cached, num_new)
            if admission is None or not kv.allocate(req, num_new, computed, loaded):
                break
            self.admit_head(req, num_cached, num_new, plan, now_s)
            plan.kv_load_blocks += loaded
            budget -= num_new
            self.on_admitted(req, num_new, admission)
        return budget

    # -- shared mechanics ----------------------------------------------------------------------
    def admit(self, request: RequestView, now_s: float) -> None:
        request.status = RequestStatus.RUNNING
        if request.first_scheduled_s != request.first_scheduled_s:   # NaN: first admission
            request.first_scheduled_s = now_s
        self.running.append(request)

    def preempt(self, victim: RequestView, plan: BatchPlan) -> None:
        """Take ``victim`` off the device: swap its KV to host if configured and there is room,
        else drop it and recompute later (keeping reusable blocks findable, as vLLM does)."""
        self.num_preemptions += 1
        victim.preemptions += 1
        victim.status = RequestStatus.PREEMPTED
        if self.config.preemption_mode == "swap" and self.swap_space.swap_out(self.kv, victim):
            plan.swap_out_blocks += victim.swapped_blocks
        else:
            self.kv.free(victim, keep_for_resume=True)
            victim.num_computed_tokens = 0
        plan.preempted.append(victim)
        self.waiting.push_front(victim)

    def cached_prefix(self, request: RequestView) -> list:
        """Prefix-cache blocks the queue's head may start from (none when it resumes with its
        own blocks, swapped or partly computed)."""
        if request.swapped_blocks or request.num_computed_tokens:
            return []
        return self.kv.get_computed_blocks(request)

    def host_prefix(self, request: RequestView, computed: list) -> int:
        """Blocks the queue's head loads from the host KV tier after its ``computed`` prefix
        (none when it resumes with its own blocks, as for :meth:`cached_prefix`)."""
        if self.kv.host_tier is None or request.swapped_blocks or request.num_computed_tokens:
            return 0
        return self.kv.host_blocks_to_load(request, len(computed))

    def admit_head(self, request: RequestView, num_cached: int, num_new_tokens: int,
                   plan: BatchPlan, now_s: float) -> None:
        """The queue's head (its blocks allocated) joins the batch: ``num_cached`` prompt tokens
        served by the prefix cache (or loaded from the host tier), ``num_new_tokens`` to compute
        this iteration."""
        self.waiting.pop()
        if request.swapped_blocks:
            self.swap_in(request, plan)
        if request.num_computed_tokens == 0 and request.preemptions == 0:
            request.cached_prompt_tokens = num_cached
        request.num_computed_tokens += num_cached
        self.admit(request, now_s)
        plan.add(request, num_new_tokens)
        plan.admitted += 1

    def allocate_or_preempt(self, request: RequestView, num_new_tokens: int,
                            plan: BatchPlan) -> bool:
        """Blocks for a running request's next tokens, preempting the most recently admitted
        running requests (vLLM's victims) until they fit; False if ``request`` itself had to go."""
        while not self.kv.allocate(request, num_new_tokens):
            victim = self.running.pop()
            self.preempt(victim, plan)
            if victim is request:
                return False
        return True

    def swap_in(self, request: RequestView, plan: BatchPlan) -> None:
        plan.swap_in_blocks += self.swap_space.swap_in(request)

    def finish(self, finished: list[RequestView]) -> None:
        """The engine says these requests are done: release their memory, learn from them."""
        for view in finished:
            view.status = RequestStatus.FINISHED_COMPLETED
            self.kv.free(view)
            self.on_finish(view)
        self._remove_running(finished)
        self.on_release(finished)

    def _remove_running(self, views: list[RequestView]) -> None:
        if len(views) <= 4:
            for view in views:
                self.running.remove(view)       # no __eq__: found by identity, in C
        else:
            done = set(map(id, views))
            self.running = [r for r in self.running if id(r) not in done]

    def admit_transferred(self, view: RequestView) -> None:
        """A request whose KV arrived from a prefill replica into blocks set aside for it (and
        its next token): it joins the batch at once, as a decode, unless the batch is full.
        (Queued behind a request that cannot fit, its reserved blocks could starve everyone.)"""
        if len(self.running) < self.config.max_num_seqs:
            view.status = RequestStatus.RUNNING
            self.running.append(view)
        else:
            self.add_request(view)

    def hand_off(self, views: list[RequestView]) -> None:
        """These prefilled requests go on to decode elsewhere: out of the batch, their KV kept
        until :meth:`release_transferred` (it is being sent). Nothing is learnt from them."""
        self._remove_running(views)
        self.transferring.extend(views)
        self.on_release(views)

    def release_transferred(self, view: RequestView) -> None:
        """``view``'s KV has been sent: its blocks return to the pool."""
        self.transferring.remove(view)
        self.kv.free(view)

    def abort(self, aborted: list[RequestView]) -> None:
        """The engine aborts these (overload controls, sim/scheduling/overload.py), between
        iterations: out of the batch or the queue, their device and host blocks released.
        Nothing is learnt from them: an aborted request's length says nothing of its output."""
        cohort = self.cohort
        if cohort is not None and cohort.size and any(v.cohort_step >= 0 for v in aborted):
            cohort.dissolve(self.running)       # members' progress written back first
        gone = set(map(id, aborted))
        self.running = [r for r in self.running if id(r) not in gone]
        self.waiting.remove_all(aborted)
        for view in aborted:
            if view.swapped_blocks:
                self.swap_space.swap_in(view)   # its host copy is dropped, not brought back
            self.kv.free(view)
            view.status = RequestStatus.FINISHED_REJECTED
        self.on_release(aborted)

    def on_release(self, views: list[RequestView]) -> None:
        """Hook: these requests left for good (completed or aborted); policies holding state
        per request drop it here."""

    # -- decode fast-forward -------------------------------------------------------------------
    def decode_run_steps(self, plan: BatchPlan, max_steps: int) -> int:
        """How many iterations the stable decode ``plan`` can repeat before memory runs out.

        Step 1's blocks are allocated; step k needs blocks for ``computed + k`` tokens per request.
        The answer is the largest k <= max_steps whose extra blocks fit in the free pool, so
        stepping would not have preempted anyone before it.
        """
        bs, free = self.kv.block_size, self.kv.num_free
        if plan.num_seqs * (max_steps // bs + 1) <= free:   # cheap bound: blocks crossed at most
            return max_steps
        extra = self.run_extra_blocks(plan)
        if extra(max_steps) <= free:
            return max_steps
        lo, hi = 1, max_steps          # extra(lo) <= free (step 1 is allocated), extra(hi) > free
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if extra(mid) <= free:
                lo = mid
            else:
                hi = mid
        return lo

    def run_extra_blocks(self, plan: BatchPlan):
        """``extra(k)``: the blocks a stable decode ``plan`` needs, beyond those of its first
        iteration (allocated when it was planned), to run ``k`` iterations."""
        growth = self.kv.decode_growth(plan.requests, plan.computed_before)
        cohort = self.cohort if plan.cohort_size else None
        first = cohort.step_blocks() if cohort is not None else 0

        def extra(k: int) -> int:
            total = growth.blocks(k)
            if cohort is not None:
                total += cohort.run_blocks(k) - first
            return total

        return extra
