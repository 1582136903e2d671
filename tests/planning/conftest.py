"""Shared, expensive outputs (computed once per session): the shipped 12-run sweep on the local
pool and a tiny plan, used by the sweep, plan and report tests."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICK_SWEEP = ROOT / "scenarios" / "sweep_quickstart.yaml"


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory) -> Path:
    """The shipped 12-run sweep on the local process pool, through the CLI; its folder."""
    out = tmp_path_factory.mktemp("local")
    assert main(["sweep", str(QUICK_SWEEP), "-o", str(out), "--workers", "2",
                 "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def local_results(local_sweep) -> pd.DataFrame:
    return pd.read_parquet(local_sweep / "results.parquet")


@pytest.fixture(scope="session")
def tiny_plan(tmp_path_factory):
    """A one-candidate plan through the CLI: (plan file, output folder, plan.json)."""
    from test_plan import TINY

    tmp = tmp_path_factory.mktemp("plan")
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    out = tmp / "out"
    assert main(["plan", str(path), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    return path, out, json.loads((out / "plan.json").read_text())
