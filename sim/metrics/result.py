"""Result of a simulation: request and iteration tables, a summary, the resolved scenario."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml


@dataclass
class Result:
    requests: pd.DataFrame
    iterations: pd.DataFrame
    summary: dict
    scenario: dict

    def save(self, out_dir: str | Path) -> Path:
        """Write summary.json, requests.parquet, iterations.parquet and scenario.yaml."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(_jsonable(self.summary), indent=2) + "\n")
        self.requests.to_parquet(out / "requests.parquet", index=False)
        self.iterations.to_parquet(out / "iterations.parquet", index=False)
        (out / "scenario.yaml").write_text(yaml.safe_dump(self.scenario, sort_keys=False))
        return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
