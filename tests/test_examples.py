"""Every example scenario validates and runs (scaled down), and its counts add up."""

from pathlib import Path

import pytest

from sim import Scenario, simulate

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_scenario_runs(path):
    scenario = Scenario.from_yaml(path, ["workload.num_requests=120",
                                         "simulation.check_invariants=true"])
    result = simulate(scenario)
    s = result.summary
    assert s["requests_total"] == 120
    assert s["requests_completed"] + s["requests_rejected"] + s["requests_running"] == 120
    assert s["requests_completed"] > 0
    assert s["energy_j"] > 0 and s["cost_usd"] > 0
