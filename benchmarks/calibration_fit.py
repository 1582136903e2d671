"""Fit quality and effect of a calibration imported from Vidur's A100 operator profiles.

    python benchmarks/calibration_fit.py [--vidur /work/shared/calibration/vidur] [--out DIR]

1. imports ``compute/a100`` (+ ``network/a100_dgx`` all-reduce) into a temporary profile,
2. prints the held-out MAPE per op kind / elementwise op (interpolation with fallback, as the
   simulator uses it) next to the MAPE of the fitted efficiency curve alone on the same rows,
3. compares iteration times, calibrated / datasheet roofline, for Llama-3.1-8B (TP1) and
   Llama-3.1-70B (TP4) decode and prefill batches,
4. runs a small scenario on both profiles and compares the mean time per iteration.
The Vidur files stay where they are (never copied into the repository).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from calibration_compare import FIXED, iteration_table   # benchmarks/ is on sys.path when run
from sim.calibration.build import Peaks, fit_curves
from sim.calibration.vidur import import_vidur
from sim.cost.roofline import Rates, op_seconds
from sim.cost.table_costs import row_costs
from sim.hardware import load_device
from sim.hardware.calibration import tables as tbl

DATASHEET = "a100-80g-sxm"


def curve_only_mape(tables: tbl.Tables, peaks: Peaks, dt: int, seed: int = 0) -> dict:
    """MAPE of the fitted curves alone on the same held-out split as holdout_mape."""
    rng = np.random.default_rng(seed)
    held = {k: rng.random(len(tables.get(k))) < 0.2 for k in tbl.SCHEMAS}
    train, test = tables.select({k: ~m for k, m in held.items()}), tables.select(held)
    curves = fit_curves(train, peaks, dt)
    out = {}
    for kind in ("gemm", "elementwise"):
        frame = test.get(kind)
        flops, nbytes = row_costs(kind, frame, dt)
        # elementwise ops on their own curve, as the predictor's fallback uses them
        names = frame["op"].to_numpy() if kind == "elementwise" else np.full(len(frame), "")
        pred = np.empty(len(frame))
        for name in np.unique(names):
            sel = names == name
            curve = curves.get(f"{kind}:{name}", curves[kind])
            pred[sel] = op_seconds(flops[sel], nbytes[sel],
                                   Rates.of_curve(curve, peaks.flops, peaks.bandwidth))
        out[kind] = float(np.mean(np.abs(pred / frame["time_s"].to_numpy() - 1)))
    return out


def scenario_run(profile: str) -> None:
    from sim import Scenario, simulate

    print("\nscenario (quickstart shape on A100: Llama-3.1-8B, 2 replicas, 4 req/s, 1,000 req)")
    for label, hw in (("datasheet", DATASHEET), ("calibrated", profile)):
        fixed = ["hardware.efficiency.model=fixed"] if hw == DATASHEET else []
        sc = Scenario.from_yaml("scenarios/quickstart.yaml", [
            f"hardware={hw}", "workload.num_requests=1000", "workload.arrivals.rate_rps=4",
            *fixed])
        start = time.perf_counter()
        r = simulate(sc)
        it = r.iterations
        per_iter = it["duration_s"].sum() / it["num_iterations"].sum()
        print(f"{label:11s} mean iteration {per_iter * 1e3:7.2f} ms  TPOT p50 "
              f"{r.summary['tpot_s']['p50'] * 1e3:6.2f} ms  TTFT p50 "
              f"{r.summary['ttft_s']['p50'] * 1e3:7.1f} ms  ({time.perf_counter() - start:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vidur", default="/work/shared/calibration/vidur")
    ap.add_argument("--out", default=None, help="folder for the profile (default: a temp dir)")
    args = ap.parse_args()
    vidur = Path(args.vidur)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp) / "a100-vidur.yaml"
        start = time.perf_counter()
        built = import_vidur(vidur / "compute" / "a100", out,
                             network=vidur / "network" / "a100_dgx")
        print(f"imported {built.rows} rows in {time.perf_counter() - start:.1f} s -> {out}")
        data = built.device.calibration
        curve = curve_only_mape(data.tables, Peaks.of(load_device(DATASHEET, FIXED), "fp16"),
                                data.dtype_bytes)
        print("\nheld-out MAPE (20% of rows, seed 0)")
        print(f"{'op kind / op':14s} {'interpolated':>12s} {'curve only':>10s}")
        for kind, mape in built.mape.items():
            c = f"{curve[kind]:10.1%}" if kind in curve else f"{'-':>10s}"
            print(f"{kind:14s} {mape:12.1%} {c}")
        for op, mape in built.mape_by_op.items():
            print(f"  {op:12s} {mape:12.1%}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iteration_table(str(out), DATASHEET)
            scenario_run(str(out))


if __name__ == "__main__":
    main()
