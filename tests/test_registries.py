"""The registry contract: every pluggable kind is a :class:`sim.registry.Registry`, every entry of
every registry runs end to end in a scenario (or a sweep), and every unknown name is a one-line
error with the known names and the closest one.

A new entry without a case here fails ``test_every_entry_has_an_end_to_end_case``: adding a
scheduler, router, arrival kind, length distribution, trace format, device kind, cost model,
queue order or backend means adding its case below, so that nothing registered goes untested."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import sim
from sim import Scenario, simulate
from sim.config import ConfigValueError
from sim.errors import LlmsimError, ScenarioError
from sim.registry import Registry

SAMPLES = Path(sim.__file__).parent / "data" / "samples"
N = 40
BASE = {"model": "llama-3.1-8b", "hardware": "h100-sxm",
        "cluster": {"replicas": 2, "router": "least-outstanding"},
        "scheduler": {"name": "fcfs"},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 20}, "num_requests": N,
                     "prompt_tokens": {"dist": "uniform", "min": 20, "max": 600},
                     "output_tokens": {"dist": "uniform", "min": 4, "max": 60}}}


def registries() -> dict[str, Registry]:
    """Every Registry defined anywhere in the package, by its kind."""
    found: dict[str, Registry] = {}
    for info in pkgutil.walk_packages(sim.__path__, "sim."):
        if info.name.startswith("sim.cli"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Registry):
                assert found.setdefault(value.kind, value) is value, \
                    f"two registries of kind {value.kind!r}"
    return found


def scenario(**sections) -> dict:
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def workload(**fields) -> dict:
    return {**BASE["workload"], **fields}


def trace(fmt: str, file: str, **options) -> dict:
    return workload(trace={"path": str(SAMPLES / file), "format": fmt, "limit": N,
                           "shift_to_zero": True, **options},
                    arrivals=None, num_requests=None, prompt_tokens=None, output_tokens=None)


# kind -> entry name -> the scenario that exercises it
CASES: dict[str, dict[str, dict]] = {
    "scheduler": {name: scenario(scheduler={"name": name})
                  for name in ("fcfs", "aggressive", "conservative", "past_future", "oracle",
                               "batchllm")},
    "router": {name: scenario(cluster={"router": name})
               for name in ("round-robin", "random", "least-outstanding", "least-kv-load",
                            "prefix-aware", "session-affinity")},
    "arrival kind": {
        "poisson": scenario(),
        "constant": scenario(workload=workload(arrivals={"kind": "constant", "rate_rps": 10})),
        "gamma": scenario(workload=workload(arrivals={"kind": "gamma", "rate_rps": 10, "cv": 2})),
        "burst": scenario(workload=workload(arrivals={"kind": "burst"})),
        "piecewise": scenario(workload=workload(
            arrivals={"kind": "piecewise", "schedule": [[1.0, 5.0], [1.0, 0.0], [10.0, 30.0]]})),
        "closed_loop": scenario(workload=workload(
            arrivals={"kind": "closed_loop", "clients": 4, "think_time_s": 0.5})),
        "diurnal": scenario(workload=workload(
            arrivals={"kind": "diurnal", "mean_rps": 10, "peak_to_trough": 3, "period_s": 20})),
    },
    "autoscaler policy": {
        name: scenario(slo={"ttft_s": 0.5}, workload=workload(arrivals={"kind": "burst"}),
                       autoscaler={"policy": name, "min_replicas": 1, "max_replicas": 3,
                                   "interval_s": 0.2, "provisioning_s": 0.5,
                                   **({"target": 0.05} if name == "target-utilisation"
                                      else {"target": 4} if name in ("queue", "rate")
                                      else {})})
        for name in ("queue", "target-utilisation", "slo", "rate")},
    "length distribution": {
        "fixed": scenario(workload=workload(prompt_tokens={"dist": "fixed", "value": 128})),
        "uniform": scenario(),
        "normal": scenario(workload=workload(
            prompt_tokens={"dist": "normal", "mean": 300, "std": 80, "max": 2000})),
        "lognormal": scenario(workload=workload(
            prompt_tokens={"dist": "lognormal", "mean": 300, "sigma": 1.0, "max": 4000})),
        "empirical": scenario(workload=workload(prompt_tokens={
            "dist": "empirical", "trace": {"path": str(SAMPLES / "generic.csv")}})),
    },
    "trace format": {
        "generic": scenario(workload=trace("generic", "generic.csv")),
        "azure": scenario(workload=trace("azure", "azure.csv")),
        "burstgpt": scenario(workload=trace("burstgpt", "burstgpt.csv")),
        "vidur": scenario(workload=trace("vidur", "vidur.csv")),
        "mooncake": scenario(workload=trace("mooncake", "mooncake.jsonl")),
        "sharegpt": scenario(workload={**trace("sharegpt", "sharegpt.json", tokenizer="chars"),
                                       "arrivals": BASE["workload"]["arrivals"]}),  # no clock
    },
    # a device kind and the cost model of that kind run together
    "device kind": {"gpu": scenario(), "duplex": scenario(hardware="duplex-h100")},
    "cost model": {"gpu": scenario(), "duplex": scenario(hardware="duplex-h100")},
    "queue order": {name: scenario(scheduler={"name": "fcfs", "queue": name},
                                   workload=workload(arrivals={"kind": "burst"}))
                    for name in ("fcfs", "shortest_prompt")},
    "backend": {"local": {}, "ray": {}},        # run as sweeps, below
}


def test_every_pluggable_kind_is_a_registry():
    assert set(registries()) == set(CASES)


def test_every_entry_has_an_end_to_end_case():
    for kind, registry in registries().items():
        assert set(registry) == set(CASES[kind]), f"{kind}: entries without a case, or cases " \
                                                  f"of removed entries"


@pytest.mark.filterwarnings("ignore:.*dropped .* failed requests")   # the sample has two
@pytest.mark.parametrize("kind,name", [(k, n) for k, cases in CASES.items() if k != "backend"
                                       for n in cases])
def test_every_entry_runs_end_to_end(kind, name):
    result = simulate(Scenario.from_dict(CASES[kind][name]))
    s = result.summary
    total = s["requests_completed"] + s["requests_rejected"] + s["requests_running"]
    assert total == s["requests_total"] == len(result.requests) > 0    # no request lost
    assert s["requests_completed"] > 0
    if kind == "scheduler":
        assert result.scenario["scheduler"]["name"] == name
    if kind in ("device kind", "cost model"):
        assert result.scenario["hardware"]["name"].startswith("duplex" if name == "duplex"
                                                              else "h100")


@pytest.mark.parametrize("name", sorted(CASES["backend"]))
def test_every_backend_runs_a_sweep(tmp_path, name):
    if name == "ray":
        pytest.importorskip("ray")
    from sim.planning import load_sweep, make_backend, run_sweep

    path = tmp_path / "sweep.yaml"
    import yaml
    path.write_text(yaml.safe_dump({"scenario": BASE, "grid": {"cluster.router": ["random",
                                                                                   "round-robin"]}}))
    backend = make_backend(name, workers=1)
    try:
        outcome = run_sweep(load_sweep(path), tmp_path / "out", backend)
    finally:
        backend.close()
    assert outcome.ran == 2 and outcome.total == 2


@pytest.mark.parametrize("kind", sorted(CASES))
def test_an_unknown_name_lists_the_known_ones_and_the_closest(kind):
    registry = registries()[kind]
    near = sorted(registry)[0] + "x"
    with pytest.raises(ScenarioError) as err:
        registry.lookup(near, "s.yaml", "some.field")
    text = str(err.value)
    assert text.startswith("s.yaml: some.field: expected a known")
    assert all(n in text for n in registry) and f"did you mean '{sorted(registry)[0]}'" in text
    with pytest.raises(ConfigValueError, match="did you mean"):
        registry.require(near, "field")


def test_a_name_cannot_be_registered_twice():
    registry = Registry("toy", {"a": int})
    registry.add("a", int)                     # the same entry again is harmless
    with pytest.raises(LlmsimError, match="toy 'a' is registered twice"):
        registry.add("a", float)
    assert registry.register("b")(float) is float and registry.lookup("b") is float


def test_scenario_errors_use_the_registry(tmp_path):
    with pytest.raises(ScenarioError, match=r"scheduler.name: .*did you mean 'past_future'"):
        Scenario.from_dict(scenario(scheduler={"name": "past_futur"}))
    with pytest.raises(ScenarioError, match=r"cluster.router: .*did you mean 'round-robin'"):
        Scenario.from_dict(scenario(cluster={"router": "round-robbin"}))
    with pytest.raises(ScenarioError, match=r"arrivals.kind: .*did you mean 'gamma'"):
        Scenario.from_dict(scenario(workload=workload(arrivals={"kind": "gama", "rate_rps": 1})))
    with pytest.raises(ScenarioError, match=r"trace.format: .*did you mean 'azure'"):
        Scenario.from_dict(scenario(workload=trace("azur", "azure.csv")))
