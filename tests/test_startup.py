"""Starting llmsim stays light: importing the CLI, building its parser and a plain run load none
of the large libraries that only some commands use (each is imported where it is used).

Each check runs in a fresh interpreter, since this one has imported everything already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Needed by no command until it prints, plots, reads a trace, validates a scenario or calibrates.
NOT_ON_IMPORT = ("matplotlib", "rich", "pyarrow", "scipy", "torch", "ray", "pydantic")
# Needed by no plain run: a run validates its scenario (pydantic) and writes Parquet (pyarrow);
# with --json it prints nothing through rich.
NOT_IN_A_RUN = ("matplotlib", "rich", "scipy", "torch", "ray")


def loaded(code: str) -> set[str]:
    """The top-level packages loaded once ``code`` has run in a fresh interpreter (whatever it
    prints comes before them)."""
    code += "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return set(run.stdout.splitlines()[-1].split())


def test_importing_the_cli_loads_no_large_library():
    found = loaded("import sim.cli") & set(NOT_ON_IMPORT)
    assert not found, f"`import sim.cli` loads {sorted(found)}"


def test_the_parser_loads_no_large_library():
    """`llmsim --help` builds the whole parser (trace formats and sweep backends included)."""
    found = loaded("import sim.cli\nsim.cli._parser()") & set(NOT_ON_IMPORT)
    assert not found, f"building the CLI's parser loads {sorted(found)}"


def test_a_plain_run_loads_no_plotting_or_optional_library(tmp_path):
    found = loaded("from sim.cli import main\n"
                   f"assert main(['run', 'quickstart', '-o', {str(tmp_path)!r}, '--json', "
                   "'--no-progress', '--set', 'workload.num_requests=50']) == 0") \
        & set(NOT_IN_A_RUN)
    assert not found, f"`llmsim run --json` loads {sorted(found)}"
