import pytest

from sim.errors import TraceError
from sim.workload import TraceConfig, TraceWarning, load_trace

TEXT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,0,1087,Conversation log
118,GPT-4,417,30,447,API log
130,ChatGPT,100,25,125,API log
140,GPT-4,80,8,88,Conversation log
"""


def load(tmp_path, **kw):
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text(TEXT)
    return load_trace(TraceConfig(str(path), **kw))


def test_reads_and_drops_failed_rows_with_a_warning(tmp_path):
    with pytest.warns(TraceWarning, match="dropped 1 failed request"):
        cols = load(tmp_path)
    assert cols.format == "burstgpt"
    assert cols.arrival_s.tolist() == [5.0, 118.0, 130.0, 140.0]
    assert cols.prompt_tokens.tolist() == [472, 417, 100, 80]
    assert cols.output_tokens.tolist() == [18, 30, 25, 8]


def test_filters_by_model_and_log_type(tmp_path):
    with pytest.warns(TraceWarning, match="dropped 1 failed"):
        cols = load(tmp_path, models=["ChatGPT"], log_types=["Conversation log"])
    assert cols.arrival_s.tolist() == [5.0]
    cols = load(tmp_path, models=["GPT-4"])
    assert cols.arrival_s.tolist() == [118.0, 140.0]


def test_limit_counts_rows_kept(tmp_path):
    cols = load(tmp_path, models=["GPT-4"], limit=1)
    assert cols.arrival_s.tolist() == [118.0]


def test_nothing_left_after_filtering(tmp_path):
    with pytest.raises(TraceError, match="no requests left after filtering"):
        load(tmp_path, models=["Claude"])


def test_negative_tokens_name_the_line(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(TEXT.replace("417,30", "-417,30"))
    with pytest.raises(TraceError, match=r"line 4: column 'Request tokens'"):
        load_trace(TraceConfig(str(path), format="burstgpt"))
