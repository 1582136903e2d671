"""Routers: which replica gets an arriving request. ``ROUTERS`` maps YAML names to classes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Protocol, Sequence

import numpy as np

from sim.registry import Registry
from sim.workload.request import Request


class ReplicaView(Protocol):
    index: int

    @property
    def num_outstanding(self) -> int: ...

    @property
    def kv_blocks_used(self) -> int: ...

    @property
    def kv_blocks_total(self) -> int: ...


_outstanding = attrgetter("num_outstanding")


class Router:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def bind(self, replicas: Sequence[ReplicaView]) -> None:
        """All replicas this router serves, once, before the first pick."""

    def load_changed(self, replica: ReplicaView) -> None:
        """``replica.num_outstanding`` changed (a request was submitted to it, or ended there)."""

    def pick(self, request: Request, replicas: Sequence[ReplicaView]) -> ReplicaView:
        raise NotImplementedError


class RoundRobinRouter(Router):
    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self._next = 0

    def pick(self, request, replicas):
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica


class RandomRouter(Router):
    def pick(self, request, replicas):
        return replicas[int(self.rng.integers(len(replicas)))]


class _IndexedHeap:
    """Binary min-heap of the slots ``0..n-1`` ordered by ``(key, slot)``, which also knows
    where each slot sits, so that changing any slot's key costs O(log n), not a rebuild.

    The pair is kept as one integer, ``key * n + slot`` (for integer keys, of either sign, the
    same order as the pair's), so that a comparison is one integer comparison; sifting moves a
    hole instead of swapping (routers change a key twice per request)."""

    __slots__ = ("n", "rank", "heap", "where")

    def __init__(self, keys: Iterable[int]):
        keys = list(keys)
        n = self.n = len(keys)
        self.rank = [key * n + slot for slot, key in enumerate(keys)]
        self.heap = sorted(range(n), key=self.rank.__getitem__)   # sorted is a valid heap
        self.where = [0] * n
        for pos, slot in enumerate(self.heap):
            self.where[slot] = pos

    @property
    def top(self) -> int:
        return self.heap[0]

    def key(self, slot: int) -> int:
        return self.rank[slot] // self.n

    def update(self, slot: int, key: int) -> None:
        rank, heap, where = self.rank, self.heap, self.where
        new = key * self.n + slot
        old = rank[slot]
        if new == old:
            return
        rank[slot] = new
        pos = where[slot]
        if new < old:                       # up towards the root
            while pos:
                parent = (pos - 1) >> 1
                above = heap[parent]
                if rank[above] < new:
                    break
                heap[pos] = above
                where[above] = pos
                pos = parent
        else:                               # down towards the leaves
            size = len(heap)
            child = 2 * pos + 1
            while child < size:
                below = heap[child]
                if child + 1 < size and rank[heap[child + 1]] < rank[below]:
                    child += 1
                    below = heap[child]
                if new < rank[below]:
                    break
                heap[pos] = below
                where[below] = pos
                pos = child
                child = 2 * pos + 1
        heap[pos] = slot
        where[slot] = pos


class _LoadIndex:
    """The outstanding-request counts of the bound replicas, in indexed heaps kept current by
    ``changed``: the least loaded replica (and, with ``track_max``, the largest count) is read
    in O(1) and kept in O(log R) per change, instead of a scan over every replica per arrival.

    The heaps are used only when a pick is given exactly the bound replicas, in bound order
    (the same list object as the last such pick, or one checked element by element once);
    then the heap's ``(count, position)`` minimum is the replica that ``min`` over the list
    returns. Any other list (some replicas down, or nothing bound) is scanned, and the heaps are
    rebuilt from the replicas when the full list comes back, in case a count changed unseen
    meanwhile (a lost replica's engine replaced)."""

    def __init__(self, track_max: bool = False):
        self.track_max = track_max
        self.replicas: list[ReplicaView] = []
        self.by_index: dict[int, ReplicaView] = {}
        self._slot: dict[int, int] = {}           # replica.index -> position in ``replicas``
        self._least: _IndexedHeap | None = None
        self._most: _IndexedHeap | None = None    # keyed on -count
        self._synced: Sequence[ReplicaView] | None = None   # the list the heaps stand for

    def bind(self, replicas: Sequence[ReplicaView]) -> None:
        self.replicas = list(replicas)
        self.by_index = {r.index: r for r in self.replicas}
        self._slot = {r.index: slot for slot, r in enumerate(self.replicas)}
        self._synced = None
        self._rebuild()

    def _rebuild(self) -> None:
        counts = [r.num_outstanding for r in self.replicas]
        self._least = _IndexedHeap(counts)
        self._most = _IndexedHeap(-c for c in counts) if self.track_max else None

    def changed(self, replica: ReplicaView) -> None:
        slot = self._slot.get(replica.index)
        if slot is None:
            return
        count = replica.num_outstanding
        self._least.update(slot, count)
        if self._most is not None:
            self._most.update(slot, -count)

    def covers(self, replicas: Sequence[ReplicaView]) -> bool:
        """Whether ``replicas`` is the bound list, so the heaps answer for it."""
        bound = self.replicas
        if len(replicas) != len(bound) or not bound:
            self._synced = None
            return False
        if replicas is self._synced:
            return True
        if any(a is not b for a, b in zip(replicas, bound)):
            self._synced = None
            return False
        self._synced = replicas
        self._rebuild()
        return True

    def least(self, replicas: Sequence[ReplicaView]) -> ReplicaView:
        """Fewest outstanding requests; ties to the first in list order (the lowest index)."""
        if self.covers(replicas):
            return self.replicas[self._least.top]
        return min(replicas, key=_outstanding)

    def spread(self, replicas: Sequence[ReplicaView]) -> tuple[int, int]:
        """(fewest, most) outstanding requests over ``replicas``."""
        if self.track_max and self.covers(replicas):
            return self._least.key(self._least.top), -self._most.key(self._most.top)
        counts = [r.num_outstanding for r in replicas]
        return min(counts), max(counts)

    def indexed(self, replicas: Sequence[ReplicaView]) -> Mapping[int, ReplicaView]:
        """``replicas`` by their index."""
        return self.by_index if self.covers(replicas) else {r.index: r for r in replicas}


class _LoadTrackingRouter(Router):
    """A router that keeps the bound replicas' loads in a _LoadIndex (``track_max``: the
    largest count too)."""

    track_max = False

    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self.loads = _LoadIndex(track_max=self.track_max)

    def bind(self, replicas: Sequence[ReplicaView]) -> None:
        self.loads.bind(replicas)

    def load_changed(self, replica: ReplicaView) -> None:
        self.loads.changed(replica)


class LeastOutstandingRouter(_LoadTrackingRouter):
    """Fewest requests waiting or running; ties go to the lowest index.

    With ``bind`` and ``load_changed`` called, a pick over every replica is O(1) and each load
    change O(log R) (an indexed heap), not a scan over all replicas per arrival; the replica
    picked is the same as the scan's."""

    def pick(self, request: Request, replicas: Sequence[ReplicaView]) -> ReplicaView:
        return self.loads.least(replicas)


class LeastKvLoadRouter(Router):
    """Lowest fraction of KV blocks in use; ties broken by fewer outstanding requests."""

    def pick(self, request, replicas):
        return min(replicas, key=lambda r: (r.kv_blocks_used / r.kv_blocks_total,
                                            r.num_outstanding))


class _PrefixIndex:
    """Which prefix hashes were sent to which replica: a global ``hash -> replica indices`` map,
    so scoring a request costs O(its hashes), and per replica an LRU of its hashes, bounded
    like the cache it stands for."""

    def __init__(self) -> None:
        self.holders: dict[int, set[int]] = {}
        self.lru: dict[int, OrderedDict[int, None]] = {}

    def best(self, hashes: Sequence[int], allowed: Mapping[int, object] | None
             ) -> tuple[int, set[int]]:
        """The longest run of leading ``hashes`` any replica (among ``allowed`` indices, if
        given) holds, and the replicas holding that run (possibly the index's own set: read it
        before the next ``record``)."""
        live: set[int] = set()
        score = 0
        for h in hashes:
            holders = self.holders.get(h)
            if not holders:
                break
            if score == 0:
                held = holders if allowed is None else allowed.keys() & holders
            else:
                held = live & holders
            if not held:
                break
            live, score = held, score + 1
        return score, live

    def record(self, index: int, capacity: int, hashes: Sequence[int]) -> None:
        """Replica ``index`` was sent ``hashes``; it keeps the ``capacity`` most recent."""
        lru = self.lru.get(index)
        if lru is None:
            lru = self.lru[index] = OrderedDict()
        holders = self.holders
        # last hash first, so the leading hashes are the most recent and a prompt's tail is
        # evicted before its head (as vLLM frees a request's blocks, tail first)
        for h in reversed(hashes):
            if h in lru:
                lru.move_to_end(h)
            else:
                lru[h] = None
                holders.setdefault(h, set()).add(index)
        while len(lru) > capacity:
            h, _ = lru.popitem(last=False)
            held = holders[h]
            held.discard(index)
            if not held:
                del holders[h]


class PrefixAwareRouter(_LoadTrackingRouter):
    """To the replica that was sent the longest run of this request's leading prefix hashes, to
    reuse its prefix cache (llm-d's prefix scorer, SGLang's cache-aware router); ties go to
    fewer outstanding requests, then the lower index. A request without hashes, or matching
    nowhere, goes to the least-outstanding replica.

    Load guard, as SGLang's: when ``most - fewest`` outstanding requests over the given
    replicas exceeds ``balance_abs`` and ``most > balance_rel * fewest``, the pick is
    least-outstanding instead, since a hot cache is not worth a long queue.

    The router tracks blocks approximately, from what it routed, not from the caches: each
    replica is assumed to hold the last distinct hashes sent to it that its KV pool can cover
    (its KV tokens over the request's ``prefix_block_tokens``; leading hashes of a request kept
    longer than its tail), evicted least recently routed first. It does not see what running
    requests occupy, evictions under memory pressure, nor a lost replica's cache being
    emptied."""

    balance_abs = 32
    balance_rel = 1.0001

    track_max = True

    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self.prefixes = _PrefixIndex()

    def pick(self, request: Request, replicas: Sequence[ReplicaView]) -> ReplicaView:
        hashes = request.prefix_hashes
        if not hashes:
            return self.loads.least(replicas)
        replica = None
        if not self._imbalanced(replicas):
            by_index = self.loads.indexed(replicas)
            allowed = None if by_index is self.loads.by_index else by_index
            score, held = self.prefixes.best(hashes, allowed)
            if score:
                index = min(held, key=lambda i: (by_index[i].num_outstanding, i))
                replica = by_index[index]
        if replica is None:
            replica = self.loads.least(replicas)
        self.prefixes.record(replica.index, self._capacity(replica, request), hashes)
        return replica

    @staticmethod
    def _capacity(replica: ReplicaView, request: Request) -> int:
        """Hashes a replica's cache holds: its KV tokens over the tokens one hash covers (a
        replica that does not say its tokens: one hash per block)."""
        tokens = getattr(replica, "kv_tokens_total", None)
        if tokens is None:
            return max(1, replica.kv_blocks_total)
        return max(1, tokens // max(1, request.prefix_block_tokens))

    def _imbalanced(self, replicas: Sequence[ReplicaView]) -> bool:
        fewest, most = self.loads.spread(replicas)
        return most - fewest > self.balance_abs and most > self.balance_rel * fewest


class SessionAffinityRouter(_LoadTrackingRouter):
    """A session's requests to the replica its previous request went to, where its earlier
    turns' KV is likely still cached, while that replica is up and under ``kv_full`` of its KV
    blocks; otherwise (a new session, no session, or that replica down or full) to the
    least-outstanding replica, and the session is pinned there. O(1) per request besides the
    least-outstanding pick; one entry per session seen is remembered."""

    kv_full = 0.95

    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self._pinned: dict[int, int] = {}     # session -> replica index

    def pick(self, request: Request, replicas: Sequence[ReplicaView]) -> ReplicaView:
        session = request.session
        if session < 0:
            return self.loads.least(replicas)
        index = self._pinned.get(session)
        if index is not None:
            replica = self.loads.indexed(replicas).get(index)
            if replica is not None and \
                    replica.kv_blocks_used / replica.kv_blocks_total < self.kv_full:
                return replica
        replica = self.loads.least(replicas)
        self._pinned[session] = replica.index
        return replica


ROUTERS: Registry[type[Router]] = Registry("router", {
    "round-robin": RoundRobinRouter,
    "random": RandomRouter,
    "least-outstanding": LeastOutstandingRouter,
    "least-kv-load": LeastKvLoadRouter,
    "prefix-aware": PrefixAwareRouter,
    "session-affinity": SessionAffinityRouter,
})
