"""Sweeps: expansion, keys, the keyed store (one file per run, written once, atomically),
resuming after SIGKILL, and identical results on the local pool, inline and on Ray."""

import json
import os
import shutil
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
    stale = [tmp_path / ".r.parquet.999999999.tmp",          # writers killed mid-write
             tmp_path / "r" / ".b.parquet.999999999.tmp"]
    (tmp_path / "r").mkdir()
    for f in stale:
        f.write_text("half a file")
    store = ResultsStore(tmp_path / "r.parquet", lead=("p",))
    assert not any(f.exists() for f in stale)
    assert store.add({"run": 2, "key": "b", "z": 1.0, "p": "x"})
    assert store.add({"run": 0, "key": "a", "p": "y", "z": 2.0, "extra": 3})
    assert not store.add({"run": 0, "key": "a", "p": "y", "z": 9.0})
    assert sorted(f.name for f in (tmp_path / "r").iterdir()) == ["a.parquet", "b.parquet"]
    assert not (tmp_path / "r.parquet").exists()          # written once, at the end
    assert store.write_combined() == tmp_path / "r.parquet"
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert list(frame.columns) == ["run", "key", "p", "extra", "z"]
    assert list(frame["key"]) == ["a", "b"] and list(frame["z"]) == [2.0, 1.0]
    pd.testing.assert_frame_equal(read_results(tmp_path / "r.parquet"), frame)
    pd.testing.assert_frame_equal(store.frame(), frame)
    assert ResultsStore(tmp_path / "r.parquet").keys == {"a", "b"}
    assert store.row("a")["extra"] == 3 and store.row("c") is None
    assert not list(tmp_path.rglob("*.tmp"))


ROWS = [{"run": i, "key": f"k{i}", "p": f"v{i}", "z": float(i), **({"extra": i} if i % 2 else {})}
        for i in range(4)]


def test_store_never_rewrites_a_finished_run(tmp_path):
    """A run's file is written once: later runs add files and leave earlier ones as they were
    (the store used to rewrite one growing file per run)."""
    store = ResultsStore(tmp_path / "results.parquet", lead=("p",))
    seen = {}
    for row in ROWS:
        store.add(row)
        for key, (inode, mtime_ns) in seen.items():
            st = (tmp_path / "results" / f"{key}.parquet").stat()
            assert (st.st_ino, st.st_mtime_ns) == (inode, mtime_ns), key
        st = (tmp_path / "results" / f"{row['key']}.parquet").stat()
        seen[row["key"]] = (st.st_ino, st.st_mtime_ns)
    assert len(read_results(tmp_path / "results.parquet")) == 4


def test_results_do_not_depend_on_finish_order(tmp_path):
    combined = []
    for i, order in enumerate([(0, 1, 2, 3), (3, 1, 0, 2), (2, 3, 1, 0)]):
        store = ResultsStore(tmp_path / str(i) / "results.parquet", lead=("p",))
        for j in order:
            store.add(ROWS[j])
        combined.append(store.write_combined().read_bytes())
        frame = read_results(store.path)
        assert list(frame.columns) == ["run", "key", "p", "extra", "z"]
        assert list(frame["run"]) == [0, 1, 2, 3]
    assert combined[0] == combined[1] == combined[2]


def test_two_writers_sharing_a_folder_keep_every_row(tmp_path):
    a = ResultsStore(tmp_path / "results.parquet", lead=("p",))
    b = ResultsStore(tmp_path / "results.parquet", lead=("p",))
    assert a.add(ROWS[0]) and b.add(ROWS[1]) and a.add(ROWS[2])
    assert not b.add(ROWS[2])                   # a finished it: b reads a's row
    assert b.row("k2") == a.row("k2")
    b.write_combined()
    assert list(pd.read_parquet(tmp_path / "results.parquet")["key"]) == ["k0", "k1", "k2"]


def test_a_combined_file_alone_becomes_per_run_files(tmp_path):
    """A folder written before runs had files of their own: its runs are kept, not run again."""
    store = ResultsStore(tmp_path / "results.parquet", lead=("p",))
    for row in ROWS[:3]:
        store.add(row)
    before = pd.read_parquet(store.write_combined())
    shutil.rmtree(tmp_path / "results")
    again = ResultsStore(tmp_path / "results.parquet", lead=("p",))
    assert again.keys == {"k0", "k1", "k2"} and not again.add(ROWS[1])
    assert again.add(ROWS[3])
    assert len(list((tmp_path / "results").glob("*.parquet"))) == 4
    after = pd.read_parquet(again.write_combined())
    pd.testing.assert_frame_equal(after.iloc[:3].dropna(axis=1, how="all"),
                                  before.dropna(axis=1, how="all"))


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
            if any((out / "results").glob("*.parquet")):
                rows = len(read_results(results))      # while the sweep adds to it
                if rows >= 2:
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = read_results(results)
    assert 1 <= len(before) < 12
    assert not results.exists()              # written when the sweep finishes
    assert main(["sweep", str(QUICK_SWEEP), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    after = pd.read_parquet(results)
    assert not list(out.rglob("*.tmp"))      # the killed writers' temporaries are gone
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
