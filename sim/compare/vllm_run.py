"""A vLLM run folder: ``meta.json`` (engine settings) + ``requests.jsonl`` (per-request timestamps).

``meta.json`` (schema_version 1) has ``engine_kwargs`` and, in newer runs, ``kv_cache`` (what vLLM
allocated), ``hardware`` and ``resolved_config`` (vLLM's whole resolved configuration). A setting
is taken from the most resolved place that records it: what the engine ended up with beats what
it was asked for. Earlier runs record only ``engine_kwargs``; their missing settings are vLLM
0.19's defaults, and the KV pool is sized by llmsim (``scheduler.kv_blocks`` left null).

``requests.jsonl`` has the engine's monotonic timestamps; TTFT and E2E are measured from
``queued_ts``, so the replay's arrivals are ``queued_ts`` on the same clock, not the client's
``arrival_time``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sim.compare.runs import RealRun, RunWarning, latency_frame, read_json_object, warn_left_out
from sim.cost.engine import cudagraph_mode_name
from sim.errors import TraceError
from sim.workload.formats.common import (COUNT, COUNT_OR_ZERO, TIME, check_columns,
                                         check_not_empty, no_rows, numeric_column, read_jsonl)

REQUIRED = ("input_toks", "output_toks", "queued_ts", "first_token_ts", "last_token_ts")
OPTIONAL = ("request_id", "arrival_time", "scheduled_ts")

_INT, _BOOL, _FRACTION = "an integer > 0", "true or false", "a number in (0, 1]"

# scenario field: (what it must be, where a run records it: the first one found wins)
_CLUSTER = {
    "replicas": (_INT, ("resolved_config.parallel_config.data_parallel_size",
                        "engine_kwargs.data_parallel_size")),
    "tensor_parallel": (_INT, ("resolved_config.parallel_config.tensor_parallel_size",
                               "engine_kwargs.tensor_parallel_size")),
    "expert_parallel": (_BOOL, ("resolved_config.parallel_config.enable_expert_parallel",
                                "engine_kwargs.enable_expert_parallel")),
}
_SCHEDULER = {
    "max_num_seqs": (_INT, ("resolved_config.scheduler_config.max_num_seqs",
                            "engine_kwargs.max_num_seqs")),
    "max_batched_tokens": (_INT, ("resolved_config.scheduler_config.max_num_batched_tokens",
                                  "engine_kwargs.max_num_batched_tokens")),
    "max_model_len": (_INT, ("resolved_config.model_config.max_model_len",
                             "engine_kwargs.max_model_len")),
    "block_size": (_INT, ("kv_cache.block_size", "resolved_config.cache_config.block_size",
                          "engine_kwargs.block_size")),
    "prefix_caching": (_BOOL, ("kv_cache.enable_prefix_caching",
                               "resolved_config.cache_config.enable_prefix_caching",
                               "engine_kwargs.enable_prefix_caching")),
    "gpu_memory_utilization": (_FRACTION, ("kv_cache.gpu_memory_utilization",
                                           "resolved_config.cache_config.gpu_memory_utilization",
                                           "engine_kwargs.gpu_memory_utilization")),
    "kv_blocks": (_INT, ("kv_cache.num_gpu_blocks", "resolved_config.cache_config.num_gpu_blocks")),
}
_ENGINE = {
    "async_scheduling": (_BOOL, ("resolved_config.scheduler_config.async_scheduling",
                                 "engine_kwargs.async_scheduling")),
}
_EAGER = ("resolved_config.model_config.enforce_eager", "engine_kwargs.enforce_eager")
_CAPTURE_SIZES = "resolved_config.compilation_config.cudagraph_capture_sizes"
_CUDAGRAPH_MODE = "resolved_config.compilation_config.cudagraph_mode"

# vLLM 0.19's defaults, written out for runs that do not record them (the scenario echo then
# shows what was assumed)
VLLM_DEFAULTS = {"block_size": 16, "prefix_caching": True, "gpu_memory_utilization": 0.9}


def read_vllm_run(folder: Path) -> RealRun:
    """Read ``folder/meta.json`` and ``folder/requests.jsonl``."""
    meta_path = folder / "meta.json"
    meta = read_json_object(meta_path)
    if not isinstance(meta.get("engine_kwargs"), dict):
        raise TraceError(f"{meta_path}: engine_kwargs: expected a mapping of vLLM engine "
                         f"arguments, got {meta.get('engine_kwargs')!r}")
    version = meta.get("schema_version")
    if version != 1:
        warnings.warn(f"{meta_path}: schema_version {version!r} (expected 1): read as 1",
                      RunWarning, stacklevel=2)
    requests_path = folder / "requests.jsonl"
    if not requests_path.is_file():
        raise TraceError(f"{requests_path}: no such file (a run folder holds meta.json and "
                         "requests.jsonl)")
    _warn_unmodelled(meta, meta_path)
    seed = meta["engine_kwargs"].get("seed")
    model = meta.get("model") or meta["engine_kwargs"].get("model")
    device = _lookup(meta, "hardware.device_name")
    return RealRun(path=folder, source=meta_path, kind="vllm-run",
                   model=model if isinstance(model, str) else None,
                   requests=read_requests(requests_path), settings=run_settings(meta, meta_path),
                   seed=seed if isinstance(seed, int) and not isinstance(seed, bool)
                   and seed >= 0 else 0,
                   device_name=device if isinstance(device, str) else None)


def run_settings(meta: dict, path: Path) -> dict:
    """The scenario's ``cluster``, ``scheduler`` and ``engine`` sections from a run's meta.json."""
    cluster = _lookup_all(meta, _CLUSTER, path)
    if cluster.get("replicas", 1) > 1:
        cluster["router"] = "least-outstanding"   # vLLM balances DP ranks by their queues
    scheduler = {"name": "fcfs", "chunked_prefill": True}
    scheduler.update(VLLM_DEFAULTS)
    scheduler.update(_lookup_all(meta, _SCHEDULER, path))
    engine = _lookup_all(meta, _ENGINE, path)
    eager = _first(meta, _EAGER, _BOOL, path)
    if eager:
        engine["cuda_graphs"] = False
    sizes = _lookup(meta, _CAPTURE_SIZES)
    if sizes is not None:
        if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                  and s > 0 for s in sizes):
            raise TraceError(f"{path}: {_CAPTURE_SIZES}: expected a list of integers > 0, got "
                             f"{sizes!r}")
        if sizes:
            engine["cuda_graph_sizes"] = sizes
        else:
            engine["cuda_graphs"] = False     # nothing captured: every step runs eagerly
    mode = _lookup(meta, _CUDAGRAPH_MODE)
    if mode is not None:
        name = cudagraph_mode_name(mode)
        if name is None:
            warnings.warn(f"{path}: {_CUDAGRAPH_MODE}: cannot read {mode!r}: llmsim's default "
                          "mode is used", RunWarning, stacklevel=2)
        else:
            engine["cudagraph_mode"] = name
    return {"cluster": cluster, "scheduler": scheduler, "engine": engine}


def read_requests(path: Path) -> pd.DataFrame:
    """``requests.jsonl`` as REQUEST_COLUMNS; requests without output (failed) are left out."""
    check_not_empty(path)
    frame, _, line_of, found = read_jsonl(path, None, REQUIRED)
    check_columns(path, found, REQUIRED, OPTIONAL)
    if len(frame) == 0:
        raise no_rows(path)
    prompt = numeric_column(path, frame["input_toks"], "input_toks", COUNT, line_of)
    output = numeric_column(path, frame["output_toks"], "output_toks", COUNT_OR_ZERO, line_of)
    queued = numeric_column(path, frame["queued_ts"], "queued_ts", TIME, line_of)
    failed = (output == 0) | frame["first_token_ts"].isna().to_numpy() \
        | frame["last_token_ts"].isna().to_numpy()
    warn_left_out(path, int(failed.sum()), len(frame), "no output tokens or no token timestamps")
    kept = np.flatnonzero(~failed)

    def kept_line(row: int) -> int:
        return line_of(int(kept[row]))
    first = numeric_column(path, frame["first_token_ts"].iloc[kept], "first_token_ts", TIME,
                           kept_line)
    last = numeric_column(path, frame["last_token_ts"].iloc[kept], "last_token_ts", TIME,
                          kept_line)
    queued = queued[kept]
    _check_order(path, queued, first, "queued_ts", "first_token_ts", kept_line)
    _check_order(path, first, last, "first_token_ts", "last_token_ts", kept_line)
    return latency_frame(queued, prompt[kept], output[kept], first, last)


def _check_order(path: Path, early: np.ndarray, late: np.ndarray, early_name: str,
                 late_name: str, line_of) -> None:
    bad = late < early
    if bad.any():
        row = int(np.argmax(bad))
        raise TraceError(f"{path}: line {line_of(row)}: {late_name} ({late[row]!r}) is before "
                         f"{early_name} ({early[row]!r})")


def _warn_unmodelled(meta: dict, path: Path) -> None:
    """Settings that change a real run's speed but that the replay does not model."""
    kwargs = meta["engine_kwargs"]
    notes = []
    if kwargs.get("kv_cache_dtype") not in (None, "auto"):
        notes.append(f"kv_cache_dtype {kwargs['kv_cache_dtype']!r} (the model's dtype is used)")
    if _lookup(meta, "resolved_config.model_config.quantization") or kwargs.get("quantization"):
        notes.append("quantization (the model's dtype is used)")
    stages = _lookup(meta, "resolved_config.parallel_config.pipeline_parallel_size") or \
        kwargs.get("pipeline_parallel_size")
    if isinstance(stages, int) and stages > 1:
        notes.append(f"pipeline parallelism ({stages} stages)")
    if _lookup(meta, "resolved_config.speculative_config") or kwargs.get("speculative_config"):
        notes.append("speculative decoding")
    if notes:
        warnings.warn(f"{path}: not modelled by the replay: {'; '.join(notes)}", RunWarning,
                      stacklevel=3)


def _lookup(meta: dict, dotted: str):
    node = meta
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _first(meta: dict, places: tuple[str, ...], check: str, path: Path):
    """The value at the first of ``places`` that records one (not null), checked."""
    for dotted in places:
        value = _lookup(meta, dotted)
        if value is not None:
            if not _valid(value, check):
                raise TraceError(f"{path}: {dotted}: expected {check}, got {value!r}")
            return value
    return None


def _lookup_all(meta: dict, table: dict, path: Path) -> dict:
    found = {key: _first(meta, places, check, path) for key, (check, places) in table.items()}
    return {k: v for k, v in found.items() if v is not None}


def _valid(value, check: str) -> bool:
    if check == _BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if check == _INT:
        return isinstance(value, int) and value > 0
    return 0 < value <= 1
