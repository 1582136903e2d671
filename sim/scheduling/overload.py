"""Overload controls: how a serving system sheds work it can no longer serve in time, and how its
clients answer.

Without them an overloaded server queues every request for minutes and every policy collapses;
real deployments put timeouts on both sides (vLLM behind a gateway with a request timeout,
LightLLM's evaluation harness aborting requests that can no longer meet their SLA). The scenario's
``overload:`` section; every limit is off by default::

    overload:
      queue_deadline_s: 8.0     # server: abort a request with no token yet, this long after it arrived
      token_gap_s: 1.49         # server: abort a started request once its gap since its last
                                #   token exceeds this (its KV is freed)
      timeout_s: 60.0           # client: abort an attempt not finished this long after it was sent
      retry: {max_attempts: 3, backoff_s: 0.0}   # client: send an aborted request again

Aborts are applied at iteration boundaries (the scheduler's step, where a server loop looks),
and a deadline passing during a decode run ends the run at the next boundary, as stepping would
see it. An aborted attempt's work is counted (``wasted_tokens``); the request is retried as a new
attempt (its ``arrival_s`` the resend time, ``first_arrival_s`` the first) until attempts run
out, and then ends rejected with ``reject_reason`` ``aborted: <why>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import require

QUEUE_DEADLINE = "queue deadline"
TOKEN_GAP = "token gap"
TIMEOUT = "timeout"


def _positive_or_none(value: float | None, name: str) -> None:
    require(value is None or (value > 0 and math.isfinite(value)), name,
            "a number > 0 (seconds) or null", value)


@dataclass(frozen=True)
class RetryConfig:
    """A client's answer to an aborted request: send it again, ``backoff_s`` after the abort,
    until it succeeds or ``max_attempts`` attempts (the first included) have been made."""

    max_attempts: int = 1
    backoff_s: float = 0.0

    def __post_init__(self):
        require(1 <= self.max_attempts <= 1000, "max_attempts", "an integer in [1, 1000]",
                self.max_attempts)
        require(self.backoff_s >= 0 and math.isfinite(self.backoff_s), "backoff_s",
                "a number >= 0 (seconds)", self.backoff_s)


@dataclass(frozen=True)
class OverloadConfig:
    queue_deadline_s: float | None = None   # no first token yet this long after arrival: abort
    token_gap_s: float | None = None        # started, no token for longer than this: abort
    timeout_s: float | None = None          # not finished this long after arrival: abort
    retry: RetryConfig = field(default_factory=RetryConfig)

    def __post_init__(self):
        for name in ("queue_deadline_s", "token_gap_s", "timeout_s"):
            _positive_or_none(getattr(self, name), name)

    @property
    def aborts(self) -> bool:
        """Whether the server or the client ever aborts a request."""
        return (self.queue_deadline_s is not None or self.token_gap_s is not None
                or self.timeout_s is not None)

    @property
    def is_default(self) -> bool:
        return self == OverloadConfig()
