"""``llmsim report DIR``: ``report.html`` (self-contained, plots embedded) and ``report.md``.

DIR is what ``run``, ``sweep`` or ``plan`` wrote; the kind is told by its files (``plan.json``,
``results.parquet`` or ``results/``, ``summary.json``). A report is a list of sections (text, a
table, a figure); each figure gets a stable id, ``<figure id="plot-ID">`` in the HTML and
``report_files/ID.png`` next to the Markdown:

| id | run | sweep | plan |
|---|---|---|---|
| ``latency_cdf`` | the run | kept runs | the recommended configuration |
| ``throughput_goodput_vs_rate`` | | swept rate | the rate probes |
| ``slo_attainment`` | over time | vs rate | vs rate, and during failures |
| ``kv_batch_over_time`` | the run | kept runs | the recommended configuration |
| ``cost_per_config`` | | each configuration (CI over seeds) | each candidate |
| ``cost_latency_pareto`` | | configurations | candidates |
| ``plan_recommendation`` | | | rate per replica and replicas, with CIs |
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.errors import LlmsimError, ResultError
from sim.config import read_mapping
from sim.metrics.records import read_requests
from sim.metrics.result import prepare_output_dir, read_parquet
from sim.planning import plots
from sim.planning.plan import PLAN_JSON, RECOMMENDED_DIR
from sim.planning.stats import mean_ci
from sim.planning.store import has_results, read_results
from sim.planning.sweep import META, RESULTS

FILES_DIR = "report_files"


@dataclass
class Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    plot_id: str | None = None
    figure: object = None      # a matplotlib Figure


def detect_kind(directory: Path) -> str:
    if (directory / PLAN_JSON).is_file():
        return "plan"
    if has_results(directory / RESULTS):      # results/ alone: a sweep still running
        return "sweep"
    if (directory / "summary.json").is_file():
        return "run"
    raise LlmsimError(f"{directory}: not a run, sweep or plan folder (no {PLAN_JSON}, "
                      f"{RESULTS} or summary.json)")


def write_report(directory: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path,
                                                                                       list[str]]:
    """Write report.html and report.md; returns their paths and the ids of the plots."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LlmsimError(f"{directory}: no such folder")
    out = prepare_output_dir(Path(out_dir) if out_dir else directory)
    kind = detect_kind(directory)
    title, sections = BUILDERS[kind](directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / FILES_DIR).mkdir(exist_ok=True)
    images = {}
    for s in sections:
        if s.figure is not None:
            buf = io.BytesIO()
            s.figure.savefig(buf, format="png", dpi=110)
            images[s.plot_id] = buf.getvalue()
            (out / FILES_DIR / f"{s.plot_id}.png").write_bytes(images[s.plot_id])
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(_html(title, kind, sections, images))
    md_path.write_text(_markdown(title, sections))
    return html_path, md_path, list(images)


# -- run ---------------------------------------------------------------------------------------
def _run_sections(d: Path) -> tuple[str, list[Section]]:
    from sim.metrics.summary import slo_met
    from sim.scenario import Scenario

    summary = read_mapping(d / "summary.json", ResultError)
    requests = read_requests(d / "requests.parquet")
    iterations = read_parquet(d / "iterations.parquet")
    echo = d / "scenario.yaml"
    scenario = read_mapping(echo, ResultError) if echo.is_file() else {}
    name = scenario.get("name", d.name)
    slo = Scenario.from_dict(scenario).slo if scenario else None
    sections = [Section("Summary", _run_facts(summary), _latency_table(summary))]
    sections += _run_plots({name: requests}, {name: iterations},
                           {name: summary.get("kv_blocks_per_replica", 1)})
    sections.append(Section("SLO attainment over time",
                            f"Overall: {_pct(summary.get('slo_attainment'))} of requests met "
                            f"their SLO ({_slo_text(scenario.get('slo', {}))}).",
                            plot_id="slo_attainment",
                            figure=plots.attainment_over_time(requests,
                                                              met=slo_met(requests, slo))))
    return f"Run: {name}", sections


def _run_plots(requests: dict, iterations: dict, kv_blocks: dict) -> list[Section]:
    return [Section("Latency CDFs", plot_id="latency_cdf", figure=plots.latency_cdf(requests)),
            Section("KV cache usage and batch size over time", plot_id="kv_batch_over_time",
                    figure=plots.over_time(iterations, kv_blocks))]


def _run_facts(s: dict) -> str:
    return (f"{s['requests_completed']}/{s['requests_total']} requests completed, "
            f"{s['requests_rejected']} rejected, {s.get('requests_running', 0)} running at the "
            f"end; "
            f"throughput {s['throughput_tokens_per_s']:.1f} output tokens/s, goodput "
            f"{s['goodput_requests_per_s']:.3f} requests/s, SLO attainment "
            f"{_pct(s['slo_attainment'])}; {s['preemptions']} preemptions; simulated "
            f"{s['simulated_duration_s']:.1f} s; cost ${s['cost_usd']:.4f}, energy "
            f"{s['energy_j'] / 3.6e6:.4f} kWh.")


def _latency_table(s: dict) -> pd.DataFrame:
    rows = {name: s[key] for key, name in (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"),
                                            ("e2e_s", "E2E (s)"), ("queue_s", "queue (s)"))}
    return pd.DataFrame(rows).T[["mean", "p50", "p90", "p99"]]


# -- sweep -------------------------------------------------------------------------------------
def _sweep_sections(d: Path) -> tuple[str, list[Section]]:
    frame = read_results(d / RESULTS)         # a sweep may still be adding to it
    meta = read_mapping(d / META, ResultError) if (d / META).is_file() else {}
    params = [p for p in meta.get("params", []) if p in frame.columns]
    rate = next((p for p in params if p.endswith("rate_rps")), None)
    config_params = [p for p in params if p not in (rate, "seed")]
    short = _short_names(params)
    frame["config"] = frame.apply(
        lambda r: ", ".join(f"{short[p]}={r[p]}" for p in config_params) or "base", axis=1)
    frame["label"] = frame.apply(lambda r: ", ".join(f"{short[p]}={r[p]}" for p in params)
                                 or str(r["run"]), axis=1)
    shown = ["run", *params, "requests_completed", "ttft_s.p90", "tpot_s.p90", "e2e_s.p90",
             "throughput_tokens_per_s", "goodput_requests_per_s", "slo_attainment",
             "usd_per_million_output_tokens"]
    sections = [Section("Results", f"{len(frame)} of {meta.get('runs', len(frame))} runs "
                        f"finished; swept: {', '.join(params) or 'nothing'}.",
                        frame[[c for c in shown if c in frame.columns]])]
    group = "config" if config_params else None
    if rate is not None:
        sections.append(Section("Throughput and goodput vs rate", plot_id="throughput_goodput_"
                                "vs_rate", figure=plots.throughput_goodput_vs_rate(
                                    frame, rate, group)))
        sections.append(Section("SLO attainment vs rate", plot_id="slo_attainment",
                                figure=plots.attainment_vs_rate(frame, rate, group)))
    else:
        sections.append(Section("SLO attainment", plot_id="slo_attainment",
                                figure=plots.bars_with_ci(
                                    list(frame["label"]),
                                    [mean_ci([v]).to_dict() for v in frame["slo_attainment"]],
                                    "SLO attainment (fraction)", "SLO attainment per run")))
    keys = [p for p in params if p != "seed"]
    by = frame.groupby(keys, sort=False) if keys else [("base", frame)]
    labels, hourly, per_m, points = [], [], [], []
    for name, g in by:
        values = name if isinstance(name, tuple) else (name,)
        label = ", ".join(f"{short[k]}={v}" for k, v in zip(keys, values)) if keys else "base"
        labels.append(label)
        hourly.append(mean_ci(g["usd_per_hour"]).to_dict())
        per_m.append(mean_ci(g["usd_per_million_output_tokens"]).to_dict())
        points.append({"label": label, "p90": g["e2e_s.p90"].mean(),
                       "usd": g["usd_per_million_output_tokens"].mean()})
    sections.append(Section("Cost per configuration", "Mean and 95% CI over seeds (where "
                            "seeds were swept).", plot_id="cost_per_config",
                            figure=plots.cost_per_config(labels, hourly, per_m)))
    sections.append(Section("Cost vs p90 latency", plot_id="cost_latency_pareto",
                            figure=plots.pareto_front(pd.DataFrame(points), "p90", "usd", "label",
                                                      "p90 E2E latency (s)",
                                                      "$ per million output tokens")))
    kept = [(r["label"], d / "runs" / r["key"]) for _, r in frame.iterrows()
            if (d / "runs" / r["key"] / "requests.parquet").is_file()][:plots.MAX_LINES]
    if kept:
        sections += _run_plots(
            {lab: read_requests(p / "requests.parquet") for lab, p in kept},
            {lab: read_parquet(p / "iterations.parquet") for lab, p in kept},
            {lab: read_mapping(p / "summary.json", ResultError).get("kv_blocks_per_replica", 1)
             for lab, p in kept})
    return f"Sweep: {meta.get('name', d.name)}", sections


def _short_names(params: list[str]) -> dict[str, str]:
    """``scheduler.max_num_seqs`` -> ``max_num_seqs`` for legends, unless two params would
    share a short name."""
    last = [p.rsplit(".", 1)[-1] for p in params]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(params, last)}


# -- plan --------------------------------------------------------------------------------------
def _plan_sections(d: Path) -> tuple[str, list[Section]]:
    plan = read_mapping(d / PLAN_JSON, ResultError)
    missing = [k for k in ("name", "candidates") if k not in plan]
    if missing:
        raise ResultError(f"{d / PLAN_JSON}: no '{missing[0]}': not a plan llmsim wrote")
    rec = plan.get("recommendation")
    cands = plan["candidates"]
    ok = [c for c in cands if c["feasible"]]
    best = rec["candidate"] if rec else None
    sections = [Section("Recommendation", _recommendation_text(plan), _candidates_table(cands))]
    with_rate = [c for c in cands if "max_rate_per_replica" in c]
    if with_rate:
        sections.append(Section("Plan: rate per replica and replicas", plot_id="plan_"
                                "recommendation", figure=plots.plan_recommendation(
                                    [c["candidate"] for c in with_rate],
                                    [c["max_rate_per_replica"] for c in with_rate],
                                    [_replicas_est(c) for c in with_rate], best)))
    if ok:
        sections.append(Section("Cost per configuration", "At the target traffic, with the "
                                "minimum replicas; the $/hour CI is the replicas' CI.",
                                plot_id="cost_per_config", figure=plots.cost_per_config(
                                    [c["candidate"] for c in ok],
                                    [{"mean": c["usd_per_hour"], "low": c["usd_per_hour_ci"][0],
                                      "high": c["usd_per_hour_ci"][1]} for c in ok],
                                    [c["usd_per_million_output_tokens"] for c in ok], best)))
        pts = pd.DataFrame([{"label": c["candidate"], "usd": c["usd_per_hour"],
                             "p90": c["metrics"].get("e2e_s.p90", {}).get("mean")} for c in ok])
        sections.append(Section("Cost vs p90 latency", plot_id="cost_latency_pareto",
                                figure=plots.pareto_front(pts, "p90", "usd", "label",
                                                          "p90 E2E latency at the target (s)",
                                                          "cost ($/hour)")))
    probes = d / "probes.parquet"
    if has_results(probes):
        frame = read_results(probes)
        target = (plan["slo"].get("attainment") or {}).get("fraction")
        sections.append(Section("Throughput and goodput vs rate (one replica)",
                                "The bisection's probes: one replica at each rate tried.",
                                plot_id="throughput_goodput_vs_rate",
                                figure=plots.throughput_goodput_vs_rate(frame, "rate_rps",
                                                                        "candidate")))
        sections.append(Section("SLO attainment vs rate (one replica)", _what_if_text(rec),
                                _what_if_table(rec), plot_id="slo_attainment",
                                figure=plots.attainment_vs_rate(frame, "rate_rps", "candidate",
                                                                target)))
    run = d / RECOMMENDED_DIR
    if (run / "requests.parquet").is_file():
        label = f"{best} x{rec['replicas']}"
        summary = read_mapping(run / "summary.json", ResultError)
        sections += _run_plots({label: read_requests(run / "requests.parquet")},
                               {label: read_parquet(run / "iterations.parquet")},
                               {label: summary.get("kv_blocks_per_replica", 1)})
    return f"Plan: {plan['name']}", sections


def _replicas_est(c: dict) -> dict:
    if not c.get("feasible"):
        return {"mean": math.nan, "low": math.nan, "high": math.nan}
    return {"mean": c.get("replicas_mean", c["replicas"]), "low": c["replicas_ci"][0],
            "high": c["replicas_ci"][1]}


def _recommendation_text(plan: dict) -> str:
    rec, t = plan.get("recommendation"), plan["traffic"]
    head = (f"Target: {t['rate_rps']:g} requests/s; SLO: {_slo_text(plan['slo'])}; "
            f"{len(plan['seeds'])} seeds (95% CIs).")
    if not rec:
        return head + " No candidate meets the SLO."
    r, m = rec["max_rate_per_replica"], rec["usd_per_million_output_tokens"]
    return (f"{head} **Recommended: {rec['candidate']} x {rec['replicas']} replicas** "
            f"(every seed meets the SLO there; each seed's own minimum: mean "
            f"{rec['replicas_mean']:.2f}, 95% CI {rec['replicas_ci'][0]}-{rec['replicas_ci'][1]}), "
            f"${rec['usd_per_hour']:.2f}/hour (CI {rec['usd_per_hour_ci'][0]:.2f}-"
            f"{rec['usd_per_hour_ci'][1]:.2f}), ${m['mean']:.3f} per million output tokens "
            f"(CI {m['low']:.3f}-{m['high']:.3f}); max sustainable rate per replica "
            f"{r['mean']:.2f} requests/s (CI {r['low']:.2f}-{r['high']:.2f}).")


def _candidates_table(cands: list[dict]) -> pd.DataFrame:
    rows = []
    for c in cands:
        r = c.get("max_rate_per_replica")
        m = c.get("metrics", {})
        rows.append({
            "rank": c.get("rank", "-"), "candidate": c["candidate"],
            "max rate/replica (req/s)": _ci(r) if r else "-",
            "replicas": f"{c['replicas']} [{c['replicas_ci'][0]}, {c['replicas_ci'][1]}]"
            if c["feasible"] else "-",
            "$/hour": f"{c['usd_per_hour']:.2f}" if c["feasible"] else "-",
            "$/M output tokens": _ci(c["usd_per_million_output_tokens"]) if c["feasible"] else "-",
            "p90 TTFT (s)": _ci(m["ttft_s.p90"]) if "ttft_s.p90" in m else "-",
            "p90 E2E (s)": _ci(m["e2e_s.p90"]) if "e2e_s.p90" in m else "-",
            "note": c.get("reason") or ("rate capped at search.max_rps"
                                        if r and r.get("capped") else "")})
    return pd.DataFrame(rows)


def _what_if_text(rec: dict | None) -> str:
    if not rec or "what_if" not in rec:
        return ""
    h = rec["headroom"]
    return (f"Failure what-if for the recommendation: N+{h['spare_replicas']} = "
            f"{h['replicas']} replicas have {h['capacity_over_target']:.0%} capacity over the "
            "target; the table gives the SLO attainment of requests arriving during the failure.")


def _what_if_table(rec: dict | None) -> pd.DataFrame | None:
    if not rec or "what_if" not in rec:
        return None
    rows = [{"replicas": w["replicas"],
             "failures": "; ".join(f"{f['kind']} replica {f['replica']} at {f['at_s']} s for "
                                   f"{f.get('duration_s', 'ever')} s" for f in w["failures"]),
             "attainment during failure": _ci(w["slo_attainment_during_failures"], pct=True),
             "attainment overall": _ci(w["slo_attainment"], pct=True),
             "re-routed requests": _ci(w["requests_rerouted"]),
             "meets SLO": "yes" if w["meets_slo"] else "no"}
            for w in rec["what_if"]["deployments"]]
    return pd.DataFrame(rows)


# -- formatting --------------------------------------------------------------------------------
def _ci(e: dict, pct: bool = False) -> str:
    if e.get("mean") is None or (isinstance(e.get("mean"), float) and math.isnan(e["mean"])):
        return "-"
    f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.3g}")
    return f"{f(e['mean'])} [{f(e['low'])}, {f(e['high'])}]"


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _slo_text(slo: dict) -> str:
    """``{ttft_s: {p90: 0.5}, attainment: {...}}`` or a scenario's ``{ttft_s: 2.0}`` as words."""
    def name(key: str) -> str:
        return key.removesuffix("_s").upper()

    parts = []
    for key, value in slo.items():
        if key == "attainment" and isinstance(value, dict):
            within = ", ".join(f"{name(k)} <= {v} s" for k, v in value.items()
                               if k != "fraction" and v is not None)
            parts.append(f">= {value['fraction']:.0%} of requests within {within}")
        elif isinstance(value, dict) and key != "classes":
            parts += [f"{q} {name(key)} <= {v} s" for q, v in value.items()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{name(key)} <= {value} s")
    return "; ".join(parts) or "none"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ccc;
padding:.25em .5em;text-align:right}th{background:#f3f3f3}figure{margin:1em 0}
img{max-width:100%;border:1px solid #eee}figcaption{color:#666;font-size:.85em}"""


def _html(title: str, kind: str, sections: list[Section], images: dict) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
             f"{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>llmsim {kind} report.</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            text = html.escape(s.text)
            while "**" in text:          # the one bit of Markdown the texts use
                text = text.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
            parts.append(f"<p>{text}</p>")
        if s.table is not None:
            parts.append(s.table.to_html(index=s.table.index.dtype == object, border=0,
                                         float_format=lambda v: f"{v:.4g}", na_rep="-"))
        if s.plot_id in images:
            data = base64.b64encode(images[s.plot_id]).decode()
            parts.append(f"<figure id='plot-{s.plot_id}'><img alt='{html.escape(s.title)}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{html.escape(s.title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.text:
            lines += [s.text, ""]
        if s.table is not None:
            lines += [_md_table(s.table), ""]
        if s.figure is not None:
            lines += [f"![{s.title}]({FILES_DIR}/{s.plot_id}.png)", ""]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame) -> str:
    index = df.index.dtype == object
    cols = ([""] if index else []) + [str(c) for c in df.columns]

    def cell(v) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    rows = [([str(i)] if index else []) + [cell(v) for v in row]
            for i, row in zip(df.index, df.itertuples(index=False))]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


BUILDERS = {"run": _run_sections, "sweep": _sweep_sections, "plan": _plan_sections}
