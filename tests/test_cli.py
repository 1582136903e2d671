"""The command line: exit codes, one-line errors, the files `run` writes."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")
SMALL = ["--set", "workload.num_requests=200"]


def test_run_writes_outputs_with_design_keys(tmp_path, capsys):
    assert main(["run", QUICKSTART, "-o", str(tmp_path), "--json", *SMALL]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("requests_total", "requests_completed", "requests_rejected", "preemptions",
                "ttft_s", "tpot_s", "e2e_s", "queue_s", "throughput_tokens_per_s",
                "goodput_requests_per_s", "slo_attainment", "simulated_duration_s",
                "wall_time_s", "energy_j", "cost_usd"):
        assert key in summary, key
    for key in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        assert set(summary[key]) == {"mean", "p50", "p90", "p99"}
    assert summary["requests_total"] == 200
    requests = pd.read_parquet(tmp_path / "requests.parquet")
    assert len(requests) == 200 and {"ttft_s", "tpot_s", "e2e_s"} <= set(requests.columns)
    assert len(pd.read_parquet(tmp_path / "iterations.parquet")) > 0
    assert "llama-3.1-8b" in (tmp_path / "scenario.yaml").read_text()
    printed = json.loads(capsys.readouterr().out)
    assert printed["requests_total"] == 200


@pytest.mark.parametrize("args, words", [
    (["run", QUICKSTART, "--set", "scheduler.max_num_seq=3"], "did you mean 'max_num_seqs'"),
    (["run", "does-not-exist.yaml"], "does-not-exist.yaml"),
    (["run", QUICKSTART, "--set", "model=llama-3.1-70b", "--set", "hardware=l4"],
     "tensor_parallel"),
    (["validate", QUICKSTART, "--set", "workload.arrivals.rate_rps=0"],
     "workload.arrivals.rate_rps"),
])
def test_bad_input_exits_2_with_one_line(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    assert err.strip().startswith("error:")


def test_validate_and_catalogs(capsys):
    assert main(["validate", QUICKSTART]) == 0
    assert "blocks" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert {"llama-3.1-8b", "mixtral-8x7b", "grok-1", "glam-143b"} <= names
    assert main(["hardware", "--json"]) == 0
    names = {d["name"] for d in json.loads(capsys.readouterr().out)}
    assert {"h100-sxm", "a100-80g-sxm", "mi300x", "l4"} <= names


def test_console_script_no_traceback(tmp_path):
    """The installed entry point prints one line and exits 2 on bad input."""
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "run", QUICKSTART, "--set",
                           "cluster.replicas=-1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "cluster.replicas" in proc.stderr and "Traceback" not in proc.stderr


def test_check_invariants_flag_turns_the_checks_on(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSIM_CHECK_INVARIANTS", "0")        # not the test suite's default
    for flag, expected in (([], False), (["--check-invariants"], True)):
        out = tmp_path / str(expected)
        assert main(["run", QUICKSTART, "-o", str(out), "--no-progress", *SMALL, *flag]) == 0
        text = (out / "scenario.yaml").read_text()
        assert f"check_invariants: {str(expected).lower()}" in text
