"""Request: one inference request and its lifecycle, as plain mutable state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum


class RequestStatus(IntEnum):
    """Ordered so that ``status >= FINISHED_COMPLETED`` means the request has ended."""

    WAITING = 0
    RUNNING = 1
    PREEMPTED = 2
    FINISHED_COMPLETED = 3
    FINISHED_REJECTED = 4

    @property
    def is_finished(self) -> bool:
        return self >= RequestStatus.FINISHED_COMPLETED


NAN = math.nan


@dataclass(slots=True, eq=False)
class Request:
    """A request and its progress.

    Progress is counters, not phases: ``num_computed_tokens`` of ``num_tokens`` (prompt + tokens
    generated so far) have KV in the cache; the request is prefilling while that is short of
    ``num_tokens`` and decoding (one token per iteration) otherwise.
    """

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_hashes: tuple[int, ...] | None = None   # ids of prompt blocks (equal ids = shared prefix)
    prefix_block_tokens: int = 16                  # prompt tokens covered by one prefix hash
    session: int = -1
    slo_class: str = "default"

    status: RequestStatus = RequestStatus.WAITING
    replica: int = -1
    num_computed_tokens: int = 0      # tokens whose KV is in the cache now
    output_generated: int = 0         # output tokens emitted so far
    queued_s: float = NAN
    first_scheduled_s: float = NAN
    first_token_s: float = NAN
    last_token_s: float = NAN
    finish_s: float = NAN
    max_token_gap_s: float = 0.0      # largest gap between consecutive output tokens
    preemptions: int = 0
    prefill_tokens_computed: int = 0  # prefill tokens actually computed, recomputation included
    cached_prompt_tokens: int = 0     # prompt tokens served from the prefix cache (first admission)
    reject_reason: str = ""
    # KV-cache bookkeeping, owned by sim.memory.KVCache
    kv_blocks: int = 0
    kv_cached_blocks: list = field(default_factory=list)   # hashed blocks, in prompt order
    kv_block_hashes: list | None = None                    # lazily computed prompt block hashes
    swapped_blocks: int = 0

    @property
    def num_tokens(self) -> int:
        """Tokens known so far: the prompt plus what has been generated."""
        return self.prompt_tokens + self.output_generated

    @property
    def is_finished(self) -> bool:
        return self.status >= RequestStatus.FINISHED_COMPLETED

    @property
    def is_prefilling(self) -> bool:
        return self.num_computed_tokens < self.num_tokens - 1 or self.output_generated == 0

    @property
    def remaining_output_tokens(self) -> int:
        return self.output_tokens - self.output_generated

    @property
    def max_kv_tokens(self) -> int:
        """KV tokens the request holds at its peak: the last generated token is never fed back."""
        return self.prompt_tokens + self.output_tokens - 1
