"""Periodic admission: the LightLLM router loop that aggressive, conservative, past_future and
oracle share.

Whole prompts are prefilled in prefill-only iterations (no chunking), waiting requests are
considered when the batch is empty or once every ``max_wait_tokens`` decode iterations, FIFO,
stopping at the first that the policy refuses; a decode that cannot get memory pauses the newest
request (its KV is dropped and recomputed later). Only :meth:`may_admit` differs per policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config import require
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.scheduling.view import RequestView


@dataclass(frozen=True)
class AdmissionConfig(FcfsConfig):
    chunked_prefill: bool = False
    watermark: float = 0.0
    max_wait_tokens: int = 10       # decode iterations between admission rounds (LightLLM: 10)
    max_new_tokens: int = 4096      # output limit assumed for a request that states none
    max_admit_per_round: int | None = None   # requests admitted per admission round at most
    # who is paused when the next decode does not fit: the most recently admitted (vLLM), or
    # the newest arrival, chosen before the iteration (LightLLM's router)
    evict: str = "newest_admitted"

    def __post_init__(self):
        super().__post_init__()
        require(not self.chunked_prefill, "chunked_prefill",
                f"false for {self.name} (it prefills whole prompts)", self.chunked_prefill)
        require(self.max_wait_tokens > 0, "max_wait_tokens", "an integer > 0",
                self.max_wait_tokens)
        require(self.max_new_tokens > 0, "max_new_tokens", "an integer > 0", self.max_new_tokens)
        require(self.evict in ("newest_admitted", "newest_arrival"), "evict",
                "newest_admitted or newest_arrival", self.evict)
        require(self.max_admit_per_round is None or self.max_admit_per_round > 0,
                "max_admit_per_round", "an integer > 0 or null", self.max_admit_per_round)


class PeriodicAdmissionScheduler(FcfsScheduler):
    Config = AdmissionConfig

    def __init__(self, config: AdmissionConfig, kv, host_swap_blocks: int = 0, rng=None):
        super().__init__(config, kv, host_swap_blocks=host_swap_blocks, rng=rng)
        self._last_round = 0          # num_iterations at the last admission round
        self._round_admits = 0        # admitted in the current round

    def admission_due(self) -> bool:
        if not self.running or self.num_iterations - self._last_round >= \
                self.config.max_wait_tokens:
            self._last_round = self.num_iterations
            self._round_admits = 0
            return True
        return False

    def make_room_for_decodes(self, plan) -> None:
        if self.config.evict != "newest_arrival":
            return
        running, kv = self.running, self.kv
        while running and kv.decode_blocks_needed(running) > kv.num_free:
            victim = max(running, key=lambda v: v.id)       # ids are in arrival order
            running.remove(victim)
            self.preempt(victim, plan)

    def admission(self, request, computed, num_cached, num_new):
        cap = self.config.max_admit_per_round
        if cap is not None and self._round_admits >= cap:
            return None               # the rest wait for the next round
        return super().admission(request, computed, num_cached, num_new)

    def on_admitted(self, request, num_new, admission) -> None:
        super().on_admitted(request, num_new, admission)
        self._round_admits += 1

    def steps_until_admission(self) -> int | None:
        return max(1, self._last_round + self.config.max_wait_tokens - self.num_iterations)

    # -- helpers for policies ------------------------------------------------------------------
    @property
    def capacity_tokens(self) -> int:
        return self.kv.num_blocks * self.kv.block_size

    @property
    def default_output_limit(self) -> int:
        return self.config.max_new_tokens       # the server's default output limit

    def paused_tokens(self, exclude: RequestView | None = None) -> int:
        """Tokens of paused (preempted, dropped) requests, which will want their memory back."""
        return sum(v.num_tokens for v in self.waiting
                   if v.preemptions and v.kv_blocks == 0 and v is not exclude)
