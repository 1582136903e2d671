"""Columnar record buffers: rows gathered as tuples, moved in blocks into typed numpy columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

_BLOCK_ROWS = 1024     # rows kept as Python tuples before they move into the columns


class ColumnBuffer:
    """Append rows (tuples in schema order) and become a DataFrame once.

    A row costs one list append; every ``_BLOCK_ROWS`` rows are transposed into the typed
    columns (grown by doubling), so memory stays ~8 bytes per value however long the run.
    Values must be numbers exactly representable as doubles (integers below 2**53)."""

    def __init__(self, schema: dict[str, str], capacity: int = 1024):
        self.schema = schema
        self._cols = {name: np.empty(capacity, dtype=dtype) for name, dtype in schema.items()}
        self._n = 0                     # rows in the columns
        self._rows: list[tuple] = []    # rows not yet in the columns

    def __len__(self) -> int:
        return self._n + len(self._rows)

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

    def column(self, name: str) -> np.ndarray:
        self._flush()
        return self._cols[name][: self._n]

    def to_frame(self) -> pd.DataFrame:
        self._flush()
        return pd.DataFrame({name: col[: self._n] for name, col in self._cols.items()})
