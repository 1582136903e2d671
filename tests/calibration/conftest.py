"""Fixtures: a synthetic calibrated profile written the way `llmsim calibrate` writes one."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_calibration import llama_tables

from sim.calibration.build import read_base, write_profile


@pytest.fixture
def synthetic_profile(tmp_path: Path) -> Path:
    """A calibrated a100-80g-sxm copy with llama_tables(), as `llmsim calibrate` writes it."""
    out = tmp_path / "a100-synth.yaml"
    write_profile(out, read_base("a100-80g-sxm"), llama_tables(), dtype="bf16",
                  source="synthetic", environment={"device_name": "test"})
    return out
