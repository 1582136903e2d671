import json

import pytest

from sim.errors import TraceError
from sim.workload import TraceConfig, load_trace

RECORDS = [
    {"timestamp": 0, "input_length": 1100, "output_length": 5, "hash_ids": [0, 1, 2]},
    {"timestamp": 0, "input_length": 600, "output_length": 7, "hash_ids": [0, 3]},
    {"timestamp": 2500, "input_length": 1030, "output_length": 1, "hash_ids": [0, 1, 4]},
]


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_reads_milliseconds_lengths_and_hash_ids(tmp_path):
    cols = load_trace(TraceConfig(str(write(tmp_path / "m.jsonl", RECORDS))))
    assert cols.format == "mooncake"
    assert cols.arrival_s.tolist() == [0.0, 0.0, 2.5]
    assert cols.prompt_tokens.tolist() == [1100, 600, 1030]
    assert cols.output_tokens.tolist() == [5, 7, 1]
    assert cols.prefix_hashes.tolist() == [(0, 1, 2), (0, 3), (0, 1, 4)]
    assert cols.prefix_block_tokens == 512


def test_without_hash_ids(tmp_path):
    records = [{k: v for k, v in r.items() if k != "hash_ids"} for r in RECORDS]
    cols = load_trace(TraceConfig(str(write(tmp_path / "m.jsonl", records)), format="mooncake"))
    assert cols.prefix_hashes is None


@pytest.mark.parametrize("change, line, column", [
    ({"input_length": -5}, 2, "input_length"),
    ({"output_length": "many"}, 2, "output_length"),
    ({"hash_ids": "0 1"}, 2, "hash_ids"),
    ({"timestamp": -1}, 2, "timestamp"),
])
def test_bad_value_names_line_and_column(tmp_path, change, line, column):
    records = [RECORDS[0], {**RECORDS[1], **change}, RECORDS[2]]
    with pytest.raises(TraceError) as exc:
        load_trace(TraceConfig(str(write(tmp_path / "m.jsonl", records)), format="mooncake"))
    assert f"line {line}: column '{column}'" in str(exc.value)


def test_missing_key(tmp_path):
    records = [{"timestamp": 0, "input_len": 3, "output_length": 1}]
    with pytest.raises(TraceError) as exc:
        load_trace(TraceConfig(str(write(tmp_path / "m.jsonl", records)), format="mooncake"))
    msg = str(exc.value)
    assert "missing column 'input_length' for format 'mooncake'" in msg
    assert "found: timestamp, input_len, output_length" in msg
