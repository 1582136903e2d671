"""Elastic fleets: a fixed fleet sized for the peak against autoscaled fleets over a diurnal day,
and a host-memory KV tier for multi-turn chat.

**The day.** Llama-3.1-8B on H100s (fcfs, chunked prefill, prefix caching, least-outstanding
router), Azure-conversation-like lengths (as benchmarks/speed.py: prompts lognormal mean 1155,
outputs mean 211), Poisson arrivals whose rate follows a day (``arrivals: diurnal``): mean
``--mean-rps`` (64), peak:trough 4:1, starting at the trough. The day is compressed into
``--period-s`` (7,200 s, 12x) so that the benchmark runs in minutes; cold starts are not
compressed, which makes them weigh more than in a real day (say so when quoting the results).
SLO: TTFT <= 2 s and TPOT <= 100 ms per request; ``slo_attainment`` is the share of requests
meeting both.

**The fleets.**
- ``fixed``: the smallest fleet whose attainment over the day is at least ``--fixed-attainment``
  (0.99), found by running 4 to 7 replicas (the peak over one replica's saturation, to the peak
  at 70% of it): the fleet a planner sizes for the peak with no headroom.
- ``policies``: each autoscaler policy with cold starts of 60 s and 300 s (provisioning plus
  the weights from local NVMe: provisioning_s is set so that the whole cold start is 60 or 300
  s), every 15 s, scale-down window 120 s, at most the headroom fleet's replicas, starting with
  the replicas the trough needs at the target load. The targets come from a load test, as an
  operator would set them: one replica's knee (the highest steady Poisson rate at which it meets
  the SLO as the fixed fleet must), then one replica at the target load (a fraction of that
  rate), whose rate is the ``rate`` target, whose mean outstanding requests are the ``queue``
  target and whose mean KV use is the ``target-utilisation`` target; ``slo`` scales up when the
  p90 TTFT of the last minute passes 80% of the SLO. The target load (``--target-load``,
  default ``auto``) is the fixed fleet's own load at the peak (the peak rate over its replicas'
  knee rates), so that both fleets run their replicas equally hot at the busiest hour.
- ``policies_at_headroom``: the load-targeted policies at ``--headroom-load`` (0.7, Knative's
  default target utilisation) against ``fixed_at_headroom``, the fixed fleet holding the peak at
  that load.

**The KV tier.** Multi-turn chat (sessions of 2-10 turns, each a new message lognormal ~300
tokens and an answer ~250, the prompt the whole conversation so far; think times exponential,
mean ``--think-s`` = 120 s; session starts Poisson) on 2 replicas with session-affinity routing,
the GPU KV cache limited to ``--gpu-kv-blocks`` blocks per replica so that conversations are
evicted while their users think: GPU-only prefix caching against a host tier of
``--tier-gib`` GiB per GPU at 25 GB/s (PCIe 5 host memory), ``scheduler.kv_offload``.

Writes ``DIR/elastic.json`` (``{"fixed": {cost_usd, slo_attainment, replicas}, "policies":
{policy: {cold_60: {cost_usd, slo_attainment, scale_events, ...}, cold_300: {...}}},
"fixed_at_headroom": {...}, "policies_at_headroom": {...},
"kv_tier": {"off": {hit_rate, ttft_p50_s}, "on": {...}}}``), ``DIR/elastic.md`` and
``DIR/replicas.png`` (replicas over the day per policy, 60 s cold starts, with the rate).

    python benchmarks/elastic.py --out runs/elastic [--jobs 2]
    python benchmarks/elastic.py --out runs/day --period-s 86400 --policies rate --fixed-sizes 5
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

POLICIES = ("queue", "target-utilisation", "slo", "rate")
LOAD_TARGETED = ("queue", "target-utilisation", "rate")    # targets from the load test
COLD_STARTS = (60.0, 300.0)
SATURATION_RPS = 22.0       # one H100 on these lengths (benchmarks/README.md, speed.py)
LENGTHS = {"prompt_tokens": {"dist": "lognormal", "mean": 1155, "sigma": 0.99, "max": 14050},
           "output_tokens": {"dist": "lognormal", "mean": 211, "sigma": 0.86, "max": 1000}}


def base(replicas: int, arrivals: dict, num_requests: int, seed: int = 0) -> dict:
    return {
        "name": "elastic", "seed": seed, "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "cluster": {"replicas": replicas, "router": "least-outstanding"},
        "scheduler": {"name": "fcfs", "max_num_seqs": 256, "max_batched_tokens": 8192,
                      "prefix_caching": True},
        "workload": {"arrivals": arrivals, "num_requests": num_requests, **LENGTHS},
        "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
        "simulation": {"iteration_rows": "none"},
    }


def day(args) -> tuple[dict, int]:
    arrivals = {"kind": "diurnal", "mean_rps": args.mean_rps, "peak_to_trough": 4.0,
                "period_s": args.period_s, "phase": 0.75}
    return arrivals, int(args.mean_rps * args.period_s)


def run(data: dict) -> dict:
    """One scenario: its summary and, for an autoscaled run, its fleet transitions."""
    from sim import Scenario, simulate

    result = simulate(Scenario.from_dict(data))
    out = {"summary": result.summary}
    if result.fleet_events is not None:
        out["events"] = result.fleet_events
    return out


def knee(args) -> float:
    """One replica's knee: the highest steady Poisson rate at which it meets the SLO for
    ``--fixed-attainment`` of its requests (bisection)."""
    def meets(rate: float) -> bool:
        s = run(base(1, {"kind": "poisson", "rate_rps": rate}, 6000))["summary"]
        return s["slo_attainment"] >= args.fixed_attainment

    low, high = 0.25 * SATURATION_RPS, 1.5 * SATURATION_RPS
    for _ in range(7):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def at_load(knee_rps: float, load: float) -> dict:
    """One replica at ``load`` x its knee rate: its mean outstanding requests (Little's law:
    rate x mean time in the system) and mean KV use, what a replica holds at the target."""
    rate = load * knee_rps
    s = run(base(1, {"kind": "poisson", "rate_rps": rate}, 6000))["summary"]
    return {"load": load, "target_rps": rate, "outstanding": rate * s["e2e_s"]["mean"],
            "kv_use": s["kv_usage_mean"]}


def autoscaled(args, policy: str, cold_s: float, max_replicas: int, test: dict) -> dict:
    from sim.cluster.autoscaler import AutoscalerConfig
    from sim.memory.capacity import weight_bytes_per_device
    from sim.models import get_model
    from sim.workload.arrivals import ArrivalConfig, diurnal_rate

    arrivals, n = day(args)
    load_s = weight_bytes_per_device(get_model("llama-3.1-8b"), 1) \
        / (AutoscalerConfig().bandwidth_gb_s * 1e9)
    target = {"queue": round(test["outstanding"], 1),
              "target-utilisation": round(test["kv_use"], 3), "slo": 0.8,
              "rate": round(test["target_rps"], 2)}[policy]
    # the day starts in its trough with the replicas that rate needs at the target load
    trough = float(diurnal_rate(ArrivalConfig(**arrivals), np.zeros(1))[0])
    data = base(min(math.ceil(trough / test["target_rps"]), max_replicas), arrivals, n)
    data["autoscaler"] = {"policy": policy, "min_replicas": 1,
                          "max_replicas": max_replicas, "interval_s": 15.0,
                          "target": target, "window_s": 60.0, "scale_down_cooldown_s": 120.0,
                          "provisioning_s": cold_s - load_s, "weight_source": "nvme"}
    return data


def summarize_fleet(out: dict) -> dict:
    s = out["summary"]
    auto = s.get("autoscaler", {})
    row = {"cost_usd": s["cost_usd"], "slo_attainment": s["slo_attainment"],
           "ttft_p90_s": s["ttft_s"]["p90"], "tpot_p90_s": s["tpot_s"]["p90"]}
    if auto:
        row.update({k: auto[k] for k in ("scale_events", "cold_start_s", "replica_hours",
                                         "mean_replicas", "peak_replicas",
                                         "slo_attainment_in_ramps",
                                         "slo_attainment_outside_ramps")})
    return row


def chat(args, tier: bool) -> dict:
    data = base(2, {"kind": "poisson", "rate_rps": args.session_rps}, args.chat_requests)
    data["cluster"]["router"] = "session-affinity"
    data["workload"] = {
        "arrivals": {"kind": "poisson", "rate_rps": args.session_rps},
        "num_requests": args.chat_requests,
        "sessions": {"turns": {"dist": "uniform", "min": 2, "max": 10},
                     "think_time_s": args.think_s},
        "prompt_tokens": {"dist": "lognormal", "mean": 300, "sigma": 0.8, "max": 4096},
        "output_tokens": {"dist": "lognormal", "mean": 250, "sigma": 0.8, "max": 2048}}
    data["scheduler"]["kv_blocks"] = args.gpu_kv_blocks
    if tier:
        data["scheduler"]["kv_offload"] = {"capacity_gib": args.tier_gib,
                                           "bandwidth_gb_s": 25.0, "latency_us": 20.0}
    return data


def main() -> None:
    from sim.metrics.result import jsonable

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--mean-rps", type=float, default=64.0)
    ap.add_argument("--period-s", type=float, default=7200.0)
    ap.add_argument("--fixed-attainment", type=float, default=0.99)
    ap.add_argument("--target-load", default="auto",
                    help="the autoscalers' target, as a fraction of a replica's knee rate "
                    "(auto: the fixed fleet's load at the peak)")
    ap.add_argument("--headroom-load", type=float, default=0.7,
                    help="the target of the comparison with headroom (Knative's default)")
    ap.add_argument("--session-rps", type=float, default=0.5)
    ap.add_argument("--think-s", type=float, default=120.0)
    ap.add_argument("--chat-requests", type=int, default=12000)
    ap.add_argument("--gpu-kv-blocks", type=int, default=8000)
    ap.add_argument("--tier-gib", type=float, default=128.0)
    ap.add_argument("--fixed-sizes", help="fixed fleets to run, e.g. 5,7 (default: from the "
                    "peak over one replica's saturation to twice that)")
    ap.add_argument("--policies", default=",".join(POLICIES),
                    help="the autoscaler policies to run, e.g. rate (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    arrivals, n = day(args)
    peak = args.mean_rps * 1.6
    with ProcessPoolExecutor(args.jobs) as pool:
        # the load test, the tier pair and the fixed fleets side by side
        knee_f = pool.submit(knee, args)
        chat_f = {name: pool.submit(run, chat(args, name == "on")) for name in ("off", "on")}
        sizes = [int(k) for k in args.fixed_sizes.split(",")] if args.fixed_sizes else \
            list(range(max(1, math.floor(peak / SATURATION_RPS)),
                       math.ceil(peak / (args.headroom_load * SATURATION_RPS)) + 1))
        fixed_f = {k: pool.submit(run, base(k, arrivals, n)) for k in sizes}
        fixed_runs = {k: summarize_fleet(f.result()) for k, f in fixed_f.items()}
        fits = [k for k in sizes if fixed_runs[k]["slo_attainment"] >= args.fixed_attainment]
        fixed_k = fits[0] if fits else sizes[-1]
        knee_rps = knee_f.result()
        load = peak / (fixed_k * knee_rps) if args.target_load == "auto" \
            else float(args.target_load)
        # the fixed fleet with the headroom: the peak at the headroom load (also the most
        # replicas the autoscalers may start)
        headroom_k = math.ceil(peak / (args.headroom_load * knee_rps))
        test_f = {x: pool.submit(at_load, knee_rps, x) for x in (load, args.headroom_load)}
        tests = {x: f.result() for x, f in test_f.items()}
        chosen = args.policies.split(",")
        runs = [("main", p, load) for p in POLICIES if p in chosen] \
            + [("headroom", p, args.headroom_load) for p in LOAD_TARGETED if p in chosen]
        auto_f = {(group, p, c): pool.submit(run, autoscaled(args, p, c, headroom_k,
                                                             tests[x]))
                  for group, p, x in runs for c in COLD_STARTS}
        if headroom_k not in fixed_runs:
            fixed_runs[headroom_k] = summarize_fleet(run(base(headroom_k, arrivals, n)))
        autos = {key: f.result() for key, f in auto_f.items()}
        chats = {name: f.result()["summary"] for name, f in chat_f.items()}
    fixed = {**fixed_runs[fixed_k], "replicas": fixed_k}
    at_headroom = {**fixed_runs[headroom_k], "replicas": headroom_k}

    def policies(group: str, against: dict) -> dict:
        return {p: {f"cold_{int(c)}": {
            **summarize_fleet(autos[group, p, c]),
            "saving_vs_fixed": 1 - autos[group, p, c]["summary"]["cost_usd"]
            / against["cost_usd"],
            "attainment_vs_fixed": autos[group, p, c]["summary"]["slo_attainment"]
            / against["slo_attainment"]} for c in COLD_STARTS}
            for g, p in {(g, p) for g, p, _ in auto_f} if g == group}

    out = {"fixed": fixed, "target_load": load,
           "policies": dict(sorted(policies("main", fixed).items(),
                                   key=lambda kv: POLICIES.index(kv[0]))),
           "fixed_at_headroom": at_headroom, "headroom_load": args.headroom_load,
           "policies_at_headroom": dict(sorted(policies("headroom", at_headroom).items(),
                                               key=lambda kv: POLICIES.index(kv[0]))),
           "fixed_sizes": {str(k): v for k, v in sorted(fixed_runs.items())},
           "load_test": {"knee_rps": knee_rps, "at_target": tests[load],
                         "at_headroom": tests[args.headroom_load]},
           "day": {"mean_rps": args.mean_rps, "peak_to_trough": 4.0, "period_s": args.period_s,
                   "requests": n},
           "kv_tier": {name: {
               "hit_rate": s["prefix_cache_hit_rate"] + s.get("kv_offload", {}).get(
                   "host_hit_rate", 0.0),
               "gpu_hit_rate": s["prefix_cache_hit_rate"],
               "host_hit_rate": s.get("kv_offload", {}).get("host_hit_rate", 0.0),
               "ttft_p50_s": s["ttft_s"]["p50"], "ttft_p90_s": s["ttft_s"]["p90"],
               "throughput_tokens_per_s": s["throughput_tokens_per_s"]}
               for name, s in chats.items()},
           "wall_s": time.perf_counter() - started}
    (args.out / "elastic.json").write_text(json.dumps(jsonable(out), indent=2) + "\n")
    table = markdown(out)
    (args.out / "elastic.md").write_text(table)
    plot(args, autos, out, args.out / "replicas.png")
    print(table)
    print(f"wall {out['wall_s']:.0f} s")


def markdown(out: dict) -> str:
    f, d, h = out["fixed"], out["day"], out["fixed_at_headroom"]
    lines = [f"A day of {d['requests']} requests (mean {d['mean_rps']:g} req/s, peak:trough 4:1, "
             f"compressed into {d['period_s']:g} s); one replica's knee "
             f"{out['load_test']['knee_rps']:.1f} req/s.", "",
             f"Against the smallest fixed fleet meeting the SLO ({f['replicas']} replicas, "
             f"${f['cost_usd']:.2f}, attainment {f['slo_attainment']:.3f}), the autoscalers "
             f"targeting its load at the peak ({out['target_load']:.0%} of the knee):", ""]
    lines += _policy_table(out["policies"])
    lines += ["", f"Against a fixed fleet holding the peak at {out['headroom_load']:.0%} of the "
                  f"knee ({h['replicas']} replicas, ${h['cost_usd']:.2f}, attainment "
                  f"{h['slo_attainment']:.3f}), the autoscalers targeting that load:", ""]
    lines += _policy_table(out["policies_at_headroom"])
    t = out["kv_tier"]
    lines += ["", "| KV tier | prefix hit rate (GPU + host) | GPU | host | TTFT p50 s | "
                  "TTFT p90 s |", "|---|---:|---:|---:|---:|---:|"]
    for name in ("off", "on"):
        r = t[name]
        lines.append(f"| {name} | {r['hit_rate']:.3f} | {r['gpu_hit_rate']:.3f} | "
                     f"{r['host_hit_rate']:.3f} | {r['ttft_p50_s']:.3f} | "
                     f"{r['ttft_p90_s']:.3f} |")
    return "\n".join(lines) + "\n"


def _policy_table(policies: dict) -> list[str]:
    lines = ["| policy | cold start | cost $ | saving | attainment | vs fixed | in ramps | "
             "scale events | mean replicas | peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, by_cold in policies.items():
        for r in by_cold.values():
            lines.append(f"| {p} | {r['cold_start_s']:.0f} s | {r['cost_usd']:.2f} | "
                         f"{r['saving_vs_fixed']:.1%} | {r['slo_attainment']:.3f} | "
                         f"{r['attainment_vs_fixed']:.3f} | "
                         f"{r['slo_attainment_in_ramps']:.3f} | {r['scale_events']} | "
                         f"{r['mean_replicas']:.2f} | {r['peak_replicas']} |")
    return lines


def plot(args, autos: dict, out: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.cluster.autoscaler import replicas_over_time
    from sim.workload.arrivals import ArrivalConfig, diurnal_rate

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for p in (p for p in POLICIES if ("main", p, COLD_STARTS[0]) in autos):
        r = autos["main", p, COLD_STARTS[0]]
        end = r["summary"]["simulated_duration_s"]
        series = replicas_over_time(r["events"], end)
        ax.step(np.append(series["time_s"], end) / 3600,
                np.append(series["provisioned"], series["provisioned"][-1]), where="post",
                label=f"{p} (provisioned)")
    ax.axhline(out["fixed"]["replicas"], color="k", ls="--", lw=1, label="fixed fleet")
    ax.set_xlabel("time (h, compressed day)")
    ax.set_ylabel("replicas")
    rate_ax = ax.twinx()
    cfg = ArrivalConfig(**day(args)[0])
    t = np.linspace(0, args.period_s, 400)
    rate_ax.plot(t / 3600, diurnal_rate(cfg, t), color="grey", alpha=0.5, label="rate")
    rate_ax.set_ylabel("requests/s")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"Autoscaled fleets over a diurnal day ({int(COLD_STARTS[0])} s cold starts)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
