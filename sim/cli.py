"""``llmsim``: run, validate and inspect scenarios from the command line.

An :class:`~sim.errors.LlmsimError` (bad input) is printed as one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import LlmsimError

if TYPE_CHECKING:
    from rich.console import Console


# rich is imported when something is printed, not with this module: `llmsim --help` and
# `import sim.cli` do without it
@functools.cache
def _console() -> Console:
    from rich.console import Console
    return Console()


@functools.cache
def _err_console() -> Console:
    from rich.console import Console
    return Console(stderr=True)


def __getattr__(name: str):
    # `sim.cli.console` and `sim.cli.err_console` stay importable, made on first use
    if name == "console":
        return _console()
    if name == "err_console":
        return _err_console()
    raise AttributeError(f"module 'sim.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except LlmsimError as exc:
        _err_console().print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        _err_console().print("interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
    from sim.planning.backends import BACKENDS

    p = argparse.ArgumentParser(prog="llmsim", description="Simulate LLM serving clusters.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write its results")
    run.add_argument("scenario", help="scenario YAML")
    run.add_argument("-o", "--out", help="output directory (default: runs/<scenario name>)")
    _add_set(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--check-invariants", action="store_true",
                     help="assert KV, queue and request invariants at every iteration (slower)")
    run.add_argument("--trace-events", metavar="FILE.json",
                     help="also write Chrome/Perfetto trace events of every replica's iterations")
    run.add_argument("--backend", default="local", choices=list(BACKENDS),
                     help="where a partitioned run's parts run (simulation.partitions): "
                     "processes here, or Ray tasks")
    run.add_argument("--address", default=None,
                     help="Ray cluster address for --backend ray (default: a local instance)")
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
    _add_hardware_show(hw)
    _add_calibrate(sub)

    _add_trace(sub)
    _add_ops(sub)
    _add_planning(sub)
    _add_compare(sub)
    return p


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set scheduler.max_num_seqs=128")


# -- run ---------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from sim.cluster import simulate
    from sim.metrics.result import prepare_output_dir, prepare_output_file, safe_name
    from sim.scenario import Scenario

    overrides = args.overrides + (["simulation.check_invariants=true"]
                                  if args.check_invariants else [])
    scenario = Scenario.from_yaml(args.scenario, overrides)
    # output paths are checked before the run: a result is never lost to an unwritable path
    if getattr(args, "trace_events", None):
        prepare_output_file(args.trace_events)
    out = prepare_output_dir(Path(args.out) if args.out else Path("runs") / safe_name(
        scenario.name))
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    if show:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("requests"), TimeElapsedColumn(), console=_err_console(),
                      transient=True) as bar:
            task = bar.add_task(scenario.name, total=None)
            result = simulate(scenario, progress=lambda done, total: bar.update(
                task, completed=done, total=total), backend=args.backend,
                address=args.address)
    else:
        result = simulate(scenario, backend=args.backend, address=args.address)
    result.save(out)
    if getattr(args, "trace_events", None):
        from sim.planning.trace_events import write_trace_events
        write_trace_events(result.iterations, args.trace_events, scenario.name)
        if not args.json:
            _console().print(f"trace events in [bold]{args.trace_events}[/] (open in "
                            "ui.perfetto.dev or chrome://tracing)", highlight=False)
    if args.json:
        print(json.dumps(_jsonable(result.summary), indent=2))
    else:
        _print_summary(result.summary, scenario.name)
        fleet = ", fleet.parquet" if result.fleet_events is not None else ""
        _console().print(f"results in [bold]{out}/[/] (summary.json, requests.parquet, "
                        f"iterations.parquet{fleet}, scenario.yaml)", highlight=False)
    return 0


def _jsonable(value):
    from sim.metrics.result import jsonable      # (here: the parser needs no simulator)
    return jsonable(value)


def _print_summary(s: dict, name: str) -> None:
    from rich.table import Table

    table = Table(title=f"{name}: {s['requests_completed']}/{s['requests_total']} completed, "
                        f"{s['requests_rejected']} rejected, {s['requests_running']} running at end",
                  title_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    for key, label in (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "E2E (s)"),
                       ("queue_s", "queue (s)")):
        table.add_row(label, *(f"{s[key][c]:.4f}" for c in ("mean", "p50", "p90", "p99")))
    _console().print(table)
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
    # what a topology or an engine option adds to the summary, when the run has it
    if "kv_transfer_s" in s:
        rows.append(("KV transfer", f"p50 {s['kv_transfer_s']['p50'] * 1e3:.1f} ms, "
                                    f"{s['kv_transfer_share']:.1%} of E2E"))
    if "pipeline_bubble_fraction" in s:
        rows.append(("pipeline bubble", f"{s['pipeline_bubble_fraction']:.1%}"))
    if "expert_exchange_share" in s:
        rows.append(("expert exchange", f"{s['expert_exchange_share']:.1%} of step time"))
    if "speculative_tokens_per_step" in s:
        rows.append(("speculative", f"{s['speculative_tokens_per_step']:.2f} tokens/step"))
    if "autoscaler" in s:
        a = s["autoscaler"]
        rows.append(("autoscaler", f"{a['policy']}: {a['scale_events']} scale events, "
                                   f"{a['replica_hours']:.2f} replica-h, peak "
                                   f"{a['peak_replicas']}, cold start {a['cold_start_s']:.0f} s"))
    if "kv_offload" in s:
        rows.append(("host KV tier", f"hit rate {s['kv_offload']['hit_rate']:.1%} (host "
                                     f"{s['kv_offload']['host_hit_rate']:.1%})"))
    for k, v in rows:
        facts.add_row(k, v)
    _console().print(facts)


# -- validate ----------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    from sim.cluster.cluster import resolve_pools
    from sim.memory import weight_bytes_per_device
    from sim.scenario import Scenario

    scenario = Scenario.from_yaml(args.scenario, args.overrides)
    for pool in resolve_pools(scenario):
        dep = pool.deployment
        role = f" ({pool.role})" if scenario.cluster.pools else ""
        layout = f"{dep.tensor_parallel}" + (f" x pp{dep.pipeline_parallel}"
                                             if dep.pipeline_parallel > 1 else "")
        weights = weight_bytes_per_device(dep.model, dep.tensor_parallel,
                                          pp=dep.pipeline_parallel)
        _console().print(
            f"[green]ok[/] {args.scenario}{role}: {dep.model.name} on "
            f"{pool.scenario.cluster.replicas} x {layout} {dep.device.name}; weights "
            f"{weights / 1e9:.1f} GB/device; KV cache {dep.kv_blocks} blocks = {dep.kv_tokens} "
            f"tokens per replica; max_model_len {dep.max_model_len}", highlight=False)
    return 0


# -- catalogs ----------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from rich.table import Table

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
    _console().print(table)
    return 0


def cmd_hardware(args) -> int:
    from rich.table import Table

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
    _console().print(table)
    return 0


# -- ops: the roofline table of one iteration --------------------------------------------------
def _add_ops(sub) -> None:
    ops = sub.add_parser("ops", help="per-op FLOPs, bytes, Op/B, processor and time of one "
                                     "iteration")
    ops.add_argument("model", help="catalog name or a path to a HF config.json / model YAML")
    ops.add_argument("--hardware", required=True, help="hardware profile name or YAML path")
    ops.add_argument("--batch", type=int, required=True, help="decoding requests")
    ops.add_argument("--context", type=int, required=True, help="tokens cached per request")
    ops.add_argument("--prefill", type=int, default=0, help="tokens of one prefilling request")
    ops.add_argument("--tp", type=int, default=1, help="tensor-parallel devices (default 1)")
    ops.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a hardware profile field, e.g. "
                          "--set duplex.placement.policy=fastest")
    ops.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    ops.set_defaults(func=cmd_ops)


def cmd_ops(args) -> int:
    from rich.console import Console

    from sim.cost.op_table import op_rich_table, run_ops

    frame, title = run_ops(args.model, args.hardware, args.batch, args.context, args.prefill,
                           args.tp, args.overrides)
    # piped output is not cut at 80 columns (a terminal keeps its own width)
    out = _console() if _console().is_terminal else Console(width=120)
    out.print(op_rich_table(frame, title))
    if args.csv:
        frame.to_csv(args.csv, index=False)
        _console().print(f"wrote {args.csv}", highlight=False)
    return 0


# -- trace -------------------------------------------------------------------------------------
def _add_trace(sub) -> None:
    from sim.workload.formats import TRACE_FORMATS

    trace = sub.add_parser("trace", help="inspect and convert trace files")
    tsub = trace.add_subparsers(dest="trace_command", required=True)
    formats = ", ".join(TRACE_FORMATS)
    stats = tsub.add_parser("stats", help="count, rates, length percentiles, prefix sharing")
    stats.add_argument("file")
    stats.add_argument("--format", help=f"one of {formats} (default: from the header)")
    stats.add_argument("--prefix-block-tokens", type=int, default=None,
                       help="prompt tokens per prefix id (default: the format's, else 16)")
    stats.add_argument("--plot", metavar="OUT.png", help="write rate and length plots")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.set_defaults(func=cmd_trace_stats)
    conv = tsub.add_parser("convert", help="rewrite a trace in llmsim's generic format")
    conv.add_argument("input")
    conv.add_argument("output", help="OUT.csv or OUT.jsonl")
    conv.add_argument("--to", default="generic", choices=["generic"])
    conv.add_argument("--format", help=f"input format, one of {formats} (default: from the header)")
    conv.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    conv.set_defaults(func=cmd_trace_convert)


def _load_trace_cli(path: str, fmt: str | None, block_tokens: int | None = None):
    """load_trace for the CLI: argument errors and trace warnings as one-liners."""
    import warnings

    from sim.config import ConfigValueError
    from sim.errors import TraceError
    from sim.workload.traces import TraceConfig, TraceWarning, load_trace

    try:
        cfg = TraceConfig(path, format=fmt, prefix_block_tokens=block_tokens)
    except ConfigValueError as exc:
        flag = "--" + exc.field.replace("_", "-")
        raise TraceError(f"{flag}: expected {exc.expected}, got {exc.got!r}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TraceWarning)
        columns = load_trace(cfg)
    for w in caught:
        if issubclass(w.category, TraceWarning):
            _err_console().print(f"[yellow]warning:[/] {w.message}", highlight=False,
                                 soft_wrap=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return columns, columns.format


def cmd_trace_stats(args) -> int:
    from rich.table import Table

    from sim.workload.stats import plot_stats, trace_stats

    columns, name = _load_trace_cli(args.file, args.format, args.prefix_block_tokens)
    stats = {"path": args.file, "format": name, **trace_stats(columns, args.prefix_block_tokens)}
    if args.plot:
        plot_stats(columns, Path(args.plot), title=f"{Path(args.file).name} ({name})")
    if args.json:
        print(json.dumps(_jsonable(stats), indent=2))
        return 0
    table = Table(title=f"{args.file} ({name})", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate, duration, peak = (stats["mean_rate_per_min"], stats["duration_s"],
                            stats["peak_rate_per_min"])
    rows = [("requests", f"{stats['requests']:,}"),
            ("duration", "no timestamps" if duration is None
             else f"{duration:,.1f} s ({duration / 60:.1f} min)"),
            ("mean rate", "-" if rate is None else f"{rate:,.1f} /min ({rate / 60:.2f} /s)"),
            ("peak rate", "-" if peak is None else f"{peak:,} /min")]
    for key in ("prompt_tokens", "output_tokens"):
        d = stats[key]
        rows.append((key.replace("_", " "), f"mean {d['mean']:,.0f}  p50 {d['p50']:,.0f}  "
                                            f"p90 {d['p90']:,.0f}  p99 {d['p99']:,.0f}  "
                                            f"max {d['max']:,}"))
    ratio = stats["prefix_sharing_ratio"]
    rows.append(("prefix sharing", f"{ratio:.1%} of prompt blocks seen before "
                                   f"({stats['prefix_block_tokens']} tokens/block)"
                 if stats["has_prefix_hashes"] else "no prefix ids"))
    if stats["sessions"]:
        rows.append(("sessions", f"{stats['sessions']:,}"))
    for k, v in rows:
        table.add_row(k, v)
    _console().print(table)
    if args.plot:
        _console().print(f"plot in [bold]{args.plot}[/]", highlight=False)
    return 0


def cmd_trace_convert(args) -> int:
    from sim.errors import OutputError
    from sim.metrics.result import prepare_output_file
    from sim.workload.formats.generic import write_generic

    out = Path(args.output)
    if out.exists() and out.resolve() == Path(args.input).resolve():
        raise OutputError(f"{out}: is the input trace; write the converted trace elsewhere")
    if out.exists() and not args.force:
        raise OutputError(f"{out}: exists; pass --force to replace it")
    prepare_output_file(out)
    columns, name = _load_trace_cli(args.input, args.format)
    if not columns.has_timestamps:
        _err_console().print(f"[yellow]warning:[/] {args.input} has no timestamps: arrival_s is "
                            "written as 0 (replay it with workload.arrivals)", highlight=False,
                            soft_wrap=True)
    write_generic(columns, Path(args.output))
    _console().print(f"wrote {len(columns):,} requests from {args.input} ({name}) to "
                    f"{args.output} ({args.to})", highlight=False)
    return 0


# -- sweep, plan, report (sim/planning) -----------------------------------------------------
def _add_planning(sub) -> None:
    from sim.planning.backends import BACKENDS

    def backend_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--out", required=True, help="output directory (resumable)")
        p.add_argument("--backend", default="local", choices=list(BACKENDS),
                       help="local: a process pool (default); ray: Ray tasks")
        p.add_argument("--workers", type=int, default=None,
                       help="processes (local) or CPUs of the local Ray instance (default: all)")
        p.add_argument("--address", default=None,
                       help="Ray cluster address (default: start a local Ray instance)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    sweep = sub.add_parser("sweep", help="run a base scenario over a grid of overrides")
    sweep.add_argument("sweep", help="sweep YAML (scenario + grid/zip of dotted keys)")
    sweep.add_argument("--force", action="store_true",
                       help="add to a folder that holds another sweep's results")
    backend_args(sweep)
    sweep.set_defaults(func=cmd_sweep)
    plan = sub.add_parser("plan", help="find the cheapest configuration that meets SLOs")
    plan.add_argument("plan", help="plan YAML (traffic, SLOs, candidates)")
    backend_args(plan)
    plan.set_defaults(func=cmd_plan)
    report = sub.add_parser("report", help="write report.html and report.md for a run, sweep "
                                           "or plan folder")
    report.add_argument("dir")
    report.add_argument("-o", "--out", default=None, help="where to write (default: DIR)")
    report.set_defaults(func=cmd_report)


def cmd_sweep(args) -> int:
    from sim.planning import load_sweep, make_backend, run_sweep
    from sim.planning.console import RunsProgress

    sweep = load_sweep(args.sweep, args.out)
    backend = make_backend(args.backend, args.workers, args.address)
    try:
        with RunsProgress(_err_console(), not args.no_progress) as progress:
            outcome = run_sweep(sweep, args.out, backend, progress=lambda done, total, task, row:
                                progress.update(sweep.name, done, total), force=args.force)
    finally:
        backend.close()
    _console().print(f"{sweep.name}: {outcome.total} runs, {outcome.ran} ran now, "
                    f"{outcome.skipped} already done, in {outcome.wall_s:.1f} s "
                    f"(backend {args.backend}); results in [bold]{outcome.results}[/]",
                    highlight=False)
    return 0


def cmd_plan(args) -> int:
    from sim.planning import load_plan, make_backend, run_plan
    from sim.planning.console import RunsProgress, print_plan

    plan = load_plan(args.plan)
    backend = make_backend(args.backend, args.workers, args.address)
    try:
        with RunsProgress(_err_console(), not args.no_progress) as progress:
            out = run_plan(plan, args.out, backend, progress=progress.update)
    finally:
        backend.close()
    print_plan(_console(), out, args.out)
    return 0


def cmd_report(args) -> int:
    from sim.planning import write_report

    html_path, md_path, plots = write_report(args.dir, args.out)
    _console().print(f"wrote [bold]{html_path}[/] and [bold]{md_path}[/] "
                    f"({len(plots)} plots: {', '.join(plots)})", highlight=False)
    return 0


# -- compare (sim/compare): a real serving run against its replay -----------------------------
def _add_compare(sub) -> None:
    cmp = sub.add_parser("compare", help="replay a real vLLM run and compare real vs simulated "
                                         "latencies")
    cmp.add_argument("run", metavar="RUN_DIR", help="a vLLM run folder (meta.json + "
                     "requests.jsonl) or a `vllm bench serve` result JSON")
    cmp.add_argument("--hardware", required=True, metavar="NAME_OR_PATH",
                     help="hardware profile name or YAML path")
    cmp.add_argument("--model", metavar="NAME_OR_PATH",
                     help="model to simulate (default: the run's, if llmsim knows it)")
    cmp.add_argument("-o", "--out", help="write compare.json, plots and the run's outputs here")
    cmp.add_argument("--json", action="store_true", help="print compare.json instead of a table")
    _add_set(cmp)
    cmp.add_argument("--bin-s", type=float, default=1.0,
                     help="seconds per bin of the throughput series (default 1)")
    cmp.add_argument("--no-progress", action="store_true", help="no progress bar")
    cmp.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    import warnings

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from sim.compare import compare_run
    from sim.compare.console import comparison_table
    from sim.workload.traces import TraceWarning

    if args.out:
        from sim.metrics.result import prepare_output_dir
        prepare_output_dir(args.out)        # before the run, not after it
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    # warnings (what was left out or approximated) are printed on success only: bad input
    # gives its one error line and nothing else
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TraceWarning)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("requests"), TimeElapsedColumn(), console=_err_console(),
                      transient=True, disable=not show) as bar:
            task = bar.add_task(Path(args.run).name, total=None)
            result = compare_run(args.run, args.hardware, model=args.model,
                                 overrides=args.overrides, out=args.out, bin_s=args.bin_s,
                                 progress=lambda done, total: bar.update(
                                     task, completed=done, total=total))
    for w in caught:
        if issubclass(w.category, TraceWarning):
            _err_console().print(f"[yellow]warning:[/] {w.message}", highlight=False,
                                 soft_wrap=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    _console().print(comparison_table(result))
    if args.out:
        _console().print(f"results in [bold]{args.out}/[/] (compare.json, cdf.png, throughput.png, "
                        "throughput.csv, trace.csv, and the simulation's summary.json, "
                        "requests.parquet, iterations.parquet, scenario.yaml)", highlight=False)
    return 0


# -- hardware show, calibrate (sim/calibration) -------------------------------------------------
def _add_hardware_show(hw: argparse.ArgumentParser) -> None:
    """``llmsim hardware show NAME_OR_PATH``; plain ``llmsim hardware`` still lists."""
    hsub = hw.add_subparsers(dest="hardware_command", required=False)
    show = hsub.add_parser("show", help="one profile: datasheet, efficiency, calibration fit")
    show.add_argument("profile", metavar="NAME_OR_PATH")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_hardware_show)


def _add_calibrate(sub) -> None:
    cal = sub.add_parser("calibrate", help="measure kernels with torch -> a calibrated profile")
    cal.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    cal.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    cal.add_argument("--models", default=None, metavar="M1,M2",
                     help="catalog models whose per-TP-shard shapes to measure")
    cal.add_argument("--quick", action="store_true", help="a small grid (minutes on a GPU)")
    cal.add_argument("--base", default=None, metavar="NAME_OR_PATH",
                     help="profile with the datasheet numbers (default: from the GPU's name)")
    cal.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (cpu default: 1, steady on a busy machine)")
    cal.add_argument("-o", "--out", metavar="PATH.yaml", help="profile to write (tables beside it)")
    cal.set_defaults(func=cmd_calibrate)
    csub = cal.add_subparsers(dest="calibrate_command", required=False)
    vid = csub.add_parser("import-vidur", help="Vidur profiling CSVs -> a calibrated profile")
    vid.add_argument("directory", metavar="DIR", help="folder with Vidur's mlp.csv files")
    vid.add_argument("-o", "--out", required=True, metavar="PATH.yaml")
    vid.add_argument("--gpu", default=None, help="GPU folder name when DIR has several (a100)")
    vid.add_argument("--base", default=None, metavar="NAME_OR_PATH",
                     help="profile with the datasheet numbers (default: from the GPU folder)")
    vid.add_argument("--network", default=None, metavar="PATH",
                     help="Vidur all_reduce.csv (or its folder) to import too")
    vid.set_defaults(func=cmd_calibrate_import_vidur)
    lss = csub.add_parser("import-llmservingsim",
                          help="vLLM layer tables measured by LLMServingSim -> a measured profile")
    lss.add_argument("directory", metavar="DIR",
                     help="a GPU folder (perf/<GPU> or v0/perf_models/<GPU>) or any folder below")
    lss.add_argument("--base", required=True, metavar="NAME_OR_PATH",
                     help="shipped profile with the GPU's datasheet numbers (memory, power, price, "
                          "interconnect)")
    lss.add_argument("-o", "--out", required=True, metavar="PATH.yaml")
    lss.set_defaults(func=cmd_calibrate_import_llmservingsim)


def cmd_hardware_show(args) -> int:
    from sim.calibration.report import (calibration_table, device_summary, device_table,
                                        measured_table)

    summary = device_summary(args.profile)
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
        return 0
    _console().print(device_table(summary))
    if summary["calibration"] is not None:
        _console().print(calibration_table(summary["calibration"]))
    if summary["measured"] is not None:
        _console().print(measured_table(summary["measured"]))
    return 0


def cmd_calibrate(args) -> int:
    from sim.calibration.run import calibrate
    from sim.errors import HardwareError

    if not args.out:
        raise HardwareError("calibrate: -o PATH.yaml is required (the profile to write)")
    models = None if args.models is None else [m for m in args.models.split(",") if m]
    built = calibrate(args.device, args.out, dtype=args.dtype, models=models, quick=args.quick,
                      base=args.base, threads=args.threads,
                      log=lambda msg: _err_console().print(msg, highlight=False))
    return _report_built(built)


def cmd_calibrate_import_vidur(args) -> int:
    from sim.calibration.vidur import import_vidur

    return _report_built(import_vidur(args.directory, args.out, gpu=args.gpu, base=args.base,
                                      network=args.network))


def cmd_calibrate_import_llmservingsim(args) -> int:
    from sim.calibration.llmservingsim import import_llmservingsim
    from sim.calibration.report import device_summary, measured_table

    built = import_llmservingsim(args.directory, args.out, base=args.base)
    _console().print(measured_table(device_summary(str(built.path))["measured"]))
    _console().print(f"wrote [bold]{built.path}[/] and its tables in "
                    f"[bold]{built.path.parent / built.path.stem}/[/]", highlight=False)
    return 0


def _report_built(built) -> int:
    from sim.calibration.report import calibration_table, device_summary

    _console().print(calibration_table(device_summary(str(built.path))["calibration"]))
    _console().print(f"wrote [bold]{built.path}[/] and its tables in "
                    f"[bold]{built.path.parent / built.path.stem}/[/]", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
