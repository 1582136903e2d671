"""`llmsim trace stats | convert`, and the example Mooncake replay run on a generated file."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def mooncake_file(path: Path, n=60, seed=0) -> Path:
    """A small Mooncake-format trace: conversations whose turns extend earlier prompts."""
    rng = np.random.default_rng(seed)
    lines, next_id, chats = [], 1, []
    for i in range(n):
        if chats and rng.random() < 0.6:             # a follow-up: the earlier ids + new ones
            k = int(rng.integers(len(chats)))
            ids = chats[k] + list(range(next_id, next_id + 2))
            chats[k] = ids
        else:                                        # a new chat after the shared system prompt
            ids = [0] + list(range(next_id, next_id + 2))
            chats.append(ids)
        next_id += 2
        lines.append(json.dumps({"timestamp": i * 500, "input_length": len(ids) * 512 - 100,
                                 "output_length": int(rng.integers(5, 40)), "hash_ids": ids}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stats_json_keys_and_numbers(tmp_path, capsys):
    path = mooncake_file(tmp_path / "m.jsonl")
    assert main(["trace", "stats", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["format"] == "mooncake" and s["requests"] == 60
    assert s["duration_s"] == pytest.approx(59 * 0.5)
    assert s["peak_rate_per_min"] == 60
    assert 0.3 < s["prefix_sharing_ratio"] < 1.0
    assert s["prefix_block_tokens"] == 512
    assert set(s["prompt_tokens"]) >= {"mean", "p50", "p90", "p99", "max"}


def test_stats_table_and_plot(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,2\n30,20,3\n90,30,4\n")
    assert main(["trace", "stats", str(path), "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "requests" in out and "3" in out and "no prefix ids" in out
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_convert_to_generic_keeps_everything(tmp_path, capsys, suffix):
    src = mooncake_file(tmp_path / "m.jsonl")
    out = tmp_path / f"g{suffix}"
    assert main(["trace", "convert", str(src), str(out), "--to", "generic"]) == 0
    assert "wrote 60 requests" in capsys.readouterr().out
    assert main(["trace", "stats", str(src), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["trace", "stats", str(out), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["format"] == "generic"
    for key in ("requests", "duration_s", "prompt_tokens", "output_tokens",
                "prefix_sharing_ratio", "prefix_block_tokens"):
        assert after[key] == before[key], key


def test_unsorted_trace_warns_with_count(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n5,1,1\n0,1,1\n3,1,1\n")
    assert main(["trace", "stats", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "1 row out of arrival order; sorted" in captured.err
    assert json.loads(captured.out)["duration_s"] == 5.0


@pytest.mark.parametrize("name, text, args, words", [
    ("t.csv", "", [], "empty file"),
    ("t.csv", "arrival_s,prompt,output_tokens\n0,1,1\n", [],
     "missing column 'prompt_tokens'"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,x,1\n", [],
     "line 3: column 'prompt_tokens'"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,-4,1\n", [],
     "line 3: column 'prompt_tokens': expected an integer >= 1 (at most 1,000,000,000), got -4"),
    ("t.csv", "a,b\n1,2\n", [], "cannot tell the trace format"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n", ["--format", "azur"],
     "did you mean 'azure'"),
    ("missing.csv", None, [], "no such file"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, name, text, args, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    assert main(["trace", "stats", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and words in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_format_lists_the_known_ones(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n")
    assert main(["trace", "convert", str(path), str(tmp_path / "o.csv"), "--format", "xyz"]) == 2
    err = capsys.readouterr().err
    for name in ("azure", "burstgpt", "generic", "mooncake", "sharegpt", "vidur"):
        assert name in err


def test_mooncake_replay_scenario_caches_only_with_prefix_caching(tmp_path):
    trace = mooncake_file(tmp_path / "m.jsonl", n=80)
    scenario = str(ROOT / "scenarios" / "mooncake-replay.yaml")
    cached = {}
    for caching in ("true", "false"):
        out = tmp_path / caching
        assert main(["run", scenario, "-o", str(out), "--json", "--no-progress",
                     "--set", f"workload.trace.path={trace}",
                     "--set", f"scheduler.prefix_caching={caching}"]) == 0
        requests = pd.read_parquet(out / "requests.parquet")
        assert len(requests) == 80
        cached[caching] = int(requests.cached_prompt_tokens.sum())
    assert cached["true"] > 0 and cached["false"] == 0
