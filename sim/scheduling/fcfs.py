"""``fcfs``: vLLM's default policy.

With ``chunked_prefill`` (vLLM v1): running requests first, in admission order, each taking the
tokens it still needs (one for a decode, the rest of its prompt for a prefill, cut to the token
budget); then, unless someone was preempted this step, waiting requests in arrival order while the
token budget, ``max_num_seqs`` and KV blocks allow, the last admitted one possibly taking a partial
chunk. A running request that cannot get a block preempts the most recently admitted request
(possibly itself). This is the shared loop of :class:`~sim.scheduling.base.Scheduler`. Without
``chunked_prefill`` (vLLM v0): an iteration either prefills whole prompts of waiting requests
(prefill first) or decodes every running request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.memory.kv_cache import KVCache
from sim.scheduling.base import BatchPlan, EngineConfig, Scheduler
from sim.scheduling.view import RequestView


@dataclass(frozen=True)
class FcfsConfig(EngineConfig):
    name: str = "fcfs"
    watermark: float = 0.01     # v0 only: fraction of blocks kept free when admitting prefills
    # v1 (vLLM's scheduler_reserve_full_isl, on by default since 0.19): admit a waiting request
    # only if the free blocks hold its whole prompt, not just its first chunk; otherwise a long
    # prompt admitted into a nearly full pool is preempted before its prefill completes
    reserve_full_prompt: bool = True


class FcfsScheduler(Scheduler):
    Config = FcfsConfig

    def __init__(self, config: FcfsConfig, kv: KVCache, host_swap_blocks: int = 0, rng=None):
        super().__init__(config, kv, host_swap_blocks=host_swap_blocks, rng=rng)
        # blocks v0 keeps free when it admits (v1 has no watermark)
        self.watermark_blocks = 0 if config.chunked_prefill else \
            int(config.watermark * kv.num_blocks)

    def schedule(self, now_s: float) -> BatchPlan:
        if self.config.chunked_prefill:
            return super().schedule(now_s)
        return self._schedule_prefill_first(now_s)

    def admission(self, request: RequestView, computed: list, num_cached: int,
                  num_new: int) -> bool | None:
        kv, cfg = self.kv, self.config
        watermark = self.watermark_blocks
        if watermark and kv.num_free - watermark < kv.blocks_for(
                request.num_computed_tokens + num_cached + num_new) - len(computed):
            return None
        # num_cached may include blocks loaded from the host tier: they take new blocks
        loaded = num_cached // kv.block_size - len(computed)
        if cfg.chunked_prefill and cfg.reserve_full_prompt and self.running and \
                not kv.can_allocate(request, request.num_tokens - request.num_computed_tokens
                                    - num_cached, computed, loaded):
            return None
        if not self.may_admit(request, num_cached, num_new) and self.running:
            # (an empty batch admits its head whatever the policy says: a policy refusing a
            # lone request, whose reservation or predicted peak exceeds the capacity, would
            # hold it for ever; alone it cannot run out of memory, or it was rejected)
            return None
        return True

    def supports_decode_cohort(self) -> bool:
        # v1 schedules running requests first, in order, a decode taking one token; the budget
        # then always covers every running request's decode
        cfg = self.config
        return cfg.chunked_prefill and cfg.max_batched_tokens >= cfg.max_num_seqs \
            and type(self).may_admit is FcfsScheduler.may_admit    # a policy reading the batch

    # -- vLLM v0 ---------------------------------------------------------------------------------
    def _schedule_prefill_first(self, now_s: float) -> BatchPlan:
        plan = BatchPlan()
        has_swapped = any(r.swapped_blocks for r in self.waiting)
        if not has_swapped and self.admission_due():
            self.admit_waiting(plan, self.config.max_batched_tokens, now_s)
            if plan.requests:
                plan.batched_tokens = plan.num_tokens
                return plan             # a prefill-only iteration
        self.make_room_for_decodes(plan)
        running = self.running
        i = 0
        while i < len(running):
            req = running[i]
            if not self.allocate_or_preempt(req, 1, plan):
                break                   # the request preempted itself
            plan.add(req, 1)
            i += 1
        if not plan.preempted and has_swapped:
            self._swap_in_waiting(plan, self.config.max_batched_tokens - len(plan.requests), now_s)
        plan.batched_tokens = plan.num_tokens
        plan.stable = plan.admitted == 0 and not plan.preempted and bool(plan.requests) \
            and len(plan.requests) == len(running)
        plan.wake_on_arrival = not self.waiting or self.waiting.arrival_may_lead
        plan.stable_steps = self.steps_until_admission()
        if plan.stable_steps is not None:
            plan.wake_on_arrival = False     # arrivals wait for the next admission point anyway
        return plan

    # -- policy hooks (subclasses: sim/scheduling/{aggressive,conservative,past_future}.py) -----
    def may_admit(self, request: RequestView, num_cached: int, num_new: int) -> bool:
        """Admission rule beyond 'the blocks fit now' (fcfs: none)."""
        return True

    def make_room_for_decodes(self, plan: BatchPlan) -> None:
        """v0, before a decode iteration: free memory for every running request's next token
        by pausing requests of the policy's choice (fcfs: none here; a decode that cannot get a
        block preempts the most recently admitted, as vLLM does)."""

    def admission_due(self) -> bool:
        """Whether this iteration may admit waiting requests (fcfs: always)."""
        return True

    def steps_until_admission(self) -> int | None:
        """Decode iterations before admission is next considered (None: at every iteration)."""
        return None

    def _swap_in_waiting(self, plan: BatchPlan, budget: int, now_s: float) -> None:
        """v0: swapped-out requests rejoin a decode iteration, in queue order; the rest of the
        queue (fresh or recomputing prompts) waits, as vLLM v0 schedules no prefill while any
        request is swapped out, and never mixes prefills with decodes."""
        kv, cfg = self.kv, self.config
        watermark = self.watermark_blocks
        for req in [r for r in self.waiting if r.swapped_blocks]:
            num_new = req.num_tokens - req.num_computed_tokens     # 1: v0 swaps out decodes
            if budget < num_new or len(self.running) >= cfg.max_num_seqs:
                break
            if kv.num_free - watermark < kv.blocks_for(req.num_tokens):
                break
            if not kv.allocate(req, num_new):
                break
            self.waiting.remove(req)
            self.swap_in(req, plan)
            self.admit(req, now_s)
            plan.add(req, num_new)
            plan.admitted += 1
            budget -= num_new
