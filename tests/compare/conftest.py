"""The known run every comparison test can start from (see known_runs.py)."""

import pytest

from sim import simulate

from known_runs import meta_for, source_scenario, write_run


@pytest.fixture
def known_run(tmp_path):
    """(run folder, the simulation it was written from, its scenario)."""
    scenario = source_scenario(tmp_path)
    result = simulate(scenario)
    assert (result.requests["state"] == "completed").all()
    folder = write_run(tmp_path / "run", result.requests,
                       meta_for(scenario, result.summary["kv_blocks_per_replica"]))
    return folder, result, scenario
