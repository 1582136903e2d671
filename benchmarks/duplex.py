"""Reproduce the Duplex paper's comparison (MICRO 2024, arXiv 2409.01141) in simulation.

Closed loop, ``batch`` clients each sending its next request when the previous ends, Gaussian
lengths (std 20% of the mean): Mixtral-8x7B, Llama-3.1-70B and OPT-66B on 1 node x 4 devices,
GLaM-143B on 1x8, Grok-1 on 2x8; batch 32/64/128; (input, output) (256, 256), (1024, 1024),
(4096, 512), (4096, 4096); uniform random expert routing (seeded). Systems: GPU, 2x GPU,
Bank-PIM, Duplex, Duplex+PE (attention and expert co-processing), Duplex+PE+ET (plus expert
tensor parallelism). Throughput and energy are measured in the steady state: iterations that
start between the first completion and the last request's issue (before it, all clients
prefill at once; after it, the batch drains).

Then the Poisson sweep: Mixtral, (4096, 512), 4..16 requests/s, batch <= 128, GPU and Duplex.
A system is saturated at a rate when its time-to-first-token grows with arrival time (slope of
TTFT against arrival over the second half of the requests > 0.05 s/s: the queue gains 1 s every
20 s); the saturation QPS is the highest rate below the first saturated one.

    python benchmarks/duplex.py --out runs/duplex [--jobs 2] [--requests-per-client 4]

Writes DIR/duplex.json, DIR/duplex.md, DIR/closed_loop.csv, DIR/poisson.csv and plots.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# name in the JSON -> (catalog model, devices = tensor_parallel)
MODELS = {"mixtral": ("mixtral-8x7b", 4), "glam": ("glam-143b", 8), "grok1": ("grok-1", 16),
          "opt66b": ("opt-66b", 4), "llama3_70b": ("llama-3.1-70b", 4)}
BATCHES = (32, 64, 128)
LENGTHS = ((256, 256), (1024, 1024), (4096, 512), (4096, 4096))
COPROCESS = {"coprocessing": {"attention": True, "experts": True}}
SYSTEMS = {                       # name -> (profile, duplex-section overrides)
    "gpu": ("gpu-h100", {}),
    "2xgpu": ("gpu2x-h100", {}),
    "bankpim": ("bankpim-h100", {}),
    "duplex": ("duplex-h100", {}),
    "duplex_pe": ("duplex-h100", COPROCESS),
    "duplex_pe_et": ("duplex-h100", {**COPROCESS, "expert_parallel": "tensor"}),
}
ROUTING = {"kind": "uniform", "seed": 0}
POISSON_QPS = tuple(range(4, 17))
POISSON_SYSTEMS = ("gpu", "duplex", "duplex_pe_et")
POISSON_REQUESTS = 400
SATURATION_SLOPE = 0.05
PAPER = {"max_speedup_duplex": 2.51, "max_speedup_duplex_pe_et": 2.67,
         "energy_reduction": {"mixtral": 0.333, "glam": 0.420, "grok1": 0.346},
         "saturation_qps": {"gpu": 9, "duplex": 14}}


def scenario(model: str, system: str, batch: int, lengths: tuple[int, int], requests: int,
             arrivals: dict | None = None) -> dict:
    catalog, tp = MODELS[model]
    profile, overrides = SYSTEMS[system]
    prompt, output = lengths
    return {
        "name": f"duplex-{model}-{system}-{batch}-{prompt}-{output}", "seed": 0,
        "model": catalog,
        "hardware": {"name": profile, "duplex": {**overrides, "routing": ROUTING}},
        "cluster": {"replicas": 1, "tensor_parallel": tp},
        # the paper's lengths run past OPT's and GLaM's 2k positions; the cost is what matters
        "scheduler": {"name": "fcfs", "max_num_seqs": batch, "max_batched_tokens": 8192,
                      "prefix_caching": False, "max_model_len": 16384},
        "workload": {"arrivals": arrivals or {"kind": "closed_loop", "clients": batch},
                     "num_requests": requests,
                     "prompt_tokens": _normal(prompt), "output_tokens": _normal(output)},
    }


def _normal(mean: int) -> dict:
    return {"dist": "normal", "mean": mean, "std": 0.2 * mean, "min": 16, "max": 2 * mean}


def steady_state(requests, iterations) -> dict:
    """Output tokens/s and J/token over iterations starting in [first completion, last issue)."""
    done = requests[requests["state"] == "completed"]
    t0 = float(np.nanmin(done["finish_s"]))
    t1 = float(np.nanmax(requests["arrival_s"]))
    it = iterations
    sel = (it["start_s"] >= t0) & (it["start_s"] < t1)
    if t1 <= t0 or sel.sum() < 3:          # no steady window (tiny runs): the whole run
        sel = it["start_s"] >= 0
        t0, t1 = 0.0, float("inf")
    first = ((requests["first_token_s"] >= t0) & (requests["first_token_s"] < t1)).sum()
    tokens = float(it.loc[sel, "decode_tokens"].sum() + first)
    seconds = float(it.loc[sel, "duration_s"].sum())
    joules = float(it.loc[sel, "energy_j"].sum())
    return {"tokens_per_s": tokens / seconds, "j_per_token": joules / tokens,
            "window_s": seconds, "batch_mean": float(
                (it.loc[sel, "num_seqs"] * it.loc[sel, "duration_s"]).sum() / seconds)}


def run_closed(args: tuple) -> dict:
    from sim import Scenario, simulate

    model, system, batch, lengths, per_client = args
    started = time.perf_counter()
    result = simulate(Scenario.from_dict(scenario(model, system, batch, lengths,
                                                  per_client * batch)))
    s = result.summary
    return {"model": model, "system": system, "batch": batch, "prompt": lengths[0],
            "output": lengths[1], **steady_state(result.requests, result.iterations),
            "preemptions": s["preemptions"], "rejected": s["requests_rejected"],
            "wall_s": time.perf_counter() - started}


def run_poisson(args: tuple) -> dict:
    from sim import Scenario, simulate

    system, qps = args
    started = time.perf_counter()
    data = scenario("mixtral", system, 128, (4096, 512), POISSON_REQUESTS,
                    arrivals={"kind": "poisson", "rate_rps": float(qps)})
    result = simulate(Scenario.from_dict(data))
    r = result.requests
    r = r[np.isfinite(r["first_token_s"])].sort_values("arrival_s")
    late = r.iloc[len(r) // 2:]
    ttft = (late["first_token_s"] - late["arrival_s"]).to_numpy()
    slope = float(np.polyfit(late["arrival_s"].to_numpy(), ttft, 1)[0]) if len(late) > 2 else 0.0
    s = result.summary
    return {"system": system, "qps": qps, "ttft_slope": slope,
            "ttft_p50_s": s["ttft_s"]["p50"], "tpot_mean_s": s["tpot_s"]["mean"],
            "e2e_p50_s": s["e2e_s"]["p50"], "throughput_tok_s": s["throughput_tokens_per_s"],
            "saturated": slope > SATURATION_SLOPE, "wall_s": time.perf_counter() - started}


def summarise(closed: list[dict], poisson: list[dict]) -> dict:
    by = {(r["model"], r["system"], r["batch"], r["prompt"], r["output"]): r for r in closed}
    configs = sorted({k[:1] + k[2:] for k in by})
    speed: dict[str, dict[tuple, float]] = {s: {} for s in SYSTEMS}
    energy: dict[str, dict[tuple, float]] = {s: {} for s in SYSTEMS}
    for cfg in configs:
        model, rest = cfg[0], cfg[1:]
        gpu = by[(model, "gpu", *rest)]
        for system in SYSTEMS:
            r = by[(model, system, *rest)]
            speed[system][cfg] = r["tokens_per_s"] / gpu["tokens_per_s"]
            energy[system][cfg] = 1.0 - r["j_per_token"] / gpu["j_per_token"]

    def per_model(table: dict, model: str, fn) -> float:
        return float(fn([v for k, v in table.items() if k[0] == model]))

    out = {
        "max_speedup_duplex": max(speed["duplex"].values()),
        "max_speedup_duplex_pe_et": max(speed["duplex_pe_et"].values()),
        "max_speedup_duplex_pe": max(speed["duplex_pe"].values()),
        "min_ratio_pe_et_over_duplex": min(speed["duplex_pe_et"][c] / speed["duplex"][c]
                                           for c in configs),
        "max_ratio_pe_et_over_duplex": max(speed["duplex_pe_et"][c] / speed["duplex"][c]
                                           for c in configs),
        "energy_reduction": {m: per_model(energy["duplex"], m, np.mean) for m in MODELS},
        "energy_reduction_pe_et": {m: per_model(energy["duplex_pe_et"], m, np.mean)
                                   for m in MODELS},
        "speedup_mean": {s: {m: per_model(speed[s], m, np.mean) for m in MODELS}
                         for s in SYSTEMS},
        "speedup_max": {s: {m: per_model(speed[s], m, np.max) for m in MODELS}
                        for s in SYSTEMS},
        "argmax_speedup_duplex": list(max(speed["duplex"], key=speed["duplex"].get)),
        "argmax_speedup_duplex_pe_et": list(max(speed["duplex_pe_et"],
                                                key=speed["duplex_pe_et"].get)),
        "duplex_over_bankpim_mixtral": {
            "max": max(speed["duplex"][c] / speed["bankpim"][c] for c in configs
                       if c[0] == "mixtral"),
            "mean": float(np.mean([speed["duplex"][c] / speed["bankpim"][c] for c in configs
                                   if c[0] == "mixtral"]))},
    }
    sat = {}
    for system in POISSON_SYSTEMS:
        rows = sorted((r for r in poisson if r["system"] == system), key=lambda r: r["qps"])
        stable = None
        for r in rows:
            if r["saturated"]:
                break
            stable = r["qps"]
        sat[system] = stable
    out["saturation_qps"] = sat
    out["paper"] = PAPER
    return out


def markdown(summary: dict, closed: list[dict], poisson: list[dict], wall_s: float) -> str:
    p = summary["paper"]
    lines = ["# Duplex reproduction", "",
             f"{len(closed)} closed-loop runs and {len(poisson)} Poisson runs in {wall_s:.0f} s.",
             "", "| metric | ours | paper |", "|---|---:|---:|",
             f"| max Duplex / GPU throughput | {summary['max_speedup_duplex']:.2f} | "
             f"{p['max_speedup_duplex']:.2f} |",
             f"| max Duplex+PE+ET / GPU throughput | {summary['max_speedup_duplex_pe_et']:.2f} | "
             f"{p['max_speedup_duplex_pe_et']:.2f} |",
             f"| max Duplex+PE+ET / Duplex | {summary['max_ratio_pe_et_over_duplex']:.2f} | 1.36 |",
             f"| Duplex / Bank-PIM, Mixtral (max, mean) | "
             f"{summary['duplex_over_bankpim_mixtral']['max']:.2f}, "
             f"{summary['duplex_over_bankpim_mixtral']['mean']:.2f} | 1.80, 1.49 |"]
    for m in ("mixtral", "glam", "grok1"):
        lines.append(f"| energy reduction {m} (Duplex; PE+ET) | "
                     f"{summary['energy_reduction'][m]:.1%}; "
                     f"{summary['energy_reduction_pe_et'][m]:.1%} | "
                     f"{p['energy_reduction'][m]:.1%} |")
    for s in ("gpu", "duplex"):
        lines.append(f"| saturation QPS {s} | {summary['saturation_qps'][s]} | "
                     f"{p['saturation_qps'][s]} |")
    lines += ["", "Throughput speedup over GPU, mean (max) over batch and lengths:", "",
              "| model | " + " | ".join(SYSTEMS) + " |", "|---" * (len(SYSTEMS) + 1) + "|"]
    for m in MODELS:
        lines.append(f"| {m} | " + " | ".join(
            f"{summary['speedup_mean'][s][m]:.2f} ({summary['speedup_max'][s][m]:.2f})"
            for s in SYSTEMS) + " |")
    lines += ["", "Per configuration (output tok/s; J/token):", "",
              "| model | batch | in/out | " + " | ".join(SYSTEMS) + " |",
              "|---" * (len(SYSTEMS) + 3) + "|"]
    by = {(r["model"], r["system"], r["batch"], r["prompt"], r["output"]): r for r in closed}
    for m in MODELS:
        for b in BATCHES:
            for (i, o) in LENGTHS:
                cells = [f"{by[(m, s, b, i, o)]['tokens_per_s']:.0f}; "
                         f"{by[(m, s, b, i, o)]['j_per_token']:.2f}" for s in SYSTEMS]
                lines.append(f"| {m} | {b} | {i}/{o} | " + " | ".join(cells) + " |")
    lines += ["", "Poisson sweep, Mixtral (4096, 512), batch <= 128 (TTFT slope s/s; p50 TTFT s):",
              "", "| QPS | " + " | ".join(POISSON_SYSTEMS) + " |",
              "|---" * (len(POISSON_SYSTEMS) + 1) + "|"]
    pb = {(r["system"], r["qps"]): r for r in poisson}
    for q in POISSON_QPS:
        lines.append(f"| {q} | " + " | ".join(
            f"{pb[(s, q)]['ttft_slope']:.3f}; {pb[(s, q)]['ttft_p50_s']:.2f}"
            + (" (sat.)" if pb[(s, q)]["saturated"] else "") for s in POISSON_SYSTEMS) + " |")
    return "\n".join(lines) + "\n"


def plots(out: Path, closed: list[dict], poisson: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r["model"], r["system"], r["batch"], r["prompt"], r["output"]): r for r in closed}
    fig, axes = plt.subplots(len(MODELS), 1, figsize=(12, 3 * len(MODELS)), sharex=True)
    labels = [f"{b}\n{i}/{o}" for b in BATCHES for (i, o) in LENGTHS]
    width = 0.8 / len(SYSTEMS)
    for ax, m in zip(axes, MODELS, strict=True):
        for k, s in enumerate(SYSTEMS):
            ys = [by[(m, s, b, i, o)]["tokens_per_s"] / by[(m, "gpu", b, i, o)]["tokens_per_s"]
                  for b in BATCHES for (i, o) in LENGTHS]
            ax.bar(np.arange(len(labels)) + k * width, ys, width, label=s)
        ax.set_ylabel(f"{m}\nspeedup vs GPU")
        ax.axhline(1.0, color="k", lw=0.5)
    axes[0].legend(ncol=len(SYSTEMS), fontsize=8)
    axes[-1].set_xticks(np.arange(len(labels)) + 0.4, labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in POISSON_SYSTEMS:
        rows = sorted((r for r in poisson if r["system"] == s), key=lambda r: r["qps"])
        ax.plot([r["qps"] for r in rows], [r["e2e_p50_s"] for r in rows], marker="o", label=s)
    ax.set_xlabel("requests/s")
    ax.set_ylabel("median end-to-end latency (s)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Mixtral (4096, 512), Poisson")
    fig.tight_layout()
    fig.savefig(out / "poisson.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--requests-per-client", type=int, default=3)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    closed_jobs = [(m, s, b, lengths, args.requests_per_client)
                   for m in MODELS for s in SYSTEMS for b in BATCHES for lengths in LENGTHS]
    # longest first, so the pool does not end on one big run
    closed_jobs.sort(key=lambda j: -(j[2] * (j[3][0] + 4 * j[3][1]) * MODELS[j[0]][1]))
    poisson_jobs = [(s, q) for s in POISSON_SYSTEMS for q in POISSON_QPS]
    with ProcessPoolExecutor(args.jobs) as pool:
        poisson_f = [pool.submit(run_poisson, j) for j in poisson_jobs]
        closed = list(pool.map(run_closed, closed_jobs, chunksize=1))
        poisson = [f.result() for f in poisson_f]
    wall = time.perf_counter() - started
    summary = summarise(closed, poisson)
    summary["wall_s"] = wall
    import pandas as pd
    pd.DataFrame(closed).to_csv(out / "closed_loop.csv", index=False)
    pd.DataFrame(poisson).to_csv(out / "poisson.csv", index=False)
    (out / "duplex.json").write_text(json.dumps(summary, indent=2))
    (out / "duplex.md").write_text(markdown(summary, closed, poisson, wall))
    plots(out, closed, poisson)
    print(markdown(summary, closed, poisson, wall))


if __name__ == "__main__":
    main()
