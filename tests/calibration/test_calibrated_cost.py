"""CostModel on a calibrated device: tables first, exact fast path, simulation end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sim.cost.predictor import CalibrationWarning
from sim.cost.model import BatchShape, CostModel
from sim.hardware import load_device
from sim.models import CATALOG

from synthetic_calibration import LLAMA, TOKENS


@pytest.fixture
def device(synthetic_profile):
    return load_device(str(synthetic_profile))


def test_token_ops_take_the_measured_times(device):
    cost = CostModel(LLAMA, device, 1)
    gemm = device.calibration.tables.gemm
    for T in (1, 64, 4096):
        qkv = next(op for op in cost.token_ops(T, 1) if op.name == "qkv_proj")
        assert qkv.shape == (T, 4096, 6144)
        measured = gemm[(gemm.m == T) & (gemm.k == 4096) & (gemm.n == 6144)].time_s.item()
        assert cost._op_seconds(qkv, T) == measured
    # every token op of Llama-3.1-8B TP1 is measured: no fallback warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        for T in TOKENS:
            cost.iteration(BatchShape.from_requests([T], [0], 1))


def test_calibrated_times_differ_from_the_roofline_in_the_law_s_direction(device):
    # the synthetic law is slower than the datasheet roofline (60% vs 70% compute, 70% vs 85%
    # memory, 5 us vs 2 us per kernel), so every calibrated iteration takes longer
    plain = CostModel(LLAMA, load_device("a100-80g-sxm"), 1)
    cal = CostModel(LLAMA, device, 1)
    for shape in (BatchShape.decode([512] * 8), BatchShape.from_requests([2048], [0], 1)):
        assert cal.iteration_time(shape)[0] > plain.iteration_time(shape)[0]


def test_decode_run_is_bit_identical_to_stepping(device):
    cost = CostModel(LLAMA, device, 1)
    assert cost._decode_rates != cost.rates      # attention is on its fitted curve
    contexts = [700, 1500, 33, 4000]
    times, energies = cost.decode_run(len(contexts), sum(contexts) + len(contexts), 50)
    for step in range(50):
        shape = BatchShape.decode([c + step for c in contexts])
        t, e = cost.iteration_time(shape)
        assert times[step] == t and energies[step] == e


def test_mixed_batch_breakdown_matches_iteration_time(device):
    cost = CostModel(LLAMA, device, 1)
    shape = BatchShape.from_requests([300, 1, 1], [0, 900, 50], 3)
    it = cost.iteration(shape)
    assert sum(it.breakdown_s.values()) == pytest.approx(it.time_s, rel=1e-12)


def test_other_dtype_keeps_the_roofline_with_a_warning(device):
    fp32 = replace(LLAMA, dtype_bytes=4)
    with pytest.warns(CalibrationWarning, match="4-byte elements"):
        cost = CostModel(fp32, device, 1)
    plain = CostModel(fp32, load_device("a100-80g-sxm"), 1)
    shape = BatchShape.decode([100, 200])
    assert cost.iteration_time(shape) == plain.iteration_time(shape)


def test_moe_model_runs_on_fallbacks(device):
    cost = CostModel(CATALOG["mixtral-8x7b"], device, 2)
    with pytest.warns(CalibrationWarning):
        t, _ = cost.iteration_time(BatchShape.decode([256] * 16))
    assert np.isfinite(t) and t > 0


@pytest.mark.filterwarnings("ignore::sim.cost.predictor.CalibrationWarning")
def test_simulation_fast_forward_equals_stepping(synthetic_profile):
    from sim import Scenario, simulate

    frames = []
    for ff in ("true", "false"):
        sc = Scenario.from_yaml("scenarios/quickstart.yaml", [
            f"hardware={synthetic_profile}", "workload.num_requests=150",
            f"simulation.fast_forward={ff}", "cluster.replicas=1"])
        frames.append(simulate(sc).requests)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["finish_s"].notna().all()
