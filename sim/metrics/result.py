"""Result of a simulation: request and iteration tables, a summary, the resolved scenario."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
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


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A result table, read in one ``open`` (a sweep may be replacing it), or a ResultError."""
    import io

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


@dataclass
class Result:
    requests: pd.DataFrame
    iterations: pd.DataFrame
    summary: dict
    scenario: dict

    def save(self, out_dir: str | Path) -> Path:
        """Write summary.json, requests.parquet, iterations.parquet and scenario.yaml: into a
        temporary folder beside ``out_dir`` first, then moved into it, so a save that fails
        leaves ``out_dir`` as it was, never a mix of two runs' files."""
        out = prepare_output_dir(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out))
        try:
            (staging / "summary.json").write_text(
                json.dumps(_jsonable(self.summary), indent=2) + "\n")
            self.requests.to_parquet(staging / "requests.parquet", index=False)
            self.iterations.to_parquet(staging / "iterations.parquet", index=False)
            (staging / "scenario.yaml").write_text(yaml.safe_dump(self.scenario, sort_keys=False))
            for item in staging.iterdir():
                os.replace(item, out / item.name)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write results: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
