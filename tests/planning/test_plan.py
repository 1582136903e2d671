"""Plans: the SLO checks, the search pieces, confidence intervals, and a tiny plan end to end
(recommendation with CIs, failure what-if, resuming from stored runs)."""

import json
import math
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.planning import load_plan, make_backend, mean_ci, run_plan
from sim.planning.plan import meets, with_traffic
from sim.planning.plan_config import CandidatesConfig, percentile_of
from sim.planning.stats import t975

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")

TINY = {
    "name": "tiny",
    "scenario": QUICKSTART,
    "traffic": {"rate_rps": 150, "requests_per_replica": 60},
    "slo": {"ttft_s": {"p90": 0.5}, "tpot_s": {"p90": 0.05},
            "attainment": {"fraction": 0.9, "ttft_s": 1.0}},
    "candidates": {"hardware": ["h100-sxm"], "scheduler": ["fcfs"], "max_replicas": 8},
    "seeds": 5,
    "search": {"min_rps": 8, "max_rps": 512, "iterations": 3},
    "what_if": {"spare_replicas": 1},
}


def write_plan(tmp_path: Path, **changes) -> Path:
    data = {**TINY, **changes}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_mean_ci_by_hand():
    est = mean_ci([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)      # t(0.975, 4) = 2.7764451
    assert est.mean == 3 and est.n == 5
    assert est.low == pytest.approx(3 - half) and est.high == pytest.approx(3 + half)
    assert mean_ci([7.0]).low == 7.0 and math.isnan(mean_ci([]).mean)
    # exact quantiles (published tables: 2.776 at 4, 2.042 at 30, 1.984 at 100)
    assert t975(4) == pytest.approx(2.7764, abs=1e-4)
    assert t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t975(100) == pytest.approx(1.9840, abs=1e-4)
    assert t975(31) < t975(30) and t975(10_000) == pytest.approx(1.96, abs=1e-3)


def test_percentile_keys_and_checks():
    assert percentile_of("p90") == 90 and percentile_of("p99.9") == 99.9
    assert percentile_of("q90") is None and percentile_of("p100") is None
    checks = [("ttft_s.p90", 0.5, "<="), ("slo_attainment", 0.9, ">=")]
    row = {"requests_completed": 10, "requests_running": 0, "ttft_s.p90": 0.4,
           "slo_attainment": 0.95}
    assert meets(row, checks)
    assert not meets({**row, "ttft_s.p90": 0.6}, checks)
    assert not meets({**row, "slo_attainment": 0.8}, checks)
    assert not meets({**row, "ttft_s.p90": math.nan}, checks)
    assert not meets({**row, "requests_running": 1}, checks)


def test_allowed_replica_counts():
    any_count = CandidatesConfig(max_replicas=8)
    assert any_count.allowed(3) == 3 and any_count.allowed(9) is None
    assert any_count.neighbour(3, -1) == 2 and any_count.neighbour(1, -1) is None
    listed = CandidatesConfig(replicas=[2, 4, 8], max_replicas=8)
    assert listed.allowed(3) == 4 and listed.allowed(1) == 2 and listed.allowed(9) is None
    assert listed.neighbour(4, +1) == 8 and listed.neighbour(4, -1) == 2


def test_traffic_goes_where_the_workload_takes_it():
    data = {"workload": {"arrivals": {"kind": "poisson", "rate_rps": 1}, "num_requests": 5},
            "failures": [{"kind": "replica_down"}]}
    out = with_traffic(data, 12.5, 300, 3, 9, "p.yaml")
    assert out["workload"]["arrivals"]["rate_rps"] == 12.5
    assert out["workload"]["num_requests"] == 300
    assert out["cluster"]["replicas"] == 3 and out["seed"] == 9 and "failures" not in out
    trace = {"workload": {"trace": {"path": "t.csv", "time_scale": 2.0}}}
    out = with_traffic(trace, 7.0, 100, 1, 0, "p.yaml")
    assert out["workload"]["trace"] == {"path": "t.csv", "target_rate_rps": 7.0, "limit": 100}
    with pytest.raises(ScenarioError, match="workload.arrivals.kind"):
        with_traffic({"workload": {"arrivals": {"kind": "burst"}}}, 1.0, 10, 1, 0, "p.yaml")


@pytest.mark.parametrize("changes, words", [
    ({"slo": {"ttft_s": {"q90": 0.5}}}, "slo.ttft_s.q90: expected a percentile key"),
    ({"slo": {}}, "slo.ttft_s: expected at least one target"),
    ({"seeds": 0}, "seeds: expected an integer in [1, 100]"),
    ({"search": {"min_rps": 8, "max_rps": 4}}, "search.max_rps: expected a number > min_rps"),
    ({"traffic": {"rate_rps": 10, "requests": 5}}, "traffic.requests: unknown key"),
    ({"candidates": {"hardware": ["h100-sxm", "nope"]}}, "hardware"),
])
def test_bad_plans_name_file_and_field(tmp_path, changes, words):
    path = write_plan(tmp_path, **changes)
    with pytest.raises(Exception) as err:
        load_plan(path)
    assert str(err.value).startswith(str(path)) and words in str(err.value)
    assert main(["plan", str(path), "-o", str(tmp_path / "o"), "--no-progress"]) == 2


def test_a_candidate_that_does_not_fit_is_infeasible_not_an_error(tmp_path):
    plan = load_plan(write_plan(tmp_path, set=["model=llama-3.1-70b"],
                                candidates={"hardware": ["h100-sxm"], "tensor_parallel": [1, 4]}))
    tp1, tp4 = plan.candidates
    assert "does not fit" in tp1.infeasible and tp4.infeasible == ""
    assert tp4.usd_per_device_hour > 0


def test_plan_recommends_with_confidence_intervals(tiny_plan):
    _, out, plan = tiny_plan
    rec = plan["recommendation"]
    assert rec["candidate"] == "h100-sxm tp1 fcfs"
    n, (low, high) = rec["replicas"], rec["replicas_ci"]
    assert 1 <= low <= high <= n <= 8
    assert len(rec["replicas_per_seed"]) == 5 and max(rec["replicas_per_seed"]) == n
    rate = rec["max_rate_per_replica"]
    assert rate["n"] == 5 and len(rate["per_seed"]) == 5
    assert rate["low"] <= rate["mean"] <= rate["high"] and min(rate["per_seed"]) >= 8
    assert rec["usd_per_hour"] == pytest.approx(n * 2.99)
    cost = rec["usd_per_million_output_tokens"]
    assert 0 < cost["low"] <= cost["mean"] <= cost["high"]
    for column in ("ttft_s.p90", "tpot_s.p90", "slo_attainment"):
        est = rec["metrics"][column]
        assert est["n"] == 5 and est["low"] <= est["mean"] <= est["high"]
    assert rec["metrics"]["ttft_s.p90"]["mean"] <= 0.5
    assert (out / "recommended" / "requests.parquet").is_file()


def test_plan_what_if_loses_a_replica(tiny_plan):
    _, _, plan = tiny_plan
    rec = plan["recommendation"]
    deployments = rec["what_if"]["deployments"]
    assert [d["replicas"] for d in deployments] == [rec["replicas"], rec["replicas"] + 1]
    for d in deployments:
        assert d["failures"][0]["kind"] == "replica_down"
        assert d["requests_rerouted"]["mean"] > 0
        assert 0 <= d["slo_attainment_during_failures"]["mean"] <= 1
    assert rec["headroom"]["replicas"] == rec["replicas"] + 1


def test_plan_resumes_from_stored_runs(tiny_plan, tmp_path):
    path, out, plan = tiny_plan
    seen = []
    backend = make_backend("local", 1)
    again = run_plan(load_plan(path), out, backend, progress=lambda *a: seen.append(a))
    assert seen == []                    # every probe and cluster run was already stored
    assert json.loads(json.dumps(again, default=str))["recommendation"]["replicas"] == \
        plan["recommendation"]["replicas"]


UNIT = [{"role": "prefill", "replicas": 1, "tensor_parallel": 1},
        {"role": "decode", "replicas": 2, "tensor_parallel": 1}]


def test_topology_candidates_and_their_costs(tmp_path):
    plan = load_plan(write_plan(tmp_path, candidates={
        "hardware": ["h100-sxm"], "tensor_parallel": [1, 2], "pipeline_parallel": [1, 2],
        "router": ["least-outstanding", "prefix-aware"], "pools": [UNIT]}))
    names = [c.name for c in plan.candidates]
    assert len(names) == len(set(names)) == (4 + 1) * 2
    assert "h100-sxm tp2 pp2 fcfs prefix-aware" in names
    assert "h100-sxm 1P(tp1):2D(tp1) fcfs least-outstanding" in names
    ep = load_plan(write_plan(tmp_path, candidates={"expert_parallel": [False, True]}))
    assert [c.name for c in ep.candidates] == ["h100-sxm tp1 no-ep fcfs", "h100-sxm tp1 ep fcfs"]
    assert ep.candidates[1].data["cluster"]["expert_parallel"] is True
    by = {c.name: c for c in plan.candidates}
    assert by["h100-sxm tp2 pp2 fcfs prefix-aware"].devices_per_replica == 4
    unit = by["h100-sxm 1P(tp1):2D(tp1) fcfs least-outstanding"]
    assert unit.devices_per_replica == 3
    assert unit.usd_per_replica_hour == pytest.approx(3 * 2.99)
    # a plan replica of a unit is one copy of each of its pools
    data = with_traffic(unit.data, 10.0, 60, 3, 0, "t")
    assert [p["replicas"] for p in data["cluster"]["pools"]] == [3, 6]


def test_a_plan_searches_disaggregated_units_end_to_end(tmp_path):
    path = write_plan(tmp_path, candidates={"hardware": ["h100-sxm"], "scheduler": ["fcfs"],
                                            "pools": [UNIT], "colocated": False,
                                            "max_replicas": 4},
                      seeds=2, search={"min_rps": 8, "max_rps": 256, "iterations": 2},
                      what_if={"spare_replicas": 0})
    out = tmp_path / "out"
    assert main(["plan", str(path), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    result = json.loads((out / "plan.json").read_text())
    entry, = result["candidates"]
    assert entry["pools"] == UNIT and entry["feasible"]
    assert entry["devices"] == 3 * entry["replicas"]
    assert entry["usd_per_hour"] == pytest.approx(entry["replicas"] * 3 * 2.99)
