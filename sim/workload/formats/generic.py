"""``generic``: llmsim's own format, CSV with a header row or JSON lines.

Columns ``arrival_s`` (seconds), ``prompt_tokens``, ``output_tokens``; optional ``prefix_hashes``
(CSV: integers separated by spaces or ``|``, e.g. ``"1 2 3"`` or ``1|2|3``; JSON lines: a list; an
empty value means none), ``session`` (integer, -1 or empty = none) and ``prefix_block_tokens``
(prompt tokens per prefix id, the same on every row; ``llmsim trace convert`` writes it so that a
converted Mooncake trace keeps its 512). :func:`write_generic` writes this format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import TraceError
from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT, TIME, bad_value, check_columns, csv_header,
                                         csv_id_lists, no_rows, numeric_column, read_csv,
                                         read_jsonl, record_line)

if TYPE_CHECKING:
    import pyarrow as pa

    from sim.workload.traces import TraceConfig

REQUIRED = ("arrival_s", "prompt_tokens", "output_tokens")
OPTIONAL = ("prefix_hashes", "session", "prefix_block_tokens")
JSONL_SUFFIXES = (".jsonl", ".json-lines", ".ndjson")


def is_jsonl(path: Path) -> bool:
    """By extension (.csv / .jsonl / .json-lines / .ndjson), else by a first character '{'."""
    name = path.name.lower()
    if name.endswith(".csv"):
        return False
    if name.endswith(JSONL_SUFFIXES):
        return True
    with open(path, "rb") as f:
        return f.read(1 << 16).lstrip().startswith(b"{")


def read_generic(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    # here, not above: the formats registry imports every reader, and most runs read no trace
    import pandas as pd
    import pyarrow as pa

    if is_jsonl(path):
        frame, ids, line_of, found = read_jsonl(path, nrows, REQUIRED + OPTIONAL[1:],
                                                lists=("prefix_hashes",))
        check_columns(path, found, REQUIRED, OPTIONAL)
        hashes = ids.get("prefix_hashes")
    else:
        check_columns(path, csv_header(path), REQUIRED, OPTIONAL)
        frame = read_csv(path, REQUIRED + OPTIONAL, nrows, types={"prefix_hashes": pa.string()})

        def line_of(row: int) -> int:
            return record_line(path, row, header_lines=1)
        hashes = (csv_id_lists(path, frame["prefix_hashes"], "prefix_hashes", line_of)
                  if "prefix_hashes" in frame.columns else None)
    if len(frame) == 0:
        raise no_rows(path)
    session = None
    if "session" in frame.columns:
        values = pd.to_numeric(frame["session"], errors="coerce").fillna(-1).to_numpy()
        if np.any(values != np.floor(values)) or np.any(values < -1):
            row = int(np.argmax((values != np.floor(values)) | (values < -1)))
            raise bad_value(path, line_of(row), "session", "an integer >= -1",
                            frame["session"].iloc[row])
        session = values.astype(np.int64)
    block_tokens = None
    if "prefix_block_tokens" in frame.columns:
        values = numeric_column(path, frame["prefix_block_tokens"], "prefix_block_tokens", COUNT,
                                line_of)
        if np.any(values != values[0]):
            row = int(np.argmax(values != values[0]))
            raise TraceError(f"{path}: line {line_of(row)}: column 'prefix_block_tokens': "
                             f"expected the same value on every row ({values[0]}), got "
                             f"{values[row]}")
        block_tokens = int(values[0])
    return TraceColumns(
        arrival_s=numeric_column(path, frame["arrival_s"], "arrival_s", TIME, line_of),
        prompt_tokens=numeric_column(path, frame["prompt_tokens"], "prompt_tokens", COUNT,
                                     line_of),
        output_tokens=numeric_column(path, frame["output_tokens"], "output_tokens", COUNT,
                                     line_of),
        prefix_hashes=hashes, session=session, prefix_block_tokens=block_tokens)


def write_generic(columns: TraceColumns, out: Path, prefix_block_tokens: int | None = None) -> None:
    """Write ``columns`` as a generic trace: JSON lines if ``out`` ends in .jsonl, else CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    data = {"arrival_s": pa.array(columns.arrival_s),
            "prompt_tokens": pa.array(columns.prompt_tokens),
            "output_tokens": pa.array(columns.output_tokens)}
    jsonl = Path(out).name.lower().endswith(JSONL_SUFFIXES)
    ids = columns.prefix_hashes
    if ids is not None:
        lists = pa.ListArray.from_arrays(pa.array(ids.offsets, pa.int32()
                                                  if ids.offsets[-1] < 2 ** 31 else pa.int64()),
                                         pa.array(ids.values))
        data["prefix_hashes"] = lists if jsonl else pc.binary_join(lists.cast(
            pa.list_(pa.string())), " ")
    if columns.session is not None:
        data["session"] = pa.array(columns.session)
    block = prefix_block_tokens or columns.prefix_block_tokens
    if ids is not None and block:
        data["prefix_block_tokens"] = pa.array(np.full(len(columns), block, dtype=np.int64))
    table = pa.table(data)
    if jsonl:
        _write_jsonl(table, Path(out))
    else:
        with open(out, "wb") as f:     # Arrow quotes header names; a plain header reads better
            f.write((",".join(table.column_names) + "\n").encode())
            pa_csv.write_csv(table, f, pa_csv.WriteOptions(include_header=False,
                                                           quoting_style="needed"))


def _write_jsonl(table: pa.Table, out: Path) -> None:
    # Arrow writes no JSON; pandas' writer is vectorised enough (one C call per batch)
    with open(out, "w", encoding="utf-8") as f:
        for batch in table.to_batches(max_chunksize=1 << 16):
            frame = batch.to_pandas()
            if "prefix_hashes" in frame.columns:
                frame["prefix_hashes"] = frame["prefix_hashes"].map(
                    lambda a: [] if a is None else a.tolist())
            text = frame.to_json(orient="records", lines=True)
            f.write(text if text.endswith("\n") else text + "\n")
