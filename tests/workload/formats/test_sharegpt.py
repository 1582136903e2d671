import json

import pytest

from sim.errors import TraceError
from sim.workload import TraceConfig, TraceWarning, load_trace
from sim.workload.formats.sharegpt import chars_per_4, tokenizer

CONVERSATIONS = [
    {"id": "a", "conversations": [
        {"from": "human", "value": "x" * 40},           # 10 tokens
        {"from": "gpt", "value": "y" * 81},             # 21 tokens
        {"from": "human", "value": "z" * 8},            # 2
        {"from": "gpt", "value": "w" * 4}]},            # 1
    {"id": "b", "conversations": [{"from": "gpt", "value": "hello"}]},     # no question: skipped
    {"id": "c", "messages": [
        {"role": "system", "content": "s" * 16},        # 4
        {"role": "user", "content": "u" * 12},          # 3
        {"role": "assistant", "content": "v" * 20}]},   # 5
]


def load(tmp_path, **kw):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(CONVERSATIONS))
    return load_trace(TraceConfig(str(path), tokenizer="chars", **kw))


def test_first_turns_with_chars_over_4(tmp_path):
    with pytest.warns(TraceWarning, match="skipped 1 conversation"):
        cols = load(tmp_path)
    assert cols.format == "sharegpt" and not cols.has_timestamps
    assert cols.prompt_tokens.tolist() == [10, 7]       # the system message is context
    assert cols.output_tokens.tolist() == [21, 5]
    assert cols.prefix_hashes is None
    assert cols.arrival_s.tolist() == [0.0, 0.0]


def test_all_turns_are_sessions_with_growing_prompts(tmp_path):
    with pytest.warns(TraceWarning):
        cols = load(tmp_path, turns="all", prefix_block_tokens=8)
    # turn 2's prompt: 10 + 21 + 2 = 33 tokens
    assert cols.prompt_tokens.tolist() == [10, 33, 7]
    assert cols.output_tokens.tolist() == [21, 1, 5]
    assert cols.session.tolist() == [0, 0, 2]
    ids = cols.prefix_hashes.tolist()
    # 8-token chunks: turn 1 has one full chunk and a partial one; turn 2 shares the full one
    assert len(ids[0]) == 2 and len(ids[1]) == 5 and len(ids[2]) == 1
    assert ids[1][0] == ids[0][0] and ids[1][1] != ids[0][1]
    assert not set(ids[2]) & set(ids[0] + ids[1])


def test_needs_a_json_list(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"conversations": []}))
    with pytest.raises(TraceError, match="expected a JSON list of conversations"):
        load_trace(TraceConfig(str(path), format="sharegpt"))


def test_bad_message_names_the_conversation(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"conversations": [{"from": "human"}]}]))
    with pytest.raises(TraceError, match="conversation 0: expected messages like"):
        load_trace(TraceConfig(str(path), format="sharegpt"))


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('[\n{"conversations": [}\n]')
    with pytest.raises(TraceError, match="line 2: not valid JSON"):
        load_trace(TraceConfig(str(path), format="sharegpt"))


def test_tokenizers():
    assert chars_per_4("abcde") == 2 and chars_per_4("") == 0
    assert tokenizer("chars") is chars_per_4
    assert tokenizer("auto")("hello world") >= 1     # tiktoken if it loads, else chars/4
    with pytest.raises(TraceError, match="unknown tokenizer 'bpe'"):
        tokenizer("bpe")
