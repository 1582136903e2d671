"""``azure``: the Azure LLM inference traces (2023 code/conversation, 2024 week-long), CSV.

Columns ``TIMESTAMP`` (wall clock, e.g. ``2023-11-16 18:15:46.6805900``, optionally with a zone
offset as in the 2024 files), ``ContextTokens``, ``GeneratedTokens``. Arrivals are seconds after
the earliest timestamp (the first row, in the published files, which are sorted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT, MAX_COUNT, bad_value, check_columns, csv_header,
                                         no_rows, numeric_column, read_csv, read_csv_arrow,
                                         record_line)

if TYPE_CHECKING:
    import pandas as pd

    from sim.workload.traces import TraceConfig

REQUIRED = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_azure(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    import pyarrow as pa     # here, not above: the formats registry imports every reader

    check_columns(path, csv_header(path), REQUIRED, fmt="azure")
    fast = _read_azure_arrow(path, nrows)
    if fast is not None:
        return fast
    frame = read_csv(path, REQUIRED, nrows, types={"TIMESTAMP": pa.string()})
    if len(frame) == 0:
        raise no_rows(path)

    def line_of(row: int) -> int:
        return record_line(path, row, header_lines=1)
    ns = wall_clock_ns(path, frame["TIMESTAMP"], "TIMESTAMP", line_of)
    return TraceColumns(
        arrival_s=(ns - ns.min()) / 1e9,
        prompt_tokens=numeric_column(path, frame["ContextTokens"], "ContextTokens", COUNT,
                                     line_of),
        output_tokens=numeric_column(path, frame["GeneratedTokens"], "GeneratedTokens", COUNT,
                                     line_of))


def _read_azure_arrow(path: Path, nrows: int | None) -> TraceColumns | None:
    """A well-formed file, all in Arrow (a week-long trace of tens of millions of rows holds no
    Python string per row); None at the first doubt, for the checked reader to name the line."""
    import pyarrow as pa

    table = read_csv_arrow(path, REQUIRED, nrows, types={
        "TIMESTAMP": pa.string(), "ContextTokens": pa.int64(), "GeneratedTokens": pa.int64()})
    if table is None or table.num_rows == 0 or any(c.null_count for c in table.columns):
        return None
    stamps = table.column("TIMESTAMP")
    ns = None
    for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:   # Arrow's ISO 8601 parser: fast, all-or-nothing
            ns = stamps.cast(target).cast(pa.int64()).to_numpy()
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    counts = [table.column(c).to_numpy() for c in ("ContextTokens", "GeneratedTokens")]
    if ns is None or any(((v < 1) | (v > MAX_COUNT)).any() for v in counts):
        return None
    return TraceColumns(arrival_s=(ns - ns.min()) / 1e9, prompt_tokens=counts[0],
                        output_tokens=counts[1])


def wall_clock_ns(path: Path, series: pd.Series, column: str, line_of) -> np.ndarray:
    """ISO 8601 date-times as int64 nanoseconds (UTC if they carry an offset)."""
    import pandas as pd
    import pyarrow as pa

    strings = pa.array(series, type=pa.string(), from_pandas=True)
    if strings.null_count == 0:
        for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
            try:   # Arrow's ISO 8601 parser: fast, all-or-nothing
                return np.asarray(strings.cast(target).cast(pa.int64()), dtype=np.int64)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise bad_value(path, line_of(row), column, "a date and time like 2023-11-16 18:15:46.68",
                        series.iloc[row])
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
