"""The draft's cost in speculative decoding (sim/scheduling/speculative.py has the rules).

A step of ``num_tokens`` drafts runs the draft ``num_tokens`` times, one token per request each
time, before the target model verifies them. The target's verification is the iteration itself
(each speculating request a chunk of 1 + drafts tokens, costed by the wrapped model). The draft:

- ``eagle`` / ``mtp``: a head of ``draft_layers`` decoder layers of the target's shape (and its
  LM head), on the target's devices: the target's model with that many layers, no dense
  first layers, no iteration overhead (it runs inside the step);
- ``draft``: a separate model (``draft_model``) on the same devices.

Each draft run reads the speculating requests' contexts (their cached tokens plus the drafts
so far); the static power of the devices is paid over the draft's time too.
"""

from __future__ import annotations

import dataclasses

from sim.cost.model import BatchShape, CostModel
from sim.models.spec import ModelSpec


class SpeculativeCostModel:
    """``base`` plus, per iteration, the draft runs of its speculating requests."""

    def __init__(self, base, draft_model: ModelSpec, num_tokens: int):
        self.base, self.num_tokens = base, num_tokens
        self.model, self.device, self.tp = base.model, base.device, base.tp
        quiet = base.device.with_efficiency(iteration_overhead_s=0.0)
        self.draft = CostModel(draft_model, quiet, base.tp)

    @classmethod
    def head(cls, base, layers: int, num_tokens: int) -> "SpeculativeCostModel":
        """An EAGLE or MTP head: ``layers`` layers of the target model."""
        m = base.model
        head = dataclasses.replace(m, name=f"{m.name}-draft-head", num_layers=layers,
                                   first_k_dense_layers=0)
        return cls(base, head, num_tokens)

    def draft_s(self, requests: int, context_tokens: int) -> tuple[float, float]:
        """(seconds, joules) of the ``num_tokens`` draft runs for ``requests`` requests with
        ``context_tokens`` cached tokens in all."""
        seconds = joules = 0.0
        for i in range(self.num_tokens):
            t, j = self.draft.iteration_time(BatchShape(
                requests, requests, requests, context_tokens + (i + 1) * requests))
            seconds += t
            joules += j
        return seconds, joules

    def iteration_time(self, shape: BatchShape) -> tuple[float, float]:
        seconds, joules = self.base.iteration_time(shape)
        if shape.num_speculative:
            t, j = self.draft_s(shape.num_speculative, shape.speculative_context_tokens)
            seconds, joules = seconds + t, joules + j
        return seconds, joules

    def decode_run_energy_sum(self, *args, **kwargs):
        raise RuntimeError("speculative decoding steps every iteration (no decode runs)")
