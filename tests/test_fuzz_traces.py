"""Fuzzing trace files: the shipped sample of every format, mutated line by line (fields dropped,
replaced by garbage, negative or huge numbers, lines duplicated, truncated, shuffled), must load
or fail with TraceError/ScenarioError naming the file; never another exception.

    LLMSIM_FUZZ_EXAMPLES=1000 python -m pytest -m fuzz tests/test_fuzz_traces.py
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import LlmsimError
from sim.workload.traces import TraceConfig, load_trace

EXAMPLES = int(os.environ.get("LLMSIM_FUZZ_EXAMPLES", "40"))
pytestmark = pytest.mark.fuzz
SAMPLES = Path(__file__).resolve().parents[1] / "workloads" / "samples"
FILES = sorted(p.name for p in SAMPLES.iterdir())
GARBAGE = ["", "-1", "-5.5", "nan", "inf", "1e400", "abc", "null", "[]", "{}", "0", "99999999999",
           '"', ",", "{", "}", "true", "1.5"]


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(FILES))
    text = (SAMPLES / name).read_text()
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "drop", "dup", "truncate", "swap", "header"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        if op == "replace":
            # replace one token of the line (a CSV field or a JSON value)
            sep = "," if "," in lines[i] else " "
            parts = lines[i].split(sep)
            j = draw(st.integers(0, len(parts) - 1))
            parts[j] = draw(st.sampled_from(GARBAGE))
            lines[i] = sep.join(parts)
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "swap":
            k = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[k] = lines[k], lines[i]
        else:
            lines[0] = lines[0].replace(draw(st.sampled_from(["_", "s", "t", "e", ","])), "")
    fmt = draw(st.sampled_from([None, name.split(".")[0]]))
    return name, "\n".join(lines) + "\n", fmt


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated())
def test_mutated_traces_load_or_fail_cleanly(tmp_path, case):
    name, text, fmt = case
    path = tmp_path / name
    path.write_text(text)
    extra = {"tokenizer": "chars"} if name.endswith(".json") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = TraceConfig(path=str(path), format=fmt, **extra)
            cols = load_trace(cfg, source="fuzz.yaml")
    except LlmsimError as exc:
        assert "\n" not in str(exc)
        return
    n = len(cols.arrival_s)
    assert n == len(cols.prompt_tokens) == len(cols.output_tokens)
    if n:
        assert np.all(np.diff(cols.arrival_s) >= 0) or np.all(np.isnan(cols.arrival_s))
        assert cols.prompt_tokens.min() >= 1 and cols.output_tokens.min() >= 1
