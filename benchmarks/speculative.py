"""Speculative decoding: where it pays and where it stops paying, as the batch grows.

Llama-3.1-70B on 4 H100s (TP4), an EAGLE-style head (one decoder layer of the target model)
drafting 3 tokens, acceptance 0.6, 0.7 and 0.8 per drafted position; closed loop with 1 to 256
clients (the batch size), prompts 1,000 tokens, outputs 256, against the same without
speculation. At small batches decode reads the weights once per step whatever the tokens, so
verifying 4 tokens costs little more than 1 and each step emits ~2.5 tokens: TPOT falls. As the
batch grows the step turns compute-bound, verification costs ~4x a plain step, and the gain
shrinks and turns into a loss (the known crossover).

Speculative runs step every iteration (no decode fast-forward); the wall time of each run is in
the JSON, against the plain run's, as the price of that.

    python benchmarks/speculative.py --out runs/spec [--jobs 2]

Writes DIR/speculative.json and DIR/speculative.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CLIENTS = (1, 4, 16, 64, 128, 256)
ACCEPTANCE = (0.6, 0.7, 0.8)
DRAFTS = 3
REQUESTS_PER_CLIENT = 3


def scenario(clients: int, acceptance: float | None) -> dict:
    data = {"name": f"spec-{clients}-{acceptance}", "seed": 0, "model": "llama-3.1-70b",
            "hardware": "h100-sxm", "cluster": {"tensor_parallel": 4},
            "scheduler": {"name": "fcfs", "max_num_seqs": 256, "max_batched_tokens": 8192},
            "workload": {"arrivals": {"kind": "closed_loop", "clients": clients},
                         "num_requests": max(clients * REQUESTS_PER_CLIENT, 8),
                         "prompt_tokens": {"dist": "fixed", "value": 1000},
                         "output_tokens": {"dist": "fixed", "value": 256}}}
    if acceptance is not None:
        data["speculative"] = {"method": "eagle", "num_tokens": DRAFTS,
                               "acceptance": acceptance}
    return data


def run(args: tuple) -> dict:
    from sim import Scenario, simulate

    clients, acceptance = args
    started = time.perf_counter()
    s = simulate(Scenario.from_dict(scenario(clients, acceptance))).summary
    return {"clients": clients, "acceptance": acceptance, "tpot_p50_s": s["tpot_s"]["p50"],
            "ttft_p50_s": s["ttft_s"]["p50"], "throughput_tok_s": s["throughput_tokens_per_s"],
            "tokens_per_step": s.get("speculative_tokens_per_step", 1.0),
            "wall_s": time.perf_counter() - started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(c, a) for c in CLIENTS for a in (None, *ACCEPTANCE)]
    jobs.sort(key=lambda j: -j[0])
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, jobs, chunksize=1))
    by = {(r["clients"], r["acceptance"]): r for r in rows}
    result: dict = {"drafts": DRAFTS, "model": "llama-3.1-70b", "hardware": "4 x h100-sxm",
                    "curves": {}, "crossover_clients": {}, "wall_s": 0.0}
    for a in ACCEPTANCE:
        curve = []
        for c in CLIENTS:
            plain, spec = by[(c, None)], by[(c, a)]
            curve.append({"clients": c, "tpot_speedup": plain["tpot_p50_s"] / spec["tpot_p50_s"],
                          "throughput_ratio": spec["throughput_tok_s"]
                          / plain["throughput_tok_s"],
                          "tpot_p50_s": spec["tpot_p50_s"], "plain_tpot_p50_s":
                          plain["tpot_p50_s"], "tokens_per_step": spec["tokens_per_step"],
                          "wall_s": spec["wall_s"], "plain_wall_s": plain["wall_s"]})
        result["curves"][str(a)] = curve
        losing = [p["clients"] for p in curve if p["tpot_speedup"] < 1.0]
        result["crossover_clients"][str(a)] = min(losing) if losing else None
    result["wall_s"] = time.perf_counter() - started
    (out / "speculative.json").write_text(json.dumps(result, indent=2))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for a, curve in result["curves"].items():
        ax.plot([p["clients"] for p in curve], [p["tpot_speedup"] for p in curve], marker="o",
                label=f"acceptance {a}")
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent requests (closed-loop clients)")
    ax.set_ylabel("TPOT speedup over no speculation")
    ax.set_title(f"Llama-3.1-70B, 4 x H100, EAGLE head, {DRAFTS} drafts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "speculative.png", dpi=110)
    plt.close(fig)
    print("clients | " + " | ".join(f"acc {a}: TPOT x, tok/step" for a in ACCEPTANCE))
    for i, c in enumerate(CLIENTS):
        print(f"{c:7d} | " + " | ".join(
            f"{result['curves'][str(a)][i]['tpot_speedup']:.2f}x, "
            f"{result['curves'][str(a)][i]['tokens_per_step']:.2f}" for a in ACCEPTANCE))
    print(f"crossover (first batch where it loses): {result['crossover_clients']}; "
          f"{result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
