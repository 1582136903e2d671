"""Columnar request data: :class:`IdLists` (ragged integer lists) and :class:`TraceColumns`.

A trace of ten million requests is a handful of numpy arrays, never ten million Python objects:
even the per-request prefix ids are one flat ``int64`` array plus offsets, the layout Arrow uses
for a ``list<int64>`` column (a Mooncake file's ``hash_ids`` load into it without a Python loop).
Row ``i`` becomes a Python tuple only when a :class:`~sim.workload.Request` is made for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np


class IdLists:
    """Ragged lists of int64: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    __slots__ = ("offsets", "values")

    def __init__(self, offsets: np.ndarray, values: np.ndarray):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.int64)
        if len(self.offsets) == 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.values):
            raise ValueError("offsets must start at 0 and end at len(values)")

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_lists(cls, rows: Iterable[Sequence[int] | None]) -> IdLists:
        """From Python sequences (None = an empty row)."""
        rows = [() if r is None else r for r in rows]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((v for r in rows for v in r), dtype=np.int64, count=int(offsets[-1]))
        return cls(offsets, values)

    @classmethod
    def from_segments(cls, values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> IdLists:
        """Row ``i`` = ``values[starts[i]:starts[i] + lengths[i]]`` (a vectorised gather)."""
        starts = np.asarray(starts, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            return cls(offsets, np.zeros(0, dtype=np.int64))
        # index of element j of row i = starts[i] + j; built as a repeat plus a running count
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
        return cls(offsets, np.asarray(values, dtype=np.int64)[index])

    @classmethod
    def concat(cls, parts: Sequence[IdLists]) -> IdLists:
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += len(p.values)
        return cls(np.concatenate(offsets), np.concatenate([p.values for p in parts]
                                                           or [np.zeros(0, np.int64)]))

    # -- access ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> tuple[int, ...]:
        return tuple(self.values[self.offsets[i]:self.offsets[i + 1]].tolist())

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self, start: int, stop: int) -> list[tuple[int, ...]]:
        """Rows ``start:stop`` as tuples, converted in one ``tolist`` call."""
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        flat = self.values[a:b].tolist()
        bounds = (self.offsets[start:stop + 1] - a).tolist()
        return [tuple(flat[x:y]) for x, y in zip(bounds, bounds[1:])]

    def tolist(self) -> list[tuple[int, ...]]:
        return self.rows(0, len(self))

    # -- transformations -------------------------------------------------------------------------
    def take(self, index: np.ndarray) -> IdLists:
        index = np.asarray(index, dtype=np.int64)
        return IdLists.from_segments(self.values, self.offsets[:-1][index],
                                     self.lengths[index])

    def truncate(self, max_lengths: np.ndarray) -> IdLists:
        """Each row cut to at most ``max_lengths[i]`` ids (its prefix is kept)."""
        lengths = np.minimum(self.lengths, max_lengths)
        if np.array_equal(lengths, self.lengths):
            return self
        return IdLists.from_segments(self.values, self.offsets[:-1], lengths)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdLists):
            return NotImplemented
        return np.array_equal(self.offsets, other.offsets) and \
            np.array_equal(self.values, other.values)

    __hash__ = None   # mutable arrays inside

    def __repr__(self) -> str:
        head = self.rows(0, min(len(self), 3))
        return f"IdLists({len(self)} rows, {len(self.values)} ids: {head}{'...' if len(self) > 3 else ''})"


@dataclass
class TraceColumns:
    """A trace as columns: one entry per request, all the same length.

    ``prefix_block_tokens`` is the prompt tokens one prefix id covers when the format says so
    (Mooncake: 512), else None. ``has_timestamps`` is False for formats without arrival times
    (ShareGPT): their ``arrival_s`` is all zeros and the scenario's arrival process replaces it.
    ``session`` (int64, -1 = none) groups the turns of one conversation.
    """

    arrival_s: np.ndarray                          # float64 seconds
    prompt_tokens: np.ndarray                      # int64, >= 1
    output_tokens: np.ndarray                      # int64, >= 1
    prefix_hashes: IdLists | None = None
    session: np.ndarray | None = None
    prefix_block_tokens: int | None = None
    has_timestamps: bool = True
    format: str | None = None                      # the TRACE_FORMATS name it was read as

    def __post_init__(self) -> None:
        if self.prefix_hashes is not None and not isinstance(self.prefix_hashes, IdLists):
            self.prefix_hashes = IdLists.from_lists(self.prefix_hashes)

    def __len__(self) -> int:
        return len(self.arrival_s)

    def take(self, index: np.ndarray) -> TraceColumns:
        """The rows at ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self, arrival_s=self.arrival_s[index], prompt_tokens=self.prompt_tokens[index],
            output_tokens=self.output_tokens[index],
            prefix_hashes=None if self.prefix_hashes is None else self.prefix_hashes.take(index),
            session=None if self.session is None else self.session[index])
