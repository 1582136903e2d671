"""Importer of Vidur's operator profiles (``llmsim calibrate import-vidur DIR -o PROFILE.yaml``).

Vidur (Microsoft) profiles each model's per-layer operators with torch on real GPUs and stores
them as ``compute/<gpu>/<org>/<model>/mlp.csv``: one row per ``(num_tokens,
num_tensor_parallel_workers)`` with the model's widths (``n_head``, ``n_kv_head``, ``n_embd``,
``n_expanded_embd``, ``use_gated_mlp``) and ``time_stats.<op>.median`` in **milliseconds**;
shapes are per tensor-parallel shard. Its ``all_reduce.csv`` has collective times (ms) by message
``size`` (bytes), ``num_workers`` and ``devices_per_node``. Mapped to llmsim's tables:

| Vidur op | llmsim table row |
|---|---|
| ``attn_pre_proj`` | gemm ``(m=tokens, k=hidden, n=(heads + 2 kv_heads) * head_dim / tp)`` |
| ``attn_post_proj`` | gemm ``(tokens, heads * head_dim / tp, hidden)`` |
| ``mlp_up_proj`` | gemm ``(tokens, hidden, (2 if gated else 1) * intermediate / tp)`` |
| ``mlp_down_proj`` | gemm ``(tokens, intermediate / tp, hidden)`` |
| ``input_layernorm``, ``post_attention_layernorm`` | elementwise ``rmsnorm (tokens, hidden)`` |
| ``attn_rope`` | elementwise ``rotary (tokens, (heads + kv_heads) * head_dim / tp)`` |
| ``mlp_act`` | elementwise ``silu_mul`` (gated) or ``gelu`` ``(tokens, intermediate / tp)`` |
| ``add`` / ``emb`` | elementwise ``add`` / ``embedding (tokens, hidden)`` |
| all-reduce, one node (``devices_per_node >= num_workers``) | allreduce ``(devices, bytes)`` |

Vidur's attention tables are not read (llmsim measures attention itself, or keeps the roofline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.calibration.build import Built, read_base, write_profile
from sim.errors import HardwareError, ScenarioError
from sim.hardware.calibration import tables as tbl

SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp",
                 "num_tokens", "num_tensor_parallel_workers")
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = {"input_layernorm": "rmsnorm", "post_attention_layernorm": "rmsnorm",
                   "attn_rope": "rotary", "mlp_act": None, "add": "add", "emb": "embedding"}
# Vidur's GPU folder name -> the shipped profile with its datasheet numbers.
GPU_BASES = {"a100": "a100-80g-sxm", "h100": "h100-sxm", "h200": "h200-sxm", "b200": "b200",
             "l40s": "l40s", "l4": "l4"}
_MS = 1e-3


def _median(frame: pd.DataFrame, op: str) -> np.ndarray | None:
    col = f"time_stats.{op}.median"
    if col not in frame.columns:
        return None
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float) * _MS


def read_mlp_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gemm rows, elementwise rows) of one Vidur ``mlp.csv``; errors name file and column."""
    shown = str(path)
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise HardwareError(f"{shown}: cannot read as CSV: {exc}") from None
    missing = [c for c in SHAPE_COLUMNS if c not in frame.columns]
    if missing:
        raise ScenarioError(shown, missing[0], "a column of Vidur's mlp.csv",
                            hint="missing; found " + ", ".join(map(str, frame.columns[:12])))
    shape = {}
    for col in SHAPE_COLUMNS:
        if col == "use_gated_mlp":
            values = frame[col].astype(str).str.lower()
            if not values.isin(["true", "false"]).all():
                raise ScenarioError(shown, col, "true or false",
                                    values[~values.isin(["true", "false"])].iloc[0])
            shape[col] = (values == "true").to_numpy()
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = ~(values > 0) | (values % 1 != 0)
        if bad.any():
            raise ScenarioError(shown, col, "integers > 0", tbl.plain(frame[col][bad].iloc[0]),
                                hint=f"row {int(np.flatnonzero(bad.to_numpy())[0])}")
        shape[col] = values.to_numpy(dtype=np.int64)
    tp, tokens = shape["num_tensor_parallel_workers"], shape["num_tokens"]
    hidden, head_dim = shape["n_embd"], shape["n_embd"] // shape["n_head"]
    heads, kv_heads = shape["n_head"] // tp, -(-shape["n_kv_head"] // tp)
    inter, gated = shape["n_expanded_embd"] // tp, shape["use_gated_mlp"]
    q_w, kv_w = heads * head_dim, kv_heads * head_dim
    gemm_kn = {"attn_pre_proj": (hidden, q_w + 2 * kv_w), "attn_post_proj": (q_w, hidden),
               "mlp_up_proj": (hidden, np.where(gated, 2, 1) * inter),
               "mlp_down_proj": (inter, hidden)}
    widths = {"input_layernorm": hidden, "post_attention_layernorm": hidden,
              "attn_rope": q_w + kv_w, "mlp_act": inter, "add": hidden, "emb": hidden}
    gemm, elem = [], []
    for op in GEMM_OPS:
        t = _median(frame, op)
        if t is not None:
            k, n = gemm_kn[op]
            gemm.append(pd.DataFrame({"m": tokens, "k": k, "n": n, "time_s": t}))
    for op, name in ELEMENTWISE_OPS.items():
        t = _median(frame, op)
        if t is not None:
            names = np.where(gated, "silu_mul", "gelu") if name is None else name
            elem.append(pd.DataFrame({"op": names, "tokens": tokens, "width": widths[op],
                                      "time_s": t}))
    if not gemm and not elem:
        raise ScenarioError(shown, "time_stats.<op>.median", "timing columns of Vidur ops "
                            "(attn_pre_proj, mlp_up_proj, ...)", hint="none found")
    return _valid(pd.concat(gemm or [tbl.empty("gemm")]), shown), \
        _valid(pd.concat(elem or [tbl.empty("elementwise")]), shown)


def _valid(frame: pd.DataFrame, shown: str) -> pd.DataFrame:
    t = frame["time_s"].to_numpy(dtype=float)
    if not (np.isfinite(t) & (t > 0)).all():
        raise ScenarioError(shown, "time_stats.<op>.median", "milliseconds > 0",
                            float(t[~(np.isfinite(t) & (t > 0))][0] / _MS))
    return frame


def read_all_reduce_csv(path: Path) -> pd.DataFrame:
    """Single-node all-reduce rows of a Vidur ``all_reduce.csv`` as (devices, bytes, time_s)."""
    shown = str(path)
    frame = pd.read_csv(path)
    for col in ("size", "num_workers", "devices_per_node", "time_stats.all_reduce.median"):
        if col not in frame.columns:
            raise ScenarioError(shown, col, "a column of Vidur's all_reduce.csv",
                                hint="missing; found " + ", ".join(map(str, frame.columns)))
    local = frame[frame["devices_per_node"] >= frame["num_workers"]]
    out = pd.DataFrame({"devices": local["num_workers"].astype("int64"),
                        "bytes": local["size"].astype("int64"),
                        "time_s": local["time_stats.all_reduce.median"].astype(float) * _MS})
    return _valid(out, shown)


def _gpu_of(path: Path) -> str | None:
    parts = path.resolve().parts
    return parts[parts.index("compute") + 1] if "compute" in parts[:-1] else None


def find_profiles(directory: Path, gpu: str | None) -> tuple[list[Path], str | None]:
    """The ``mlp.csv`` files under ``directory`` (of one GPU) and that GPU's folder name."""
    if not directory.is_dir():
        raise HardwareError(f"Vidur profile folder not found: {directory}")
    files = sorted(directory.rglob("mlp.csv"))
    by_gpu: dict[str | None, list[Path]] = {}
    for f in files:
        by_gpu.setdefault(_gpu_of(f), []).append(f)
    if gpu is not None:
        by_gpu = {g: fs for g, fs in by_gpu.items() if g == gpu}
    if not by_gpu:
        raise HardwareError(f"{directory}: no Vidur mlp.csv found"
                            + (f" for GPU '{gpu}'" if gpu else ""))
    if len(by_gpu) > 1:
        names = ", ".join(sorted(str(g) for g in by_gpu))
        raise HardwareError(f"{directory}: profiles of several GPUs ({names}); choose one with "
                            "--gpu")
    (name, chosen), = by_gpu.items()
    return chosen, name


def import_vidur(directory: str | Path, out: str | Path, *, gpu: str | None = None,
                 base: str | None = None, network: str | Path | None = None,
                 seed: int = 0) -> Built:
    """Read every ``mlp.csv`` under ``directory`` (one GPU) and optionally an
    ``all_reduce.csv`` (``network``: the file or a folder holding it), write the profile."""
    directory = Path(directory)
    files, gpu_name = find_profiles(directory, gpu)
    base = base or GPU_BASES.get(str(gpu_name).lower())
    if base is None:
        raise HardwareError(f"{directory}: no datasheet profile known for GPU '{gpu_name}'; "
                            "pass --base NAME_OR_PATH")
    gemm, elem = zip(*(read_mlp_csv(f) for f in files))
    allreduce = None
    if network is not None:
        net = Path(network)
        net = net / "all_reduce.csv" if net.is_dir() else net
        if not net.is_file():
            raise HardwareError(f"Vidur all_reduce.csv not found: {net}")
        allreduce = read_all_reduce_csv(net)
    tables = tbl.Tables.of(gemm=pd.concat(gemm), elementwise=pd.concat(elem), allreduce=allreduce)
    models = sorted({f.parent.name for f in files})
    env = {"importer": "vidur", "gpu": str(gpu_name), "files": str(len(files)),
           "models": ", ".join(models)}
    if network is not None:
        env["network"] = str(network)
    header = (f"Imported by `llmsim calibrate import-vidur {directory}` from Vidur's operator "
              f"profiles ({gpu_name}); datasheet numbers from {base}.")
    return write_profile(Path(out), read_base(base), tables, dtype="fp16",
                         source=f"vidur import: {directory}", environment=env, header=header,
                         seed=seed)
