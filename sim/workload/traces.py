"""Replaying traces: ``workload.trace`` (:class:`TraceConfig`) and :func:`load_trace`.

The format readers live in :mod:`sim.workload.formats` (``TRACE_FORMATS``); this module resolves
the file, picks the format (given, or detected from the header) and applies the transformations,
always in this order:

1. read (``limit`` rows only, when no window or sampling comes first);
2. sort by arrival, stably, warning with the number of rows that were out of order;
3. window: keep ``start_s <= arrival < end_s`` (the trace's own seconds, before any rescaling);
4. ``limit``: the first N requests;
5. ``sample_frac``: that fraction of the rows, drawn without replacement (seeded), order kept;
6. ``shift_to_zero``: the first arrival becomes t = 0;
7. ``time_scale`` (multiply every gap) or ``target_rate_rps`` (the scale that gives that mean
   rate); the first arrival stays put;
8. ``repeat``: tile the trace, each copy one mean gap after the previous (new prefix ids).

Clipping lengths to the model's context is a workload option (``workload.clip_to_context``),
applied by :func:`sim.workload.build_workload` to generated and replayed requests alike.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from sim.config import require
from sim.errors import TraceError
from sim.workload import transforms
from sim.workload.columns import IdLists, TraceColumns
from sim.workload.formats import TRACE_FORMATS, TraceFormat, detect_format
from sim.workload.formats.common import check_not_empty

DEFAULT_BLOCK_TOKENS = 16   # prompt tokens per prefix id when neither the file nor the scenario says


class TraceWarning(UserWarning):
    """Something in a trace was fixed up (rows sorted, failed rows dropped): not an error."""


# options that only one format reads, and their defaults
_FORMAT_OPTIONS = {"models": ("burstgpt", None), "log_types": ("burstgpt", None),
                   "turns": ("sharegpt", "first"), "tokenizer": ("sharegpt", "auto")}


@dataclass(frozen=True)
class TraceConfig:
    """``workload.trace``: replay requests from a file (see the module doc for the order)."""

    path: str
    format: str | None = None            # a TRACE_FORMATS name; null: detected from the header
    start_s: float | None = None         # window on the trace's own clock, seconds
    end_s: float | None = None
    limit: int | None = None             # the first N requests
    sample_frac: float | None = None     # keep this fraction of the rows (seeded)
    shift_to_zero: bool = False          # first arrival at t = 0
    time_scale: float = 1.0              # gaps between arrivals are multiplied by this (0.5 = 2x load)
    target_rate_rps: float | None = None  # or: rescale gaps to this mean rate
    repeat: int = 1                      # tile the trace this many times
    prefix_block_tokens: int | None = None  # prompt tokens per prefix id; null: the format's, or 16
    models: list[str] | None = None      # burstgpt: keep these models (e.g. [ChatGPT])
    log_types: list[str] | None = None   # burstgpt: keep these log types (e.g. [Conversation log])
    turns: Literal["first", "all"] = "first"   # sharegpt: the first exchange, or all as sessions
    tokenizer: str = "auto"              # sharegpt: auto | chars | tiktoken:<enc> | hf:<model>

    def __post_init__(self) -> None:
        require(bool(self.path), "path", "a file path", self.path)
        if self.format is not None:            # null: detected from the header
            TRACE_FORMATS.require(self.format, "format")
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            require(value is None or (value >= 0 and math.isfinite(value)), name,
                    "a number >= 0 or null", value)
        require(self.start_s is None or self.end_s is None or self.end_s > self.start_s,
                "end_s", f"a number > start_s ({self.start_s})", self.end_s)
        require(self.limit is None or self.limit > 0, "limit", "an integer > 0 or null",
                self.limit)
        require(self.sample_frac is None or 0 < self.sample_frac <= 1, "sample_frac",
                "a number in (0, 1] or null", self.sample_frac)
        require(self.time_scale > 0 and math.isfinite(self.time_scale), "time_scale",
                "a number > 0", self.time_scale)
        require(self.target_rate_rps is None or (self.target_rate_rps > 0
                                                 and math.isfinite(self.target_rate_rps)),
                "target_rate_rps", "a number > 0 or null", self.target_rate_rps)
        require(self.target_rate_rps is None or self.time_scale == 1.0, "target_rate_rps",
                "null when time_scale is set (one or the other)", self.target_rate_rps)
        require(self.repeat >= 1, "repeat", "an integer >= 1", self.repeat)
        require(self.prefix_block_tokens is None or self.prefix_block_tokens > 0,
                "prefix_block_tokens", "an integer > 0 or null", self.prefix_block_tokens)
        if self.format is not None:
            check_format_options(self, self.format, lambda field, msg, got: require(
                False, field, msg, got))

    def resolve_path(self, base_dir: Path | None = None) -> Path:
        path = Path(self.path).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return path


def check_format_options(cfg: TraceConfig, fmt: str, fail) -> None:
    """Options of one format given for another: ``fail(field, expected, got)``."""
    for name, (owner, default) in _FORMAT_OPTIONS.items():
        value = getattr(cfg, name)
        if owner != fmt and value != default:
            fail(name, f"no value (only format '{owner}' reads it; this trace is '{fmt}')", value)


def read_trace(cfg: TraceConfig, base_dir: Path | None = None, source: str | None = None,
               nrows: int | None = None) -> tuple[TraceColumns, str]:
    """Read the file as it is (no transformations): its columns and its format name."""
    path = cfg.resolve_path(base_dir)
    if not path.is_file():
        where = f" (workload.trace.path in {source})" if source else ""
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise TraceError(f"{path}: trace {what}{where}")
    check_not_empty(path)
    name = cfg.format or detect_format(path)

    def fail(field, expected, got):
        raise TraceError(f"{path}: workload.trace.{field}: expected {expected}, got {got!r}")
    check_format_options(cfg, name, fail)
    fmt: TraceFormat = TRACE_FORMATS[name]
    columns = fmt.read(path, cfg, nrows)
    columns.format = name
    columns.prefix_block_tokens = (cfg.prefix_block_tokens or columns.prefix_block_tokens
                                   or fmt.block_tokens or DEFAULT_BLOCK_TOKENS)
    return columns, name


def load_trace(cfg: TraceConfig, base_dir: Path | None = None, source: str | None = None,
               rng: np.random.Generator | None = None) -> TraceColumns:
    """Read ``cfg.path`` (relative to ``base_dir``) and apply the transformations, in order.

    ``rng`` draws ``sample_frac``'s rows (default: a generator seeded with 0).
    """
    early_limit = cfg.limit if cfg.start_s is None and cfg.end_s is None else None
    columns, _ = read_trace(cfg, base_dir, source, nrows=early_limit)
    late = transforms.out_of_order(columns.arrival_s)
    if late and columns.has_timestamps:
        path = cfg.resolve_path(base_dir)
        warnings.warn(f"{path}: {late} row{'s' if late > 1 else ''} out of arrival order; "
                      "sorted by arrival", TraceWarning, stacklevel=2)
        columns = transforms.sort_by_arrival(columns)
    columns = transforms.window(columns, cfg.start_s, cfg.end_s)
    if len(columns) == 0:
        raise TraceError(f"{cfg.resolve_path(base_dir)}: no requests in the window "
                         f"[{cfg.start_s}, {cfg.end_s}) s")
    columns = transforms.head(columns, cfg.limit)
    columns = transforms.sample(columns, cfg.sample_frac,
                                rng if rng is not None else np.random.default_rng(0))
    if cfg.shift_to_zero:
        columns = transforms.shift_to_zero(columns)
    columns = transforms.scale_gaps(columns, cfg.time_scale, cfg.target_rate_rps)
    return transforms.repeat(columns, cfg.repeat)


__all__ = ["DEFAULT_BLOCK_TOKENS", "IdLists", "TRACE_FORMATS", "TraceColumns", "TraceConfig",
           "TraceWarning", "load_trace", "read_trace"]
