"""Paged KV cache with vLLM v1's automatic prefix caching, tracked by block counts.

Blocks are interchangeable unless they hold a hashed, reusable prefix, so a request owns
``kv_blocks`` blocks of which ``kv_cached_blocks`` (a prefix, in prompt order) are
:class:`CachedBlock` objects with a hash and a reference count; the rest are anonymous. The free
queue keeps vLLM's eviction order exactly: freed blocks join the tail (a request's blocks in
reverse order, so its last blocks are evicted first), allocation takes from the head, and a cached
block that is hit again leaves the queue from the middle. Runs of anonymous free blocks are one
queue entry, so allocating decode blocks costs O(1), not O(blocks).

Hashes: block ``i`` of a prompt that carries ``prefix_hashes`` (ids of ``prefix_block_tokens``-token
chunks, as in the Mooncake trace) is keyed by the chain of ids up to the chunk that ends it plus
``i``; so two prompts share block ``i`` exactly when they share everything up to its end. Prompts
without ids have unique content, and their blocks are only made reusable (keyed by request) when the
request is preempted, so that it can resume from them, as vLLM (which hashes every full block) does.

With a :class:`~sim.memory.host_tier.HostKVTier`, an evicted cached block's hash moves to host
memory instead of vanishing; a prompt whose next blocks after its device hit are there may load
them (:meth:`KVCache.host_blocks_to_load`, ``num_loaded`` of :meth:`KVCache.allocate`), and they
become device cached blocks again.

A request is anything with the fields of :class:`~sim.memory.holders.KVRequest`; every change to
its block counts is made here (allocation, bulk decode growth, pins, release).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from sim.memory.blocks import DecodeGrowth, blocks_for_tokens
from sim.memory.holders import KVHolder, KVRequest
from sim.memory.host_tier import HostKVTier


_GOLDEN = np.int64(-7046029254386353131)    # 0x9E3779B97F4A7C15 as int64: spreads block indices


class CachedBlock:
    """A block holding a reusable prefix."""

    __slots__ = ("hash", "ref_cnt")

    def __init__(self, block_hash: object):
        self.hash = block_hash
        self.ref_cnt = 1


class PrefixPin:
    """One extra reference on a run of cached prefix blocks, held like a request holds blocks
    (so :meth:`KVCache.free` releases it and :meth:`KVCache.check` counts it): while it lives,
    LRU cannot evict them (SGLang's ``inc_lock_ref``)."""

    __slots__ = ("kv_blocks", "kv_cached_blocks")

    def __init__(self, blocks: list[CachedBlock]):
        self.kv_blocks = len(blocks)
        self.kv_cached_blocks = blocks

    def is_shared_by(self, holder: KVHolder) -> bool:
        """Whether ``holder``'s first blocks are these very blocks (not copies of their content)."""
        blocks = self.kv_cached_blocks
        return holder.kv_cached_blocks[:len(blocks)] == blocks   # no __eq__: by identity


class _FreeRun:
    """A run of consecutive anonymous free blocks in the free queue."""

    __slots__ = ("count",)

    def __init__(self, count: int):
        self.count = count


class KVCache:
    """Block pool of one replica: allocation, prefix-cache lookup, free, LRU eviction."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True,
                 host_tier: HostKVTier | None = None):
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError("num_blocks and block_size must be > 0")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        # where evicted prefix blocks go (None: they are forgotten); useless without prefix caching
        self.host_tier = host_tier if prefix_caching else None
        self.num_free = num_blocks            # free blocks, evictable cached ones included
        self._free_queue: OrderedDict[object, None] = OrderedDict({_FreeRun(num_blocks): None})
        self._cached: dict[object, CachedBlock] = {}
        self._evictable_cached = 0              # cached blocks in the free queue
        self.hits = 0                           # prompt blocks served from the cache
        self.queries = 0                        # full prompt blocks of admitted prompts
        self.host_hits = 0                      # prompt blocks loaded from the host tier
        self.host_loads = 0                     # blocks loaded, resumed prompts' included

    # -- queries -------------------------------------------------------------------------------
    @property
    def num_used(self) -> int:
        return self.num_blocks - self.num_free

    @property
    def num_cached(self) -> int:
        """Blocks with a reusable hash (referenced or evictable)."""
        return len(self._cached)

    @property
    def num_evictable_cached(self) -> int:
        """Cached blocks no request holds (in the free queue, reusable until evicted)."""
        return self._evictable_cached

    @property
    def host_stores(self) -> int:
        """Blocks moved to the host tier (evicted here, not there already)."""
        return self.host_tier.stores if self.host_tier is not None else 0

    @property
    def host_evictions(self) -> int:
        """Blocks the host tier dropped to make room."""
        return self.host_tier.evictions if self.host_tier is not None else 0

    @property
    def usage(self) -> float:
        return self.num_used / self.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return blocks_for_tokens(num_tokens, self.block_size)

    def decode_blocks_needed(self, holders: Sequence[KVHolder]) -> int:
        """New blocks the next decode token of each of ``holders`` needs (one for each whose
        blocks are full)."""
        bs = self.block_size
        return sum(1 for h in holders if h.num_computed_tokens >= h.kv_blocks * bs)

    # -- hashing -------------------------------------------------------------------------------
    def prompt_block_hashes(self, request: KVRequest) -> list:
        """Hashes of the request's full prompt blocks that carry shared-prefix ids.

        Block i ends in prefix chunk j = ((i+1)*bs - 1) // chunk; its key mixes the chain hash of
        chunks 0..j with i (64-bit, vectorised: prompts of Mooncake's length have ~750 blocks).
        """
        if request.kv_block_hashes is not None:
            return request.kv_block_hashes
        hashes: list = []
        ids = request.prefix_hashes
        if ids:
            bs, chunk = self.block_size, request.prefix_block_tokens
            num_blocks = min(request.prompt_tokens, len(ids) * chunk) // bs
            if num_blocks:
                i = np.arange(num_blocks, dtype=np.int64)
                last_chunk = ((i + 1) * bs - 1) // chunk
                chains, chain = [], None
                for chunk_id in ids[: int(last_chunk[-1]) + 1]:
                    chain = hash((chain, chunk_id))
                    chains.append(chain)
                with np.errstate(over="ignore"):        # wrap-around multiply is the mixing
                    keys = np.array(chains, dtype=np.int64)[last_chunk] ^ (i * _GOLDEN + 1)
                hashes = keys.tolist()
        request.kv_block_hashes = hashes
        return hashes

    # -- prefix cache --------------------------------------------------------------------------
    def get_computed_blocks(self, request: KVRequest) -> list[CachedBlock]:
        """Longest cached prefix of the request's tokens (whole blocks), leaving at least one
        token to compute, as vLLM does (the last prompt token must run to produce logits)."""
        if not self.prefix_caching:
            return []
        hashes = self.prompt_block_hashes(request)   # extended with its own blocks if preempted
        limit = min(len(hashes), (request.num_tokens - 1) // self.block_size)
        hit: list[CachedBlock] = []
        cached = self._cached
        for h in hashes[:limit]:
            block = cached.get(h)
            if block is None:
                break
            hit.append(block)
        return hit

    def host_blocks_to_load(self, request: KVRequest, num_computed_blocks: int) -> int:
        """Prompt blocks after the ``num_computed_blocks`` device hit that the host tier holds,
        in a row, if loading them beats recomputing them (else 0); like the device hit, they
        leave at least one token to compute."""
        tier = self.host_tier
        if tier is None:
            return 0
        hashes = self.prompt_block_hashes(request)
        limit = min(len(hashes), (request.num_tokens - 1) // self.block_size)
        blocks = tier.run_length(hashes, num_computed_blocks, limit)
        return blocks if tier.worth_loading(blocks, self.block_size) else 0

    # -- allocation ----------------------------------------------------------------------------
    def can_allocate(self, request: KVRequest, num_new_tokens: int,
                     computed: list[CachedBlock] = (), num_loaded: int = 0) -> bool:
        total = request.num_computed_tokens + (len(computed) + num_loaded) * self.block_size \
            + num_new_tokens
        needed = self.blocks_for(total) - request.kv_blocks - len(computed)
        evictable = sum(1 for b in computed if b.ref_cnt == 0)
        return needed + evictable <= self.num_free

    def allocate(self, request: KVRequest, num_new_tokens: int,
                 computed: list[CachedBlock] = (), num_loaded: int = 0) -> bool:
        """Give the request blocks for ``num_new_tokens`` more tokens (after taking ``computed``
        prefix blocks and ``num_loaded`` new blocks for the host-tier blocks that follow them,
        see :meth:`host_blocks_to_load`). Returns False, changing nothing, if the pool cannot
        provide them."""
        if not computed and not num_loaded:   # the common case (decode, next chunk)
            total = request.num_computed_tokens + num_new_tokens
            # blocks_for_tokens inlined: this runs for every running request at every iteration
            needed = -(-total // self.block_size) - request.kv_blocks
            if needed <= 0:
                if total % self.block_size == 0 and self.prefix_caching and request.prefix_hashes:
                    # these tokens filled the last block: it may be a prompt block to register
                    self._cache_full_blocks(request, total)
                return True
            if needed > self.num_free:
                return False
            if request.kv_blocks == 0 and self.prefix_caching:
                self._count_admission(request, 0)
            self._pop_free(needed)
            request.kv_blocks += needed
            if self.prefix_caching and request.prefix_hashes:
                self._cache_full_blocks(request, total)
            return True
        if not self.can_allocate(request, num_new_tokens, computed, num_loaded):
            return False
        if request.kv_blocks == 0:
            self._count_admission(request, len(computed), num_loaded)
        if computed:
            self._reference(computed)
            request.kv_cached_blocks.extend(computed)
            request.kv_blocks += len(computed)
        if num_loaded:
            # most recently used before this allocation's evictions reach the tier
            start = len(request.kv_cached_blocks)
            self.host_tier.touch(self.prompt_block_hashes(request)[start:start + num_loaded])
            self.host_loads += num_loaded
        loaded_upto = request.num_computed_tokens \
            + (len(computed) + num_loaded) * self.block_size
        total = loaded_upto + num_new_tokens
        needed = self.blocks_for(total) - request.kv_blocks
        if needed > 0:
            self._pop_free(needed)
            request.kv_blocks += needed
        if num_loaded:
            # loaded blocks hold their prompt content: reusable like computed ones (even for a
            # resumed prompt without prefix ids, whose own blocks these are)
            self._cache_full_blocks(request, loaded_upto)
        if self.prefix_caching and request.prefix_hashes:
            self._cache_full_blocks(request, total)
        return True

    def _count_admission(self, request: KVRequest, hit_blocks: int, loaded_blocks: int = 0) -> None:
        """Prefix-cache statistics of a prompt's first admission. Counted when its allocation
        succeeds, not at lookup: the head of the waiting queue is looked up again every iteration
        while it waits for memory, and must count once."""
        if request.num_computed_tokens == 0 and not request.preemptions:
            self.queries += min(len(self.prompt_block_hashes(request)),
                                request.prompt_tokens // self.block_size)
            self.hits += hit_blocks
            self.host_hits += loaded_blocks

    # -- bulk decode growth --------------------------------------------------------------------
    # Decode tokens fill no prompt block, so growing a decode needs no prefix bookkeeping: only
    # anonymous blocks from the head of the free queue, which many decodes can take at once.
    def grow_decodes(self, holders: Sequence[KVHolder], computed_tokens: Sequence[int],
                     steps: int) -> None:
        """Each holder, with ``computed_tokens`` tokens computed, gets the blocks that ``steps``
        more tokens fill (what ``steps`` decode iterations would allocate one by one). Raises
        ValueError, changing nothing, if the pool cannot give them."""
        bs = self.block_size
        grown = []
        total = 0
        for holder, computed in zip(holders, computed_tokens):
            # blocks_for_tokens inlined: this runs for every listed decode of every decode run
            need = -(-(computed + steps) // bs) - holder.kv_blocks
            if need > 0:
                grown.append((holder, need))
                total += need
        self.take_free_blocks(total)
        for holder, need in grown:
            holder.kv_blocks += need

    def decode_growth(self, holders: Sequence[KVHolder],
                      computed_tokens: Sequence[int]) -> DecodeGrowth:
        """What :meth:`grow_decodes` would take for each number of steps, without taking it."""
        return DecodeGrowth(self.block_size, computed_tokens, [h.kv_blocks for h in holders])

    def take_free_blocks(self, count: int) -> None:
        """Take ``count`` anonymous blocks for decodes tracked in bulk (a decode cohort, whose
        members are credited with them later by :meth:`settle_decode`)."""
        if count:
            if count > self.num_free:
                raise ValueError(f"cannot take {count} blocks, {self.num_free} free")
            self._pop_free(count)

    def settle_decode(self, holder: KVHolder, num_tokens: int) -> None:
        """Credit a decode tracked in bulk with the blocks its ``num_tokens`` tokens fill (its
        cached prompt blocks among them): its growth was taken by take_free_blocks."""
        holder.kv_blocks = blocks_for_tokens(num_tokens, self.block_size)

    def _pop_free(self, count: int) -> None:
        """Take ``count`` blocks from the head of the free queue, evicting cached ones."""
        self.num_free -= count
        queue, cached, tier = self._free_queue, self._cached, self.host_tier
        head = next(iter(queue), None)
        if type(head) is _FreeRun and head.count > count:   # the common case: one run has them
            head.count -= count
            return
        while count:
            entry = next(iter(queue))
            if type(entry) is _FreeRun:
                take = entry.count if entry.count < count else count
                entry.count -= take
                count -= take
                if entry.count == 0:
                    queue.popitem(last=False)
            else:
                queue.popitem(last=False)
                del cached[entry.hash]
                if tier is not None:
                    tier.store(entry.hash)      # offloaded, not forgotten
                self._evictable_cached -= 1
                count -= 1

    def _cache_full_blocks(self, request: KVRequest, num_tokens: int) -> None:
        """Register hashes of the prompt blocks that are full once ``num_tokens`` are computed."""
        hashes = self.prompt_block_hashes(request)
        upto = min(len(hashes), num_tokens // self.block_size)
        blocks = request.kv_cached_blocks
        cached = self._cached
        for i in range(len(blocks), upto):
            h = hashes[i]
            if h in cached:      # someone else holds this content: keep ours anonymous (and the rest)
                return
            block = CachedBlock(h)
            cached[h] = block
            blocks.append(block)

    # -- pins ----------------------------------------------------------------------------------
    def pin(self, blocks: list[CachedBlock]) -> PrefixPin:
        """Take one more reference on cached ``blocks`` (a shared prefix), until :meth:`unpin`."""
        self._reference(blocks)
        return PrefixPin(list(blocks))

    def unpin(self, pin: PrefixPin) -> None:
        """Drop the pin's references: blocks nobody else holds join the free queue's tail, still
        reusable until evicted."""
        self.free(pin)

    def _reference(self, blocks: list[CachedBlock]) -> None:
        """One more reference on each of ``blocks``; an evictable one leaves the free queue."""
        for block in blocks:
            if block.ref_cnt == 0:
                del self._free_queue[block]
                self._evictable_cached -= 1
                self.num_free -= 1
            block.ref_cnt += 1

    # -- release -------------------------------------------------------------------------------
    def free(self, request: KVHolder, keep_for_resume: bool = False) -> None:
        """Release all of a holder's blocks to the tail of the free queue (last block first).

        ``keep_for_resume`` (preemption with prefix caching; ``request`` is then a KVRequest)
        first gives the request's full anonymous blocks request-unique hashes, so the request
        finds them again when it resumes.
        """
        if keep_for_resume and self.prefix_caching:
            self._cache_own_blocks(request)
        queue = self._free_queue
        anonymous = request.kv_blocks - len(request.kv_cached_blocks)
        if anonymous:
            queue[_FreeRun(anonymous)] = None
            self.num_free += anonymous
        for block in reversed(request.kv_cached_blocks):
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                queue[block] = None
                self._evictable_cached += 1
                self.num_free += 1
        request.kv_blocks = 0
        request.kv_cached_blocks = []

    def _cache_own_blocks(self, request: KVRequest) -> None:
        full = min(request.num_computed_tokens // self.block_size, request.kv_blocks)
        hashes = list(self.prompt_block_hashes(request))
        hashes += [("req", request.id, i) for i in range(len(hashes), full)]
        request.kv_block_hashes = hashes
        blocks, cached = request.kv_cached_blocks, self._cached
        for i in range(len(blocks), full):
            h = hashes[i]
            if h in cached:
                break
            block = CachedBlock(h)
            cached[h] = block
            blocks.append(block)

    def reset_prefix_cache(self) -> None:
        """Forget every evictable cached block (they become anonymous free blocks; with a host
        tier they move there, in eviction order)."""
        tier = self.host_tier
        for entry in list(self._free_queue):
            if type(entry) is CachedBlock:
                del self._cached[entry.hash]
                if tier is not None:
                    tier.store(entry.hash)
        self._free_queue = OrderedDict({_FreeRun(self.num_free): None}) if self.num_free else OrderedDict()
        self._evictable_cached = 0

    # -- invariants ----------------------------------------------------------------------------
    def check(self, holders: list[KVHolder]) -> None:
        """Assert the pool's accounting: used blocks are exactly the blocks requests hold
        (a shared cached block counted once), and the free queue holds num_free blocks."""
        in_queue = sum(e.count if type(e) is _FreeRun else 1 for e in self._free_queue)
        assert self._evictable_cached == sum(1 for b in self._cached.values() if b.ref_cnt == 0)
        assert in_queue == self.num_free, (in_queue, self.num_free)
        shared = {}
        anonymous = 0
        for r in holders:
            anonymous += r.kv_blocks - len(r.kv_cached_blocks)
            for b in r.kv_cached_blocks:
                shared[id(b)] = shared.get(id(b), 0) + 1
                assert b.hash in self._cached
        for b in self._cached.values():
            assert b.ref_cnt == shared.get(id(b), 0), (b.hash, b.ref_cnt, shared.get(id(b), 0))
        assert anonymous + len(shared) == self.num_used, (anonymous, len(shared), self.num_used)
        assert 0 <= self.num_free <= self.num_blocks
        tier = self.host_tier
        if tier is not None:
            # every hash stored is there until evicted (a re-store only refreshes it)
            assert len(tier) <= tier.capacity_blocks, (len(tier), tier.capacity_blocks)
            assert len(tier) == tier.stores - tier.evictions, (len(tier), tier.stores,
                                                               tier.evictions)
            assert self.host_hits <= self.host_loads, (self.host_hits, self.host_loads)
            assert self.hits + self.host_hits <= self.queries, (self.hits, self.host_hits,
                                                                self.queries)
