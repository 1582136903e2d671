"""sim.memory.swap: a request's blocks move to host whole, and only if they fit."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.memory import KVCache, SwapSpace


@dataclass
class Holder:
    """The fields of sim.memory.KVRequest, and nothing of sim.scheduling's views."""

    id: int
    prompt_tokens: int
    num_computed_tokens: int = 0
    preemptions: int = 0
    prefix_hashes: tuple | None = None
    prefix_block_tokens: int = 4
    kv_block_hashes: list | None = None
    swapped_blocks: int = 0
    kv_blocks: int = 0
    kv_cached_blocks: list = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens


def req(prompt: int) -> Holder:
    return Holder(id=0, prompt_tokens=prompt)


def test_swap_out_and_in():
    kv, swap = KVCache(10, 4), SwapSpace(5)
    a = req(12)
    assert kv.allocate(a, 12)
    assert swap.swap_out(kv, a)
    assert (a.kv_blocks, a.swapped_blocks, swap.num_used, kv.num_free) == (0, 3, 3, 10)
    kv.check([])
    assert kv.allocate(a, 12)                   # its blocks come back on the device first
    assert swap.swap_in(a) == 3
    assert (a.swapped_blocks, swap.num_used, kv.num_free) == (0, 0, 7)
    kv.check([a])


def test_swap_out_that_does_not_fit_changes_nothing():
    kv, swap = KVCache(10, 4), SwapSpace(2)
    a = req(12)
    assert kv.allocate(a, 12)
    assert not swap.swap_out(kv, a)
    assert (a.kv_blocks, a.swapped_blocks, swap.num_used, kv.num_free) == (3, 0, 0, 7)
    kv.check([a])
