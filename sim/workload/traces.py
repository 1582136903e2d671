"""Trace readers: ``TRACE_FORMATS[format](path, limit)`` reads a trace file into :class:`TraceColumns`.

A reader turns its format's columns into the common ones (``arrival_s``, ``prompt_tokens``,
``output_tokens``, optional ``prefix_hashes``) and checks them with :func:`columns_from_frame`, which
names the file, the column and the line of the first bad value. A new format is one function here
plus one line in ``TRACE_FORMATS``. Sorting by arrival and ``time_scale`` are applied afterwards,
for every format alike, by :func:`load_trace`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from sim.config import require
from sim.errors import TraceError, did_you_mean

REQUIRED_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
OPTIONAL_COLUMNS = ("prefix_hashes",)


@dataclass
class TraceColumns:
    """A trace as columns: one entry per request, all the same length."""

    arrival_s: np.ndarray                          # float64 seconds
    prompt_tokens: np.ndarray                      # int64, >= 1
    output_tokens: np.ndarray                      # int64, >= 1
    prefix_hashes: list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return len(self.arrival_s)

    def take(self, order: np.ndarray) -> TraceColumns:
        """The rows at indices ``order``, in that order."""
        hashes = None if self.prefix_hashes is None else [self.prefix_hashes[i] for i in order]
        return TraceColumns(self.arrival_s[order], self.prompt_tokens[order],
                            self.output_tokens[order], hashes)


# --- shared checks ---------------------------------------------------------------------------

def _record_line(path: Path, row: int, header_lines: int) -> int:
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


def _bad_value(path: Path, line: int, column: str, expected: str, got: object) -> TraceError:
    text = "an empty value" if got is None or (isinstance(got, float) and math.isnan(got)) \
        else repr(got)
    return TraceError(f"{path}: line {line}: column '{column}': expected {expected}, got {text}")


def _numeric_column(path: Path, series: pd.Series, column: str, is_count: bool,
                    line_of: Callable[[int], int]) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if is_count:
        bad = ~(values >= 1) | (values != np.floor(values)) | ~np.isfinite(values)
        expected = "an integer >= 1"
    else:
        bad = ~(values >= 0) | ~np.isfinite(values)
        expected = "a number >= 0 (seconds)"
    if series.dtype == bool:
        bad[:] = True
    elif series.dtype == object:    # JSON true/false are not numbers, though to_numeric takes them
        bad |= series.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
    if bad.any():
        row = int(np.argmax(bad))
        raise _bad_value(path, line_of(row), column, expected, series.iloc[row])
    return values.astype(np.int64) if is_count else values


def check_columns(path: Path, found: Sequence[str]) -> None:
    """Raise TraceError naming the missing required columns, the columns found and those expected."""
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        raise TraceError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}; found: {', '.join(map(str, found)) or 'none'}; "
            f"expected: {', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})")


def columns_from_frame(path: Path, frame: pd.DataFrame, line_of: Callable[[int], int],
                       prefix_hashes: list[tuple[int, ...]] | None = None) -> TraceColumns:
    """Check the common numeric columns of ``frame`` and build TraceColumns.

    ``line_of(row)`` maps a 0-based row to the 1-based line of the file, for error messages.
    """
    check_columns(path, list(frame.columns))
    if len(frame) == 0:
        raise TraceError(f"{path}: no requests (the file has no data rows)")
    return TraceColumns(
        arrival_s=_numeric_column(path, frame["arrival_s"], "arrival_s", False, line_of),
        prompt_tokens=_numeric_column(path, frame["prompt_tokens"], "prompt_tokens", True, line_of),
        output_tokens=_numeric_column(path, frame["output_tokens"], "output_tokens", True, line_of),
        prefix_hashes=prefix_hashes,
    )


# --- generic: CSV or JSON lines -----------------------------------------------------------------

_JSONL_SUFFIXES = (".jsonl", ".json-lines", ".ndjson")
_SNIFF_BYTES = 1 << 16


def _is_jsonl(path: Path) -> bool:
    """By extension (.csv / .jsonl / .json-lines / .ndjson), else by a first character '{'."""
    name = path.name.lower()
    if name.endswith(".csv"):
        return False
    if name.endswith(_JSONL_SUFFIXES):
        return True
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES).lstrip()
    return head.startswith(b"{")


def _check_not_empty(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if not head.strip() and len(head) < _SNIFF_BYTES:
        raise TraceError(f"{path}: empty file (expected a header row with columns "
                         f"{', '.join(REQUIRED_COLUMNS)}, or JSON lines with those keys)")


def _parse_hash_field(path: Path, text: object, line: int) -> tuple[int, ...]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    try:
        return tuple(int(tok) for tok in str(text).replace("|", " ").split())
    except ValueError:
        raise _bad_value(path, line, "prefix_hashes",
                         "integers separated by spaces or '|'", text) from None


def _read_csv(path: Path, limit: int | None) -> TraceColumns:
    try:
        frame = pd.read_csv(path, nrows=limit, dtype={"prefix_hashes": str},
                            skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: empty file (expected a header row with columns "
                         f"{', '.join(REQUIRED_COLUMNS)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: not a readable CSV file ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]

    def line_of(row: int) -> int:
        return _record_line(path, row, header_lines=1)

    hashes = None
    if "prefix_hashes" in frame.columns:
        column = pa.array(frame["prefix_hashes"], type=pa.string(), from_pandas=True)
        try:
            tokens = pc.utf8_split_whitespace(pc.replace_substring(column, "|", " "))
            hashes = _arrow_hashes(tokens.cast(pa.list_(pa.int64())))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            for row, text in enumerate(frame["prefix_hashes"].tolist()):   # find the bad field
                _parse_hash_field(path, text, line_of(row))
            raise TraceError(f"{path}: column 'prefix_hashes': a value does not fit in a "
                             "64-bit integer") from None
    return columns_from_frame(path, frame, line_of, hashes)


def _arrow_hashes(array: pa.Array | pa.ChunkedArray) -> list[tuple[int, ...]]:
    """A list<int> column as tuples, sliced from one flat list (much faster than to_pylist)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_list(array.type) or not pa.types.is_integer(array.type.value_type):
        raise TypeError("prefix_hashes is not a list of integers")
    # Nulls (missing or empty values) become empty tuples: their offsets span nothing.
    offsets = array.offsets.to_pylist()
    values = array.values.to_pylist()
    return [tuple(values[a:b]) for a, b in zip(offsets, offsets[1:])]


def _read_jsonl(path: Path, limit: int | None) -> TraceColumns:
    def line_of(row: int) -> int:
        return _record_line(path, row, header_lines=0)

    try:
        table = pa_json.read_json(path)
        if limit is not None:
            table = table.slice(0, limit)
        check_columns(path, table.column_names)
        hashes = (_arrow_hashes(table.column("prefix_hashes"))
                  if "prefix_hashes" in table.column_names else None)
        frame = pd.DataFrame({name: table.column(name).to_numpy() for name in REQUIRED_COLUMNS})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, OverflowError):
        # Mixed types or malformed JSON: reread line by line, slowly, to find and name the line.
        return _read_jsonl_slow(path, limit)
    return columns_from_frame(path, frame, line_of, hashes)


def _read_jsonl_slow(path: Path, limit: int | None) -> TraceColumns:
    records, lines = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if limit is not None and len(records) >= limit:
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
    frame = pd.DataFrame.from_records(records)
    hashes = None
    if "prefix_hashes" in frame.columns:
        hashes = []
        for value, number in zip(frame["prefix_hashes"].tolist(), lines):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                hashes.append(())
            elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                                 for v in value):
                hashes.append(tuple(value))
            else:
                raise _bad_value(path, number, "prefix_hashes", "a list of integers", value)
    return columns_from_frame(path, frame, lambda row: lines[row], hashes)


def read_generic(path: Path, limit: int | None = None) -> TraceColumns:
    """CSV with a header row, or JSON lines; columns ``arrival_s, prompt_tokens, output_tokens``.

    Optional ``prefix_hashes``: in CSV one field of integers separated by spaces or ``|``
    (``"1 2 3"`` or ``1|2|3``); in JSON lines a list of integers. An empty value means no hashes.
    ``limit`` reads only the first rows of the file. Blank lines are skipped.
    """
    return _read_jsonl(path, limit) if _is_jsonl(path) else _read_csv(path, limit)


TraceReader = Callable[[Path, int | None], TraceColumns]

TRACE_FORMATS: dict[str, TraceReader] = {
    "generic": read_generic,
}


@dataclass(frozen=True)
class TraceConfig:
    """``workload.trace``: replay requests from a file."""

    path: str
    format: str = "generic"
    time_scale: float = 1.0          # gaps between arrivals are multiplied by this (0.5 = 2x load)
    limit: int | None = None         # use only the first N rows of the file
    prefix_block_tokens: int = 16    # prompt tokens covered by one prefix hash

    def __post_init__(self) -> None:
        require(bool(self.path), "path", "a file path", self.path)
        if self.format not in TRACE_FORMATS:
            hint = did_you_mean(self.format, TRACE_FORMATS)
            expected = "one of " + ", ".join(sorted(TRACE_FORMATS))
            if hint.startswith("did you mean"):
                expected += f" ({hint})"
            require(False, "format", expected, self.format)
        require(self.time_scale > 0 and math.isfinite(self.time_scale), "time_scale",
                "a number > 0", self.time_scale)
        require(self.limit is None or self.limit > 0, "limit", "an integer > 0 or null",
                self.limit)
        require(self.prefix_block_tokens > 0, "prefix_block_tokens", "an integer > 0",
                self.prefix_block_tokens)


def load_trace(cfg: TraceConfig, base_dir: Path | None = None,
               source: str | None = None) -> TraceColumns:
    """Read ``cfg.path`` (relative to ``base_dir``) and return it sorted by arrival and time-scaled.

    Rows out of arrival order are sorted stably (rows with equal arrival keep file order).
    ``time_scale`` multiplies every gap between consecutive arrivals; the first arrival stays put.
    """
    path = Path(cfg.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        where = f" (workload.trace.path in {source})" if source else ""
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise TraceError(f"{path}: trace {what}{where}")
    _check_not_empty(path)
    columns = TRACE_FORMATS[cfg.format](path, cfg.limit)
    arrivals = columns.arrival_s
    if len(arrivals) > 1 and np.any(arrivals[1:] < arrivals[:-1]):
        columns = columns.take(np.argsort(arrivals, kind="stable"))
    if cfg.time_scale != 1.0:
        first = columns.arrival_s[0]
        columns.arrival_s = first + (columns.arrival_s - first) * cfg.time_scale
    return columns
