"""The package stands on its own: a wheel carries the hardware profiles, example scenarios and
sample traces, and runs a shipped scenario from an empty folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    # a copy of what the wheel is built from, so the build leaves no files in the checkout
    shutil.copytree(ROOT / "sim", src / "sim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(out), str(src)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("llmsim-*.whl"))


def test_wheel_carries_the_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"sim/data/hardware_profiles/{p.name}"
               for p in (ROOT / "sim" / "data" / "hardware_profiles").glob("*.yaml")}
    shipped |= {f"sim/data/scenarios/{p.name}"
                for p in (ROOT / "sim" / "data" / "scenarios").glob("*.yaml")}
    shipped |= {f"sim/data/samples/{p.name}" for p in (ROOT / "sim" / "data" / "samples").iterdir()}
    shipped.add("sim/hardware/learned_efficiency.yaml")
    assert shipped <= names, sorted(shipped - names)


def test_installed_wheel_runs_a_shipped_scenario_from_an_empty_folder(wheel, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    code = ("import sys, sim; print(sim.__file__); from sim.cli import main; "
            "sys.exit(main(['run', 'quickstart', '--set', 'workload.num_requests=50', "
            "'--no-progress', '-o', 'out']))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], cwd=empty, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0].startswith(str(site))     # the wheel's copy, not ours
    assert (empty / "out" / "summary.json").is_file()
    listed = subprocess.run([sys.executable, "-m", "sim.cli", "hardware", "--json"], cwd=empty,
                            env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "h100-sxm" in listed.stdout


def test_a_user_profile_folder_adds_and_overrides(tmp_path, monkeypatch):
    from sim.hardware import list_devices, load_device

    folder = tmp_path / "hardware_profiles"
    folder.mkdir()
    text = (ROOT / "sim" / "data" / "hardware_profiles" / "h100-sxm.yaml").read_text()
    (folder / "my-gpu.yaml").write_text(text.replace("name: h100-sxm", "name: my-gpu"))
    (folder / "h100-sxm.yaml").write_text(text.replace("usd_per_hour: 2.99",
                                                       "usd_per_hour: 1.23"))
    monkeypatch.chdir(tmp_path)
    assert "my-gpu" in list_devices() and "a100-80g-sxm" in list_devices()
    assert load_device("h100-sxm").price_usd_per_hour == 1.23       # the user's copy wins
    assert load_device("my-gpu").name == "my-gpu"


def test_importing_llmsim_leaves_matplotlibs_backend_alone(tmp_path):
    code = ("import matplotlib; matplotlib.use('svg'); "
            "import sim.planning.plots, sim.planning.report, sim.compare.plots, sim.workload.stats; "
            "from sim.workload.stats import plot_stats; from sim.workload.columns import TraceColumns; "
            "import numpy as np; "
            "plot_stats(TraceColumns(arrival_s=np.arange(5.0), prompt_tokens=np.arange(1, 6), "
            f"output_tokens=np.arange(1, 6)), r'{tmp_path / 'stats.png'}'); "
            "print(matplotlib.get_backend())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "svg" and (tmp_path / "stats.png").is_file()
