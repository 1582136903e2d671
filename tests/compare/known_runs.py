"""A real run whose answer is known: written from an llmsim simulation itself.

``source_scenario`` is a small scenario (a trace, so that arrivals sit on a binary grid);
``write_run`` records its simulation the way vLLM's run recorder does (``meta_for``: meta.json
with the same engine settings; requests.jsonl with engine timestamps on a clock that does not
start at 0). Replaying it on the same hardware must give back the same latencies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim import Scenario
from sim.cost.engine import default_capture_sizes

HF_NAME = "meta-llama/Llama-3.1-8B"      # the catalog's llama-3.1-8b, as a run names it
HARDWARE = "h100-sxm"
ENGINE = {"max_num_seqs": 16, "max_num_batched_tokens": 512, "max_model_len": 4096}
# engine clock at the first request: a power of two, so that adding it to arrivals on a 1/1024 s
# grid and subtracting it again is exact
CLOCK_OFFSET_S = 4096.0


def source_scenario(tmp_path: Path, num_requests: int = 60, kv_blocks: int | None = 300,
                    seed: int = 7) -> Scenario:
    rng = np.random.default_rng(seed)
    arrival_s = np.round(np.cumsum(rng.exponential(0.03, num_requests)) * 1024) / 1024
    frame = pd.DataFrame({"arrival_s": arrival_s - arrival_s[0],
                          "prompt_tokens": rng.integers(16, 700, num_requests),
                          "output_tokens": rng.integers(1, 160, num_requests)})
    trace = tmp_path / "source.csv"
    frame.to_csv(trace, index=False)
    return Scenario.from_dict({
        "name": "source", "seed": 3, "model": "llama-3.1-8b", "hardware": HARDWARE,
        "scheduler": {"name": "fcfs", "max_num_seqs": ENGINE["max_num_seqs"],
                      "max_batched_tokens": ENGINE["max_num_batched_tokens"],
                      "max_model_len": ENGINE["max_model_len"], "kv_blocks": kv_blocks},
        "workload": {"trace": {"path": str(trace)}}}, base_dir=tmp_path)


def meta_for(scenario: Scenario, kv_blocks: int, full: bool = True) -> dict:
    """meta.json of a run with ``scenario``'s engine; ``full=False``: an earlier run's, with
    engine_kwargs only."""
    sched = scenario.scheduler
    kwargs = {"model": HF_NAME, "tensor_parallel_size": 1, "data_parallel_size": 1,
              "enable_expert_parallel": False, "max_num_seqs": sched.max_num_seqs,
              "max_num_batched_tokens": sched.max_batched_tokens,
              "max_model_len": sched.max_model_len, "dtype": "bfloat16",
              "kv_cache_dtype": "auto", "seed": scenario.seed}
    meta = {"schema_version": 1, "model": HF_NAME, "vllm_version": "0.19.0",
            "engine_kwargs": kwargs, "num_requests": 0}
    if full:
        meta["kv_cache"] = {"num_gpu_blocks": kv_blocks, "block_size": sched.block_size,
                            "gpu_memory_utilization": sched.gpu_memory_utilization,
                            "enable_prefix_caching": sched.prefix_caching}
        meta["hardware"] = {"device_name": "NVIDIA H100 80GB HBM3", "device_count": 1}
        sizes = default_capture_sizes(sched.max_num_seqs, sched.max_batched_tokens)
        meta["resolved_config"] = {
            "compilation_config": {"cudagraph_capture_sizes": list(sizes),
                                   "cudagraph_mode": [2, 1]},
            "model_config": {"enforce_eager": False, "max_model_len": sched.max_model_len},
            "scheduler_config": {"async_scheduling": True, "max_num_seqs": sched.max_num_seqs,
                                 "max_num_batched_tokens": sched.max_batched_tokens},
            "parallel_config": {"tensor_parallel_size": 1, "data_parallel_size": 1}}
    return meta


def write_run(folder: Path, requests: pd.DataFrame, meta: dict,
              offset_s: float = CLOCK_OFFSET_S) -> Path:
    """A run folder from a simulation's requests table (engine clock = simulated + offset)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = requests[requests["state"] == "completed"]
    lines = pd.DataFrame({
        "request_id": "bench-" + done["request_id"].astype(str),
        "input_toks": done["prompt_tokens"], "output_toks": done["output_tokens"],
        "arrival_time": 1.7e9 + done["arrival_s"], "queued_ts": done["arrival_s"] + offset_s,
        "scheduled_ts": done["first_scheduled_s"] + offset_s,
        "first_token_ts": done["first_token_s"] + offset_s,
        "last_token_ts": done["finish_s"] + offset_s})
    meta = {**meta, "num_requests": len(lines)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    # json.dumps writes floats exactly (shortest round trip); pandas' to_json rounds them
    records = [dict(zip(lines.columns, row)) for row in
               zip(*(lines[c].tolist() for c in lines.columns))]
    (folder / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder
