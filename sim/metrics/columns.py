"""Columnar record buffers: one typed numpy array per field, grown by doubling."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ColumnBuffer:
    """Append rows (or blocks of rows) into typed numpy columns; become a DataFrame once."""

    def __init__(self, schema: dict[str, str], capacity: int = 1024):
        self.schema = schema
        self._cols = {name: np.empty(capacity, dtype=dtype) for name, dtype in schema.items()}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _reserve(self, extra: int) -> None:
        cap = len(next(iter(self._cols.values())))
        if self._n + extra <= cap:
            return
        new_cap = max(2 * cap, self._n + extra)
        for name, col in self._cols.items():
            grown = np.empty(new_cap, dtype=col.dtype)
            grown[: self._n] = col[: self._n]
            self._cols[name] = grown

    def append(self, row: dict) -> None:
        self._reserve(1)
        n = self._n
        cols = self._cols
        for name, value in row.items():
            cols[name][n] = value
        self._n = n + 1

    def append_values(self, values: tuple) -> None:
        """Append one row given in schema order (the fast path for hot loops)."""
        self._reserve(1)
        n = self._n
        for col, value in zip(self._cols.values(), values):
            col[n] = value
        self._n = n + 1

    def extend(self, block: dict) -> None:
        """Append several rows given as equal-length arrays (or scalars broadcast) per column."""
        size = max((len(v) for v in block.values() if np.ndim(v)), default=1)
        self._reserve(size)
        n = self._n
        for name, values in block.items():
            self._cols[name][n:n + size] = values
        self._n = n + size

    def column(self, name: str) -> np.ndarray:
        return self._cols[name][: self._n]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: col[: self._n] for name, col in self._cols.items()})
