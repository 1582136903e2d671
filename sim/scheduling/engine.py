"""Engine: what an iteration does to a replica's requests, without SimPy.

The engine owns the true requests (with their output lengths and timestamps) and hands the
scheduler only views. After each iteration it advances every scheduled view by its new tokens,
emits tokens, and tells the scheduler which requests are done, since only the engine can know.
The SimPy :class:`~sim.cluster.replica.Replica` drives one engine; tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import sub

from sim.scheduling.base import BatchPlan, Scheduler
from sim.scheduling.cohort import DecodeCohort
from sim.workload.request import Request, RequestStatus


class Engine:
    """``decode_cohort``: track steady decodes lazily (sim/scheduling/cohort.py) if the
    scheduler supports it; the results are the same, the cost per iteration no longer grows
    with the batch. Views of members are stale until :meth:`sync`."""

    def __init__(self, scheduler: Scheduler, decode_cohort: bool = False):
        self.scheduler = scheduler
        self._requests: dict[int, Request] = {}     # in flight, by id
        if decode_cohort and scheduler.supports_decode_cohort():
            scheduler.cohort = DecodeCohort(scheduler.kv, self._requests)

    # -- the scheduler's state, for the replica, routers and tests -----------------------------
    @property
    def kv(self):
        return self.scheduler.kv

    @property
    def config(self):
        return self.scheduler.config

    @property
    def running(self):
        return self.scheduler.running

    @property
    def waiting(self):
        return self.scheduler.waiting

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    @property
    def num_outstanding(self) -> int:
        return self.scheduler.num_outstanding

    def in_flight(self) -> list[Request]:
        """Requests submitted and not finished, in id order (synced)."""
        self.sync()
        return [self._requests[k] for k in sorted(self._requests)]

    def num_waiting_at(self, time_s: float) -> int:
        """Requests in the waiting queue that were already queued at ``time_s``."""
        requests = self._requests
        return sum(1 for v in self.scheduler.waiting if requests[v.id].queued_s <= time_s)

    def sync(self) -> None:
        """Write the decode cohort's lazy progress into its members' views and requests."""
        if self.scheduler.cohort is not None:
            self.scheduler.cohort.sync_all(self.scheduler.running)

    # -- the loop --------------------------------------------------------------------------------
    def add_request(self, request: Request) -> None:
        view = self.scheduler.view_type(request)
        request.view = view
        self._requests[request.id] = request
        self.scheduler.add_request(view)

    def schedule(self, now_s: float) -> BatchPlan:
        return self.scheduler.schedule(now_s)

    def complete_iteration(self, plan: BatchPlan, end_s: float) -> list[Request]:
        """Advance every scheduled request by its new tokens; emit tokens; return finished ones."""
        requests = self._requests
        cohort = self.scheduler.cohort
        finished = cohort.advance(end_s, self.scheduler.running) if plan.cohort_size else []
        for view, q in zip(plan.requests, plan.num_new_tokens):
            if view.num_tokens - view.num_computed_tokens > 1 or view.output_generated == 0:
                view.prefill_tokens_computed += q
            view.num_computed_tokens += q
            if view.num_computed_tokens < view.num_tokens:
                continue                             # a prefill chunk: no token yet
            view.output_generated += 1
            req = requests[view.id]
            if view.output_generated == 1:
                req.first_token_s = end_s
            else:
                gap = end_s - req.last_token_s
                if gap > req.max_token_gap_s:
                    req.max_token_gap_s = gap
            req.last_token_s = end_s
            if view.output_generated >= req.output_tokens:
                finished.append(req)
        self.scheduler.num_iterations += 1
        if finished:
            self._finish(finished, end_s)
        if cohort is not None:
            self._grow_cohort()
        return finished

    def max_decode_steps(self, plan: BatchPlan) -> int:
        """Iterations a stable decode plan may repeat: until the first request finishes, and no
        further than the scheduler allows."""
        steps = self.scheduler.cohort.steps_to_first_finish() if plan.cohort_size else 1 << 62
        if plan.requests:
            requests = self._requests
            steps = min(steps, min(requests[v.id].output_tokens - v.output_generated
                                   for v in plan.requests))
        if plan.stable_steps is not None and plan.stable_steps < steps:
            steps = plan.stable_steps
        return steps

    def decode_run_steps(self, plan: BatchPlan, max_steps: int) -> int:
        return self.scheduler.decode_run_steps(plan, max_steps)

    def complete_decode_run(self, plan: BatchPlan, ends_s: Sequence[float]) -> list[Request]:
        """Apply ``len(ends_s)`` decode iterations of a stable plan at once; equal to applying
        them one by one (see Scheduler.decode_run_steps for the memory side)."""
        steps = len(ends_s)
        last_end = float(ends_s[-1])
        requests = self._requests
        finished = []
        cohort = self.scheduler.cohort
        if plan.cohort_size:
            cohort.allocate_run(steps)
            finished = cohort.advance(ends_s, self.scheduler.running)
        if plan.requests:
            self.kv.grow_decodes(plan.requests, plan.computed_before, steps)
            first_end = float(ends_s[0])
            inner_gap = float(max(map(sub, ends_s[1:], ends_s[:-1]))) if steps > 1 else 0.0
        for view, c in zip(plan.requests, plan.computed_before):
            view.num_computed_tokens = c + steps
            view.output_generated += steps
            req = requests[view.id]
            gap = first_end - req.last_token_s
            if inner_gap > gap:
                gap = inner_gap
            if gap > req.max_token_gap_s:
                req.max_token_gap_s = gap
            req.last_token_s = last_end
            if view.output_generated >= req.output_tokens:
                finished.append(req)
        self.scheduler.num_iterations += steps
        if finished:
            self._finish(finished, last_end)
        if cohort is not None:
            self._grow_cohort()
        return finished

    def _grow_cohort(self) -> None:
        """Running requests right behind the cohort that now decode steadily join it."""
        running, cohort = self.scheduler.running, self.scheduler.cohort
        while cohort.size < len(running) and cohort.can_join(running[cohort.size]):
            cohort.join(running[cohort.size])

    def _finish(self, finished: list[Request], end_s: float) -> None:
        for req in finished:
            req.status = RequestStatus.FINISHED_COMPLETED
            req.finish_s = end_s
            del self._requests[req.id]
        self.scheduler.finish([req.view for req in finished])
