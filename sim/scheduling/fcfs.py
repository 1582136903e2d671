"""``fcfs``: vLLM's default policy.

With ``chunked_prefill`` (vLLM v1): running requests first, in admission order, each taking the
tokens it still needs (one for a decode, the rest of its prompt for a prefill, cut to the token
budget); then, unless someone was preempted this step, waiting requests in arrival order while the
token budget, ``max_num_seqs`` and KV blocks allow, the last admitted one possibly taking a partial
chunk. A running request that cannot get a block preempts the most recently admitted request
(possibly itself). Without ``chunked_prefill`` (vLLM v0): an iteration either prefills whole
prompts of waiting requests (prefill first) or decodes every running request.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def schedule(self, now_s: float) -> BatchPlan:
        if self.config.chunked_prefill:
            return self._schedule_chunked(now_s)
        return self._schedule_prefill_first(now_s)

    # -- vLLM v1 ---------------------------------------------------------------------------------
    def _schedule_chunked(self, now_s: float) -> BatchPlan:
        plan = BatchPlan()
        budget = self.config.max_batched_tokens
        kv, running = self.kv, self.running
        # plan.add inlined: without a cohort (stepping) this loop visits every running request
        scheduled, new_tokens, before = plan.requests, plan.num_new_tokens, plan.computed_before
        decode_only = True
        i = 0
        cohort = self.cohort
        if cohort is not None and cohort.size:
            # the steady decodes at the head of running, in one go (sim/scheduling/cohort.py)
            need = cohort.step_blocks()
            if need <= kv.num_free:
                kv.take_free_blocks(need)
                cohort.step_allocated = True
                i = cohort.size
                budget -= i
            else:
                cohort.dissolve(running)    # memory pressure: every request in turn, below
        while i < len(running) and budget > 0:
            req = running[i]
            computed = req.num_computed_tokens
            num_new = req.prompt_tokens + req.output_generated - computed
            if num_new > budget:
                num_new = budget
            if not self.allocate_or_preempt(req, num_new, plan):
                break                   # the request preempted itself
            scheduled.append(req)
            new_tokens.append(num_new)
            before.append(computed)
            if computed + num_new >= req.prompt_tokens + req.output_generated:
                plan.num_emitting += 1
            if num_new != 1 or req.output_generated == 0:
                decode_only = False
            budget -= num_new
            i += 1
        if cohort is not None and cohort.step_allocated:
            plan.cohort_size = cohort.size
            plan.cohort_context_tokens = cohort.context_tokens
            plan.cohort_max_context = cohort.max_context_tokens
            plan.num_emitting += cohort.size
        if not plan.preempted:
            budget = self._admit_waiting(plan, budget, now_s, chunked=True)
        plan.stable = decode_only and plan.admitted == 0 and not plan.preempted \
            and not plan.swap_in_blocks and plan.num_seqs == len(running)
        plan.wake_on_arrival = not self.waiting
        return plan

    def _admit_waiting(self, plan: BatchPlan, budget: int, now_s: float, chunked: bool) -> int:
        kv, waiting, cfg = self.kv, self.waiting, self.config
        watermark = 0 if chunked else int(cfg.watermark * kv.num_blocks)
        while waiting and budget > 0:
            if len(self.running) >= cfg.max_num_seqs:
                break
            req = waiting[0]
            computed = self.cached_prefix(req)
            num_cached = len(computed) * kv.block_size
            num_new = req.num_tokens - req.num_computed_tokens - num_cached
            if num_new > budget:
                if not chunked:
                    break               # whole prompts only
                num_new = budget
            if watermark and kv.num_free - watermark < kv.blocks_for(
                    req.num_computed_tokens + num_cached + num_new) - len(computed):
                break
            if chunked and cfg.reserve_full_prompt and self.running and \
                    not kv.can_allocate(req, req.num_tokens - req.num_computed_tokens - num_cached,
                                        computed):
                break
            if not self.may_admit(req, num_cached, num_new) and self.running:
                # (an empty batch admits its head whatever the policy says: a policy refusing a
                # lone request, whose reservation or predicted peak exceeds the capacity, would
                # hold it for ever; alone it cannot run out of memory, or it was rejected)
                break
            if not kv.allocate(req, num_new, computed):
                break
            self.admit_head(req, num_cached, num_new, plan, now_s)
            budget -= num_new
        return budget

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
            self._admit_waiting(plan, self.config.max_batched_tokens, now_s, chunked=False)
            if plan.requests:
                return plan             # a prefill-only iteration
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
        plan.stable = plan.admitted == 0 and not plan.preempted and bool(plan.requests) \
            and len(plan.requests) == len(running)
        plan.wake_on_arrival = not self.waiting
        plan.stable_steps = self.steps_until_admission()
        if plan.stable_steps is not None:
            plan.wake_on_arrival = False     # arrivals wait for the next admission point anyway
        return plan

    # -- policy hooks (subclasses: sim/scheduling/{aggressive,conservative,past_future}.py) -----
    def may_admit(self, request: RequestView, num_cached: int, num_new: int) -> bool:
        """Admission rule beyond 'the blocks fit now' (fcfs: none)."""
        return True

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
        watermark = int(cfg.watermark * kv.num_blocks)
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
