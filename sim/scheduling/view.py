"""What a scheduler may know about a request: everything but its output length.

A serving engine does not know how many tokens a request will generate, so the objects a
scheduler holds (in ``waiting``/``running``, in plans, in ``on_finish``) are :class:`RequestView`s,
which have no ``output_tokens``; the engine (:mod:`sim.scheduling.engine`) keeps the true length
and decides when a request is done. Only the ``oracle`` scheduler gets :class:`OracleView`s.
A view is also the request's KV-cache and progress state (vLLM keeps these on its Request too).
"""

from __future__ import annotations

import math

from sim.workload.request import Request, RequestStatus


class RequestView:
    __slots__ = ("id", "arrival_s", "prompt_tokens", "max_new_tokens", "prefix_hashes",
                 "prefix_block_tokens", "status", "num_computed_tokens", "output_generated",
                 "preemptions", "prefill_tokens_computed", "cached_prompt_tokens",
                 "first_scheduled_s", "kv_blocks", "kv_cached_blocks", "kv_block_hashes",
                 "swapped_blocks", "cohort_step")

    def __init__(self, request: Request):
        self.id = request.id
        self.arrival_s = request.arrival_s
        self.prompt_tokens = request.prompt_tokens
        self.max_new_tokens = request.max_new_tokens      # a stated limit, or None
        self.prefix_hashes = request.prefix_hashes
        self.prefix_block_tokens = request.prefix_block_tokens
        self.status = RequestStatus.WAITING
        self.num_computed_tokens = 0      # tokens whose KV is in the cache now
        self.output_generated = 0         # tokens generated so far
        self.preemptions = 0
        self.prefill_tokens_computed = 0  # prefill tokens computed, recomputation included
        self.cached_prompt_tokens = 0     # prompt tokens served by the prefix cache at admission
        self.first_scheduled_s = math.nan
        self.kv_blocks = 0                # KV bookkeeping (sim.memory.KVRequest), owned by KVCache
        self.kv_cached_blocks: list = []
        self.kv_block_hashes: list | None = None
        self.swapped_blocks = 0
        self.cohort_step = -1             # >= 0: a DecodeCohort member, synced at that step

    @property
    def num_tokens(self) -> int:
        """Tokens known so far: the prompt plus what has been generated."""
        return self.prompt_tokens + self.output_generated

    @property
    def is_decoding(self) -> bool:
        """Past its prompt with all known tokens but the newest one computed."""
        return self.output_generated > 0 and self.num_tokens - self.num_computed_tokens == 1

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(id={self.id}, prompt={self.prompt_tokens}, "
                f"generated={self.output_generated}, computed={self.num_computed_tokens}, "
                f"status={self.status.name})")


class OracleView(RequestView):
    """A view that also knows the true output length (the ``oracle`` upper bound only)."""

    __slots__ = ("output_tokens",)

    def __init__(self, request: Request):
        super().__init__(request)
        self.output_tokens = request.output_tokens
