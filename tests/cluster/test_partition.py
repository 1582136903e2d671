"""Partitioned runs: the replicas split over worker processes (or Ray tasks) give the one-process
results."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.errors import LlmsimError, ScenarioError
from sim.metrics.records import read_requests

ITERATION_FIGURES = ("kv_usage_mean", "batch_size_mean")


def _scenario(*sets: str) -> Scenario:
    return Scenario.from_yaml("scenarios/quickstart.yaml", [
        "workload.num_requests=1500", "cluster.replicas=5", "cluster.router=round-robin",
        "workload.arrivals.rate_rps=30", "scheduler.kv_blocks=400", *sets])


def _same(one, parts) -> None:
    pd.testing.assert_frame_equal(parts.requests, one.requests)
    pd.testing.assert_frame_equal(
        parts.iterations,
        one.iterations.sort_values(["start_s", "replica"], kind="stable", ignore_index=True))
    for key, value in one.summary.items():
        if key == "wall_time_s":
            continue
        if key in ITERATION_FIGURES:
            assert parts.summary[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert parts.summary[key] == value or value != value, key


@pytest.mark.parametrize("sets", [
    ("cluster.router=round-robin",),
    ("cluster.router=random",),
    # requests too long for the model are rejected on arrival and skip the router's turn
    ("cluster.router=round-robin", "workload.prompt_tokens.max=9000",
     "scheduler.max_model_len=4096"),
    # requests still running or not arrived at the horizon
    ("cluster.router=random", "simulation.horizon_s=20"),
])
def test_partitions_give_the_one_process_run(sets):
    one = simulate(_scenario(*sets))
    parts = simulate(_scenario(*sets, "simulation.partitions=2"))
    assert parts.summary["partitions"] == 2
    assert one.summary["preemptions"] > 0        # memory pressure: a varied run
    _same(one, parts)
    if "simulation.horizon_s=20" in sets:
        assert (one.requests["state"] != "completed").any()
    if "scheduler.max_model_len=4096" in sets:
        assert (one.requests["state"] == "rejected").any()


def test_three_partitions_streamed_and_saved(tmp_path):
    one = simulate(_scenario())
    parts = simulate(_scenario("simulation.partitions=3", "simulation.stream_outputs=true"))
    _same(one, parts)
    saved = parts.save(tmp_path / "run")
    pd.testing.assert_frame_equal(read_requests(saved / "requests.parquet"), one.requests)


@pytest.mark.parametrize("sets, field", [
    (("cluster.router=least-outstanding",), "cluster.router"),
    (("cluster.router=session-affinity",), "cluster.router"),
    (("simulation.partitions=6",), "cluster.replicas"),
    (("overload.retry.max_attempts=3", "overload.queue_deadline_s=5"),
     "overload.retry.max_attempts"),
    (("failures=[{kind: replica_down, replica: 0, at_s: 5, duration_s: 5}]",), "failures"),
    (("autoscaler={policy: queue, max_replicas: 6}",), "autoscaler"),
])
def test_runs_that_cannot_be_partitioned_are_refused(sets, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        simulate(_scenario("simulation.partitions=2", *sets))


def test_partitions_on_ray_give_the_one_process_run():
    pytest.importorskip("ray")
    sets = ("cluster.router=random", "simulation.stream_outputs=true")
    one = simulate(_scenario(*sets))
    parts = simulate(_scenario(*sets, "simulation.partitions=2"), backend="ray")
    assert parts.summary["partitions"] == 2
    _same(one, parts)


@pytest.mark.parametrize("backend, address, partitions, message", [
    ("ray", None, 1, "simulation.partitions >= 2"),
    ("local", "10.0.0.1:6379", 2, "--address is for --backend ray"),
    ("slurm", None, 2, "unknown backend 'slurm'"),
])
def test_backend_settings_are_checked(backend, address, partitions, message):
    with pytest.raises(LlmsimError, match=message):
        simulate(_scenario(f"simulation.partitions={partitions}"), backend=backend,
                 address=address)


def test_a_bad_ray_address_is_a_one_line_error():
    pytest.importorskip("ray")
    with pytest.raises(LlmsimError, match="--address not-an-address: no Ray cluster there"):
        simulate(_scenario("simulation.partitions=2"), backend="ray", address="not-an-address")


def test_ray_missing_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)       # as if Ray were not installed
    with pytest.raises(LlmsimError, match=r"pip install 'llmsim\[ray\]'"):
        simulate(_scenario("simulation.partitions=2"), backend="ray")
