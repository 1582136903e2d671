"""sim.scheduling.prefix_tree: the radix tree and BatchLLM's single-level grouping, by hand.

Most prompts here use one-token chunks (``chunk_tokens=1``), so ids are tokens and every length is
countable on the page; a prompt longer than its ids ends in a unique tail.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.scheduling.prefix_tree import Prompt, PrefixGroup, build_tree, group_prompts


def p(ids, tokens=None, chunk=1) -> Prompt:
    ids = tuple(ids)
    return Prompt(ids, len(ids) * chunk + 1 if tokens is None else tokens, chunk)


def as_sets(groups: list[PrefixGroup]) -> dict[frozenset, tuple[int, int]]:
    return {frozenset(g.members): (g.prefix_tokens, g.shared_tokens) for g in groups}


# root -> c "1 2" (5 prompts) -> g1 "3 3 3 3" (prompts 0-2), g2 "5" (prompts 3-4); 5 has no ids
SMALL = [p([1, 2, 3, 3, 3, 3], 8)] * 3 + [p([1, 2, 5], 5)] * 2 + [p([], 7)]


def test_tree_edges_and_leaves():
    root = build_tree(SMALL)
    top = {(n.token_depth, len(n.requests)) for n in root.children}
    assert top == {(2, 0), (7, 1)}                      # c at 2 tokens; the id-less prompt
    c = next(n for n in root.children if n.token_depth == 2)
    assert sorted((g.token_depth, len(g.children)) for g in c.children) == [(3, 2), (6, 3)]


def test_gain_rule_lifts_a_heavy_grandchild_and_merges_the_rest():
    # at c (2 tokens): g1 gains (3-1)*4 - 2 = 6 > 0 -> lifted with c's tokens (6);
    # g2 gains (2-1)*1 - 2 = -1 -> stays; c is left with one child -> merged into it (3)
    groups = group_prompts(SMALL, block_size=1)
    assert as_sets(groups) == {frozenset({0, 1, 2}): (6, 6), frozenset({3, 4}): (3, 3),
                               frozenset({5}): (0, 0)}
    assert sum(len(g.members) for g in groups) == len(SMALL)


def test_gain_rule_keeps_a_long_parent_prefix():
    # c = 10 tokens shared by 4; g1, g2 = 2 tokens each shared by 2: gain 1*2 - 10 < 0
    base = list(range(10))
    prompts = [p(base + [20, 21])] * 2 + [p(base + [30, 31])] * 2
    assert as_sets(group_prompts(prompts, 1)) == {frozenset(range(4)): (10, 10)}


def test_gain_rule_bottom_up_over_two_levels():
    # a = 4 tokens (6 prompts) -> b = 4 (5 prompts) -> d = 8 (3 prompts), e = 2 (2 prompts);
    # a -> f: one prompt of its own. At b: d gains 2*8 - 4 = 12 (lifted, 12 tokens), e gains
    # 1*2 - 4 < 0 (b merged into it: 6). At a: d gains 2*12 - 4 = 20, e gains 1*6 - 4 = 2: both
    # lifted (16, 10); a merged into f's leaf.
    a, b = [1] * 4, [2] * 4
    d, e = a + b + [3] * 8, a + b + [4, 4]
    prompts = [p(d)] * 3 + [p(e)] * 2 + [p(a + [9])]
    assert as_sets(group_prompts(prompts, 1)) == {
        frozenset({0, 1, 2}): (16, 16), frozenset({3, 4}): (10, 10), frozenset({5}): (0, 0)}


def test_shared_part_is_rounded_down_to_blocks():
    assert as_sets(group_prompts(SMALL, 2))[frozenset({3, 4})] == (3, 2)
    # block 4: g2's 3 tokens are under a block, so 3 and 4 share nothing (two groups of one)
    groups = as_sets(group_prompts(SMALL, 4))
    assert groups[frozenset({0, 1, 2})] == (6, 4)
    assert groups[frozenset({3})] == groups[frozenset({4})] == (0, 0)


def test_groups_of_one_are_not_shared():
    groups = group_prompts([p([1, 2, 3, 4]), p([5, 6, 7, 8])], 1)
    assert all(not g.is_shared and len(g.members) == 1 for g in groups)


def test_identical_prompts_leave_their_last_token_to_compute():
    # 8 tokens = 2 chunks of 4, no tail: the whole prompt is shared content, but the last
    # token must run (logits), so only the first block of 4 can come from the cache
    same = [Prompt((1, 2), 8, 4)] * 3
    assert as_sets(group_prompts(same, 4)) == {frozenset({0, 1, 2}): (8, 4)}


def test_ids_past_the_prompt_and_mixed_chunk_sizes():
    # 6 tokens of 4-token chunks: only 2 ids cover the prompt, so the third never separates them
    assert as_sets(group_prompts([Prompt((1, 2, 3), 6, 4), Prompt((1, 2, 9), 6, 4)], 2)) == {
        frozenset({0, 1}): (6, 4)}
    # the same ids at different chunk sizes are different content
    groups = group_prompts([Prompt((1, 2), 9, 4), Prompt((1, 2), 17, 8)], 2)
    assert [len(g.members) for g in groups] == [1, 1]


@pytest.mark.parametrize("seed", range(5))
def test_every_prompt_in_one_group_and_groups_really_share(seed):
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(200):
        depth = int(rng.integers(0, 6))
        ids = [int(x) for x in rng.integers(0, 3, size=depth)]   # small alphabet: much sharing
        chunk = 4
        prompts.append(Prompt(tuple(ids), depth * chunk + int(rng.integers(0, 6)) or 1, chunk))
    bs = 8
    groups = group_prompts(prompts, bs)
    members = sorted(i for g in groups for i in g.members)
    assert members == list(range(len(prompts)))
    for g in groups:
        assert g.shared_tokens % bs == 0 and g.shared_tokens <= g.prefix_tokens
        if not g.is_shared:
            assert len(g.members) == 1
            continue
        assert len(g.members) > 1
        need = -(-g.shared_tokens // 4)
        first = prompts[g.members[0]]
        for i in g.members:
            assert prompts[i].tokens > g.shared_tokens
            assert prompts[i].real_ids[:need] == first.real_ids[:need]
            assert len(prompts[i].real_ids) >= need


def test_a_large_batch_is_quick():
    # 6,400 prompts of 125 shared + unique tails, as in the benchmark: a few thousand nodes
    k = 125
    prompts = [Prompt(tuple(range(g * k, g * k + k)), 2200, 16) for g in range(400)] * 16
    groups = group_prompts(prompts, 64)
    assert len(groups) == 400
    assert {(len(g.members), g.prefix_tokens, g.shared_tokens) for g in groups} == {
        (16, 2000, 1984)}
