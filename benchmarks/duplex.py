"""Reproduce the Duplex paper's comparison (MICRO 2024, arXiv 2409.01141) in simulation, twice:
under the authors' simulator's assumptions (``paper``) and under ours (``realistic``).

Closed loop, ``batch`` clients each sending its next request when the previous ends:
Mixtral-8x7B, Llama-3.1-70B and OPT-66B on 1 node x 4 devices, GLaM-143B on 1x8, Grok-1 on 2x8;
batch 32/64/128; (input, output) (256, 256), (1024, 1024), (4096, 512), (4096, 4096); uniform
random expert routing (seeded). Systems: GPU, 2x GPU, Bank-PIM, Duplex, Duplex+PE (attention and
expert co-processing), Duplex+PE+ET (plus expert tensor parallelism). Throughput and energy are
measured in the steady state: iterations that start between the first completion and the last
request's issue (before it, all clients prefill at once; after it, the batch drains).

Then the Poisson sweep: Mixtral, (4096, 512), 4..16 requests/s, batch <= 128, GPU and Duplex.
A system is saturated at a rate when its time-to-first-token grows with arrival time (slope of
TTFT against arrival over the second half of the requests > 0.05 s/s: the queue gains 1 s every
20 s); the saturation QPS is the highest rate below the first saturated one.

The two modes:

- ``realistic``: the profiles as shipped (70% compute and 85% bandwidth efficiency on both
  processors, launch and iteration overheads, static power, hierarchical collectives, bank
  bundle contention), vLLM v1 scheduling (chunked prefill, mixed iterations), Gaussian lengths
  (std 20% of the mean), Poisson arrivals.
- ``paper``: ``duplex.assumptions: paper`` (sim/hardware/duplex.py: 100% rooflines, no
  overheads, dynamic energy only, fastest-unit placement, the greedy expert split, the authors'
  collectives), prefill-only iterations of whole prompts (``chunked_prefill: false``), fixed
  lengths, near-periodic arrivals (``constant``) starting with 0.7 x the maximum batch in
  flight (``initial_requests``).

Sensitivity, in both modes: PIM compute efficiency (0.5, 0.7, 1.0) on the MoE models,
inter-node bandwidth (25, 50, 100, 400 GB/s per device) on Grok-1, and static power (0, the
profiles' idle watts, twice that), the last computed exactly from the same runs (energy =
dynamic + idle watts x devices x time).

    python benchmarks/duplex.py --out runs/duplex [--jobs 2] [--requests-per-client 3]

Writes DIR/duplex.json (today's keys for the realistic mode at the top level, plus ``paper``,
``realistic`` and ``sensitivity``), DIR/duplex.md, DIR/closed_loop.csv, DIR/poisson.csv and
plots.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# name in the JSON -> (catalog model, devices = tensor_parallel)
MODELS = {"mixtral": ("mixtral-8x7b", 4), "glam": ("glam-143b", 8), "grok1": ("grok-1", 16),
          "opt66b": ("opt-66b", 4), "llama3_70b": ("llama-3.1-70b", 4)}
MOE_MODELS = ("mixtral", "glam", "grok1")
BATCHES = (32, 64, 128)
LENGTHS = ((256, 256), (1024, 1024), (4096, 512), (4096, 4096))
MODES = ("realistic", "paper")
COPROCESS = {"coprocessing": {"attention": True, "experts": True}}
SYSTEMS = {                       # name -> (profile, duplex-section overrides)
    "gpu": ("gpu-h100", {}),
    "2xgpu": ("gpu2x-h100", {}),
    "bankpim": ("bankpim-h100", {}),
    "duplex": ("duplex-h100", {}),
    "duplex_pe": ("duplex-h100", COPROCESS),
    "duplex_pe_et": ("duplex-h100", {**COPROCESS, "expert_parallel": "tensor"}),
}
ROUTING = {"kind": "uniform", "seed": 0}
POISSON_QPS = tuple(range(4, 17))
POISSON_SYSTEMS = ("gpu", "duplex", "duplex_pe_et")
POISSON_REQUESTS = 400
POISSON_BATCH = 128
SATURATION_SLOPE = 0.05
# the paper's figures and what kind of figure each is ("max" over configurations, or "mean")
PAPER = {"max_speedup": (2.51, "max"), "max_speedup_pe_et": (2.67, "max"),
         "max_pe_et_over_duplex": (1.36, "max"),
         "energy_reduction": {"mixtral": (0.333, "max"), "glam": (0.420, "max"),
                              "grok1": (0.346, "max"), "all": (0.282, "mean")},
         "bankpim_ratio_mixtral": {"max": 1.80, "mean": 1.49},
         "saturation_qps": {"gpu": 9, "duplex": 14}}
# Bank-PIM is compared on the models the paper compares it on; GLaM apart (see BANKPIM_GLAM)
BANKPIM_MODELS = {"mixtral": "mixtral", "opt66b": "opt-66b", "llama3_70b": "llama-3.1-70b"}
BANKPIM_GLAM = ("GLaM is MHA: its decode attention runs at Op/B 1, where Bank-PIM's 16x bandwidth "
                "beats Logic-PIM's 4x; the paper does not compare Bank-PIM on GLaM")
# sensitivity, in both modes: name -> (values, the value each mode runs without a variant,
# models, systems, hardware overrides of a value)
SENSITIVITY = {
    "pim_compute_efficiency": ((0.5, 0.7, 1.0), {"paper": 1.0, "realistic": 0.7}, MOE_MODELS,
                               ("duplex", "duplex_pe_et"),
                               lambda v: {"duplex": {"pim": {"efficiency": {"compute": v}}}}),
    "inter_node_gb_s": ((25.0, 50.0, 100.0, 400.0), {"paper": 50.0, "realistic": 50.0},
                        ("grok1",), ("gpu", "duplex", "duplex_pe_et"),
                        lambda v: {"duplex": {"topology": {"inter_node_gb_s": v}}}),
}
STATIC_SCALES = (0.0, 1.0, 2.0)     # x the profiles' idle watts (70 W GPU, 80 W with a PIM)
MAX_MODEL_LEN = 16384


def model_files(folder: Path) -> Path:
    """The models as YAMLs whose context holds the paper's lengths (up to 4096 + 4096 tokens,
    past OPT-66B's and GLaM's 2048 positions and at Grok-1's 8192): the paper's configurations,
    costed as if the models allowed them."""
    import dataclasses

    import yaml

    from sim.models import get_model

    folder.mkdir(parents=True, exist_ok=True)
    for catalog, _ in MODELS.values():
        spec = dataclasses.asdict(get_model(catalog))
        spec["max_context_tokens"] = max(spec["max_context_tokens"], MAX_MODEL_LEN)
        spec["source"] = f"llmsim catalog {catalog}, context raised to {MAX_MODEL_LEN}"
        (folder / f"{catalog}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def scenario(model: str, system: str, batch: int, lengths: tuple[int, int], requests: int,
             mode: str = "realistic", arrivals: dict | None = None,
             hardware: dict | None = None, models: Path | None = None) -> dict:
    """One run's scenario; ``hardware``: more profile overrides (the sensitivity's);
    ``models``: the folder of :func:`model_files` (else the catalog's models)."""
    catalog, tp = MODELS[model]
    profile, overrides = SYSTEMS[system]
    paper = mode == "paper"
    prompt, output = lengths
    length = _fixed if paper else _normal
    if arrivals is None:
        arrivals = {"kind": "closed_loop", "clients": batch}
    hw = {"name": profile, "duplex": {**overrides, "routing": ROUTING, "assumptions": mode}}
    for key, value in (hardware or {}).items():
        hw[key] = {**hw.get(key, {}), **value}
    return {
        "name": f"duplex-{mode}-{model}-{system}-{batch}-{prompt}-{output}", "seed": 0,
        "model": str(models / f"{catalog}.yaml") if models else catalog,
        "hardware": hw,
        "cluster": {"replicas": 1, "tensor_parallel": tp},
        # the paper's lengths run past OPT's and GLaM's 2k positions; the cost is what matters.
        # Paper mode: whole prompts, and an iteration with a prefill is prefill-only (vLLM v0)
        "scheduler": {"name": "fcfs", "max_num_seqs": batch, "max_batched_tokens": 8192,
                      "prefix_caching": False, "max_model_len": MAX_MODEL_LEN,
                      "chunked_prefill": not paper},
        "workload": {"arrivals": arrivals, "num_requests": requests,
                     "prompt_tokens": length(prompt), "output_tokens": length(output)},
    }


def _normal(mean: int) -> dict:
    return {"dist": "normal", "mean": mean, "std": 0.2 * mean, "min": 16, "max": 2 * mean}


def _fixed(value: int) -> dict:
    return {"dist": "fixed", "value": value}


def steady_state(requests, iterations) -> dict:
    """Output tokens/s and J/token over iterations starting in [first completion, last issue)."""
    done = requests[requests["state"] == "completed"]
    t0 = float(np.nanmin(done["finish_s"]))
    t1 = float(np.nanmax(requests["arrival_s"]))
    it = iterations
    sel = (it["start_s"] >= t0) & (it["start_s"] < t1)
    if t1 <= t0 or sel.sum() < 3:          # no steady window (tiny runs): the whole run
        sel = it["start_s"] >= 0
        t0, t1 = 0.0, float("inf")
    first = ((requests["first_token_s"] >= t0) & (requests["first_token_s"] < t1)).sum()
    tokens = float(it.loc[sel, "decode_tokens"].sum() + first)
    seconds = float(it.loc[sel, "duration_s"].sum())
    joules = float(it.loc[sel, "energy_j"].sum())
    return {"tokens_per_s": tokens / seconds, "j_per_token": joules / tokens,
            "window_s": seconds, "batch_mean": float(
                (it.loc[sel, "num_seqs"] * it.loc[sel, "duration_s"]).sum() / seconds)}


def run_closed(args: tuple) -> dict:
    from sim import Scenario, simulate
    from sim.hardware import load_device

    models, mode, model, system, batch, lengths, per_client, variant = args
    started = time.perf_counter()
    name, value = variant if variant else (None, None)
    hardware = SENSITIVITY[name][4](value) if name else None
    data = scenario(model, system, batch, lengths, per_client * batch, mode, hardware=hardware,
                    models=models)
    result = simulate(Scenario.from_dict(data))
    s = result.summary
    hw = data["hardware"]
    device = load_device(hw["name"], {k: v for k, v in hw.items() if k != "name"})
    return {"mode": mode, "variant": name or "", "value": value, "model": model,
            "system": system, "batch": batch, "prompt": lengths[0], "output": lengths[1],
            **steady_state(result.requests, result.iterations),
            "devices": MODELS[model][1], "idle_w": device.idle_w,
            "profile_idle_w": load_device(hw["name"]).idle_w,
            "preemptions": s["preemptions"], "rejected": s["requests_rejected"],
            "wall_s": time.perf_counter() - started}


def run_poisson(args: tuple) -> dict:
    from sim import Scenario, simulate

    models, mode, system, qps = args
    started = time.perf_counter()
    arrivals = {"kind": "poisson", "rate_rps": float(qps)}
    if mode == "paper":   # near-periodic, starting with 0.7 x the maximum batch in flight
        arrivals = {"kind": "constant", "rate_rps": float(qps),
                    "initial_requests": int(0.7 * POISSON_BATCH)}
    data = scenario("mixtral", system, POISSON_BATCH, (4096, 512), POISSON_REQUESTS, mode,
                    arrivals=arrivals, models=models)
    result = simulate(Scenario.from_dict(data))
    r = result.requests
    r = r[np.isfinite(r["first_token_s"])].sort_values("arrival_s")
    late = r.iloc[len(r) // 2:]
    ttft = (late["first_token_s"] - late["arrival_s"]).to_numpy()
    slope = float(np.polyfit(late["arrival_s"].to_numpy(), ttft, 1)[0]) if len(late) > 2 else 0.0
    s = result.summary
    return {"mode": mode, "system": system, "qps": qps, "ttft_slope": slope,
            "ttft_p50_s": s["ttft_s"]["p50"], "tpot_mean_s": s["tpot_s"]["mean"],
            "e2e_p50_s": s["e2e_s"]["p50"], "throughput_tok_s": s["throughput_tokens_per_s"],
            "saturated": slope > SATURATION_SLOPE, "wall_s": time.perf_counter() - started}


# -- summaries ---------------------------------------------------------------------------------
def _key(r: dict) -> tuple:
    return (r["model"], r["system"], r["batch"], r["prompt"], r["output"])


def _ratios(closed: list[dict], static_scale: float | None = None):
    """Per system: {config: speedup over GPU} and {config: energy reduction vs GPU}; with
    ``static_scale``, J/token recomputed with that multiple of each profile's idle watts."""
    by = {_key(r): r for r in closed}
    configs = sorted({k[:1] + k[2:] for k in by})
    systems = sorted({k[1] for k in by})

    def j_per_token(r: dict) -> float:
        if static_scale is None:
            return r["j_per_token"]
        tokens = r["tokens_per_s"] * r["window_s"]
        dynamic = r["j_per_token"] - r["idle_w"] * r["devices"] * r["window_s"] / tokens
        return dynamic + static_scale * r["profile_idle_w"] * r["devices"] * r["window_s"] / tokens

    speed: dict[str, dict[tuple, float]] = {s: {} for s in systems}
    energy: dict[str, dict[tuple, float]] = {s: {} for s in systems}
    for cfg in configs:
        model, rest = cfg[0], cfg[1:]
        gpu = by.get((model, "gpu", *rest))
        for system in systems:
            r = by.get((model, system, *rest))
            if r is None or gpu is None:
                continue
            speed[system][cfg] = r["tokens_per_s"] / gpu["tokens_per_s"]
            energy[system][cfg] = 1.0 - j_per_token(r) / j_per_token(gpu)
    return configs, speed, energy


def _of(table: dict, models, fn) -> float:
    values = [v for k, v in table.items() if k[0] in models]
    return float(fn(values)) if values else float("nan")


def saturation(poisson: list[dict]) -> dict:
    sat = {}
    for system in POISSON_SYSTEMS:
        rows = sorted((r for r in poisson if r["system"] == system), key=lambda r: r["qps"])
        stable = None
        for r in rows:
            if r["saturated"]:
                break
            stable = r["qps"]
        sat[system] = stable
    return sat


def headline(closed: list[dict], poisson: list[dict], static_scale: float | None = None) -> dict:
    """The paper's headline figures for one mode, each as max and mean over configurations."""
    configs, speed, energy = _ratios(closed, static_scale)
    models = sorted({c[0] for c in configs}, key=list(MODELS).index)
    pe_over = {c: speed["duplex_pe_et"][c] / speed["duplex"][c] for c in configs
               if c in speed.get("duplex_pe_et", {}) and c in speed.get("duplex", {})}
    out = {
        "max_speedup": max(speed["duplex"].values()),
        "mean_speedup": _of(speed["duplex"], models, np.mean),
        "max_speedup_pe_et": max(speed["duplex_pe_et"].values()),
        "mean_speedup_pe_et": _of(speed["duplex_pe_et"], models, np.mean),
        "max_pe_et_over_duplex": max(pe_over.values()),
        "mean_pe_et_over_duplex": float(np.mean(list(pe_over.values()))),
        "argmax_speedup": list(max(speed["duplex"], key=speed["duplex"].get)),
        "argmax_speedup_pe_et": list(max(speed["duplex_pe_et"], key=speed["duplex_pe_et"].get)),
        "energy_reduction_max": {m: _of(energy["duplex"], (m,), np.max) for m in models},
        "energy_reduction_mean": {m: _of(energy["duplex"], (m,), np.mean) for m in models},
        "energy_reduction_pe_et_max": {m: _of(energy["duplex_pe_et"], (m,), np.max)
                                       for m in models},
        "energy_reduction_pe_et_mean": {m: _of(energy["duplex_pe_et"], (m,), np.mean)
                                        for m in models},
        "speedup_max": {s: {m: _of(speed[s], (m,), np.max) for m in models} for s in speed},
        "speedup_mean": {s: {m: _of(speed[s], (m,), np.mean) for m in models} for s in speed},
    }
    moe = [m for m in MOE_MODELS if m in models]
    # the paper's average energy saving, over its energy figure's (MoE) models, and over all
    out["energy_reduction_mean"]["all"] = _of(energy["duplex"], moe, np.mean)
    out["energy_reduction_mean"]["all_models"] = _of(energy["duplex"], models, np.mean)
    if "bankpim" in speed:
        def vs_bankpim(model: str) -> dict:
            r = [speed["duplex"][c] / speed["bankpim"][c] for c in configs
                 if c[0] == model and c in speed["bankpim"]]
            return {"max": float(max(r)), "mean": float(np.mean(r))} if r else {}
        out["bankpim_ratio"] = {name: vs_bankpim(m) for m, name in BANKPIM_MODELS.items()
                                if m in models}
        if "glam" in models:
            out["bankpim_ratio_glam"] = {**vs_bankpim("glam"), "why_apart": BANKPIM_GLAM}
    if poisson:
        out["saturation_qps"] = saturation(poisson)
    return out


def legacy(closed: list[dict], poisson: list[dict]) -> dict:
    """The top-level keys of earlier versions of this file (realistic mode)."""
    configs, speed, energy = _ratios(closed)
    return {
        "max_speedup_duplex": max(speed["duplex"].values()),
        "max_speedup_duplex_pe_et": max(speed["duplex_pe_et"].values()),
        "max_speedup_duplex_pe": max(speed["duplex_pe"].values()),
        "min_ratio_pe_et_over_duplex": min(speed["duplex_pe_et"][c] / speed["duplex"][c]
                                           for c in configs),
        "max_ratio_pe_et_over_duplex": max(speed["duplex_pe_et"][c] / speed["duplex"][c]
                                           for c in configs),
        "energy_reduction": {m: _of(energy["duplex"], (m,), np.mean) for m in MODELS},
        "energy_reduction_pe_et": {m: _of(energy["duplex_pe_et"], (m,), np.mean)
                                   for m in MODELS},
        "speedup_mean": {s: {m: _of(speed[s], (m,), np.mean) for m in MODELS} for s in SYSTEMS},
        "speedup_max": {s: {m: _of(speed[s], (m,), np.max) for m in MODELS} for s in SYSTEMS},
        "argmax_speedup_duplex": list(max(speed["duplex"], key=speed["duplex"].get)),
        "argmax_speedup_duplex_pe_et": list(max(speed["duplex_pe_et"],
                                                key=speed["duplex_pe_et"].get)),
        "duplex_over_bankpim_mixtral": {
            "max": max(speed["duplex"][c] / speed["bankpim"][c] for c in configs
                       if c[0] == "mixtral"),
            "mean": float(np.mean([speed["duplex"][c] / speed["bankpim"][c] for c in configs
                                   if c[0] == "mixtral"]))},
        "saturation_qps": saturation(poisson),
    }


def sensitivity(closed: list[dict], mode: str) -> dict:
    """How one mode's headline moves with one assumption at a time."""
    base = [r for r in closed if r["mode"] == mode and not r["variant"]]
    out: dict = {}
    for name, (values, default, models, systems, _) in SENSITIVITY.items():
        rows = []
        for value in values:
            runs = [r for r in base if r["model"] in models] if value == default[mode] else [
                r for r in closed if r["mode"] == mode and r["variant"] == name
                and r["value"] == value]
            # a variant's runs against the base GPU, unless the variant runs its own GPU
            keyed = {_key(r): r for r in base if r["model"] in models and r["system"] == "gpu"}
            keyed.update({_key(r): r for r in runs})
            h = _partial_headline(list(keyed.values()), models, systems)
            rows.append({"value": value, "base": value == default[mode], **h})
        out[name] = rows
    static = []
    for scale in STATIC_SCALES:
        _, _, energy = _ratios(base, scale)
        static.append({"idle_w_scale": scale,
                       "energy_reduction_max": {m: _of(energy["duplex"], (m,), np.max)
                                                for m in MOE_MODELS},
                       "energy_reduction_mean": {m: _of(energy["duplex"], (m,), np.mean)
                                                 for m in MOE_MODELS},
                       "energy_reduction_mean_all": _of(energy["duplex"], MOE_MODELS, np.mean)})
    out["static_power"] = static
    return out


def _partial_headline(runs: list[dict], models, systems) -> dict:
    _, speed, energy = _ratios(runs)
    out = {}
    for s in systems:
        if s == "gpu":
            continue
        out[f"max_speedup_{s}"] = _of(speed[s], models, np.max)
        out[f"mean_speedup_{s}"] = _of(speed[s], models, np.mean)
        out[f"energy_reduction_mean_{s}"] = _of(energy[s], models, np.mean)
    if "duplex" in speed and "duplex_pe_et" in speed:
        out["max_pe_et_over_duplex"] = max(speed["duplex_pe_et"][c] / speed["duplex"][c]
                                           for c in speed["duplex"] if c in speed["duplex_pe_et"])
    return out


# -- report ------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{x:.1%}"


def markdown(summary: dict, closed: list[dict], poisson: list[dict], wall_s: float) -> str:
    p, paper, real = PAPER, summary["paper"], summary["realistic"]
    lines = ["# Duplex reproduction", "",
             f"{len(closed)} closed-loop runs and {len(poisson)} Poisson runs in {wall_s:.0f} s.",
             "", "Headlines, each as the paper states it (max or mean over configurations), in "
             "both modes:", "",
             "| metric | paper (kind) | paper mode | realistic mode |", "|---|---:|---:|---:|"]

    def row(label: str, ref: str, a: str, b: str) -> None:
        lines.append(f"| {label} | {ref} | {a} | {b} |")

    for key, label in (("speedup", "Duplex / GPU"), ("speedup_pe_et", "Duplex+PE+ET / GPU")):
        ref = p[f"max_{key}"][0]
        row(f"{label}, max", f"{ref:.2f} (max)", f"{paper[f'max_{key}']:.2f}",
            f"{real[f'max_{key}']:.2f}")
        row(f"{label}, mean", "-", f"{paper[f'mean_{key}']:.2f}", f"{real[f'mean_{key}']:.2f}")
    row("Duplex+PE+ET / Duplex, max", "1.36 (max)", f"{paper['max_pe_et_over_duplex']:.2f}",
        f"{real['max_pe_et_over_duplex']:.2f}")
    row("Duplex+PE+ET / Duplex, mean", "-", f"{paper['mean_pe_et_over_duplex']:.2f}",
        f"{real['mean_pe_et_over_duplex']:.2f}")
    for m in MOE_MODELS:
        ref = p["energy_reduction"][m][0]
        row(f"energy reduction {m}, max", f"{_pct(ref)} (max)",
            _pct(paper["energy_reduction_max"][m]), _pct(real["energy_reduction_max"][m]))
        row(f"energy reduction {m}, mean", "-", _pct(paper["energy_reduction_mean"][m]),
            _pct(real["energy_reduction_mean"][m]))
    row("energy reduction, mean over the MoE models", "28.2% (mean)",
        _pct(paper["energy_reduction_mean"]["all"]), _pct(real["energy_reduction_mean"]["all"]))
    for name, ref in (("mixtral", "1.80 / 1.49"), ("opt-66b", "< 1 (Bank-PIM ahead)"),
                      ("llama-3.1-70b", "-")):
        a, b = paper["bankpim_ratio"][name], real["bankpim_ratio"][name]
        row(f"Duplex / Bank-PIM, {name} (max / mean)", ref, f"{a['max']:.2f} / {a['mean']:.2f}",
            f"{b['max']:.2f} / {b['mean']:.2f}")
    a, b = paper["bankpim_ratio_glam"], real["bankpim_ratio_glam"]
    row("Duplex / Bank-PIM, GLaM (max / mean; apart)", "not compared",
        f"{a['max']:.2f} / {a['mean']:.2f}", f"{b['max']:.2f} / {b['mean']:.2f}")
    for s in POISSON_SYSTEMS:
        ref = p["saturation_qps"].get(s)
        row(f"saturation QPS {s}", f"~{ref}" if ref else "-", str(paper["saturation_qps"][s]),
            str(real["saturation_qps"][s]))
    lines += ["", f"GLaM apart: {BANKPIM_GLAM}.", ""]
    for mode in MODES:
        lines += sensitivity_lines(summary["sensitivity"][mode], mode)
    for mode in MODES:
        h = summary[mode]
        lines += ["", f"## {mode} mode: speedup over GPU, mean (max) over batch and lengths", "",
                  "| model | " + " | ".join(SYSTEMS) + " |", "|---" * (len(SYSTEMS) + 1) + "|"]
        for m in MODELS:
            lines.append(f"| {m} | " + " | ".join(
                f"{h['speedup_mean'][s][m]:.2f} ({h['speedup_max'][s][m]:.2f})"
                for s in SYSTEMS) + " |")
        lines += ["", "Per configuration (output tok/s; J/token):", "",
                  "| model | batch | in/out | " + " | ".join(SYSTEMS) + " |",
                  "|---" * (len(SYSTEMS) + 3) + "|"]
        by = {_key(r): r for r in closed if r["mode"] == mode and not r["variant"]}
        for m in MODELS:
            for b in BATCHES:
                for (i, o) in LENGTHS:
                    cells = [f"{by[(m, s, b, i, o)]['tokens_per_s']:.0f}; "
                             f"{by[(m, s, b, i, o)]['j_per_token']:.2f}" for s in SYSTEMS]
                    lines.append(f"| {m} | {b} | {i}/{o} | " + " | ".join(cells) + " |")
        lines += ["", "Poisson sweep, Mixtral (4096, 512), batch <= 128 (TTFT slope s/s; p50 "
                  "TTFT s):", "", "| QPS | " + " | ".join(POISSON_SYSTEMS) + " |",
                  "|---" * (len(POISSON_SYSTEMS) + 1) + "|"]
        pb = {(r["system"], r["qps"]): r for r in poisson if r["mode"] == mode}
        for q in POISSON_QPS:
            lines.append(f"| {q} | " + " | ".join(
                f"{pb[(s, q)]['ttft_slope']:.3f}; {pb[(s, q)]['ttft_p50_s']:.2f}"
                + (" (sat.)" if pb[(s, q)]["saturated"] else "") for s in POISSON_SYSTEMS)
                + " |")
    return "\n".join(lines) + "\n"


def sensitivity_lines(sens: dict, mode: str) -> list[str]:
    lines = [f"## Sensitivity ({mode} mode, one assumption at a time; * = the mode's own value)",
             ""]
    for name, rows in sens.items():
        if name == "static_power":
            continue
        keys = [k for k in rows[0] if k not in ("value", "base")]
        lines += [f"`{name}`:", "", "| value | " + " | ".join(keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r['value']:g}{' *' if r['base'] else ''} | " + " | ".join(
                _pct(r[k]) if k.startswith("energy") else f"{r[k]:.2f}" for k in keys) + " |")
        lines.append("")
    lines += ["Static power (x the profiles' idle watts, 70 W per GPU, 80 W with a PIM; energy "
              "reduction of Duplex vs GPU, max / mean):", "",
              "| idle W scale | " + " | ".join(MOE_MODELS) + " | mean, all |",
              "|---" * (len(MOE_MODELS) + 2) + "|"]
    for r in sens["static_power"]:
        lines.append(f"| {r['idle_w_scale']:g} | " + " | ".join(
            f"{_pct(r['energy_reduction_max'][m])} / {_pct(r['energy_reduction_mean'][m])}"
            for m in MOE_MODELS) + f" | {_pct(r['energy_reduction_mean_all'])} |")
    return lines + [""]


def plots(out: Path, closed: list[dict], poisson: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{b}\n{i}/{o}" for b in BATCHES for (i, o) in LENGTHS]
    width = 0.8 / len(SYSTEMS)
    for mode in MODES:
        by = {_key(r): r for r in closed if r["mode"] == mode and not r["variant"]}
        fig, axes = plt.subplots(len(MODELS), 1, figsize=(12, 3 * len(MODELS)), sharex=True)
        for ax, m in zip(axes, MODELS, strict=True):
            for k, s in enumerate(SYSTEMS):
                ys = [by[(m, s, b, i, o)]["tokens_per_s"] / by[(m, "gpu", b, i, o)]["tokens_per_s"]
                      for b in BATCHES for (i, o) in LENGTHS]
                ax.bar(np.arange(len(labels)) + k * width, ys, width, label=s)
            ax.set_ylabel(f"{m}\nspeedup vs GPU")
            ax.axhline(1.0, color="k", lw=0.5)
        axes[0].legend(ncol=len(SYSTEMS), fontsize=8)
        axes[0].set_title(f"{mode} assumptions")
        axes[-1].set_xticks(np.arange(len(labels)) + 0.4, labels, fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"throughput_{mode}.png", dpi=110)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(MODES), figsize=(11, 4), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for s in POISSON_SYSTEMS:
            rows = sorted((r for r in poisson if r["system"] == s and r["mode"] == mode),
                          key=lambda r: r["qps"])
            ax.plot([r["qps"] for r in rows], [r["e2e_p50_s"] for r in rows], marker="o",
                    label=s)
        ax.set_xlabel("requests/s")
        ax.set_yscale("log")
        ax.set_title(f"Mixtral (4096, 512), {mode}")
    axes[0].set_ylabel("median end-to-end latency (s)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "poisson.png", dpi=110)
    plt.close(fig)


def jobs(model_dir: Path, per_client: int) -> tuple[list[tuple], list[tuple]]:
    closed = [(model_dir, mode, m, s, b, lengths, per_client, None)
              for mode in MODES for m in MODELS for s in SYSTEMS for b in BATCHES
              for lengths in LENGTHS]
    for name, (values, default, models, systems, _) in SENSITIVITY.items():
        closed += [(model_dir, mode, m, s, b, lengths, per_client, (name, v))
                   for mode in MODES for v in values if v != default[mode]
                   for m in models for s in systems for b in BATCHES for lengths in LENGTHS]
    # longest first, so the pool does not end on one big run
    closed.sort(key=lambda j: -(j[4] * (j[5][0] + 4 * j[5][1]) * MODELS[j[2]][1]))
    poisson = [(model_dir, mode, s, q) for mode in MODES for s in POISSON_SYSTEMS
               for q in POISSON_QPS]
    return closed, poisson


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--requests-per-client", type=int, default=3)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    closed_jobs, poisson_jobs = jobs(model_files(out / "models"), args.requests_per_client)
    with ProcessPoolExecutor(args.jobs) as pool:
        poisson_f = [pool.submit(run_poisson, j) for j in poisson_jobs]
        closed = list(pool.map(run_closed, closed_jobs, chunksize=1))
        poisson = [f.result() for f in poisson_f]
    wall = time.perf_counter() - started
    of = lambda rows, mode: [r for r in rows if r["mode"] == mode]               # noqa: E731
    base = [r for r in closed if not r["variant"]]
    summary = legacy(of(base, "realistic"), of(poisson, "realistic"))
    summary["paper_figures"] = PAPER
    for mode in MODES:
        summary[mode] = headline(of(base, mode), of(poisson, mode))
    summary["sensitivity"] = {mode: sensitivity(closed, mode) for mode in MODES}
    summary["wall_s"] = wall
    import pandas as pd
    pd.DataFrame(closed).to_csv(out / "closed_loop.csv", index=False)
    pd.DataFrame(poisson).to_csv(out / "poisson.csv", index=False)
    (out / "duplex.json").write_text(json.dumps(summary, indent=2))
    (out / "duplex.md").write_text(markdown(summary, closed, poisson, wall))
    plots(out, closed, poisson)
    print(markdown(summary, closed, poisson, wall))


if __name__ == "__main__":
    main()
