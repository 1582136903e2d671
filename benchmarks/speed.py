"""Speed benchmark: wall time, simulated requests and iterations per second, and peak memory.

Families (``--family``):

- ``azure-conv`` (default): Azure-conversation-like lengths (lognormal fitted to
  ``AzureLLMInferenceTrace_conv``: prompts mean 1155 tokens, sigma 0.99, max 14050; outputs mean
  211, sigma 0.86, max 1000), Poisson arrivals at 17.5 req/s per replica, Llama-3.1-8B on
  H100-SXM, fcfs with chunked prefill and prefix caching, least-outstanding router. One replica
  saturates at ~22 req/s on these lengths (TTFT grows without bound above ~25 req/s per replica
  on 8 replicas), so 17.5 req/s is ~80% load. ``--replicas`` scales the arrival rate with the
  replicas, so a run covers the same simulated time per request count per replica.
- ``quickstart``: the quickstart's lengths (lognormal 600/250) on 4 replicas at 16 req/s.

Each size runs in a fresh process, so its peak RSS is its own. The scaling exponent is the slope
of log(wall) against log(requests) over the sizes run. Not a test: run it by hand and record the
numbers in benchmarks/README.md.

    python benchmarks/speed.py                              # 10k, 100k and 1M requests
    python benchmarks/speed.py --requests 1000000 --json runs/speed.json
    python benchmarks/speed.py --replicas 64 --requests 8640000   # a day at 100 req/s
    python benchmarks/speed.py --requests 1000000 --stream on      # tables streamed to Parquet
    python benchmarks/speed.py --family quickstart          # 10k and 100k requests
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STREAM_ABOVE = 1_000_000     # --stream auto: larger runs write their tables as they go
FAMILIES = {
    "azure-conv": {"replicas": 8, "rate_per_replica": 17.5,
                   "sizes": [10_000, 100_000, 1_000_000]},
    "quickstart": {"replicas": 4, "rate_per_replica": 4.0, "sizes": [10_000, 100_000]},
}


def scenario_dict(family: str, num_requests: int, replicas: int, fast_forward: bool) -> dict:
    rate = FAMILIES[family]["rate_per_replica"] * replicas
    if family == "quickstart":
        from sim import Scenario
        data = Scenario.from_yaml(ROOT / "scenarios" / "quickstart.yaml").to_dict()
        data["cluster"]["replicas"] = replicas
        data["workload"]["arrivals"]["rate_rps"] = rate
        data["workload"]["num_requests"] = num_requests
    else:
        data = {
            "name": f"speed-{family}", "seed": 1, "model": "llama-3.1-8b",
            "hardware": "h100-sxm",
            "cluster": {"replicas": replicas, "router": "least-outstanding"},
            "scheduler": {"name": "fcfs", "max_num_seqs": 256, "max_batched_tokens": 8192,
                          "block_size": 16, "prefix_caching": True, "chunked_prefill": True},
            "workload": {
                "arrivals": {"kind": "poisson", "rate_rps": rate},
                "num_requests": num_requests,
                "prompt_tokens": {"dist": "lognormal", "mean": 1155, "sigma": 0.99,
                                  "max": 14050},
                "output_tokens": {"dist": "lognormal", "mean": 211, "sigma": 0.86, "max": 1000},
            },
            "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
        }
    data.setdefault("simulation", {})["fast_forward"] = fast_forward
    return data


def run_one(family: str, num_requests: int, replicas: int, fast_forward: bool,
            stream: bool = False, router: str | None = None, partitions: int = 1) -> dict:
    """One size, in this process (the parent runs each in a child)."""
    from sim import Scenario, simulate
    data = scenario_dict(family, num_requests, replicas, fast_forward)
    data["simulation"]["stream_outputs"] = stream
    data["simulation"]["partitions"] = partitions
    if router:
        data["cluster"]["router"] = router
    scenario = Scenario.from_dict(data)
    start = time.perf_counter()
    result = simulate(scenario)
    wall = time.perf_counter() - start
    s = result.summary
    return {"family": family, "requests": num_requests, "replicas": replicas, "wall_s": wall,
            "requests_per_s": num_requests / wall, "iterations": s["iterations"],
            "iterations_per_s": s["iterations"] / wall, "events": s["events"],
            "simulated_s": s["simulated_duration_s"],
            "completed": s["requests_completed"], "ttft_p50_s": s["ttft_s"]["p50"],
            "tpot_p50_s": s["tpot_s"]["p50"], "streamed": stream,
            "router": scenario.cluster.router, "partitions": partitions,
            # this process and, for partitioned runs, its worker processes (the largest)
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _peak_mb(run: dict) -> float:
    """Peak memory of the run: its process, plus, when partitioned, each worker at the largest
    worker's peak (an upper bound: the workers run side by side)."""
    if run.get("partitions", 1) == 1:
        return run["peak_rss_mb"]
    return run["peak_rss_mb"] + run["partitions"] * run["peak_rss_workers_mb"]


def scaling_exponent(runs: list[dict]) -> float | None:
    """Least-squares slope of log(wall) on log(requests); None with fewer than two sizes."""
    points = [(math.log(r["requests"]), math.log(r["wall_s"])) for r in runs]
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="azure-conv")
    parser.add_argument("--requests", type=positive_int, action="append",
                        help="request count to run (repeatable; default: the family's sizes)")
    parser.add_argument("--replicas", type=positive_int, help="replicas (default: the family's); the "
                        "arrival rate scales with them")
    parser.add_argument("--no-fast-forward", action="store_true",
                        help="step every iteration (to measure what fast-forward buys)")
    parser.add_argument("--stream", choices=("auto", "on", "off"), default="auto",
                        help="stream the output tables to Parquet as rows complete "
                        "(simulation.stream_outputs); auto: above %d requests" % STREAM_ABOVE)
    parser.add_argument("--router", help="the cluster's router (default: the family's, "
                        "least-outstanding)")
    parser.add_argument("--partitions", type=positive_int, default=1,
                        help="split the replicas over N processes (simulation.partitions; "
                        "needs --router round-robin or random)")
    parser.add_argument("--json", type=Path, help="write {runs: [...], scaling_exponent} here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    family = FAMILIES[args.family]
    replicas = args.replicas or family["replicas"]
    sizes = args.requests or family["sizes"]
    if args.child:
        stream = args.stream == "on" or (args.stream == "auto" and sizes[0] > STREAM_ABOVE)
        print(json.dumps(run_one(args.family, sizes[0], replicas, not args.no_fast_forward,
                                 stream, args.router, args.partitions)))
        return
    print(f"family {args.family}, {replicas} replicas, "
          f"{family['rate_per_replica'] * replicas:g} req/s")
    print(f"{'requests':>9} {'wall s':>8} {'req/s':>8} {'iter/s':>9} {'iterations':>11} "
          f"{'simulated s':>12} {'peak RSS MB':>12}")
    runs = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", "--family", args.family, "--requests",
               str(n), "--replicas", str(replicas), "--stream", args.stream,
               "--partitions", str(args.partitions)] + (["--router", args.router]
                                                        if args.router else [])
        if args.no_fast_forward:
            cmd.append("--no-fast-forward")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        runs.append(r)
        print(f"{r['requests']:>9} {r['wall_s']:>8.2f} {r['requests_per_s']:>8.0f} "
              f"{r['iterations_per_s']:>9.0f} {r['iterations']:>11} {r['simulated_s']:>12.1f} "
              f"{_peak_mb(r):>12.0f}", flush=True)
    exponent = scaling_exponent(runs)
    if exponent is not None:
        print(f"scaling exponent (wall ~ requests^k): {exponent:.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs, "scaling_exponent": exponent}, indent=2)
                             + "\n")


if __name__ == "__main__":
    main()
