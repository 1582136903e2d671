"""meta.json -> the replay's cluster, scheduler and engine sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.compare.vllm_run import VLLM_DEFAULTS, run_settings
from sim.errors import LlmsimError

META = Path("meta.json")


def test_resolved_config_beats_engine_kwargs():
    meta = {"engine_kwargs": {"max_num_seqs": 64, "max_num_batched_tokens": 4096,
                              "data_parallel_size": 2, "tensor_parallel_size": 2},
            "kv_cache": {"num_gpu_blocks": 1234, "block_size": 32,
                         "enable_prefix_caching": False, "gpu_memory_utilization": 0.85},
            "resolved_config": {
                "scheduler_config": {"max_num_seqs": 128, "async_scheduling": False},
                "model_config": {"enforce_eager": True, "max_model_len": 8192},
                "compilation_config": {"cudagraph_capture_sizes": [1, 2, 4],
                                       "cudagraph_mode": 1}}}
    settings = run_settings(meta, META)
    assert settings["cluster"] == {"replicas": 2, "tensor_parallel": 2,
                                   "router": "least-outstanding"}
    assert settings["scheduler"] == {
        "name": "fcfs", "chunked_prefill": True, "max_num_seqs": 128,
        "max_batched_tokens": 4096, "max_model_len": 8192, "block_size": 32,
        "prefix_caching": False, "gpu_memory_utilization": 0.85, "kv_blocks": 1234}
    assert settings["engine"] == {"async_scheduling": False, "cuda_graphs": False,
                                  "cuda_graph_sizes": [1, 2, 4], "cudagraph_mode": "piecewise"}


def test_earlier_run_gets_vllm_defaults_and_no_kv_blocks():
    settings = run_settings({"engine_kwargs": {"max_num_seqs": 256}}, META)
    assert settings["cluster"] == {}
    assert settings["engine"] == {}
    assert "kv_blocks" not in settings["scheduler"]
    for key, value in VLLM_DEFAULTS.items():
        assert settings["scheduler"][key] == value


def test_no_captured_sizes_means_no_cuda_graphs():
    meta = {"engine_kwargs": {},
            "resolved_config": {"compilation_config": {"cudagraph_capture_sizes": []}}}
    assert run_settings(meta, META)["engine"] == {"cuda_graphs": False}


@pytest.mark.parametrize("meta, words", [
    ({"engine_kwargs": {"max_num_seqs": 0}}, "engine_kwargs.max_num_seqs: expected an integer > 0"),
    ({"engine_kwargs": {}, "kv_cache": {"enable_prefix_caching": "yes"}},
     "kv_cache.enable_prefix_caching: expected true or false"),
    ({"engine_kwargs": {"gpu_memory_utilization": 1.5}}, "expected a number in (0, 1]"),
    ({"engine_kwargs": {}, "resolved_config": {"compilation_config": {
        "cudagraph_capture_sizes": [1, "x"]}}}, "cudagraph_capture_sizes"),
])
def test_bad_settings_name_the_key(meta, words):
    with pytest.raises(LlmsimError) as exc:
        run_settings(meta, META)
    assert str(exc.value).startswith("meta.json: ") and words in str(exc.value)
