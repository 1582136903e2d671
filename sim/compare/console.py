"""The comparison as a rich table, the way ``llmsim run`` prints its summary."""

from __future__ import annotations

import math

from rich.table import Table

from sim.compare.comparison import CompareResult
from sim.compare.stats import THROUGHPUT

_LABELS = {"ttft_s": "TTFT (s)", "tpot_s": "TPOT (s)", "e2e_s": "E2E (s)",
           THROUGHPUT: "throughput (output tok/s)"}


def comparison_table(result: CompareResult) -> Table:
    """metric, stat, real, sim, error % (signed: positive means the simulation is slower/higher)."""
    run = result.run
    table = Table(title=f"{run.name}: {len(result.real)} real requests, {len(result.sim)} "
                        f"completed in simulation; {result.model} on {result.hardware}",
                  title_justify="left")
    for col in ("metric", "stat", "real", "sim", "error %"):
        table.add_column(col, justify="left" if col in ("metric", "stat") else "right")
    previous = None
    for row in result.table.itertuples(index=False):
        label = _LABELS.get(row.metric, row.metric) if row.metric != previous else ""
        digits = 1 if row.metric == THROUGHPUT else 4
        table.add_row(label, row.stat, _number(row.real, digits), _number(row.sim, digits),
                      _percent(row.error_pct), end_section=row.stat == "p99")
        previous = row.metric
    return table


def _number(value: float, digits: int) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.1f}%"
