"""Streamed, dropped and sampled output tables give the in-memory run's results."""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.errors import ScenarioError
from sim.metrics import columns, records
from sim.metrics.columns import ColumnBuffer
from sim.metrics.result import read_parquet

# iteration figures of the summary: summed block by block when rows leave memory
ITERATION_FIGURES = ("kv_usage_mean", "batch_size_mean")


def _scenario(*sets: str) -> Scenario:
    return Scenario.from_yaml("scenarios/quickstart.yaml",
                              ["workload.num_requests=400", "scheduler.kv_blocks=300",
                               "workload.arrivals.rate_rps=30", *sets])


def _same_summary(a: dict, b: dict) -> None:
    for key in a.keys() | b.keys():
        if key == "wall_time_s":
            continue
        if key in ITERATION_FIGURES:
            assert a[key] == pytest.approx(b[key], rel=1e-12), key
        else:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key


@pytest.fixture(scope="module")
def in_memory():
    return simulate(_scenario())


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 rows (rows moved into columns 16 at a time), so that a small run streams
    many row groups."""
    monkeypatch.setattr(records, "STREAM_BLOCK_ROWS", 64)
    monkeypatch.setattr(columns, "_BLOCK_ROWS", 16)


def test_streamed_tables_equal_the_in_memory_ones(in_memory, small_blocks, tmp_path):
    streamed = simulate(_scenario("simulation.stream_outputs=true"))
    _same_summary(streamed.summary, in_memory.summary)
    assert streamed.summary["preemptions"] > 0      # memory pressure: a varied table
    # the file holds rows in completion order, many row groups; the table reads back sorted
    import pyarrow.parquet as pq
    raw = pq.ParquetFile(streamed._files["requests"][0])
    assert raw.metadata.num_row_groups > 3
    assert not raw.read(columns=["request_id"]).column(0).to_numpy().tolist() == \
        sorted(raw.read(columns=["request_id"]).column(0).to_numpy().tolist())
    pd.testing.assert_frame_equal(streamed.requests, in_memory.requests)
    pd.testing.assert_frame_equal(streamed.iterations, in_memory.iterations)
    # saved results read back the same whichever way the run kept them
    a, b = in_memory.save(tmp_path / "a"), simulate(
        _scenario("simulation.stream_outputs=true")).save(tmp_path / "b")
    pd.testing.assert_frame_equal(records.read_requests(a / "requests.parquet"),
                                  records.read_requests(b / "requests.parquet"))
    pd.testing.assert_frame_equal(read_parquet(a / "iterations.parquet"),
                                  read_parquet(b / "iterations.parquet"))


def test_streamed_files_go_with_the_result(small_blocks):
    result = simulate(_scenario("simulation.stream_outputs=true",
                                "workload.num_requests=50"))
    folder = result._files["requests"][0].parent
    assert folder.is_dir()
    del result
    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize("stream", ["false", "true"])
def test_iteration_rows_dropped_or_sampled(in_memory, small_blocks, stream):
    every = in_memory.iterations
    none = simulate(_scenario("simulation.iteration_rows=none",
                              f"simulation.stream_outputs={stream}"))
    assert len(none.iterations) == 0
    assert list(none.iterations.columns) == list(every.columns)
    _same_summary(none.summary, in_memory.summary)   # events, batch size: every iteration
    pd.testing.assert_frame_equal(none.requests, in_memory.requests)
    sampled = simulate(_scenario("simulation.iteration_rows=sampled",
                                 "simulation.iteration_sample_every=7",
                                 f"simulation.stream_outputs={stream}"))
    assert len(sampled.iterations) == math.ceil(len(every) / 7)
    pd.testing.assert_frame_equal(sampled.iterations,
                                  every.iloc[::7].reset_index(drop=True))
    _same_summary(sampled.summary, in_memory.summary)


def test_a_buffer_with_a_sink_holds_one_block():
    blocks = []
    buf = ColumnBuffer({"a": "int64", "b": "float64"}, capacity=2048,
                       sink=lambda cols: blocks.append({k: v.copy() for k, v in cols.items()}))
    for i in range(10_000):
        buf.append((i, i / 2))
        assert buf._n <= 2048
    buf.drain()
    assert len(buf) == 10_000 == sum(len(b["a"]) for b in blocks)
    assert np.concatenate([b["a"] for b in blocks]).tolist() == list(range(10_000))
    assert max(len(b["a"]) for b in blocks) <= 2048


def test_bad_output_settings_are_named():
    with pytest.raises(ScenarioError, match="iteration_rows"):
        _scenario("simulation.iteration_rows=some")
    with pytest.raises(ScenarioError, match="iteration_sample_every"):
        _scenario("simulation.iteration_sample_every=0")
