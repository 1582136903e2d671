"""CONTRIBUTING.md's recipes, followed end to end: a toy scheduler, device kind and trace format,
each registered with one line and used by a scenario."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.cost.model import BatchShape, CostModel
from sim.errors import ScenarioError
from sim.hardware.device import DeviceSpec
from sim.scheduling.fcfs import FcfsConfig, FcfsScheduler
from sim.workload.columns import TraceColumns
from sim.workload.formats.common import (COUNT, TIME, check_columns, csv_header, no_rows,
                                         numeric_column, read_csv, record_line)

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = {"arrivals": {"kind": "poisson", "rate_rps": 40}, "num_requests": 60,
            "prompt_tokens": {"dist": "uniform", "min": 50, "max": 400},
            "output_tokens": {"dist": "uniform", "min": 5, "max": 60}}


# -- a scheduler -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TwoAtATimeConfig(FcfsConfig):
    name: str = "two_at_a_time"
    batch_cap: int = 2


class TwoAtATimeScheduler(FcfsScheduler):
    """fcfs that never runs more than ``batch_cap`` requests at once."""

    Config = TwoAtATimeConfig

    def may_admit(self, request, num_cached, num_new) -> bool:
        return len(self.running) < self.config.batch_cap


def test_a_new_scheduler(monkeypatch):
    from sim.scheduling import SCHEDULERS

    monkeypatch.setitem(SCHEDULERS, "two_at_a_time", TwoAtATimeScheduler)   # the one line
    data = {"model": "llama-3.1-8b", "scheduler": {"name": "two_at_a_time", "batch_cap": 2},
            "workload": WORKLOAD}
    result = simulate(Scenario.from_dict(data))
    assert result.summary["requests_completed"] == 60
    assert result.iterations["num_seqs"].max() <= 2
    with pytest.raises(ScenarioError, match="scheduler.batch_capp"):    # its Config validates
        Scenario.from_dict({**data, "scheduler": {"name": "two_at_a_time", "batch_capp": 2}})


# -- a device kind -----------------------------------------------------------------------------
class HalfSpeedAttention(CostModel):
    """A device whose attention runs at half the GPU roofline's speed."""

    def _attention_part(self, shape: BatchShape, decode_context_tokens, work: bool = True):
        seconds, flops, nbytes = super()._attention_part(shape, decode_context_tokens, work)
        return 2 * seconds, flops, nbytes


def test_a_new_device_kind(monkeypatch, tmp_path):
    from sim.cost.factory import COST_MODELS
    from sim.hardware.profiles import DEVICE_KINDS

    monkeypatch.setitem(DEVICE_KINDS, "halfattn", DeviceSpec)          # the two lines
    monkeypatch.setitem(COST_MODELS, "halfattn", HalfSpeedAttention)
    text = (ROOT / "sim" / "data" / "hardware_profiles" / "h100-sxm.yaml").read_text()
    profile = tmp_path / "halfattn-h100.yaml"
    profile.write_text(text.replace("name: h100-sxm", "name: halfattn-h100")
                       .replace("kind: gpu", "kind: halfattn"))
    base = {"model": "llama-3.1-8b", "workload": WORKLOAD}
    slow = simulate(Scenario.from_dict({**base, "hardware": str(profile)}))
    fast = simulate(Scenario.from_dict({**base, "hardware": {"name": "h100-sxm",
                                                             "efficiency": {"model": "fixed"}}}))
    assert slow.summary["requests_completed"] == 60
    assert slow.summary["tpot_s"]["mean"] > fast.summary["tpot_s"]["mean"]


# -- a trace format ----------------------------------------------------------------------------
TOY_REQUIRED = ("t_ms", "n_in", "n_out")


def read_toy(path: Path, cfg, nrows: int | None) -> TraceColumns:
    """A made-up CSV format: milliseconds since the start, prompt and output tokens."""
    check_columns(path, csv_header(path), TOY_REQUIRED, fmt="toy")
    frame = read_csv(path, TOY_REQUIRED, nrows)
    if len(frame) == 0:
        raise no_rows(path)

    def line_of(row: int) -> int:
        return record_line(path, row, header_lines=1)
    return TraceColumns(
        arrival_s=numeric_column(path, frame["t_ms"], "t_ms", TIME, line_of) / 1000.0,
        prompt_tokens=numeric_column(path, frame["n_in"], "n_in", COUNT, line_of),
        output_tokens=numeric_column(path, frame["n_out"], "n_out", COUNT, line_of))


def test_a_new_trace_format(monkeypatch, tmp_path, capsys):
    from sim.cli import main
    from sim.workload.formats import TRACE_FORMATS, TraceFormat

    monkeypatch.setitem(TRACE_FORMATS, "toy", TraceFormat(read_toy, "csv", TOY_REQUIRED))
    trace = tmp_path / "toy.csv"
    rows = [(i * 250, 100 + i, 10 + i % 7) for i in range(40)]
    trace.write_text("t_ms,n_in,n_out\n" + "".join(f"{t},{a},{b}\n" for t, a, b in rows))
    result = simulate(Scenario.from_dict({"model": "llama-3.1-8b",
                                          "workload": {"trace": {"path": str(trace)}}}))
    req = result.requests.sort_values("request_id")
    assert np.allclose(req["arrival_s"], [t / 1000 for t, _, _ in rows])       # detected
    assert req["prompt_tokens"].tolist() == [a for _, a, _ in rows]
    bad = tmp_path / "bad.csv"
    bad.write_text("t_ms,n_in,n_out\n0,10,5\n250,-3,5\n")
    assert main(["trace", "stats", str(bad)]) == 2
    assert "line 3: column 'n_in'" in capsys.readouterr().err
