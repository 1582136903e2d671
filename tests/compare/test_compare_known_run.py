"""Compare on a synthetic run whose answer is known: a run written from an llmsim simulation,
replayed on the same hardware, gives back the same latencies (errors ~0)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim import simulate
from sim.compare import LATENCIES, STATS, compare_run
from sim.cost.engine import default_capture_sizes

from known_runs import HARDWARE, meta_for, source_scenario, write_run

TOLERANCE_PCT = 1e-6


def assert_no_error(cmp) -> None:
    for name in LATENCIES:
        for stat in STATS:
            assert abs(cmp.error[name][stat]) < TOLERANCE_PCT, (name, stat, cmp.error[name])
    assert abs(cmp.error["throughput_tokens_per_s"]) < TOLERANCE_PCT
    assert (cmp.table["error_pct"].abs() < TOLERANCE_PCT).all()


def test_replay_of_a_simulated_run_has_no_error(known_run):
    folder, source, _ = known_run
    cmp = compare_run(folder, HARDWARE)
    assert len(cmp.real) == len(cmp.sim) == len(source.requests)
    assert_no_error(cmp)
    # per request too, and request i of the replay is row i of the run
    expected = source.requests.sort_values("arrival_s", kind="stable")
    for name in LATENCIES:
        np.testing.assert_allclose(cmp.sim[name], expected[name], rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(cmp.real[name], expected[name], rtol=1e-9, atol=1e-12,
                                   equal_nan=True)
    np.testing.assert_allclose(cmp.throughput["real"], cmp.throughput["sim"], atol=1e-6)
    assert cmp.warnings == []


def test_engine_settings_round_trip(known_run):
    """What meta.json records becomes the scenario the run was simulated with."""
    folder, _, scenario = known_run
    replay = compare_run(folder, HARDWARE).scenario
    assert replay.scheduler == scenario.scheduler
    sched = scenario.scheduler
    sizes = default_capture_sizes(sched.max_num_seqs, sched.max_batched_tokens)
    assert replay.engine == dataclasses.replace(scenario.engine, cuda_graph_sizes=sizes)
    assert replay.cluster == scenario.cluster
    assert replay.seed == scenario.seed


def test_earlier_run_without_kv_cache_lets_llmsim_size_the_pool(tmp_path):
    """An earlier run (engine_kwargs only): vLLM defaults, and llmsim sizes the KV pool, as the
    source simulation did."""
    scenario = source_scenario(tmp_path, kv_blocks=None)
    source = simulate(scenario)
    folder = write_run(tmp_path / "early", source.requests,
                       meta_for(scenario, source.summary["kv_blocks_per_replica"], full=False))
    cmp = compare_run(folder, HARDWARE)
    assert cmp.scenario.scheduler.kv_blocks is None
    assert cmp.scenario.scheduler.block_size == 16 and cmp.scenario.scheduler.prefix_caching
    assert cmp.scenario.engine.cuda_graph_sizes is None
    assert cmp.simulation.summary["kv_blocks_per_replica"] == \
        source.summary["kv_blocks_per_replica"]
    assert_no_error(cmp)


def test_set_overrides_change_the_replay(known_run):
    folder, _, _ = known_run
    cmp = compare_run(folder, HARDWARE, overrides=["scheduler.max_num_seqs=2"])
    assert cmp.scenario.scheduler.max_num_seqs == 2
    assert cmp.error["ttft_s"]["p90"] > 1.0          # far fewer in a batch: longer queues


def test_other_hardware_shows_an_error(known_run):
    folder, _, _ = known_run
    cmp = compare_run(folder, "a100-80g-sxm")
    assert cmp.error["tpot_s"]["p50"] > 10.0          # an A100 decodes slower than an H100


@pytest.mark.parametrize("bin_s", [0.25, 2.0])
def test_throughput_bins_add_up_to_the_output_tokens(known_run, bin_s):
    folder, source, _ = known_run
    cmp = compare_run(folder, HARDWARE, bin_s=bin_s)
    total = source.requests["output_tokens"].sum()
    assert cmp.throughput["real"].sum() * bin_s == pytest.approx(total)
    assert cmp.throughput["sim"].sum() * bin_s == pytest.approx(total)
    assert np.allclose(np.diff(cmp.throughput["t_s"]), bin_s)
