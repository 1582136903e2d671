"""KV compression on a memory-bound workload: throughput against compression ratio.

The MiniCache setting (Liu et al., "MiniCache: KV Cache Compression in Depth Dimension for Large
Language Models", NeurIPS 2024): Llama-2-7B (MHA: 512 KiB of KV per token in fp16) on one
A100-80G, ShareGPT-like lengths (prompts lognormal around 300 tokens, outputs around 700), an
offline batch of 2,000 requests at t=0 with room for 2,048 concurrent sequences, so that the KV
pool, not a request cap, bounds the batch. Compressions (``kv_compression``):

- none (fp16);
- 8-bit, 4-bit, 2-bit quantisation (KIVI-style, 0.1 FLOP per value read to dequantise);
- 4-bit + MiniCache's cross-layer merging from the middle depth with 5% of tokens retained
  (the paper's headline setting: its reported compression is 5.02x);
- 2-bit + merging.

Reported: compression ratio, peak concurrent sequences, output throughput and its ratio to
fp16, beside the paper's figures (up to 5.02x compression and ~5x throughput on ShareGPT).

    python benchmarks/kv_compression.py --out runs/kvc [--jobs 2]

Writes DIR/kv_compression.json and DIR/kv_compression.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SETTINGS = {
    "fp16": {},
    "int8": {"bits": 8, "flops_per_value": 0.1},
    "int4": {"bits": 4, "flops_per_value": 0.1},
    "int2": {"bits": 2, "flops_per_value": 0.1},
    "int4 + merge": {"bits": 4, "merge_from": 0.5, "retained": 0.05, "flops_per_value": 0.1},
    "int2 + merge": {"bits": 2, "merge_from": 0.5, "retained": 0.05, "flops_per_value": 0.1},
}
PAPER = {"compression": 5.02, "throughput": 5.0}


def scenario(compression: dict) -> dict:
    data = {"name": "kvc", "seed": 0, "model": "llama-2-7b", "hardware": "a100-80g-sxm",
            "scheduler": {"name": "fcfs", "max_num_seqs": 2048, "max_batched_tokens": 8192,
                          "prefix_caching": False},
            "workload": {"arrivals": {"kind": "burst"}, "num_requests": 2000,
                         "prompt_tokens": {"dist": "lognormal", "mean": 300, "sigma": 0.8,
                                           "max": 2000},
                         "output_tokens": {"dist": "lognormal", "mean": 700, "sigma": 0.6,
                                           "max": 2000}}}
    if compression:
        data["kv_compression"] = compression
    return data


def run(name: str) -> dict:
    from sim import Scenario, simulate
    from sim.scenario import KvCompressionConfig

    started = time.perf_counter()
    result = simulate(Scenario.from_dict(scenario(SETTINGS[name])))
    s, it = result.summary, result.iterations
    return {"setting": name,
            "compression": 1 / KvCompressionConfig(**SETTINGS[name]).ratio,
            "kv_tokens_per_replica": s["kv_tokens_per_replica"],
            "peak_batch": int(it["num_seqs"].max()),
            "throughput_tok_s": s["throughput_tokens_per_s"],
            "preemptions": s["preemptions"], "wall_s": time.perf_counter() - started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, SETTINGS, chunksize=1))
    base = next(r for r in rows if r["setting"] == "fp16")
    for r in rows:
        r["throughput_ratio"] = r["throughput_tok_s"] / base["throughput_tok_s"]
    minicache = next(r for r in rows if r["setting"] == "int4 + merge")
    result = {"model": "llama-2-7b", "hardware": "a100-80g-sxm", "rows": rows,
              "minicache": {"compression": minicache["compression"],
                            "throughput_ratio": minicache["throughput_ratio"],
                            "paper_compression": PAPER["compression"],
                            "paper_throughput_ratio": PAPER["throughput"]},
              "wall_s": time.perf_counter() - started}
    (out / "kv_compression.json").write_text(json.dumps(result, indent=2))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["compression"] for r in rows], [r["throughput_ratio"] for r in rows], "o")
    for r in rows:
        ax.annotate(r["setting"], (r["compression"], r["throughput_ratio"]), fontsize=7,
                    xytext=(4, -8), textcoords="offset points")
    ax.plot([1, 10], [1, 10], "k:", lw=0.5, label="throughput = compression")
    ax.plot([PAPER["compression"]], [PAPER["throughput"]], "r*", ms=10, label="MiniCache paper")
    ax.set_xlabel("KV compression ratio")
    ax.set_ylabel("throughput over fp16")
    ax.set_title("Llama-2-7B, A100-80G, ShareGPT-like offline batch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "kv_compression.png", dpi=110)
    plt.close(fig)
    print("| setting | compression | KV tokens | peak batch | tok/s | vs fp16 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setting']} | {r['compression']:.2f}x | {r['kv_tokens_per_replica']} | "
              f"{r['peak_batch']} | {r['throughput_tok_s']:.0f} | {r['throughput_ratio']:.2f}x |")
    print(f"paper: {PAPER['compression']}x compression, ~{PAPER['throughput']}x throughput; "
          f"{result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
