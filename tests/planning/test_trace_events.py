"""Chrome / Perfetto trace events of a run's iterations."""

import json

import sim
from sim.cli import main
from sim.planning import chrome_trace


def tiny_result():
    return sim.simulate(sim.Scenario.from_dict({
        "model": "llama-3.1-8b", "hardware": "h100-sxm", "cluster": {"replicas": 2},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 10}, "num_requests": 40,
                     "prompt_tokens": {"dist": "fixed", "value": 300},
                     "output_tokens": {"dist": "fixed", "value": 40}}}))


def test_one_slice_per_iteration_row_with_batch_composition():
    result = tiny_result()
    it = result.iterations
    trace = chrome_trace(it, "tiny")
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == len(it)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {"replica 0", "replica 1"}
    first = slices[0]
    row = it.iloc[0]
    assert first["pid"] == row["replica"] and first["ts"] == round(row["start_s"] * 1e6, 3)
    assert first["dur"] == round(row["duration_s"] * 1e6, 3)
    assert first["args"]["prefill_tokens"] == row["prefill_tokens"] and first["name"] == "prefill"
    runs = [e for e in slices if e["args"]["num_iterations"] > 1]
    assert runs and all(e["name"] == f"decode x{e['args']['num_iterations']}" for e in runs)
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters == {"KV blocks used", "waiting requests", "batch size"}
    assert trace["displayTimeUnit"] == "ms"


def test_run_writes_trace_events_file(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(json.dumps({
        "model": "llama-3.1-8b", "workload": {
            "arrivals": {"kind": "poisson", "rate_rps": 10}, "num_requests": 20,
            "prompt_tokens": {"dist": "fixed", "value": 100},
            "output_tokens": {"dist": "fixed", "value": 10}}}))
    out = tmp_path / "t" / "trace.json"
    assert main(["run", str(scenario), "-o", str(tmp_path / "run"), "--trace-events",
                 str(out)]) == 0
    assert "trace events in" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert any(e["ph"] == "X" for e in data["traceEvents"])
