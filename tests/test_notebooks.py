"""The notebooks in notebooks/ execute top to bottom (nbclient), all four at once: each has its
own kernel process, so starting them together halves the wait on a two-core machine."""

import asyncio
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart", "hardware_whatif", "scheduler_comparison", "capacity_planning"]


@pytest.fixture(scope="module")
def executed() -> dict:
    """name -> the executed notebook, or the exception it raised."""
    async def run(name):
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        try:
            await client.async_execute()
        except Exception as exc:      # reported by the test of that notebook
            return exc
        return nb

    async def run_all():
        return await asyncio.gather(*(run(n) for n in NAMES))

    return dict(zip(NAMES, asyncio.run(run_all())))


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(executed, name):
    nb = executed[name]
    if isinstance(nb, Exception):
        raise nb
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("execute_result", "display_data") for o in outputs)


def test_capacity_notebook_shows_a_recommendation_with_ci(executed):
    nb = executed["capacity_planning"]
    if isinstance(nb, Exception):
        raise nb
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    assert "replicas (95% CI" in text and "max rate per replica" in text
