"""``aggressive``: admit while the memory in use now leaves room (Past-Future's vLLM-like
baseline): current use < 95% of capacity and current use + the new prompt fits. It overcommits
by design and evicts (pauses the newest request) when decodes run out of memory."""

from __future__ import annotations

from dataclasses import dataclass

from sim.scheduling.admission import AdmissionConfig, PeriodicAdmissionScheduler


@dataclass(frozen=True)
class AggressiveConfig(AdmissionConfig):
    name: str = "aggressive"
    admit_below: float = 0.95       # fraction of KV capacity in use above which nothing is admitted


class AggressiveScheduler(PeriodicAdmissionScheduler):
    Config = AggressiveConfig

    def may_admit(self, request, num_cached, num_new) -> bool:
        kv = self.kv
        new_blocks = kv.blocks_for(request.num_computed_tokens + num_cached + num_new)
        return kv.num_used < self.config.admit_below * kv.num_blocks and \
            kv.num_used + new_blocks < kv.num_blocks
