"""A calibrated profile against its datasheet roofline: per op kind, and per iteration.

    python benchmarks/calibration_compare.py PROFILE.yaml [--datasheet h200-sxm]

Per op kind: the median and the 10th/90th percentiles of measured time / datasheet-roofline
time over the profile's table rows (the roofline being what an uncalibrated profile predicts:
``max(FLOPs / (peak x compute eff), bytes / (bandwidth x memory eff)) + launch``). Per
iteration: Llama-3.1-8B (TP1) and Llama-3.1-70B (TP4) decode and prefill batches, calibrated /
datasheet. Ratios above 1: the device is slower than the datasheet profile assumes.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from sim.cost.model import BatchShape, CostModel
from sim.cost.roofline import Rates, op_seconds
from sim.cost.table_costs import row_costs
from sim.hardware import load_device
from sim.models import CATALOG

# the datasheet roofline these comparisons are about: fixed efficiencies, no learned curves
FIXED = {"efficiency": {"model": "fixed"}}


def op_ratios(profile: str, datasheet: str) -> None:
    cal, ds = load_device(profile), load_device(datasheet, FIXED)
    data = cal.calibration
    eff = ds.efficiency
    rates = Rates.datasheet(ds.peak_flops("bf16"), ds.hbm_bandwidth, eff.compute, eff.memory,
                            eff.kernel_launch_s)
    print(f"measured / datasheet roofline ({datasheet}: compute {eff.compute}, memory "
          f"{eff.memory}, launch {eff.kernel_launch_s * 1e6:g} us)")
    print(f"{'op':14s} {'rows':>6s} {'p10':>6s} {'median':>7s} {'p90':>6s}")
    groups = [("gemm", data.tables.gemm)]
    groups += [(op, g) for op, g in data.tables.elementwise.groupby("op")]
    groups += [(op, g) for op, g in data.tables.attention.groupby("op")]
    for name, frame in groups:
        kind = "gemm" if name == "gemm" else ("attention" if name.startswith("attn")
                                              else "elementwise")
        flops, nbytes = row_costs(kind, frame, data.dtype_bytes)
        roofline = op_seconds(flops, nbytes, rates)
        r = frame["time_s"].to_numpy() / roofline
        print(f"{name:14s} {len(frame):6d} {np.percentile(r, 10):6.2f} {np.median(r):7.2f} "
              f"{np.percentile(r, 90):6.2f}")


def iteration_table(profile: str, datasheet: str) -> None:
    cal, ds = load_device(profile), load_device(datasheet, FIXED)
    shapes = [(f"decode {n} x 1024 ctx", BatchShape.decode([1024] * n)) for n in (1, 8, 32, 128)]
    shapes += [(f"prefill {q} tokens", BatchShape.from_requests([q], [0], 1))
               for q in (512, 2048, 8192)]
    print(f"\niteration time, calibrated vs datasheet roofline ({datasheet})")
    print(f"{'model':15s} {'tp':>2s} {'batch':22s} {'datasheet ms':>12s} {'calibrated ms':>13s} "
          f"{'ratio':>6s}")
    for name, tp in (("llama-3.1-8b", 1), ("llama-3.1-70b", 4)):
        a, b = CostModel(CATALOG[name], ds, tp), CostModel(CATALOG[name], cal, tp)
        for label, shape in shapes:
            ta, tb = a.iteration_time(shape)[0], b.iteration_time(shape)[0]
            print(f"{name:15s} {tp:2d} {label:22s} {ta * 1e3:12.2f} {tb * 1e3:13.2f} "
                  f"{tb / ta:6.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--datasheet", default=None,
                    help="uncalibrated profile (default: the profile without its calibration)")
    args = ap.parse_args()
    datasheet = args.datasheet or args.profile
    if args.datasheet is None:    # same numbers, calibration ignored: compare with a copy
        import tempfile
        from pathlib import Path

        import yaml
        data = yaml.safe_load(Path(args.profile).read_text())
        data.pop("calibration", None)
        tmp = Path(tempfile.mkdtemp()) / f"{data['name']}.yaml"
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        datasheet = str(tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op_ratios(args.profile, datasheet)
        iteration_table(args.profile, datasheet)


if __name__ == "__main__":
    main()
