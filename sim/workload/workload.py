"""The workload: requests as columns, from generators or a trace, streamed as fresh Requests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config import require
from sim.workload.arrivals import ARRIVALS, ArrivalConfig
from sim.workload.lengths import LengthConfig, sample_lengths
from sim.workload.request import Request
from sim.workload.traces import TraceConfig, load_trace

_GENERATED = ("arrivals", "num_requests", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class WorkloadConfig:
    """``workload:``: either ``trace``, or ``arrivals`` + ``num_requests`` + both length dists."""

    arrivals: ArrivalConfig | None = None
    num_requests: int | None = None
    prompt_tokens: LengthConfig | None = None
    output_tokens: LengthConfig | None = None
    trace: TraceConfig | None = None
    slo_class: str = "default"

    def __post_init__(self) -> None:
        if self.trace is not None:
            for name in _GENERATED:
                require(getattr(self, name) is None, name,
                        "no value when a trace is given (the trace sets arrivals and lengths)",
                        getattr(self, name))
        else:
            for name in _GENERATED:
                require(getattr(self, name) is not None, name,
                        f"a value (a workload needs a trace, or all of {', '.join(_GENERATED)})",
                        None)
            require(self.num_requests > 0, "num_requests", "an integer > 0", self.num_requests)
        require(bool(self.slo_class), "slo_class", "a non-empty string", self.slo_class)


class Workload:
    """Requests as columns (one numpy array per field); :meth:`requests` makes Request objects.

    The arrays are in arrival order and request ``i`` gets id ``i``.
    """

    # Requests are made in chunks: numpy scalars are slow to convert one by one, and a whole
    # .tolist() up front would hold a million Python numbers the run may not need yet.
    _CHUNK = 4096

    def __init__(self, arrival_s: np.ndarray, prompt_tokens: np.ndarray,
                 output_tokens: np.ndarray, prefix_hashes: list[tuple[int, ...]] | None = None,
                 prefix_block_tokens: int = 16, slo_class: str = "default"):
        self.arrival_s = np.asarray(arrival_s, dtype=np.float64)
        self.prompt_tokens = np.asarray(prompt_tokens, dtype=np.int64)
        self.output_tokens = np.asarray(output_tokens, dtype=np.int64)
        self.prefix_hashes = prefix_hashes
        self.prefix_block_tokens = prefix_block_tokens
        self.slo_class = slo_class
        n = len(self.arrival_s)
        if len(self.prompt_tokens) != n or len(self.output_tokens) != n or (
                prefix_hashes is not None and len(prefix_hashes) != n):
            raise ValueError("workload columns differ in length")
        if n > 1 and np.any(self.arrival_s[1:] < self.arrival_s[:-1]):
            raise ValueError("workload arrivals must be sorted")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def requests(self) -> Iterator[Request]:
        """Fresh Requests in arrival order, made as they are consumed."""
        hashes = self.prefix_hashes
        for start in range(0, len(self), self._CHUNK):
            stop = min(start + self._CHUNK, len(self))
            arrivals = self.arrival_s[start:stop].tolist()
            prompts = self.prompt_tokens[start:stop].tolist()
            outputs = self.output_tokens[start:stop].tolist()
            for i in range(stop - start):
                yield Request(id=start + i, arrival_s=arrivals[i], prompt_tokens=prompts[i],
                              output_tokens=outputs[i],
                              prefix_hashes=None if hashes is None else hashes[start + i],
                              prefix_block_tokens=self.prefix_block_tokens,
                              slo_class=self.slo_class)

    def to_frame(self) -> pd.DataFrame:
        """One row per request: ``id, arrival_s, prompt_tokens, output_tokens`` (+ prefix_hashes)."""
        frame = pd.DataFrame({
            "id": np.arange(len(self), dtype=np.int64),
            "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
        })
        if self.prefix_hashes is not None:
            frame["prefix_hashes"] = pd.Series(self.prefix_hashes, dtype=object)
        return frame


def build_workload(cfg: WorkloadConfig, rng: np.random.Generator, base_dir: Path | None = None,
                   source: str | None = None) -> Workload:
    """Make the workload ``cfg`` describes.

    Generated workloads draw from ``rng`` in a fixed order (arrivals, then prompt lengths, then
    output lengths), so one seed gives one workload. A relative trace path is resolved against
    ``base_dir`` (the scenario's folder); ``source`` (the scenario file) is named in errors.
    """
    if cfg.trace is not None:
        columns = load_trace(cfg.trace, base_dir, source)
        return Workload(columns.arrival_s, columns.prompt_tokens, columns.output_tokens,
                        columns.prefix_hashes, cfg.trace.prefix_block_tokens, cfg.slo_class)
    n = cfg.num_requests
    arrivals = ARRIVALS[cfg.arrivals.kind](cfg.arrivals, n, rng)
    prompts = sample_lengths(cfg.prompt_tokens, n, rng)
    outputs = sample_lengths(cfg.output_tokens, n, rng)
    return Workload(arrivals, prompts, outputs, slo_class=cfg.slo_class)
