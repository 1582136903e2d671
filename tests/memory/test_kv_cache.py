"""sim.memory.kv_cache: a 10-block pool of 4-token blocks, in the manner of vLLM's prefix-caching
tests: exact free counts, which prefix blocks hit, and the order in which cached blocks are evicted.
"""

from __future__ import annotations

import pytest

from sim.memory import CachedBlock, KVCache
from sim.scheduling.view import RequestView
from sim.workload.request import Request

_ids = iter(range(10**9))


def req(prompt: int, hashes: tuple | None = None, chunk: int = 4, output: int = 10) -> RequestView:
    """A request as the KV cache sees it: through the scheduler's view."""
    return RequestView(Request(id=next(_ids), arrival_s=0.0, prompt_tokens=prompt,
                               output_tokens=output, prefix_hashes=hashes,
                               prefix_block_tokens=chunk))


def admit(kv: KVCache, r: Request) -> list:
    """What a scheduler does for a new request: look up the prefix, allocate the rest of the
    prompt, mark it computed. Returns the hit blocks."""
    hit = kv.get_computed_blocks(r)
    new = r.prompt_tokens - len(hit) * kv.block_size
    assert kv.allocate(r, new, hit)
    r.num_computed_tokens = r.prompt_tokens
    return hit


def probe_hits(kv: KVCache, hashes: tuple) -> int:
    """Cached leading blocks of a prompt with these chunk ids (one token longer than the chunks,
    so every full block may hit)."""
    return len(kv.get_computed_blocks(req(4 * len(hashes) + 1, hashes)))


# -- accounting -----------------------------------------------------------------------------------
def test_fresh_pool():
    kv = KVCache(10, 4)
    assert (kv.num_free, kv.num_used, kv.num_cached, kv.usage) == (10, 0, 0, 0.0)
    assert kv.blocks_for(0) == 0 and kv.blocks_for(1) == 1 and kv.blocks_for(4) == 1
    assert kv.blocks_for(5) == 2
    kv.check([])
    with pytest.raises(ValueError):
        KVCache(0, 4)
    with pytest.raises(ValueError):
        KVCache(10, 0)


def test_allocate_and_free_counts():
    kv = KVCache(10, 4)
    a, b = req(10), req(3)                     # 3 blocks and 1 block
    assert kv.allocate(a, 10)
    assert (a.kv_blocks, kv.num_free, kv.num_used) == (3, 7, 3)
    assert kv.allocate(b, 3)
    assert (b.kv_blocks, kv.num_free) == (1, 6)
    kv.check([a, b])
    # decode growth: a has 10 tokens computed; tokens 11 and 12 fit in block 3, token 13 needs a 4th
    a.num_computed_tokens = 10
    assert kv.allocate(a, 2) and a.kv_blocks == 3 and kv.num_free == 6
    a.num_computed_tokens = 12
    assert kv.allocate(a, 1) and a.kv_blocks == 4 and kv.num_free == 5
    kv.check([a, b])
    kv.free(a)
    assert (a.kv_blocks, a.kv_cached_blocks, kv.num_free) == (0, [], 9)
    kv.free(b)
    assert kv.num_free == 10 and kv.num_used == 0
    kv.check([])


def test_allocate_fails_and_changes_nothing_when_short():
    kv = KVCache(10, 4)
    a = req(28)                                # 7 blocks
    assert kv.allocate(a, 28)
    b = req(16, (1, 2, 3, 4))                  # needs 4, only 3 free
    assert not kv.can_allocate(b, 16)
    assert not kv.allocate(b, 16)
    assert (kv.num_free, b.kv_blocks, b.kv_cached_blocks, kv.num_cached) == (3, 0, [], 0)
    kv.check([a])
    c = req(12)                                # exactly 3: fits
    assert kv.can_allocate(c, 12) and kv.allocate(c, 12)
    assert kv.num_free == 0
    kv.check([a, c])


# -- prefix hits -----------------------------------------------------------------------------------
def test_prompt_block_hashes_chain_the_chunks():
    kv = KVCache(10, 4)
    a, b = req(12, (1, 2, 3)), req(12, (1, 2, 9))
    ha, hb = kv.prompt_block_hashes(a), kv.prompt_block_hashes(b)
    assert len(ha) == len(hb) == 3
    assert ha[:2] == hb[:2] and ha[2] != hb[2]
    # a partial last chunk is not a full block: 10 tokens -> 2 hashed blocks
    assert len(kv.prompt_block_hashes(req(10, (1, 2, 3)))) == 2
    # same ids in another order share nothing
    assert kv.prompt_block_hashes(req(12, (2, 1, 3)))[0] != ha[0]
    assert kv.prompt_block_hashes(req(12)) == []


def test_repeated_prompt_hits_but_leaves_one_token_to_compute():
    kv = KVCache(10, 4)
    a = req(8, (1, 2))
    assert admit(kv, a) == []
    assert kv.num_cached == 2                  # both full prompt blocks are now reusable
    first, second = a.kv_cached_blocks
    kv.free(a)
    assert kv.num_free == 10
    # the same 8-token prompt: 2 full blocks cached, but the last token must run -> 1 hit
    b = req(8, (1, 2))
    hit = kv.get_computed_blocks(b)
    assert hit == [first]
    # a 9-token prompt with the same first 8 tokens hits both
    assert kv.get_computed_blocks(req(9, (1, 2))) == [first, second]


def test_prompts_sharing_a_prefix_share_blocks_up_to_the_divergence():
    kv = KVCache(10, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    b = req(13, (1, 5, 6))                     # shares chunk 1 only
    hit = kv.get_computed_blocks(b)
    assert hit == a.kv_cached_blocks[:1]
    c = req(13, (1, 2, 7))                     # shares chunks 1 and 2
    assert kv.get_computed_blocks(c) == a.kv_cached_blocks[:2]
    d = req(13, (9, 2, 3))                     # differs in the first chunk: nothing, even later
    assert kv.get_computed_blocks(d) == []


def test_chunks_spanning_two_blocks():
    # 8-token chunks over 4-token blocks: block i depends on every chunk up to the one ending it
    kv = KVCache(10, 4)
    a = req(16, (1, 2), chunk=8)
    admit(kv, a)
    assert kv.num_cached == 4
    assert len(kv.get_computed_blocks(req(17, (1, 3), chunk=8))) == 2   # chunk 1 = blocks 0, 1
    assert len(kv.get_computed_blocks(req(17, (1, 2), chunk=8))) == 4


def test_hit_counters():
    kv = KVCache(10, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    assert (kv.queries, kv.hits) == (3, 0)
    b = req(13, (1, 2, 4))
    admit(kv, b)
    # b looks up 3 full blocks and finds the first 2
    assert (kv.queries, kv.hits) == (6, 2)


def test_hit_on_evictable_block_takes_it_out_of_the_free_queue():
    kv = KVCache(10, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    kv.free(a)
    assert (kv.num_free, kv.num_cached) == (10, 3)    # cached but evictable: counted free
    b = req(12, (1, 2, 3))
    hit = kv.get_computed_blocks(b)
    assert len(hit) == 2 and all(blk.ref_cnt == 0 for blk in hit)
    # taking 2 evictable hits and 1 new block for the last 4 tokens: free drops by 3
    assert kv.allocate(b, 4, hit)
    assert kv.num_free == 10 - 2 - 1
    assert [blk.ref_cnt for blk in hit] == [1, 1]
    assert b.kv_blocks == 3 and b.kv_cached_blocks[:2] == hit
    kv.check([b])
    # the hit blocks are no longer evictable: draining the pool never evicts them
    kv.take_free_blocks(kv.num_free)
    assert probe_hits(kv, (1, 2, 3)) == 2
    b.kv_blocks += 7                          # the drained blocks, as if b held them
    kv.check([b])


def test_can_allocate_counts_evictable_hits_against_free():
    kv = KVCache(4, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    kv.free(a)                                 # 4 free, 3 of them cached
    b = req(16, (1, 2, 3, 4))
    hit = kv.get_computed_blocks(b)
    assert len(hit) == 3
    # 3 evictable hits + 1 new block = 4 <= 4 free
    assert kv.can_allocate(b, 4, hit)
    c = req(20, (1, 2, 3, 4, 5))
    hit_c = kv.get_computed_blocks(c)
    assert len(hit_c) == 3
    # 3 evictable hits + 2 new blocks = 5 > 4
    assert not kv.can_allocate(c, 8, hit_c)
    assert not kv.allocate(c, 8, hit_c)
    assert kv.num_free == 4 and [blk.ref_cnt for blk in hit_c] == [0, 0, 0]
    kv.check([])


# -- eviction order ---------------------------------------------------------------------------------
def test_lru_eviction_order():
    kv = KVCache(10, 4)
    A, B = (1, 2, 3), (7, 8, 9)
    a, b = req(12, A), req(12, B)
    admit(kv, a)
    admit(kv, b)
    kv.free(a)                                 # A freed first: evicted first
    kv.free(b)
    assert (kv.num_free, kv.num_cached) == (10, 6)
    # the 4 never-used blocks go first, evicting nothing
    c = req(16)
    assert kv.allocate(c, 16)
    assert (probe_hits(kv, A), probe_hits(kv, B)) == (3, 3)
    # then one block at a time: A's last block, A's middle, A's first, then B likewise
    timeline = []
    for _ in range(6):
        kv.take_free_blocks(1)
        c.kv_blocks += 1
        timeline.append((probe_hits(kv, A), probe_hits(kv, B), kv.num_cached))
    assert timeline == [(2, 3, 5), (1, 3, 4), (0, 3, 3), (0, 2, 2), (0, 1, 1), (0, 0, 0)]
    assert kv.num_free == 0
    kv.check([c])


def test_touched_block_moves_to_the_tail_when_freed_again():
    kv = KVCache(6, 4)
    A, B = (1, 2), (5, 6)
    a, b = req(8, A), req(8, B)
    admit(kv, a)
    admit(kv, b)
    kv.free(a)
    kv.free(b)                        # queue: [2 anonymous], A1, A0, B1, B0
    a2 = req(9, A)                    # hits A0 and A1 (taking them out), 1 new block for token 9
    assert len(admit(kv, a2)) == 2
    kv.free(a2)                       # queue: [1 anonymous], B1, B0, [a2's last block], A1, A0
    kv.check([])
    evicted = []
    holder = req(1)
    for _ in range(6):
        kv.take_free_blocks(1)
        holder.kv_blocks += 1
        evicted.append((probe_hits(kv, A), probe_hits(kv, B)))
    assert evicted == [(2, 2), (2, 1), (2, 0), (2, 0), (1, 0), (0, 0)]


def test_partial_hit_leaves_the_untouched_block_in_place():
    kv = KVCache(6, 4)
    A, B = (1, 2), (5, 6)
    a, b = req(8, A), req(8, B)
    admit(kv, a)
    admit(kv, b)
    kv.free(a)
    kv.free(b)                        # queue: [2 anonymous], A1, A0, B1, B0
    a2 = req(5, A)                    # 5 tokens: only block 0 is a full prompt block -> hits A0
    assert len(admit(kv, a2)) == 1
    kv.free(a2)                       # queue: [1 anonymous], A1, B1, B0, [a2's block 1], A0
    kv.check([])
    evicted = []
    holder = req(1)
    for _ in range(6):
        kv.take_free_blocks(1)
        holder.kv_blocks += 1
        evicted.append((probe_hits(kv, A), probe_hits(kv, B)))
    assert evicted == [(2, 2), (1, 2), (1, 1), (1, 0), (1, 0), (0, 0)]


# -- sharing and reference counts -------------------------------------------------------------------
def test_two_concurrent_holders_share_blocks():
    kv = KVCache(10, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    b = req(12, (1, 2, 3))
    hit = admit(kv, b)
    assert hit == a.kv_cached_blocks[:2]
    assert [blk.ref_cnt for blk in a.kv_cached_blocks] == [2, 2, 1]
    # b's third block: same content as a's, computed again, kept anonymous
    assert b.kv_blocks == 3 and len(b.kv_cached_blocks) == 2
    assert kv.num_free == 10 - 3 - 1
    kv.check([a, b])
    kv.free(a)
    # a's shared blocks stay with b; only its unshared last block becomes free
    assert kv.num_free == 7
    assert [blk.ref_cnt for blk in hit] == [1, 1]
    kv.check([b])
    kv.free(b)
    assert kv.num_free == 10 and kv.num_cached == 3
    kv.check([])


# -- preemption ------------------------------------------------------------------------------------
def _run_then_preempt(kv: KVCache, keep: bool) -> Request:
    r = req(10, output=5)                       # no prefix ids: unique content
    assert kv.allocate(r, 10)
    r.num_computed_tokens = 10
    r.output_generated = 1                      # one token generated (not yet fed back)
    assert kv.num_cached == 0                   # plain prompts are not made reusable
    kv.free(r, keep_for_resume=keep)
    r.num_computed_tokens = 0
    r.preemptions += 1
    return r


def test_keep_for_resume_makes_the_preempted_request_findable():
    kv = KVCache(10, 4)
    r = _run_then_preempt(kv, keep=True)
    assert kv.num_free == 10 and kv.num_cached == 2      # blocks 0 and 1 were full
    hit = kv.get_computed_blocks(r)                      # 11 tokens known: 2 full blocks hit
    assert len(hit) == 2
    assert kv.allocate(r, 11 - 8, hit)
    assert r.kv_blocks == 3 and kv.num_free == 7
    kv.check([r])
    # a different request with the same length finds nothing
    assert kv.get_computed_blocks(req(11)) == []
    # lookups during resume do not count as prompt hits
    assert (kv.queries, kv.hits) == (0, 0)


def test_without_keep_for_resume_nothing_is_found():
    kv = KVCache(10, 4)
    r = _run_then_preempt(kv, keep=False)
    assert kv.num_cached == 0
    assert kv.get_computed_blocks(r) == []


def test_keep_for_resume_is_a_no_op_without_prefix_caching():
    kv = KVCache(10, 4, prefix_caching=False)
    r = _run_then_preempt(kv, keep=True)
    assert kv.num_cached == 0 and kv.num_free == 10
    assert kv.get_computed_blocks(r) == []


# -- invariants --------------------------------------------------------------------------------
def _busy_pool():
    kv = KVCache(10, 4)
    a, b = req(12, (1, 2, 3)), req(12, (1, 2, 3))
    admit(kv, a)
    admit(kv, b)
    c = req(6)
    admit(kv, c)
    return kv, [a, b, c]


def test_check_passes_on_valid_states():
    kv, holders = _busy_pool()
    kv.check(holders)
    kv.free(holders[1])
    kv.check([holders[0], holders[2]])


@pytest.mark.parametrize("corrupt", ["num_free", "kv_blocks", "ref_cnt", "forgotten_holder",
                                     "extra_cached_block"])
def test_check_catches_corrupted_accounting(corrupt):
    kv, holders = _busy_pool()
    a, b, c = holders
    if corrupt == "num_free":
        kv.num_free -= 1
    elif corrupt == "kv_blocks":
        c.kv_blocks += 1
    elif corrupt == "ref_cnt":
        a.kv_cached_blocks[0].ref_cnt += 1
    elif corrupt == "forgotten_holder":
        holders = [a, c]
    elif corrupt == "extra_cached_block":
        c.kv_cached_blocks.append(CachedBlock(("bogus", 0)))
    with pytest.raises(AssertionError):
        kv.check(holders)


def test_take_free_blocks():
    kv = KVCache(10, 4)
    a = req(8)
    assert kv.allocate(a, 8)
    kv.take_free_blocks(0)
    assert kv.num_free == 8
    kv.take_free_blocks(3)                     # decode growth accounted to a in bulk
    kv.settle_decode(a, 20)
    assert (kv.num_free, kv.num_used) == (5, 5)
    kv.check([a])
    kv.free(a)
    assert kv.num_free == 10
    kv.check([])


def test_take_free_blocks_evicts_cached_blocks_lru_first():
    kv = KVCache(4, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    kv.free(a)                                  # queue: 1 anonymous, A2, A1, A0
    kv.take_free_blocks(2)                      # the anonymous block, then A's last
    assert probe_hits(kv, (1, 2, 3)) == 2 and kv.num_cached == 2 and kv.num_free == 2


def test_reset_prefix_cache_forgets_evictable_blocks_only():
    kv = KVCache(10, 4)
    a, b = req(12, (1, 2, 3)), req(8, (5, 6))
    admit(kv, a)
    admit(kv, b)
    kv.free(a)
    kv.reset_prefix_cache()
    assert kv.num_cached == 2                    # b still holds its blocks
    assert probe_hits(kv, (1, 2, 3)) == 0 and probe_hits(kv, (5, 6)) == 2
    assert kv.num_free == 8
    kv.check([b])


def test_prefix_caching_disabled_never_hits():
    kv = KVCache(10, 4, prefix_caching=False)
    a = req(12, (1, 2, 3))
    assert admit(kv, a) == []
    assert kv.num_cached == 0 and a.kv_cached_blocks == []
    kv.free(a)
    b = req(13, (1, 2, 3))
    assert kv.get_computed_blocks(b) == []
    assert admit(kv, b) == [] and b.kv_blocks == 4
    kv.check([b])


def test_hit_counters_count_a_blocked_request_once():
    # The scheduler looks up the head of the waiting queue every iteration until it fits; the
    # hit rate must count its prompt once (on admission), not once per failed attempt.
    kv = KVCache(6, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)
    filler = req(12)
    assert kv.allocate(filler, 12)             # pool full
    assert (kv.queries, kv.hits) == (3, 0)
    b = req(13, (1, 2, 3, 4))                  # 3 full blocks hit, needs 1 more block
    for _ in range(3):                         # three iterations blocked on memory
        hit = kv.get_computed_blocks(b)
        assert len(hit) == 3
        assert not kv.allocate(b, 1, hit)
    assert (kv.queries, kv.hits) == (3, 0)
    kv.free(filler)
    hit = kv.get_computed_blocks(b)
    assert kv.allocate(b, 1, hit)
    # b: 3 full prompt blocks looked up, 3 found
    assert (kv.queries, kv.hits) == (6, 3)
    kv.check([a, b])


def test_block_filled_by_a_chunk_that_needs_no_new_block_is_cached():
    # chunked prefill of an 8-token prompt as 6 + 2 tokens: the first chunk allocates both blocks
    # and fills block 0; the second needs no new block but fills block 1, which must become
    # findable at once (the request may finish without ever allocating again)
    kv = KVCache(10, 4)
    a = req(8, (1, 2), output=1)
    assert kv.allocate(a, 6) and a.kv_blocks == 2
    a.num_computed_tokens = 6
    assert kv.num_cached == 1
    assert kv.allocate(a, 2) and a.kv_blocks == 2 and kv.num_free == 8
    a.num_computed_tokens = 8
    assert kv.num_cached == 2
    assert probe_hits(kv, (1, 2)) == 2
    kv.check([a])
    kv.free(a)
    assert probe_hits(kv, (1, 2)) == 2


# -- bulk decode growth ---------------------------------------------------------------------------
def decoding(kv: KVCache, prompts: list[int]) -> list[RequestView]:
    """Requests past their prompts, each with its first token generated (decoding)."""
    views = [req(p) for p in prompts]
    for v in views:
        admit(kv, v)
        v.output_generated = 1
    return views


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 9])
def test_grow_decodes_equals_growing_each_decode_step_by_step(steps):
    prompts = [3, 4, 5, 8, 1]
    one, bulk = KVCache(40, 4), KVCache(40, 4)
    stepped, grown = decoding(one, prompts), decoding(bulk, prompts)
    for _ in range(steps):
        for v in stepped:
            assert one.allocate(v, 1)
            v.num_computed_tokens += 1
    bulk.grow_decodes(grown, [v.num_computed_tokens for v in grown], steps)
    assert [v.kv_blocks for v in grown] == [v.kv_blocks for v in stepped]
    assert bulk.num_free == one.num_free
    for v in grown:
        v.num_computed_tokens += steps
    bulk.check(grown)
    growth = KVCache(40, 4).decode_growth(decoding(KVCache(40, 4), prompts), prompts)
    assert growth.blocks(steps) == 40 - one.num_free - sum(-(-p // 4) for p in prompts)


def test_grow_decodes_that_does_not_fit_changes_nothing():
    kv = KVCache(3, 4)
    a, b = decoding(kv, [4, 8])                   # 1 + 2 blocks: the pool is full
    with pytest.raises(ValueError):
        kv.grow_decodes([a, b], [4, 8], 1)
    assert (a.kv_blocks, b.kv_blocks, kv.num_free) == (1, 2, 0)
    kv.grow_decodes([a, b], [3, 7], 1)            # no block boundary crossed: nothing to take


def test_settle_decode_credits_blocks_taken_in_bulk():
    kv = KVCache(10, 4)
    a = decoding(kv, [8])[0]
    kv.take_free_blocks(2)                        # a's growth to 16 tokens, taken ahead
    kv.settle_decode(a, 16)
    assert (a.kv_blocks, kv.num_free) == (4, 6)
    kv.check([a])


# -- pins -----------------------------------------------------------------------------------------
def test_pin_holds_prefix_blocks_until_unpinned():
    kv = KVCache(10, 4)
    a = req(12, (1, 2, 3))
    admit(kv, a)                                  # 3 cached blocks
    free, used = kv.num_free, kv.num_used
    pin = kv.pin(a.kv_cached_blocks[:2])
    assert (kv.num_free, kv.num_used, pin.kv_blocks) == (free, used, 2)   # a holds them too
    assert pin.is_shared_by(a)
    kv.check([a, pin])
    kv.free(a)                                    # a's last block is evictable, the pinned not
    assert (kv.num_free, kv.num_evictable_cached) == (8, 1)
    kv.check([pin])
    b = req(32)
    assert kv.allocate(b, 32)                     # 8 blocks: evicts everything evictable
    assert probe_hits(kv, (1, 2, 3)) == 2         # the pinned prefix survives
    kv.unpin(pin)
    assert (kv.num_free, kv.num_evictable_cached, pin.kv_blocks) == (2, 2, 0)
    kv.check([b])


def test_pin_takes_evictable_blocks_out_of_the_free_queue():
    kv = KVCache(10, 4)
    a = req(8, (1, 2))
    admit(kv, a)
    blocks = list(a.kv_cached_blocks)
    kv.free(a)                                    # both evictable now
    assert (kv.num_free, kv.num_evictable_cached) == (10, 2)
    pin = kv.pin(blocks)
    assert (kv.num_free, kv.num_used, kv.num_evictable_cached) == (8, 2, 0)
    assert not pin.is_shared_by(req(8, (1, 2)))   # same content, other blocks
    kv.check([pin])
    kv.unpin(pin)
    assert (kv.num_free, kv.num_evictable_cached) == (10, 2)
    kv.check([])
