"""Replica: one serving engine as a SimPy process, one event per iteration (or decode run)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from itertools import accumulate

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from sim.cost.model import BatchShape, CostModel
from sim.metrics.records import Recorder
from sim.scheduling.base import BatchPlan
from sim.scheduling.engine import Engine
from sim.workload.request import Request


class Replica:
    """Waits for work, asks its scheduler for a plan, advances time by the plan's cost, applies it.

    The replica keeps its own clock (exact sums of iteration durations) and only asks SimPy to
    wait until it, so stepping and fast-forwarding produce bit-identical timestamps.
    """

    def __init__(self, env: simpy.Environment, index: int, engine: Engine,
                 cost: CostModel, recorder: Recorder, *, fast_forward: bool = True,
                 swap_seconds_per_block: float = 0.0, kv_load_latency_s: float = 0.0,
                 kv_load_seconds_per_block: float = 0.0, check_invariants: bool = False,
                 on_finish=None, on_abort=None, lockstep: bool = False,
                 role: str = "colocated", on_prefilled=None, on_reserved=None):
        self.env, self.index = env, index
        self.engine, self.cost, self.recorder = engine, cost, recorder
        # disaggregated clusters: a "prefill" replica hands each prefilled request to the
        # cluster (``on_prefilled``), which sends its KV to a "decode" replica
        self.role = role
        self.on_prefilled = on_prefilled
        # a "decode" replica: requests prefilled elsewhere waiting for it to set blocks aside
        # for their KV, in order (at iteration boundaries, where memory changes hands);
        # ``on_reserved`` then sends their KV
        self.awaiting_kv: list[Request] = []
        self.on_reserved = on_reserved
        self.fast_forward = fast_forward
        self.swap_seconds_per_block = swap_seconds_per_block
        # loads from the host KV tier: one transfer's set-up per iteration, plus the bytes
        self.kv_load_latency_s = kv_load_latency_s
        self.kv_load_seconds_per_block = kv_load_seconds_per_block
        self.check_invariants = check_invariants
        self.on_finish = on_finish
        self.on_abort = on_abort         # an attempt aborted (overload controls): the cluster's
        self.busy_s = 0.0
        self.energy_j = 0.0
        self.iterations = 0
        self._idle: simpy.Event | None = None
        self._interruptible = False      # in a decode run that an arrival cuts short
        self._run: tuple | None = None   # (plan, ends, start, energy_j(k)) of a decode run
        self._run_cut = False            # the decode run in progress already ends early
        # failure what-ifs (sim/cluster/failures.py); inert unless a scenario has ``failures:``
        self.is_down = False             # lost: routers skip it, its process waits for recover()
        self._recovered: simpy.Event | None = None
        self.slowdown = 1.0              # straggler: iteration time multiplier
        self.slow_factors: list[float] = []
        self.speed_changes_s = np.empty(0)   # straggler window edges: decode runs stop there
        # a data-parallel rank stepped by its LockstepGroup (sim/cluster/lockstep.py), which
        # is woken by arrivals instead of this replica's own process
        self.group = None
        self.process = None if lockstep else env.process(self._loop())

    # -- what routers see ----------------------------------------------------------------------
    @property
    def num_outstanding(self) -> int:
        return self.engine.scheduler.num_outstanding    # routers ask every replica per arrival

    @property
    def kv_blocks_total(self) -> int:
        return self.engine.kv.num_blocks

    @property
    def kv_tokens_total(self) -> int:
        return self.engine.kv.num_blocks * self.engine.kv.block_size

    @property
    def kv_blocks_used(self) -> int:
        """Blocks in use now, as stepping would show them mid-way through a decode run."""
        used = self.engine.kv.num_used
        if self._run is None:
            return used
        plan, ends = self._run[:2]
        started = min(bisect_right(ends, self.env.now) + 1, len(ends))
        return used + self.engine.scheduler.run_extra_blocks(plan)(started)

    # -- input ---------------------------------------------------------------------------------
    def submit(self, request: Request, now_s: float | None = None,
               scheduled_s: float | None = None, transferred: bool = False) -> None:
        """``now_s``: the exact time (an arrival's own timestamp; SimPy's clock, a sum of
        delays, may be an ulp off it), else now. ``scheduled_s``: when the event that delivers
        it was scheduled (orders it against an iteration ending at the same instant).
        ``transferred``: prefilled elsewhere, its KV arrived here (Engine.add_request)."""
        now_s = self.env.now if now_s is None else now_s
        request.replica = self.index
        request.queued_s = now_s
        self.engine.add_request(request, transferred)
        if self.engine.new_deadlines:
            self._watch_deadlines()
        self._wake(now_s, scheduled_s)

    def await_kv(self, request: Request) -> None:
        """``request`` was prefilled elsewhere and routed here: set blocks aside for its KV at
        the next iteration boundary (a decode run ends there), or when blocks free up."""
        self.awaiting_kv.append(request)
        self._wake(self.env.now, None)

    def _reserve_awaiting(self) -> None:
        while self.awaiting_kv and self.engine.reserve_transfer(self.awaiting_kv[0]):
            self.on_reserved(self.awaiting_kv.pop(0))

    def release_transferred(self, request: Request) -> None:
        """A handed-off request's KV has been sent: free it here (waiting requests may now fit)."""
        self.engine.release_transferred(request)
        if not self.is_down:
            self._wake(self.env.now, None)

    def _wake(self, now_s: float, scheduled_s: float | None) -> None:
        """New work at ``now_s``: an idle replica starts, a decode run ends at its next
        boundary."""
        if self.group is not None:
            self.group.wake(now_s)
        elif self._idle is not None and not self._idle.triggered:
            self._idle.succeed(now_s)         # the idle replica's clock restarts there
        elif self._interruptible and not self._run_cut:
            # a decode run in progress must stop at the next iteration boundary
            self._cut_run(now_s, self.env.now if scheduled_s is None else scheduled_s)

    # -- overload controls (sim/scheduling/overload.py) -----------------------------------------
    def _watch_deadlines(self) -> None:
        """Wake at each new deadline of the engine, as an arrival would wake the replica."""
        env = self.env
        for time_s in self.engine.new_deadlines:
            event = env.timeout(max(time_s - env.now, 0.0))
            event.callbacks.append(lambda _, t=time_s: self._deadline_due(t))
        self.engine.new_deadlines.clear()

    def _deadline_due(self, time_s: float) -> None:
        """A deadline passed: the engine looks at the next iteration boundary, so an idle
        replica has one now and a decode run ends at its first boundary at or after it (a
        deadline is met at a boundary whatever the order of events at that instant)."""
        if self.is_down:
            return
        if self.group is not None:
            self.group.wake(time_s)
        elif self._idle is not None and not self._idle.triggered:
            self._idle.succeed(time_s)
        elif self._run is not None and not self._run_cut:
            self._cut_run(time_s, -math.inf)

    def expire(self, now_s: float) -> None:
        """Abort what the engine finds overdue at this boundary; the cluster takes them."""
        for req in self.engine.expire(now_s):
            self.on_abort(req)

    def _cut_run(self, now_s: float, scheduled_s: float) -> None:
        """End the decode run in progress at the first iteration boundary at or after now.

        An iteration ending exactly now comes first, as when stepping, if its end event was
        scheduled before the arrival's (at its start, before ``scheduled_s``): then the arrival
        waits for the next boundary.

        This is what ``process.interrupt()`` would do, less the exception and its extra event
        (every arrival at a busy replica cuts a run, so it is on the hot path): the process stops
        waiting for the run's last iteration and waits for that boundary instead, woken with the
        number of iterations to apply. It uses SimPy's ``Process._target``/``_resume`` as SimPy's
        own Interruption does."""
        self._interruptible, self._run_cut = False, True
        env, ends = self.env, self._run[1]
        steps = min(bisect_left(ends, now_s) + 1, len(ends))
        if ends[steps - 1] == now_s and steps < len(ends) and \
                scheduled_s >= (ends[steps - 2] if steps > 1 else self._run[2]):
            steps += 1
        delay = ends[steps - 1] - env.now
        wake = simpy.Event(env)
        wake._ok, wake._value = True, steps
        # at once as urgently as an interrupt, else at the boundary as a timeout would be
        env.schedule(wake, URGENT if delay <= 0 else NORMAL, max(delay, 0.0))
        process = self.process
        process._target.callbacks.remove(process._resume)
        wake.callbacks.append(process._resume)
        process._target = wake

    # -- failures (sim/cluster/failures.py) -----------------------------------------------------
    def fail(self) -> list[Request]:
        """The replica is lost: keep the decode-run iterations that ended before now (as stepping
        would have them), drop the iteration in progress, and return the requests it held (id
        order) for the cluster to route elsewhere. The engine is left as it is, to be replaced."""
        self.settle(self.env.now)
        self.is_down = True
        self._interruptible = False
        self._idle = None
        self._recovered = self.env.event()
        self.process.interrupt("down")
        return self.engine.in_flight()

    def start_off(self) -> None:
        """Off from the start (an autoscaled replica not yet provisioned): down until
        :meth:`recover`."""
        self.is_down = True
        self._recovered = self.env.event()

    def recover(self, engine: Engine) -> None:
        """Back up, empty, with a fresh engine (a restarted server has a cold prefix cache)."""
        self.engine = engine
        self.is_down = False
        self._recovered.succeed()

    # -- the process ---------------------------------------------------------------------------
    def _loop(self):
        while True:
            if not self.is_down:         # (an autoscaled replica may start off)
                try:
                    yield from self._serve()
                except simpy.Interrupt:
                    if not self.is_down:
                        raise
            # down: wait for recover(); an arrival interrupt sent just before the failure may
            # still be delivered here, and means nothing now
            while self.is_down:
                try:
                    yield self._recovered
                except simpy.Interrupt:
                    pass

    def _serve(self):
        env, sched = self.env, self.engine
        clock = env.now       # 0.0 at the start; the recovery time after a failure
        aborts = sched.overload is not None
        while True:
            if aborts:
                self.expire(clock)
            if self.awaiting_kv:
                self._reserve_awaiting()
            if not sched.has_work:
                self._idle = env.event()
                clock = yield self._idle
                self._idle = None
                continue
            plan = sched.schedule(clock)
            if sched.new_deadlines:
                self._watch_deadlines()      # paused requests' token-gap deadlines
            if plan.is_empty:
                # Nothing can run until something arrives (cannot happen with admission checks,
                # but never spin).
                self._idle = env.event()
                clock = max(clock, (yield self._idle))
                self._idle = None
                continue
            if self.check_invariants:
                self._check(plan)
            if self.fast_forward and plan.stable:
                max_steps = self.engine.max_decode_steps(plan)
                steps = sched.decode_run_steps(plan, max_steps) if max_steps > 1 else 1
                if steps > 1:
                    clock = yield from self._decode_run(plan, clock, steps)
                    continue
            clock = yield from self._step(plan, clock)

    def _step(self, plan: BatchPlan, clock: float):
        shape = BatchShape.from_requests(plan.num_new_tokens, plan.computed_before,
                                         plan.num_emitting, plan.shared_kv_tokens,
                                         plan.cohort_size, plan.cohort_context_tokens,
                                         plan.cohort_max_context, plan.num_speculative,
                                         plan.speculative_context_tokens)
        duration, energy = self.cost.iteration_time(shape)
        if self.slowdown != 1.0:
            duration *= self.slowdown
        swapped = plan.swap_in_blocks + plan.swap_out_blocks
        if swapped:
            duration += swapped * self.swap_seconds_per_block   # PCIe copies, not overlapped
        if plan.kv_load_blocks:         # host-tier loads, before the layers that read them
            duration += self.kv_load_latency_s \
                + plan.kv_load_blocks * self.kv_load_seconds_per_block
        end = clock + duration
        yield self.env.timeout(max(end - self.env.now, 0.0))
        finished = self.engine.complete_iteration(plan, end, clock)
        self._account(clock, end - clock, 1, plan, shape.prefill_tokens,
                      shape.num_decode, energy)
        self._finished(finished)
        return end

    def _decode_run(self, plan: BatchPlan, clock: float, steps: int):
        n = plan.num_seqs
        first_context = plan.context_tokens + n
        durations, energy_j = self.cost.decode_run_energy_sum(
            n, first_context, steps, plan.shared_kv_tokens, plan.max_context_tokens + 1)
        if self.slowdown != 1.0:
            durations = [d * self.slowdown for d in durations]
        ends = list(accumulate(durations, initial=clock))[1:]   # clock + d1 + d2 ..., in order
        if len(self.speed_changes_s):
            # a straggler window opens or closes: stop at the iteration that spans its edge, so
            # the next one is timed with the new factor, as stepping would time it
            edge = np.searchsorted(self.speed_changes_s, clock, side="right")
            if edge < len(self.speed_changes_s):
                cut = bisect_left(ends, self.speed_changes_s[edge]) + 1
                if cut < steps:
                    steps, ends = cut, ends[:cut]
        gap_cut = self.engine.first_gap_violation(plan, clock, ends)
        if gap_cut is not None and gap_cut < steps:
            steps, ends = gap_cut, ends[:gap_cut]     # the token-gap abort comes at its end
        env = self.env
        self._run = (plan, ends, clock, energy_j)
        self._run_cut = False
        self._interruptible = plan.wake_on_arrival     # an arrival may cut it (_cut_run)
        cut_steps = yield env.timeout(max(ends[-1] - env.now, 0.0))
        self._interruptible = False
        if cut_steps is not None:
            steps = cut_steps
        self._run = None
        ends = ends[:steps]
        finished = self.engine.complete_decode_run(plan, ends, clock)
        end = ends[-1]
        self._account(clock, end - clock, steps, plan, 0, n * steps, energy_j(steps))
        self._finished(finished)
        return end

    def settle(self, now_s: float) -> None:
        """The clock stops at ``now_s`` (a horizon): apply the iterations of the decode run in
        progress that ended before it, as stepping would have (an iteration ending exactly at
        the horizon is not applied, as SimPy stops before events at ``until``)."""
        if self._run is None:
            return
        plan, ends, start, energy_j = self._run
        steps = bisect_left(ends, now_s)
        self._run = None
        self._interruptible = False
        if steps == 0:
            return
        finished = self.engine.complete_decode_run(plan, ends[:steps], start)
        # (the queue as it was then: requests that came later, before now_s, are not in it)
        self._account(start, ends[steps - 1] - start, steps, plan, 0,
                      plan.num_seqs * steps, energy_j(steps),
                      waiting=self.engine.num_waiting_at(ends[steps - 1]))
        self._finished(finished)

    def _account(self, start: float, duration: float, num_iterations: int, plan: BatchPlan,
                 prefill_tokens: int, decode_tokens: int, energy: float,
                 waiting: int | None = None) -> None:
        self.busy_s += duration
        self.energy_j += energy
        self.iterations += num_iterations
        sched = self.engine
        self.recorder.iteration(self.index, start, duration, num_iterations, plan.num_seqs,
                                prefill_tokens, decode_tokens, len(plan.preempted),
                                len(sched.waiting) if waiting is None else waiting,
                                sched.kv.num_used, energy)

    def _finished(self, finished: list[Request]) -> None:
        for req in finished:
            if self.check_invariants:
                check_completed(req)
            self.recorder.request(req)
            if self.on_finish is not None:
                self.on_finish(req)
        handed = self.engine.handed_off
        if handed:
            self.engine.handed_off = []
            for req in handed:
                self.on_prefilled(req, self)

    def _check(self, plan: BatchPlan) -> None:
        sched = self.engine
        sched.sync()
        running_ids = {id(r) for r in sched.running}
        waiting_ids = {id(r) for r in sched.waiting}
        assert len(running_ids) == len(sched.running), "a request is twice in running"
        assert len(waiting_ids) == len(sched.waiting), "a request is twice in waiting"
        assert not running_ids & waiting_ids, "a request is both waiting and running"
        assert len(sched.running) <= sched.config.max_num_seqs
        assert plan.batched_tokens <= sched.config.max_batched_tokens
        sched.kv.check(sched.scheduler.kv_holders())
        bs = sched.kv.block_size
        for req, q in zip(plan.requests, plan.num_new_tokens):
            assert req.kv_blocks * bs >= req.num_computed_tokens + q, "tokens without KV slots"


def check_completed(req: Request) -> None:
    """A completed request's timestamps are in order and it generated all its tokens."""
    assert req.output_generated == req.output_tokens, (req.id, "tokens")
    # (queued_s is when it reached its last replica: after first_scheduled_s if re-routed)
    assert req.arrival_s <= req.queued_s and req.arrival_s <= req.first_scheduled_s \
        <= req.first_token_s <= req.last_token_s == req.finish_s, (req.id, "timestamps")
    assert req.max_token_gap_s <= req.finish_s - req.first_token_s, (req.id, "token gap")
