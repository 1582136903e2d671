"""Every example scenario validates and runs (scaled down), and its counts add up."""

from pathlib import Path

import pytest
import yaml

from sim import Scenario, simulate

# sweeps and plans (sim/planning) sit next to the scenarios and name theirs under `scenario:`;
# tests/planning runs them
SCENARIOS = sorted(p for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml")
                   if "scenario" not in (yaml.safe_load(p.read_text()) or {}))


def scale_down(path: Path, tmp_path: Path) -> list[str]:
    """Overrides that make the example 120 requests. A replayed trace is not in the repository
    (users download it): such an example replays 120 generated generic rows instead."""
    workload = (yaml.safe_load(path.read_text()) or {}).get("workload") or {}
    if "trace" not in workload:
        return ["workload.num_requests=120"]
    sample = tmp_path / "trace.csv"
    sample.write_text("arrival_s,prompt_tokens,output_tokens,prefix_hashes\n" + "".join(
        f"{i * 0.1:.1f},{300 + 7 * i},{20 + i % 30},0 {i % 5 + 1}\n" for i in range(150)))
    return [f"workload.trace.path={sample}", "workload.trace.format=generic",
            "workload.trace.limit=120"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_example_scenario_runs(path, tmp_path):
    scenario = Scenario.from_yaml(path, scale_down(path, tmp_path)
                                  + ["simulation.check_invariants=true"])
    result = simulate(scenario)
    s = result.summary
    assert s["requests_total"] == 120
    assert s["requests_completed"] + s["requests_rejected"] + s["requests_running"] == 120
    assert s["requests_completed"] > 0
    assert s["energy_j"] > 0 and s["cost_usd"] > 0
