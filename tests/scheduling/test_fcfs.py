"""FcfsScheduler driven by hand, without SimPy: tiny pools, exact plans (as vLLM's scheduler tests).

Block size 4 throughout unless a test says otherwise, so block counts are easy to do in one's head.
"""

import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.memory.kv_cache import KVCache
from sim.scheduling import SCHEDULERS
from sim.scheduling.base import BatchPlan
from sim.scheduling.engine import Engine
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.workload.request import Request, RequestStatus

BS = 4


def make(num_blocks: int, *, host_swap_blocks: int = 0, kv_prefix_caching: bool | None = None,
         **cfg) -> Engine:
    cfg.setdefault("block_size", BS)
    cfg.setdefault("prefix_caching", False)
    config = FcfsConfig(**cfg)
    pc = config.prefix_caching if kv_prefix_caching is None else kv_prefix_caching
    kv = KVCache(num_blocks, config.block_size, prefix_caching=pc)
    return Engine(FcfsScheduler(config, kv, host_swap_blocks=host_swap_blocks))


def req(i: int, prompt: int, output: int = 100, hashes=None, arrival: float = 0.0) -> Request:
    return Request(id=i, arrival_s=arrival, prompt_tokens=prompt, output_tokens=output,
                   prefix_hashes=hashes, prefix_block_tokens=BS)


def holders(s: FcfsScheduler) -> list[Request]:
    return list(s.running) + [r for r in s.waiting if r.kv_blocks]


def check(s: FcfsScheduler) -> None:
    assert 0 <= s.kv.num_used <= s.kv.num_blocks
    s.kv.check(holders(s))
    assert len(s.running) <= s.config.max_num_seqs
    assert not {id(r) for r in s.running} & {id(r) for r in s.waiting}


def step(s: FcfsScheduler, now: float, end: float | None = None):
    """Schedule at ``now``, check invariants, complete at ``end`` (default now + 1)."""
    plan = s.schedule(now)
    check(s)
    assert plan.num_tokens <= s.config.max_batched_tokens
    finished = s.complete_iteration(plan, now + 1.0 if end is None else end)
    check(s)
    return plan, finished


def ids(requests) -> list[int]:
    return [r.id for r in requests]


# -- ordering, budget, batch size --------------------------------------------------------------

def test_registered_under_its_yaml_name():
    assert SCHEDULERS["fcfs"] is FcfsScheduler
    assert FcfsScheduler.Config is FcfsConfig


def test_decodes_first_then_waiting_in_arrival_order():
    s = make(100)
    r0 = req(0, 8)
    s.add_request(r0)
    plan, _ = step(s, 0.0)
    assert ids(plan.requests) == [0] and plan.num_new_tokens == [8]
    assert r0.output_generated == 1 and r0.first_token_s == 1.0
    r1, r2 = req(1, 6), req(2, 5)
    s.add_request(r1)
    s.add_request(r2)
    plan = s.schedule(1.0)
    assert ids(plan.requests) == [0, 1, 2]
    assert plan.num_new_tokens == [1, 6, 5]
    assert plan.computed_before == [8, 0, 0]
    assert plan.admitted == 2 and plan.num_emitting == 3
    assert ids(s.running) == [0, 1, 2] and not s.waiting
    assert r1.status == RequestStatus.RUNNING and r1.first_scheduled_s == 1.0
    assert (r0.kv_blocks, r1.kv_blocks, r2.kv_blocks) == (3, 2, 2)   # 9, 6, 5 tokens
    assert s.kv.num_free == 100 - 7


def test_chunked_prefill_fills_the_token_budget_exactly():
    s = make(100, max_batched_tokens=10)
    r0 = req(0, 6)
    s.add_request(r0)
    step(s, 0.0)
    r1, r2 = req(1, 7), req(2, 9)
    s.add_request(r1)
    s.add_request(r2)
    plan, _ = step(s, 1.0)
    # decode 1 + r1's whole prompt 7 + the remaining budget (2) of r2's prompt
    assert ids(plan.requests) == [0, 1, 2] and plan.num_new_tokens == [1, 7, 2]
    assert plan.num_tokens == 10 and plan.num_emitting == 2
    assert (r1.output_generated, r2.output_generated) == (1, 0)
    assert r2.num_computed_tokens == 2 and r2.first_token_s != r2.first_token_s   # NaN
    plan, _ = step(s, 2.0)
    assert ids(plan.requests) == [0, 1, 2] and plan.num_new_tokens == [1, 1, 7]
    assert plan.computed_before == [7, 7, 2] and plan.admitted == 0
    assert r2.output_generated == 1 and r2.first_token_s == 3.0
    assert r2.prefill_tokens_computed == 9


def test_long_prompt_is_chunked_over_iterations():
    s = make(100, max_batched_tokens=10)
    r = req(0, 25, output=3)
    s.add_request(r)
    chunks = []
    for t in range(5):
        plan, finished = step(s, float(t))
        chunks.append(plan.num_new_tokens)
        if finished:
            break
    assert chunks == [[10], [10], [5], [1], [1]]
    assert r.first_token_s == 3.0 and r.finish_s == 5.0
    assert r.status == RequestStatus.FINISHED_COMPLETED
    assert r.prefill_tokens_computed == 25 and r.max_token_gap_s == 1.0
    assert s.kv.num_free == 100 and not s.running


def test_budget_exhausted_by_decodes_admits_nothing():
    s = make(100, max_batched_tokens=2)
    s.add_request(req(0, 2))
    step(s, 0.0)
    s.add_request(req(1, 1))
    plan, _ = step(s, 1.0)
    assert ids(plan.requests) == [0, 1] and plan.num_new_tokens == [1, 1]
    s.add_request(req(2, 3))
    plan, _ = step(s, 2.0)             # two decodes use the whole budget
    assert ids(plan.requests) == [0, 1] and plan.admitted == 0
    assert ids(s.waiting) == [2]


def test_max_num_seqs_is_respected():
    s = make(100, max_num_seqs=2)
    rs = [req(i, 4, output=2) for i in range(3)]
    for r in rs:
        s.add_request(r)
    plan, _ = step(s, 0.0)
    assert ids(plan.requests) == [0, 1] and ids(s.waiting) == [2]
    assert not plan.wake_on_arrival          # someone is still waiting
    plan, finished = step(s, 1.0)
    assert ids(plan.requests) == [0, 1] and ids(finished) == [0, 1]
    plan, _ = step(s, 2.0)
    assert ids(plan.requests) == [2] and plan.num_new_tokens == [4]
    assert rs[2].first_scheduled_s == 2.0


def test_decodes_beyond_the_budget_wait_for_the_next_iteration():
    # vLLM v1: running requests take the budget in order; the rest are skipped, not preempted
    s = make(100, max_batched_tokens=3, max_num_seqs=8)
    for i in range(3):
        s.add_request(req(i, 1))
    plan, _ = step(s, 0.0)
    assert ids(plan.requests) == [0, 1, 2] and plan.num_new_tokens == [1, 1, 1]
    s.add_request(req(3, 1))
    plan, _ = step(s, 1.0)
    assert ids(plan.requests) == [0, 1, 2] and plan.admitted == 0 and ids(s.waiting) == [3]
    s.scheduler.config = FcfsConfig(block_size=BS, prefix_caching=False, max_batched_tokens=2)  # shrink
    plan = s.schedule(2.0)
    assert ids(plan.requests) == [0, 1] and not plan.preempted and not plan.stable


# -- preemption (recompute) ---------------------------------------------------------------------

def pressure_world(**kw) -> tuple[FcfsScheduler, list[Request]]:
    """5 blocks: r0 (1 block), r1 (1 block), r2 (3 blocks) fill the pool in step 1; in step 2
    r0 needs a second block."""
    s = make(5, **kw)
    rs = [req(0, 4, output=3), req(1, 4, output=3), req(2, 12, output=10)]
    for r in rs:
        s.add_request(r)
    plan, _ = step(s, 0.0)
    assert ids(plan.requests) == [0, 1, 2] and s.kv.num_free == 0
    return s, rs


def test_preemption_evicts_the_most_recently_admitted():
    s, (r0, r1, r2) = pressure_world()
    r3 = req(3, 2, output=1)
    s.add_request(r3)                  # would fit in the block left over after the preemption
    plan = s.schedule(1.0)
    check(s)
    assert ids(plan.preempted) == [2]
    assert ids(plan.requests) == [0, 1] and plan.num_new_tokens == [1, 1]
    assert plan.admitted == 0          # no admission in a step that preempted
    assert ids(s.running) == [0, 1]
    assert ids(s.waiting) == [2, 3]    # the victim goes to the front
    assert r2.status == RequestStatus.PREEMPTED
    assert r2.num_computed_tokens == 0 and r2.kv_blocks == 0
    assert r2.preemptions == 1 and s.scheduler.num_preemptions == 1
    assert r2.output_generated == 1    # generated tokens are kept (they become prompt on resume)
    assert s.kv.num_free == 1
    assert not plan.stable and plan.swap_out_blocks == 0
    s.complete_iteration(plan, 2.0)
    check(s)
    # r2 now needs 13 tokens = 4 blocks; 1 is free: FCFS blocks r3 behind it
    plan, finished = step(s, 2.0)
    assert ids(plan.requests) == [0, 1] and plan.admitted == 0 and not plan.preempted
    assert ids(finished) == [0, 1]
    assert s.kv.num_free == 5
    # r2 resumes: its whole 13 known tokens are prefilled again, r3 comes after it
    plan, _ = step(s, 3.0)
    assert ids(plan.requests) == [2, 3] and plan.num_new_tokens == [13, 2]
    assert plan.computed_before == [0, 0]
    assert r2.prefill_tokens_computed == 12 + 13
    assert r2.output_generated == 2 and r2.cached_prompt_tokens == 0


def test_self_preemption_exact():
    # r0: 1 block; r1: 1 block; pool of 3. Step 2: r0 grows to 2 blocks (pool full), then
    # r1 (5 tokens) needs a block, and the only candidate left after r0 is r1 itself.
    s = make(3)
    r0, r1 = req(0, 4), req(1, 4)
    s.add_request(r0)
    s.add_request(r1)
    step(s, 0.0)
    assert s.kv.num_free == 1
    plan = s.schedule(1.0)
    check(s)
    assert ids(plan.requests) == [0] and ids(plan.preempted) == [1]
    assert ids(s.running) == [0] and ids(s.waiting) == [1]
    assert r1.num_computed_tokens == 0 and r1.kv_blocks == 0 and s.kv.num_free == 1
    assert plan.admitted == 0


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("mode", ["recompute", "swap"])
@pytest.mark.parametrize("prefix", [False, True])
def test_pool_never_over_allocates_under_random_load(chunked, mode, prefix):
    # without chunked prefill a recomputed request is prefilled whole, so the budget must hold
    # prompt + output tokens (what the cluster's rejection_reason demands)
    budget = 16 if chunked else 70
    rng = np.random.default_rng(7)
    s = make(24, max_batched_tokens=budget, max_num_seqs=6, chunked_prefill=chunked,
             preemption_mode=mode, prefix_caching=prefix, host_swap_blocks=8)
    next_id, t, done, swapped = 0, 0.0, [], 0
    for it in range(3000):
        if not s.has_work and it >= 200:
            break
        if it < 200 and rng.random() < 0.5:
            prompt = int(rng.integers(1, 31))
            hashes = (int(rng.integers(2)),) * (prompt // BS) if prefix else None
            s.add_request(req(next_id, prompt, int(rng.integers(1, 40)), hashes=hashes))
            next_id += 1
        plan = s.schedule(t)
        check(s)
        assert 0 <= s.scheduler.swap_space.num_used <= 8
        assert plan.num_tokens <= budget
        assert len(set(map(id, plan.requests))) == len(plan.requests)
        if plan.preempted:
            assert plan.admitted == 0
        if not chunked and plan.admitted and not plan.swap_in_blocks:
            assert plan.admitted == len(plan.requests)          # prefill-only iteration
        for r, q in zip(plan.requests, plan.num_new_tokens):
            assert q >= 1 and r.kv_blocks * BS >= r.num_computed_tokens + q
            if not chunked:
                assert r.num_computed_tokens + q == r.num_tokens   # never a partial prompt
        swapped += plan.swap_out_blocks
        t += 1.0
        done += s.complete_iteration(plan, t)
        check(s)
    assert s.scheduler.num_preemptions > 0                 # the pool was really under pressure
    assert (swapped > 0) == (mode == "swap")
    assert not s.has_work and len(done) == next_id
    assert s.kv.num_free == 24 and s.scheduler.swap_space.num_used == 0
    assert all(r.output_generated == r.output_tokens for r in done)


# -- swap ---------------------------------------------------------------------------------------

def test_swap_keeps_computed_tokens_and_accounts_host_blocks():
    s, (r0, r1, r2) = pressure_world(preemption_mode="swap", host_swap_blocks=3)
    plan = s.schedule(1.0)
    check(s)
    assert ids(plan.preempted) == [2] and plan.swap_out_blocks == 3 and plan.swap_in_blocks == 0
    assert r2.num_computed_tokens == 12 and r2.swapped_blocks == 3 and r2.kv_blocks == 0
    assert s.scheduler.swap_space.num_used == 3 and s.kv.num_free == 1
    s.complete_iteration(plan, 2.0)
    plan, finished = step(s, 2.0)
    assert ids(finished) == [0, 1] and s.kv.num_free == 5
    # r2 comes back: 3 blocks in from host, 1 new token (its generated one) on top
    plan = s.schedule(3.0)
    check(s)
    assert ids(plan.requests) == [2] and plan.num_new_tokens == [1]
    assert plan.computed_before == [12]
    assert plan.swap_in_blocks == 3 and plan.swap_out_blocks == 0
    assert s.scheduler.swap_space.num_used == 0 and r2.swapped_blocks == 0 and r2.kv_blocks == 4
    assert not plan.stable                     # a swap-in is a change
    s.complete_iteration(plan, 4.0)
    assert r2.output_generated == 2 and r2.prefill_tokens_computed == 12


def test_swap_falls_back_to_recompute_when_host_is_full():
    s, (r0, r1, r2) = pressure_world(preemption_mode="swap", host_swap_blocks=2)
    plan = s.schedule(1.0)
    check(s)
    assert ids(plan.preempted) == [2] and plan.swap_out_blocks == 0
    assert r2.num_computed_tokens == 0 and r2.swapped_blocks == 0
    assert s.scheduler.swap_space.num_used == 0 and s.scheduler.num_preemptions == 1


# -- vLLM v0: chunked_prefill off ---------------------------------------------------------------

def test_without_chunked_prefill_admissions_make_prefill_only_iterations():
    s = make(100, chunked_prefill=False, max_batched_tokens=10, max_num_seqs=8)
    r0 = req(0, 4)
    s.add_request(r0)
    step(s, 0.0)
    r1, r2 = req(1, 6), req(2, 6)
    s.add_request(r1)
    s.add_request(r2)
    plan, _ = step(s, 1.0)
    # prefill only, and only whole prompts: r2 (6 more tokens) does not fit the budget of 10
    assert ids(plan.requests) == [1] and plan.num_new_tokens == [6] and plan.admitted == 1
    assert r0.output_generated == 1 and not plan.stable
    plan, _ = step(s, 2.0)
    assert ids(plan.requests) == [2] and plan.num_new_tokens == [6]
    plan, _ = step(s, 3.0)
    assert ids(plan.requests) == [0, 1, 2] and plan.num_new_tokens == [1, 1, 1]
    assert plan.stable and plan.wake_on_arrival


def test_without_chunked_prefill_a_prompt_over_the_budget_is_never_split():
    s = make(100, chunked_prefill=False, max_batched_tokens=10, max_num_seqs=8)
    s.add_request(req(0, 11))
    plan = s.schedule(0.0)
    assert plan.is_empty and ids(s.waiting) == [0]


def test_without_chunked_prefill_decode_preemption_is_recompute():
    s = make(5, chunked_prefill=False)
    rs = [req(0, 4, output=3), req(1, 4, output=3), req(2, 12, output=10)]
    for r in rs:
        s.add_request(r)
    plan, _ = step(s, 0.0)
    assert ids(plan.requests) == [0, 1, 2]
    plan = s.schedule(1.0)
    check(s)
    assert ids(plan.preempted) == [2] and ids(plan.requests) == [0, 1]
    assert rs[2].num_computed_tokens == 0 and ids(s.waiting) == [2]


def test_without_chunked_prefill_swapped_requests_come_back_before_any_prefill():
    s = make(5, chunked_prefill=False, preemption_mode="swap", host_swap_blocks=3)
    r0, r1, r2 = req(0, 4, output=3), req(1, 4, output=3), req(2, 12, output=10)
    for r in (r0, r1, r2):
        s.add_request(r)
    step(s, 0.0)
    plan, _ = step(s, 1.0)
    assert ids(plan.preempted) == [2] and plan.swap_out_blocks == 3
    r3 = req(3, 2, output=1)
    s.add_request(r3)
    plan, finished = step(s, 2.0)            # no room to swap r2 in; r3 must not prefill
    assert ids(plan.requests) == [0, 1] and ids(finished) == [0, 1]
    plan, _ = step(s, 3.0)
    # a decode iteration: r2 swapped in; r3's prompt waits (v0 never mixes prefill and decode)
    assert ids(plan.requests) == [2] and plan.num_new_tokens == [1]
    assert plan.swap_in_blocks == 3 and ids(s.waiting) == [3]
    plan, finished = step(s, 4.0)            # now nobody is swapped out: prefill only
    assert ids(plan.requests) == [3] and plan.num_new_tokens == [2] and ids(finished) == [3]
    plan, _ = step(s, 5.0)
    assert ids(plan.requests) == [2] and plan.stable


def test_without_chunked_prefill_the_budget_must_hold_a_decode_of_every_sequence():
    # a v0 decode iteration runs every running request: vLLM v0 demands
    # max_num_batched_tokens >= max_num_seqs, or a decode would exceed the token budget
    with pytest.raises(ConfigValueError, match="max_batched_tokens"):
        FcfsConfig(chunked_prefill=False, max_batched_tokens=64, max_num_seqs=65)
    FcfsConfig(chunked_prefill=False, max_batched_tokens=64, max_num_seqs=64)
    FcfsConfig(chunked_prefill=True, max_batched_tokens=64, max_num_seqs=65)  # v1 caps decodes


# -- prefix caching -----------------------------------------------------------------------------

def test_prefix_cache_hit_skips_shared_blocks():
    s = make(100, prefix_caching=True)
    a = req(0, 12, output=5, hashes=(1, 2, 3))
    s.add_request(a)
    step(s, 0.0)
    b = req(1, 14, output=2, hashes=(1, 2, 3))        # 3 shared full blocks + 2 own tokens
    c = req(2, 13, output=2, hashes=(1, 2, 9))        # shares the first 2 blocks only
    s.add_request(b)
    s.add_request(c)
    plan, _ = step(s, 1.0)
    assert ids(plan.requests) == [0, 1, 2]
    assert plan.num_new_tokens == [1, 2, 5] and plan.computed_before == [12, 12, 8]
    assert (a.cached_prompt_tokens, b.cached_prompt_tokens, c.cached_prompt_tokens) == (0, 12, 8)
    assert b.prefill_tokens_computed == 2 and c.prefill_tokens_computed == 5
    # shared blocks are counted once: a holds 4 (13 tokens), b 4 (3 shared), c 4 (2 shared)
    assert s.kv.num_used == 4 + 1 + 2


def test_prefix_cache_always_leaves_the_last_token_to_compute():
    s = make(100, prefix_caching=True)
    s.add_request(req(0, 12, output=2, hashes=(1, 2, 3)))
    step(s, 0.0)
    b = req(1, 12, output=2, hashes=(1, 2, 3))        # whole prompt cached: recompute block 3
    s.add_request(b)
    plan, _ = step(s, 1.0)
    assert plan.num_new_tokens[-1] == 4 and b.cached_prompt_tokens == 8


def test_recompute_resumes_from_its_own_cached_blocks():
    s, (r0, r1, r2) = pressure_world(prefix_caching=True)
    plan = s.schedule(1.0)
    assert ids(plan.preempted) == [2] and r2.num_computed_tokens == 0
    s.complete_iteration(plan, 2.0)
    assert r2.kv_blocks == 0 and s.kv.num_cached == 1
    step(s, 2.0)                       # r0 and r1 finish
    plan = s.schedule(3.0)
    check(s)
    # r2's 3 full blocks were kept findable, freed last block first (as vLLM): r0 and r1 took
    # blocks 2 and 1 for their growth, so only block 0 (4 tokens) is found again
    assert ids(plan.requests) == [2] and plan.num_new_tokens == [9]
    assert plan.computed_before == [4]
    assert r2.prefill_tokens_computed == 12
    s.complete_iteration(plan, 4.0)
    assert r2.prefill_tokens_computed == 12 + 9 and r2.output_generated == 2
    assert r2.cached_prompt_tokens == 0   # a resume is not a prefix-cache hit of the request


# -- fast-forward contract ----------------------------------------------------------------------

def test_stable_exactly_for_unchanged_decode_only_plans():
    s = make(100, max_batched_tokens=6)
    r0 = req(0, 4)
    s.add_request(r0)
    plan = s.schedule(0.0)
    assert not plan.stable                     # admission
    s.complete_iteration(plan, 1.0)
    plan = s.schedule(1.0)
    assert plan.stable and plan.wake_on_arrival
    s.complete_iteration(plan, 2.0)
    s.add_request(req(1, 9))
    plan = s.schedule(2.0)
    assert not plan.stable and plan.admitted == 1    # decode + a 5-token chunk
    assert plan.wake_on_arrival
    s.complete_iteration(plan, 3.0)
    plan = s.schedule(3.0)
    assert plan.num_new_tokens == [1, 4] and not plan.stable   # a prefill chunk is running
    s.complete_iteration(plan, 4.0)
    plan = s.schedule(4.0)
    assert plan.num_new_tokens == [1, 1] and plan.stable


def test_stable_but_no_wake_when_the_queue_is_blocked():
    s = make(100, max_num_seqs=1)
    s.add_request(req(0, 4))
    s.add_request(req(1, 4))
    step(s, 0.0)
    plan = s.schedule(1.0)
    assert plan.stable and not plan.wake_on_arrival and ids(s.waiting) == [1]


def test_recomputing_request_given_one_token_is_not_a_decode():
    """A preempted request recomputing its tokens, cut to the one token left of the budget,
    looks like a decode by its token count but is not one: a decode run would advance it as if
    it emitted a token per iteration."""
    s = make(100, max_num_seqs=2, max_batched_tokens=2)
    a, b = req(0, 1, output=50), req(1, 1, output=50)
    s.add_request(a)
    s.add_request(b)
    for t in range(5):
        step(s, float(t))
    s.scheduler.preempt(s.running.pop(), BatchPlan())      # b: 5 tokens to compute again
    plan, _ = step(s, 5.0)
    assert plan.admitted == 1 and plan.num_new_tokens == [1, 1]
    plan = s.schedule(6.0)
    assert plan.num_new_tokens == [1, 1] and b.output_generated == 5
    assert not plan.stable


def test_preempting_plan_is_not_stable():
    s, _ = pressure_world()
    plan = s.schedule(1.0)
    assert plan.preempted and not plan.stable
    assert plan.wake_on_arrival is False      # the victim waits


def decode_world(free: int, out_a: int = 1000, out_b: int = 1000):
    """a: 5-token prompt (2 blocks), b: 9-token prompt (3 blocks); both decoding after step 1.
    The second plan is stable with computed_before [5, 9] and ``free`` blocks left."""
    s = make(5 + free)
    a, b = req(0, 5, output=out_a), req(1, 9, output=out_b)
    s.add_request(a)
    s.add_request(b)
    s.complete_iteration(s.schedule(0.0), 1.0)
    plan = s.schedule(1.0)
    assert plan.stable and plan.computed_before == [5, 9]
    assert (a.kv_blocks, b.kv_blocks) == (2, 3) and s.kv.num_free == free
    return s, plan, a, b


# a holds 2 blocks (8 tokens), b 3 (12): step k needs 5 + k and 9 + k tokens, so both need one
# more block from k = 4 and another from k = 8, 12, ...: extra(k) = 0, 2, 4, 6 for k in
# 1..3, 4..7, 8..11, 12..15.
@pytest.mark.parametrize("free,max_steps,expected", [
    (0, 100, 3), (1, 100, 3), (2, 100, 7), (3, 100, 7), (4, 100, 11), (6, 100, 15),
    (2, 5, 5), (0, 2, 2), (0, 3, 3), (100, 50, 50),
])
def test_decode_run_steps_hand_computed(free, max_steps, expected):
    s, plan, _, _ = decode_world(free)
    assert s.decode_run_steps(plan, max_steps) == expected


@pytest.mark.parametrize("free", [0, 1, 2, 3, 4, 6])
def test_decode_run_steps_matches_the_first_preemption_when_stepping(free):
    s, plan, _, _ = decode_world(free)
    expected = s.decode_run_steps(plan, 1000)
    s.complete_iteration(plan, 2.0)
    steps = 1
    while True:
        plan = s.schedule(1.0 + steps)
        if plan.preempted:
            break
        assert plan.stable
        s.complete_iteration(plan, 2.0 + steps)
        steps += 1
    assert steps == expected


def state(s: FcfsScheduler, rs: list[Request]):
    return ([(r.num_computed_tokens, r.output_generated, r.kv_blocks, r.last_token_s,
              r.max_token_gap_s, r.first_token_s, r.finish_s, r.status, r.prefill_tokens_computed)
             for r in rs],
            s.kv.num_free, ids(s.running), ids(s.waiting))


@pytest.mark.parametrize("out_a", [8, 1000])   # 8: a finishes exactly at the end of the run
def test_complete_decode_run_equals_stepping(out_a):
    durations = [0.5, 0.25, 1.0, 0.125, 0.75, 0.5, 2.0]
    k = len(durations)
    ends = np.cumsum([1.0] + durations)[1:]
    s1, plan1, a1, b1 = decode_world(3, out_a=out_a)
    assert s1.decode_run_steps(plan1, min(a1.remaining_output_tokens,
                                         b1.remaining_output_tokens)) == k
    fin1 = s1.complete_decode_run(plan1, ends)
    check(s1)

    s2, plan2, a2, b2 = decode_world(3, out_a=out_a)
    fin2 = s2.complete_iteration(plan2, float(ends[0]))
    for i in range(1, k):
        p = s2.schedule(float(ends[i - 1]))
        assert p.stable and not p.preempted
        fin2 += s2.complete_iteration(p, float(ends[i]))
    check(s2)
    assert ids(fin1) == ids(fin2) == ([0] if out_a == 8 else [])
    assert state(s1, [a1, b1]) == state(s2, [a2, b2])
    assert a1.max_token_gap_s == 2.0 and a1.num_computed_tokens == 5 + k


# -- vLLM 0.19's scheduler_reserve_full_isl ------------------------------------------------------
@pytest.mark.parametrize("reserve, admitted", [(True, False), (False, True)])
def test_a_waiting_prompt_is_admitted_only_if_all_of_it_fits(reserve, admitted):
    # 10 blocks; r0 holds 6 (24 tokens) and decodes. r1's 24-token prompt needs 6 blocks, 4 are
    # free: its first 8-token chunk fits, the whole prompt does not
    s = make(10, max_batched_tokens=9, max_num_seqs=4, reserve_full_prompt=reserve)
    s.add_request(req(0, 23, output=50))
    step(s, 0.0)
    step(s, 1.0)
    step(s, 2.0)
    assert s.kv.num_free == 4
    s.add_request(req(1, 24))
    plan, _ = step(s, 3.0)
    assert (1 in ids(plan.requests)) is admitted
    if not admitted:
        assert ids(s.waiting) == [1]
