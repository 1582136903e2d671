"""``conservative``: reserve every request's maximum output up front (Past-Future's baseline).

A request is admitted only if the prompts plus the maximum outputs of the batch and of the
candidate fit in the KV capacity, so the batch can never outgrow memory: it never evicts, and
leaves memory idle whenever requests stop short of their maximum."""

from __future__ import annotations

from dataclasses import dataclass

from sim.config import require
from sim.memory.blocks import peak_blocks
from sim.scheduling.admission import AdmissionConfig, PeriodicAdmissionScheduler


@dataclass(frozen=True)
class ConservativeConfig(AdmissionConfig):
    name: str = "conservative"
    # output tokens reserved per request whatever it states (Past-Future's artifact: 12,000);
    # null: its stated limit, else max_new_tokens
    reserve_output_tokens: int | None = None

    def __post_init__(self):
        super().__post_init__()
        require(self.reserve_output_tokens is None or self.reserve_output_tokens > 0,
                "reserve_output_tokens", "an integer > 0 or null", self.reserve_output_tokens)


class ConservativeScheduler(PeriodicAdmissionScheduler):
    Config = ConservativeConfig

    def _reserved_blocks(self, view) -> int:
        output = self.config.reserve_output_tokens or self.output_limit(view)
        return peak_blocks(view.prompt_tokens, output, self.kv.block_size)

    def may_admit(self, request, num_cached, num_new) -> bool:
        reserved = sum(self._reserved_blocks(v) for v in self.running)
        return reserved + self._reserved_blocks(request) <= self.kv.num_blocks
