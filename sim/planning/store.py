"""Keyed run results: one small Parquet file per finished run, read back as one table.

A store named ``results`` in ``DIR`` (a sweep's; a plan has ``probes``, ``clusters`` and
``what_if``) is laid out as::

    DIR/results/<key>.parquet    one row, the run's flattened summary, written as the run finishes
    DIR/results.parquet          every row, written once when the sweep (or plan) finishes

A finished run writes its own file and touches no other, so a sweep of N runs writes N rows, not
the N^2 / 2 that rewriting one growing file per run (Parquet cannot be appended to) would.
Each file is written to a temporary file in the same folder, flushed to disk, then
``os.replace``-d into place: a reader, or a sweep killed at any instant (even by SIGKILL), sees a
whole file or none, never half of one, and a finished run is never lost once its file is in.
Runs whose file is there are skipped, which makes a re-run of a killed sweep finish the rest.
Temporary files of writers that died mid-write (their pid is gone) are removed on opening.

The per-run folder is the truth, the combined file a copy for users: :func:`read_results` reads
the folder when there is one (a sweep may still be adding to it), else the combined file (a
folder written before per-run files; opening a store moves its rows into per-run files). Two
commands sharing a folder write different files, so neither drops the other's rows (the same run
twice is the same row but for ``wall_time_s``); the combined file is written under a lock from
the folder's files, so the last one written holds every row. Rows are sorted by ``run`` (then
``key``), lead columns first and the others sorted, so the content depends neither on the order
in which runs finished nor on the backend.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sim.metrics.result import prepare_output_dir, read_parquet
from sim.planning.runs import LEAD_COLUMNS


def rows_dir(path: str | Path) -> Path:
    """The folder of per-run files beside the combined file ``path``: DIR/results.parquet ->
    DIR/results/."""
    path = Path(path)
    return path.with_name(path.stem)


def has_results(path: str | Path) -> bool:
    """Whether the combined file ``path`` or its folder holds at least one run."""
    folder = rows_dir(path)
    return Path(path).is_file() or (folder.is_dir() and any(folder.glob("*.parquet")))


def read_results(path: str | Path) -> pd.DataFrame:
    """All rows of the store whose combined file is ``path`` (``DIR/results.parquet``), from its
    per-run files if there are any (a running sweep keeps adding to them), else from ``path``.
    Each file is read in one ``open``; a damaged one is a one-line ResultError naming it."""
    folder = rows_dir(path)
    if folder.is_dir() and any(folder.glob("*.parquet")):
        return _read_folder(folder)
    return read_parquet(path)


def _read_folder(folder: Path) -> pd.DataFrame:
    return combine([read_parquet(f) for f in sorted(folder.glob("*.parquet"))])


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of stored rows: sorted by ``run`` then ``key``, lead columns first and the
    others sorted, as each stored frame is.

    The lead columns are not written down anywhere, but every frame starts with them, so they
    lie within the prefix that all frames share; and any column after that prefix sorts after
    the prefix's sorted part (in its own frame it came after them). So prefix + the rest sorted
    is the lead + the rest sorted."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    prefix = list(frames[0].columns)
    for f in frames[1:]:
        n = 0
        for a, b in zip(prefix, f.columns):
            if a != b:
                break
            n += 1
        prefix = prefix[:n]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    rest = sorted(c for c in frame.columns if c not in prefix)
    frame = frame.sort_values(["run", "key"], kind="stable").reset_index(drop=True)
    return frame[prefix + rest]


class ResultsStore:
    """The finished runs of one sweep (or one phase of a plan), keyed by ``run_key``.

    ``path`` is the combined file (``DIR/results.parquet``); runs go to ``DIR/results/``.
    """

    def __init__(self, path: str | Path, lead: tuple[str, ...] = ()):
        self.path = Path(path)
        self.rows_dir = rows_dir(self.path)
        self.lead = LEAD_COLUMNS + tuple(c for c in lead if c not in LEAD_COLUMNS)
        prepare_output_dir(self.rows_dir)
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._remove_stale_temporaries()
        self._rows: dict[str, pd.DataFrame] = {}      # key -> its one-row frame, as stored
        for file in sorted(self.rows_dir.glob("*.parquet")):
            self._load(file)
        self._adopt_combined_file()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers that were killed mid-write (their pid is gone)."""
        for tmp in [*self.path.parent.glob(f".{self.path.name}.*.tmp"),
                    *self.rows_dir.glob(".*.tmp")]:
            try:
                os.kill(int(tmp.name.rsplit(".", 2)[-2]), 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except (ValueError, PermissionError):
                pass

    def _load(self, file: Path) -> None:
        frame = read_parquet(file)
        if len(frame):
            self._rows[str(frame["key"].iloc[0])] = frame

    def _adopt_combined_file(self) -> None:
        """A combined file written before runs had files of their own: its rows become
        per-run files (once), so that the folder holds every run from now on."""
        if self._rows or not self.path.is_file():
            return
        combined = read_results(self.path)
        for i in range(len(combined)):
            self._write_row(combined.iloc[[i]])

    # -- reading -------------------------------------------------------------------------------
    @property
    def keys(self) -> set[str]:
        return set(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """Every row this store knows of, in the order :func:`read_results` gives."""
        return combine(list(self._rows.values()))

    def row(self, key: str) -> dict | None:
        hit = self._rows.get(key)
        return None if hit is None else hit.iloc[0].to_dict()

    # -- writing -------------------------------------------------------------------------------
    def add(self, row: dict) -> bool:
        """Store ``row`` unless its key is there already; returns whether it was written."""
        key = row["key"]
        if key in self._rows:
            return False
        file = self._file(key)
        if file.is_file():             # another command sharing the folder finished it
            self._load(file)
            return False
        frame = pd.DataFrame([row])
        lead = [c for c in self.lead if c in frame.columns]
        self._write_row(frame[lead + sorted(c for c in frame.columns if c not in lead)])
        return True

    def _file(self, key: str) -> Path:
        if not re.fullmatch(r"[\w-]+", key):
            raise ValueError(f"run key {key!r} is not a plain file name")
        return self.rows_dir / f"{key}.parquet"

    def _write_row(self, frame: pd.DataFrame) -> None:
        data = frame.to_parquet(index=False)
        key = str(frame["key"].iloc[0])
        _write_atomically(self._file(key), data)
        # kept as a reader of the file would see it
        self._rows[key] = pd.read_parquet(io.BytesIO(data))

    def write_combined(self) -> Path:
        """Write ``DIR/results.parquet`` from the per-run files (all of them: another command
        may share the folder) and return its path. The lock makes the last file written also
        the last one read from the folder, so it holds every run."""
        with self._locked():
            _write_atomically(self.path, _read_folder(self.rows_dir).to_parquet(index=False))
        return self.path

    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path`` via a temporary file in the same folder, flushed, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)          # the rename itself survives a crash
    finally:
        os.close(dir_fd)
