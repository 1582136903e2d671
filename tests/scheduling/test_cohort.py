"""DecodeCohort: the lazily advanced steady decodes give exactly what updating every request at
every iteration gives (engines driven by hand, no SimPy), and its block arithmetic is right."""

import numpy as np
import pytest

from sim.memory.kv_cache import KVCache
from sim.scheduling.engine import Engine
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.workload.request import Request

BS = 4


def engine(num_blocks: int, cohort: bool, **cfg) -> Engine:
    config = FcfsConfig(block_size=BS, **cfg)
    kv = KVCache(num_blocks, BS, prefix_caching=config.prefix_caching)
    return Engine(FcfsScheduler(config, kv), decode_cohort=cohort)


def workload(seed: int, n: int, shared_prefix: bool = False) -> list[Request]:
    rng = np.random.default_rng(seed)
    reqs = []
    for i in range(n):
        prompt = int(rng.integers(1, 30))      # prompt + output <= 54 tokens: fits 14 blocks
        hashes = tuple(range(prompt // BS)) if shared_prefix and i % 2 else None
        reqs.append(Request(id=i, arrival_s=float(i), prompt_tokens=prompt,
                            output_tokens=int(rng.integers(1, 25)), prefix_hashes=hashes,
                            prefix_block_tokens=BS))
    return reqs


def progress(e: Engine, reqs: list[Request]) -> list[tuple]:
    e.sync()
    return [(r.status, r.output_generated, r.num_computed_tokens, r.kv_blocks, r.first_token_s,
             r.last_token_s, r.max_token_gap_s, r.finish_s, r.preemptions) for r in reqs]


def drive(e: Engine, reqs: list[Request], arrivals_per_step: int, rng) -> list:
    """Submit a few requests per iteration, run iterations (a decode run now and then when the
    plan is stable), and record everything observable after each."""
    pending, now, trace = list(reqs), 0.0, []
    while pending or e.has_work:
        for _ in range(arrivals_per_step):
            if pending:
                e.add_request(pending.pop(0))
        if not e.has_work:
            continue
        plan = e.schedule(now)
        e.scheduler.kv.check(e.scheduler.kv_holders()) if e.scheduler.cohort is None else None
        steps = 1
        if plan.stable:
            max_steps = e.max_decode_steps(plan)
            steps = e.decode_run_steps(plan, max_steps) if max_steps > 1 else 1
            steps = min(steps, int(rng.integers(1, 6)))
        durations = 0.01 + 0.001 * rng.random(steps)
        ends = np.cumsum(durations) + now
        if steps > 1:
            finished = e.complete_decode_run(plan, ends.tolist())
        else:
            finished = e.complete_iteration(plan, float(ends[0]))
        now = float(ends[-1])
        trace.append((sorted(r.id for r in finished), e.scheduler.kv.num_used,
                      e.scheduler.num_preemptions, progress(e, reqs)))
    return trace


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_blocks, prefix", [(200, False), (30, False), (14, False),
                                                 (40, True)])
def test_cohort_engine_equals_the_plain_engine(seed, num_blocks, prefix):
    """Same plans, same finishes, same KV use, same per-request state and timestamps after every
    iteration, with memory to spare and under preemption pressure."""
    traces = []
    for cohort in (True, False):
        e = engine(num_blocks, cohort, max_num_seqs=8, max_batched_tokens=32,
                   prefix_caching=prefix)
        traces.append(drive(e, workload(seed, 30, prefix), 1 + seed % 3,
                            np.random.default_rng(seed)))
    with_cohort, plain = traces
    assert len(with_cohort) == len(plain)
    for a, b in zip(with_cohort, plain):
        assert a == b


def test_cohort_advances_without_touching_members():
    e = engine(1000, True, max_num_seqs=8, max_batched_tokens=64)
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=5, output_tokens=50) for i in range(4)]
    for r in reqs:
        e.add_request(r)
    plan = e.schedule(0.0)                      # the four prompts
    e.complete_iteration(plan, 1.0)
    cohort = e.scheduler.cohort
    assert cohort.size == 4                     # all decoding now
    views = [r.view for r in reqs]
    plan = e.schedule(1.0)
    assert plan.requests == [] and plan.cohort_size == 4 and plan.stable
    assert plan.cohort_context_tokens == 4 * 5
    e.complete_decode_run(plan, [2.0, 3.0, 5.0])
    assert [v.output_generated for v in views] == [1] * 4      # stale until synced
    e.sync()
    assert [v.output_generated for v in views] == [4] * 4
    assert [v.num_computed_tokens for v in views] == [8] * 4
    assert [v.kv_blocks for v in views] == [2] * 4            # 8 tokens in blocks of 4
    assert reqs[0].last_token_s == 5.0 and reqs[0].max_token_gap_s == 2.0


@pytest.mark.parametrize("computed", [[0, 1, 2, 3, 4, 5, 6, 7], [4, 8, 12], [3, 3, 7, 11, 2]])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 9, 16, 17])
def test_run_blocks_by_hand(computed, k):
    """A member with c tokens computed needs ceil((c + k) / bs) - ceil(c / bs) blocks in the
    next k iterations."""
    e = engine(10_000, True, max_num_seqs=16, max_batched_tokens=64)
    cohort = e.scheduler.cohort
    for i, c in enumerate(computed):           # members as they would be after c tokens
        r = Request(id=i, arrival_s=0.0, prompt_tokens=max(c, 1), output_tokens=1000)
        e.add_request(r)
        v = r.view
        v.num_computed_tokens, v.output_generated = c, 1
        v.prompt_tokens = c + 1 - v.output_generated + 0   # prompt + generated - computed == 1
        v.kv_blocks = -(-c // BS)
        e.scheduler.waiting.remove(v)
        e.scheduler.running.append(v)
        cohort.join(v)
    expected = sum(-(-(c + k) // BS) - -(-c // BS) for c in computed)
    assert cohort.run_blocks(k) == expected
    assert cohort.step_blocks() == sum(1 for c in computed if c % BS == 0)
