"""Planning: sweeps on a local pool or Ray, SLO-constrained capacity plans, reports and plots.

    from sim.planning import load_sweep, run_sweep, load_plan, run_plan, make_backend
    backend = make_backend("local", workers=4)
    run_sweep(load_sweep("scenarios/sweep_quickstart.yaml", "out"), "out", backend)

The layer on top of everything else: it runs scenarios (``sim.simulate``) and reads their
results; nothing below imports it. Names are imported on first use, so that a worker process or
``llmsim run`` does not pay for matplotlib.
"""

from importlib import import_module

_EXPORTS = {
    "BACKENDS": "backends", "make_backend": "backends",
    "load_sweep": "sweep", "run_sweep": "sweep", "results_without_volatile": "sweep",
    "load_plan": "plan", "run_plan": "plan",
    "write_report": "report",
    "RunTask": "runs", "execute": "runs", "run_key": "runs",
    "Estimate": "stats", "mean_ci": "stats",
    "ResultsStore": "store", "read_results": "store",
    "chrome_trace": "trace_events", "write_trace_events": "trace_events",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sim.planning' has no attribute {name!r}")
    return getattr(import_module(f"sim.planning.{_EXPORTS[name]}"), name)
