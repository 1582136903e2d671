"""load_trace: format choice, the transformation order, TraceConfig validation."""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import ConfigValueError
from sim.errors import TraceError
from sim.workload import TRACE_FORMATS, TraceConfig, TraceWarning, load_trace


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def generic(path: Path, arrivals, prompts=None, hashes=None) -> Path:
    prompts = prompts or [10 + i for i in range(len(arrivals))]
    lines = ["arrival_s,prompt_tokens,output_tokens" + (",prefix_hashes" if hashes else "")]
    for i, (a, p) in enumerate(zip(arrivals, prompts)):
        lines.append(f"{a},{p},2" + ("," + " ".join(map(str, hashes[i])) if hashes else ""))
    return write(path, "\n".join(lines) + "\n")


def load(path: Path, rng=None, **kwargs):
    return load_trace(TraceConfig(str(path), **kwargs), rng=rng)


ARRIVALS = [0.0, 1.0, 2.0, 4.0, 8.0, 9.0]


def test_window_is_half_open_on_the_trace_clock(tmp_path):
    cols = load(generic(tmp_path / "t.csv", ARRIVALS), start_s=1.0, end_s=8.0)
    assert cols.arrival_s.tolist() == [1.0, 2.0, 4.0]


def test_limit_counts_from_the_window(tmp_path):
    cols = load(generic(tmp_path / "t.csv", ARRIVALS), start_s=2.0, limit=2)
    assert cols.arrival_s.tolist() == [2.0, 4.0]


def test_empty_window_is_an_error(tmp_path):
    with pytest.raises(TraceError, match=r"no requests in the window \[20.0, None\)"):
        load(generic(tmp_path / "t.csv", ARRIVALS), start_s=20.0)


def test_shift_to_zero_then_time_scale(tmp_path):
    cols = load(generic(tmp_path / "t.csv", ARRIVALS), start_s=2.0, shift_to_zero=True,
                time_scale=0.5)
    assert cols.arrival_s.tolist() == [0.0, 1.0, 3.0, 3.5]


def test_target_rate_rescales_gaps(tmp_path):
    # 5 gaps over 9 s; at 2 rps they span 2.5 s
    cols = load(generic(tmp_path / "t.csv", ARRIVALS), target_rate_rps=2.0)
    assert cols.arrival_s[-1] - cols.arrival_s[0] == pytest.approx(2.5)
    assert np.diff(cols.arrival_s) == pytest.approx(np.diff(ARRIVALS) * 2.5 / 9.0)


def test_target_rate_of_a_single_instant_leaves_it(tmp_path):
    cols = load(generic(tmp_path / "t.csv", [3.0, 3.0]), target_rate_rps=2.0)
    assert cols.arrival_s.tolist() == [3.0, 3.0]


def test_sample_frac_is_seeded_and_keeps_order(tmp_path):
    path = generic(tmp_path / "t.csv", [float(i) for i in range(100)])
    a = load(path, rng=np.random.default_rng(1), sample_frac=0.3)
    b = load(path, rng=np.random.default_rng(1), sample_frac=0.3)
    c = load(path, rng=np.random.default_rng(2), sample_frac=0.3)
    assert len(a) == 30
    assert np.all(np.diff(a.arrival_s) > 0)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    assert not np.array_equal(a.arrival_s, c.arrival_s)
    # rows stay rows: prompt i belongs to arrival i
    np.testing.assert_array_equal(a.prompt_tokens, a.arrival_s.astype(int) + 10)


def test_repeat_tiles_with_one_mean_gap_and_new_ids(tmp_path):
    path = generic(tmp_path / "t.csv", [0.0, 1.0, 3.0], hashes=[(7, 8), (7,), (9,)])
    cols = load(path, repeat=3)
    # span 3 s, mean gap 1.5 s: copies start every 4.5 s
    assert cols.arrival_s.tolist() == [0.0, 1.0, 3.0, 4.5, 5.5, 7.5, 9.0, 10.0, 12.0]
    ids = cols.prefix_hashes.tolist()
    assert ids[:3] == [(0, 1), (0,), (2,)]          # made compact: 7, 8, 9 -> 0, 1, 2
    assert ids[3:6] == [(3, 4), (3,), (5,)]         # a copy shares within itself, not across
    assert ids[6:] == [(6, 7), (6,), (8,)]
    assert cols.prompt_tokens.tolist() == [10, 11, 12] * 3


def test_transformations_apply_in_documented_order(tmp_path):
    # window [1, 9) -> 1, 2, 4, 8; limit 3 -> 1, 2, 4; shift -> 0, 1, 3; scale 2 -> 0, 2, 6;
    # repeat 2 (span 6, mean gap 3, period 9) -> 0, 2, 6, 9, 11, 15
    cols = load(generic(tmp_path / "t.csv", ARRIVALS), start_s=1.0, end_s=9.0, limit=3,
                shift_to_zero=True, time_scale=2.0, repeat=2)
    assert cols.arrival_s.tolist() == [0.0, 2.0, 6.0, 9.0, 11.0, 15.0]


def test_unsorted_rows_are_sorted_with_a_warning_that_counts_them(tmp_path):
    path = generic(tmp_path / "t.csv", [0.0, 5.0, 1.0, 2.0, 0.5], prompts=[1, 2, 3, 4, 5])
    with pytest.warns(TraceWarning, match=r"t\.csv: 2 rows out of arrival order; sorted"):
        cols = load(path)
    assert cols.arrival_s.tolist() == [0.0, 0.5, 1.0, 2.0, 5.0]
    assert cols.prompt_tokens.tolist() == [1, 5, 3, 4, 2]


def test_format_is_detected_and_block_tokens_come_from_it(tmp_path):
    path = write(tmp_path / "m.jsonl", json.dumps(
        {"timestamp": 1500, "input_length": 600, "output_length": 3, "hash_ids": [1, 2]}) + "\n")
    cols = load(path)
    assert cols.format == "mooncake" and cols.prefix_block_tokens == 512
    assert cols.arrival_s.tolist() == [1.5]
    assert load(path, prefix_block_tokens=256).prefix_block_tokens == 256
    g = load(generic(tmp_path / "t.csv", [0.0]))
    assert g.format == "generic" and g.prefix_block_tokens == 16


def test_option_of_another_format_is_refused(tmp_path):
    path = generic(tmp_path / "t.csv", [0.0])
    with pytest.raises(TraceError, match=r"workload\.trace\.models: expected no value \(only "
                                         r"format 'burstgpt' reads it; this trace is 'generic'\)"):
        load(path, models=["ChatGPT"])
    with pytest.raises(ConfigValueError) as exc:
        TraceConfig("x.csv", format="azure", turns="all")
    assert exc.value.field == "turns"


def test_relative_path_resolved_against_base_dir(tmp_path):
    (tmp_path / "traces").mkdir()
    generic(tmp_path / "traces" / "t.csv", [0.0, 1.0])
    assert len(load_trace(TraceConfig("traces/t.csv"), base_dir=tmp_path)) == 2


def test_missing_file_names_it(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.csv.*no such file.*s\.yaml"):
        load_trace(TraceConfig("nope.csv"), base_dir=tmp_path, source="s.yaml")


@pytest.mark.parametrize("name, text", [("t.csv", ""), ("t.jsonl", ""), ("t.json", "\n\n")])
def test_empty_file(tmp_path, name, text):
    with pytest.raises(TraceError, match=rf"{name.replace('.', '[.]')}: empty file"):
        load(write(tmp_path / name, text))


def test_unknown_header_lists_known_formats(tmp_path):
    with pytest.raises(TraceError) as exc:
        load(write(tmp_path / "t.csv", "a,b,c\n1,2,3\n"))
    msg = str(exc.value)
    assert "cannot tell the trace format" in msg and "found: a, b, c" in msg
    for name in TRACE_FORMATS:
        assert name in msg


@pytest.mark.parametrize("kwargs, field", [
    ({"format": "generc"}, "format"),
    ({"time_scale": 0.0}, "time_scale"),
    ({"limit": 0}, "limit"),
    ({"prefix_block_tokens": 0}, "prefix_block_tokens"),
    ({"start_s": -1.0}, "start_s"),
    ({"start_s": 5.0, "end_s": 5.0}, "end_s"),
    ({"sample_frac": 0.0}, "sample_frac"),
    ({"sample_frac": 1.5}, "sample_frac"),
    ({"target_rate_rps": 0.0}, "target_rate_rps"),
    ({"target_rate_rps": 2.0, "time_scale": 0.5}, "target_rate_rps"),
    ({"repeat": 0}, "repeat"),
    ({"format": "generic", "log_types": ["API log"]}, "log_types"),
    ({"format": "mooncake", "tokenizer": "chars"}, "tokenizer"),
])
def test_invalid_trace_config(kwargs, field):
    with pytest.raises(ConfigValueError) as exc:
        TraceConfig("x.csv", **kwargs)
    assert exc.value.field == field


def test_unknown_format_lists_known_and_suggests_close_name():
    with pytest.raises(ConfigValueError, match="did you mean 'generic'") as exc:
        TraceConfig("x.csv", format="generc")
    for name in TRACE_FORMATS:
        assert name in exc.value.expected


def test_million_rows_load_quickly(tmp_path):
    n = 1_000_000
    rng = np.random.default_rng(0)
    path = tmp_path / "big.csv"
    pd.DataFrame({"arrival_s": np.cumsum(rng.exponential(0.01, n)).round(6),
                  "prompt_tokens": rng.integers(1, 4000, n),
                  "output_tokens": rng.integers(1, 500, n)}).to_csv(path, index=False)
    start = time.perf_counter()
    cols = load(path)
    elapsed = time.perf_counter() - start
    assert len(cols) == n and cols.prompt_tokens.dtype == np.int64
    assert elapsed < 5.0     # ~0.1 s here; generous so a loaded CI machine does not flake
