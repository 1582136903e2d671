"""LockstepGroup: data-parallel ranks of a MoE model with expert parallelism, stepped together.

With vLLM's data parallelism plus expert parallelism (``data_parallel_size: N``,
``enable_expert_parallel``), attention runs data-parallel (each rank its own scheduler, batch
and KV cache) while the MoE layers' experts are spread over all ranks, which exchange tokens in
every MoE layer. So every rank runs every forward pass together: a step lasts as long as its
slowest rank, and a rank with nothing to do runs a dummy batch (one token, no sampling) so that
the others' collectives complete. The group is one SimPy process for all its ranks; each rank
keeps its own engine, records and counters, as a :class:`~sim.cluster.replica.Replica`.

Each rank's step is costed by :meth:`~sim.cost.model.CostModel.expert_parallel_time` from its
own batch and the group's token count. Ranks step iteration by iteration (no decode
fast-forward: any rank's arrival or finish changes every rank's step).
"""

from __future__ import annotations

import simpy

from sim.cluster.replica import Replica
from sim.cost.model import BatchShape, CostModel

# what an idle rank runs: one token through every layer, no sequence sampled
DUMMY = BatchShape(num_tokens=1, num_seqs_emitting=0, num_decode=1, decode_context_tokens=1)


class LockstepGroup:
    def __init__(self, env: simpy.Environment, ranks: list[Replica], cost: CostModel):
        self.env, self.ranks, self.cost = env, ranks, cost
        self._idle: simpy.Event | None = None
        self.step_s = 0.0           # time stepped, and the part of it exchanging tokens
        self.exchange_s = 0.0
        for rank in ranks:
            rank.group = self
        self.process = env.process(self._loop())

    def wake(self, now_s: float) -> None:
        """A request reached a rank: an idle group starts stepping at ``now_s``."""
        if self._idle is not None and not self._idle.triggered:
            self._idle.succeed(now_s)

    def _loop(self):
        env, ranks, cost = self.env, self.ranks, self.cost
        clock = env.now
        aborts = ranks[0].engine.overload is not None
        while True:
            if aborts:
                for rank in ranks:
                    rank.expire(clock)
            plans = [r.engine.schedule(clock) if r.engine.has_work else None for r in ranks]
            for rank in ranks:
                if rank.engine.new_deadlines:
                    rank._watch_deadlines()
            plans = [None if p is None or p.is_empty else p for p in plans]
            if all(p is None for p in plans):
                self._idle = env.event()
                clock = max(clock, (yield self._idle))
                self._idle = None
                continue
            shapes = []
            for rank, plan in zip(ranks, plans):
                if plan is None:
                    shapes.append(DUMMY)
                    continue
                if rank.check_invariants:
                    rank._check(plan)
                shapes.append(BatchShape.from_requests(
                    plan.num_new_tokens, plan.computed_before, plan.num_emitting,
                    plan.shared_kv_tokens, plan.cohort_size, plan.cohort_context_tokens,
                    plan.cohort_max_context))
            group_tokens = sum(s.num_tokens for s in shapes)
            costs = []
            for rank, plan, shape in zip(ranks, plans, shapes):
                seconds, energy = cost.expert_parallel_time(shape, group_tokens, len(ranks))
                if plan is not None:
                    swapped = plan.swap_in_blocks + plan.swap_out_blocks
                    seconds += swapped * rank.swap_seconds_per_block
                    if plan.kv_load_blocks:
                        seconds += rank.kv_load_latency_s \
                            + plan.kv_load_blocks * rank.kv_load_seconds_per_block
                costs.append((seconds * rank.slowdown, energy))
            step = max(seconds for seconds, _ in costs)
            self.step_s += step
            self.exchange_s += cost.expert_exchange_s(group_tokens, len(ranks))
            end = clock + step
            yield env.timeout(max(end - env.now, 0.0))
            static_w = cost.device.idle_w * cost.tp
            for rank, plan, shape, (seconds, energy) in zip(ranks, plans, shapes, costs):
                energy += static_w * (step - seconds)      # waiting for the slowest rank
                if plan is None:                           # a dummy batch: busy, no tokens
                    rank.busy_s += step
                    rank.energy_j += energy
                    continue
                finished = rank.engine.complete_iteration(plan, end, clock)
                rank._account(clock, step, 1, plan, shape.prefill_tokens, shape.num_decode,
                              energy)
                rank._finished(finished)
            clock = end
