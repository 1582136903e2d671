"""Terminal output of ``llmsim sweep`` and ``llmsim plan``: a progress bar with an ETA, and the
plan's table of candidates (rich)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table


class RunsProgress:
    """Runs done / total with an ETA: a bar on a terminal, else one line per finished run (so a
    log shows progress too). ``update(phase, done, total)``; a plan has several phases."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self.bar: Progress | None = None
        self.task = None
        self.phase: str | None = None
        self.started = time.perf_counter()

    def __enter__(self) -> "RunsProgress":
        self.started = time.perf_counter()
        if self.enabled and self.console.is_terminal:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), console=self.console,
                                transient=True)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, phase: str, done: int, total: int) -> None:
        if self.bar is not None:
            if phase != self.phase:
                self.task = self.bar.add_task(phase, total=total)
                self.phase = phase
            self.bar.update(self.task, completed=done, total=total)
            return
        if not self.enabled:
            return
        self.phase = phase
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done else float("nan")
        self.console.print(f"{phase}: {done}/{total} runs, {elapsed:.1f} s, eta {eta:.1f} s",
                           highlight=False)
        if done == total:            # the next phase starts now
            self.started = time.perf_counter()


def _ci(e: dict | None, fmt: str) -> str:
    if not e or e.get("mean") is None:
        return "-"
    return f"{e['mean']:{fmt}} [{e['low']:{fmt}}, {e['high']:{fmt}}]"


def print_fleets(console: Console, out: dict, out_dir: str) -> None:
    """The fleets (mean [95% CI] over seeds), cheapest first, then the recommendation."""
    table = Table(title=f"plan {out['name']}: fleets over the scenario's traffic, "
                        f"{len(out['seeds'])} seeds (mean [95% CI])", title_justify="left")
    for col in ("rank", "fleet", "cost $", "SLO attainment", "seeds meeting", "replica-hours",
                "scale events"):
        table.add_column(col, justify="left" if col == "fleet" else "right")
    for f in sorted(out["fleets"], key=lambda f: (f.get("rank") is None, f.get("rank") or 0,
                                                  f["cost_usd"]["mean"])):
        table.add_row(str(f.get("rank", "-")), f["fleet"], _ci(f["cost_usd"], ".2f"),
                      _ci(f["slo_attainment"], ".3f"), f"{f['seeds_meeting']}/{f['seeds']}",
                      _ci(f.get("replica_hours"), ".1f"), _ci(f.get("scale_events"), ".0f"))
    console.print(table)
    rec = out["recommendation"]
    console.print(f"cheapest fleet meeting the SLO in every seed: [bold]{rec}[/]" if rec else
                  "[bold red]no fleet meets the SLO in every seed[/]", highlight=False)
    console.print(f"results in [bold]{out_dir}/[/] (plan.json, fleets.parquet)", highlight=False)


def print_plan(console: Console, out: dict, out_dir: str) -> None:
    """The candidates (mean [95% CI] over seeds), then the recommendation."""
    if out.get("kind") == "fleets":
        print_fleets(console, out, out_dir)
        return
    table = Table(title=f"plan {out['name']}: {out['traffic']['rate_rps']:g} req/s, "
                        f"{len(out['seeds'])} seeds (mean [95% CI])", title_justify="left")
    for col in ("rank", "candidate", "max req/s per replica", "replicas", "$/hour", "$/M tokens",
                "note"):
        table.add_column(col, justify="left" if col in ("candidate", "note") else "right")
    for c in out["candidates"]:
        ok = c["feasible"]
        table.add_row(str(c.get("rank", "-")), c["candidate"],
                      _ci(c.get("max_rate_per_replica"), ".2f"),
                      f"{c['replicas']} [{c['replicas_ci'][0]}, {c['replicas_ci'][1]}]"
                      if ok else "-",
                      f"{c['usd_per_hour']:.2f}" if ok else "-",
                      _ci(c.get("usd_per_million_output_tokens"), ".3f"), c.get("reason") or "")
    console.print(table)
    rec = out["recommendation"]
    if rec is None:
        console.print("[bold red]no candidate meets the SLO[/]")
    else:
        console.print(f"[bold]recommended:[/] {rec['candidate']} x {rec['replicas']} replicas "
                      f"(every seed meets the SLO; per-seed minimum {rec['replicas_mean']:.2f}, "
                      f"95% CI {rec['replicas_ci'][0]}-{rec['replicas_ci'][1]}), "
                      f"${rec['usd_per_hour']:.2f}/hour", highlight=False)
    console.print(f"plan in [bold]{out_dir}/plan.json[/]; llmsim report {out_dir}",
                  highlight=False)
