"""Learn default efficiency curves from every measured GPU table, and score them GPU by GPU.

    python benchmarks/learn_efficiency.py [--shared ../shared] [--out sim/hardware/learned_efficiency.yaml]

Reads (never copies) the measured tables under ``SHARED/calibration``:

- Vidur ``vidur/compute/{a100,a40}/<org>/<model>/mlp.csv``: torch kernel times (CUPTI), every
  row used (:mod:`sim.calibration.vidur` reads them).
- LLMServingSim, current layout ``llmservingsim/perf/<GPU>/<org>/<model>/<dtype>/tp<N>/``:
  ``dense.csv``, ``per_sequence.csv`` (``lm_head``; ``sampler`` is not a cost-model op) and
  ``attention.csv`` (pure prefill and pure decode rows; mixed rows are not one op of the cost
  model). GPU kernel times inside vLLM (a 1-token RMSNorm takes 1.9 us): every row used.
- LLMServingSim, old layout ``llmservingsim/v0/perf_models/<GPU>/<org>/<model>/tp<N>/``:
  ``attention.csv`` (Vidur-style, FlashAttention): every row used. ``layers.csv`` holds
  Hugging Face eager modules timed with CPU-side overhead in the window: a 1-token RMSNorm
  takes 17 us on the H100 (1.9 us in vLLM on an RTX 4090), a 1-token ``k_proj`` (8 MB of
  weights, 2.5 us at datasheet bandwidth) 8 us. Hence: its elementwise ops (RMSNorm, RoPE,
  SiLU x mul and the embedding are several unfused kernels each, not vLLM's, and run 3-15x their
  roofline even at 2048 tokens) and its ``attn`` rows (shape not stated) are left out; a GEMM
  row is kept only where the GPU alone needs at least ``V0_GPU_BOUND`` times the table's
  smallest GEMM time (its CPU floor) at datasheet peaks, so that the CPU overhead is a small
  part of the time. The rule selects on the row's shape, not on its measured time, so it does
  not bias the fit.

Each measured op becomes (kind, FLOPs, bytes, time) by the cost model's formulas
(:mod:`sim.cost.ops` via :func:`sim.cost.table_costs.row_costs`), with the model's shapes from
the catalog. Then :mod:`sim.calibration.learned` fits one curve per kind on all GPUs against
each GPU's datasheet numbers, prints the leave-one-GPU-out errors as a Markdown table, and
writes the curves (all GPUs), the table and the sources to the YAML.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.calibration import learned
from sim.calibration.vidur import find_profiles, read_mlp_csv
from sim.cost.ops import LayerDims
from sim.cost.roofline import Rates, op_seconds
from sim.hardware import load_device
from sim.hardware.calibration.learned import LEARNED_DTYPE, LEARNED_PATH
from sim.models import get_model

REPO = Path(__file__).resolve().parents[1]
V0_GPU_BOUND = 2.0          # see the module doc
_US, _NS, _MS = 1e-6, 1e-9, 1e-3


@dataclass(frozen=True)
class Datasheet:
    """The two numbers the curves are fractions of, and where they come from."""

    name: str
    peak_tflops: float        # dense FP16/BF16 tensor, FP32 accumulate
    bandwidth_gb_s: float
    source: str

    @classmethod
    def of_profile(cls, name: str, profile: str, note: str = "") -> "Datasheet":
        d = load_device(profile, {"efficiency": {"model": "fixed"}})
        return cls(name, d.peak_flops("bf16") / 1e12, d.hbm_bandwidth / 1e9,
                   f"hardware_profiles/{profile}.yaml" + (f" ({note})" if note else ""))


def datasheets() -> dict[str, Datasheet]:
    """GPU id -> datasheet. A40 and RTX A6000 have no shipped profile: their numbers are here."""
    return {
        "a100": Datasheet.of_profile(
            "A100 80GB SXM", "a100-80g-sxm", "Vidur's A100 80GB; SXM assumed, as the Vidur "
            "importer does"),
        "a40": Datasheet(
            "A40", 149.7, 696,
            "NVIDIA A40 datasheet: BF16/FP16 tensor 149.7 TFLOPS dense (299.4 with sparsity), "
            "48 GB GDDR6 at 696 GB/s. 149.7 is dense: Vidur's A40 GEMMs reach 110 TFLOP/s"),
        "rtx4090": Datasheet.of_profile("GeForce RTX 4090", "rtx-4090"),
        "h100": Datasheet.of_profile(
            "H100 SXM5 80GB", "h100-sxm", "assumed SXM: LLMServingSim's 1-token Llama-3.1-8B "
            "lm_head (1.05 GB of weights) takes 366 us, 2.9 TB/s, above the PCIe card's 2.0 TB/s"),
        "a6000": Datasheet(
            "RTX A6000", 154.8, 768,
            "NVIDIA RTX A6000 datasheet (tensor 309.7 TFLOPS with sparsity) and Ampere GA102 "
            "whitepaper appendix: FP16/BF16 tensor with FP32 accumulate 154.8 TFLOPS dense; "
            "48 GB GDDR6 at 768 GB/s"),
    }


# LLMServingSim's GPU folder names -> GPU ids above.
LSS_GPUS = {"RTX4090": "rtx4090", "H100": "h100", "A6000": "a6000", "A100": "a100", "A40": "a40"}


def _rows(gpu: str, sheet: Datasheet, table_kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    return learned.table_measurements(gpu, table_kind, frame, sheet.peak_tflops * 1e12,
                                      sheet.bandwidth_gb_s * 1e9)


# -- Vidur ------------------------------------------------------------------------------------
def read_vidur(root: Path, sheets: dict[str, Datasheet], notes: list[str]) -> list[pd.DataFrame]:
    out = []
    compute = root / "vidur" / "compute"
    for folder in sorted(p for p in compute.iterdir() if p.is_dir()) if compute.is_dir() else ():
        gpu = folder.name.lower()
        if gpu not in sheets:
            notes.append(f"vidur/{folder.name}: no datasheet, skipped")
            continue
        files, _ = find_profiles(folder, None)
        for f in files:
            gemm, elem = read_mlp_csv(f)
            out += [_rows(gpu, sheets[gpu], "gemm", gemm),
                    _rows(gpu, sheets[gpu], "elementwise", elem)]
    return out


# -- LLMServingSim, current layout ------------------------------------------------------------
DENSE_OPS = {  # layer -> (table, op, (k, n) or width from LayerDims)
    "embedding": ("elementwise", "embedding", lambda d: d.hidden),
    "layernorm": ("elementwise", "rmsnorm", lambda d: d.hidden),
    "final_layernorm": ("elementwise", "rmsnorm", lambda d: d.hidden),
    "rotary_emb": ("elementwise", "rotary", lambda d: d.q_width + d.kv_width),
    "act_fn": ("elementwise", "silu_mul", lambda d: d.mlp_width),
    "qkv_proj": ("gemm", None, lambda d: (d.hidden, d.q_width + 2 * d.kv_width)),
    "o_proj": ("gemm", None, lambda d: (d.q_width, d.hidden)),
    "gate_up_proj": ("gemm", None, lambda d: (d.hidden, 2 * d.mlp_width)),
    "down_proj": ("gemm", None, lambda d: (d.mlp_width, d.hidden)),
    "lm_head": ("gemm", None, lambda d: (d.hidden, d.vocab)),
}


def _op_frames(layers: pd.Series, tokens: np.ndarray, times_s: np.ndarray, dims: LayerDims,
               ops: dict) -> dict[str, pd.DataFrame]:
    """Rows of named layers as gemm / elementwise table rows (others ignored)."""
    gemm, elem = [], []
    for layer, (table, op, shape) in ops.items():
        sel = (layers == layer).to_numpy()
        if not sel.any():
            continue
        if table == "gemm":
            k, n = shape(dims)
            gemm.append(pd.DataFrame({"m": tokens[sel], "k": k, "n": n, "time_s": times_s[sel]}))
        else:
            elem.append(pd.DataFrame({"op": op, "tokens": tokens[sel], "width": shape(dims),
                                      "time_s": times_s[sel]}))
    return {"gemm": pd.concat(gemm) if gemm else None,
            "elementwise": pd.concat(elem) if elem else None}


def _attention_frame(op: str, batch, query, context, dims: LayerDims, times_s) -> pd.DataFrame:
    return pd.DataFrame({"op": op, "batch": batch, "query_tokens": query,
                         "context_tokens": context, "heads": dims.heads,
                         "kv_heads": dims.kv_width // dims.head_dim, "head_dim": dims.head_dim,
                         "time_s": times_s})


def read_lss_current(root: Path, sheets: dict[str, Datasheet],
                     notes: list[str]) -> list[pd.DataFrame]:
    out = []
    perf = root / "llmservingsim" / "perf"
    for dense in sorted(perf.glob("*/*/*/*/tp*/dense.csv")) if perf.is_dir() else ():
        tp_dir = dense.parent
        gpu_folder, org, model_name, dtype = tp_dir.parts[-5:-1]
        gpu = LSS_GPUS.get(gpu_folder)
        if gpu is None or gpu not in sheets or dtype not in ("bf16", "fp16"):
            notes.append(f"llmservingsim/perf/{gpu_folder}/.../{dtype}: skipped (no datasheet "
                         "or not a 2-byte dtype)")
            continue
        model = get_model(f"{org}/{model_name}")
        dims = LayerDims.of(model, int(tp_dir.name[2:]))
        frame = pd.read_csv(dense)
        frames = _op_frames(frame["layer"], frame["tokens"].to_numpy(),
                            frame["time_us"].to_numpy(dtype=float) * _US, dims, DENSE_OPS)
        per_seq = tp_dir / "per_sequence.csv"
        if per_seq.is_file():
            ps = pd.read_csv(per_seq)
            lm = _op_frames(ps["layer"], ps["sequences"].to_numpy(),
                            ps["time_us"].to_numpy(dtype=float) * _US, dims,
                            {"lm_head": DENSE_OPS["lm_head"]})
            frames["gemm"] = pd.concat([frames["gemm"], lm["gemm"]])
        for kind, f in frames.items():
            if f is not None:
                out.append(_rows(gpu, sheets[gpu], kind, f))
        att_path = tp_dir / "attention.csv"
        if att_path.is_file():
            a = pd.read_csv(att_path)
            t = a["time_us"].to_numpy(dtype=float) * _US
            pre = ((a["prefill_chunk"] > 0) & (a["n_decode"] == 0)).to_numpy()
            dec = ((a["prefill_chunk"] == 0) & (a["n_decode"] > 0)).to_numpy()
            chunk, kv = a["prefill_chunk"].to_numpy(), a["kv_prefill"].to_numpy()
            n, kvd = a["n_decode"].to_numpy(), a["kv_decode"].to_numpy()
            out.append(_rows(gpu, sheets[gpu], "attention", pd.concat([
                _attention_frame("attn_prefill", 1, chunk[pre], kv[pre] + chunk[pre], dims,
                                 t[pre]),
                _attention_frame("attn_decode", n[dec], 1, kvd[dec] + 1, dims, t[dec])])))
            notes.append(f"llmservingsim/perf/{gpu_folder}/{org}/{model_name}/{dtype}/"
                         f"{tp_dir.name}/attention.csv: {int((~pre & ~dec).sum())} mixed "
                         "prefill+decode rows left out")
    return out


# -- LLMServingSim, old layout ----------------------------------------------------------------
V0_GEMMS = {
    "q_proj": lambda d: (d.hidden, d.q_width), "k_proj": lambda d: (d.hidden, d.kv_width),
    "v_proj": lambda d: (d.hidden, d.kv_width), "o_proj": lambda d: (d.q_width, d.hidden),
    "gate_proj": lambda d: (d.hidden, d.mlp_width), "up_proj": lambda d: (d.hidden, d.mlp_width),
    "down_proj": lambda d: (d.mlp_width, d.hidden), "lm_head": lambda d: (d.hidden, d.vocab),
}


def read_lss_v0(root: Path, sheets: dict[str, Datasheet], notes: list[str]) -> list[pd.DataFrame]:
    out = []
    base = root / "llmservingsim" / "v0" / "perf_models"
    for tp_dir in sorted(base.glob("*/*/*/tp*")) if base.is_dir() else ():
        gpu_folder, org, model_name = tp_dir.parts[-4:-1]
        gpu = LSS_GPUS.get(gpu_folder)
        where = f"llmservingsim/v0/perf_models/{gpu_folder}/{org}/{model_name}/{tp_dir.name}"
        if gpu is None or gpu not in sheets:
            notes.append(f"{where}: no datasheet, skipped")
            continue
        sheet = sheets[gpu]
        dims = LayerDims.of(get_model(f"{org}/{model_name}"), int(tp_dir.name[2:]))
        layers_csv = tp_dir / "layers.csv"
        if layers_csv.is_file():
            frame = pd.read_csv(layers_csv)
            gemm = _op_frames(frame["layer_name"], frame["input"].to_numpy(),
                              frame["latency(ns)"].to_numpy(dtype=float) * _NS, dims,
                              {k: ("gemm", None, v) for k, v in V0_GEMMS.items()})["gemm"]
            rows = _rows(gpu, sheet, "gemm", gemm)
            floor_s = float(rows["time_s"].min())
            ideal = op_seconds(rows["flops"].to_numpy(), rows["bytes"].to_numpy(),
                               Rates(rows["peak_flops"].to_numpy(), rows["bandwidth"].to_numpy()))
            keep = ideal >= V0_GPU_BOUND * floor_s
            out.append(rows[keep])
            others = int((~frame["layer_name"].isin(list(V0_GEMMS))).sum())
            notes.append(f"{where}/layers.csv: {int(keep.sum())} of {len(rows)} GEMM rows kept "
                         f"(GPU-bound: datasheet time >= {V0_GPU_BOUND:g} x the "
                         f"{floor_s * 1e6:.1f} us CPU floor); {others} elementwise/attn rows "
                         "left out (unfused eager modules, CPU overhead)")
        att_path = tp_dir / "attention.csv"
        if att_path.is_file():
            a = pd.read_csv(att_path)
            is_pre = a["is_prefill"].astype(str).str.lower().eq("true").to_numpy()
            b, q = a["batch_size"].to_numpy(), a["prefill_chunk_size"].to_numpy()
            kv = a["kv_cache_size"].to_numpy()
            t_pre = a["time_stats.attn_prefill.median"].to_numpy(dtype=float) * _MS
            t_dec = a["time_stats.attn_decode.median"].to_numpy(dtype=float) * _MS
            # prefill: kv_cache_size counts the chunk (rows with kv == chunk, none below);
            # decode: it is the batch's total (batch 8 of 64k reads 4x faster than batch 1 of
            # 64k; per sequence it would be 6x the A6000's bandwidth): rows with fewer keys
            # than sequences are not a batch and are left out
            dec = ~is_pre & (kv >= b)
            out.append(_rows(gpu, sheet, "attention", pd.concat([
                _attention_frame("attn_prefill", b[is_pre], q[is_pre], kv[is_pre], dims,
                                 t_pre[is_pre]),
                _attention_frame("attn_decode", b[dec], 1, kv[dec] / b[dec] + 1, dims,
                                 t_dec[dec])])))
            notes.append(f"{where}/attention.csv: kv_cache_size read as the context incl. the "
                         "chunk (prefill) and as the batch's total (decode); "
                         f"{int((~is_pre & ~dec).sum())} decode rows with fewer keys than "
                         "sequences left out")
    return out


def read_all(shared: Path) -> tuple[pd.DataFrame, list[str]]:
    root = shared / "calibration"
    sheets, notes = datasheets(), []
    frames = read_vidur(root, sheets, notes) + read_lss_current(root, sheets, notes) \
        + read_lss_v0(root, sheets, notes)
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True)
    bad = ~(np.isfinite(frame["time_s"]) & (frame["time_s"] > 0))
    if bad.any():
        notes.append(f"{int(bad.sum())} rows without a positive time left out")
    return frame[~bad].reset_index(drop=True), notes


# -- output -----------------------------------------------------------------------------------
def summary_by_kind(logo: pd.DataFrame, selected: dict[str, bool]) -> str:
    """Per kind, the held-out GPUs' median errors: their median (and range), and the choice."""
    lines = ["| op kind | GPUs held out | learned: median over GPUs % (range) "
             "| fixed: median over GPUs % (range) | default |", "|---|---:|---|---|---|"]
    for kind, g in logo.groupby("kind", sort=False):
        lm, fm = 100 * g["learned_median"], 100 * g["fixed_median"]
        group = kind.split(":", 1)[0]
        choice = ("learned" if selected[group] else "fixed") if group in selected else "-"
        lines.append(f"| {kind} | {len(g)} | {lm.median():.1f} ({lm.min():.1f}-{lm.max():.1f}) "
                     f"| {fm.median():.1f} ({fm.min():.1f}-{fm.max():.1f}) | {choice} |")
    return "\n".join(lines)


def write_yaml(out: Path, curves: dict, selected: dict[str, bool], logo: pd.DataFrame,
               frame: pd.DataFrame, sheets: dict[str, Datasheet], notes: list[str],
               tables: str) -> None:
    rows = frame.groupby(["gpu", "kind"]).size()
    used = learned.used_curves(curves, selected)
    data = {
        "dtype": LEARNED_DTYPE,
        "curves": learned.curves_yaml(used),
        "not_used": {"why": "held-out GPUs are predicted worse than by the fixed roofline "
                            "(see holdout); these kinds keep the fixed roofline",
                     "curves": learned.curves_yaml({k: c for k, c in curves.items()
                                                    if k not in used})},
        "selected": selected,
        "gpus": {gpu: {"name": s.name, "bf16_tflops": s.peak_tflops,
                       "bandwidth_gb_s": s.bandwidth_gb_s, "datasheet": s.source,
                       "rows": {k: int(n) for k, n in rows[gpu].items()}}
                 for gpu, s in sheets.items() if gpu in rows.index.get_level_values(0)},
        "sources": [
            "Vidur (Microsoft, MIT licence): compute/{a100,a40}/<org>/<model>/mlp.csv, torch "
            "kernel times",
            "LLMServingSim (KAIST CASYS, MIT licence): perf/RTX4090/meta-llama/Llama-3.1-8B/"
            "bf16/tp1 (vLLM 0.19, eager)",
            "LLMServingSim v0 perf_models: H100 (Llama-3.1-8B TP1/TP2, Llama-3.1-70B TP4), "
            "A6000 (Llama-3.1-8B TP2)",
        ],
        "notes": notes,
        "holdout": [{"gpu": r.gpu, "kind": r.kind, "rows": int(r.rows),
                     "learned_median": round(r.learned_median, 4),
                     "learned_mean": round(r.learned_mean, 4),
                     "fixed_median": round(r.fixed_median, 4),
                     "fixed_mean": round(r.fixed_mean, 4)} for r in logo.itertuples()],
    }
    header = (
        "Learned default efficiency curves (sim/calibration/learned.py), written by\n"
        "`python benchmarks/learn_efficiency.py`: do not edit by hand. A GPU profile with\n"
        "`efficiency: {model: learned}` (the default) and no `calibration:` section costs the\n"
        "op kinds under `curves:` on them, as fractions of ITS OWN datasheet peak and bandwidth:\n"
        "time = max((flops + half_flops) / (peak * compute_fraction),\n"
        "           (bytes + half_bytes) / (bandwidth * memory_fraction));\n"
        "other kinds keep the fixed roofline. Fitted on all GPUs below.\n\n"
        "Leave-one-GPU-out: curves fitted on the other GPUs, absolute relative error on the\n"
        "held-out GPU's rows; fixed = max(F / (0.70 peak), B / (0.85 bw)) + 2 us.\n\n" + tables)
    text = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    out.write_text(text + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="folder holding calibration/ (default: ../shared beside the repo)")
    ap.add_argument("--out", type=Path, default=LEARNED_PATH)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    frame, notes = read_all(args.shared)
    logo = learned.leave_one_gpu_out(frame)
    selected = learned.selected_kinds(logo)
    curves = learned.fit_curves(frame)
    tables = (learned.markdown_table(logo) + "\n\nBy op kind (default: what a datasheet "
              "profile uses):\n\n" + summary_by_kind(logo, selected))
    print(f"{len(frame):,} measured ops from {frame['gpu'].nunique()} GPUs "
          f"({', '.join(sorted(frame['gpu'].unique()))})\n")
    for note in notes:
        print("-", note)
    print("\n## Leave one GPU out\n")
    print(tables)
    print("\n## Learned curves (all GPUs)\n")
    for kind, c in sorted(curves.items()):
        used = selected.get(kind.split(":", 1)[0], False)
        print(f"- {kind} ({'used' if used else 'not used'}): {c.to_yaml()}")
    write_yaml(args.out, curves, selected, logo, frame, datasheets(), notes, tables)
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
