"""Multi-turn sessions and the prefix ids of prompts that grow from one another.

A conversation's tokens are one stream: turn ``k``'s prompt is its first ``P_k`` tokens (the
earlier turns' prompts and answers, then the new message), so turn ``k + 1``'s prompt contains
turn ``k``'s prompt and answer. Prefix ids follow the stream in chunks of ``block_tokens``: chunk
``c`` of every turn of a session has the same id when it is full in that turn's prompt; a partial
last chunk gets an id of its own (its content differs from the full chunk a later turn sees). So
two turns share exactly their common full chunks, as the KV cache's chained block hashes expect.

Note: the engine caches *prompt* blocks only. A later turn therefore hits the blocks of the
earlier turn's prompt; the blocks holding the earlier answer were never cached, so they are
computed again (as a vLLM server without output-block caching would).

Arrivals: session starts come from ``workload.arrivals``; turn ``k + 1`` arrives ``think_time_s``
(exponentially distributed with that mean) after turn ``k`` arrived. That is open loop: if the
previous answer takes longer, the next turn arrives before it (its prefix is still cached once
the previous prompt's prefill has run). Under ``arrivals: {kind: closed_loop}`` a client instead
keeps a session to itself and sends each turn when the previous one has ended, plus the think
time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import require
from sim.workload.columns import IdLists
from sim.workload.lengths import LengthConfig, sample_lengths


@dataclass(frozen=True)
class SessionConfig:
    """``workload.sessions``: multi-turn conversations.

    ``turns``: turns per session. Each turn's new message is drawn from ``workload.prompt_tokens``
    and its answer from ``workload.output_tokens``; ``num_requests`` counts turns (the last
    session is cut short to match).
    """

    turns: LengthConfig
    think_time_s: float = 0.0        # mean gap between a turn's arrival and the next's (open loop)
    prefix_block_tokens: int = 16    # prompt tokens per prefix id

    def __post_init__(self) -> None:
        require(self.think_time_s >= 0 and np.isfinite(self.think_time_s), "think_time_s",
                "a number >= 0", self.think_time_s)
        require(self.prefix_block_tokens > 0, "prefix_block_tokens", "an integer > 0",
                self.prefix_block_tokens)


def chunk_ids(session: np.ndarray, prompt_tokens: np.ndarray, block_tokens: int,
              first_id: int = 0) -> IdLists:
    """Prefix ids of prompts that are prefixes of one token stream per session.

    ``session[i]`` (>= 0) names request ``i``'s stream; requests of one session must have
    prompts that extend each other (any order). A session of one request gives it fresh ids.
    Vectorised: no loop over requests or chunks.
    """
    session = np.asarray(session, dtype=np.int64)
    prompt_tokens = np.asarray(prompt_tokens, dtype=np.int64)
    full = prompt_tokens // block_tokens
    partial = (prompt_tokens % block_tokens > 0).astype(np.int64)
    # each session owns a range of ids as long as its longest prompt's full chunks
    labels, inverse = np.unique(session, return_inverse=True)
    span = np.zeros(len(labels), dtype=np.int64)
    np.maximum.at(span, inverse, full)
    base = np.zeros(len(labels), dtype=np.int64)
    np.cumsum(span[:-1], out=base[1:])
    base += first_id
    fresh = first_id + int(span.sum())          # partial chunks: fresh_0, fresh_1, ...
    lengths = full + partial
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    j = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    values = np.repeat(base[inverse], lengths) + j
    is_partial = j == np.repeat(full, lengths)
    values[is_partial] = fresh + np.flatnonzero(partial)
    return IdLists(offsets, values)


def generate_sessions(cfg: SessionConfig, n: int, starts_for, prompt: LengthConfig,
                      output: LengthConfig, rng: np.random.Generator,
                      values: dict | None = None) -> dict[str, np.ndarray | IdLists]:
    """``n`` turns of sessions. ``starts_for(k)`` gives k session start times.

    Draws, in order: turns per session, session starts, message lengths, answer lengths, think
    gaps. Returned columns are in session order (session 0's turns, then session 1's, ...).
    """
    values = values or {}
    turns = np.zeros(0, dtype=np.int64)
    while turns.sum() < n:      # enough sessions for n turns (expected len(n / mean) draws)
        more = sample_lengths(cfg.turns, max(16, n - int(turns.sum())), rng,
                              values.get("turns"))
        turns = np.concatenate([turns, more])
    cut = int(np.searchsorted(np.cumsum(turns), n))
    turns = turns[:cut + 1].copy()
    turns[-1] -= int(turns.sum()) - n
    num_sessions = len(turns)
    starts = np.asarray(starts_for(num_sessions), dtype=np.float64)
    session = np.repeat(np.arange(num_sessions, dtype=np.int64), turns)
    messages = sample_lengths(prompt, n, rng, values.get("prompt_tokens"))
    answers = sample_lengths(output, n, rng, values.get("output_tokens"))
    first = np.zeros(num_sessions + 1, dtype=np.int64)
    np.cumsum(turns, out=first[1:])
    # stream position: a turn's prompt = everything before it in the session + its message
    stream = np.cumsum(messages + answers)
    before = stream - messages - answers                     # tokens before this turn's message
    session_offset = np.repeat(before[first[:-1]], turns)    # tokens before the session began
    prompts = before - session_offset + messages
    gaps = rng.exponential(cfg.think_time_s, n) if cfg.think_time_s > 0 else np.zeros(n)
    gaps[first[:-1]] = 0.0
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first[:-1]], turns)
    arrival = np.repeat(starts, turns) + offsets
    ids = chunk_ids(session, prompts, cfg.prefix_block_tokens)
    return {"arrival_s": arrival, "prompt_tokens": prompts, "output_tokens": answers,
            "session": session, "prefix_hashes": ids}
