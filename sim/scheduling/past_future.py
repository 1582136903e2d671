"""``past_future``: LightLLM's Past-Future scheduler (arXiv 2507.10150).

The past: a sliding window of the output lengths of recently finished requests, filled at start
with window/2 copies of the maximum output (pessimistic until real data arrives). The future: for
every running request, a final length sampled from that history conditioned on exceeding what it
has generated so far; the batch's peak memory follows from the sampled remaining lengths
(:func:`future_peak_tokens`). A waiting request is admitted (FIFO, stop at the first refusal)
while the largest peak over several sampled lists stays below capacity x (1 - reserve) minus
the tokens of paused requests and of the prefix cache. Admission rounds, whole-prompt prefill and
pause-newest-on-overflow come from :mod:`sim.scheduling.admission`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sim.config import require
from sim.scheduling.admission import AdmissionConfig, PeriodicAdmissionScheduler
from sim.scheduling.view import RequestView


def future_peak_tokens(held: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Peak KV tokens of a batch whose requests hold ``held`` tokens and will generate
    ``remaining`` more: sorted by remaining (longest first), the j-th request to finish leaves
    the j longest alive, each grown by b_j, so the peak is max_j (j * b_j + sum_{i<=j} a_i).

    Works on one list (1-D) or several sampled lists at once (2-D, one list per row).
    """
    held = np.atleast_2d(np.asarray(held, dtype=np.float64))
    remaining = np.atleast_2d(np.asarray(remaining, dtype=np.float64))
    order = np.argsort(-remaining, axis=1, kind="stable")
    b = np.take_along_axis(remaining, order, axis=1)
    a = np.take_along_axis(held, order, axis=1)
    j = np.arange(1, b.shape[1] + 1)
    return (j * b + np.cumsum(a, axis=1)).max(axis=1)


def sample_final_lengths(history_sorted: np.ndarray, generated: np.ndarray, max_output: float,
                         u: np.ndarray) -> np.ndarray:
    """Final output lengths drawn from the history, conditioned on exceeding ``generated``.

    For a request that has generated d tokens: S = [d] + sorted history values > d (+ the
    maximum output if it exceeds them all); p = u * (|S| - 1) with u uniform in [0, 1); the
    length is S[floor p] interpolated towards S[floor p + 1] by frac(p). ``u`` broadcasts against
    ``generated`` (e.g. shape (samples, batch)).
    """
    h = np.asarray(history_sorted, dtype=np.float64)
    if h.size == 0 or max_output > h[-1]:
        h = np.append(h, float(max_output))
    d = np.asarray(generated, dtype=np.float64)
    start = np.searchsorted(h, d, side="right")          # first history value > d
    size = 1 + (h.size - start)                           # |S|
    p = u * (size - 1)
    k = np.floor(p).astype(np.int64)
    frac = p - k
    last = h.size - 1
    lo = np.where(k == 0, d, h[np.clip(start + k - 1, 0, last)])
    hi = h[np.clip(start + k, 0, last)]
    return np.where(size == 1, d, lo + (hi - lo) * frac)


@dataclass(frozen=True)
class PastFutureConfig(AdmissionConfig):
    name: str = "past_future"
    window: int = 200               # finished requests remembered (LightLLM: 200)
    reserve: float = 0.05           # capacity kept back from the peak estimate
    num_samples: int | None = None  # sampled lists per decision; None: min(5, 200 // batch + 1)
    # the history starts as window/2 copies of this (null: max_new_tokens; the artifact's
    # server: 6,000 over a window of 40)
    history_init_tokens: int | None = None
    # paused requests' tokens come off the limit (they want their memory back); false: counted
    # as zero, as the artifact's server does
    subtract_paused: bool = True

    def __post_init__(self):
        super().__post_init__()
        require(self.window > 1, "window", "an integer > 1", self.window)
        require(0 <= self.reserve < 1, "reserve", "a number in [0, 1)", self.reserve)
        require(self.num_samples is None or self.num_samples > 0, "num_samples",
                "an integer > 0 or null", self.num_samples)
        require(self.history_init_tokens is None or self.history_init_tokens > 0,
                "history_init_tokens", "an integer > 0 or null", self.history_init_tokens)


class PastFutureScheduler(PeriodicAdmissionScheduler):
    Config = PastFutureConfig

    def __init__(self, config: PastFutureConfig, kv, host_swap_blocks: int = 0, rng=None):
        super().__init__(config, kv, host_swap_blocks=host_swap_blocks, rng=rng)
        start = config.history_init_tokens or config.max_new_tokens
        self.history: deque[int] = deque([start] * (config.window // 2), maxlen=config.window)
        self._sorted: np.ndarray | None = None

    def on_finish(self, request: RequestView) -> None:
        self.history.append(request.output_generated)
        self._sorted = None

    def history_sorted(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(np.fromiter(self.history, np.float64, len(self.history)))
        return self._sorted

    # -- the admission rule --------------------------------------------------------------------
    def may_admit(self, request, num_cached, num_new) -> bool:
        batch = self.running + [request]
        peak = float(self.batch_peaks(batch).max())
        return peak < self.admission_limit_tokens(request)

    def admission_limit_tokens(self, candidate: RequestView) -> float:
        limit = self.capacity_tokens * (1.0 - self.config.reserve)
        if self.config.subtract_paused:
            limit -= self.paused_tokens(exclude=candidate)
        if self.kv.prefix_caching:
            limit -= self.kv.num_evictable_cached * self.kv.block_size
        return limit

    def batch_peaks(self, batch: list[RequestView]) -> np.ndarray:
        """Peak tokens of ``batch`` under each of several sampled futures."""
        held, generated, max_out = self._batch_arrays(batch)
        n = self.config.num_samples or min(5, 200 // len(batch) + 1)
        u = self.rng.random((n, len(batch)))
        final = sample_final_lengths(self.history_sorted(), generated, self.config.max_new_tokens,
                                     u)
        return future_peak_tokens(np.broadcast_to(held, final.shape),
                                  remaining_tokens(final, generated, max_out))

    def _batch_arrays(self, batch: list[RequestView]):
        # a request not yet past its prefill counts as having its first token (a = input + 1)
        generated = np.fromiter((v.output_generated for v in batch), np.float64, len(batch))
        d = np.maximum(generated, 1.0)
        prompt = np.fromiter((v.prompt_tokens - v.cached_prompt_tokens for v in batch),
                             np.float64, len(batch))
        max_out = np.fromiter((self.output_limit(v) for v in batch), np.float64, len(batch))
        return prompt + d, generated, max_out


def remaining_tokens(final: np.ndarray, generated: np.ndarray, max_out: np.ndarray) -> np.ndarray:
    """Tokens still to be held: b = max(0, min(max_out, max(d, L)) - d - 1), d >= 1."""
    d = np.maximum(generated, 1.0)
    return np.maximum(0.0, np.minimum(max_out, np.maximum(d, final)) - d - 1.0)
