"""Sweeps: expansion, keys, the atomic keyed store, resuming after SIGKILL, and identical
results on the local pool, inline and on Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.planning import ResultsStore, load_sweep, make_backend, results_without_volatile, run_sweep
from sim.planning.store import read_results

ROOT = Path(__file__).resolve().parents[2]
QUICK_SWEEP = ROOT / "scenarios" / "sweep_quickstart.yaml"    # local_results: conftest.py


def write_sweep(tmp_path: Path, **fields) -> Path:
    data = {"scenario": str(ROOT / "scenarios" / "quickstart.yaml"),
            "set": ["workload.num_requests=60", "cluster.replicas=1"], **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_times_zip_expands_in_order(tmp_path):
    path = write_sweep(tmp_path, grid={"workload.arrivals.rate_rps": [2, 4],
                                       "scheduler.name": ["fcfs", "past_future"]},
                       zip={"hardware": ["h100-sxm", "a100-80g-sxm"],
                            "scheduler.max_num_seqs": [64, 32]})
    sweep = load_sweep(path)
    assert len(sweep.tasks) == 8
    assert sweep.params == ["workload.arrivals.rate_rps", "scheduler.name", "hardware",
                            "scheduler.max_num_seqs"]
    assert [t.index for t in sweep.tasks] == list(range(8))
    first, last = sweep.tasks[0].params, sweep.tasks[-1].params
    assert first == {"workload.arrivals.rate_rps": 2, "scheduler.name": "fcfs",
                     "hardware": "h100-sxm", "scheduler.max_num_seqs": 64}
    assert last == {"workload.arrivals.rate_rps": 4, "scheduler.name": "past_future",
                    "hardware": "a100-80g-sxm", "scheduler.max_num_seqs": 32}
    assert len({t.key for t in sweep.tasks}) == 8
    assert sweep.tasks[-1].scenario["hardware"] == "a100-80g-sxm"


def test_key_is_the_resolved_scenario(tmp_path):
    """Spelling a default out does not change the key; changing a value does."""
    a = load_sweep(write_sweep(tmp_path, grid={"seed": [1]})).tasks[0].key
    b = load_sweep(write_sweep(tmp_path, grid={"seed": [1]},
                               zip={"scheduler.block_size": [16]})).tasks[0].key
    c = load_sweep(write_sweep(tmp_path, grid={"seed": [2]})).tasks[0].key
    assert a == b != c


@pytest.mark.parametrize("fields, words", [
    ({"zip": {"seed": [1, 2], "cluster.replicas": [1]}}, "zip: expected lists of equal length"),
    ({"grid": {"seed": []}}, "grid.seed: expected a non-empty list"),
    ({"grid": {"scheduler.max_num_seq": [4]}}, "run 0 (scheduler.max_num_seq=4): "
                                               "scheduler.max_num_seq: unknown key"),
    ({"grid": {"cluster.replicas": [1, 0]}}, "run 1 (cluster.replicas=0): cluster.replicas"),
    ({"gird": {"seed": [1]}}, "gird: unknown key; did you mean 'grid'?"),
])
def test_bad_sweeps_name_file_run_and_field(tmp_path, fields, words):
    path = write_sweep(tmp_path, **fields)
    with pytest.raises(ScenarioError) as err:
        load_sweep(path)
    assert str(err.value).startswith(str(path))
    assert words in str(err.value)


def test_bad_sweep_exits_2_with_one_line(tmp_path, capsys):
    path = write_sweep(tmp_path, grid={"hardware": ["h100-sxm", "nope-gpu"]})
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope-gpu" in err and "Traceback" not in err
    assert main(["sweep", str(path), "-o", str(tmp_path), "--backend", "local",
                 "--address", "x:1"]) == 2


def test_store_dedupes_and_orders_rows(tmp_path):
    stale = tmp_path / ".r.parquet.999999999.tmp"      # a writer killed mid-write
    stale.write_text("half a file")
    store = ResultsStore(tmp_path / "r.parquet", lead=("p",))
    assert not stale.exists()
    assert store.add({"run": 2, "key": "b", "z": 1.0, "p": "x"})
    assert store.add({"run": 0, "key": "a", "p": "y", "z": 2.0, "extra": 3})
    assert not store.add({"run": 0, "key": "a", "p": "y", "z": 9.0})
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert list(frame.columns) == ["run", "key", "p", "extra", "z"]
    assert list(frame["key"]) == ["a", "b"] and list(frame["z"]) == [2.0, 1.0]
    assert ResultsStore(tmp_path / "r.parquet").keys == {"a", "b"}
    assert not list(tmp_path.glob("*.tmp"))


def test_inline_and_pool_give_the_same_rows(tmp_path):
    path = write_sweep(tmp_path, grid={"workload.arrivals.rate_rps": [4, 8, 16]})
    sweep = load_sweep(path)
    frames = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        backend = make_backend("local", workers)
        try:
            outcome = run_sweep(sweep, out, backend)
        finally:
            backend.close()
        assert (outcome.ran, outcome.skipped) == (3, 0)
        frames.append(results_without_volatile(pd.read_parquet(out / "results.parquet")))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
    assert frames[0]["workload.arrivals.rate_rps"].tolist() == [4, 8, 16]


def test_shipped_sweep_has_12_quick_runs(local_results):
    assert len(local_results) == 12 and local_results["key"].is_unique
    assert local_results["run"].tolist() == list(range(12))
    assert (local_results["wall_time_s"] < 10).all()
    assert (local_results["requests_completed"] == 300).all()
    assert {"ttft_s.p90", "usd_per_hour", "usd_per_million_output_tokens",
            "goodput_requests_per_s"} <= set(local_results.columns)


def test_sigkill_then_rerun_completes_without_duplicates(tmp_path, local_results):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(QUICK_SWEEP), "-o", str(out),
           "--workers", "2", "--no-progress"]
    # its own session, so that the kill reaches the pool workers and the fork server too
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.parquet"
    deadline = time.monotonic() + 60
    rows = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists():
                rows = len(read_results(results))      # while the sweep replaces it
                if rows >= 2:
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = pd.read_parquet(results)
    assert 1 <= len(before) < 12
    assert main(["sweep", str(QUICK_SWEEP), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    after = pd.read_parquet(results)
    assert len(after) == 12 and after["key"].is_unique
    pd.testing.assert_frame_equal(results_without_volatile(after),
                                  results_without_volatile(local_results), check_exact=True)
    # the rows written before the kill were kept, not simulated again
    kept = after.set_index("key").loc[before["key"], "wall_time_s"]
    assert kept.tolist() == before["wall_time_s"].tolist()
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["runs"] == 12 and meta["params"][0] == "workload.arrivals.rate_rps"


def test_ray_gives_identical_results(tmp_path, local_results):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert main(["sweep", str(QUICK_SWEEP), "-o", str(out), "--backend", "ray", "--workers",
                 "2", "--no-progress"]) == 0
    ray_results = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(results_without_volatile(ray_results),
                                  results_without_volatile(local_results), check_exact=True)


def test_backend_errors_are_one_liners(monkeypatch):
    from sim.errors import LlmsimError

    monkeypatch.setitem(sys.modules, "ray", None)       # as if Ray were not installed
    with pytest.raises(LlmsimError, match=r"pip install 'llmsim\[ray\]'"):
        make_backend("ray")
    with pytest.raises(LlmsimError, match="did you mean 'local'"):
        make_backend("locl")
    with pytest.raises(LlmsimError, match="--workers"):
        make_backend("local", 0)
