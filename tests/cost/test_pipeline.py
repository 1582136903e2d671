"""Pipeline parallelism: micro-batches, bubbles, stage sends, memory per device, end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.cost.model import BatchShape, CostModel
from sim.cost.op_table import batch_shape
from sim.cost.pipeline import PipelineCostModel
from sim.errors import CapacityError, ScenarioError
from sim.hardware import load_device
from sim.memory import kv_bytes_per_token_per_device
from sim.memory.capacity import kv_cache_blocks, weight_bytes_per_device
from sim.models import get_model

L70, L8 = get_model("llama-3.1-70b"), get_model("llama-3.1-8b")
H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})
LINK, LAT = 360e9, 1e-6


def pipeline(model=L70, tp=4, stages=2) -> PipelineCostModel:
    return PipelineCostModel(CostModel(model, H100, tp), stages, LINK, LAT)


def send(tokens: int, model=L70) -> float:
    return LAT + tokens * model.hidden_size * 2 / LINK


def test_one_sequence_leaves_all_but_one_stage_idle():
    pp = pipeline(stages=4)
    shape = BatchShape.decode([3000])
    base_s, _ = pp.base.iteration_time(shape)
    period, _ = pp.iteration_time(shape)
    assert period == pytest.approx(base_s + 3 * send(1), rel=1e-12)    # all stages in turn
    assert pp.stage_utilisation(shape) == pytest.approx(base_s / (4 * period), rel=1e-12)


def test_equal_micro_batches_keep_every_stage_busy():
    pp = pipeline(stages=2)
    shape = BatchShape.decode([2000] * 64)
    (micro, count), = pp.micro_batches(shape)
    assert count == 2 and micro.num_decode == 32 and micro.decode_context_tokens == 32 * 2001
    base_s, _ = pp.base.iteration_time(micro)
    period, _ = pp.iteration_time(shape)
    assert period == pytest.approx(base_s + send(32), rel=1e-12)
    assert pp.stage_utilisation(shape) == pytest.approx(2 * base_s / (2 * period), rel=1e-12)


def test_a_prefill_chunk_is_not_split_between_micro_batches():
    pp = pipeline(stages=2)
    shape = batch_shape(31, 2000, prefill_tokens=4000)     # 31 decodes + one 4000-token chunk
    parts = {(m.num_decode, m.num_prefill, m.prefill_tokens): n for m, n in pp.micro_batches(shape)}
    assert parts == {(16, 0, 0): 1, (15, 1, 4000): 1}
    # the chunk's micro-batch sets the period; the other stage waits: a bubble
    assert pp.stage_utilisation(shape) < 0.75


def test_uneven_stages_wait_for_the_largest():
    pp = pipeline(model=L8, tp=1, stages=3)                 # 32 layers: 11 + 11 + 10
    shape = BatchShape.decode([1000] * 3)
    (micro, count), = pp.micro_batches(shape)
    base_s, _ = pp.base.iteration_time(micro)
    period, _ = pp.iteration_time(shape)
    assert period == pytest.approx(base_s * 33 / 32 + 2 * send(1, L8), rel=1e-12)


def test_energy_is_dynamic_of_every_micro_batch_plus_static_of_every_device():
    pp = pipeline(stages=2)
    shape = BatchShape.decode([2000] * 8)
    (micro, count), = pp.micro_batches(shape)
    t, j = pp.base.iteration_time(micro)
    dynamic = j - H100.idle_w * 4 * t
    period, energy = pp.iteration_time(shape)
    assert energy == pytest.approx(2 * dynamic + H100.idle_w * 8 * period, rel=1e-12)


def test_memory_per_device_by_hand():
    # 70B: 80 layers, 8 KV heads of 128: a TP4 x PP2 device holds 40 layers, 2 KV heads
    assert kv_bytes_per_token_per_device(L70, 4, 2) == 2 * 40 * 2 * 128 * 2
    assert weight_bytes_per_device(L70, 4, pp=2) == pytest.approx(L70.weight_bytes / 8)
    assert weight_bytes_per_device(L8, 1, pp=3) == pytest.approx(L8.weight_bytes * 11 / 32)
    # more stages: the weights shrink per device, so more KV tokens fit
    pp2 = kv_cache_blocks(L70, H100, 4, 16, 0.9, 1e9, pp=2)
    tp4 = kv_cache_blocks(L70, H100, 4, 16, 0.9, 1e9)
    assert pp2 > tp4


def test_does_not_fit_names_the_layouts_that_would():
    with pytest.raises(CapacityError, match=r"cluster\.tensor_parallel: 4 or "
                                            r"cluster\.pipeline_parallel: 4"):
        kv_cache_blocks(L70, H100, 1, 16, 0.9, 1e9)


def _scenario(**cluster) -> Scenario:
    return Scenario.from_dict({
        "name": "pp", "seed": 1, "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "cluster": cluster,
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 12.0}, "num_requests": 150,
                     "prompt_tokens": {"dist": "uniform", "min": 100, "max": 3000},
                     "output_tokens": {"dist": "uniform", "min": 1, "max": 300}},
        "simulation": {"check_invariants": True, **cluster.pop("simulation", {})}})


def test_fast_forward_equals_stepping_with_pipeline_stages():
    fast = simulate(_scenario(tensor_parallel=1, pipeline_parallel=2)).requests
    step = simulate(_scenario(tensor_parallel=1, pipeline_parallel=2,
                              simulation={"fast_forward": False})).requests
    pd.testing.assert_frame_equal(fast, step)
    assert (fast["state"] == "completed").all()


def test_a_pipelined_replica_counts_its_devices_and_reports_its_bubble():
    s = simulate(_scenario(tensor_parallel=2, pipeline_parallel=2, replicas=2)).summary
    assert s["devices"] == 8
    assert 0 < s["pipeline_bubble_fraction"] < 1


def test_more_stages_than_layers_is_an_error():
    with pytest.raises(ScenarioError, match="cluster.pipeline_parallel"):
        simulate(_scenario(pipeline_parallel=64))
