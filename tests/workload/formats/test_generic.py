"""The generic reader (CSV and JSON lines) and its writer."""

import json
from pathlib import Path

import numpy as np
import pytest

from sim.errors import TraceError
from sim.workload import TraceColumns, TraceConfig, load_trace
from sim.workload.formats.generic import read_generic, write_generic


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(path: Path, **kwargs):
    return load_trace(TraceConfig(str(path), format="generic", **kwargs))


CSV = """arrival_s,prompt_tokens,output_tokens,prefix_hashes
0.0,32,4,1 2
0.5,16,1,1|3
1.25,40,7,
"""


def test_csv_round_trip_with_prefix_hashes(tmp_path):
    cols = load(write(tmp_path / "t.csv", CSV))
    assert cols.arrival_s.tolist() == [0.0, 0.5, 1.25]
    assert cols.arrival_s.dtype == np.float64
    assert cols.prompt_tokens.tolist() == [32, 16, 40]
    assert cols.prompt_tokens.dtype == np.int64
    assert cols.output_tokens.tolist() == [4, 1, 7]
    assert cols.output_tokens.dtype == np.int64
    assert cols.prefix_hashes.tolist() == [(1, 2), (1, 3), ()]


def test_csv_without_prefix_hashes(tmp_path):
    cols = load(write(tmp_path / "t.csv", "arrival_s,prompt_tokens,output_tokens\n0,5,5\n"))
    assert cols.prefix_hashes is None and len(cols) == 1


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


RECORDS = [
    {"arrival_s": 0, "prompt_tokens": 32, "output_tokens": 4, "prefix_hashes": [1, 2]},
    {"arrival_s": 0.5, "prompt_tokens": 16, "output_tokens": 1, "prefix_hashes": [1, 3]},
    {"arrival_s": 1.25, "prompt_tokens": 40, "output_tokens": 7, "prefix_hashes": []},
]


@pytest.mark.parametrize("name", ["t.jsonl", "t.json-lines", "t.txt"])
def test_jsonl_round_trip_with_prefix_hashes(tmp_path, name):
    cols = load(write(tmp_path / name, jsonl(RECORDS)))
    assert cols.arrival_s.tolist() == [0.0, 0.5, 1.25]
    assert cols.prompt_tokens.tolist() == [32, 16, 40]
    assert cols.output_tokens.tolist() == [4, 1, 7]
    assert cols.prompt_tokens.dtype == np.int64
    assert cols.prefix_hashes.tolist() == [(1, 2), (1, 3), ()]


def test_unknown_extension_without_brace_is_csv(tmp_path):
    cols = load(write(tmp_path / "t.txt", CSV))
    assert cols.prompt_tokens.tolist() == [32, 16, 40]


def test_unsorted_arrivals_are_sorted_stably(tmp_path):
    rows = [((7 * i) % 3, i + 1) for i in range(60)]    # many ties: an unstable sort shows
    text = "arrival_s,prompt_tokens,output_tokens\n" + "".join(f"{a},{p},1\n" for a, p in rows)
    with pytest.warns(UserWarning, match="rows out of arrival order"):
        cols = load(write(tmp_path / "t.csv", text))
    expected = sorted(rows, key=lambda r: r[0])          # Python's sort is stable
    assert cols.arrival_s.tolist() == [a for a, _ in expected]
    assert cols.prompt_tokens.tolist() == [p for _, p in expected]   # ties keep file order


def test_unsorted_jsonl_reorders_prefix_hashes_too(tmp_path):
    with pytest.warns(UserWarning, match="2 rows out of arrival order"):
        cols = load(write(tmp_path / "t.jsonl", jsonl(RECORDS[::-1])))
    assert cols.prefix_hashes.tolist() == [(1, 2), (1, 3), ()]


def test_time_scale_multiplies_gaps(tmp_path):
    text = "arrival_s,prompt_tokens,output_tokens\n1,1,1\n2,1,1\n4,1,1\n"
    cols = load(write(tmp_path / "t.csv", text), time_scale=0.5)
    assert cols.arrival_s.tolist() == [1.0, 1.5, 2.5]


def test_limit_reads_first_rows(tmp_path):
    for name, text in [("t.csv", CSV), ("t.jsonl", jsonl(RECORDS))]:
        cols = load(write(tmp_path / name, text), limit=2)
        assert cols.prompt_tokens.tolist() == [32, 16]
        assert cols.prefix_hashes.tolist() == [(1, 2), (1, 3)]


def test_relative_path_resolved_against_base_dir(tmp_path):
    (tmp_path / "traces").mkdir()
    write(tmp_path / "traces" / "t.csv", CSV)
    cols = load_trace(TraceConfig("traces/t.csv"), base_dir=tmp_path)
    assert len(cols) == 3


# --- errors ----------------------------------------------------------------------------------

def test_missing_file_names_it(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.csv.*no such file.*s\.yaml"):
        load_trace(TraceConfig("nope.csv"), base_dir=tmp_path, source="s.yaml")


@pytest.mark.parametrize("name, text", [
    ("t.csv", "arrival_s,prompt,output_tokens\n0,1,1\n"),
    ("t.jsonl", '{"arrival_s": 0, "prompt": 1, "output_tokens": 1}\n'),
])
def test_missing_column_lists_found_and_expected(tmp_path, name, text):
    with pytest.raises(TraceError) as exc:
        load(write(tmp_path / name, text))
    msg = str(exc.value)
    assert name in msg
    assert "missing column 'prompt_tokens'" in msg
    assert "found: arrival_s, prompt, output_tokens" in msg
    assert "expected: arrival_s, prompt_tokens, output_tokens" in msg


@pytest.mark.parametrize("name, text, line, column", [
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,x,1\n", 3, "prompt_tokens"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,2,1\n2,3,0\n", 4, "output_tokens"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n-1,2,1\n", 3, "arrival_s"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,2.5,1\n", 3, "prompt_tokens"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,,1\n", 3, "prompt_tokens"),
    # a blank line is skipped but still counted in the line number
    ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n\n1,-3,1\n", 4, "prompt_tokens"),
    ("t.csv", "arrival_s,prompt_tokens,output_tokens,prefix_hashes\n0,1,1,1 2\n1,1,1,1 a\n", 3,
     "prefix_hashes"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n'
                '{"arrival_s": 1, "prompt_tokens": "x", "output_tokens": 1}\n', 2, "prompt_tokens"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n\n'
                '{"arrival_s": 1, "prompt_tokens": 1, "output_tokens": -2}\n', 3, "output_tokens"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n'
                '{"arrival_s": 1, "output_tokens": 1}\n', 2, "prompt_tokens"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n'
                '{"arrival_s": 1, "prompt_tokens": true, "output_tokens": 1}\n', 2, "prompt_tokens"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1, "prefix_hashes": [1]}\n'
                '{"arrival_s": 1, "prompt_tokens": 1, "output_tokens": 1, "prefix_hashes": "ab"}\n',
     2, "prefix_hashes"),
])
def test_bad_value_names_column_and_line(tmp_path, name, text, line, column):
    with pytest.raises(TraceError) as exc:
        load(write(tmp_path / name, text))
    msg = str(exc.value)
    assert name in msg
    assert f"line {line}:" in msg
    assert f"column '{column}'" in msg


def test_invalid_json_names_line(tmp_path):
    text = '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n{"arrival_s": 1,\n'
    with pytest.raises(TraceError, match=r"t\.jsonl: line 2: not valid JSON"):
        load(write(tmp_path / "t.jsonl", text))


@pytest.mark.parametrize("name, text", [
    ("t.csv", ""), ("t.jsonl", ""), ("t.csv", "\n\n"),
])
def test_empty_file(tmp_path, name, text):
    with pytest.raises(TraceError, match=rf"{name.replace('.', '[.]')}: empty file"):
        load(write(tmp_path / name, text))


def test_header_only_has_no_requests(tmp_path):
    with pytest.raises(TraceError, match="no requests"):
        load(write(tmp_path / "t.csv", "arrival_s,prompt_tokens,output_tokens\n"))


def test_optional_session_and_block_columns(tmp_path):
    text = ("arrival_s,prompt_tokens,output_tokens,prefix_hashes,session,prefix_block_tokens\n"
            "0,1024,4,1 2,7,512\n1,600,2,,,512\n")
    cols = load(write(tmp_path / "t.csv", text))
    assert cols.session.tolist() == [7, -1]
    assert cols.prefix_block_tokens == 512
    assert cols.prefix_hashes.tolist() == [(1, 2), ()]


def test_block_tokens_column_must_be_constant(tmp_path):
    text = "arrival_s,prompt_tokens,output_tokens,prefix_block_tokens\n0,1,1,16\n1,1,1,32\n"
    with pytest.raises(TraceError, match=r"line 3: column 'prefix_block_tokens': expected the same"):
        load(write(tmp_path / "t.csv", text))


def test_spaces_after_commas_are_read(tmp_path):
    # Arrow cannot parse " 5" as a number: the pandas fallback must still read the file
    cols = load(write(tmp_path / "t.csv", "arrival_s, prompt_tokens, output_tokens\n0, 5, 2\n"))
    assert cols.prompt_tokens.tolist() == [5] and cols.output_tokens.tolist() == [2]


def test_hash_too_large_for_int64(tmp_path):
    text = f"arrival_s,prompt_tokens,output_tokens,prefix_hashes\n0,1,1,{2**70}\n"
    with pytest.raises(TraceError, match="64-bit"):
        load(write(tmp_path / "t.csv", text))


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl"])
def test_write_then_read_round_trip(tmp_path, name):
    cols = TraceColumns(np.array([0.0, 0.25, 1.5]), np.array([1024, 5, 600]),
                        np.array([3, 1, 9]), [(4, 5), (), (4,)], np.array([0, -1, 0]))
    write_generic(cols, tmp_path / name, prefix_block_tokens=512)
    back = read_generic(tmp_path / name, TraceConfig(name), None)
    assert back.arrival_s.tolist() == [0.0, 0.25, 1.5]
    assert back.prompt_tokens.tolist() == [1024, 5, 600]
    assert back.output_tokens.tolist() == [3, 1, 9]
    assert back.prefix_hashes.tolist() == [(4, 5), (), (4,)]
    assert back.session.tolist() == [0, -1, 0]
    assert back.prefix_block_tokens == 512


def test_write_without_hashes_has_only_the_required_columns(tmp_path):
    cols = TraceColumns(np.array([0.0]), np.array([3]), np.array([4]))
    write_generic(cols, tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_text() == "arrival_s,prompt_tokens,output_tokens\n0,3,4\n"
