"""A real serving run as llmsim sees it: :class:`RealRun`, and :func:`load_run` to read one.

Two layouts are read: a vLLM run folder (``meta.json`` + ``requests.jsonl``, see
:mod:`sim.compare.vllm_run`) and the result JSON of ``vllm bench serve --save-result
--save-detailed`` (:mod:`sim.compare.bench`). Both become the same per-request table, on one clock
that starts at the first kept arrival, so the rest of the comparison does not care which it was.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config import read_mapping
from sim.errors import TraceError
from sim.workload.traces import TraceWarning

# the per-request columns of RealRun.requests (and of the simulated side, for comparison)
REQUEST_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "first_token_s", "finish_s",
                   "ttft_s", "tpot_s", "e2e_s")


class RunWarning(TraceWarning):
    """Something in a real run was left out or approximated (failed requests, rebuilt arrivals):
    the comparison goes on, and says what it did."""


@dataclass(frozen=True)
class RealRun:
    """What a real run says about its requests and its engine.

    ``settings`` holds the scenario sections the run determines (``cluster``, ``scheduler``,
    ``engine``: only the fields the run records); ``arrivals`` a ``workload.arrivals`` mapping when
    the run's requests were sent by a closed loop rather than at known times.
    """

    path: Path                  # what the user pointed at (a folder or a file)
    source: Path                # the file holding the run's settings, named in errors
    kind: str                   # "vllm-run" | "vllm-bench"
    model: str | None           # the model as the run names it (an HF name), if it does
    requests: pd.DataFrame      # REQUEST_COLUMNS, in arrival order, failed requests left out
    settings: dict = field(default_factory=dict)
    arrivals: dict | None = None
    seed: int = 0
    device_name: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name


def load_run(path: str | Path) -> RealRun:
    """Read a vLLM run folder, or a vLLM benchmark result JSON (or a folder holding just one)."""
    # the readers build on this module's helpers, so they are imported here, not at the top
    from sim.compare.bench import read_bench_json
    from sim.compare.vllm_run import read_vllm_run

    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file or folder (expected a run folder with meta.json "
                         "and requests.jsonl, or a vLLM benchmark result JSON)")
    if path.is_file():
        if path.name in ("meta.json", "requests.jsonl"):
            return read_vllm_run(path.parent)
        return read_bench_json(path)
    if (path / "meta.json").is_file():
        return read_vllm_run(path)
    candidates = sorted(p for p in path.glob("*.json") if p.is_file())
    if len(candidates) == 1:
        return read_bench_json(candidates[0], run=path)
    if not candidates:
        raise TraceError(f"{path}: no meta.json (a vLLM run folder) and no vLLM benchmark "
                         "result JSON")
    names = ", ".join(p.name for p in candidates)
    raise TraceError(f"{path}: no meta.json, and several JSON files ({names}): pass the "
                     "benchmark result to compare")


def read_json_object(path: Path) -> dict:
    """A JSON file whose top level is an object, or a one-line TraceError naming the file."""
    return read_mapping(path, TraceError)


def latency_frame(arrival_s: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray,
                  first_token_s: np.ndarray, finish_s: np.ndarray) -> pd.DataFrame:
    """Per-request latencies by vLLM's benchmark definitions, on a clock that starts at the
    first arrival; rows sorted by arrival (stably), as the replayed trace is.

    TTFT and E2E are taken from the timestamps as given, before the shift, so that they are the
    run's own differences."""
    arrival_s = np.asarray(arrival_s, dtype=np.float64)
    first_token_s = np.asarray(first_token_s, dtype=np.float64)
    finish_s = np.asarray(finish_s, dtype=np.float64)
    output_tokens = np.asarray(output_tokens, dtype=np.int64)
    ttft_s = first_token_s - arrival_s
    e2e_s = finish_s - arrival_s
    decoded = output_tokens - 1
    tpot_s = np.where(decoded > 0, (e2e_s - ttft_s) / np.maximum(decoded, 1), np.nan)
    start = arrival_s.min() if len(arrival_s) else 0.0
    frame = pd.DataFrame({
        "arrival_s": arrival_s - start, "prompt_tokens": np.asarray(prompt_tokens, np.int64),
        "output_tokens": output_tokens, "first_token_s": first_token_s - start,
        "finish_s": finish_s - start, "ttft_s": ttft_s, "tpot_s": tpot_s, "e2e_s": e2e_s})
    order = np.argsort(frame["arrival_s"].to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def warn_left_out(path: Path, failed: int, total: int, why: str) -> None:
    """Warn that ``failed`` requests are dropped; fail if that leaves none."""
    if failed == total:
        raise TraceError(f"{path}: no request completed (all {total} {why}): nothing to compare")
    if failed:
        warnings.warn(f"{path}: {failed} of {total} requests failed ({why}): left out of the "
                      "replay and the statistics", RunWarning, stacklevel=3)
