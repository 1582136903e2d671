"""``sharegpt``: ShareGPT conversations, one JSON list.

Each item has ``conversations``: a list of ``{"from": "human" | "gpt" | "system" | ...,
"value": text}`` (or ``messages`` with ``{"role", "content"}``, roles ``user`` / ``assistant``).
A request is a human message and the gpt answer that follows it:

- ``turns: first`` (the default, as vLLM's ``benchmark_serving``): the first such pair of each
  conversation; prompt = the human message (plus any system message before it).
- ``turns: all``: every pair, as a session: turn ``k``'s prompt is the whole conversation before
  the answer (earlier messages + the new one), with prefix ids shared along the session (see
  :mod:`sim.workload.sessions`).

The file has no timestamps: arrivals come from ``workload.arrivals`` (required with this format),
given to the requests in file order. With ``turns: all`` prefer ``closed_loop`` arrivals: a client
then keeps a conversation and sends each turn after the previous answer; an open-loop process
gives a conversation's turns consecutive arrival times, so later turns may come before the
earlier answers.

Token counts: ``tokenizer: auto`` uses tiktoken's ``cl100k_base`` when tiktoken is installed and
its encoding loads, else the estimate of 4 characters per token (``ceil(chars / 4)``);
``chars`` forces the estimate; ``tiktoken:<encoding>`` or ``hf:<model>`` (a Hugging Face
tokenizer, via transformers) pick one. Parsing JSON and tokenizing are a Python loop per message:
unavoidable for this format.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import TraceError
from sim.workload.columns import TraceColumns
from sim.workload.formats.common import no_rows

if TYPE_CHECKING:
    from sim.workload.traces import TraceConfig

_USER = {"human", "user"}
_ASSISTANT = {"gpt", "assistant", "chatgpt", "bard", "bing", "model"}


def read_sharegpt(path: Path, cfg: TraceConfig, nrows: int | None) -> TraceColumns:
    from sim.workload.sessions import chunk_ids
    from sim.workload.traces import TraceWarning

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(data, list):
        raise TraceError(f"{path}: expected a JSON list of conversations, got "
                         f"{type(data).__name__}")
    count = tokenizer(cfg.tokenizer)
    prompts, outputs, sessions = [], [], []
    skipped = 0
    for index, item in enumerate(data):
        if nrows is not None and len(prompts) >= nrows:
            break
        messages = _messages(path, index, item)
        pairs = _pairs(messages, count)
        if not pairs:
            skipped += 1
            continue
        if cfg.turns == "first":
            pairs = pairs[:1]
        for prompt, output in pairs:
            prompts.append(prompt)
            outputs.append(output)
            sessions.append(index)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} conversation{'s' if skipped > 1 else ''} "
                      "without a human message answered by a non-empty reply", TraceWarning,
                      stacklevel=2)
    if not prompts:
        raise no_rows(path)
    if nrows is not None:
        prompts, outputs, sessions = prompts[:nrows], outputs[:nrows], sessions[:nrows]
    prompt = np.asarray(prompts, dtype=np.int64)
    session = np.asarray(sessions, dtype=np.int64)
    columns = TraceColumns(arrival_s=np.zeros(len(prompt)), prompt_tokens=prompt,
                           output_tokens=np.asarray(outputs, dtype=np.int64),
                           has_timestamps=False)
    if cfg.turns == "all":
        block = cfg.prefix_block_tokens or 16
        columns.session = session
        columns.prefix_hashes = chunk_ids(session, prompt, block)
        columns.prefix_block_tokens = block
    return columns


def _messages(path: Path, index: int, item: object) -> list[tuple[str, str]]:
    if isinstance(item, dict):
        turns = item.get("conversations", item.get("messages", item.get("items")))
        if isinstance(turns, list):
            out = []
            for m in turns:
                if isinstance(m, dict):
                    role = m.get("from", m.get("role"))
                    text = m.get("value", m.get("content"))
                    if isinstance(role, str) and isinstance(text, str):
                        out.append((role.lower(), text))
                        continue
                raise TraceError(f"{path}: conversation {index}: expected messages like "
                                 '{"from": "human", "value": "..."}, got ' + repr(m)[:60])
            return out
    raise TraceError(f"{path}: conversation {index}: expected an object with a "
                     f"'conversations' list, got {repr(item)[:60]}")


def _pairs(messages: list[tuple[str, str]], count: Callable[[str], int]) -> list[tuple[int, int]]:
    """(prompt tokens, answer tokens) for each user message answered by an assistant message;
    the prompt counts every message before the answer."""
    pairs, context = [], 0
    for i, (role, text) in enumerate(messages):
        tokens = count(text)
        if role in _ASSISTANT and i > 0 and messages[i - 1][0] in _USER and context > 0 \
                and tokens > 0:
            pairs.append((context, tokens))
        context += tokens
    return pairs


def chars_per_4(text: str) -> int:
    return -(-len(text) // 4)


def tokenizer(name: str) -> Callable[[str], int]:
    """A function text -> token count, by name (see the module doc)."""
    if name == "chars":
        return chars_per_4
    if name == "auto":
        try:
            return tokenizer("tiktoken:cl100k_base")
        except Exception:   # not installed, or the encoding cannot be fetched offline
            return chars_per_4
    kind, _, arg = name.partition(":")
    try:
        return _load(kind, arg)
    except ImportError as exc:
        raise TraceError(f"tokenizer {name!r}: {exc.name or exc} is not installed") from None


def _load(kind: str, arg: str) -> Callable[[str], int]:
    if kind == "tiktoken":
        import tiktoken
        enc = tiktoken.get_encoding(arg or "cl100k_base")
        return lambda text: len(enc.encode(text, disallowed_special=()))
    if kind == "hf":
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(arg)
        return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    raise TraceError(f"unknown tokenizer {kind + ':' + arg if arg else kind!r}: expected auto, chars, tiktoken:<encoding> "
                     "or hf:<model>")
