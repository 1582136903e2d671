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
    ({}, "s.yaml: workload.arrivals: expected a value (a workload needs a trace, replay_fit, "
         "or all of arrivals, num_requests, prompt_tokens, output_tokens)"),
    ({k: v for k, v in GENERATED.items() if k != "output_tokens"},
     "s.yaml: workload.output_tokens: expected a value"),
    (dict(GENERATED, num_requests=0), "s.yaml: workload.num_requests: expected an integer in [1, 1e+08]"),
    (dict(GENERATED, trace={"path": "t.csv"}),
     "s.yaml: workload.num_requests: expected no value when a trace is given"),
    ({"trace": {"path": "t.csv"}, "sessions": {"turns": {"dist": "fixed", "value": 2}}},
     "s.yaml: workload.sessions: expected no value when a trace is given"),
    ({"replay_fit": {"trace": {"path": "t.csv"}}},
     "s.yaml: workload.num_requests: expected an integer > 0 (required with replay_fit)"),
    (dict(GENERATED, prefix_sharing={"groups": 2, "share_degree": 3, "prefix_tokens": 64,
                                     "suffix_tokens": {"dist": "fixed", "value": 8}}),
     "s.yaml: workload.prompt_tokens: expected no value with prefix_sharing"),
    ({k: v for k, v in GENERATED.items() if k != "prompt_tokens"} | {
        "prefix_sharing": {"groups": 2, "share_degree": 3, "prefix_tokens": 64,
                           "suffix_tokens": {"dist": "fixed", "value": 8}},
        "sessions": {"turns": {"dist": "fixed", "value": 2}}},
     "s.yaml: workload.prefix_sharing: expected no value with sessions"),
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


# --- the new sources and options -----------------------------------------------------------

def build(data, tmp_path=None, seed=0, **kw):
    return build_workload(cfg(data), np.random.default_rng(seed), base_dir=tmp_path,
                          source="s.yaml", **kw)


def write_csv(path, rows):
    path.write_text("arrival_s,prompt_tokens,output_tokens\n"
                    + "".join(f"{a},{p},{o}\n" for a, p, o in rows))
    return path


def test_trace_with_arrivals_keeps_lengths_and_replaces_times(tmp_path):
    write_csv(tmp_path / "t.csv", [(0, 10, 1), (5, 20, 2), (9, 30, 3)])
    w = build({"trace": {"path": "t.csv"}, "arrivals": {"kind": "constant", "rate_rps": 2.0}},
              tmp_path)
    assert w.arrival_s.tolist() == [0.0, 0.5, 1.0]
    assert w.prompt_tokens.tolist() == [10, 20, 30]


def test_trace_without_timestamps_needs_arrivals(tmp_path):
    (tmp_path / "s.json").write_text(
        '[{"conversations": [{"from": "human", "value": "hi there"}, '
        '{"from": "gpt", "value": "hello!"}]}]')
    with pytest.raises(ScenarioError, match="s.yaml: workload.arrivals: expected an arrival "
                                            "process"):
        build({"trace": {"path": "s.json", "tokenizer": "chars"}}, tmp_path)
    w = build({"trace": {"path": "s.json", "tokenizer": "chars"},
               "arrivals": {"kind": "poisson", "rate_rps": 1.0}}, tmp_path)
    assert len(w) == 1 and w.arrival_s[0] > 0 and w.prompt_tokens.tolist() == [2]


def test_closed_loop_workload_has_placeholders_and_the_config(tmp_path):
    data = dict(GENERATED, arrivals={"kind": "closed_loop", "clients": 3, "think_time_s": 0.5})
    w = build(data)
    assert w.closed_loop.clients == 3 and w.closed_loop.think_time_s == 0.5
    assert np.all(w.arrival_s == 0.0)
    assert build(GENERATED).closed_loop is None


def test_sessions_open_loop_sorted_closed_loop_session_by_session():
    sessions = {"turns": {"dist": "fixed", "value": 3}, "think_time_s": 5.0}
    data = dict(GENERATED, num_requests=30, sessions=sessions)
    w = build(data)
    assert np.all(np.diff(w.arrival_s) >= 0)
    assert sorted(np.bincount(w.session).tolist()) == [3] * 10
    assert w.prefix_hashes is not None and w.prefix_block_tokens == 16
    closed = build(dict(data, arrivals={"kind": "closed_loop", "clients": 2}))
    assert closed.session.tolist() == [i // 3 for i in range(30)]
    assert np.all(closed.arrival_s == 0.0)
    # within a session, each turn's prompt contains the previous prompt and answer
    p, o = closed.prompt_tokens.reshape(10, 3), closed.output_tokens.reshape(10, 3)
    assert np.all(p[:, 1:] > p[:, :-1] + o[:, :-1])


def test_prefix_sharing_workload():
    data = {k: v for k, v in GENERATED.items() if k not in ("prompt_tokens", "num_requests")}
    data["prefix_sharing"] = {"groups": 4, "share_degree": 5, "prefix_tokens": 100,
                              "suffix_tokens": {"dist": "uniform", "min": 1, "max": 50}}
    w = build(data)
    assert len(w) == 20
    assert w.prompt_tokens.min() >= 101 and w.prompt_tokens.max() <= 150
    rows = w.prefix_hashes.tolist()
    assert all(len(r) == 6 for r in rows)           # 100 // 16 full shared chunks
    assert sorted(rows.count(r) for r in set(rows)) == [5, 5, 5, 5]


def test_empirical_lengths_come_from_the_trace(tmp_path):
    write_csv(tmp_path / "t.csv", [(0, 10, 1), (1, 20, 2), (2, 30, 3)])
    data = dict(GENERATED, prompt_tokens={"dist": "empirical", "trace": {"path": "t.csv"}},
                output_tokens={"dist": "empirical", "trace": {"path": "t.csv"},
                               "column": "prompt_tokens"})
    w = build(data, tmp_path)
    assert set(w.prompt_tokens.tolist()) == {10, 20, 30}
    assert set(w.output_tokens.tolist()) == {10, 20, 30}


def test_replay_fit_generates_a_longer_similar_workload(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    arrivals = np.cumsum(rng.gamma(0.25, 0.5 / 0.25, n))       # rate 2 rps, cv 2
    prompts = rng.lognormal(np.log(500), 0.8, n).astype(int) + 1
    write_csv(tmp_path / "t.csv", [(round(a, 6), p, 7) for a, p in zip(arrivals, prompts)])
    w = build({"replay_fit": {"trace": {"path": "t.csv"}}, "num_requests": 10_000}, tmp_path)
    gaps = np.diff(w.arrival_s)
    assert len(w) == 10_000
    assert 1 / gaps.mean() == pytest.approx(2.0, rel=0.1)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.15)
    assert np.log(w.prompt_tokens).std() == pytest.approx(np.log(prompts).std(), rel=0.1)
    assert w.prompt_tokens.max() <= prompts.max() and w.output_tokens.tolist() == [7] * 10_000
    # lengths: empirical resamples, an explicit distribution replaces the fit
    e = build({"replay_fit": {"trace": {"path": "t.csv"}, "lengths": "empirical"},
               "num_requests": 50, "output_tokens": {"dist": "fixed", "value": 3}}, tmp_path)
    assert set(e.prompt_tokens.tolist()) <= set(prompts.tolist())
    assert e.output_tokens.tolist() == [3] * 50


def test_clip_to_context_counts_and_cuts(tmp_path):
    write_csv(tmp_path / "t.csv", [(0, 10, 5), (1, 100, 5), (2, 50, 60)])
    data = {"trace": {"path": "t.csv"}, "clip_to_context": True}
    w = build(data, tmp_path, max_model_len=64)
    assert w.clipped_requests == 2
    assert w.prompt_tokens.tolist() == [10, 63, 50]
    assert w.output_tokens.tolist() == [5, 1, 14]
    assert build({"trace": {"path": "t.csv"}}, tmp_path, max_model_len=64).clipped_requests == 0
    with pytest.raises(ValueError, match="max_model_len"):
        build(data, tmp_path)


def test_replay_fit_of_a_trace_without_timestamps_needs_arrivals(tmp_path):
    (tmp_path / "s.json").write_text(
        '[{"conversations": [{"from": "human", "value": "hi there"}, '
        '{"from": "gpt", "value": "hello!"}]}]')
    with pytest.raises(ScenarioError, match="s.yaml: workload.arrivals: expected an arrival "
                                            "process .the fitted trace has no timestamps"):
        build({"replay_fit": {"trace": {"path": "s.json", "tokenizer": "chars"}},
               "num_requests": 5}, tmp_path)
