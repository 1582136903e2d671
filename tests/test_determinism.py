"""Same scenario and seed, same results: within a process, across processes (fresh hash seeds),
and different seeds differ."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SETS = ["workload.num_requests=300", "scheduler.kv_blocks=200", "workload.arrivals.rate_rps=30", "workload.prompt_tokens=null",
        "workload.prefix_sharing={groups: 10, share_degree: 8, prefix_tokens: 256, "
        "suffix_tokens: {dist: uniform, min: 16, max: 400}}"]


def run_in_fresh_process(out: Path, hash_seed: str, seed: int = 42) -> None:
    args = [sys.executable, "-m", "sim.cli", "run", str(ROOT / "scenarios" / "quickstart.yaml"),
            "-o", str(out), "--no-progress", "--set", f"seed={seed}"]
    for item in SETS:
        args += ["--set", item]
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    subprocess.run(args, check=True, capture_output=True, env=env, cwd=ROOT)


def load(out: Path):
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("wall_time_s")
    return summary, pd.read_parquet(out / "requests.parquet")


def test_identical_across_process_restarts_and_hash_seeds(tmp_path):
    run_in_fresh_process(tmp_path / "a", "1")
    run_in_fresh_process(tmp_path / "b", "12345")
    (sa, ra), (sb, rb) = load(tmp_path / "a"), load(tmp_path / "b")
    assert sa == sb
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)
    assert sa["preemptions"] > 0 and sa["prefix_cache_hit_rate"] > 0   # the run exercised both
    run_in_fresh_process(tmp_path / "c", "1", seed=43)
    sc, _ = load(tmp_path / "c")
    assert sc != sa
