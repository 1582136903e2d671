"""Every command that reads a file, on a corpus of hostile files: it ends with its result or one
line of error (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parents[1]

BOMB = b"""a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
model: *g
workload: *g
"""
CORPUS = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "latin-1": "name: caf\u00e9\nmodel: llama-3.1-8b\n".encode("latin-1"),
    "truncated parquet": b"PAR1\x15\x04\x15\x10\x15\x14L",
    "broken json": b'{"model": "llama-3.1-8b", "engine_kwargs": {',
    "yaml alias bomb": BOMB,
    "huge numbers": (b"arrival_s,prompt_tokens,output_tokens\n0,1e400,5\n"
                     b"1,99999999999999999999999999999,5\n"),
    "csv with nul": b"arrival_s,prompt_tokens,output_tokens\n0,1\x00,5\n",
}


def _commands(tmp_path: Path, path: Path) -> dict[str, list[str]]:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    for name in ("meta.json", "requests.jsonl"):
        (run / name).write_bytes(path.read_bytes())
    tables = tmp_path / "tables" / "tp1"
    tables.mkdir(parents=True, exist_ok=True)
    for name in ("dense.csv", "attention.csv", "per_sequence.csv"):
        (tables / name).write_bytes(path.read_bytes())
    return {
        "run": ["run", str(path), "--no-progress", "-o", str(tmp_path / "out")],
        "validate": ["validate", str(path)],
        "hardware show": ["hardware", "show", str(path)],
        "trace stats": ["trace", "stats", str(path)],
        "trace convert": ["trace", "convert", str(path), str(tmp_path / "conv.csv")],
        "sweep": ["sweep", str(path), "-o", str(tmp_path / "sweep"), "--workers", "1",
                  "--no-progress"],
        "plan": ["plan", str(path), "-o", str(tmp_path / "plan"), "--workers", "1",
                 "--no-progress"],
        "compare": ["compare", str(run), "--hardware", "h100-sxm", "--no-progress"],
        "import-llmservingsim": ["calibrate", "import-llmservingsim", str(tmp_path / "tables"),
                                 "--base", "h100-sxm", "-o", str(tmp_path / "m.yaml")],
    }


COMMANDS = ["run", "validate", "hardware show", "trace stats", "trace convert", "sweep", "plan",
            "compare", "import-llmservingsim"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("content", sorted(CORPUS))
def test_hostile_file(tmp_path, capsys, command, content):
    suffix = {"trace stats": ".csv", "trace convert": ".csv"}.get(command, ".yaml")
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(CORPUS[content])
    code = main(_commands(tmp_path, path)[command])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2)
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
