"""Engine: what an iteration does to a replica's requests, without SimPy.

The engine owns the true requests (with their output lengths and timestamps) and hands the
scheduler only views. After each iteration it advances every scheduled view by its new tokens,
emits tokens, and tells the scheduler which requests are done, since only the engine can know.
The SimPy :class:`~sim.cluster.replica.Replica` drives one engine; tests drive it directly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from operator import sub

from sim.scheduling.base import BatchPlan, Scheduler
from sim.scheduling.cohort import DecodeCohort
from sim.scheduling.overload import QUEUE_DEADLINE, TIMEOUT, TOKEN_GAP, OverloadConfig
from sim.scheduling.speculative import AcceptanceSampler
from sim.workload.request import Request, RequestStatus


class Engine:
    """``decode_cohort``: track steady decodes lazily (sim/scheduling/cohort.py) if the
    scheduler supports it; the results are the same, the cost per iteration no longer grows
    with the batch. Views of members are stale until :meth:`sync`."""

    def __init__(self, scheduler: Scheduler, decode_cohort: bool = False,
                 overload: OverloadConfig | None = None, hand_off: bool = False,
                 speculative: AcceptanceSampler | None = None, speculative_tokens: int = 0):
        self.scheduler = scheduler
        # speculative decoding (sim/scheduling/speculative.py): how many drafts a decode
        # verifies, and the sampler of how many pass; no decode cohort (steps emit at random)
        self.speculative = speculative
        if speculative is not None:
            scheduler.speculative_tokens = speculative_tokens
            decode_cohort = False
        self._requests: dict[int, Request] = {}     # in flight, by id
        # a prefill replica of a disaggregated cluster: a request whose prefill just emitted a
        # token leaves for a decode replica (in ``handed_off`` until the replica takes them),
        # its KV held until :meth:`release_transferred`
        self.hand_off = hand_off
        self.handed_off: list[Request] = []
        # a decode replica: blocks set aside for requests whose KV is on its way, by id
        self._reserved: dict[int, object] = {}
        if decode_cohort and scheduler.supports_decode_cohort():
            scheduler.cohort = DecodeCohort(scheduler.kv, self._requests)
        # overload controls: deadlines as a heap of (time, seq, reason, request, attempt, mark),
        # checked at iteration boundaries (:meth:`expire`); the replica wakes at each new one
        self.overload = overload if overload is not None and overload.aborts else None
        self.token_gap_s = math.inf if overload is None or overload.token_gap_s is None \
            else overload.token_gap_s
        self._deadlines: list[tuple] = []
        self._deadline_seq = 0
        self.new_deadlines: list[float] = []         # not yet seen by the replica
        self._gap_exceeded: list[Request] = []       # emitted a token after too long a gap

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
    def add_request(self, request: Request, transferred: bool = False) -> None:
        """``transferred``: the request was prefilled on another replica and its KV sent here
        into the blocks :meth:`reserve_transfer` set aside; it goes on from where it was."""
        if transferred:
            view = self._reserved.pop(request.id)
            self.scheduler.incoming.remove(view)
        else:
            view = self.scheduler.view_type(request)
        request.view = view
        self._requests[request.id] = request
        if transferred:
            self.scheduler.admit_transferred(view)
        else:
            self.scheduler.add_request(view)
        overload = self.overload
        if overload is not None:
            if overload.queue_deadline_s is not None:
                self._deadline(request.arrival_s + overload.queue_deadline_s, QUEUE_DEADLINE,
                               request)
            if overload.timeout_s is not None:
                self._deadline(request.arrival_s + overload.timeout_s, TIMEOUT, request)

    def reserve_transfer(self, request: Request) -> bool:
        """Set aside blocks for a request prefilled elsewhere, before its KV is sent here (as a
        decode worker allocates before it pulls the cache); False, changing nothing, if they
        do not fit now."""
        view = self.scheduler.view_type(request)
        old = request.view
        for name in ("num_computed_tokens", "output_generated", "preemptions",
                     "prefill_tokens_computed", "cached_prompt_tokens", "first_scheduled_s"):
            setattr(view, name, getattr(old, name))
        # its cache and the slot of its next token: once here it can always start decoding
        if not self.scheduler.kv.allocate(view, 1):
            return False
        self._reserved[request.id] = view
        self.scheduler.incoming.append(view)
        return True

    def schedule(self, now_s: float) -> BatchPlan:
        plan = self.scheduler.schedule(now_s)
        if self.overload is not None and plan.preempted:
            self._watch_preempted(plan.preempted)
        return plan

    # -- overload controls (sim/scheduling/overload.py) ----------------------------------------
    def _deadline(self, time_s: float, reason: str, request: Request, mark: float = 0.0) -> None:
        self._deadline_seq += 1
        heapq.heappush(self._deadlines, (time_s, self._deadline_seq, reason, request,
                                         request.attempts, mark))
        self.new_deadlines.append(time_s)

    def _watch_preempted(self, preempted) -> None:
        """A paused request produces no tokens: a started one is due for the token-gap abort
        at its last token + the limit; one not started is due for the queue deadline again."""
        overload, requests = self.overload, self._requests
        for view in preempted:
            req = requests[view.id]
            if view.output_generated and overload.token_gap_s is not None:
                self._deadline(req.last_token_s + overload.token_gap_s, TOKEN_GAP, req,
                               req.last_token_s)
            elif not view.output_generated and overload.queue_deadline_s is not None:
                self._deadline(req.arrival_s + overload.queue_deadline_s, QUEUE_DEADLINE, req)

    def expire(self, now_s: float) -> list[Request]:
        """Abort, at this iteration boundary, the requests whose limits have passed: not yet
        started and not running at the queue deadline, no token for longer than the gap limit,
        unfinished at the timeout. Returns them (their ``abort_reason`` and ``finish_s`` set),
        their memory released; the caller decides what the client does next."""
        aborted, seen = [], set()
        for req in self._gap_exceeded:
            if self._requests.get(req.id) is req and req.id not in seen:
                seen.add(req.id)
                req.abort_reason = TOKEN_GAP
                aborted.append(req)
        self._gap_exceeded.clear()
        heap, requests = self._deadlines, self._requests
        while heap and heap[0][0] <= now_s:
            _, _, reason, req, attempt, mark = heapq.heappop(heap)
            if requests.get(req.id) is not req or req.attempts != attempt or req.id in seen:
                continue                    # ended, or an entry of an earlier attempt
            if reason is QUEUE_DEADLINE and (req.view.status == RequestStatus.RUNNING
                                             or req.first_token_s == req.first_token_s):
                continue                    # started in time (a preemption re-arms it)
            if reason is TOKEN_GAP and req.last_token_s != mark:
                continue                    # it has emitted since it was paused
            seen.add(req.id)
            req.abort_reason = reason
            aborted.append(req)
        if aborted:
            self.scheduler.abort([req.view for req in aborted])
            for req in aborted:
                req.finish_s = now_s
                del self._requests[req.id]
        return aborted

    def first_gap_violation(self, plan: BatchPlan, start_s: float,
                            ends_s: Sequence[float]) -> int | None:
        """The first iteration (1-based) of a decode run of ``plan`` from ``start_s`` whose
        token gap exceeds the limit for someone, or None: the run must end there, for the
        abort to come at the boundary where stepping would make it."""
        limit = self.token_gap_s
        if limit == math.inf:
            return None
        requests = self._requests
        last = min((requests[v.id].last_token_s for v in plan.requests), default=start_s)
        if ends_s[0] - min(last, start_s) > limit:
            return 1
        for i in range(1, len(ends_s)):
            if ends_s[i] - ends_s[i - 1] > limit:
                return i + 1
        return None

    def complete_iteration(self, plan: BatchPlan, end_s: float,
                           start_s: float = math.nan) -> list[Request]:
        """Advance every scheduled request by its new tokens; emit tokens; return finished ones.
        ``start_s``: when the iteration started (the decode cohort's members emitted then)."""
        requests = self._requests
        cohort = self.scheduler.cohort
        limit = self.token_gap_s
        if plan.cohort_size:
            step_gap = end_s - start_s
            finished = cohort.advance(end_s, self.scheduler.running)
            if step_gap > limit:                 # every member emitted after this gap
                self._members_exceeded()
        else:
            finished = []
        hand_off, handed, speculative = self.hand_off, [], self.speculative
        for view, q in zip(plan.requests, plan.num_new_tokens):
            prefill = view.num_tokens - view.num_computed_tokens > 1 or view.output_generated == 0
            emitted = 1
            if speculative is not None and q > 1 and not prefill:
                # a decode verified its drafts: it keeps its token and the accepted drafts, never
                # past its end, all emitted now (the KV slots of the rest stay allocated)
                emitted = q = min(1 + speculative.accepted(),
                                  requests[view.id].output_tokens - view.output_generated)
            if prefill:
                view.prefill_tokens_computed += q
            view.num_computed_tokens += q
            if view.num_computed_tokens < view.num_tokens:
                continue                             # a prefill chunk: no token yet
            view.output_generated += emitted
            req = requests[view.id]
            if view.output_generated == 1:
                req.first_token_s = end_s
            else:
                gap = end_s - req.last_token_s
                if gap > req.max_token_gap_s:
                    req.max_token_gap_s = gap
                    if gap > limit and view.output_generated < req.output_tokens:
                        self._gap_exceeded.append(req)
            req.last_token_s = end_s
            if view.output_generated >= req.output_tokens:
                finished.append(req)
            elif hand_off and prefill:
                handed.append(req)
        self.scheduler.num_iterations += 1
        if finished:
            self._finish(finished, end_s)
        if handed:
            self._hand_off(handed)
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

    def complete_decode_run(self, plan: BatchPlan, ends_s: Sequence[float],
                            start_s: float = math.nan) -> list[Request]:
        """Apply ``len(ends_s)`` decode iterations of a stable plan, started at ``start_s``, at
        once; equal to applying them one by one (see Scheduler.decode_run_steps for the memory
        side)."""
        steps = len(ends_s)
        last_end = float(ends_s[-1])
        requests = self._requests
        finished = []
        cohort = self.scheduler.cohort
        limit = self.token_gap_s
        # the largest gap between the run's own iterations (each request's first gap differs)
        inner_gap = float(max(map(sub, ends_s[1:], ends_s[:-1]))) \
            if steps > 1 and (plan.requests or limit != math.inf) else 0.0
        if plan.cohort_size:
            cohort.allocate_run(steps)
            finished = cohort.advance(ends_s, self.scheduler.running)
            if limit != math.inf and max(ends_s[0] - start_s, inner_gap) > limit:
                self._members_exceeded()        # members emitted at start_s, then every step
        if plan.requests:
            self.kv.grow_decodes(plan.requests, plan.computed_before, steps)
            first_end = float(ends_s[0])
        for view, c in zip(plan.requests, plan.computed_before):
            view.num_computed_tokens = c + steps
            view.output_generated += steps
            req = requests[view.id]
            gap = first_end - req.last_token_s
            if inner_gap > gap:
                gap = inner_gap
            if gap > req.max_token_gap_s:
                req.max_token_gap_s = gap
                if gap > limit and view.output_generated < req.output_tokens:
                    self._gap_exceeded.append(req)
            req.last_token_s = last_end
            if view.output_generated >= req.output_tokens:
                finished.append(req)
        self.scheduler.num_iterations += steps
        if finished:
            self._finish(finished, last_end)
        if cohort is not None:
            self._grow_cohort()
        return finished

    def _members_exceeded(self) -> None:
        """Every cohort member's last gap exceeded the limit (those that finished with it
        completed, and are no longer members)."""
        requests, running = self._requests, self.scheduler.running
        self._gap_exceeded.extend(requests[v.id] for v in running[: self.scheduler.cohort.size])

    def _grow_cohort(self) -> None:
        """Running requests right behind the cohort that now decode steadily join it."""
        running, cohort = self.scheduler.running, self.scheduler.cohort
        while cohort.size < len(running) and cohort.can_join(running[cohort.size]):
            cohort.join(running[cohort.size])

    def _hand_off(self, handed: list[Request]) -> None:
        for req in handed:
            del self._requests[req.id]
        self.scheduler.hand_off([req.view for req in handed])
        self.handed_off.extend(handed)

    def release_transferred(self, request: Request) -> None:
        """``request``'s KV, held since it was handed off, has been sent."""
        self.scheduler.release_transferred(request.view)

    def _finish(self, finished: list[Request], end_s: float) -> None:
        for req in finished:
            req.status = RequestStatus.FINISHED_COMPLETED
            req.finish_s = end_s
            del self._requests[req.id]
        self.scheduler.finish([req.view for req in finished])
