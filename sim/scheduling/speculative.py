"""Speculative decoding: a draft proposes ``num_tokens`` tokens, the target model verifies them
and the tokens before the first rejected one are kept.

In a step, every decoding request runs ``num_tokens + 1`` tokens through the target model (its
last token and the drafts; more FLOPs, the same weight reads) and emits 1 + the accepted drafts:
draft i is accepted if every draft before it was and it passes with probability
``acceptance[i]`` (one number: the same for every position), drawn from the replica's own
seeded stream. The KV cache keeps slots for all verified positions (vLLM's lookahead slots) and
counts as computed only the emitted tokens. The draft's own cost per step, ``num_tokens``
sequential runs of the draft (an EAGLE or MTP head: ``draft_layers`` layers of the target model;
``draft``: a separate ``draft_model``), is added by sim/cost/speculative.py.

Fast-forward is off for speculative runs: a decode step emits a random number of tokens, so
decode runs cannot be costed ahead (the engine steps every iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.config import require


@dataclass(frozen=True)
class SpeculativeConfig:
    """``speculative:`` (off unless ``num_tokens`` > 0)."""

    method: Literal["eagle", "mtp", "draft"] = "eagle"
    num_tokens: int = 0
    acceptance: float | tuple[float, ...] = 0.7
    draft_layers: int = 1                  # eagle / mtp: layers of the head
    draft_model: str | None = None         # draft: a catalog name or model file

    def __post_init__(self):
        require(0 <= self.num_tokens <= 16, "num_tokens", "an integer in [0, 16]",
                self.num_tokens)
        probs = self.acceptance if isinstance(self.acceptance, tuple) else (self.acceptance,)
        require(all(0 <= p <= 1 for p in probs), "acceptance",
                "a probability, or one per drafted position, in [0, 1]", self.acceptance)
        require(not isinstance(self.acceptance, tuple) or not self.num_tokens
                or len(self.acceptance) == self.num_tokens, "acceptance",
                f"{self.num_tokens} probabilities (one per drafted token)", self.acceptance)
        require(self.draft_layers >= 1, "draft_layers", "an integer >= 1", self.draft_layers)
        require((self.method == "draft") == (self.draft_model is not None), "draft_model",
                "a model with method draft (and only then)", self.draft_model)

    @property
    def enabled(self) -> bool:
        return self.num_tokens > 0

    def position_probabilities(self) -> np.ndarray:
        if isinstance(self.acceptance, tuple):
            return np.asarray(self.acceptance, dtype=float)
        return np.full(self.num_tokens, float(self.acceptance))

    def expected_accepted(self) -> float:
        """Mean accepted drafts per step: sum over i of P(the first i drafts all pass)."""
        return float(np.cumprod(self.position_probabilities()).sum())


class AcceptanceSampler:
    """Accepted drafts per verification, from a seeded stream."""

    def __init__(self, config: SpeculativeConfig, rng: np.random.Generator):
        self.probs = config.position_probabilities()
        self.rng = rng
        self.verifications = 0
        self.accepted_total = 0

    def accepted(self) -> int:
        passed = self.rng.random(len(self.probs)) < self.probs
        accepted = int(len(passed) if passed.all() else np.argmin(passed))
        self.verifications += 1
        self.accepted_total += accepted
        return accepted
