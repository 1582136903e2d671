"""Replica: one serving engine as a SimPy process, one event per iteration (or decode run)."""

from __future__ import annotations

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

MAX_RUN_STEPS = 1024    # a decode run through completions stops here at the latest


class Replica:
    """Waits for work, asks its scheduler for a plan, advances time by the plan's cost, applies it.

    The replica keeps its own clock (exact sums of iteration durations) and only asks SimPy to
    wait until it, so stepping and fast-forwarding produce bit-identical timestamps.
    """

    def __init__(self, env: simpy.Environment, index: int, engine: Engine,
                 cost: CostModel, recorder: Recorder, *, fast_forward: bool = True,
                 swap_seconds_per_block: float = 0.0, check_invariants: bool = False,
                 on_finish=None):
        self.env, self.index = env, index
        self.engine, self.cost, self.recorder = engine, cost, recorder
        self.fast_forward = fast_forward
        self.swap_seconds_per_block = swap_seconds_per_block
        self.check_invariants = check_invariants
        self.on_finish = on_finish
        self.busy_s = 0.0
        self.energy_j = 0.0
        self.iterations = 0
        self._idle: simpy.Event | None = None
        self._interruptible = False      # in a decode run that an arrival cuts short
        self._run: tuple | None = None   # (plan, ends, start, parts) of a decode run
        self._run_finishes: list[float] = []   # end times of its requests' last tokens
        # a decode run of cohort members only may go on through completions, ending with the
        # n-th (0 or 1: with the first, like any run); the cluster sets it when nothing needs to
        # see a completion at once (a closed-loop client does; routers read num_outstanding, which
        # accounts for them)
        self.run_through_finishes = 0
        # failure what-ifs (sim/cluster/failures.py); inert unless a scenario has ``failures:``
        self.is_down = False             # lost: routers skip it, its process waits for recover()
        self._recovered: simpy.Event | None = None
        self.slowdown = 1.0              # straggler: iteration time multiplier
        self.slow_factors: list[float] = []
        self.speed_changes_s = np.empty(0)   # straggler window edges: decode runs stop there
        self.process = env.process(self._loop())

    # -- what routers see ----------------------------------------------------------------------
    @property
    def num_outstanding(self) -> int:
        outstanding = self.engine.scheduler.num_outstanding
        if self._run_finishes:    # requests done inside the decode run in progress, as of now
            outstanding -= bisect_right(self._run_finishes, self.env.now)
        return outstanding

    @property
    def kv_blocks_total(self) -> int:
        return self.engine.kv.num_blocks

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
    def submit(self, request: Request, now_s: float | None = None) -> None:
        """``now_s``: the exact time (an arrival's own timestamp; SimPy's clock, a sum of
        delays, may be an ulp off it), else now."""
        now_s = self.env.now if now_s is None else now_s
        request.replica = self.index
        request.queued_s = now_s
        self.engine.add_request(request)
        if self._idle is not None and not self._idle.triggered:
            self._idle.succeed(now_s)         # the idle replica's clock restarts there
        elif self._interruptible:
            # a decode run in progress must stop at the next iteration boundary
            self._interruptible = False
            self._cut_run()

    def _cut_run(self) -> None:
        """End the decode run in progress at the first iteration boundary at or after now.

        This is what ``process.interrupt()`` would do, less the exception and its extra event
        (every arrival at a busy replica cuts a run, so it is on the hot path): the process stops
        waiting for the run's last iteration and waits for that boundary instead, woken with the
        number of iterations to apply. It uses SimPy's ``Process._target``/``_resume`` as SimPy's
        own Interruption does."""
        env, ends = self.env, self._run[1]
        steps = min(bisect_left(ends, env.now) + 1, len(ends))
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

    def recover(self, engine: Engine) -> None:
        """Back up, empty, with a fresh engine (a restarted server has a cold prefix cache)."""
        self.engine = engine
        self.is_down = False
        self._recovered.succeed()

    # -- the process ---------------------------------------------------------------------------
    def _loop(self):
        while True:
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
        while True:
            if not sched.has_work:
                self._idle = env.event()
                clock = yield self._idle
                self._idle = None
                continue
            plan = sched.schedule(clock)
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
                finishers = None
                if self.run_through_finishes > 1 and not plan.requests and \
                        plan.wake_on_arrival and plan.stable_steps is None:
                    # cohort members only: the run may go on through completions
                    finishers = sched.scheduler.cohort.next_finishers(
                        self.run_through_finishes, MAX_RUN_STEPS)
                    max_steps = finishers[-1][0] if len(finishers) == \
                        self.run_through_finishes else MAX_RUN_STEPS
                else:
                    max_steps = sched.max_decode_steps(plan)
                steps = sched.decode_run_steps(plan, max_steps) if max_steps > 1 else 1
                if steps > 1:
                    clock = yield from self._decode_run(plan, clock, steps, finishers)
                    continue
            clock = yield from self._step(plan, clock)

    def _step(self, plan: BatchPlan, clock: float):
        shape = BatchShape.from_requests(plan.num_new_tokens, plan.computed_before,
                                         plan.num_emitting, plan.shared_kv_tokens,
                                         plan.cohort_size, plan.cohort_context_tokens)
        duration, energy = self.cost.iteration_time(shape)
        if self.slowdown != 1.0:
            duration *= self.slowdown
        swapped = plan.swap_in_blocks + plan.swap_out_blocks
        if swapped:
            duration += swapped * self.swap_seconds_per_block   # PCIe copies, not overlapped
        end = clock + duration
        yield self.env.timeout(max(end - self.env.now, 0.0))
        finished = self.engine.complete_iteration(plan, end)
        self._account(clock, end - clock, 1, plan.num_seqs, shape.prefill_tokens,
                      shape.num_decode, len(plan.preempted), len(self.engine.waiting),
                      self.engine.kv.num_used, energy)
        self._finished(finished)
        return end

    def _decode_run(self, plan: BatchPlan, clock: float, steps: int,
                    finishers: list[tuple[int, int]] | None = None):
        """``steps`` decode iterations of a stable plan as one wait, cut short by an arrival.
        ``finishers`` (a plan of cohort members only: DecodeCohort.next_finishers): the run goes
        on through their completions, in parts of a fixed batch between them."""
        n = plan.num_seqs
        context = plan.context_tokens + n          # keys read by the first iteration
        finishers = [f for f in finishers if f[0] <= steps] if finishers else []
        durations: list[float] = []
        parts = []                                 # (first iteration, iterations, seqs, energy_j)
        done = 0
        for last, computed in finishers + [(steps, -1)]:
            if last > done:
                times, energy_j = self.cost.decode_run_energy_sum(n, context, last - done,
                                                                  plan.shared_kv_tokens)
                durations += times
                parts.append((done, last - done, n, energy_j))
                context += n * (last - done)
                done = last
            if computed >= 0:                      # it leaves after its last iteration
                n -= 1
                context -= computed + last + 1
                if n == 0:
                    break
        steps = done
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
        env = self.env
        self._run = (plan, ends, clock, parts)
        self._run_finishes = [ends[last - 1] for last, _ in finishers if last <= steps]
        self._interruptible = plan.wake_on_arrival     # an arrival may cut it (_cut_run)
        cut_steps = yield env.timeout(max(ends[-1] - env.now, 0.0))
        self._interruptible = False
        return self._apply_run(steps if cut_steps is None else cut_steps)

    def _apply_run(self, steps: int) -> float:
        """Apply the first ``steps`` iterations of the decode run in progress; its end time."""
        plan, ends, start, parts = self._run
        self._run, self._run_finishes = None, []
        kv = self.engine.kv
        rows = []
        for first, count, seqs, energy_j in parts:
            if first >= steps:
                break
            count = min(count, steps - first)
            rows.append((first, count, seqs, energy_j(count)))
        if len(rows) > 1:   # KV use at each part's end (the last one's: after applying it)
            cohort = self.engine.scheduler.cohort
            used = kv.num_used - cohort.step_blocks()
            gone = cohort.next_finishers(len(parts), steps)
            bs = kv.block_size
            used_at = [used + cohort.run_blocks(f + c) - sum(
                -(-(computed + f + c) // bs) for last, computed in gone if last <= f + c)
                for f, c, _, _ in rows[:-1]]
        finished = self.engine.complete_decode_run(plan, ends[:steps])
        for i, (first, count, seqs, energy) in enumerate(rows):
            part_start = start if first == 0 else ends[first - 1]
            last = i == len(rows) - 1
            # (the queue was empty at the start: the first arrival ends a run of several parts)
            self._account(part_start, ends[first + count - 1] - part_start, count, seqs, 0,
                          seqs * count, 0, len(self.engine.waiting) if last else 0,
                          kv.num_used if last else used_at[i], energy)
        self._finished(finished)
        return ends[steps - 1]

    def settle(self, now_s: float) -> None:
        """The clock stops at ``now_s`` (a horizon): apply the iterations of the decode run in
        progress that ended before it, as stepping would have (an iteration ending exactly at
        the horizon is not applied, as SimPy stops before events at ``until``)."""
        if self._run is None:
            return
        steps = bisect_left(self._run[1], now_s)
        self._interruptible = False
        if steps == 0:
            self._run, self._run_finishes = None, []
            return
        self._apply_run(steps)

    def _account(self, start: float, duration: float, num_iterations: int, num_seqs: int,
                 prefill_tokens: int, decode_tokens: int, preempted: int, waiting: int,
                 kv_blocks_used: int, energy: float) -> None:
        self.busy_s += duration
        self.energy_j += energy
        self.iterations += num_iterations
        self.recorder.iteration(self.index, start, duration, num_iterations, num_seqs,
                                prefill_tokens, decode_tokens, preempted, waiting,
                                kv_blocks_used, energy)

    def _finished(self, finished: list[Request]) -> None:
        for req in finished:
            if self.check_invariants:
                check_completed(req)
            self.recorder.request(req)
            if self.on_finish is not None:
                self.on_finish(req)

    def _check(self, plan: BatchPlan) -> None:
        sched = self.engine
        sched.sync()
        running_ids = {id(r) for r in sched.running}
        waiting_ids = {id(r) for r in sched.waiting}
        assert len(running_ids) == len(sched.running), "a request is twice in running"
        assert len(waiting_ids) == len(sched.waiting), "a request is twice in waiting"
        assert not running_ids & waiting_ids, "a request is both waiting and running"
        assert len(sched.running) <= sched.config.max_num_seqs
        assert sched.scheduler.budget_tokens(plan) <= sched.config.max_batched_tokens
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
