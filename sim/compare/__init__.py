"""Real serving runs against their simulation (``llmsim compare``).

    from sim.compare import compare_run
    cmp = compare_run("runs/RTX4090__Llama-3.1-8B", "rtx-4090", out="out/cmp")
    cmp.table            # metric, stat, real, sim, error_pct
    cmp.real, cmp.sim    # per-request ttft_s, tpot_s, e2e_s, ...
    cmp.to_json()        # what compare.json holds

A run is a vLLM run folder (meta.json + requests.jsonl) or the result JSON of ``vllm bench
serve``; its engine settings become the scenario, its requests a generic trace. Like planning, this
layer runs simulations and reads their results; nothing below imports it.
"""

from sim.compare.comparison import CompareResult, compare_run
from sim.compare.runs import REQUEST_COLUMNS, RealRun, RunWarning, load_run
from sim.compare.stats import LATENCIES, STATS

__all__ = ["CompareResult", "compare_run", "RealRun", "RunWarning", "load_run",
           "REQUEST_COLUMNS", "LATENCIES", "STATS"]
