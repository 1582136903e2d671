"""Columnar record buffers: rows gathered as tuples, moved in blocks into typed numpy columns."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_BLOCK_ROWS = 1024     # rows kept as Python tuples before they move into the columns


class ColumnBuffer:
    """Append rows (tuples in schema order); read them as columns at the end, or hand them to a
    ``sink`` block by block.

    A row costs one list append; every ``_BLOCK_ROWS`` rows are transposed into the typed
    columns, so memory stays ~8 bytes per value. Without a sink the columns grow by doubling;
    with one, each full ``capacity`` of rows goes to the sink and the columns are reused.
    Values must be numbers exactly representable as doubles (integers below 2**53)."""

    def __init__(self, schema: dict[str, str], capacity: int = 1024,
                 sink: Callable[[dict[str, np.ndarray]], None] | None = None):
        self.schema = schema
        self._cols = {name: np.empty(capacity, dtype=dtype) for name, dtype in schema.items()}
        self._n = 0                     # rows in the columns
        self._rows: list[tuple] = []    # rows not yet in the columns
        # with a sink, every full capacity of rows is handed to it and the columns start over:
        # memory stays bounded however long the run (see :meth:`drain`)
        self._sink = sink
        self.rows_drained = 0

    def append(self, row: tuple) -> None:
        """Append one row given in schema order."""
        rows = self._rows
        rows.append(row)
        if len(rows) >= _BLOCK_ROWS:
            self._flush()

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        n, size = self._n, len(rows)
        cap = len(next(iter(self._cols.values())))
        if self._sink is not None and n + size > cap:
            self._hand_over()
            n = 0
        if n + size > cap:
            new_cap = max(2 * cap, n + size)
            for name, col in self._cols.items():
                grown = np.empty(new_cap, dtype=col.dtype)
                grown[:n] = col[:n]
                self._cols[name] = grown
        # one pass over the rows (each is touched once, while still in the CPU cache), as
        # doubles: exact for the integers of these tables (all < 2**53)
        block = np.array(rows, dtype=np.float64)
        for j, col in enumerate(self._cols.values()):
            col[n:n + size] = block[:, j]
        self._n = n + size

    def drain(self) -> None:
        """Hand every row gathered so far to the sink (the last, partial block of a run)."""
        self._flush()
        self._hand_over()

    def _hand_over(self) -> None:
        if self._n:
            self._sink({name: col[: self._n] for name, col in self._cols.items()})
            self.rows_drained += self._n
            self._n = 0

    def __len__(self) -> int:
        return self.rows_drained + self._n + len(self._rows)

    def column(self, name: str) -> np.ndarray:
        self._flush()
        return self._cols[name][: self._n]

    def columns(self) -> dict[str, np.ndarray]:
        """Every column, as views (rows not drained to a sink)."""
        self._flush()
        return {name: col[: self._n] for name, col in self._cols.items()}
