"""Tiny measured-vLLM-table sets the tests write themselves, in both LLMServingSim layouts.

Times follow simple known laws (linear in tokens, in query-key pairs, in keys read) so a test
can compute what the cost model must answer by hand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
DENSE_US = {  # layer -> (fixed us, us per token)
    "embedding": (2.0, 0.001), "layernorm": (2.0, 0.01), "qkv_proj": (50.0, 0.05),
    "rotary_emb": (2.0, 0.01), "o_proj": (40.0, 0.04), "gate_up_proj": (150.0, 0.15),
    "act_fn": (2.0, 0.02), "down_proj": (80.0, 0.08), "final_layernorm": (2.0, 0.01)}
PER_SEQ_US = {"lm_head": (1000.0, 1.0), "sampler": (20.0, 0.5)}
CHUNKS, KVS, NS = [0, 16, 64, 256, 1024], [0, 16, 64, 256, 1024, 4096], [0, 1, 4, 16, 64, 256]


def dense_us(layer: str, tokens: float) -> float:
    a, b = DENSE_US[layer]
    return a + b * tokens


def per_seq_us(layer: str, seqs: float) -> float:
    a, b = PER_SEQ_US[layer]
    return a + b * seqs


def attention_us(chunk: float, kv_prefill: float, n: float, kv: float) -> float:
    """A law multilinear in each coordinate, so interpolation on the grid is exact."""
    prefill = 0.0 if chunk == 0 else 5.0 + 0.002 * chunk * kv_prefill / 16 + 0.01 * chunk
    decode = 0.0 if n == 0 else 4.0 + 0.0005 * n * kv + 0.05 * n
    mixed = 1.5 if chunk and n else 1.0      # mixed batches run a slower kernel
    return mixed * (prefill + decode)


def moe_us(tokens: float, experts: float) -> float:
    return 30.0 + 0.05 * tokens + 9.0 * experts


def current_frames(moe: bool = False) -> dict[str, pd.DataFrame]:
    """The current layout's tables; ``moe``: a MoE model's (no MLP rows, a MoE block table,
    Qwen3's q/k norm)."""
    layers = [name for name in DENSE_US
              if not (moe and name in ("gate_up_proj", "act_fn", "down_proj"))]
    rows = [(layer, t, dense_us(layer, t)) for layer in layers for t in TOKENS]
    if moe:
        rows += [("qk_norm", t, 3.0 + 0.01 * t) for t in TOKENS]
    dense = pd.DataFrame(rows, columns=["layer", "tokens", "time_us"])
    per_seq = pd.DataFrame([(layer, s, per_seq_us(layer, s)) for layer in PER_SEQ_US
                            for s in [1, 2, 4, 8, 16, 32, 64, 128, 256]],
                           columns=["layer", "sequences", "time_us"])
    rows = [(c, kp, n, kv, attention_us(c, kp, n, kv))
            for c in CHUNKS for kp in KVS for n in NS for kv in KVS
            if (c or n) and (c or not kp) and (n or not kv) and (not n or kv)]
    attention = pd.DataFrame(rows, columns=["prefill_chunk", "kv_prefill", "n_decode",
                                            "kv_decode", "time_us"])
    frames = {"dense": dense, "attention": attention, "per_sequence": per_seq}
    if moe:
        frames["moe"] = pd.DataFrame([(t, e, moe_us(t, e)) for t in TOKENS
                                      for e in [1, 2, 4, 8, 16, 32, 64, 128] if e <= 8 * t],
                                     columns=["tokens", "activated_experts", "time_us"])
    return frames


SKEW_ALPHA = 0.5


def skew_fit_frame() -> pd.DataFrame:
    """LLMServingSim's skew_fit.csv: one alpha (SKEW_ALPHA) in every bucket."""
    rows = [(pc, f"n<={n}", sr, f"kvB<={kv}", kp, SKEW_ALPHA, 4)
            for pc in (0, 64, 1024) for n in (4, 32, 256) for sr in ("sr<=15%", "sr>70%")
            for kv in ("1k", "16k") for kp in ("kp=0", "kp<=2k")]
    return pd.DataFrame(rows, columns=["pc", "n_label", "skew_rate_label", "kv_big_label",
                                       "kp_label", "alpha", "n_samples"])


def write_current(root: Path, model: str = "meta-llama/Llama-3.1-8B", tp: int = 1,
                  gpu: str = "SYNTH", moe: bool = False, skew: bool | None = None) -> Path:
    """``skew``: also a skew_fit.csv, enabled (True) or disabled (False) in meta.yaml."""
    """``root/perf/<gpu>/<org>/<model>/bf16/{meta.yaml, tp<N>/*.csv}``; returns the GPU folder."""
    base = root / "perf" / gpu / model / "bf16"
    (base / f"tp{tp}").mkdir(parents=True, exist_ok=True)
    meta = {"model": model, "variant": "bf16", "gpu": f"Synthetic {gpu}",
            "vllm_version": "0.19.0", "tp_degrees": [tp]}
    if skew is not None:
        meta["skew_fit"] = {"enabled": skew}
        skew_fit_frame().to_csv(base / f"tp{tp}" / "skew_fit.csv", index=False)
    (base / "meta.yaml").write_text(yaml.safe_dump(meta))
    for kind, frame in current_frames(moe).items():
        frame.to_csv(base / f"tp{tp}" / f"{kind}.csv", index=False)
    return root / "perf" / gpu


def write_v0(root: Path, model: str = "meta-llama/Llama-3.1-8B", tp: int = 2,
             gpu: str = "OLD") -> Path:
    """The older layout: layers.csv in ns (split projections, two norms) and a Vidur-style
    attention.csv in ms. Returns the GPU folder."""
    folder = root / "v0" / "perf_models" / gpu / model / f"tp{tp}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t in TOKENS:
        ns = lambda us: round(us * 1000)  # noqa: E731
        rows += [("embedding", t, ns(dense_us("embedding", t))),
                 ("input_layernorm", t, ns(dense_us("layernorm", t) - 0.5)),
                 ("post_layernorm", t, ns(dense_us("layernorm", t) + 0.5)),
                 ("q_proj", t, ns(0.5 * dense_us("qkv_proj", t))),
                 ("k_proj", t, ns(0.25 * dense_us("qkv_proj", t))),
                 ("v_proj", t, ns(0.25 * dense_us("qkv_proj", t))),
                 ("rope", t, ns(dense_us("rotary_emb", t))),
                 ("attn", t, ns(attention_us(t, 0, 0, 0))),
                 ("o_proj", t, ns(dense_us("o_proj", t))),
                 ("gate_proj", t, ns(0.5 * dense_us("gate_up_proj", t))),
                 ("up_proj", t, ns(0.5 * dense_us("gate_up_proj", t))),
                 ("act_fn", t, ns(dense_us("act_fn", t))),
                 ("down_proj", t, ns(dense_us("down_proj", t))),
                 ("final_layernorm", t, ns(dense_us("final_layernorm", t))),
                 ("lm_head", t, ns(per_seq_us("lm_head", t)))]
    pd.DataFrame([(n, t, 0, tp, v) for n, t, v in rows],
                 columns=["layer_name", "input", "kv_cache", "tp_size", "latency(ns)"]).to_csv(
        folder / "layers.csv", index=False)
    att = []
    for c in [16, 64, 256]:
        for kv in [64, 256, 1024]:
            if kv >= c:
                att.append(dict(is_prefill=True, batch_size=1, prefill_chunk_size=c,
                                kv_cache_size=kv, **{
                                    "time_stats.attn_prefill.median":
                                        attention_us(c, kv - c, 0, 0) / 1e3,
                                    "time_stats.attn_decode.median": None}))
    for n in [1, 4, 16]:
        for kv in [16, 256, 1024]:
            att.append(dict(is_prefill=False, batch_size=n, prefill_chunk_size=0,
                            kv_cache_size=n * kv, **{"time_stats.attn_prefill.median": None,
                                                 "time_stats.attn_decode.median":
                                                     attention_us(0, 0, n, kv) / 1e3}))
    pd.DataFrame(att).to_csv(folder / "attention.csv", index=False)
    return root / "v0" / "perf_models" / gpu
