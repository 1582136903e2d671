"""Speed benchmark: the quickstart shape on 4 replicas at 10k and 100k requests (or --requests).

Prints wall seconds, simulated requests per wall second, events and peak RSS. Not a test: run it
by hand and record the numbers in benchmarks/README.md.

    python benchmarks/speed.py                  # 10k and 100k
    python benchmarks/speed.py --requests 1000000
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from sim import Scenario, simulate

ROOT = Path(__file__).resolve().parents[1]


def run(num_requests: int, fast_forward: bool = True, replicas: int = 4) -> dict:
    # 4 replicas at 4x the quickstart's per-replica load (quickstart: 8 req/s on 2 replicas)
    scenario = Scenario.from_yaml(ROOT / "scenarios" / "quickstart.yaml", [
        f"workload.num_requests={num_requests}", f"cluster.replicas={replicas}",
        f"workload.arrivals.rate_rps={4 * replicas}",
        f"simulation.fast_forward={'true' if fast_forward else 'false'}"])
    start = time.perf_counter()
    result = simulate(scenario)
    wall = time.perf_counter() - start
    return {"requests": num_requests, "wall_s": wall, "requests_per_s": num_requests / wall,
            "events": result.summary["events"], "iterations": result.summary["iterations"],
            "simulated_s": result.summary["simulated_duration_s"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, action="append",
                        help="request counts to run (default: 10000 and 100000)")
    parser.add_argument("--no-fast-forward", action="store_true",
                        help="step every iteration (to measure what fast-forward buys)")
    args = parser.parse_args()
    print(f"{'requests':>9} {'wall s':>8} {'req/s':>9} {'events':>9} {'iterations':>11} "
          f"{'simulated s':>12} {'peak RSS MB':>12}")
    for n in args.requests or [10_000, 100_000]:
        r = run(n, fast_forward=not args.no_fast_forward)
        print(f"{r['requests']:>9} {r['wall_s']:>8.2f} {r['requests_per_s']:>9.0f} "
              f"{r['events']:>9} {r['iterations']:>11} {r['simulated_s']:>12.1f} "
              f"{r['peak_rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
