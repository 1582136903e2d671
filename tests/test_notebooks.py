"""The notebooks in notebooks/ are committed with their outputs (``python
notebooks/build_notebooks.py --execute``). Here they execute top to bottom again (nbclient), all
four at once: each has its own kernel process, so starting them together halves the wait on a
two-core machine. The committed files must be what the builder writes: its cells, and the
outputs that running them gives (a table stays a table, a plot a PNG), with nothing in them
that differs between machines."""

import asyncio
import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart", "hardware_whatif", "scheduler_comparison", "capacity_planning"]
REBUILD = "run python notebooks/build_notebooks.py --execute and commit the notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _builder()


def committed(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def executed() -> dict:
    """name -> the committed notebook executed again, or the exception it raised."""
    async def run(name):
        try:
            return await build.execute(committed(name))
        except Exception as exc:      # reported by the tests of that notebook
            return exc

    async def run_all():
        return await asyncio.gather(*(run(n) for n in NAMES))

    return dict(zip(NAMES, asyncio.run(run_all())))


def ran(executed: dict, name: str):
    nb = executed[name]
    if isinstance(nb, Exception):
        raise nb
    return nb


def shape(cell) -> list[tuple]:
    """What a code cell shows, without the values: output kinds and their formats. Not stderr:
    a warning that newer libraries print is no reason to rebuild the notebooks."""
    return [(o.output_type, o.get("name"), sorted(o.get("data", {}))) for o in cell.outputs
            if o.get("name") != "stderr"]


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    assert sorted(build.NOTEBOOKS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(executed, name):
    nb = ran(executed, name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("execute_result", "display_data") for o in outputs)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_carries_its_outputs(executed, name):
    nb = committed(name)
    cells = [(c.cell_type, c.source) for c in nb.cells]
    assert cells == [(c.cell_type, c.source) for c in build.notebook(name).cells], REBUILD
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), REBUILD
    assert any(c.outputs for c in code), REBUILD
    assert not build.volatile_text(nb)
    fresh = [c for c in ran(executed, name).cells if c.cell_type == "code"]
    assert [shape(c) for c in code] == [shape(c) for c in fresh], REBUILD


def test_capacity_notebook_shows_a_recommendation_with_ci(executed):
    nb = ran(executed, "capacity_planning")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    assert "replicas (95% CI" in text and "max rate per replica" in text
