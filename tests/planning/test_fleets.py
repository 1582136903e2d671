"""``llmsim plan`` with ``fleets``: fixed against autoscaled fleets on a day of traffic."""

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.planning import load_plan, make_backend, run_plan

# a short "day": the rate swings 4:1 over 10 minutes
DAY = {
    "name": "day", "seed": 3, "model": "llama-3.1-8b", "hardware": "h100-sxm",
    "cluster": {"replicas": 1, "router": "least-outstanding"},
    "scheduler": {"name": "fcfs", "max_num_seqs": 16, "max_batched_tokens": 2048},
    "workload": {"arrivals": {"kind": "diurnal", "mean_rps": 12, "peak_to_trough": 4,
                              "period_s": 600, "phase": 0.75},
                 "num_requests": 7200,
                 "prompt_tokens": {"dist": "uniform", "min": 100, "max": 1500},
                 "output_tokens": {"dist": "uniform", "min": 20, "max": 300}},
    "simulation": {"iteration_rows": "none"},
}
PLAN = {
    "name": "fleets",
    "slo": {"ttft_s": {"p90": 1.0}, "attainment": {"fraction": 0.95, "ttft_s": 2.0}},
    "seeds": 2,
    "fleets": {"fixed": [1, 2],
               "autoscaler": [{"policy": "queue", "target": 12, "min_replicas": 1,
                               "max_replicas": 4, "interval_s": 5, "provisioning_s": 15,
                               "scale_down_cooldown_s": 30}]},
}


def write(tmp_path: Path, **changes) -> Path:
    (tmp_path / "day.yaml").write_text(yaml.safe_dump(DAY))
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"scenario": "day.yaml", **PLAN, **changes}))
    return path


def test_fleets_are_compared_and_the_cheapest_meeting_one_recommended(tmp_path):
    plan = load_plan(write(tmp_path))
    out = run_plan(plan, tmp_path / "out", make_backend("local", 1))
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["kind"] == "fleets"
    by = {f["fleet"]: f for f in out["fleets"]}
    one, two = by["fixed x1"], by["fixed x2"]
    auto = next(f for f in out["fleets"] if f["kind"] == "autoscaled")
    # one replica cannot hold the peak; two can; the autoscaled fleet pays for what it uses
    assert not one["meets"] and two["meets"]
    assert 0 < auto["replica_hours"]["mean"] < 4 * 600 / 3600
    assert one["cost_usd"]["mean"] < auto["cost_usd"]["mean"]
    meeting = [f for f in out["fleets"] if f["meets"]]
    assert out["recommendation"] == min(meeting, key=lambda f: f["cost_usd"]["mean"])["fleet"]
    assert all(f["seeds"] == 2 and f["cost_usd"]["n"] == 2 for f in out["fleets"])
    # the CLI prints the table and the answer
    assert main(["plan", str(tmp_path / "plan.yaml"), "-o", str(tmp_path / "out"),
                 "--no-progress", "--workers", "1"]) == 0


@pytest.mark.parametrize("changes, words", [
    ({"fleets": {}}, "fleets.fixed"),
    ({"fleets": {"fixed": [0]}}, "fleets.fixed"),
    ({"traffic": {"rate_rps": 5}}, "traffic"),
    ({"fleets": {"autoscaler": [{"policy": "nope"}]}}, "autoscaler.policy"),
])
def test_bad_fleet_plans_are_named(tmp_path, changes, words):
    path = write(tmp_path, **changes)
    with pytest.raises(Exception) as err:
        load_plan(path)
    assert words in str(err.value)
