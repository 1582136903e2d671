"""``burstgpt``: the BurstGPT traces, CSV.

Columns ``Timestamp`` (seconds from the start of the trace), ``Model`` (``ChatGPT`` / ``GPT-4``),
``Request tokens``, ``Response tokens``, ``Total tokens``, ``Log Type`` (``Conversation log`` /
``API log``). ``workload.trace.models`` and ``workload.trace.log_types`` keep only those rows.
Rows with zero response tokens are failed requests and are dropped (a warning gives the count),
as are rows with zero request tokens.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import TraceError
from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT_OR_ZERO, TIME, check_columns, csv_header,
                                         no_rows, numeric_column, read_csv, record_line)

if TYPE_CHECKING:
    from sim.workload.traces import TraceConfig

REQUIRED = ("Timestamp", "Request tokens", "Response tokens")
OPTIONAL = ("Model", "Total tokens", "Log Type")


def read_burstgpt(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    from sim.workload.traces import TraceWarning

    header = csv_header(path)
    check_columns(path, header, REQUIRED, OPTIONAL, fmt="burstgpt")
    filters = {"Model": cfg.models, "Log Type": cfg.log_types}
    for column, wanted in filters.items():
        if wanted is not None and column not in header:
            raise TraceError(f"{path}: column '{column}' is needed to filter by "
                             f"{'models' if column == 'Model' else 'log_types'}; found: "
                             f"{', '.join(header)}")
    # the filters select rows, so nrows counts rows kept: read everything, cut afterwards
    frame = read_csv(path, REQUIRED + OPTIONAL, None if any(filters.values()) else nrows)

    def line_of(row: int) -> int:
        return record_line(path, row, header_lines=1)
    arrival = numeric_column(path, frame["Timestamp"], "Timestamp", TIME, line_of)
    prompt = numeric_column(path, frame["Request tokens"], "Request tokens", COUNT_OR_ZERO,
                            line_of)
    output = numeric_column(path, frame["Response tokens"], "Response tokens", COUNT_OR_ZERO,
                            line_of)
    keep = np.ones(len(frame), dtype=bool)
    for column, wanted in filters.items():
        if wanted is not None:
            keep &= frame[column].astype(str).str.strip().isin(list(wanted)).to_numpy()
    selected = int(keep.sum())
    keep &= (output > 0) & (prompt > 0)
    failed = selected - int(keep.sum())
    if failed:
        warnings.warn(f"{path}: dropped {failed} failed request"
                      f"{'s' if failed > 1 else ''} (zero request or response tokens)",
                      TraceWarning, stacklevel=2)
    index = np.flatnonzero(keep)
    if nrows is not None:
        index = index[:nrows]
    if len(index) == 0:
        raise no_rows(path) if len(frame) == 0 else TraceError(
            f"{path}: no requests left after filtering (models={cfg.models}, "
            f"log_types={cfg.log_types}, {failed} failed rows dropped)")
    return TraceColumns(arrival_s=arrival[index], prompt_tokens=prompt[index],
                        output_tokens=output[index])
