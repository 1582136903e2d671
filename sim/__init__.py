"""llmsim: a discrete-event simulator of LLM serving clusters and their hardware.

    from sim import Scenario, simulate
    result = simulate(Scenario.from_yaml("scenarios/quickstart.yaml"))
    result.summary["ttft_s"]["p99"], result.requests.head()
"""

from sim.cluster import simulate
from sim.metrics import Result
from sim.scenario import Scenario

__all__ = ["Scenario", "simulate", "Result"]
__version__ = "0.1.0"
