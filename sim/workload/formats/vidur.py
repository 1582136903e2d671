"""``vidur``: Vidur's processed-trace CSV.

Columns ``arrived_at`` (seconds), ``num_prefill_tokens``, ``num_decode_tokens``; other columns
are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT, TIME, check_columns, csv_header, no_rows,
                                         numeric_column, read_csv, record_line)

if TYPE_CHECKING:
    from sim.workload.traces import TraceConfig

REQUIRED = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")


def read_vidur(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    check_columns(path, csv_header(path), REQUIRED, fmt="vidur")
    frame = read_csv(path, REQUIRED, nrows)
    if len(frame) == 0:
        raise no_rows(path)

    def line_of(row: int) -> int:
        return record_line(path, row, header_lines=1)
    return TraceColumns(
        arrival_s=numeric_column(path, frame["arrived_at"], "arrived_at", TIME, line_of),
        prompt_tokens=numeric_column(path, frame["num_prefill_tokens"], "num_prefill_tokens",
                                     COUNT, line_of),
        output_tokens=numeric_column(path, frame["num_decode_tokens"], "num_decode_tokens",
                                     COUNT, line_of))
