"""Workloads: requests from arrival generators and length distributions, or replayed from traces."""

from sim.workload.arrivals import ARRIVALS, ArrivalConfig
from sim.workload.columns import IdLists, TraceColumns
from sim.workload.fit import Fit, ReplayFitConfig, fit_trace
from sim.workload.formats import TRACE_FORMATS, TraceFormat, detect_format
from sim.workload.lengths import LENGTH_DISTS, LengthConfig, sample_lengths
from sim.workload.prefixes import PrefixSharingConfig
from sim.workload.request import Request, RequestStatus
from sim.workload.sessions import SessionConfig
from sim.workload.traces import TraceConfig, TraceWarning, load_trace, read_trace
from sim.workload.workload import Workload, WorkloadConfig, build_workload

__all__ = [
    "ARRIVALS", "ArrivalConfig", "Fit", "IdLists", "LENGTH_DISTS", "LengthConfig",
    "PrefixSharingConfig", "ReplayFitConfig", "Request", "RequestStatus", "SessionConfig",
    "TRACE_FORMATS", "TraceColumns", "TraceConfig", "TraceFormat", "TraceWarning",
    "Workload", "WorkloadConfig", "build_workload", "detect_format", "fit_trace", "load_trace",
    "read_trace", "sample_lengths",
]
