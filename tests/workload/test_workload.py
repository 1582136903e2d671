import types

import numpy as np
import pandas as pd
import pytest

from sim.config import parse
from sim.errors import ScenarioError
from sim.workload import Request, Workload, WorkloadConfig, build_workload

GENERATED = {
    "arrivals": {"kind": "poisson", "rate_rps": 8},
    "num_requests": 200,
    "prompt_tokens": {"dist": "lognormal", "mean": 600, "sigma": 1.0, "max": 8192},
    "output_tokens": {"dist": "uniform", "min": 5, "max": 50},
}


def cfg(data) -> WorkloadConfig:
    return parse(WorkloadConfig, data, path="s.yaml", field="workload")


def test_generated_workload():
    w = build_workload(cfg(GENERATED), np.random.default_rng(0))
    assert len(w) == 200
    assert np.all(np.diff(w.arrival_s) >= 0)
    assert w.prompt_tokens.max() <= 8192 and w.output_tokens.min() >= 5


def test_same_seed_same_workload_and_order_of_draws():
    a = build_workload(cfg(GENERATED), np.random.default_rng(7))
    b = build_workload(cfg(GENERATED), np.random.default_rng(7))
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    # arrivals are drawn first: they do not depend on the length distributions
    other = dict(GENERATED, prompt_tokens={"dist": "fixed", "value": 3})
    c = build_workload(cfg(other), np.random.default_rng(7))
    np.testing.assert_array_equal(a.arrival_s, c.arrival_s)


def test_requests_are_fresh_lazy_and_in_order():
    w = Workload(np.array([0.0, 1.0, 2.5]), np.array([3, 4, 5]), np.array([1, 2, 3]),
                 prefix_hashes=[(1,), (1, 2), ()], prefix_block_tokens=8, slo_class="chat")
    it = w.requests()
    assert isinstance(it, types.GeneratorType)
    reqs = list(it)
    assert [r.id for r in reqs] == [0, 1, 2]
    assert all(isinstance(r, Request) for r in reqs)
    r = reqs[1]
    assert (r.arrival_s, r.prompt_tokens, r.output_tokens, r.prefix_hashes) == (1.0, 4, 2, (1, 2))
    assert type(r.arrival_s) is float and type(r.prompt_tokens) is int
    assert r.prefix_block_tokens == 8 and r.slo_class == "chat"
    again = next(w.requests())
    assert again is not reqs[0] and again.num_computed_tokens == 0


def test_requests_span_chunks():
    n = Workload._CHUNK * 2 + 3
    w = Workload(np.arange(n, dtype=float), np.ones(n, int), np.ones(n, int))
    ids = [r.id for r in w.requests()]
    assert ids == list(range(n))


def test_to_frame():
    w = Workload(np.array([0.0, 1.0]), np.array([3, 4]), np.array([1, 2]),
                 prefix_hashes=[(1,), ()])
    frame = w.to_frame()
    assert list(frame.columns) == ["id", "arrival_s", "prompt_tokens", "output_tokens",
                                   "prefix_hashes"]
    assert frame["prompt_tokens"].tolist() == [3, 4]
    assert frame["prefix_hashes"].tolist() == [(1,), ()]


def test_trace_workload_relative_to_base_dir(tmp_path):
    (tmp_path / "t.csv").write_text(
        "arrival_s,prompt_tokens,output_tokens,prefix_hashes\n0,32,4,1 2\n2,16,1,1\n4,8,2,\n")
    c = cfg({"trace": {"path": "t.csv", "time_scale": 0.5, "limit": 2, "prefix_block_tokens": 16},
             "slo_class": "batch"})
    w = build_workload(c, np.random.default_rng(0), base_dir=tmp_path, source="s.yaml")
    reqs = list(w.requests())
    assert [(r.arrival_s, r.prompt_tokens, r.prefix_hashes) for r in reqs] == [
        (0.0, 32, (1, 2)), (1.0, 16, (1,))]
    assert all(r.slo_class == "batch" and r.prefix_block_tokens == 16 for r in reqs)


@pytest.mark.parametrize("data, text", [
    ({}, "s.yaml: workload.arrivals: expected a value (a workload needs a trace, or all of"),
    ({k: v for k, v in GENERATED.items() if k != "output_tokens"},
     "s.yaml: workload.output_tokens: expected a value"),
    (dict(GENERATED, num_requests=0), "s.yaml: workload.num_requests: expected an integer > 0"),
    (dict(GENERATED, trace={"path": "t.csv"}),
     "s.yaml: workload.arrivals: expected no value when a trace is given"),
    (dict(GENERATED, arrivals={"kind": "poison", "rate_rps": 1}), "s.yaml: workload.arrivals.kind"),
    (dict(GENERATED, nm_requests=3), "s.yaml: workload.nm_requests: unknown key"),
])
def test_config_errors_name_file_and_field(data, text):
    with pytest.raises(ScenarioError) as exc:
        cfg(data)
    assert text in str(exc.value)


@pytest.mark.parametrize("data, text", [
    (dict(GENERATED, arrivals={"kind": "poisson"}), "s.yaml: workload.arrivals.rate_rps: "),
    (dict(GENERATED, prompt_tokens={"dist": "lognormal", "mean": 10}),
     "s.yaml: workload.prompt_tokens.sigma: "),
    ({"trace": {"path": "t.csv", "format": "generc"}}, "s.yaml: workload.trace.format: "),
])
def test_nested_config_errors_name_the_full_field(data, text):
    with pytest.raises(ScenarioError) as exc:
        cfg(data)
    assert text in str(exc.value)
