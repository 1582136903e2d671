"""The registry and detection of a file's format from its header."""

import json

import pytest

from sim.errors import TraceError
from sim.workload import TRACE_FORMATS, detect_format

HEADS = {
    "generic": ("t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n"),
    "azure": ("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,1\n"),
    "burstgpt": ("t.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                          "5,ChatGPT,1,1,2,API log\n"),
    "vidur": ("t.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n"),
    "mooncake": ("t.jsonl", json.dumps({"timestamp": 0, "input_length": 1, "output_length": 1,
                                        "hash_ids": [1]}) + "\n"),
    "sharegpt": ("t.json", json.dumps([{"conversations": []}])),
}


def test_every_format_has_a_detection_case():
    assert set(HEADS) == set(TRACE_FORMATS)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_detects(tmp_path, name):
    file, text = HEADS[name]
    path = tmp_path / file
    path.write_text(text)
    assert detect_format(path) == name


def test_generic_jsonl_is_detected_by_its_keys(tmp_path):
    path = tmp_path / "x.log"
    path.write_text(json.dumps({"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}) + "\n")
    assert detect_format(path) == "generic"


def test_a_partial_match_picks_the_closest_format(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrived_at,num_prefill_tokens,decode\n0,1,1\n")
    assert detect_format(path) == "vidur"     # its reader then names the missing column


def test_no_match_lists_the_formats_and_their_columns(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"t": 0}) + "\n")
    with pytest.raises(TraceError) as exc:
        detect_format(path)
    msg = str(exc.value)
    assert "found: t" in msg and "mooncake (jsonl: timestamp, input_length, output_length)" in msg
