"""Reports: every listed plot in a self-contained report.html (and report.md) for a run, a sweep
and a plan; the HTML renders in headless Chromium when it is installed."""

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import LlmsimError
from sim.planning import write_report

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")
ALL_PLOTS = {"latency_cdf", "throughput_goodput_vs_rate", "slo_attainment",
             "kv_batch_over_time", "cost_per_config", "cost_latency_pareto",
             "plan_recommendation"}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures, self.images, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figures.append(a.get("id"))
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("link", "script") or (tag == "a" and a.get("href", "").startswith("http")):
            self.links.append(a)


def check_html(path: Path) -> set[str]:
    """The figure ids; and every image is an embedded PNG, nothing is fetched from outside."""
    page = _Page()
    page.feed(path.read_text())
    assert not page.links
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(page.images) == len(page.figures)
    return {f.removeprefix("plot-") for f in page.figures}


@pytest.fixture(scope="module")
def plan_report(tiny_plan, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan_report")
    return tmp, *write_report(tiny_plan[1], tmp)


def test_plan_report_has_every_plot(tiny_plan, plan_report):
    _, _, plan = tiny_plan
    tmp_path, html_path, md_path, plots = plan_report
    assert set(plots) == ALL_PLOTS and check_html(html_path) == ALL_PLOTS
    md = md_path.read_text()
    for plot in ALL_PLOTS:
        assert f"(report_files/{plot}.png)" in md
        assert (tmp_path / "report_files" / f"{plot}.png").stat().st_size > 5000
    rec = plan["recommendation"]
    assert f"Recommended: {rec['candidate']} x {rec['replicas']} replicas" in md
    assert "95% CI" in md and "attainment during failure" in md


def test_sweep_report_from_the_cli(local_sweep, tmp_path, capsys):
    assert main(["report", str(local_sweep), "-o", str(tmp_path)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert check_html(tmp_path / "report.html") == ALL_PLOTS - {"plan_recommendation"}
    assert "| run |" in (tmp_path / "report.md").read_text()


def test_sweep_report_while_the_sweep_runs(local_sweep, tmp_path):
    """Until a sweep finishes there is no results.parquet, only a file per finished run."""
    running = tmp_path / "running"
    shutil.copytree(local_sweep, running, ignore=shutil.ignore_patterns("results.parquet"))
    _, md_running, _ = write_report(running, tmp_path / "a")
    _, md_done, _ = write_report(local_sweep, tmp_path / "b")
    assert md_running.read_text() == md_done.read_text()


def test_run_report_and_trace_events(tmp_path):
    run = tmp_path / "run"
    trace = tmp_path / "trace.json"
    assert main(["run", QUICKSTART, "-o", str(run), "--set", "workload.num_requests=80",
                 "--trace-events", str(trace), "--no-progress"]) == 0
    html_path, _, plots = write_report(run)
    assert set(plots) == {"latency_cdf", "kv_batch_over_time", "slo_attainment"}
    assert check_html(html_path) == set(plots)
    assert trace.stat().st_size > 0       # its content: tests/planning/test_trace_events.py


def test_report_of_a_folder_with_nothing_to_report(tmp_path):
    with pytest.raises(LlmsimError, match="not a run, sweep or plan folder"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_plan_report_renders_in_headless_chromium(plan_report, tmp_path):
    from PIL import Image

    html_path = plan_report[1]
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1280,6000", f"--screenshot={shot}",
                    html_path.resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 6000)
    # the plots rendered: lots of colours, and the page is not blank far down
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200
    lower = image.crop((0, 3000, 1280, 4000))
    assert len(lower.getcolors(maxcolors=1 << 20) or []) > 50
