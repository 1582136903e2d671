"""``mooncake``: the Mooncake traces (FAST'25 artifact), JSON lines.

Keys ``timestamp`` (milliseconds from the start of the trace), ``input_length``,
``output_length`` and ``hash_ids`` (one id per 512-token prompt block; equal ids = the same
block content including everything before it, so they become ``prefix_hashes`` directly).
``workload.trace.prefix_block_tokens`` overrides the 512.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT, TIME, check_columns, no_rows, numeric_column,
                                         read_jsonl)

if TYPE_CHECKING:
    from sim.workload.traces import TraceConfig

REQUIRED = ("timestamp", "input_length", "output_length")
OPTIONAL = ("hash_ids",)
BLOCK_TOKENS = 512


def read_mooncake(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    frame, ids, line_of, found = read_jsonl(path, nrows, REQUIRED, lists=OPTIONAL)
    check_columns(path, found, REQUIRED, OPTIONAL, fmt="mooncake")
    if len(frame) == 0:
        raise no_rows(path)
    return TraceColumns(
        arrival_s=numeric_column(path, frame["timestamp"], "timestamp", TIME, line_of) / 1000.0,
        prompt_tokens=numeric_column(path, frame["input_length"], "input_length", COUNT, line_of),
        output_tokens=numeric_column(path, frame["output_length"], "output_length", COUNT,
                                     line_of),
        prefix_hashes=ids.get("hash_ids"), prefix_block_tokens=BLOCK_TOKENS)
