import pytest

from sim.errors import TraceError
from sim.workload import TraceConfig, load_trace

TEXT = ("arrived_at,num_prefill_tokens,num_decode_tokens,num_total_tokens\n"
        "0.0,100,20,120\n0.75,50,5,55\n")


def test_reads_seconds_and_token_counts_ignoring_extra_columns(tmp_path):
    path = tmp_path / "vidur.csv"
    path.write_text(TEXT)
    cols = load_trace(TraceConfig(str(path)))
    assert cols.format == "vidur"
    assert cols.arrival_s.tolist() == [0.0, 0.75]
    assert cols.prompt_tokens.tolist() == [100, 50]
    assert cols.output_tokens.tolist() == [20, 5]


def test_zero_decode_tokens_is_a_bad_value(tmp_path):
    path = tmp_path / "vidur.csv"
    path.write_text(TEXT + "1.0,7,0,7\n")
    with pytest.raises(TraceError, match=r"line 4: column 'num_decode_tokens': expected an "
                                         r"integer >= 1 \(at most 1,000,000,000\), got 0"):
        load_trace(TraceConfig(str(path), format="vidur"))
