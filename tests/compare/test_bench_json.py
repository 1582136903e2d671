"""The reader of vLLM's serving-benchmark result JSON (`vllm bench serve --save-detailed`)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from sim.compare import RunWarning, compare_run, load_run
from sim.compare.bench import gated_by_concurrency, rebuilt_arrivals
from sim.errors import LlmsimError


def bench_result(**changes) -> dict:
    """A small hand-written result: 4 requests, the third failed."""
    data = {
        "date": "20260101-120000", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B",
        "tokenizer_id": "meta-llama/Llama-3.1-8B", "num_prompts": 4, "request_rate": "inf",
        "burstiness": 1.0, "max_concurrency": None, "duration": 3.0, "completed": 3,
        "total_input_tokens": 600, "total_output_tokens": 9, "mean_ttft_ms": 100.0,
        "input_lens": [100, 200, 50, 250],
        "output_lens": [3, 1, 0, 5],
        "ttfts": [0.10, 0.20, 0.0, 0.05],
        "itls": [[0.02, 0.03], [], [], [0.01, 0.01, 0.02, 0.04]],
        "generated_texts": ["a b c", "x", "", "1 2 3 4 5"],
        "errors": ["", "", "Connection reset", ""],
    }
    data.update(changes)
    return data


def write(tmp_path, data, name="result.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def read(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunWarning)
        run = load_run(path)
    return run, [str(w.message) for w in caught if issubclass(w.category, RunWarning)]


def test_latencies_from_ttfts_and_itls(tmp_path):
    run, said = read(write(tmp_path, bench_result()))
    req = run.requests
    assert run.kind == "vllm-bench" and run.model == "meta-llama/Llama-3.1-8B"
    assert list(req["prompt_tokens"]) == [100, 200, 250]          # the failed one is left out
    assert list(req["output_tokens"]) == [3, 1, 5]
    np.testing.assert_allclose(req["ttft_s"], [0.10, 0.20, 0.05])
    np.testing.assert_allclose(req["e2e_s"], [0.15, 0.20, 0.13])
    np.testing.assert_allclose(req["tpot_s"], [0.025, math.nan, 0.02], equal_nan=True)
    assert (req["arrival_s"] == 0).all()                           # request_rate inf
    np.testing.assert_allclose(req["finish_s"], req["e2e_s"])
    assert any("1 of 4 requests failed" in s for s in said)
    assert any("all sent at t = 0" in s for s in said)
    assert any("no engine settings" in s for s in said)


def test_arrivals_rebuilt_from_rate_and_burstiness(tmp_path):
    run, said = read(write(tmp_path, bench_result(request_rate=2.0, burstiness=0.5, errors=None,
                                                  output_lens=[3, 1, 2, 5],
                                                  itls=[[0.1, 0.1], [], [0.1], [0.1] * 4])))
    expected = np.cumsum(np.random.RandomState(0).gamma(0.5, 1.0 / (2.0 * 0.5), size=4))
    np.testing.assert_allclose(run.requests["arrival_s"], np.sort(expected - expected.min()))
    assert np.allclose(expected, rebuilt_arrivals(4, 2.0, 0.5, 0))
    assert any("gamma gaps of shape 0.5" in s and "approximation" in s for s in said)


def test_start_times_are_used_when_recorded(tmp_path):
    run, said = read(write(tmp_path, bench_result(start_times=[10.0, 10.5, 11.0, 12.0])))
    assert list(run.requests["arrival_s"]) == [0.0, 0.5, 2.0]
    assert not any("rebuilt" in s for s in said)


def test_max_concurrency_gates_sends():
    sent = gated_by_concurrency(np.zeros(4), np.array([1.0, 3.0, 1.0, 1.0]), 2)
    assert list(sent) == [0.0, 0.0, 1.0, 2.0]


def test_inf_rate_with_max_concurrency_replays_as_a_closed_loop(tmp_path):
    run, _ = read(write(tmp_path, bench_result(max_concurrency=2)))
    assert run.arrivals == {"kind": "closed_loop", "clients": 2}


def test_folder_with_one_result_json(tmp_path):
    write(tmp_path, bench_result())
    run, _ = read(tmp_path)
    assert run.path == tmp_path and run.source == tmp_path / "result.json"


def test_compare_a_bench_result(tmp_path):
    path = write(tmp_path, bench_result(model_id="my-org/my-finetune"))
    with pytest.raises(LlmsimError, match="pass --model"), pytest.warns(RunWarning):
        compare_run(path, "h100-sxm")           # warnings read so far are still issued
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        cmp = compare_run(path, "h100-sxm", model="llama-3.1-8b",
                          overrides=["scheduler.max_num_seqs=8"])
    assert cmp.scenario.scheduler.max_num_seqs == 8
    assert len(cmp.real) == len(cmp.sim) == 3
    assert math.isfinite(cmp.error["ttft_s"]["p50"])
    assert any("no engine settings" in w for w in cmp.warnings)


@pytest.mark.parametrize("changes, words", [
    ({"ttfts": [0.1, 0.2]}, "ttfts: expected a list of 4 values"),
    ({"input_lens": [100, "x", 50, 250]}, "input_lens[1]: expected an integer >= 1, got 'x'"),
    ({"itls": [[0.1], [], [], [0.1, None]]}, "itls[3]"),
    ({"request_rate": -1}, "request_rate"),
    ({"errors": ["boom"] * 4}, "no request completed"),
])
def test_bad_values_name_the_key(tmp_path, changes, words):
    path = write(tmp_path, bench_result(**changes))
    with pytest.raises(LlmsimError) as exc:
        read(path)
    assert str(exc.value).startswith(str(path))
    assert words in str(exc.value)


def test_not_a_bench_result(tmp_path):
    path = write(tmp_path, {"date": "x", "completed": 3})
    with pytest.raises(LlmsimError, match="missing keys 'input_lens'"):
        read(path)
