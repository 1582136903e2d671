"""Fidelity against real vLLM runs: `llmsim compare` on every run folder, two ways.

    python benchmarks/fidelity.py [RUN_DIR ...] [--tables DIR] [--out DIR] [--ablation]

For each run (default: every folder in ../shared/validation/vllm/) it replays the run

- ``measured``: on a profile imported from the measured vLLM layer tables of the run's GPU
  (``llmsim calibrate import-llmservingsim``, from ``--tables``, default
  ../shared/calibration/llmservingsim), when the tables cover the run's model and TP degree;
- ``datasheet``: on the shipped profile of that GPU (datasheet numbers only);

and writes ``OUT/fidelity.json`` (every mode's compare.json content) and ``OUT/fidelity.md``
(run, mode, metric, real, sim, error). ``--ablation`` adds, for each run and mode, one replay per
modelled effect switched off (OUT/ablation.md), the table of docs/fidelity.md. The data stay
where they are; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.compare import compare_run, load_run            # noqa: E402
from sim.errors import LlmsimError                       # noqa: E402

SHARED = ROOT.parent / "shared"
# GPU (letters and digits of its name, lower case) -> shipped datasheet profile
DATASHEETS = {"rtx4090": "rtx-4090", "rtxpro6000": "rtx-pro-6000", "rtxa6000": "rtx-a6000",
              "a6000": "rtx-a6000", "h100pcie": "h100-pcie",
              "h100": "h100-sxm", "h200": "h200-sxm", "b200": "b200", "a10080g": "a100-80g-sxm",
              "a100": "a100-80g-sxm", "l40s": "l40s", "l4": "l4", "mi300x": "mi300x"}
# what each ablation switches off, as --set overrides of the replay scenario
ABLATIONS = {
    "all effects": [],
    "no measured tables": ["hardware.measured=null"],
    "no CUDA graphs": ["engine.cuda_graphs=false"],
    "no CPU step overhead": ["engine.cpu_overhead=false"],
    "no async scheduling": ["engine.async_scheduling=false"],
    "no full-prompt reservation": ["scheduler.reserve_full_prompt=false"],
    "no prefix caching": ["scheduler.prefix_caching=false"],
    "KV pool sized by llmsim": ["scheduler.kv_blocks=null"],
    "fixed datasheet efficiencies": ["hardware.efficiency.model=fixed"],
}
METRICS = ("ttft_s", "tpot_s", "e2e_s")


def gpu_key(name: str) -> str:
    """Letters and digits, lower case, vendor words dropped: 'NVIDIA GeForce RTX 4090' ->
    'rtx4090'."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for word in ("nvidia", "geforce", "blackwell", "workstationedition", "tensorcore"):
        key = key.replace(word, "")
    return key


def run_gpu(run_dir: Path) -> str:
    """The run's GPU: the device its meta.json recorded, else the folder's prefix (GPU__model)."""
    meta = run_dir / "meta.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text()).get("hardware", {}).get("device_name")
        except (json.JSONDecodeError, AttributeError):
            name = None
        if name:
            return gpu_key(name)
    return gpu_key(run_dir.name.split("__")[0])


def datasheet_for(key: str) -> str | None:
    for prefix, profile in sorted(DATASHEETS.items(), key=lambda kv: -len(kv[0])):
        if key.startswith(prefix):
            return profile
    return None


def tables_for(key: str, tables: Path) -> list[Path]:
    """GPU folders of measured tables (either layout) whose name matches ``key`` (one the
    other's prefix: 'RTXPRO6000' for an 'RTX PRO 6000 Blackwell Server Edition' run)."""
    found = []
    for parent in (tables / "perf", tables / "v0" / "perf_models"):
        if parent.is_dir():
            found += [p for p in sorted(parent.iterdir()) if p.is_dir() and (
                key.startswith(gpu_key(p.name)) or gpu_key(p.name).startswith(key))]
    return found


def import_measured(folders: list[Path], base: str, out: Path) -> list[Path]:
    """One profile per GPU folder (either layout); a run uses the first that covers it."""
    from sim.calibration.llmservingsim import import_llmservingsim

    paths = []
    for i, folder in enumerate(folders):
        path = out / f"{gpu_key(folder.name)}-{i}-measured.yaml"
        import_llmservingsim(folder, path, base=base)
        paths.append(path)
    return paths


def covers(profile: Path, run_dir: Path) -> bool:
    from sim.cost.factory import model_names
    from sim.hardware import load_device
    from sim.models import get_model

    run = load_run(run_dir)
    device = load_device(str(profile))
    tp = int(run.settings.get("cluster", {}).get("tensor_parallel", 1))
    return device.measured.find(model_names(get_model(run.model)), tp, "bf16") is not None


def replay(run_dir: Path, hardware: str, overrides: list[str]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_run(run_dir, hardware, overrides=overrides).to_json()


def markdown(rows: list[dict]) -> str:
    lines = ["| run | mode | metric | stat | real | sim | error |", "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['mode']} | {r['metric']} | {r['stat']} | "
                     f"{r['real']:.4g} | {r['sim']:.4g} | {r['error_pct']:+.1f}% |")
    return "\n".join(lines) + "\n"


def table_rows(run: str, mode: str, cmp: dict, stats=("mean", "p50", "p90", "p99")) -> list[dict]:
    return [{"run": run, "mode": mode, "metric": m, "stat": s, "real": cmp["real"][m][s],
             "sim": cmp["sim"][m][s], "error_pct": cmp["error"][m][s]}
            for m in METRICS for s in stats]


def ablation_markdown(results: dict) -> str:
    lines = ["| run | mode | effect switched off | TTFT p50 | TPOT p50 | E2E p50 | TTFT p90 "
             "| TPOT p90 | E2E p90 |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (run, mode, name), cmp in results.items():
        cells = [f"{cmp['error'][m][s]:+.1f}%" for s in ("p50", "p90") for m in METRICS]
        lines.append(f"| {run} | {mode} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path,
                    help="run folders (default: every folder in ../shared/validation/vllm)")
    ap.add_argument("--tables", type=Path, default=SHARED / "calibration" / "llmservingsim",
                    help="measured vLLM layer tables (perf/<GPU>, v0/perf_models/<GPU>)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "fidelity")
    ap.add_argument("--ablation", action="store_true",
                    help="also replay with each modelled effect switched off")
    args = ap.parse_args(argv)
    runs = args.runs or sorted(p for p in (SHARED / "validation" / "vllm").iterdir() if p.is_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results, rows, ablation = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="llmsim-fidelity-") as tmp:
        for run_dir in runs:
            key = run_gpu(run_dir)
            base = datasheet_for(key)
            modes: dict[str, str] = {}
            if base is None:
                print(f"{run_dir.name}: no shipped profile for GPU '{key}': skipped")
                continue
            try:
                profiles = import_measured(tables_for(key, args.tables), base,
                                           Path(tmp) / run_dir.name)
                covering = [p for p in profiles if covers(p, run_dir)]
                if covering:
                    modes["measured"] = str(covering[0])
                else:
                    print(f"{run_dir.name}: no measured tables of its model and TP for '{key}'")
            except LlmsimError as exc:
                print(f"{run_dir.name}: measured tables not usable: {exc}")
            modes["datasheet"] = base
            for mode, hardware in modes.items():
                t0 = time.perf_counter()
                cmp = replay(run_dir, hardware, [])
                results[f"{run_dir.name}/{mode}"] = cmp
                rows += table_rows(run_dir.name, mode, cmp)
                print(f"{run_dir.name} [{mode}] in {time.perf_counter() - t0:.1f} s: " + ", ".join(
                    f"{m} p50 {cmp['error'][m]['p50']:+.1f}%" for m in METRICS))
                if args.ablation:
                    for name, overrides in ABLATIONS.items():
                        ablation[(run_dir.name, mode, name)] = replay(run_dir, hardware, overrides)
    (args.out / "fidelity.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "fidelity.md").write_text(markdown(rows))
    print(markdown(rows))
    if args.ablation:
        (args.out / "ablation.md").write_text(ablation_markdown(ablation))
        print(ablation_markdown(ablation))
    print(f"{len(results)} replays in {time.perf_counter() - started:.1f} s; "
          f"wrote {args.out / 'fidelity.json'} and {args.out / 'fidelity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
