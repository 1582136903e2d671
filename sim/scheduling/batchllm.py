"""``batchllm``: BatchLLM's policy for large offline batches with shared prefixes.

(Zhao et al., "BatchLLM: Optimizing Large Batched LLM Inference with Global Prefix Sharing and
Throughput-oriented Token Batching", arXiv 2412.03594.)

**Batches.** Requests are grouped in batches. With ``batch_window_s: 0`` (default) a batch is the
requests arriving at the same instant, e.g. a whole offline batch submitted at t=0
(``arrivals: {kind: burst}``). With ``batch_window_s: W`` a batch is the requests arriving within
W seconds of its first one; serving does not wait for the window to close: a request arriving
while the window is open is merged, at the next iteration, with the batch's groups of which no
member has started (their tree is rebuilt; groups already started keep their members, though a
newcomer with their prefix still hits it in the prefix cache while it is pinned). A request
arriving after the window (or at a later instant with W = 0) opens the next batch, which is
served after every group of the earlier ones (first come, first served between batches).

**Per batch** (``sim.scheduling.prefix_tree``): a prefix tree over the prompts' ``prefix_hashes``
(no ids: content nobody shares), flattened into single-level groups [shared prefix, suffixes] by
the paper's gain rule; the shared part is whole blocks. Groups are ordered by expected decode /
prompt ratio, largest first: ``sum(max_new_tokens) / sum(prompt_tokens)`` over the members, with
``default_max_new_tokens`` for a request that states no limit (the paper uses each request's
``max_tokens``; a scheduler never sees true output lengths). Ties keep arrival order; within a
group members keep tree order.

**Iterations** (memory-centric token batching): every running decode runs (no request-count cap
but the ``max_num_seqs`` safety limit); prefill chunks of running requests, then admissions in
group order, share a ``max_batched_tokens`` budget of prefill tokens (decode tokens do not count
against it). A request is admitted while the estimated peak KV of the running requests
(prompt + expected output, a shared prefix once per group) stays within ``kv_usage_cap`` of the
blocks: while outputs stay within their expected lengths this never preempts; if a running
request still cannot get a block (an output beyond ``default_max_new_tokens``), the most recently
admitted request is preempted, as in ``fcfs``.

**Sharing.** A group's first member computes the prefix alone; its allocation registers the
prefix blocks in the KV cache's prefix index, and the group then takes a reference on them (a
pin: LRU cannot evict them) until its last member finishes, when they join the free queue (still
reusable until evicted). Members admitted after that hit them. (Should nothing be able to run
because pins of waiting groups hold the memory the queue's head needs, after preemptions, the
pins are released and those groups fall back on the ordinary prefix cache.) Decode attention
reads a group's prefix once (a cascade kernel): plans report the duplicate keys in
``shared_kv_tokens``, which the replica passes to the cost model (fewer bytes, same FLOPs).

**Fast-forward**: a plan is stable when it decodes every running request and admits nobody;
nothing changes then until a completion (or, with nobody waiting or a window set, an arrival).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.config import require
from sim.memory.blocks import peak_blocks
from sim.memory.kv_cache import KVCache, PrefixPin
from sim.memory.reservations import BlockReservations
from sim.scheduling.base import BatchPlan, EngineConfig, Scheduler
from sim.scheduling.prefix_tree import Prompt, group_prompts
from sim.scheduling.view import RequestView


@dataclass(frozen=True)
class BatchLlmConfig(EngineConfig):
    name: str = "batchllm"
    max_num_seqs: int = 4096            # a safety limit (and the logits reserve), not the cap
    max_batched_tokens: int = 2048      # prefill-chunk tokens per iteration (decodes extra)
    kv_usage_cap: float = 0.95          # fraction of KV blocks the estimated peak may fill
    default_max_new_tokens: int = 256   # expected output of a request that states no limit
    batch_window_s: float = 0.0         # arrivals within this of a batch's first join it
    reorder: bool = True                # groups by expected decode/prompt ratio; false: arrival

    def __post_init__(self):
        super().__post_init__()
        require(self.queue == "fcfs", "queue", "fcfs (batchllm orders its queue by prefix group)",
                self.queue)
        require(self.chunked_prefill, "chunked_prefill",
                "true for batchllm (token batching chunks prefills)", self.chunked_prefill)
        require(self.prefix_caching, "prefix_caching",
                "true for batchllm (shared prefixes are found through the prefix cache)",
                self.prefix_caching)
        require(0 < self.kv_usage_cap <= 1, "kv_usage_cap", "a number in (0, 1]",
                self.kv_usage_cap)
        require(self.default_max_new_tokens > 0, "default_max_new_tokens", "an integer > 0",
                self.default_max_new_tokens)
        require(self.batch_window_s >= 0 and not math.isnan(self.batch_window_s),
                "batch_window_s", "a number >= 0 (.inf: one batch)", self.batch_window_s)


class _Group:
    """A sharing group of one batch: its members, and the state of its prefix."""

    __slots__ = ("members", "shared_blocks", "ratio", "unfinished", "started", "pinned", "pin",
                 "prefiller")

    def __init__(self, members: list[RequestView], shared_blocks: int, ratio: float):
        self.members = members
        self.shared_blocks = shared_blocks      # the planned prefix, whole blocks
        self.ratio = ratio                      # expected decode / prompt tokens
        self.unfinished = len(members)
        self.started = False                    # a member has been admitted
        self.pinned = not shared_blocks         # the prefix is registered (and maybe pinned)
        self.pin: PrefixPin | None = None
        self.prefiller: RequestView | None = None   # the member computing the prefix

    @property
    def pin_blocks(self) -> int:
        return self.pin.kv_blocks if self.pin is not None else 0


class _Batch:
    __slots__ = ("close_s", "groups", "newcomers")

    def __init__(self, close_s: float):
        self.close_s = close_s                  # arrivals up to this time join
        self.groups: list[_Group] = []
        self.newcomers: list[RequestView] = []


class BatchLlmScheduler(Scheduler):
    Config = BatchLlmConfig

    def __init__(self, config: BatchLlmConfig, kv: KVCache, host_swap_blocks: int = 0,
                 rng=None):
        super().__init__(config, kv, host_swap_blocks=host_swap_blocks, rng=rng)
        # estimated peaks: each running request's own (by id) and each pinned prefix (by pin)
        self.reservations = BlockReservations(int(config.kv_usage_cap * kv.num_blocks))
        self._incoming: list[RequestView] = []       # arrived, not yet in a batch
        self._open: _Batch | None = None             # the latest batch
        self._group_of: dict[int, _Group] = {}       # request id -> its group, until done
        self._sharing: dict[int, _Group] = {}        # request id -> group whose pin it holds
        self._pins: dict[int, PrefixPin] = {}        # live pins (for kv_holders)

    # -- batches and groups --------------------------------------------------------------------
    def add_request(self, request: RequestView) -> None:
        super().add_request(request)
        self._incoming.append(request)

    @property
    def default_output_limit(self) -> int:
        return self.config.default_max_new_tokens

    def _form_batches(self) -> None:
        """Put the newcomers into batches (see the module doc) and `waiting` into group order."""
        newcomers, self._incoming = self._incoming, []
        window = self.config.batch_window_s
        touched: list[_Batch] = []
        batch = self._open
        for view in sorted(newcomers, key=lambda v: v.arrival_s):
            if batch is None or view.arrival_s > batch.close_s:
                batch = _Batch(view.arrival_s + window)
            if not touched or touched[-1] is not batch:
                touched.append(batch)
            batch.newcomers.append(view)
        self._open = batch
        order: list[RequestView] = []      # every newcomer and member of an unstarted group
        for batch in touched:
            pending = [g for g in batch.groups if not g.started]
            views = [v for g in pending for v in g.members] + batch.newcomers
            batch.newcomers = []
            groups = self._group(views)
            batch.groups = [g for g in batch.groups if g.started] + groups
            order.extend(v for g in groups for v in g.members)
        # they go behind the requests already waiting (earlier batches, preempted requests)
        self.waiting.remove_all(order)
        for view in order:
            self.waiting.push(view)

    def _group(self, views: list[RequestView]) -> list[_Group]:
        """Sharing groups of ``views``, largest expected decode/prompt ratio first."""
        prompts = [Prompt(_ids(v.prefix_hashes), v.prompt_tokens, v.prefix_block_tokens)
                   for v in views]
        bs = self.kv.block_size
        groups = []
        for pg in group_prompts(prompts, bs):
            members = [views[i] for i in pg.members]
            ratio = sum(map(self.output_limit, members)) / max(
                sum(v.prompt_tokens for v in members), 1)
            group = _Group(members, pg.shared_tokens // bs, ratio)
            groups.append(group)
            for v in members:
                self._group_of[v.id] = group
        # ties in arrival order (ids are in arrival order within an instant)
        first = lambda g: min((v.arrival_s, v.id) for v in g.members)   # noqa: E731
        groups.sort(key=(lambda g: (-g.ratio, first(g))) if self.config.reorder else first)
        return groups

    # -- one iteration -------------------------------------------------------------------------
    budget_counts_decodes = False       # the budget is prefill tokens: every decode runs

    def schedule(self, now_s: float) -> BatchPlan:
        if self._incoming:
            self._form_batches()
        plan = super().schedule(now_s)
        plan.shared_kv_tokens = self._shared_decode_keys(plan)
        plan.wake_on_arrival = plan.wake_on_arrival or self.config.batch_window_s > 0
        return plan

    def admit_waiting(self, plan: BatchPlan, budget: int, now_s: float) -> int:
        budget = super().admit_waiting(plan, budget, now_s)
        if not plan.requests and self.waiting and self._pins:
            # nothing runs, yet the queue's head did not fit: pinned prefixes of groups
            # whose members all wait (after preemptions) hold the memory it needs
            self._release_pins()
            budget = super().admit_waiting(plan, budget, now_s)
        return budget

    def admission(self, request: RequestView, computed: list, num_cached: int,
                  num_new: int) -> tuple[_Group | None, int, int] | None:
        """Admit while the estimated peaks fit in ``kv_usage_cap``; a group's prefix is computed
        by one member before the others start. Returns (group, own peak blocks, pinned prefix
        blocks it shares) for :meth:`on_admitted`."""
        group = self._group_of.get(request.id)
        pin_blocks = 0
        if group is not None:
            if not group.pinned:
                if group.prefiller is not None and group.prefiller is not request:
                    return None         # the prefix is computed once: wait for it
            elif not request.swapped_blocks:
                pin_blocks = group.pin_blocks
        peak = self._peak_blocks(request) - pin_blocks
        if self.running and not self.reservations.fits(peak):
            return None
        return group, peak, pin_blocks

    def on_admitted(self, request: RequestView, num_new: int,
                    admission: tuple[_Group | None, int, int]) -> None:
        group, peak, pin_blocks = admission
        self._reserve(request, group, peak, pin_blocks)
        if group is not None:
            group.started = True
            if not group.pinned:
                group.prefiller = request
                self._try_pin(group, request, request.num_computed_tokens + num_new)

    def on_prefill_chunk(self, request: RequestView, num_tokens: int) -> None:
        group = self._group_of.get(request.id)
        if group is not None and not group.pinned:
            self._try_pin(group, request, num_tokens)

    def _shared_decode_keys(self, plan: BatchPlan) -> int:
        """Keys of group prefixes that decode attention would read more than once per group."""
        sharing = self._sharing
        if not sharing:
            return 0
        counts: dict[_Group, int] = {}      # decoding members holding the group's pin
        for req, q, c in zip(plan.requests, plan.num_new_tokens, plan.computed_before):
            if q == 1:
                group = sharing.get(req.id)
                if group is not None and c >= group.pin_blocks * self.kv.block_size:
                    counts[group] = counts.get(group, 0) + 1
        return sum((n - 1) * g.pin_blocks for g, n in counts.items()) * self.kv.block_size

    # -- memory bookkeeping --------------------------------------------------------------------
    def _peak_blocks(self, req: RequestView) -> int:
        """Blocks ``req`` holds at its expected peak (its output limit, or more if it has
        generated past it already)."""
        output = max(self.output_limit(req), req.output_generated + 1)
        return peak_blocks(req.prompt_tokens, output, self.kv.block_size)

    def _reserve(self, req: RequestView, group: _Group | None, peak: int,
                 pin_blocks: int) -> None:
        if pin_blocks:
            if group.pin.is_shared_by(req):
                self._sharing[req.id] = group
            else:
                peak += pin_blocks      # it did not get the pinned blocks: it holds a copy
        self.reservations.reserve(req.id, peak)

    def _try_pin(self, group: _Group, req: RequestView, covered_tokens: int) -> None:
        """Pin the prefix once the prefiller's blocks cover it (the KV cache registers a prompt
        block's hash when it is allocated, so members admitted from now on hit it)."""
        if covered_tokens < group.shared_blocks * self.kv.block_size:
            return
        group.pinned = True
        group.prefiller = None
        # fewer blocks than planned if part of the content was held by someone else already
        blocks = req.kv_cached_blocks[:group.shared_blocks]
        if not blocks:
            return
        pin = group.pin = self.kv.pin(blocks)
        self._pins[id(pin)] = pin
        self._sharing[req.id] = group
        # the prefix is now the group's reservation
        self.reservations.transfer(req.id, pin, pin.kv_blocks)

    def _release_pins(self) -> None:
        """Unpin every prefix (nothing runs): the blocks stay cached until LRU evicts them, and
        the groups' remaining members just use the prefix cache."""
        for pin in self._pins.values():
            self.reservations.release(pin)
            self.kv.unpin(pin)
        self._pins.clear()
        for group in set(self._group_of.values()):
            group.pin = None

    def preempt(self, victim: RequestView, plan: BatchPlan) -> None:
        super().preempt(victim, plan)
        self.reservations.release(victim.id)
        self._sharing.pop(victim.id, None)
        group = self._group_of.get(victim.id)
        if group is not None and group.prefiller is victim:
            group.prefiller = None      # another member (or it, resumed) computes the prefix

    def abort(self, aborted: list[RequestView]) -> None:
        gone = set(map(id, aborted))            # not yet put into a batch
        self._incoming = [v for v in self._incoming if id(v) not in gone]
        super().abort(aborted)

    def on_release(self, views: list[RequestView]) -> None:
        # (after the members' blocks: the prefix is freed after them)
        for view in views:
            self.reservations.release(view.id)
            self._sharing.pop(view.id, None)
            group = self._group_of.pop(view.id, None)
            if group is None:
                continue
            group.unfinished -= 1
            if group.prefiller is view:
                group.prefiller = None      # aborted while computing the prefix
            if group.unfinished == 0 and group.pin is not None:
                pin, group.pin = group.pin, None
                self.reservations.release(pin)
                self.kv.unpin(pin)
                del self._pins[id(pin)]

    # -- inspection (tests, reports) and invariants (the replica's check_invariants) -----------
    def group_members(self, request_id: int) -> list[int]:
        """Ids of the requests sharing a prefix with ``request_id`` (itself alone if none)."""
        group = self._group_of.get(request_id)
        return [request_id] if group is None or not group.shared_blocks else \
            [v.id for v in group.members]

    def kv_holders(self) -> list:
        """Everything that holds KV blocks: requests, and the groups' prefix pins."""
        return list(self.running) + [r for r in self.waiting if r.kv_blocks] + \
            list(self._pins.values())


def _ids(hashes) -> tuple[int, ...]:
    """Prefix ids as a tuple of Python ints (they may come as a numpy array)."""
    if hashes is None:
        return ()
    return tuple(hashes.tolist()) if hasattr(hashes, "tolist") else tuple(hashes)
