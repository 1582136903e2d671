"""``llmsim compare``: one-line errors with exit status 2, the files -o writes, --json."""

from __future__ import annotations

import json

import pytest

from sim.cli import main

from known_runs import HARDWARE

DOCUMENTED = {"run", "hardware", "model", "requests", "real", "sim", "error"}
SIDE_KEYS = {"ttft_s", "tpot_s", "e2e_s", "throughput_tokens_per_s"}
STAT_KEYS = {"mean", "p50", "p90", "p95", "p99"}


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)


def test_out_writes_compare_json_plots_and_the_run_outputs(known_run, tmp_path, capsys):
    folder, _, _ = known_run
    out = tmp_path / "cmp"
    code, printed, _ = run_cli(["compare", str(folder), "--hardware", HARDWARE, "-o", str(out),
                                "--no-progress"], capsys)
    assert code == 0
    data = json.loads((out / "compare.json").read_text())
    assert DOCUMENTED <= set(data)
    assert data["run"] == str(folder) and data["hardware"] == HARDWARE
    assert data["requests"] == 60
    for side in ("real", "sim"):
        assert set(data[side]) == SIDE_KEYS
        for name in ("ttft_s", "tpot_s", "e2e_s"):
            assert set(data[side][name]) == STAT_KEYS
    assert all(abs(v) < 1e-6 for v in data["error"]["ttft_s"].values())
    for name in ("cdf.png", "throughput.png", "summary.json", "requests.parquet",
                 "iterations.parquet", "scenario.yaml", "trace.csv", "throughput.csv"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "cdf.png").read_bytes()[:4] == b"\x89PNG"
    assert "TTFT" in printed and "error %" in printed


def test_json_prints_compare_json(known_run, capsys):
    folder, _, _ = known_run
    code, printed, _ = run_cli(["compare", str(folder), "--hardware", HARDWARE, "--json"],
                               capsys)
    assert code == 0
    data = json.loads(printed)
    assert DOCUMENTED <= set(data) and data["requests"] == 60


def test_missing_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    code, _, err = run_cli(["compare", str(missing), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, str(missing), "no such file or folder")


def test_folder_without_meta_or_bench_json(tmp_path, capsys):
    (tmp_path / "requests.jsonl").write_text("{}\n")
    code, _, err = run_cli(["compare", str(tmp_path), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, str(tmp_path), "no meta.json")


def test_malformed_jsonl_line_names_file_and_line(known_run, capsys):
    folder, _, _ = known_run
    path = folder / "requests.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]               # cut the closing of the third record
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, f"{path}: line 3: not valid JSON")


def test_missing_column_names_file_and_column(known_run, capsys):
    folder, _, _ = known_run
    path = folder / "requests.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        del r["first_token_ts"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, str(path), "missing column 'first_token_ts'")


def test_bad_value_names_the_line(known_run, capsys):
    folder, _, _ = known_run
    path = folder / "requests.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[4]["input_toks"] = -3
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, f"{path}: line 5: column 'input_toks'")


@pytest.mark.parametrize("meta_text, words", [
    ("{not json", "meta.json: line 1: not valid JSON"),
    ('{"schema_version": 1, "model": "acme/unknown-7b", "engine_kwargs": {}}',
     "pass --model"),
    ('{"schema_version": 1, "engine_kwargs": {"max_num_seqs": "many"}, '
     '"model": "meta-llama/Llama-3.1-8B"}', "engine_kwargs.max_num_seqs: expected an integer"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_meta_json(known_run, capsys, meta_text, words):
    folder, _, _ = known_run
    (folder / "meta.json").write_text(meta_text)
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE], capsys)
    assert_one_line_error(code, err, str(folder / "meta.json"), words)


def test_bad_set_names_the_field(known_run, capsys):
    folder, _, _ = known_run
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE,
                            "--set", "scheduler.max_num_seq=3"], capsys)
    assert_one_line_error(code, err, "scheduler.max_num_seq", "did you mean 'max_num_seqs'")


def test_unknown_hardware_and_bad_bin(known_run, capsys):
    folder, _, _ = known_run
    code, _, err = run_cli(["compare", str(folder), "--hardware", "h100-sxn"], capsys)
    assert_one_line_error(code, err, "h100-sx")
    code, _, err = run_cli(["compare", str(folder), "--hardware", HARDWARE, "--bin-s", "0"],
                           capsys)
    assert_one_line_error(code, err, "--bin-s")


def test_failed_requests_are_left_out_with_a_warning(known_run, capsys):
    folder, _, _ = known_run
    path = folder / "requests.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0].update(output_toks=0, first_token_ts=None, last_token_ts=None)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, printed, err = run_cli(["compare", str(folder), "--hardware", HARDWARE, "--json"],
                                 capsys)
    assert code == 0
    assert "warning: " in err and "1 of 60 requests failed" in err
    assert json.loads(printed)["requests"] == 59
