"""Write small sample traces, one per format, into workloads/samples/ (deterministic).

    python workloads/make_samples.py

They are made up (no real trace is copied): 200 requests of a chat service over ten minutes,
with a shared system prompt and follow-up turns that extend earlier prompts, written in each
format's own columns so that `llmsim trace stats workloads/samples/<file>` and the readers can
be tried without downloading anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "samples"
N, SEED, BLOCK = 200, 0, 512


def chats(rng: np.random.Generator):
    """Arrivals, prompt and output lengths, Mooncake-style hash ids, conversation of each."""
    arrival = np.sort(rng.uniform(0, 600, N))
    ids_of, chat_of, prompts, outputs, conv = [], {}, [], [], []
    next_id = 1
    for i in range(N):
        if chat_of and rng.random() < 0.5:
            c = int(rng.choice(list(chat_of)))
            ids = chat_of[c] + list(range(next_id, next_id + int(rng.integers(1, 3))))
        else:
            c = len(chat_of)
            ids = [0] + list(range(next_id, next_id + int(rng.integers(1, 4))))
        next_id = max(ids) + 1
        chat_of[c] = ids
        ids_of.append(ids)
        prompts.append(len(ids) * BLOCK - int(rng.integers(0, BLOCK)))
        outputs.append(int(rng.lognormal(np.log(200), 0.8)) + 1)
        conv.append(c)
    return arrival, np.array(prompts), np.array(outputs), ids_of, conv


def main() -> None:
    rng = np.random.default_rng(SEED)
    arrival, prompt, output, ids, conv = chats(rng)
    OUT.mkdir(exist_ok=True)
    pd.DataFrame({"arrival_s": arrival.round(3), "prompt_tokens": prompt,
                  "output_tokens": output,
                  "prefix_hashes": [" ".join(map(str, r)) for r in ids],
                  "prefix_block_tokens": BLOCK}).to_csv(OUT / "generic.csv", index=False)
    with open(OUT / "mooncake.jsonl", "w") as f:
        for a, p, o, h in zip(arrival, prompt, output, ids):
            f.write(json.dumps({"timestamp": int(a * 1000), "input_length": int(p),
                                "output_length": int(o), "hash_ids": h}) + "\n")
    stamps = pd.Timestamp("2023-11-16 18:15:46") + pd.to_timedelta(arrival, unit="s")
    pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"),
                  "ContextTokens": prompt, "GeneratedTokens": output}).to_csv(
        OUT / "azure.csv", index=False)
    failed = rng.random(N) < 0.03
    pd.DataFrame({"Timestamp": arrival.round().astype(int),
                  "Model": np.where(rng.random(N) < 0.8, "ChatGPT", "GPT-4"),
                  "Request tokens": prompt, "Response tokens": np.where(failed, 0, output),
                  "Total tokens": prompt + np.where(failed, 0, output),
                  "Log Type": np.where(rng.random(N) < 0.5, "Conversation log", "API log")}
                 ).to_csv(OUT / "burstgpt.csv", index=False)
    pd.DataFrame({"arrived_at": arrival.round(3), "num_prefill_tokens": prompt,
                  "num_decode_tokens": output}).to_csv(OUT / "vidur.csv", index=False)
    words = "the a to of and in is it you that for on with as are this be".split()
    conversations = []
    for c in range(30):
        turns = []
        for _ in range(int(rng.integers(1, 4))):
            for role, mean in (("human", 30), ("gpt", 120)):
                n = int(rng.lognormal(np.log(mean), 0.7)) + 1
                turns.append({"from": role, "value": " ".join(rng.choice(words, n))})
        conversations.append({"id": f"sample{c}", "conversations": turns})
    (OUT / "sharegpt.json").write_text(json.dumps(conversations))
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))} to {OUT}")


if __name__ == "__main__":
    main()
