"""The sample traces in workloads/samples load with their format detected, and
workloads/make_samples.py still writes exactly them."""

import importlib.util
import warnings
from pathlib import Path

import pytest

from sim.workload import TraceConfig, TraceWarning, load_trace

SAMPLES = Path(__file__).resolve().parents[2] / "workloads"
FILES = sorted((SAMPLES / "samples").iterdir())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_sample_is_detected_and_loads(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceWarning)     # burstgpt: failed rows dropped
        cols = load_trace(TraceConfig(str(path)))
    assert cols.format == path.stem and len(cols) > 0


def test_generator_reproduces_the_samples(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path)
    module.main()
    for path in FILES:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
