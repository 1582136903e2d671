"""Trace formats: ``TRACE_FORMATS[name]`` describes one public trace format and reads it.

A reader returns :class:`~sim.workload.columns.TraceColumns` (numpy columns, seconds and token
counts) and checks its own columns, naming the file, the column and the line of the first bad
value. A new format is one module here plus one line below. :func:`detect_format` picks the
format from a file's header (CSV column names, the keys of the first JSON line, or a JSON list).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import TraceError
from sim.registry import Registry
from sim.workload.columns import TraceColumns
from sim.workload.formats import azure, burstgpt, generic, mooncake, sharegpt, vidur
from sim.workload.formats.common import check_not_empty, csv_header, head_bytes, jsonl_keys

if TYPE_CHECKING:
    from sim.workload.traces import TraceConfig

TraceReader = Callable[[Path, "TraceConfig", "int | None"], TraceColumns]


@dataclass(frozen=True)
class TraceFormat:
    """A reader and what identifies its files: the container and the columns (or keys) it needs."""

    read: TraceReader
    container: str                    # "csv", "jsonl", "csv|jsonl" or "json" (one JSON list)
    columns: tuple[str, ...]          # the header must have all of these
    block_tokens: int | None = None   # prompt tokens per prefix id, when the format fixes it


TRACE_FORMATS: Registry[TraceFormat] = Registry("trace format", {
    "generic": TraceFormat(generic.read_generic, "csv|jsonl", generic.REQUIRED),
    "azure": TraceFormat(azure.read_azure, "csv", azure.REQUIRED),
    "mooncake": TraceFormat(mooncake.read_mooncake, "jsonl", mooncake.REQUIRED,
                            mooncake.BLOCK_TOKENS),
    "burstgpt": TraceFormat(burstgpt.read_burstgpt, "csv", burstgpt.REQUIRED),
    "sharegpt": TraceFormat(sharegpt.read_sharegpt, "json", ()),
    "vidur": TraceFormat(vidur.read_vidur, "csv", vidur.REQUIRED),
})


def sniff(path: Path) -> tuple[str, list[str]]:
    """The container of ``path`` ("csv", "jsonl" or "json") and its header names (or keys)."""
    check_not_empty(path)
    head = head_bytes(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json", []
    if head.startswith(b"{"):
        return "jsonl", jsonl_keys(path)
    return "csv", csv_header(path)


def detect_format(path: Path) -> str:
    """The format whose container and columns match the file's header.

    A header that matches no format exactly but shares columns with some is taken as the format
    it shares most with, so that its reader names the missing columns (a misspelt header gets a
    "did you mean"); one sharing nothing is a TraceError that lists the known formats with the
    columns each expects.
    """
    container, names = sniff(path)
    best, best_score = None, 0
    for name, fmt in TRACE_FORMATS.items():
        if container not in fmt.container.split("|"):
            continue
        score = sum(c in names for c in fmt.columns)
        if score == len(fmt.columns):
            return name
        if score > best_score:
            best, best_score = name, score
    if best is not None:
        return best
    known = "; ".join(f"{name} ({fmt.container}: {_describe(fmt)})"
                      for name, fmt in TRACE_FORMATS.items())
    found = ", ".join(names) or "no columns"
    raise TraceError(f"{path}: cannot tell the trace format from its header ({container}; "
                     f"found: {found}); known formats: {known}")


def _describe(fmt: TraceFormat) -> str:
    return ", ".join(fmt.columns) or "a list of conversations"


__all__ = ["TRACE_FORMATS", "TraceFormat", "TraceReader", "detect_format", "sniff"]
