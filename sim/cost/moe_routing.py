"""MoE routing: how many tokens each expert receives in an iteration.

``balanced`` (the default) is the expectation of uniform routing, ``num_tokens * top_k``
assignments spread evenly (:func:`sim.cost.ops.expert_token_counts`): deterministic, so
iteration costs stay cacheable. The random kinds draw, for ``num_tokens`` tokens, a multinomial
of ``num_tokens * top_k`` routed slots over the experts with per-slot probabilities
(``uniform``: 1/E; ``zipf``: proportional to 1/(rank)**s, expert 0 the hottest; ``fixed``: given).
A real router never sends one token to the same expert twice: under ``uniform`` each token picks
``top_k`` distinct experts, uniformly among the subsets (8 experts, top-2: variance 0.1875 T per
expert, against 0.219 T for independent slots). Under ``zipf`` and ``fixed`` the slots are drawn
independently, slightly more spread than a real router; so that no expert is asked for more
slots than there are tokens on average, a per-slot probability above 1/top_k is refused.

Random routing and exactness. An iteration's draw is picked from ``draws`` count vectors per
token count, pre-drawn from ``seed`` and the token count, by a hash of the batch shape (token
count, decode context, prefill sizes). A fast-forwarded decode run hashes each step's shape
exactly as stepping does, so both paths see the same counts and produce bit-identical timings,
and a cache keyed on (token count, draw) stays valid. Iterations of identical shape get the same
draw; consecutive decode steps differ in context, hence in draw, as fresh routing would.
"""

from __future__ import annotations

import numpy as np

from sim.cost.ops import expert_token_counts
from sim.errors import HardwareError
from sim.hardware.duplex import RoutingSection

_U64 = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic, exact on every path)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def distinct_uniform_counts(rng: np.random.Generator, draws: int, num_tokens: int,
                            num_experts: int, top_k: int) -> np.ndarray:
    """(draws, experts) token counts when each token picks ``top_k`` distinct experts uniformly.

    The j-th pick of a token is uniform over the ``E - j`` experts it has not picked: draw an
    index in [0, E - j) and step it over the picked experts in increasing order."""
    chosen = np.empty((draws, num_tokens, top_k), dtype=np.int64)
    for j in range(top_k):
        pick = rng.integers(0, num_experts - j, size=(draws, num_tokens))
        for taken in np.moveaxis(np.sort(chosen[..., :j], axis=-1), -1, 0):
            pick += pick >= taken
        chosen[..., j] = pick
    flat = chosen + (np.arange(draws, dtype=np.int64) * num_experts)[:, None, None]
    return np.bincount(flat.ravel(), minlength=draws * num_experts).reshape(draws, num_experts)


class ExpertRouter:
    """Per-expert token counts for a token count, and which pre-drawn vector an iteration uses."""

    def __init__(self, cfg: RoutingSection, num_experts: int, top_k: int):
        self.cfg, self.num_experts, self.top_k = cfg, num_experts, top_k
        self.is_random = cfg.kind != "balanced"
        self.num_draws = cfg.draws if self.is_random else 1
        self.shares = self._shares()
        if self.is_random and float(self.shares.max()) * top_k > 1.0 + 1e-9:
            raise HardwareError(
                f"duplex.routing: expert 0 would get {self.shares.max():.3f} of the routed "
                f"slots, more than 1/top_k = {1 / top_k:.3f} (each token visits an expert once); "
                "use a flatter distribution")
        self._tables: dict[int, np.ndarray] = {}

    def _shares(self) -> np.ndarray:
        E, cfg = self.num_experts, self.cfg
        if cfg.kind in ("balanced", "uniform"):
            return np.full(E, 1.0 / E)
        if cfg.kind == "zipf":
            w = 1.0 / np.arange(1, E + 1, dtype=float) ** cfg.zipf_s
        else:
            w = np.asarray(cfg.probabilities, dtype=float)
            if len(w) != E:
                raise HardwareError(f"duplex.routing.probabilities: expected {E} values (one per "
                                    f"expert), got {len(w)}")
        return w / w.sum()

    def table(self, num_tokens: int) -> np.ndarray:
        """(draws, experts) int64 token counts for ``num_tokens`` tokens, memoised."""
        hit = self._tables.get(num_tokens)
        if hit is not None:
            return hit
        if not self.is_random:
            counts = expert_token_counts(num_tokens, self.num_experts, self.top_k)[None, :]
        else:
            # one stream per (seed, token count): tables do not depend on the order of requests
            rng = np.random.default_rng((self.cfg.seed, num_tokens))
            if self.cfg.kind == "uniform":
                counts = distinct_uniform_counts(rng, self.num_draws, num_tokens,
                                                 self.num_experts, self.top_k)
            else:
                counts = rng.multinomial(num_tokens * self.top_k, self.shares,
                                         size=self.num_draws).astype(np.int64)
        counts.setflags(write=False)
        if len(self._tables) < 100_000:
            self._tables[num_tokens] = counts
        return counts

    def rows(self, num_tokens: int, num_decode: int, decode_context, prefill_tokens: int,
             prefill_kv_tokens: int) -> np.ndarray:
        """The draw each iteration uses: ``decode_context`` is an int64 array (one per step)."""
        ctx = np.asarray(decode_context, dtype=np.int64)
        if not self.is_random:
            return np.zeros(ctx.shape, dtype=np.intp)
        base = _U64(self.cfg.seed & 0xFFFFFFFFFFFFFFFF)
        for value in (num_tokens, num_decode, prefill_tokens, prefill_kv_tokens):
            base = _mix(np.asarray([base ^ _U64(value)], dtype=np.uint64))[0]
        keys = _mix(ctx.astype(np.uint64) ^ base)
        return (keys % _U64(self.num_draws)).astype(np.intp)
