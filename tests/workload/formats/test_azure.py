import pytest

from sim.errors import TraceError
from sim.workload import TraceConfig, load_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def load(path, **kw):
    return load_trace(TraceConfig(str(path), format="azure", **kw))


def test_wall_clock_becomes_seconds_from_the_first_row(tmp_path):
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(HEADER + "2023-11-16 18:15:46.6805900,374,44\n"
                             "2023-11-16 18:15:50.9951690,396,109\n"
                             "2023-11-16 18:16:46.6805900,5,1\n")
    cols = load(path)
    assert cols.arrival_s.tolist() == pytest.approx([0.0, 4.314579, 60.0])
    assert cols.prompt_tokens.tolist() == [374, 396, 5]
    assert cols.output_tokens.tolist() == [44, 109, 1]
    assert cols.prefix_hashes is None


def test_2024_timestamps_with_zone_offsets(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "2024-05-10 00:00:00.009930+00:00,10,2\n"
                             "2024-05-10 00:00:01.509930+00:00,11,3\n")
    assert load(path).arrival_s.tolist() == pytest.approx([0.0, 1.5])


def test_detected_from_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "2023-11-16 18:15:46.68,3,4\n")
    cols = load_trace(TraceConfig(str(path)))
    assert cols.format == "azure"


@pytest.mark.parametrize("row, line, column", [
    ("yesterday,3,4", 3, "TIMESTAMP"),
    ("2023-11-16 18:15:47.0,-3,4", 3, "ContextTokens"),
    ("2023-11-16 18:15:47.0,3,abc", 3, "GeneratedTokens"),
])
def test_bad_value_names_line_and_column(tmp_path, row, line, column):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "2023-11-16 18:15:46.0,3,4\n" + row + "\n")
    with pytest.raises(TraceError) as exc:
        load(path)
    assert f"line {line}: column '{column}'" in str(exc.value)


def test_misnamed_column_suggests_the_right_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedToken\n2023-11-16 18:15:46.0,3,4\n")
    with pytest.raises(TraceError) as exc:
        load(path)
    msg = str(exc.value)
    assert "missing column 'GeneratedTokens' for format 'azure'" in msg
    assert "found: TIMESTAMP, ContextTokens, GeneratedToken" in msg
    assert "did you mean 'GeneratedToken'" in msg


@pytest.mark.parametrize("stamps", [
    ["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:50.9951690", "2023-11-16 18:16:46.68"],
    ["2024-05-10 00:00:00.009930+00:00", "2024-05-10 00:00:01.509930+00:00",
     "2024-05-10 01:00:00+00:00"],
])
def test_the_arrow_path_reads_what_the_checked_path_reads(tmp_path, monkeypatch, stamps):
    # a week-long file is read all in Arrow; the checked reader (the one that names bad lines)
    # must read a good file to the same columns
    import sim.workload.formats.azure as azure
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "".join(f"{s},{10 + i},{2 + i}\n" for i, s in enumerate(stamps)))
    fast = load(path)
    assert azure._read_azure_arrow(path, None) is not None
    monkeypatch.setattr(azure, "_read_azure_arrow", lambda path, nrows: None)
    checked = load(path)
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        assert getattr(fast, name).tolist() == getattr(checked, name).tolist()
