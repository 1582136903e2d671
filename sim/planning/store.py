"""``results.parquet``: one row per finished run, keyed, written atomically as each run finishes.

Parquet cannot be appended to in place, so each new row rewrites the file: to a temporary file in
the same folder, flushed to disk, then ``os.replace``-d over the old one. A reader (or a sweep
killed at any instant, even by SIGKILL) sees the old file or the new one, never half of one, and
a finished run is never lost once its row is in. A lock file serialises writers, in case two
commands share a folder; the file is re-read under the lock, so neither drops the other's rows.
Rows are kept sorted by ``run`` with a fixed column order, so the content does not depend on the
order in which runs finished (nor on the backend).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sim.planning.runs import LEAD_COLUMNS


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results file that a running sweep may be replacing: in one ``open`` (pyarrow opens
    a path more than once, and could read the footer of one version and the pages of the next).
    A damaged file is a one-line ResultError."""
    from sim.metrics.result import read_parquet

    return read_parquet(path)


class ResultsStore:
    def __init__(self, path: str | Path, lead: tuple[str, ...] = ()):
        self.path = Path(path)
        self.lead = LEAD_COLUMNS + tuple(c for c in lead if c not in LEAD_COLUMNS)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._remove_stale_temporaries()
        self._frame = self._read()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers that were killed mid-write (their pid is gone)."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                os.kill(int(tmp.name.rsplit(".", 2)[-2]), 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except (ValueError, PermissionError):
                pass

    # -- reading -------------------------------------------------------------------------------
    def _read(self) -> pd.DataFrame:
        return read_results(self.path) if self.path.exists() else pd.DataFrame()

    @property
    def keys(self) -> set[str]:
        return set(self._frame["key"]) if len(self._frame) else set()

    def __contains__(self, key: str) -> bool:
        return len(self._frame) > 0 and key in self.keys

    def __len__(self) -> int:
        return len(self._frame)

    def frame(self) -> pd.DataFrame:
        return self._frame.copy()

    def row(self, key: str) -> dict | None:
        if not len(self._frame):
            return None
        hit = self._frame[self._frame["key"] == key]
        return None if hit.empty else hit.iloc[0].to_dict()

    # -- writing -------------------------------------------------------------------------------
    def add(self, row: dict) -> bool:
        """Append ``row`` unless its key is already there; returns whether it was written."""
        with self._locked():
            frame = self._read()
            if len(frame) and row["key"] in set(frame["key"]):
                self._frame = frame
                return False
            new = pd.DataFrame([row])
            frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
            frame = self._canonical(frame)
            self._write(frame)
            self._frame = frame
            return True

    def _canonical(self, frame: pd.DataFrame) -> pd.DataFrame:
        lead = [c for c in self.lead if c in frame.columns]
        rest = sorted(c for c in frame.columns if c not in lead)
        frame = frame.sort_values(["run", "key"], kind="stable").reset_index(drop=True)
        return frame[lead + rest]

    def _write(self, frame: pd.DataFrame) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)      # the rename itself survives a crash
        finally:
            os.close(dir_fd)

    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
