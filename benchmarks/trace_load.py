"""Trace loading speed and memory: generate a trace in a temp dir, load it in a fresh process.

    python benchmarks/trace_load.py                       # 1M-row generic CSV (target: <= 5 s, <= 300 MB)
    python benchmarks/trace_load.py --rows 10000000       # 10M rows
    python benchmarks/trace_load.py --format mooncake     # JSON lines with hash_ids
    python benchmarks/trace_load.py --format azure

Each load runs in a subprocess (``python -c``) that imports llmsim, notes its RSS, loads the
trace with ``load_trace`` and reports the wall time of the load and the process's peak RSS
(``VmHWM`` from /proc, else ``ru_maxrss``), so neither the generation nor an earlier load counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import json, resource, sys, time
from sim.workload import TraceConfig, load_trace
def rss_mb():
    # VmHWM: this process image's peak RSS (ru_maxrss would carry the forking parent's over exec)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss_mb()
start = time.perf_counter()
cols = load_trace(TraceConfig(sys.argv[1], format=sys.argv[2]))
elapsed = time.perf_counter() - start
print(json.dumps({"rows": len(cols), "load_s": elapsed, "peak_rss_mb": rss_mb(),
                  "rss_after_imports_mb": base}))
"""


def generate(path: Path, rows: int, fmt: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(0.01, rows))
    prompt = rng.integers(1, 8000, rows)
    output = rng.integers(1, 1000, rows)
    if fmt == "generic":
        pd.DataFrame({"arrival_s": arrival.round(6), "prompt_tokens": prompt,
                      "output_tokens": output}).to_csv(path, index=False)
    elif fmt == "azure":
        stamps = pd.Timestamp("2023-11-16 18:15:46") + pd.to_timedelta(arrival, unit="s")
        pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"),
                      "ContextTokens": prompt, "GeneratedTokens": output}).to_csv(path,
                                                                                 index=False)
    elif fmt == "mooncake":
        blocks = -(-prompt // 512)
        with open(path, "w") as f:
            next_id = 0
            for t, p, o, b in zip((arrival * 1000).astype(np.int64).tolist(), prompt.tolist(),
                                  output.tolist(), blocks.tolist()):
                ids = [0] + list(range(next_id + 1, next_id + b))   # a shared first block
                next_id += b
                f.write(json.dumps({"timestamp": t, "input_length": p, "output_length": o,
                                    "hash_ids": ids}) + "\n")
    else:
        raise SystemExit(f"no generator for format {fmt!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", default="generic", choices=["generic", "azure", "mooncake"])
    ap.add_argument("--repeats", type=int, default=3, help="loads (the best time is shown)")
    args = ap.parse_args()
    suffix = ".jsonl" if args.format == "mooncake" else ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace{suffix}"
        started = time.perf_counter()
        generate(path, args.rows, args.format)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({args.format}, {size_mb:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s")
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), args.format],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout))
    best = min(runs, key=lambda r: r["load_s"])
    print(f"{'rows':>10} {'load s':>8} {'peak RSS MB':>12} {'RSS after imports MB':>21}")
    for r in runs:
        print(f"{r['rows']:>10,} {r['load_s']:>8.2f} {r['peak_rss_mb']:>12.0f} "
              f"{r['rss_after_imports_mb']:>21.0f}")
    print(f"best: {best['load_s']:.2f} s, peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
