"""llmsim: a discrete-event simulator of LLM serving clusters and their hardware.

    from sim import Scenario, simulate
    result = simulate(Scenario.from_yaml("scenarios/quickstart.yaml"))
    result.summary["ttft_s"]["p99"], result.requests.head()
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.cluster import simulate
    from sim.metrics import Result
    from sim.scenario import Scenario

# Names are imported on first use: `import sim.cli` (and `llmsim --help`) would otherwise load
# the whole simulator, numpy and pandas included, before parsing a single argument.
_EXPORTS = {"Scenario": "sim.scenario", "simulate": "sim.cluster", "Result": "sim.metrics"}

__all__ = ["Scenario", "simulate", "Result"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value        # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
