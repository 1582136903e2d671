"""Write the notebooks of this folder from the cells below, and run them so that they are
committed with their outputs (a reader sees tables and plots without running anything).

    python notebooks/build_notebooks.py --execute   # after editing a cell here; commit the result
    python notebooks/build_notebooks.py             # cells only: a quick look, not to commit

Each notebook reads results through the Python API (``sim.simulate``, ``sim.planning``) and
pandas, and stays small enough for the test suite to execute it (tests/test_notebooks.py, which
also checks that the committed notebooks carry outputs and match the cells here). Outputs are
kept deterministic: no timings in the notebook's metadata, no interpreter version, and the
cells print nothing that differs between machines or runs (wall times, paths of this machine);
:func:`volatile_text` finds what would.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
FIGURE_DPI = 72          # inline PNGs: readable on GitHub, a few tens of kB each


class Md(str):
    """A Markdown cell (every other cell is code)."""

SETUP = """\
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import sim

# the repository root, whether the kernel starts in notebooks/ or at the root
ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SCENARIOS = ROOT / "scenarios\""""

NOTEBOOKS = {
    "quickstart": [
        Md("# Quickstart\n\nSimulate the built-in scenario (Llama-3.1-8B on two H100s, Poisson "
        "arrivals) through the Python API and look at the results with pandas."),
        SETUP,
        """\
scenario = sim.Scenario.from_yaml(SCENARIOS / "quickstart.yaml", ["workload.num_requests=300"])
result = sim.simulate(scenario)
s = result.summary
print(f"{s['requests_completed']}/{s['requests_total']} completed, "
      f"{s['throughput_tokens_per_s']:.0f} output tokens/s, SLO attainment {s['slo_attainment']:.1%}")""",
        Md("Latency percentiles (seconds) over completed requests:"),
        """\
pd.DataFrame({k: s[k] for k in ("ttft_s", "tpot_s", "e2e_s", "queue_s")}).T""",
        Md("One row per request, one per iteration (or fast-forwarded decode run):"),
        """\
result.requests[["arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_s"]].describe()""",
        """\
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
done = result.requests[result.requests["state"] == "completed"]
for col, label in (("ttft_s", "TTFT"), ("e2e_s", "E2E")):
    v = done[col].sort_values().to_numpy()
    a.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=label)
a.set(xscale="log", xlabel="latency (s)", ylabel="fraction of requests", title="Latency CDF")
a.legend()
for replica, it in result.iterations.groupby("replica"):
    b.step(it["start_s"], it["num_seqs"], where="post", lw=0.8, label=f"replica {replica}")
b.set(xlabel="simulated time (s)", ylabel="batch size (sequences)", title="Batch size")
b.legend();""",
    ],
    "hardware_whatif": [
        Md("# Hardware what-if\n\nThe same traffic on different devices: latency, throughput, energy "
        "and cost. Profiles live in `hardware_profiles/`; the Duplex device (xPU + Logic-PIM) is "
        "compared too when its profile is present."),
        SETUP,
        """\
devices = ["h100-sxm", "h200-sxm", "a100-80g-sxm"]
has_duplex = (ROOT / "hardware_profiles" / "duplex-h100.yaml").exists()
if has_duplex:
    devices.append("duplex-h100")
rows = []
for hw in devices:
    r = sim.simulate(sim.Scenario.from_yaml(SCENARIOS / "quickstart.yaml", [
        f"hardware={hw}", "workload.num_requests=300", "workload.arrivals.rate_rps=16"]))
    s = r.summary
    rows.append({"hardware": hw, "p90 TTFT (s)": s["ttft_s"]["p90"], "p90 TPOT (s)": s["tpot_s"]["p90"],
                 "throughput (tok/s)": s["throughput_tokens_per_s"],
                 "energy (J/token)": s["energy_j_per_output_token"], "cost ($)": s["cost_usd"]})
dense = pd.DataFrame(rows).set_index("hardware")
dense""",
        """\
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
for ax, col in zip(axes, ["p90 TPOT (s)", "throughput (tok/s)", "energy (J/token)"]):
    dense[col].plot.bar(ax=ax, rot=20, title=col)
    ax.set_ylabel(col)
    ax.set_xlabel("")""",
        Md("A mixture-of-experts model is where Duplex's Logic-PIM should help most (expert and "
        "attention layers are memory-bound at small batch):"),
        """\
if has_duplex:
    moe = []
    for hw in ["h100-sxm", "duplex-h100"]:
        s = sim.simulate(sim.Scenario.from_yaml(SCENARIOS / "quickstart.yaml", [
            f"hardware={hw}", "model=mixtral-8x7b", "cluster.tensor_parallel=2",
            "workload.num_requests=200", "workload.arrivals.rate_rps=6"])).summary
        moe.append({"hardware": hw, "p90 TPOT (s)": s["tpot_s"]["p90"],
                    "throughput (tok/s)": s["throughput_tokens_per_s"],
                    "energy (J/token)": s["energy_j_per_output_token"]})
    display(pd.DataFrame(moe).set_index("hardware"))
else:
    print("no duplex-h100 profile here: skipped")""",
    ],
    "scheduler_comparison": [
        Md("# Scheduler comparison\n\nA small KV cache under long outputs "
        "(`scenarios/memory-pressure.yaml`): how often each policy preempts, and what that "
        "costs in latency and throughput."),
        SETUP,
        """\
rows = []
for name in ["fcfs", "aggressive", "conservative", "past_future", "oracle"]:
    s = sim.simulate(sim.Scenario.from_yaml(SCENARIOS / "memory-pressure.yaml", [
        f"scheduler.name={name}", "workload.num_requests=200",
        "workload.arrivals.rate_rps=2"])).summary
    rows.append({"scheduler": name, "preemptions": s["preemptions"], "evict %": s["evict_pct"],
                 "p90 E2E (s)": s["e2e_s"]["p90"], "p90 TTFT (s)": s["ttft_s"]["p90"],
                 "throughput (tok/s)": s["throughput_tokens_per_s"],
                 "KV used (mean)": s["kv_usage_mean"], "SLO attainment": s["slo_attainment"]})
table = pd.DataFrame(rows).set_index("scheduler")
table""",
        """\
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
for ax, col in zip(axes, ["preemptions", "p90 E2E (s)", "throughput (tok/s)"]):
    table[col].plot.bar(ax=ax, rot=20, title=col)
    ax.set_ylabel(col)
    ax.set_xlabel("")""",
    ],
    "capacity_planning": [
        Md("# Capacity planning\n\nFirst by hand: latency against offered load on one replica. Then "
        "with `sim.planning`: the max sustainable rate per replica by bisection over 5 seeds, the "
        "minimum replicas for a target rate, the cost, with 95% confidence intervals, and a "
        "failure what-if (lose a replica: does N+1 hold the SLO?)."),
        SETUP,
        """\
rows = []
for rate in [10, 20, 40, 60, 80]:
    s = sim.simulate(sim.Scenario.from_yaml(SCENARIOS / "quickstart.yaml", [
        "cluster.replicas=1", "workload.num_requests=300", f"workload.arrivals.rate_rps={rate}"])).summary
    rows.append({"rate (req/s)": rate, "p90 TTFT (s)": s["ttft_s"]["p90"],
                 "p90 TPOT (s)": s["tpot_s"]["p90"], "SLO attainment": s["slo_attainment"]})
load = pd.DataFrame(rows).set_index("rate (req/s)")
ax = load[["p90 TTFT (s)", "p90 TPOT (s)"]].plot(marker="o", logy=True, figsize=(6, 3.5))
ax.set(xlabel="offered rate (requests/s)", ylabel="latency (s)", title="One H100 replica")
load""",
        Md("A plan: the same schema as `llmsim plan` (see `scenarios/plan_quickstart.yaml`), kept "
        "small here (one candidate, few requests)."),
        """\
import tempfile

import yaml

from sim.planning import load_plan, make_backend, run_plan

work = Path(tempfile.mkdtemp())
plan_file = work / "plan.yaml"
plan_file.write_text(yaml.safe_dump({
    "name": "notebook-plan",
    "scenario": str(SCENARIOS / "quickstart.yaml"),
    "traffic": {"rate_rps": 150, "requests_per_replica": 60},
    "slo": {"ttft_s": {"p90": 0.5}, "tpot_s": {"p90": 0.05},
            "attainment": {"fraction": 0.9, "ttft_s": 1.0}},
    "candidates": {"hardware": ["h100-sxm"], "scheduler": ["fcfs"], "max_replicas": 8},
    "seeds": 5,
    "search": {"min_rps": 8, "max_rps": 512, "iterations": 3},
    "what_if": {"spare_replicas": 1},
}))
backend = make_backend("local", workers=1)     # in this process: nothing to start
out = run_plan(load_plan(plan_file), work / "out", backend)
rec = out["recommendation"]
r = rec["max_rate_per_replica"]
print(f"{rec['candidate']}: {rec['replicas']} replicas (95% CI {rec['replicas_ci'][0]}-"
      f"{rec['replicas_ci'][1]}), ${rec['usd_per_hour']:.2f}/hour; max rate per replica "
      f"{r['mean']:.1f} req/s [{r['low']:.1f}, {r['high']:.1f}]")""",
        """\
pd.DataFrame({k: v for k, v in rec["metrics"].items()}).T[["mean", "low", "high"]]""",
        """\
pd.DataFrame([{"replicas": d["replicas"],
               "attainment during failure": d["slo_attainment_during_failures"]["mean"],
               "meets SLO": d["meets_slo"]} for d in rec["what_if"]["deployments"]])""",
        """\
from sim.planning import write_report

html_path, md_path, plots = write_report(work / "out")
plots""",
    ],
}


def notebook(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` from its cells here, without outputs."""
    nb = new_notebook(cells=[new_markdown_cell(c) if isinstance(c, Md) else new_code_cell(c)
                             for c in NOTEBOOKS[name]])
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"             # not random: a rebuild changes only what changed
    nb.metadata = _metadata()
    return nb


def _metadata() -> dict:
    return {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}


async def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel started in this folder; its outputs replace the
    old ones. What would change from run to run is left out: nbclient's per-cell timings and
    the kernel's version details (the metadata stays the builder's)."""
    import nbclient

    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", record_timing=False,
        resources={"metadata": {"path": str(HERE)}})
    async with client.async_setup_kernel():
        # the figures' size in pixels, before any cell draws one
        await _run_quietly(client, "import matplotlib\n"
                                   f"matplotlib.rcParams['figure.dpi'] = {FIGURE_DPI}")
        for index, cell in enumerate(client.nb.cells):
            await client.async_execute_cell(cell, index)
    nb.metadata = _metadata()
    return nb


async def _run_quietly(client, code: str) -> None:
    """Run ``code`` in the client's kernel as a cell that is not kept in the notebook."""
    cell = new_code_cell(code)
    client.nb.cells.insert(0, cell)
    try:
        await client.async_execute_cell(cell, 0, store_history=False)
    finally:
        client.nb.cells.pop(0)


_PATH = re.compile(r"(?<![\w.<])/(?:home|root|tmp|var|Users|work)/")


def volatile_text(nb: nbformat.NotebookNode) -> list[str]:
    """Text in the outputs that would differ between machines or runs: absolute paths, wall
    times, tracebacks. Empty for a notebook fit to commit."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                             if k.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                if _PATH.search(text) or tempfile.gettempdir() in text or "wall_time" in text:
                    found.append(f"cell {i}: {text.strip()[:120]}")
            if out.output_type == "error":
                found.append(f"cell {i}: {out.ename}: {out.evalue}")
    return found


def build(run: bool = False) -> list[Path]:
    """Write every notebook (with ``run``: executed, all at once, each in its own kernel)."""
    nbs = {name: notebook(name) for name in NOTEBOOKS}
    if run:
        async def run_all():
            return await asyncio.gather(*(execute(nb) for nb in nbs.values()))
        asyncio.run(run_all())
        problems = [f"{name}: {p}" for name, nb in nbs.items() for p in volatile_text(nb)]
        if problems:
            raise SystemExit("outputs not fit to commit:\n" + "\n".join(problems))
    paths = []
    for name, nb in nbs.items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", action="store_true",
                        help="run every notebook and keep its outputs (needs llmsim[notebooks])")
    for path in build(run=parser.parse_args(argv).execute):
        print(path.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
