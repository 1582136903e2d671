"""Metrics: columnar per-request and per-iteration records, summaries and SLO attainment."""

from sim.metrics.columns import ColumnBuffer
from sim.metrics.records import ITERATION_SCHEMA, REQUEST_SCHEMA, Recorder
from sim.metrics.result import Result
from sim.metrics.summary import distribution, slo_met, summarize

__all__ = ["ColumnBuffer", "Recorder", "REQUEST_SCHEMA", "ITERATION_SCHEMA", "Result",
           "distribution", "slo_met", "summarize"]
