"""Prefix sharing: groups of requests whose prompts start with the same tokens.

``groups`` prefixes, each shared by ``share_degree`` requests, make a set of
``groups x share_degree`` requests in random order; sets repeat, with new prefixes, until
``num_requests`` (default: one set). A request's prompt is its group's ``prefix_tokens`` followed
by a distinct suffix drawn from ``suffix_tokens``. Prefix ids: group ``g`` (counting across sets)
has ids ``g*K ... g*K + K-1`` for the ``K = prefix_tokens // prefix_block_tokens`` full chunks of
its prefix; the rest of the prompt (a partial chunk, the suffix) has no ids, which the KV cache
reads as content no other request has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import require
from sim.workload.columns import IdLists
from sim.workload.lengths import LengthConfig, sample_lengths


@dataclass(frozen=True)
class PrefixSharingConfig:
    """``workload.prefix_sharing`` (replaces ``workload.prompt_tokens``)."""

    groups: int
    share_degree: int
    prefix_tokens: int
    suffix_tokens: LengthConfig
    prefix_block_tokens: int = 16

    def __post_init__(self) -> None:
        for name in ("groups", "share_degree", "prefix_tokens", "prefix_block_tokens"):
            require(getattr(self, name) > 0, name, "an integer > 0", getattr(self, name))

    @property
    def set_size(self) -> int:
        return self.groups * self.share_degree


def generate_prefix_groups(cfg: PrefixSharingConfig, n: int, rng: np.random.Generator,
                           values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                      IdLists]:
    """Group of each of n requests, their prompt lengths, and their prefix ids.

    Draws, in order: the order within each set (one permutation per set), the suffix lengths.
    """
    sets = -(-n // cfg.set_size)
    pattern = np.repeat(np.arange(cfg.groups, dtype=np.int64), cfg.share_degree)
    group = np.concatenate([rng.permutation(pattern) + s * cfg.groups for s in range(sets)])[:n]
    prompts = cfg.prefix_tokens + sample_lengths(cfg.suffix_tokens, n, rng, values)
    k = cfg.prefix_tokens // cfg.prefix_block_tokens
    offsets = np.arange(n + 1, dtype=np.int64) * k
    values_out = (np.repeat(group * k, k) + np.tile(np.arange(k, dtype=np.int64), n))
    return group, prompts, IdLists(offsets, values_out)
