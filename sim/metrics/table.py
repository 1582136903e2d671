"""A request table's columns, read as numpy arrays wherever the table lives.

The summary (``sim.metrics.summary``) reads a run's request table column by column, never the
whole table at once, so that it works the same on the rows a run kept in memory, on a Parquet
file a long run streamed to disk (read a column at a time: memory bounded by a few columns), and
on a pandas frame (a saved run read back). Numeric columns come back as numpy arrays, text
columns (``state``, ``reject_reason``, ``slo_class``, ``abort_reason``) as codes plus the names
the codes index. Every source yields rows in request-id order, so sums and means come out
bit-identical whichever source a summary read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

# columns computed from the recorded ones (the same formulas for every source)
DERIVED = ("ttft_s", "e2e_s", "queue_s", "recomputed_tokens", "tpot_s")
TEXT = ("state", "reject_reason", "slo_class", "abort_reason")


def derive(column: Callable[[str], np.ndarray], name: str) -> np.ndarray:
    """One derived column from the recorded ones (``column(name)`` reads a recorded column)."""
    if name == "ttft_s":
        return column("first_token_s") - column("arrival_s")
    if name == "e2e_s":
        return column("finish_s") - column("arrival_s")
    if name == "queue_s":
        return column("first_scheduled_s") - column("arrival_s")
    if name == "recomputed_tokens":
        # prefill work beyond the uncached prompt: recomputation after preemption
        extra = column("prefill_tokens_computed") - column("prompt_tokens") \
            + column("cached_prompt_tokens")
        return np.maximum(extra, 0)
    if name == "tpot_s":
        decoded = column("output_generated") - 1
        steps = np.where(decoded > 0, decoded, 1)
        return np.where(decoded > 0, (column("finish_s") - column("first_token_s")) / steps,
                        math.nan)
    raise KeyError(name)


class Columns:
    """A request table, column by column: ``numeric(name)`` and ``text(name)`` (codes, names);
    ``len()`` rows. Build one with :meth:`from_arrays`, :meth:`from_frame` or
    :meth:`from_parquet`."""

    def __init__(self, num_rows: int, numeric: Callable[[str], np.ndarray],
                 text: Callable[[str], tuple[np.ndarray, list[str]]]):
        self._n = num_rows
        self._numeric, self._text = numeric, text

    def __len__(self) -> int:
        return self._n

    def numeric(self, name: str) -> np.ndarray:
        return self._numeric(name)

    def text(self, name: str) -> tuple[np.ndarray, list[str]]:
        return self._text(name)

    def mask(self, name: str, values: Callable[[str], bool] | str) -> np.ndarray:
        """Rows whose text column ``name`` is ``values`` (a name, or a predicate on names)."""
        codes, names = self.text(name)
        test = (lambda v: v == values) if isinstance(values, str) else values
        chosen = [i for i, v in enumerate(names) if test(v)]
        if not chosen:
            return np.zeros(len(codes), dtype=bool)
        if len(chosen) == 1:
            return codes == chosen[0]
        return np.isin(codes, chosen)

    # -- sources -----------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray],
                    texts: dict[str, tuple[np.ndarray, list[str]]]) -> "Columns":
        """Recorded columns already in request-id order, text columns as (codes, names)."""
        n = len(next(iter(arrays.values()))) if arrays else 0
        cache: dict[str, np.ndarray] = {}

        def numeric(name: str) -> np.ndarray:
            if name in arrays:
                return arrays[name]
            if name not in cache:
                cache[name] = derive(numeric, name)
            return cache[name]

        return cls(n, numeric, texts.__getitem__)

    @classmethod
    def from_frame(cls, frame) -> "Columns":
        """A request table as ``Result.requests`` holds it (a pandas DataFrame)."""
        import pandas as pd

        def text(name: str) -> tuple[np.ndarray, list[str]]:
            cat = pd.Categorical(frame[name].astype(object).fillna(""))
            return np.asarray(cat.codes), [str(c) for c in cat.categories]

        return cls(len(frame), lambda name: frame[name].to_numpy(), text)

    @classmethod
    def from_parquet(cls, paths: Path | list[Path]) -> "Columns":
        """A request table streamed to ``paths`` (one file, or a partitioned run's parts; rows
        in completion order), read a column at a time and put in request-id order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sources = [pq.ParquetFile(p) for p in (paths if isinstance(paths, list) else [paths])]
        n = sum(source.metadata.num_rows for source in sources)
        order: list[np.ndarray] = []

        def read(name: str):
            return pa.chunked_array([chunk for source in sources
                                     for chunk in source.read(columns=[name]).column(0).chunks],
                                    type=sources[0].schema_arrow.field(name).type)

        def in_id_order(values: np.ndarray) -> np.ndarray:
            if not order:
                order.append(np.argsort(read("request_id").to_numpy(), kind="stable"))
            return values[order[0]]

        def numeric(name: str) -> np.ndarray:
            return in_id_order(read(name).to_numpy())

        def text(name: str) -> tuple[np.ndarray, list[str]]:
            chunked = read(name).dictionary_encode().combine_chunks()
            codes = chunked.indices.to_numpy(zero_copy_only=False)
            return in_id_order(codes), [str(v) for v in chunked.dictionary.to_pylist()]

        return cls(n, numeric, text)
