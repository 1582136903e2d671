"""DecodeCohort: the running requests in steady decode, advanced in O(1) per iteration.

Under continuous batching most running requests, most of the time, are decoding: each iteration
computes one token for each and emits one token for each. Updating each of them at every
iteration makes the simulator's cost per iteration grow with the batch, which is what limited it
at scale. The cohort is the longest prefix of the scheduler's ``running`` list whose requests are
all decoding; it keeps their state lazily, as of the iteration they joined (or were last synced),
plus one counter of iterations since:

- tokens: a member's computed and generated counts grow by the iterations since it joined;
- KV blocks: a member needs a new block at the iterations where its computed count is a multiple
  of the block size, so a histogram of members by (computed - joined-at iteration) mod block size
  says how many blocks the next iteration (or the next k) needs, in O(block size);
- time: every member emits at the end of every iteration, so its last-token time is the last
  iteration's end and its largest token gap the largest gap between iteration ends since it joined
  (kept in one array of iteration ends);
- completion: the iteration at which each member reaches its output length is fixed when it
  joins, so a heap gives the next one to finish.

A member's view and request are written back (:meth:`sync`) before anyone else reads them: when it
finishes, and when the engine reports or checks its requests. The results are the same as
updating every request at every iteration (tested against the stepping engine, which has no
cohort). It is engine machinery, not policy: it reads the true output lengths to know when
members finish, and a scheduler uses it only through :meth:`allocate_step` (take the members'
blocks for the next iteration, then schedule the rest of ``running`` as usual) or, when those do
not fit, :meth:`dissolve` (schedule everyone one by one, preempting as usual; the cohort forms
again from the running requests that decode steadily). The blocks come from the KV cache in bulk
(``KVCache.take_free_blocks``) and each member is credited with its own when it is synced
(``KVCache.settle_decode``).

Only a prefix of ``running`` qualifies because order matters: running requests are scheduled in
list order and preempted from its end, and a prefix that always fits in the token budget (fcfs
requires ``max_batched_tokens >= max_num_seqs`` to use a cohort) gets its tokens before anyone
behind it, while a request behind it that cannot get memory preempts itself before reaching it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from sim.memory.blocks import blocks_for_tokens
from sim.memory.kv_cache import KVCache
from sim.scheduling.view import RequestView
from sim.workload.request import Request

_MIN_ENDS = 1024    # initial capacity of the iteration-end buffer
_max = np.maximum.reduce    # ndarray.max without its Python wrapper


class DecodeCohort:
    def __init__(self, kv: KVCache, requests: dict[int, Request]):
        self.kv = kv
        self.block_size = block_size = kv.block_size
        self._requests = requests             # the engine's in-flight requests, by id
        self.size = 0                         # members: the first ``size`` of running
        self.steps = 0                        # iterations the cohort has run (never reset)
        # members by (computed tokens - join step) mod block size; see step_blocks/run_blocks
        self._by_phase = [0] * block_size
        self._context_base = 0                # sum over members of (computed - join step)
        self.step_allocated = False           # the next iteration's blocks are taken already
        self._finish_at: dict[int, tuple] = {}    # member id -> its heap entry
        self._finish_heap: list[tuple[int, int, int]] = []   # (finish step, join seq, id)
        # members by their phase (computed - join step), largest first, for the longest context
        self._phase_of: dict[int, tuple] = {}     # member id -> its heap entry
        self._phase_heap: list[tuple[int, int, int]] = []    # (-phase, join seq, id)
        self._joined = 0                      # joins so far: members are in join order
        # end time of iteration ``s`` (0-based count of cohort steps) at _ends[s - _ends_base],
        # and its gap from the previous one's end at _gaps[s - _ends_base]
        self._ends = np.empty(_MIN_ENDS)
        self._gaps = np.empty(_MIN_ENDS)
        self._ends_base = 0
        self._last_end = np.nan

    # -- what the scheduler, engine and cost model need ----------------------------------------
    @property
    def context_tokens(self) -> int:
        """Tokens computed, summed over members (decode attention reads these plus one each)."""
        return self._context_base + self.size * self.steps

    @property
    def max_context_tokens(self) -> int:
        """Tokens computed by the member that has the most (0 with no member)."""
        heap, phase_of = self._phase_heap, self._phase_of
        while heap and phase_of.get(heap[0][2]) is not heap[0]:
            heapq.heappop(heap)             # a member that left
        return -heap[0][0] + self.steps if heap else 0

    def step_blocks(self) -> int:
        """Blocks the members need for the next iteration (those whose last block is full)."""
        return self._by_phase[-self.steps % self.block_size]

    def run_blocks(self, num_steps: int) -> int:
        """Blocks the members need for the next ``num_steps`` iterations, all together."""
        # A member with m tokens in its last block (m = computed mod bs) needs
        # ceil((m + k) / bs) - ceil(m / bs) blocks in k = q*bs + r steps: q, plus one if r > 0
        # and m is 0 or > bs - r.
        bs = self.block_size
        q, r = divmod(num_steps, bs)
        blocks = self.size * q
        if r:
            by_phase, shift = self._by_phase, self.steps
            blocks += by_phase[-shift % bs]
            for m in range(bs - r + 1, bs):
                blocks += by_phase[(m - shift) % bs]
        return blocks

    def allocate_step(self) -> bool:
        """Take the members' blocks for the next iteration; False, taking none, if the pool
        has too few."""
        need = self.step_blocks()
        if need > self.kv.num_free:
            return False
        self.kv.take_free_blocks(need)
        self.step_allocated = True
        return True

    def allocate_run(self, num_steps: int) -> None:
        """Take the members' blocks for a decode run of ``num_steps`` iterations, the first of
        which has its blocks already (:meth:`allocate_step`)."""
        self.kv.take_free_blocks(self.run_blocks(num_steps) - self.step_blocks())

    def steps_to_first_finish(self) -> int:
        """Iterations until the next member completes (a large number if none)."""
        heap, finish_at = self._finish_heap, self._finish_at
        while heap and finish_at.get(heap[0][2]) is not heap[0]:
            heapq.heappop(heap)             # a member that left (preempted) or already finished
        return heap[0][0] - self.steps if heap else 1 << 62

    # -- membership ----------------------------------------------------------------------------
    def can_join(self, view: RequestView) -> bool:
        """Decoding, with exactly the blocks its tokens fill, and no prompt block still to
        register in the prefix cache (a decode allocation would do that: see KVCache)."""
        c = view.num_computed_tokens
        return (view.output_generated > 0 and view.prompt_tokens + view.output_generated - c == 1
                and view.kv_blocks == blocks_for_tokens(c, self.block_size)
                and not view.swapped_blocks
                and not self.step_allocated
                and (not view.prefix_hashes or view.kv_block_hashes is not None
                     and len(view.kv_cached_blocks) >= len(view.kv_block_hashes)))

    def join(self, view: RequestView) -> None:
        """``view`` (which can_join, and is running[size]) becomes the last member."""
        phase = view.num_computed_tokens - self.steps
        self._by_phase[phase % self.block_size] += 1
        self._context_base += phase
        self.size += 1
        view.cohort_step = self.steps
        finish = self.steps + self._requests[view.id].output_tokens - view.output_generated
        self._joined += 1
        entry = (finish, self._joined, view.id)
        self._finish_at[view.id] = entry
        heapq.heappush(self._finish_heap, entry)
        entry = (-phase, self._joined, view.id)
        self._phase_of[view.id] = entry
        heapq.heappush(self._phase_heap, entry)

    def leave(self, view: RequestView) -> None:
        """``view`` stops being a member (synced first); the caller removes it from running."""
        self.sync(view)
        phase = view.num_computed_tokens - self.steps
        self._by_phase[phase % self.block_size] -= 1
        self._context_base -= phase
        self.size -= 1
        view.cohort_step = -1
        del self._finish_at[view.id]
        del self._phase_of[view.id]

    def dissolve(self, running: list[RequestView]) -> None:
        """Every member leaves (memory pressure: the scheduler steps each request again)."""
        for view in reversed(running[: self.size]):
            self.leave(view)

    # -- time ----------------------------------------------------------------------------------
    def advance(self, ends_s: Sequence[float] | float,
                running: list[RequestView]) -> list[Request]:
        """Record iterations that ended at ``ends_s`` (one, or a run's list); return the requests
        of the members that finished at the last one (synced, no longer members), in running
        order."""
        run = not isinstance(ends_s, float)
        count = len(ends_s) if run else 1
        start = self.steps - self._ends_base
        if start + count > len(self._ends):
            self._grow(count, running)
            start = self.steps - self._ends_base
        gaps = self._gaps
        if run:
            self._ends[start:start + count] = ends_s
            previous = self._last_end
            for i, end in enumerate(ends_s, start):
                gaps[i] = end - previous
                previous = end
            self._last_end = float(previous)
        else:
            self._ends[start] = ends_s
            gaps[start] = ends_s - self._last_end
            self._last_end = float(ends_s)
        self.steps += count
        self.step_allocated = False
        heap, finish_at, steps = self._finish_heap, self._finish_at, self.steps
        if not heap or heap[0][0] > steps:
            return []
        finished = []
        while heap and heap[0][0] <= steps:
            entry = heapq.heappop(heap)        # ties in join order, which is running order
            if finish_at.get(entry[2]) is entry:   # else: it left (preempted), maybe rejoined
                assert entry[0] == steps, "a decode run went past a member's last token"
                finished.append(self._requests[entry[2]])
        for req in finished:
            self.leave(req.view)
        return finished

    def _grow(self, incoming: int, running: list[RequestView]) -> None:
        """Make room for ``incoming`` ends: drop ends no member needs, or double the buffer."""
        oldest = min((v.cohort_step for v in running[: self.size]), default=self.steps)
        keep_from = oldest - self._ends_base      # members read ends from their join step on
        keep_to = self.steps - self._ends_base
        kept = keep_to - keep_from
        capacity = max(_MIN_ENDS, len(self._ends))
        while kept + incoming > capacity // 2:
            capacity *= 2
        ends, gaps = np.empty(capacity), np.empty(capacity)
        ends[:kept] = self._ends[keep_from:keep_to]
        gaps[:kept] = self._gaps[keep_from:keep_to]
        self._ends, self._gaps, self._ends_base = ends, gaps, oldest

    # -- write back ----------------------------------------------------------------------------
    def sync(self, view: RequestView) -> None:
        """Write a member's progress into its view and request, as of now (it stays a member).
        Its ``kv_blocks`` are the blocks it holds, the planned iteration's included."""
        joined = view.cohort_step
        delta = self.steps - joined
        if delta > 0:
            req = self._requests[view.id]
            first = joined - self._ends_base
            gap = self._ends[first] - req.last_token_s
            if delta > 1:
                gap = max(gap, _max(self._gaps[first + 1: self.steps - self._ends_base]))
            if gap > req.max_token_gap_s:
                req.max_token_gap_s = float(gap)
            req.last_token_s = self._last_end
            view.num_computed_tokens += delta
            view.output_generated += delta
            view.cohort_step = self.steps
        # its block for the planned iteration was taken with the others': it holds it now
        self.kv.settle_decode(view, view.num_computed_tokens + self.step_allocated)

    def sync_all(self, running: list[RequestView]) -> None:
        """Write every member's progress back (before requests are reported or checked)."""
        for view in running[: self.size]:
            self.sync(view)
