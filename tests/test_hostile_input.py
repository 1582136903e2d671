"""Hostile input and unwritable outputs: one-line errors (exit 2), checked before a simulation
runs, and saves that never leave a folder mixing two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sim.cli import main
from sim.errors import OutputError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")
SMALL = ["--set", "workload.num_requests=30", "--no-progress"]


def one_line_error(capsys, words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert words in err, err


@pytest.mark.parametrize("kind", ["scenario", "profile", "sweep"])
def test_files_that_are_not_utf8(tmp_path, capsys, kind):
    bad = tmp_path / f"{kind}.yaml"
    if kind == "scenario":
        bad.write_bytes(Path(QUICKSTART).read_bytes() + b"\n# \xff\xfe\n")
        args = ["run", str(bad), *SMALL]
    elif kind == "profile":
        bad.write_bytes((ROOT / "hardware_profiles" / "h100-sxm.yaml").read_bytes() + b"\xff")
        args = ["hardware", "show", str(bad)]
    else:
        bad.write_bytes(b"scenario: quickstart.yaml\n\xff\n")
        args = ["sweep", str(bad), "-o", str(tmp_path / "sweep")]
    assert main(args) == 2
    one_line_error(capsys, "UTF-8")


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_an_unwritable_output_folder_fails_before_the_run(tmp_path, capsys, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "run"
    assert main(["run", QUICKSTART, "-o", str(out), *SMALL]) == 2
    one_line_error(capsys, str(blocker))
    assert blocker.read_text() == "not a folder"


def test_trace_events_naming_a_folder_fails_before_the_run(tmp_path, capsys):
    folder = tmp_path / "events"
    folder.mkdir()
    out = tmp_path / "out"
    assert main(["run", QUICKSTART, "-o", str(out), "--trace-events", str(folder), *SMALL]) == 2
    one_line_error(capsys, "is a folder")
    assert not out.exists()


def test_a_failed_save_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    from sim import Scenario, simulate

    result = simulate(Scenario.from_yaml(QUICKSTART, ["workload.num_requests=20"]))
    out = tmp_path / "run"
    result.save(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pq, "write_table", broken)
    other = simulate(Scenario.from_yaml(QUICKSTART, ["workload.num_requests=25"]))
    with pytest.raises(OutputError, match="No space left"):
        other.save(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # no staging left either


def test_scenario_names_stay_below_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", QUICKSTART, "--set", "name=../../outside", "--json", *SMALL]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "summary.json").is_file() and ".." not in run.name
    assert not (tmp_path.parent / "outside").exists()


def test_trace_convert_never_overwrites_its_input_nor_silently_another_file(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,10,5\n1.0,20,6\n")
    original = src.read_text()
    assert main(["trace", "convert", str(src), str(src)]) == 2
    one_line_error(capsys, "is the input trace")
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    assert main(["trace", "convert", str(src), str(out)]) == 2
    one_line_error(capsys, "--force")
    assert out.read_text() == "keep me" and src.read_text() == original
    assert main(["trace", "convert", str(src), str(out), "--force"]) == 0
    assert "prompt_tokens" in out.read_text()


def test_max_model_len_beyond_the_models_context(capsys):
    assert main(["run", QUICKSTART, "--set", "scheduler.max_model_len=10000000", *SMALL]) == 2
    one_line_error(capsys, "scheduler.max_model_len")


def test_the_does_not_fit_hint_names_a_degree_validation_accepts(capsys):
    # llama-2-13b has 40 heads: 16 would not divide them
    assert main(["validate", QUICKSTART, "--set", "model=llama-2-13b", "--set",
                 "hardware=l4"]) == 2
    err = capsys.readouterr().err
    degree = int(err.split("tensor_parallel: ")[1].split()[0])
    assert 40 % degree == 0
    assert main(["validate", QUICKSTART, "--set", "model=llama-2-13b", "--set", "hardware=l4",
                 "--set", f"cluster.tensor_parallel={degree}"]) == 0


def test_token_counts_beyond_any_context_are_refused(tmp_path, capsys):
    trace = tmp_path / "big.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,99999999999999999999999,5\n")
    assert main(["trace", "stats", str(trace)]) == 2
    one_line_error(capsys, "line 2: column 'prompt_tokens'")


def test_trace_stats_of_a_trace_spanning_ages_costs_its_rows(tmp_path, capsys):
    trace = tmp_path / "long.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1e15,10,5\n1e15,10,5\n")
    assert main(["trace", "stats", str(trace), "--json", "--plot", str(tmp_path / "p.png")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["peak_rate_per_min"] == 2


@pytest.mark.parametrize("damage", ["summary.json", "requests.parquet", "scenario.yaml"])
def test_report_on_a_damaged_result_folder(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert main(["run", QUICKSTART, "-o", str(out), "--json", *SMALL]) == 0
    capsys.readouterr()
    (out / damage).write_bytes(b"\xff\x00 not what it should be {")
    assert main(["report", str(out)]) == 2
    one_line_error(capsys, damage)


def test_sweep_on_a_damaged_results_file(tmp_path, capsys):
    """The combined file alone (as a sweep folder was before runs had files of their own)."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"scenario: {QUICKSTART}\nset: [workload.num_requests=20]\n"
                     "grid: {cluster.replicas: [1, 2]}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.parquet").write_text("not parquet")
    assert main(["sweep", str(sweep), "-o", str(out), "--workers", "1", "--no-progress"]) == 2
    one_line_error(capsys, "results.parquet")


def test_sweep_and_report_on_a_damaged_run_file(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"scenario: {QUICKSTART}\nset: [workload.num_requests=20]\n"
                     "grid: {cluster.replicas: [1, 2]}\n")
    out = tmp_path / "out"
    args = ["sweep", str(sweep), "-o", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    damaged = sorted((out / "results").glob("*.parquet"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-20])          # cut short
    capsys.readouterr()
    for command in (args, ["report", str(out)]):
        assert main(command) == 2
        one_line_error(capsys, f"results/{damaged.name}")


def test_a_different_sweep_into_a_sweep_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(f"name: first\nscenario: {QUICKSTART}\nset: [workload.num_requests=20]\n"
                     "grid: {cluster.replicas: [1, 2]}\n")
    second.write_text(f"name: second\nscenario: {QUICKSTART}\nset: [workload.num_requests=20]\n"
                      "grid: {scheduler.max_num_seqs: [8, 16]}\n")
    args = ["-o", str(out), "--workers", "1", "--no-progress"]
    assert main(["sweep", str(first), *args]) == 0
    assert main(["sweep", str(first), *args]) == 0          # the same sweep resumes
    capsys.readouterr()
    assert main(["sweep", str(second), *args]) == 2
    one_line_error(capsys, "another sweep")
    assert main(["sweep", str(second), *args, "--force"]) == 0


@pytest.mark.parametrize("setting, meant", [
    ("cluster.router=least-outstandin", "least-outstanding"),
    ("workload.arrivals.kind=poison", "poisson"),
    ("scheduler.name=fcf", "fcfs"),
    ("engine.cudagraph_mode=ful", "full"),
])
def test_every_registry_says_which_name_was_meant(capsys, setting, meant):
    assert main(["validate", QUICKSTART, "--set", setting]) == 2
    one_line_error(capsys, f"did you mean '{meant}'?")
