"""Import vLLM layer timings measured on real GPUs by LLMServingSim's profiler.

Two layouts, found anywhere below the folder given (a GPU folder or any folder under it):

- current: ``<GPU>/<org>/<model>/<dtype>/meta.yaml`` and ``tp<N>/{dense, attention,
  per_sequence[, moe, skew, skew_fit]}.csv``: already the project's layout
  (:mod:`sim.hardware.calibration.layers`); checked and copied, but for the skew fit, whose bucket
  labels (``n<=128``, ``kvB<=16k``, ``sr<=15%``) become bounds (``skew_alpha.csv``), and which
  is left out when ``meta.yaml`` says it is disabled.
- older (v0): ``<GPU>/<org>/<model>/tp<N>/layers.csv`` (``layer_name, input, kv_cache, tp_size,
  latency(ns)``, one row per layer module) and optionally a Vidur-style ``attention.csv``
  (milliseconds; prefill rows by chunk and KV including the chunk, decode rows by batch and the
  batch's total context). Converted:
  ``q/k/v_proj`` add up to ``qkv_proj``, ``gate/up_proj`` to ``gate_up_proj``, the two norms of a
  layer become one ``layernorm`` call (their mean), ``rope`` is ``rotary_emb``, ``lm_head`` moves
  to ``per_sequence``, ``attn`` rows are prefills over an empty cache. No sampler was measured in
  this layout and no mixed batches: the entry's notes say so.

Every model, dtype and TP degree found is imported into one profile: the datasheet numbers of
``--base`` plus a ``measured:`` section, with each table set's interpolation error on held-out
rows (a fifth of each table, rebuilt from the rest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.errors import HardwareError, ScenarioError
from sim.hardware.calibration.layers import LayerTables, check_table, read_csv_table, read_table
from sim.hardware.calibration.schema import MEASURED_TABLES

HOLDOUT_FRACTION = 0.2
_TP_DIR = re.compile(r"^tp(\d+)$")
_V0_SUM = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj",
           "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj"}
_V0_MEAN = {"input_layernorm": "layernorm", "post_layernorm": "layernorm",
            "post_attention_layernorm": "layernorm"}
_V0_SAME = {"embedding": "embedding", "rope": "rotary_emb", "rotary_emb": "rotary_emb",
            "o_proj": "o_proj", "act_fn": "act_fn", "down_proj": "down_proj",
            "final_layernorm": "final_layernorm", "qk_norm": "qk_norm",
            "qkv_proj": "qkv_proj", "gate_up_proj": "gate_up_proj"}


@dataclass
class Found:
    """One model's tables at one dtype and TP degree, read into the project's layout."""

    model: str
    dtype: str
    tp: int
    layout: str                        # current | v0
    path: Path
    frames: dict[str, pd.DataFrame]
    gpu: str = ""
    vllm_version: str = ""
    notes: list[str] = field(default_factory=list)


def find_tables(root: str | Path) -> list[Found]:
    """Every ``tp<N>`` folder of either layout at or below ``root``, read and checked."""
    root = Path(root)
    if not root.is_dir():
        raise HardwareError(f"{root}: not a folder (expected a GPU folder of measured vLLM "
                            "profiles, perf/<GPU> or v0/perf_models/<GPU>, or a folder below it)")
    folders = [root] if _TP_DIR.match(root.name) else []
    folders += sorted(p for p in root.rglob("tp*") if p.is_dir() and _TP_DIR.match(p.name))
    found = []
    for folder in folders:
        if (folder / "dense.csv").is_file():
            found.append(_read_current(folder))
        elif (folder / "layers.csv").is_file():
            found.append(_read_v0(folder))
    if not found:
        raise HardwareError(f"{root}: no measured tables found: expected tp<N>/ folders holding "
                            "dense.csv, attention.csv, per_sequence.csv (current layout) or "
                            "layers.csv (older layout)")
    return found


def _model_from_path(folder: Path, depth: int) -> str:
    """``org/model`` from the folders above a tp folder (``depth`` 1: .../org/model/tpN)."""
    parts = folder.parts
    if len(parts) < depth + 2:
        return folder.parent.name
    return f"{parts[-depth - 2]}/{parts[-depth - 1]}"


def _read_current(folder: Path) -> Found:
    meta_path = folder.parent / "meta.yaml"
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ScenarioError(str(meta_path), None, "valid YAML",
                                hint=" ".join(str(exc).split())[:160]) from None
        if not isinstance(meta, dict):
            raise ScenarioError(str(meta_path), None, "a mapping", meta)
    frames = {}
    for kind in MEASURED_TABLES:
        path = folder / f"{kind}.csv"
        if path.is_file():
            frames[kind] = read_table(kind, path)
        elif kind in ("dense", "attention", "per_sequence"):
            raise ScenarioError(str(folder), None, f"{kind}.csv beside dense.csv",
                                hint="incomplete table set")
    found = Found(model=str(meta.get("model") or _model_from_path(folder, 2)),
                  dtype=str(meta.get("variant") or folder.parent.name),
                  tp=int(_TP_DIR.match(folder.name).group(1)), layout="current", path=folder,
                  frames=frames, gpu=str(meta.get("gpu") or meta.get("hardware") or ""),
                  vllm_version=str(meta.get("vllm_version") or ""))
    skew_path = folder / "skew_fit.csv"
    if skew_path.is_file():
        fit = meta.get("skew_fit")
        enabled = fit.get("enabled", True) if isinstance(fit, dict) else True
        if enabled:
            found.frames["skew_alpha"] = _read_skew_fit(skew_path)
        else:
            found.notes.append("skew fit disabled by its profile (meta.yaml): not applied")
    if "sampler" not in set(frames["per_sequence"]["layer"]):
        found.notes.append("no sampler measured: costed as zero")
    return found


_BOUND = re.compile(r"^\s*([a-zA-Z_]+)\s*(<=|=|>)\s*([0-9.]+)\s*([kK%]?)\s*$")


def _bound(label: str, shown: str, column: str) -> float:
    """'n<=128' -> 128, 'kvB<=16k' -> 16384, 'kp=0' -> 0, 'sr<=15%' -> 0.15, 'sr>70%' -> 1."""
    m = _BOUND.match(str(label))
    if m is None:
        raise ScenarioError(shown, column, "labels like n<=128, kvB<=16k, kp=0, sr<=15%", label)
    _, op, number, unit = m.groups()
    value = float(number) * (1024 if unit in ("k", "K") else 1)
    if unit == "%":
        value = 1.0 if op == ">" else value / 100
    elif op == ">":
        value = float("inf")
    return value


def _read_skew_fit(path: Path) -> pd.DataFrame:
    """LLMServingSim's skew_fit.csv (bucket labels) -> the project's skew table (bounds)."""
    shown = str(path)
    raw = read_csv_table(path, ("pc", "n_label", "skew_rate_label", "kv_big_label",
                                  "kp_label", "alpha"))
    frame = pd.DataFrame({
        "pc": raw["pc"],
        "n_max": [_bound(v, shown, "n_label") for v in raw["n_label"]],
        "skew_rate_max": [_bound(v, shown, "skew_rate_label") for v in raw["skew_rate_label"]],
        "kv_big_max": [_bound(v, shown, "kv_big_label") for v in raw["kv_big_label"]],
        "kp_max": [_bound(v, shown, "kp_label") for v in raw["kp_label"]],
        "alpha": raw["alpha"],
        "n_samples": raw["n_samples"] if "n_samples" in raw.columns else 1})
    return check_table("skew_alpha", frame, shown)


def _read_v0(folder: Path) -> Found:
    shown = str(folder / "layers.csv")
    cols = ("layer_name", "input", "kv_cache", "latency(ns)")
    raw = read_csv_table(folder / "layers.csv", cols)
    raw = raw.assign(time_us=pd.to_numeric(raw["latency(ns)"], errors="coerce") / 1e3,
                     tokens=pd.to_numeric(raw["input"], errors="coerce"),
                     kv=pd.to_numeric(raw["kv_cache"], errors="coerce"))
    bad = raw[["time_us", "tokens", "kv"]].isna().any(axis=1) | (raw.time_us <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ScenarioError(shown, f"line {row + 2}", "numbers (latency > 0)",
                            raw.iloc[row][list(cols)].to_dict())
    name = raw["layer_name"].astype(str)
    parts = []
    for mapping, how in ((_V0_SUM, "sum"), (_V0_MEAN, "mean"), (_V0_SAME, "mean")):
        sel = raw[name.isin(mapping)]
        if len(sel):
            g = sel.assign(layer=sel["layer_name"].map(mapping)).groupby(["layer", "tokens"])
            parts.append(getattr(g["time_us"], how)().reset_index())
    dense = pd.concat(parts, ignore_index=True)[["layer", "tokens", "time_us"]]
    lm = raw[name == "lm_head"]
    per_seq = pd.DataFrame({"layer": "lm_head", "sequences": lm["tokens"], "time_us": lm["time_us"]})
    attn = raw[(name == "attn")]
    att_rows = [pd.DataFrame({"prefill_chunk": attn["tokens"], "kv_prefill": attn["kv"],
                              "n_decode": 0.0, "kv_decode": 0.0, "time_us": attn["time_us"]})]
    notes = ["older layout: no sampler measured (costed as zero)",
             "older layout: no mixed prefill+decode attention measured (the two kernels' times "
             "are added)"]
    if (folder / "attention.csv").is_file():
        att_rows.append(_read_v0_attention(folder / "attention.csv"))
    attention = pd.concat(att_rows, ignore_index=True)
    if not (attention.n_decode > 0).any():
        notes.append("no decode attention measured: decode attention uses the datasheet path")
    frames = {"dense": check_table("dense", dense, shown),
              "per_sequence": check_table("per_sequence", per_seq, shown),
              "attention": check_table("attention", attention, str(folder))}
    return Found(model=_model_from_path(folder, 1), dtype="bf16",
                 tp=int(_TP_DIR.match(folder.name).group(1)), layout="v0", path=folder,
                 frames=frames, gpu=folder.parents[2].name if len(folder.parents) > 2 else "",
                 notes=notes + ["older layout: dtype not recorded, taken as bf16"])


def _read_v0_attention(path: Path) -> pd.DataFrame:
    """Vidur-style attention rows (ms) -> the project's attention rows (us)."""
    raw = read_csv_table(path, ("is_prefill", "batch_size", "prefill_chunk_size",
                                  "kv_cache_size", "time_stats.attn_prefill.median",
                                  "time_stats.attn_decode.median"))
    prefill = raw["is_prefill"].astype(str).str.lower().isin(("true", "1"))
    pf, dc = raw[prefill], raw[~prefill]
    return pd.concat([
        pd.DataFrame({"prefill_chunk": pf["prefill_chunk_size"],
                      "kv_prefill": pf["kv_cache_size"] - pf["prefill_chunk_size"],
                      "n_decode": 0, "kv_decode": 0,
                      "time_us": pf["time_stats.attn_prefill.median"] * 1e3}),
        # a decode row's kv_cache_size is the whole batch's: the A6000 table's batch-16 rows
        # would read KV at 3.8x the card's bandwidth if it were each sequence's
        pd.DataFrame({"prefill_chunk": 0, "kv_prefill": 0, "n_decode": dc["batch_size"],
                      "kv_decode": dc["kv_cache_size"] / dc["batch_size"],
                      "time_us": dc["time_stats.attn_decode.median"] * 1e3}),
    ], ignore_index=True)


# -- held-out error --------------------------------------------------------------------------------
def holdout_mape(frames: dict[str, pd.DataFrame], fraction: float = HOLDOUT_FRACTION,
                 seed: int = 0) -> dict[str, float]:
    """Mean absolute % error (as a fraction) of each table's rows left out of a rebuilt table:
    how well the interpolation reads between measurements."""
    rng = np.random.default_rng(seed)
    held = {k: rng.random(len(f)) < fraction for k, f in frames.items()}
    train = {k: f[~held[k]] for k, f in frames.items()}
    tables = LayerTables(train)
    out = {}
    for kind, frame in frames.items():
        test = frame[held[kind]]
        if test.empty or kind not in ("dense", "per_sequence", "attention", "moe"):
            continue
        if kind == "dense":
            pred = [tables.layer_s(layer, n) for layer, n in zip(test.layer, test.tokens)]
        elif kind == "per_sequence":
            pred = [tables.per_sequence_s(layer, n) for layer, n in zip(test.layer, test.sequences)]
        elif kind == "moe":
            pred = [tables.moe_s(t, e) for t, e in zip(test.tokens, test.activated_experts)]
        else:
            pred = [tables.attention_s(*row) for row in
                    test[["prefill_chunk", "kv_prefill", "n_decode", "kv_decode"]].itertuples(
                        index=False)]
        pred = np.array([np.nan if p is None else p for p in pred], dtype=float) * 1e6
        ok = np.isfinite(pred)
        if ok.any():
            err = np.abs(pred[ok] / test["time_us"].to_numpy()[ok] - 1.0)
            out[kind] = round(float(err.mean()), 5)
    return out


# -- writing a profile -----------------------------------------------------------------------------
def import_llmservingsim(directory: str | Path, out: str | Path, base: str):
    """Import every table set below ``directory`` into the profile ``out`` (YAML; tables in the
    folder of the same stem beside it), datasheet numbers from ``base``. Returns the Built
    profile (path and loaded device)."""
    from sim.calibration.build import Built, _dump, read_base
    from sim.hardware import load_device

    if not base:
        raise HardwareError("import-llmservingsim: --base NAME_OR_PATH is required (the shipped "
                            "profile with this GPU's datasheet numbers, e.g. rtx-4090)")
    found = find_tables(directory)
    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise HardwareError(f"-o {out}: expected a path ending in .yaml")
    profile = {k: v for k, v in read_base(base).items() if k not in ("calibration", "measured")}
    profile["name"] = out.stem
    tables_dir = out.parent / out.stem
    entries = []
    for f in found:
        rel = Path(out.stem, *f.model.split("/"), f.dtype, f"tp{f.tp}")
        dest = out.parent / rel
        dest.mkdir(parents=True, exist_ok=True)
        for kind, frame in f.frames.items():
            frame.to_csv(dest / f"{kind}.csv", index=False)
        entries.append({
            "model": f.model, "tp": f.tp, "dtype": f.dtype, "dir": rel.as_posix(),
            "layers": sorted(set(f.frames["dense"]["layer"])),
            "rows": {k: int(len(v)) for k, v in f.frames.items()},
            "holdout_mape": holdout_mape(f.frames), "notes": list(f.notes)})
    gpus = sorted({f.gpu for f in found if f.gpu})
    versions = sorted({f.vllm_version for f in found if f.vllm_version})
    layouts = sorted({f.layout for f in found})
    profile["description"] = (f"{profile.get('description', out.stem)}; vLLM layer tables "
                              f"measured on {', '.join(gpus) or 'the GPU'}")
    profile["measured"] = {"source": f"llmservingsim import: {Path(directory)}",
                           "format": "llmservingsim " + "+".join(layouts),
                           "gpu": ", ".join(gpus), "vllm_version": ", ".join(versions),
                           "entries": entries}
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"Imported by `llmsim calibrate import-llmservingsim {directory} --base {base}`:\n"
              f"datasheet numbers from {base}; vLLM layer tables in {tables_dir.name}/.")
    _dump(out, profile, header)
    return Built(out, load_device(str(out)), {}, {}, {e["model"] + f" tp{e['tp']}": sum(
        e["rows"].values()) for e in entries})
