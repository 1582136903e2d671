"""Result of a simulation: request and iteration tables, a summary, the resolved scenario."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import yaml

from sim.errors import OutputError, ResultError


def prepare_output_dir(path: str | Path) -> Path:
    """``path`` as a folder that can be written, created if needed; an OutputError naming it if
    not (a file is there or above it, no permission). Called before a simulation runs."""
    path = Path(path)
    for part in [path, *path.parents]:
        if part.exists() and not part.is_dir():
            where = "is a file" if part == path else f"is below the file {part}"
            raise OutputError(f"{path}: cannot write results there: it {where}; expected a "
                              "folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output folder: "
                          f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise OutputError(f"{path}: cannot write results there: no permission")
    return path


def prepare_output_file(path: str | Path) -> Path:
    """``path`` as a file that can be written (its folder created); OutputError if not."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name")
    prepare_output_dir(path.parent if str(path.parent) else Path("."))
    return path


def _damaged(path: Path, exc: BaseException) -> ResultError:
    reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())[:160]
    return ResultError(f"{path}: cannot read this result file ({type(exc).__name__}: {reason}); "
                       "was it written by llmsim, and completely?")


def read_parquet(path: str | Path):
    """A result table (a pandas DataFrame), read in one ``open`` (a sweep may be replacing it),
    or a ResultError."""
    import io

    import pandas as pd
    import pyarrow

    path = Path(path)
    try:
        return pd.read_parquet(io.BytesIO(path.read_bytes()))
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise _damaged(path, exc) from None


def safe_name(name: str) -> str:
    """A scenario name as one folder name: no separators, no '..', no leading dot."""
    cleaned = re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", name)).lstrip(".")
    return cleaned or "scenario"


class Result:
    """A run's request and iteration tables (pandas DataFrames, built on first access), its
    summary and its resolved scenario. A streamed run's tables stay in their Parquet files
    until read; ``save`` moves them to the output folder."""

    def __init__(self, requests=None, iterations=None, summary: dict | None = None,
                 scenario: dict | None = None, *, load_requests=None, load_iterations=None,
                 files: dict[str, Path] | None = None, stream_dir: Path | None = None):
        self._requests, self._iterations = requests, iterations
        self._load_requests, self._load_iterations = load_requests, load_iterations
        self.summary = summary if summary is not None else {}
        self.scenario = scenario if scenario is not None else {}
        # table name -> its Parquet files (streamed runs: one; partitioned runs: one a part)
        self._files = {name: paths if isinstance(paths, list) else [paths]
                       for name, paths in (files or {}).items()}
        self._cleanup = weakref.finalize(self, shutil.rmtree, stream_dir, True) \
            if stream_dir is not None else None

    @classmethod
    def of(cls, recorder, summary: dict, scenario: dict) -> "Result":
        """The result of a finished run, its tables read from ``recorder`` when first asked."""
        files = {}
        if recorder.stream_dir is not None:
            files = {name: recorder.stream_dir / f"{name}.parquet"
                     for name in ("requests", "iterations")}
        result = cls(summary=summary, scenario=scenario, load_requests=recorder.requests_frame,
                     load_iterations=recorder.iterations_frame, files=files,
                     stream_dir=recorder.stream_dir)
        if not files:
            result._write_tables = recorder.write_tables
        return result

    _write_tables = None    # writes both tables from the run's columns, without pandas
    # an autoscaled run's fleet transitions: (time_s, replica, state) with state off,
    # provisioning, up or draining (sim/cluster/autoscaler.py)
    fleet_events: list[tuple[float, int, str]] | None = None

    @property
    def fleet(self):
        """The fleet transitions as a DataFrame (None without an autoscaler)."""
        if self.fleet_events is None:
            return None
        import pandas as pd

        return pd.DataFrame(self.fleet_events, columns=["time_s", "replica", "state"])

    @property
    def requests(self):
        if self._requests is None:
            if "requests" in self._files:
                from sim.metrics.records import normalise_requests
                self._requests = normalise_requests(self._read("requests"))
            else:
                self._requests = self._load_requests()
        return self._requests

    def _read(self, name: str):
        import pandas as pd

        parts = [read_parquet(p) for p in self._files[name]]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    @requests.setter
    def requests(self, frame) -> None:      # saved as given from now on
        self._requests = frame
        self._files.pop("requests", None)
        self._write_tables = None

    @property
    def iterations(self):
        if self._iterations is None:
            if "iterations" in self._files:
                frame = self._read("iterations")
                if len(self._files["iterations"]) > 1:      # parts: in time order
                    frame = frame.sort_values(["start_s", "replica"], kind="stable",
                                              ignore_index=True)
                self._iterations = frame
            else:
                self._iterations = self._load_iterations()
        return self._iterations

    @iterations.setter
    def iterations(self, frame) -> None:
        self._iterations = frame
        self._files.pop("iterations", None)
        self._write_tables = None

    def save(self, out_dir: str | Path) -> Path:
        """Write summary.json, requests.parquet, iterations.parquet (and fleet.parquet for an
        autoscaled run) and scenario.yaml: into a temporary folder beside ``out_dir`` first,
        then moved into it, so a save that fails leaves ``out_dir`` as it was, never a mix of
        two runs' files."""
        out = prepare_output_dir(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out))
        try:
            (staging / "summary.json").write_text(
                json.dumps(jsonable(self.summary), indent=2) + "\n")
            if self._write_tables is not None:     # from the run's columns
                self._write_tables(staging)
            for name in ("requests", "iterations") if self._write_tables is None else ():
                target = staging / f"{name}.parquet"
                if name in self._files:
                    _concat_files(self._files[name], target)    # streamed: already written
                else:
                    _write_table(getattr(self, name), target)
            if self.fleet_events is not None:
                _write_table(self.fleet, staging / "fleet.parquet")
            (staging / "scenario.yaml").write_text(yaml.safe_dump(self.scenario, sort_keys=False))
            for item in staging.iterdir():
                os.replace(item, out / item.name)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write results: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out


def _write_table(frame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _concat_files(parts: list[Path], path: Path) -> None:
    """Parquet files of one schema as one file, a row group at a time (memory: one group)."""
    if len(parts) == 1:
        shutil.copyfile(parts[0], path)
        return
    import pyarrow.parquet as pq

    sources = [pq.ParquetFile(p) for p in parts]
    with pq.ParquetWriter(path, sources[0].schema_arrow) as writer:
        for source in sources:
            for group in range(source.num_row_groups):
                writer.write_table(source.read_row_group(group))


def jsonable(value):
    """``value`` for JSON: dicts, lists and tuples throughout, numpy scalars as Python numbers,
    NaN and infinities as null (JSON has none)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
