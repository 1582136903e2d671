"""The workload: requests as columns, from generators or a trace, streamed as fresh Requests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.config import require
from sim.errors import ScenarioError
from sim.workload import transforms
from sim.workload.arrivals import ArrivalConfig, arrival_times
from sim.workload.columns import IdLists, TraceColumns
from sim.workload.fit import ReplayFitConfig, fit_trace
from sim.workload.lengths import LengthConfig, sample_lengths
from sim.workload.prefixes import PrefixSharingConfig, generate_prefix_groups
from sim.workload.request import Request
from sim.workload.sessions import SessionConfig, generate_sessions
from sim.workload.traces import DEFAULT_BLOCK_TOKENS, TraceConfig, load_trace

if TYPE_CHECKING:
    import pandas as pd

_LENGTHS = ("num_requests", "prompt_tokens", "output_tokens")
MAX_REQUESTS = 100_000_000


@dataclass(frozen=True)
class WorkloadConfig:
    """``workload:``, one of

    - generated: ``arrivals`` + ``num_requests`` + ``prompt_tokens`` + ``output_tokens``, optionally
      with ``sessions`` (multi-turn) or ``prefix_sharing`` (which replaces ``prompt_tokens`` and
      makes ``num_requests`` optional);
    - replayed: ``trace`` (its lengths and prefixes; its times unless ``arrivals`` is given);
    - fitted: ``replay_fit`` + ``num_requests`` (any of ``arrivals``, ``prompt_tokens``,
      ``output_tokens`` replaces the fitted one).

    ``clip_to_context`` cuts lengths to the model's context instead of rejecting those requests.
    """

    arrivals: ArrivalConfig | None = None
    num_requests: int | None = None
    prompt_tokens: LengthConfig | None = None
    output_tokens: LengthConfig | None = None
    trace: TraceConfig | None = None
    replay_fit: ReplayFitConfig | None = None
    prefix_sharing: PrefixSharingConfig | None = None
    sessions: SessionConfig | None = None
    clip_to_context: bool = False
    slo_class: str = "default"
    # clients state each request's true output length as its max_new_tokens (benchmark clients
    # that ignore EOS do): schedulers that plan with stated limits then plan with true lengths
    state_output_tokens: bool = False

    def __post_init__(self) -> None:
        if self.trace is not None:
            for name in _LENGTHS + ("replay_fit", "prefix_sharing", "sessions"):
                require(getattr(self, name) is None, name,
                        "no value when a trace is given (the trace sets lengths and prefixes; "
                        "'arrivals' may replace its times)", getattr(self, name))
        elif self.replay_fit is not None:
            require(self.num_requests is not None, "num_requests",
                    "an integer > 0 (required with replay_fit)", None)
            for name in ("prefix_sharing", "sessions"):
                require(getattr(self, name) is None, name, "no value with replay_fit",
                        getattr(self, name))
        else:
            require(self.prefix_sharing is None or self.sessions is None, "prefix_sharing",
                    "no value with sessions (one or the other)", self.prefix_sharing)
            needed = ["arrivals", "output_tokens"]
            if self.prefix_sharing is None:
                needed[1:1] = ["num_requests", "prompt_tokens"]
            else:
                require(self.prompt_tokens is None, "prompt_tokens",
                        "no value with prefix_sharing (prompts are prefix_tokens + suffix_tokens)",
                        self.prompt_tokens)
            for name in needed:
                require(getattr(self, name) is not None, name,
                        f"a value (a workload needs a trace, replay_fit, or all of "
                        f"{', '.join(needed)})", None)
        # columns are generated up front: 1e8 requests already take a few GB
        require(self.num_requests is None or 0 < self.num_requests <= MAX_REQUESTS,
                "num_requests", f"an integer in [1, {MAX_REQUESTS:.0e}]", self.num_requests)
        require(bool(self.slo_class), "slo_class", "a non-empty string", self.slo_class)


class Workload:
    """Requests as columns (one numpy array per field); :meth:`requests` makes Request objects.

    The arrays are in arrival order and request ``i`` gets id ``i``. ``closed_loop`` (the
    ``closed_loop`` ArrivalConfig, or None) means the arrival times are placeholders: the cluster
    sends request after request as its clients' previous ones end. ``clipped_requests`` counts the
    requests whose lengths were cut to the model's context.
    """

    # Requests are made in chunks: numpy scalars are slow to convert one by one, and a whole
    # .tolist() up front would hold a million Python numbers the run may not need yet.
    _CHUNK = 4096

    def __init__(self, arrival_s: np.ndarray, prompt_tokens: np.ndarray,
                 output_tokens: np.ndarray,
                 prefix_hashes: IdLists | Sequence[Sequence[int]] | None = None,
                 prefix_block_tokens: int = DEFAULT_BLOCK_TOKENS, slo_class: str = "default",
                 session: np.ndarray | None = None, closed_loop: ArrivalConfig | None = None,
                 clipped_requests: int = 0, state_output_tokens: bool = False,
                 ids: np.ndarray | None = None):
        self.arrival_s = np.asarray(arrival_s, dtype=np.float64)
        self.prompt_tokens = np.asarray(prompt_tokens, dtype=np.int64)
        self.output_tokens = np.asarray(output_tokens, dtype=np.int64)
        if prefix_hashes is not None and not isinstance(prefix_hashes, IdLists):
            prefix_hashes = IdLists.from_lists(prefix_hashes)
        self.prefix_hashes: IdLists | None = prefix_hashes
        self.prefix_block_tokens = prefix_block_tokens
        self.slo_class = slo_class
        self.session = None if session is None else np.asarray(session, dtype=np.int64)
        self.closed_loop = closed_loop
        self.clipped_requests = clipped_requests
        self.state_output_tokens = state_output_tokens
        # request ids (None: 0, 1, ... in arrival order); a subset keeps its requests' ids
        self.ids = None if ids is None else np.asarray(ids, dtype=np.int64)
        n = len(self.arrival_s)
        if len(self.prompt_tokens) != n or len(self.output_tokens) != n or (
                prefix_hashes is not None and len(prefix_hashes) != n) or (
                self.session is not None and len(self.session) != n) or (
                self.ids is not None and len(self.ids) != n):
            raise ValueError("workload columns differ in length")
        if transforms.out_of_order(self.arrival_s):
            raise ValueError("workload arrivals must be sorted")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def subset(self, index: np.ndarray) -> "Workload":
        """The requests at positions ``index`` (increasing), with their ids."""
        index = np.asarray(index, dtype=np.int64)
        ids = index if self.ids is None else self.ids[index]
        return Workload(self.arrival_s[index], self.prompt_tokens[index],
                        self.output_tokens[index],
                        None if self.prefix_hashes is None else self.prefix_hashes.take(index),
                        self.prefix_block_tokens, self.slo_class,
                        None if self.session is None else self.session[index], self.closed_loop,
                        0, self.state_output_tokens, ids)

    def requests(self) -> Iterator[Request]:
        """Fresh Requests in arrival order, made as they are consumed."""
        ids = self.prefix_hashes
        for start in range(0, len(self), self._CHUNK):
            stop = min(start + self._CHUNK, len(self))
            arrivals = self.arrival_s[start:stop].tolist()
            prompts = self.prompt_tokens[start:stop].tolist()
            outputs = self.output_tokens[start:stop].tolist()
            hashes = None if ids is None else ids.rows(start, stop)
            sessions = None if self.session is None else self.session[start:stop].tolist()
            req_ids = range(start, stop) if self.ids is None else self.ids[start:stop].tolist()
            for i in range(stop - start):
                yield Request(id=req_ids[i], arrival_s=arrivals[i], prompt_tokens=prompts[i],
                              output_tokens=outputs[i],
                              prefix_hashes=None if hashes is None else hashes[i],
                              prefix_block_tokens=self.prefix_block_tokens,
                              session=-1 if sessions is None else sessions[i],
                              slo_class=self.slo_class,
                              max_new_tokens=outputs[i] if self.state_output_tokens else None)

    def to_frame(self) -> pd.DataFrame:
        """One row per request: ``id, arrival_s, prompt_tokens, output_tokens`` (+ prefix_hashes,
        session)."""
        import pandas as pd     # only for this table, not to simulate

        frame = pd.DataFrame({
            "id": np.arange(len(self), dtype=np.int64),
            "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
        })
        if self.prefix_hashes is not None:
            frame["prefix_hashes"] = pd.Series(self.prefix_hashes.tolist(), dtype=object)
        if self.session is not None:
            frame["session"] = self.session
        return frame


def build_workload(cfg: WorkloadConfig, rng: np.random.Generator, base_dir: Path | None = None,
                   source: str | None = None, max_model_len: int | None = None) -> Workload:
    """Make the workload ``cfg`` describes.

    Draws from ``rng`` in a fixed order, so one seed gives one workload: a trace's
    ``sample_frac`` and then its ``arrivals``; generated workloads draw arrivals, then (with
    ``prefix_sharing``) the group order, then prompt (or suffix) lengths, then output lengths;
    sessions draw turns, starts, message lengths, answer lengths, think gaps. A relative trace path
    is resolved against ``base_dir`` (the scenario's folder); ``source`` (the scenario file) is
    named in errors. ``max_model_len`` (the deployment's) is what ``clip_to_context`` cuts to.
    """
    loaded: dict[str, TraceColumns] = {}

    def trace(tc: TraceConfig) -> TraceColumns:
        key = repr(tc)
        if key not in loaded:
            loaded[key] = load_trace(tc, base_dir, source, rng)
        return loaded[key]

    closed = cfg.arrivals if cfg.arrivals is not None and cfg.arrivals.kind == "closed_loop" \
        else None
    if cfg.trace is not None:
        columns = trace(cfg.trace)
        if cfg.arrivals is not None:
            columns.arrival_s = arrival_times(cfg.arrivals, len(columns), rng)
        elif not columns.has_timestamps:
            raise ScenarioError(source, "workload.arrivals",
                                "an arrival process (this trace has no timestamps)")
    elif cfg.replay_fit is not None:
        columns = _fitted(cfg, rng, trace, source)
    else:
        columns = _generated(cfg, rng, trace)
    clipped = 0
    if cfg.clip_to_context:
        if max_model_len is None:
            raise ValueError("clip_to_context needs the deployment's max_model_len")
        columns, clipped = transforms.clip_to_context(columns, max_model_len,
                                                      columns.prefix_block_tokens)
    if closed is None:
        columns = transforms.sort_by_arrival(columns)     # sessions interleave
    else:     # placeholders (session think gaps included): the cluster's clients send them
        columns.arrival_s = np.full(len(columns), closed.start_s)
    return Workload(columns.arrival_s, columns.prompt_tokens, columns.output_tokens,
                    columns.prefix_hashes, columns.prefix_block_tokens or DEFAULT_BLOCK_TOKENS,
                    cfg.slo_class, columns.session, closed, clipped, cfg.state_output_tokens)


def _lengths(length: LengthConfig, field: str, n: int, rng: np.random.Generator,
             trace) -> np.ndarray:
    values = None
    if length.dist == "empirical":
        values = getattr(trace(length.trace), length.column or field)
    return sample_lengths(length, n, rng, values)


def _generated(cfg: WorkloadConfig, rng: np.random.Generator, trace) -> TraceColumns:
    if cfg.sessions is not None:
        s = cfg.sessions
        values = {f: getattr(trace(c.trace), c.column or f) for f, c in
                  (("prompt_tokens", cfg.prompt_tokens), ("output_tokens", cfg.output_tokens))
                  if c.dist == "empirical"}
        cols = generate_sessions(s, cfg.num_requests,
                                 lambda k: arrival_times(cfg.arrivals, k, rng),
                                 cfg.prompt_tokens, cfg.output_tokens, rng, values)
        return TraceColumns(cols["arrival_s"], cols["prompt_tokens"], cols["output_tokens"],
                            cols["prefix_hashes"], cols["session"], s.prefix_block_tokens)
    if cfg.prefix_sharing is not None:
        p = cfg.prefix_sharing
        n = cfg.num_requests or p.set_size
        arrivals = arrival_times(cfg.arrivals, n, rng)
        suffix = p.suffix_tokens
        values = getattr(trace(suffix.trace), suffix.column or "prompt_tokens") \
            if suffix.dist == "empirical" else None
        _, prompts, ids = generate_prefix_groups(p, n, rng, values)
        outputs = _lengths(cfg.output_tokens, "output_tokens", n, rng, trace)
        return TraceColumns(arrivals, prompts, outputs, ids, None, p.prefix_block_tokens)
    n = cfg.num_requests
    arrivals = arrival_times(cfg.arrivals, n, rng)
    prompts = _lengths(cfg.prompt_tokens, "prompt_tokens", n, rng, trace)
    outputs = _lengths(cfg.output_tokens, "output_tokens", n, rng, trace)
    return TraceColumns(arrivals, prompts, outputs)


def _fitted(cfg: WorkloadConfig, rng: np.random.Generator, trace,
            source: str | None) -> TraceColumns:
    observed = trace(cfg.replay_fit.trace)
    fit = fit_trace(observed)
    if cfg.replay_fit.lengths == "empirical":
        fit_prompt = LengthConfig("empirical", trace=cfg.replay_fit.trace)
        fit_output = LengthConfig("empirical", trace=cfg.replay_fit.trace)
    else:
        fit_prompt, fit_output = fit.prompt_tokens, fit.output_tokens
    if cfg.arrivals is None and not observed.has_timestamps:
        raise ScenarioError(source, "workload.arrivals",
                            "an arrival process (the fitted trace has no timestamps)")
    arrivals_cfg = cfg.arrivals or fit.arrivals
    n = cfg.num_requests
    arrivals = arrival_times(arrivals_cfg, n, rng)
    if cfg.arrivals is None and len(observed):   # the synthetic trace starts where the trace did
        arrivals = arrivals - arrivals_cfg.start_s + float(observed.arrival_s[0])
    prompts = _lengths(cfg.prompt_tokens or fit_prompt, "prompt_tokens", n, rng, trace)
    outputs = _lengths(cfg.output_tokens or fit_output, "output_tokens", n, rng, trace)
    return TraceColumns(arrivals, prompts, outputs)
