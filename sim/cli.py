"""``llmsim``: run, validate and inspect scenarios from the command line.

An :class:`~sim.errors.LlmsimError` (bad input) is printed as one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sim.errors import LlmsimError

console = Console()
err_console = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except LlmsimError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmsim", description="Simulate LLM serving clusters.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write its results")
    run.add_argument("scenario", help="scenario YAML")
    run.add_argument("-o", "--out", help="output directory (default: runs/<scenario name>)")
    _add_set(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a scenario (and that the model fits) without running")
    val.add_argument("scenario")
    _add_set(val)
    val.set_defaults(func=cmd_validate)

    models = sub.add_parser("models", help="list the built-in model catalog")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    hw = sub.add_parser("hardware", help="list hardware profiles")
    hw.add_argument("--json", action="store_true")
    hw.set_defaults(func=cmd_hardware)
    return p


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set scheduler.max_num_seqs=128")


# -- run ---------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from sim.cluster import simulate
    from sim.scenario import Scenario

    scenario = Scenario.from_yaml(args.scenario, args.overrides)
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    if show:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("requests"), TimeElapsedColumn(), console=err_console,
                      transient=True) as bar:
            task = bar.add_task(scenario.name, total=None)
            result = simulate(scenario, progress=lambda done, total: bar.update(
                task, completed=done, total=total))
    else:
        result = simulate(scenario)
    out = Path(args.out) if args.out else Path("runs") / scenario.name
    result.save(out)
    if args.json:
        print(json.dumps(_clean(result.summary), indent=2))
    else:
        _print_summary(result.summary, scenario.name)
        console.print(f"results in [bold]{out}/[/] (summary.json, requests.parquet, "
                      "iterations.parquet, scenario.yaml)", highlight=False)
    return 0


def _clean(value):
    import math
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _print_summary(s: dict, name: str) -> None:
    table = Table(title=f"{name}: {s['requests_completed']}/{s['requests_total']} completed, "
                        f"{s['requests_rejected']} rejected, {s['requests_running']} running at end",
                  title_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    for key, label in (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "E2E (s)"),
                       ("queue_s", "queue (s)")):
        table.add_row(label, *(f"{s[key][c]:.4f}" for c in ("mean", "p50", "p90", "p99")))
    console.print(table)
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column(justify="right")
    rows = [
        ("throughput", f"{s['throughput_tokens_per_s']:.1f} output tok/s"),
        ("goodput", f"{s['goodput_requests_per_s']:.3f} req/s"),
        ("SLO attainment", f"{s['slo_attainment']:.1%}"),
        ("preemptions", str(s["preemptions"])),
        ("simulated", f"{s['simulated_duration_s']:.1f} s"),
        ("energy", f"{s['energy_j'] / 3.6e6:.3f} kWh"),
        ("cost", f"${s['cost_usd']:.2f}"),
        ("wall time", f"{s['wall_time_s']:.2f} s"),
    ]
    for k, v in rows:
        facts.add_row(k, v)
    console.print(facts)


# -- validate ----------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    from sim.cluster import resolve
    from sim.scenario import Scenario

    scenario = Scenario.from_yaml(args.scenario, args.overrides)
    dep = resolve(scenario)
    from sim.memory import weight_bytes_per_device
    console.print(
        f"[green]ok[/] {args.scenario}: {dep.model.name} on {scenario.cluster.replicas} x "
        f"{dep.tensor_parallel} {dep.device.name}; weights "
        f"{weight_bytes_per_device(dep.model, dep.tensor_parallel) / 1e9:.1f} GB/device; KV cache "
        f"{dep.kv_blocks} blocks = {dep.kv_tokens} tokens per replica; max_model_len "
        f"{dep.max_model_len}", highlight=False)
    return 0


# -- catalogs ----------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from sim.models import list_models

    models = list_models()
    if args.json:
        print(json.dumps([{"name": m.name, "params": m.num_params,
                           "active_params": m.num_active_params, "layers": m.num_layers,
                           "hidden": m.hidden_size, "heads": m.num_heads,
                           "kv_heads": m.num_kv_heads, "experts": m.num_experts,
                           "top_k": m.top_k, "context": m.max_context_tokens,
                           "kv_bytes_per_token": m.kv_bytes_per_token} for m in models], indent=2))
        return 0
    table = Table(title="models")
    for col in ("name", "params", "active", "layers", "hidden", "heads/kv", "experts",
                "context", "KV/token"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for m in models:
        table.add_row(m.name, f"{m.num_params / 1e9:.1f}B", f"{m.num_active_params / 1e9:.1f}B",
                      str(m.num_layers), str(m.hidden_size), f"{m.num_heads}/{m.num_kv_heads}",
                      f"{m.num_experts} top-{m.top_k}" if m.is_moe else "-",
                      str(m.max_context_tokens), f"{m.kv_bytes_per_token / 1024:.0f} KiB")
    console.print(table)
    return 0


def cmd_hardware(args) -> int:
    from sim.hardware import list_devices, load_device

    devices = [load_device(name) for name in list_devices()]
    if args.json:
        print(json.dumps([{"name": d.name, "bf16_flops": d.bf16_flops, "fp8_flops": d.fp8_flops,
                           "hbm_bytes": d.hbm_bytes, "hbm_bandwidth": d.hbm_bandwidth,
                           "interconnect_bandwidth": d.interconnect_bandwidth,
                           "tdp_w": d.tdp_w, "price_usd_per_hour": d.price_usd_per_hour}
                          for d in devices], indent=2))
        return 0
    table = Table(title="hardware profiles")
    for col in ("name", "bf16 TFLOP/s", "fp8 TFLOP/s", "memory", "bandwidth", "link", "TDP",
                "$/h"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for d in devices:
        table.add_row(d.name, f"{d.bf16_flops / 1e12:.0f}", f"{d.fp8_flops / 1e12:.0f}",
                      f"{d.hbm_bytes / 2**30:.0f} GiB", f"{d.hbm_bandwidth / 1e12:.2f} TB/s",
                      f"{d.interconnect_bandwidth / 1e9:.0f} GB/s", f"{d.tdp_w:.0f} W",
                      f"{d.price_usd_per_hour:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
