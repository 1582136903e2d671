"""Scenario validation: every bad input is a ScenarioError naming the file and the field."""

from pathlib import Path

import pytest
import yaml

from sim.errors import CapacityError, HardwareError, LlmsimError, ModelError, ScenarioError
from sim.scenario import DEFAULT_SCENARIO, Scenario, apply_overrides
from sim.cluster import resolve

BASE = {
    "model": "llama-3.1-8b",
    "workload": {"arrivals": {"kind": "poisson", "rate_rps": 2.0}, "num_requests": 10,
                 "prompt_tokens": {"dist": "fixed", "value": 100},
                 "output_tokens": {"dist": "fixed", "value": 10}},
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def error_for(tmp_path, overrides, data=BASE) -> str:
    path = write(tmp_path, data)
    with pytest.raises(LlmsimError) as exc:
        resolve(Scenario.from_yaml(path, overrides))
    return str(exc.value)


def test_quickstart_parses_with_defaults_filled():
    s = Scenario.from_yaml(DEFAULT_SCENARIO)
    assert s.name == "quickstart" and s.seed == 42
    assert s.cluster.replicas == 2 and s.cluster.router == "least-outstanding"
    assert s.scheduler.max_num_seqs == 256 and s.scheduler.chunked_prefill is True
    assert s.slo.ttft_s == 2.0 and s.slo.e2e_s is None
    # the resolved echo can be parsed back into the same scenario
    again = Scenario.from_dict(s.to_dict())
    assert again == s


@pytest.mark.parametrize("override, field, words", [
    ("scheduler.max_num_seq=3", "scheduler.max_num_seq", "did you mean 'max_num_seqs'"),
    ("cluster.replica=2", "cluster.replica", "did you mean 'replicas'"),
    ("workloads=1", "workloads", "did you mean 'workload'"),
    ("scheduler.max_num_seqs=-1", "scheduler.max_num_seqs", "expected an integer > 0, got -1"),
    ("scheduler.max_num_seqs=many", "scheduler.max_num_seqs", "expected an integer, got 'many'"),
    ("scheduler.max_num_seqs=2.5", "scheduler.max_num_seqs", "expected an integer"),
    ("scheduler.prefix_caching=3", "scheduler.prefix_caching", "true or false"),
    ("scheduler.gpu_memory_utilization=1.5", "scheduler.gpu_memory_utilization", "(0, 1]"),
    ("scheduler.preemption_mode=drop", "scheduler.preemption_mode", "one of recompute, swap"),
    ("scheduler.name=fifo", "scheduler.name", "did you mean 'fcfs'"),
    ("workload.arrivals.rate_rps=0", "workload.arrivals.rate_rps", "> 0"),
    ("workload.arrivals.rate_rps=-3", "workload.arrivals.rate_rps", "> 0"),
    ("workload.num_requests=0", "workload.num_requests", "an integer in [1, 1e+08], got 0"),
    ("cluster.replicas=0", "cluster.replicas", "an integer in [1, 100000], got 0"),
    ("cluster.tensor_parallel=3", "cluster.tensor_parallel", "power of two"),
    ("cluster.replicas=1000000000000", "cluster.replicas", "[1, 100000]"),
    ("cluster.router=fastest", "cluster.router", "round-robin"),
    ("slo.ttft_s=-1", "slo.ttft_s", "> 0"),
    ("simulation.horizon_s=0", "simulation.horizon_s", "> 0"),
    ("seed=-1", "seed", ">= 0"),
])
def test_bad_field_names_file_and_field(tmp_path, override, field, words):
    message = error_for(tmp_path, [override])
    assert message.startswith(f"{tmp_path / 's.yaml'}: {field}: "), message
    assert words in message


def test_missing_required_sections(tmp_path):
    for key in ("model", "workload"):
        data = {k: v for k, v in BASE.items() if k != key}
        assert f"s.yaml: {key}: expected a value (required)" in error_for(tmp_path, [], data)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match="nope.yaml: expected an existing scenario file"):
        Scenario.from_yaml(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "model: llama-3.1-8b\nworkload: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"s.yaml: line \d+: expected valid YAML"):
        Scenario.from_yaml(path)


def test_unknown_model_and_hardware(tmp_path):
    msg = error_for(tmp_path, ["model=llama3-8b"])
    assert "s.yaml: model:" in msg and "llama-3.1-8b" in msg
    msg = error_for(tmp_path, ["hardware=h100"])
    assert "s.yaml: hardware:" in msg and "h100-sxm" in msg


def test_hardware_override_bad_key(tmp_path):
    msg = error_for(tmp_path, ["hardware.efficiency.memroy=0.9"])
    assert "efficiency.memroy" in msg and "did you mean 'memory'" in msg


def test_model_that_does_not_fit_suggests_tensor_parallel(tmp_path):
    with pytest.raises(CapacityError) as exc:
        resolve(Scenario.from_yaml(write(tmp_path, BASE),
                                   ["model=llama-3.1-70b", "hardware=l4"]))
    msg = str(exc.value)
    assert "weights 141.1 GB" in msg and "usable" in msg and "on l4" in msg
    assert "tensor_parallel" in msg


def test_tensor_parallel_must_divide_heads(tmp_path):
    msg = error_for(tmp_path, ["model=qwen2.5-7b", "cluster.tensor_parallel=8"])
    assert "cluster.tensor_parallel" in msg and "28 attention heads" in msg


def test_trace_missing_file_and_columns(tmp_path):
    data = dict(BASE, workload={"trace": {"path": "missing.csv"}})
    path = write(tmp_path, data)
    from sim import simulate
    with pytest.raises(LlmsimError, match="missing.csv"):
        simulate(Scenario.from_yaml(path))
    (tmp_path / "bad.csv").write_text("arrival_s,prompt_tokens\n0.0,10\n")
    data = dict(BASE, workload={"trace": {"path": "bad.csv"}})
    with pytest.raises(LlmsimError, match="output_tokens"):
        simulate(Scenario.from_yaml(write(tmp_path, data)))


def test_overrides_parse_yaml_values():
    data = apply_overrides({"cluster": {"replicas": 1}, "hardware": "h100-sxm"},
                           ["cluster.replicas=4", "scheduler.prefix_caching=false",
                            "hardware.efficiency.memory=0.9"])
    assert data["cluster"]["replicas"] == 4
    assert data["scheduler"]["prefix_caching"] is False
    assert data["hardware"] == {"name": "h100-sxm", "efficiency": {"memory": 0.9}}
    with pytest.raises(ScenarioError, match="KEY.PATH=VALUE"):
        apply_overrides({}, ["cluster.replicas"])


def test_errors_are_project_types():
    assert issubclass(ModelError, LlmsimError) and issubclass(HardwareError, LlmsimError)
