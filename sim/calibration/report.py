"""What ``llmsim hardware show`` and ``llmsim calibrate`` print: a profile as a dict and tables."""

from __future__ import annotations

from rich.table import Table

from sim.hardware import load_device


def device_summary(name_or_path: str) -> dict:
    """A profile in datasheet units plus its calibration (None when it has none), JSON-ready:
    ``{"name", "kind", "description", "datasheet", "efficiency", "calibration": {"mape":
    {op_kind: fraction}, "mape_by_op", "curves", "tables", "source", "environment", ...}}``."""
    d = load_device(name_or_path)
    e = d.efficiency
    return {
        "name": d.name, "kind": d.kind, "vendor": d.vendor, "description": d.description,
        "datasheet": {"bf16_tflops": d.bf16_flops / 1e12, "fp8_tflops": d.fp8_flops / 1e12,
                      "memory_gib": d.hbm_bytes / 2**30, "bandwidth_gb_s": d.hbm_bandwidth / 1e9,
                      "interconnect_gb_s": d.interconnect_bandwidth / 1e9,
                      "tdp_w": d.tdp_w, "usd_per_hour": d.price_usd_per_hour},
        "efficiency": {"compute": e.compute, "memory": e.memory, "interconnect": e.interconnect,
                       "kernel_launch_us": e.kernel_launch_s * 1e6,
                       "iteration_overhead_ms": e.iteration_overhead_s * 1e3},
        "calibration": None if d.calibration is None else d.calibration.summary(),
        "measured": None if d.measured is None else {
            "source": d.measured.section.source, "format": d.measured.section.format,
            "gpu": d.measured.section.gpu, "vllm_version": d.measured.section.vllm_version,
            "entries": d.measured.summary()},
    }


def device_table(summary: dict) -> Table:
    table = Table(title=f"{summary['name']} ({summary['description']})", title_justify="left",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary["datasheet"].items():
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else str(value))
    table.add_row("efficiency", ", ".join(f"{k} {v:g}" for k, v in summary["efficiency"].items()))
    cal = summary["calibration"]
    if cal is None:
        table.add_row("calibration", "none (roofline with the efficiencies above)")
    else:
        env = cal["environment"]
        facts = [cal["dtype"]] + [env[k] for k in ("device_name", "date") if k in env]
        table.add_row("calibration", f"{cal['source']} ({', '.join(facts)})")
    return table


def measured_table(measured: dict) -> Table:
    """One row per imported table set: rows per table and the held-out interpolation error."""
    title = (f"measured vLLM layer tables ({measured['gpu'] or 'GPU'}, vLLM "
             f"{measured['vllm_version'] or '?'}; {measured['source']}): rows and held-out "
             "interpolation error (a fifth of each table)")
    table = Table(title=title, title_justify="left")
    for col in ("model", "dtype", "tp", "dense", "attention", "per sequence", "moe", "notes"):
        table.add_column(col, justify="right" if col in ("tp",) else "left")
    for e in measured["entries"]:
        def cell(kind):
            if kind not in e["rows"]:
                return "-"
            mape = e["holdout_mape"].get(kind)
            return f"{e['rows'][kind]} rows" + ("" if mape is None else f", {mape:.1%}")
        table.add_row(e["model"], e["dtype"], str(e["tp"]), cell("dense"), cell("attention"),
                      cell("per_sequence"), cell("moe"), "; ".join(e["notes"]))
    return table


def calibration_table(cal: dict) -> Table:
    """Held-out MAPE and the fitted curve per op kind, then MAPE per elementwise op."""
    pct = f"{cal['holdout_fraction']:.0%}"
    title = f"held-out MAPE ({pct} of rows) and fitted efficiency"
    if not cal["tables"]:       # curves only: the learned defaults
        title = ("efficiency curves learned from measured GPUs (their leave-one-GPU-out error: "
                 "python benchmarks/learn_efficiency.py); other op kinds: the efficiencies above")
    fit = Table(title=title, title_justify="left")
    for col in ("op kind", "MAPE", "rows", "compute frac", "half FLOPs", "memory frac",
                "half bytes"):
        fit.add_column(col, justify="left" if col == "op kind" else "right")
    rows = {k: v["rows"] for k, v in cal["tables"].items()}
    rows.update({k: rows.get("attention", "-") for k in ("attn_prefill", "attn_decode")})
    fields = ("compute_fraction", "compute_half_flops", "memory_fraction", "memory_half_bytes")
    for kind in dict.fromkeys([*cal["mape"], *cal["curves"]]):
        curve = cal["curves"].get(kind, {})
        mape = cal["mape"].get(kind)
        fit.add_row(kind, "-" if mape is None else f"{mape:.1%}", str(rows.get(kind, "-")),
                    *(f"{curve[f]:.3g}" if f in curve else "-" for f in fields))
    for op, mape in cal["mape_by_op"].items():
        fit.add_row(f"  {op}", f"{mape:.1%}", "", "", "", "", "")
    return fit
