"""Workloads: requests from arrival generators and length distributions, or replayed from traces."""

from sim.workload.arrivals import ARRIVALS, ArrivalConfig
from sim.workload.lengths import LENGTH_DISTS, LengthConfig, sample_lengths
from sim.workload.request import Request, RequestStatus
from sim.workload.traces import TRACE_FORMATS, TraceColumns, TraceConfig, load_trace
from sim.workload.workload import Workload, WorkloadConfig, build_workload

__all__ = [
    "ARRIVALS", "ArrivalConfig", "LENGTH_DISTS", "LengthConfig", "sample_lengths",
    "Request", "RequestStatus", "TRACE_FORMATS", "TraceColumns", "TraceConfig", "load_trace",
    "Workload", "WorkloadConfig", "build_workload",
]
