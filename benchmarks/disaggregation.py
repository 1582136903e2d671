"""Prefill/decode disaggregation against colocated serving, and cache-aware routing.

Llama-3.1-70B on 8 H100s (vLLM-like fcfs, chunked prefill). Two workloads, Poisson arrivals,
lognormal lengths (sigma 0.5):

- ``long_prompt``: prompts ~4,000 tokens, outputs ~400 (prompt:output 10:1: summarisation, RAG);
- ``chat``: prompts ~1,000 tokens, outputs ~300.

Layouts on the 8 GPUs: colocated TP4 x 2, TP8 x 1 and TP4 x PP2 (pipeline, its bubble
reported); disaggregated, every split of the 8 GPUs
into prefill and decode pools of TP2 or TP4 replicas (1P:1D at TP4, 2P(TP2):1D(TP4), ...). KV
transfers ride 400 Gb/s InfiniBand per GPU (50 GB/s); the best disaggregated layout is run again
on 200 Gb/s Ethernet (25 GB/s) and on a slow 10 GB/s link.

Goodput: requests per second that meet both SLOs (TTFT and mean TPOT), over the run (arrival of
the first request to the end of the last), per GPU, at each rate of the sweep; a layout's
goodput is the best over the sweep. SLOs: tight (TTFT <= 2 s, TPOT <= 50 ms), strict (TPOT
<= 25 ms) and loose (TPOT <= 200 ms), evaluated on the same runs. TPOT is each request's mean
time per output token after the first.

Prefix routing: Mooncake's conversation trace (first 4,000 requests, gaps halved), Llama-3.1-8B
on 8 H100 replicas (TP1) with prefix caching: ``least-outstanding`` against ``prefix-aware``
(the trace has no sessions, so ``session-affinity`` has nothing to stick to): prefix cache hit
rate and TTFT.

Expert parallelism: Qwen3-30B-A3B on the 8 GPUs, chat at 40 req/s: 8 TP1 replicas with and
without their experts spread over them (vLLM DP + EP, lockstep), and one TP8 replica with and
without its experts spread over its devices (EP, all-to-all; balanced and Zipf routing): the
token exchange's share of step time.

    python benchmarks/disaggregation.py --out runs/disagg [--jobs 2] [--requests 400]

Writes DIR/disaggregation.json, DIR/disaggregation.md and DIR/goodput.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


MODEL, GPUS = "llama-3.1-70b", 8
WORKLOADS = {"long_prompt": (4000, 400), "chat": (1000, 300)}
RATES = {"long_prompt": (1, 2, 3, 4, 5, 6, 7, 8, 10),
         "chat": (4, 8, 12, 16, 20, 24, 28, 32, 40)}
# the headline (tight), and two more on the same runs: a stricter TPOT, near a TP4 replica's
# unloaded decode step (~16-20 ms), and a loose one
SLOS = {"tight": (2.0, 0.050), "strict": (2.0, 0.025), "loose": (2.0, 0.200)}
IB, ETHERNET, SLOW = 50.0, 25.0, 10.0
COLOCATED = {"TP4 x 2": (4, 2, 1), "TP8 x 1": (8, 1, 1), "TP4xPP2 x 1": (4, 1, 2)}
EP_MODEL, EP_RATE = "qwen3-30b-a3b", 40.0
TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "mooncake_conversation.jsonl"


def splits() -> dict[str, list[dict]]:
    """Every split of the GPUs into prefill and decode pools of TP2 or TP4 replicas."""
    out = {}
    for tp_p in (2, 4):
        for tp_d in (2, 4):
            for n_p in range(1, GPUS // tp_p):
                rest = GPUS - n_p * tp_p
                if rest <= 0 or rest % tp_d:
                    continue
                n_d = rest // tp_d
                out[f"{n_p}P(TP{tp_p}):{n_d}D(TP{tp_d})"] = [
                    {"role": "prefill", "replicas": n_p, "tensor_parallel": tp_p},
                    {"role": "decode", "replicas": n_d, "tensor_parallel": tp_d,
                     "router": "least-outstanding"}]
    return out


def scenario(workload: str, rate: float, layout: dict, requests: int, link_gb_s: float = IB):
    prompt, output = WORKLOADS[workload]
    cluster = {"router": "least-outstanding", **layout}
    if "pools" in layout:
        cluster["kv_transfer"] = {"bandwidth_gb_s": link_gb_s, "latency_us": 10.0}
    return {
        "name": f"disagg-{workload}-{rate}", "seed": 0, "model": MODEL, "hardware": "h100-sxm",
        "cluster": cluster,
        "scheduler": {"name": "fcfs", "max_num_seqs": 256, "max_batched_tokens": 8192,
                      "max_model_len": 32768},
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": float(rate)},
                     "num_requests": requests,
                     "prompt_tokens": {"dist": "lognormal", "mean": prompt, "sigma": 0.5,
                                       "max": 16000},
                     "output_tokens": {"dist": "lognormal", "mean": output, "sigma": 0.5,
                                       "max": 4000}},
    }


def run(args: tuple) -> dict:
    from sim import Scenario, simulate

    workload, kind, name, layout, rate, requests, link = args
    started = time.perf_counter()
    result = simulate(Scenario.from_dict(scenario(workload, rate, layout, requests, link)))
    r, s = result.requests, result.summary
    span = float(r["finish_s"].max() - r["arrival_s"].min())
    out = {"workload": workload, "kind": kind, "config": name, "rate": rate, "link_gb_s": link,
           "gpus": s["devices"], "span_s": span, "ttft_p50_s": s["ttft_s"]["p50"],
           "tpot_p50_s": s["tpot_s"]["p50"], "completed": s["requests_completed"],
           "kv_transfer_share": s.get("kv_transfer_share", 0.0),
           "kv_transfer_p50_s": s.get("kv_transfer_s", {}).get("p50", 0.0),
           "kv_link_utilisation_max": s.get("kv_link_utilisation", {}).get("max", 0.0),
           "pipeline_bubble_fraction": s.get("pipeline_bubble_fraction", 0.0),
           "wall_s": time.perf_counter() - started}
    done = r[r["state"] == "completed"]
    for slo, (ttft, tpot) in SLOS.items():
        met = done[(done["ttft_s"] <= ttft) & ~(done["tpot_s"] > tpot)]
        out[f"goodput_{slo}"] = len(met) / span
        out[f"attainment_{slo}"] = len(met) / len(r)
    return out


def run_prefix(args: tuple) -> dict:
    from sim import Scenario, simulate

    router, limit = args
    data = {"name": f"prefix-{router}", "seed": 0, "model": "llama-3.1-8b",
            "hardware": "h100-sxm",
            "cluster": {"replicas": 8, "tensor_parallel": 1, "router": router},
            "scheduler": {"name": "fcfs", "max_num_seqs": 256, "max_batched_tokens": 8192,
                          "prefix_caching": True},
            "workload": {"trace": {"path": str(TRACE), "format": "mooncake", "limit": limit,
                                   "time_scale": 0.5}}}
    started = time.perf_counter()
    s = simulate(Scenario.from_dict(data)).summary
    return {"router": router, "hit_rate": s["prefix_cache_hit_rate"],
            "ttft_p50_s": s["ttft_s"]["p50"], "ttft_p90_s": s["ttft_s"]["p90"],
            "completed": s["requests_completed"], "wall_s": time.perf_counter() - started}


EP_LAYOUTS = {"8 x TP1": {"replicas": 8, "tensor_parallel": 1},
              "8 x TP1, DP+EP": {"replicas": 8, "tensor_parallel": 1, "expert_parallel": True},
              "1 x TP8": {"replicas": 1, "tensor_parallel": 8},
              "1 x TP8, EP": {"replicas": 1, "tensor_parallel": 8, "expert_parallel": True},
              "1 x TP8, EP, zipf routing": {"replicas": 1, "tensor_parallel": 8,
                                            "expert_parallel": True,
                                            "moe_routing": {"kind": "zipf", "zipf_s": 0.6}}}


def run_ep(name: str) -> dict:
    """Qwen3-30B-A3B on 8 H100s: 8 TP1 replicas with or without their experts spread over them
    (vLLM DP + EP, lockstep), or one TP8 replica with or without its experts spread over its
    devices (all-to-all dispatch and combine; the share of a 64-sequence decode step)."""
    from sim import Scenario, simulate
    from sim.cluster.cluster import deployment_cost_model
    from sim.cost.model import BatchShape

    data = scenario("chat", EP_RATE, EP_LAYOUTS[name], 2000)
    data["model"] = EP_MODEL
    sc = Scenario.from_dict(data)
    s = simulate(sc).summary
    out = {"layout": name, "throughput_tok_s": s["throughput_tokens_per_s"],
           "ttft_p50_s": s["ttft_s"]["p50"], "tpot_p50_s": s["tpot_s"]["p50"],
           "kv_tokens_per_replica": s["kv_tokens_per_replica"],
           "exchange_share": s.get("expert_exchange_share", 0.0)}
    cost = deployment_cost_model(sc)
    if hasattr(cost, "placed_ops") and sc.cluster.expert_parallel:
        it = cost.iteration(BatchShape.decode([1300] * 64))
        out["exchange_share"] = it.breakdown_s.get("alltoall", 0.0) / it.time_s
    return out


def best(rows: list[dict], slo: str) -> dict:
    """The row of the highest goodput per GPU."""
    return max(rows, key=lambda r: r[f"goodput_{slo}"] / r["gpus"])


def summarise(rows: list[dict], prefix: list[dict], ep: list[dict]) -> dict:
    out: dict = {}
    for workload in WORKLOADS:
        entry: dict = {}
        for slo in SLOS:
            per_kind = {}
            for kind in ("colocated", "disaggregated"):
                mine = [r for r in rows if r["workload"] == workload and r["kind"] == kind
                        and r["link_gb_s"] == IB]
                top = best(mine, slo)
                per_kind[kind] = {"goodput_per_gpu": top[f"goodput_{slo}"] / top["gpus"],
                                  "config": top["config"], "rate": top["rate"]}
                if kind == "disaggregated":
                    per_kind[kind]["kv_transfer_share"] = top["kv_transfer_share"]
                    per_kind[kind]["kv_link_utilisation_max"] = top["kv_link_utilisation_max"]
            entry[slo] = per_kind
        tight = entry["tight"]
        # the schema's top level: the tight SLO (the headline); loose beside it
        entry["colocated"], entry["disaggregated"] = tight["colocated"], tight["disaggregated"]
        links = {}
        config = tight["disaggregated"]["config"]
        for link in (IB, ETHERNET, SLOW):
            mine = [r for r in rows if r["workload"] == workload and r["config"] == config
                    and r["link_gb_s"] == link]
            if mine:
                top = best(mine, "tight")
                links[f"{link:g}GB/s"] = {"goodput_per_gpu": top["goodput_tight"] / top["gpus"],
                                          "kv_transfer_share": top["kv_transfer_share"],
                                          "kv_transfer_p50_s": top["kv_transfer_p50_s"]}
        entry["links"] = links
        out[workload] = entry
    out["prefix_routing"] = {p["router"]: {k: v for k, v in p.items() if k != "router"}
                             for p in prefix}
    # pipeline against tensor parallelism on the same 8 GPUs
    out["pipeline"] = {}
    for workload in WORKLOADS:
        entry = {}
        for config in ("TP8 x 1", "TP4xPP2 x 1"):
            mine = sorted((r for r in rows if r["workload"] == workload
                           and r["config"] == config), key=lambda r: r["rate"])
            top = best(mine, "tight")
            entry[config] = {"goodput_per_gpu": top["goodput_tight"] / top["gpus"],
                             "rate": top["rate"], "tpot_p50_s_lowest_rate": mine[0]["tpot_p50_s"],
                             "ttft_p50_s_lowest_rate": mine[0]["ttft_p50_s"],
                             "bubble_fraction": top["pipeline_bubble_fraction"]}
        out["pipeline"][workload] = entry
    out["expert_parallel"] = {e["layout"]: e for e in ep}
    return out


def markdown(summary: dict, rows: list[dict], wall_s: float) -> str:
    lines = ["# Prefill/decode disaggregation and cache-aware routing", "",
             f"{len(rows)} runs in {wall_s:.0f} s. {MODEL} on {GPUS} H100s; goodput = requests/s "
             "meeting both SLOs per GPU, best over the rate sweep.", "",
             "| workload | SLO | colocated (best) | goodput/GPU | disaggregated (best) | "
             "goodput/GPU | KV transfer share |", "|---|---|---|---:|---|---:|---:|"]
    for workload in WORKLOADS:
        for slo in SLOS:
            c, d = summary[workload][slo]["colocated"], summary[workload][slo]["disaggregated"]
            lines.append(f"| {workload} | {slo} | {c['config']} @ {c['rate']} rps | "
                         f"{c['goodput_per_gpu']:.3f} | {d['config']} @ {d['rate']} rps | "
                         f"{d['goodput_per_gpu']:.3f} | {d['kv_transfer_share']:.1%} |")
    lines += ["", "Link speed (best disaggregated layout, tight SLO):", "",
              "| workload | link | goodput/GPU | KV transfer share | transfer p50 (ms) |",
              "|---|---|---:|---:|---:|"]
    for workload in WORKLOADS:
        for link, v in summary[workload]["links"].items():
            lines.append(f"| {workload} | {link} | {v['goodput_per_gpu']:.3f} | "
                         f"{v['kv_transfer_share']:.1%} | {v['kv_transfer_p50_s'] * 1e3:.1f} |")
    lines += ["", "Every layout (IB), goodput per GPU by SLO, best over the sweep:", "",
              "| workload | layout | " + " | ".join(SLOS) + " |",
              "|---|---|" + "---:|" * len(SLOS)]
    for workload in WORKLOADS:
        configs = sorted({r["config"] for r in rows if r["workload"] == workload})
        for config in configs:
            mine = [r for r in rows if r["workload"] == workload and r["config"] == config
                    and r["link_gb_s"] == IB]
            cells = [f"{best(mine, slo)[f'goodput_{slo}'] / best(mine, slo)['gpus']:.3f}"
                     for slo in SLOS]
            lines.append(f"| {workload} | {config} | " + " | ".join(cells) + " |")
    lines += ["", "Pipeline against tensor parallelism (tight SLO; TPOT and TTFT at the lowest "
              "rate; bubble at the best rate):", "",
              "| workload | layout | goodput/GPU | TPOT p50 (ms) | TTFT p50 (s) | bubble |",
              "|---|---|---:|---:|---:|---:|"]
    for workload, entry in summary["pipeline"].items():
        for config, v in entry.items():
            lines.append(f"| {workload} | {config} | {v['goodput_per_gpu']:.3f} | "
                         f"{v['tpot_p50_s_lowest_rate'] * 1e3:.1f} | "
                         f"{v['ttft_p50_s_lowest_rate']:.3f} | {v['bubble_fraction']:.1%} |")
    lines += ["", f"Expert parallelism: {EP_MODEL} on 8 H100s, chat at {EP_RATE:g} req/s:", "",
              "| layout | tok/s | TTFT p50 (s) | TPOT p50 (ms) | KV tokens/replica | "
              "token exchange share (DP+EP: of step time; EP: of a 64-sequence decode step) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, v in summary["expert_parallel"].items():
        lines.append(f"| {name} | {v['throughput_tok_s']:.0f} | {v['ttft_p50_s']:.3f} | "
                     f"{v['tpot_p50_s'] * 1e3:.1f} | {v['kv_tokens_per_replica']} | "
                     f"{v['exchange_share']:.1%} |")
    lines += ["", "Prefix routing, Mooncake conversation trace on 8 x Llama-3.1-8B:", "",
              "| router | prefix cache hit rate | TTFT p50 (s) | TTFT p90 (s) |",
              "|---|---:|---:|---:|"]
    for router, v in summary["prefix_routing"].items():
        lines.append(f"| {router} | {v['hit_rate']:.1%} | {v['ttft_p50_s']:.3f} | "
                     f"{v['ttft_p90_s']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(out: Path, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SLOS), len(WORKLOADS), figsize=(12, 8), squeeze=False)
    for j, workload in enumerate(WORKLOADS):
        for i, slo in enumerate(SLOS):
            ax = axes[i][j]
            configs = sorted({r["config"] for r in rows if r["workload"] == workload})
            for config in configs:
                mine = sorted((r for r in rows if r["workload"] == workload
                               and r["config"] == config and r["link_gb_s"] == IB),
                              key=lambda r: r["rate"])
                style = "-" if mine[0]["kind"] == "colocated" else "--"
                ax.plot([r["rate"] for r in mine],
                        [r[f"goodput_{slo}"] / r["gpus"] for r in mine], style, marker="o",
                        ms=3, label=config)
            ttft, tpot = SLOS[slo]
            ax.set_title(f"{workload}, TTFT <= {ttft:g} s, TPOT <= {tpot * 1e3:g} ms")
            ax.set_xlabel("arrival rate (requests/s)")
            ax.set_ylabel("goodput per GPU (requests/s)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "goodput.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--trace-requests", type=int, default=4000)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    layouts = {name: ("colocated", {"replicas": n, "tensor_parallel": tp,
                                    "pipeline_parallel": pp})
               for name, (tp, n, pp) in COLOCATED.items()}
    layouts.update({name: ("disaggregated", {"pools": pools})
                    for name, pools in splits().items()})
    jobs = [(w, kind, name, layout, rate, args.requests, IB)
            for w in WORKLOADS for name, (kind, layout) in layouts.items() for rate in RATES[w]]
    with ProcessPoolExecutor(args.jobs) as pool:
        prefix_f = [pool.submit(run_prefix, (router, args.trace_requests))
                    for router in ("least-outstanding", "prefix-aware")] if TRACE.is_file() \
            else []
        ep_f = [pool.submit(run_ep, name) for name in EP_LAYOUTS]
        rows = list(pool.map(run, jobs, chunksize=1))
        # the best disaggregated layouts again on slower links
        again = []
        for w in WORKLOADS:
            mine = [r for r in rows if r["workload"] == w and r["kind"] == "disaggregated"]
            config = best(mine, "tight")["config"]
            again += [(w, "disaggregated", config, layouts[config][1], rate, args.requests, link)
                      for link in (ETHERNET, SLOW) for rate in RATES[w]]
        rows += list(pool.map(run, again, chunksize=1))
        prefix = [f.result() for f in prefix_f]
        ep = [f.result() for f in ep_f]
    wall = time.perf_counter() - started
    summary = summarise(rows, prefix, ep)
    summary["wall_s"] = wall
    import pandas as pd
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)
    (out / "disaggregation.json").write_text(json.dumps(summary, indent=2))
    (out / "disaggregation.md").write_text(markdown(summary, rows, wall))
    plot(out, rows)
    print(markdown(summary, rows, wall))


if __name__ == "__main__":
    main()
