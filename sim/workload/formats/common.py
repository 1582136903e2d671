"""What every trace reader shares: reading a header, checking columns, numeric checks with the line
of the first bad value, fast CSV and JSON-lines reading through Arrow.

pandas and pyarrow are imported by the functions that read, not with the module: the formats
registry (hence every scenario, and the CLI's parser) imports this module, and most runs read no
trace.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import TraceError, did_you_mean
from sim.workload.columns import IdLists

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pa_csv

SNIFF_BYTES = 1 << 16


# --- the head of a file ---------------------------------------------------------------------

def head_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


def check_not_empty(path: Path) -> None:
    head = head_bytes(path)
    if not head.strip() and len(head) < SNIFF_BYTES:
        raise TraceError(f"{path}: empty file (no header and no requests)")


def first_line(path: Path) -> str:
    """The first non-blank line (without its newline), BOM stripped."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.rstrip("\r\n")
    return ""


def csv_header(path: Path) -> list[str]:
    line = first_line(path)
    return [c.strip() for c in next(csv.reader([line]))] if line else []


def jsonl_keys(path: Path) -> list[str]:
    line = first_line(path)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: line 1: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise TraceError(f"{path}: line 1: expected a JSON object, got {type(record).__name__}")
    return list(record)


# --- columns --------------------------------------------------------------------------------

def check_columns(path: Path, found: Sequence[str], required: Sequence[str],
                  optional: Sequence[str] = (), fmt: str | None = None) -> None:
    """Raise TraceError naming the missing columns, those found and those expected (+ a hint)."""
    missing = [c for c in required if c not in found]
    if not missing:
        return
    extra = [c for c in found if c not in required and c not in optional]
    hint = ""
    if extra:
        close = did_you_mean(missing[0], extra)
        if close.startswith("did you mean"):
            hint = f"; {close}"
    what = f" for format '{fmt}'" if fmt else ""
    opt = f" (optional: {', '.join(optional)})" if optional else ""
    raise TraceError(
        f"{path}: missing column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(c) for c in missing)}{what}; found: "
        f"{', '.join(map(str, found)) or 'none'}; expected: {', '.join(required)}{opt}{hint}")


def record_line(path: Path, row: int, header_lines: int) -> int:
    """1-based line of data row ``row`` (0-based), counting as the readers do: blank lines skipped.

    Only called when reporting an error, so rescanning the file is fine.
    """
    target, seen = row + header_lines, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                if seen == target:
                    return number
                seen += 1
    return row + header_lines + 1


def bad_value(path: Path, line: int, column: str, expected: str, got: object) -> TraceError:
    if isinstance(got, np.generic):
        got = got.item()
    text = "an empty value" if got is None or (isinstance(got, float) and math.isnan(got)) \
        else repr(got)
    return TraceError(f"{path}: line {line}: column '{column}': expected {expected}, got {text}")


COUNT, TIME, COUNT_OR_ZERO = "count", "time", "count_or_zero"
# token counts above this are input errors, not requests (and beyond int64 they would wrap)
MAX_COUNT = 10**9
_EXPECTED = {COUNT: f"an integer >= 1 (at most {MAX_COUNT:,})", TIME: "a number >= 0 (seconds)",
             COUNT_OR_ZERO: f"an integer >= 0 (at most {MAX_COUNT:,})"}


def numeric_column(path: Path, series: pd.Series, column: str, kind: str,
                   line_of: Callable[[int], int]) -> np.ndarray:
    """``series`` as float64 seconds (TIME) or int64 counts, or a TraceError naming the line."""
    import pandas as pd

    if series.dtype.kind in "iu" and kind != TIME:
        values = series.to_numpy()
        low = 1 if kind == COUNT else 0
        bad = (values < low) | (values > MAX_COUNT)
        if bad.any():
            row = int(np.argmax(bad))
            raise bad_value(path, line_of(row), column, _EXPECTED[kind], series.iloc[row])
        return values.astype(np.int64, copy=False)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == TIME:
        bad = ~(values >= 0) | ~np.isfinite(values)
    else:
        low = 1 if kind == COUNT else 0
        bad = ~(values >= low) | (values != np.floor(values)) | ~(values <= MAX_COUNT)
    if series.dtype == bool:
        bad[:] = True
    elif series.dtype == object:    # JSON true/false are not numbers, though to_numeric takes them
        bad |= series.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
    if bad.any():
        row = int(np.argmax(bad))
        raise bad_value(path, line_of(row), column, _EXPECTED[kind], series.iloc[row])
    return values if kind == TIME else values.astype(np.int64)


def no_rows(path: Path) -> TraceError:
    return TraceError(f"{path}: no requests (the file has no data rows)")


# --- CSV ------------------------------------------------------------------------------------

def read_csv(path: Path, columns: Sequence[str], nrows: int | None = None,
             types: dict[str, pa.DataType] | None = None) -> pd.DataFrame:
    """The named columns of a CSV file (names as in its header, stripped of spaces).

    Arrow parses the file in parallel (a 10-million-row file in seconds); if it cannot (a
    non-numeric value in a numeric column, a ragged row) pandas reads it instead, as strings
    where needed, so the numeric checks can name the bad line. Blank lines are skipped.
    """
    table = read_csv_arrow(path, columns, nrows, types)
    if table is None:
        header = csv_header(path)
        raw = {name.strip(): name for name in next(csv.reader([first_line(path)]))}
        return _read_csv_pandas(path, [raw.get(c, c) for c in columns if c in header], nrows)
    # one column per block, each Arrow buffer freed once converted: about half the peak
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_csv_arrow(path: Path, columns: Sequence[str], nrows: int | None = None,
                   types: dict[str, pa.DataType] | None = None) -> pa.Table | None:
    """The named columns of a CSV file as an Arrow table (names stripped of spaces), or None
    if Arrow cannot parse them (then :func:`read_csv` reads it with pandas, to name the bad
    line)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    header = csv_header(path)
    raw = {name.strip(): name for name in next(csv.reader([first_line(path)]))}
    wanted = [raw.get(c, c) for c in columns if c in header]
    column_types = {raw.get(k, k): v for k, v in (types or {}).items() if k in header}
    try:
        options = pa_csv.ConvertOptions(include_columns=wanted, column_types=column_types,
                                        strings_can_be_null=True)
        if nrows is None:
            table = pa_csv.read_csv(path, convert_options=options)
        else:
            table = _read_csv_head(path, options, nrows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    return table.rename_columns([str(c).strip() for c in table.column_names])


def _read_csv_head(path: Path, options: pa_csv.ConvertOptions, nrows: int) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    batches, rows = [], 0
    with pa_csv.open_csv(path, convert_options=options) as reader:
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= nrows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, nrows)


def _read_csv_pandas(path: Path, wanted: list[str], nrows: int | None) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path, nrows=nrows, usecols=wanted, dtype=str,
                            skipinitialspace=True, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: empty file (no header and no requests)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise TraceError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") \
            from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def csv_id_lists(path: Path, series: pd.Series, column: str,
                 line_of: Callable[[int], int]) -> IdLists:
    """A CSV column of integers separated by spaces or '|' (empty = no ids) as IdLists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = pa.array(series, type=pa.string(), from_pandas=True)
    try:
        tokens = pc.utf8_split_whitespace(pc.replace_substring(strings, "|", " "))
        flat = pc.list_flatten(tokens)
        keep = pc.not_equal(flat, "")       # "" is what an empty field splits into
        lengths = np.asarray(pc.fill_null(pc.list_value_length(tokens), 0), dtype=np.int64)
        empty_tokens = np.asarray(pc.invert(keep), dtype=bool)
        values = np.asarray(pc.filter(flat, keep).cast(pa.int64()), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for row, text in enumerate(series.tolist()):        # find and name the bad field
            _parse_ids(path, text, line_of(row), column)
        raise TraceError(f"{path}: column '{column}': a value does not fit in a 64-bit integer") \
            from None
    if empty_tokens.any():   # an empty field split into one "" token: that row has no ids
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        np.subtract.at(lengths, row_of[empty_tokens], 1)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return IdLists(offsets, values)


def _parse_ids(path: Path, text: object, line: int, column: str) -> tuple[int, ...]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    try:
        return tuple(int(tok) for tok in str(text).replace("|", " ").split())
    except ValueError:
        raise bad_value(path, line, column, "integers separated by spaces or '|'", text) from None


# --- JSON lines -----------------------------------------------------------------------------

def read_jsonl(path: Path, nrows: int | None, numeric: Sequence[str],
               lists: Sequence[str] = ()
               ) -> tuple[pd.DataFrame, dict[str, IdLists], Callable[[int], int], list[str]]:
    """Columns of a JSON-lines file: ``numeric`` ones as a DataFrame, ``lists`` as IdLists.

    Returns the frame, the id lists, ``line_of(row)`` for error messages and every key found. Arrow parses
    well-formed files in bulk; a malformed one (bad JSON, mixed types) is reread line by line to
    name the line.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.json as pa_json

    try:
        # 4 MiB blocks: Arrow fails on a line longer than a block (then the slow path reads it)
        table = pa_json.read_json(path, read_options=pa_json.ReadOptions(block_size=1 << 22))
        if nrows is not None:
            table = table.slice(0, nrows)
        present = table.column_names
        frame = pd.DataFrame({name: table.column(name).to_pandas()
                              for name in numeric if name in present})
        ids = {name: arrow_id_lists(table.column(name)) for name in lists if name in present}

        def line_of(row: int) -> int:
            return record_line(path, row, header_lines=0)
        return frame, ids, line_of, list(present)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, OverflowError):
        return _read_jsonl_slow(path, nrows, numeric, lists)


def arrow_id_lists(array: pa.Array | pa.ChunkedArray) -> IdLists:
    """A list<int> Arrow column as IdLists (nulls become empty rows), without a Python loop."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    if pa.types.is_null(array.type):             # every value null
        return IdLists(np.zeros(len(array) + 1, np.int64), np.zeros(0, np.int64))
    if not pa.types.is_list(array.type) and not pa.types.is_large_list(array.type):
        raise TypeError("not a list column")
    if not pa.types.is_integer(array.type.value_type) and \
            not pa.types.is_null(array.type.value_type):
        raise TypeError("not a list of integers")
    offsets = np.asarray(array.offsets, dtype=np.int64)
    values = np.asarray(array.values.cast(pa.int64()).fill_null(0), dtype=np.int64)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(array), 0), dtype=np.int64)
    return IdLists.from_segments(values, offsets[:-1], lengths)


def _read_jsonl_slow(path: Path, nrows: int | None, numeric: Sequence[str],
                     lists: Sequence[str]):
    import pandas as pd

    records, lines = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if nrows is not None and len(records) >= nrows:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise TraceError(f"{path}: line {number}: expected a JSON object, got "
                                 f"{type(record).__name__}")
            records.append(record)
            lines.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    ids = {}
    for name in lists:
        if name not in frame.columns:
            continue
        rows = []
        for value, number in zip(frame[name].tolist(), lines):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                rows.append(())
            elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                                 for v in value):
                rows.append(value)
            else:
                raise bad_value(path, number, name, "a list of integers", value)
        ids[name] = IdLists.from_lists(rows)
    found = [str(c) for c in frame.columns]
    frame = frame[[c for c in numeric if c in frame.columns]]
    return frame, ids, lambda row: lines[row], found


__all__ = ["COUNT", "TIME", "COUNT_OR_ZERO", "IdLists", "arrow_id_lists", "bad_value",
           "check_columns", "check_not_empty", "csv_header", "csv_id_lists", "first_line",
           "head_bytes", "jsonl_keys", "no_rows", "numeric_column", "read_csv", "read_csv_arrow",
           "read_jsonl",
           "record_line"]
