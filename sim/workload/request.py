"""Request: one inference request and its lifecycle, as plain mutable state."""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    """A request as the workload states it, and what happened to it (timestamps, outcome).

    While a replica serves it, its progress lives in ``view`` (a
    :class:`sim.scheduling.view.RequestView`, the scheduler's object, which has no
    ``output_tokens``); the progress properties below read it from there.
    """

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_hashes: tuple[int, ...] | None = None   # ids of prompt chunks (equal ids = shared prefix)
    prefix_block_tokens: int = 16                  # prompt tokens covered by one prefix hash
    session: int = -1
    slo_class: str = "default"
    max_new_tokens: int | None = None              # a limit the client states (schedulers see it)

    outcome: RequestStatus | None = None          # FINISHED_* once ended (status reads it)
    replica: int = -1
    queued_s: float = NAN
    first_token_s: float = NAN
    last_token_s: float = NAN
    finish_s: float = NAN
    max_token_gap_s: float = 0.0      # largest gap between consecutive output tokens
    reject_reason: str = ""
    view: object = None               # RequestView while on a replica
    # overload controls (sim/scheduling/overload.py): the attempt this is, why the last one was
    # aborted, the tokens computed by aborted attempts, and when the first attempt was sent
    attempts: int = 1
    abort_reason: str = ""
    wasted_tokens: int = 0
    first_arrival_s: float = NAN
    # prefill/decode disaggregation: the replica that prefilled it and how long its KV took to
    # reach the decode replica (``replica``)
    prefill_replica: int = -1
    kv_transfer_s: float = NAN

    # -- progress, kept by the view ------------------------------------------------------------
    def _from_view(name, default):                 # noqa: N805 (a property factory)
        def get(self):
            return default if self.view is None else getattr(self.view, name)
        get.__name__ = name
        return property(get)

    num_computed_tokens = _from_view("num_computed_tokens", 0)
    output_generated = _from_view("output_generated", 0)
    preemptions = _from_view("preemptions", 0)
    prefill_tokens_computed = _from_view("prefill_tokens_computed", 0)
    cached_prompt_tokens = _from_view("cached_prompt_tokens", 0)
    first_scheduled_s = _from_view("first_scheduled_s", NAN)
    kv_blocks = _from_view("kv_blocks", 0)
    swapped_blocks = _from_view("swapped_blocks", 0)
    del _from_view

    @property
    def status(self) -> RequestStatus:
        """Ended (completed/rejected), else where the scheduler holds it, else waiting."""
        if self.outcome is not None:
            return self.outcome
        return RequestStatus.WAITING if self.view is None else self.view.status

    @status.setter
    def status(self, value: RequestStatus) -> None:
        self.outcome = value

    def new_attempt(self, send_s: float) -> None:
        """The client sends this request again at ``send_s`` after an aborted attempt: what
        happened to the attempt is forgotten but its count, the abort's reason, the tokens it
        wasted and when the first attempt was sent."""
        if self.attempts == 1:
            self.first_arrival_s = self.arrival_s
        self.attempts += 1
        self.arrival_s = send_s
        self.view, self.outcome, self.replica = None, None, -1
        self.queued_s = self.first_token_s = self.last_token_s = self.finish_s = NAN
        self.kv_transfer_s = NAN
        self.prefill_replica = -1
        self.max_token_gap_s = 0.0

    @property
    def num_tokens(self) -> int:
        """Tokens known so far: the prompt plus what has been generated."""
        return self.prompt_tokens + self.output_generated

    @property
    def is_finished(self) -> bool:
        return self.status >= RequestStatus.FINISHED_COMPLETED

    @property
    def remaining_output_tokens(self) -> int:
        return self.output_tokens - self.output_generated

    @property
    def max_kv_tokens(self) -> int:
        """KV tokens the request holds at its peak: the last generated token is never fed back."""
        return self.prompt_tokens + self.output_tokens - 1
