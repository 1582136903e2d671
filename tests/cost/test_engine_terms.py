"""The vLLM engine terms: CUDA-graph sizes and padding, eager launches, CPU step overhead and
async scheduling, each on the roofline cost model and in a simulation."""

from __future__ import annotations

import pytest

from sim import Scenario, simulate
from sim.cost.engine import EngineTerms, EngineTiming, cudagraph_mode_name, default_capture_sizes
from sim.cost.factory import make_cost_model
from sim.cost.model import BatchShape, CostModel
from sim.hardware import load_device
from sim.models import get_model

LLAMA = get_model("llama-3.1-8b")
H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})


def test_default_capture_sizes_are_vllm_019s():
    sizes = default_capture_sizes(256, 2048)
    assert sizes[:5] == (1, 2, 4, 8, 16) and sizes[-3:] == (480, 496, 512)
    assert len(sizes) == 3 + 31 + 17            # 1 2 4, 8..248 by 8, 256..512 by 16
    assert default_capture_sizes(64, 8192)[-1] == 128       # 2 x max_num_seqs
    assert default_capture_sizes(256, 100)[-1] == 96        # none above the token budget


@pytest.mark.parametrize("value, name", [
    ([2, 1], "full_and_piecewise"), ([2, 0], "full_decode_only"), (1, "piecewise"),
    (0, "none"), ("FULL_AND_PIECEWISE", "full_and_piecewise"), ("bogus", None), ([7], None)])
def test_cudagraph_mode_from_a_resolved_config(value, name):
    assert cudagraph_mode_name(value) == name


def _timing(**terms) -> EngineTiming:
    return EngineTiming(EngineTerms(cuda_graph_sizes=(8, 16, 32), eager_launch_us=5.0, **terms),
                        256, 2048, eager_kernels=100, num_layers=10)


def test_padding_and_launches_by_mode():
    t = _timing()                                   # full_and_piecewise
    assert t.padded_tokens(9, decode_only=True) == (16, 0.0)          # full graph
    assert t.padded_tokens(9, decode_only=False) == (16, pytest.approx(1e-4))   # pieces, eager attention
    assert t.padded_tokens(33, decode_only=True) == (33, 5e-6 * 100)  # above the largest: eager
    assert _timing(cudagraph_mode="piecewise").padded_tokens(9, True) == (16, pytest.approx(1e-4))
    assert _timing(cudagraph_mode="full_decode_only").padded_tokens(9, False) == (9, 5e-4)
    assert _timing(cuda_graphs=False).padded_tokens(9, True) == (9, 5e-4)


def test_step_time_async_hides_cpu_sync_adds_it():
    on = _timing(step_cpu_us=300.0, request_cpu_us=10.0)
    assert on.step_s(1e-3, 0.0, 20) == 1e-3                  # 0.5 ms of CPU under 1 ms of GPU
    assert on.step_s(2e-4, 0.0, 20) == pytest.approx(5e-4)   # CPU-bound step
    off = _timing(step_cpu_us=300.0, request_cpu_us=10.0, async_scheduling=False)
    assert off.step_s(1e-3, 0.0, 20) == pytest.approx(1.5e-3)
    assert _timing(cpu_overhead=False).step_s(1e-3, 2e-3, 20) == 2e-3   # launch-bound eager pass


def test_roofline_with_engine_terms_by_hand():
    terms = EngineTerms(cuda_graph_sizes=(8, 16), step_cpu_us=800.0, request_cpu_us=15.0)
    cost = make_cost_model(LLAMA, H100, 1, terms)
    bare = CostModel(LLAMA, H100, 1)
    shape = BatchShape.decode([1000] * 10)
    gpu = bare._token_part(16, 10)[0] + bare._attention_part(shape, shape.decode_context_tokens)[0]
    # the device's fixed iteration overhead is replaced by the engine's CPU terms
    assert cost.iteration_time(shape)[0] == max(gpu, 800e-6 + 10 * 15e-6)
    assert bare.iteration_time(shape)[0] == pytest.approx(
        H100.efficiency.iteration_overhead_s + bare._token_part(10, 10)[0]
        + bare._attention_part(shape, shape.decode_context_tokens)[0])


def test_decode_run_equals_steps_with_engine_terms():
    for terms in (EngineTerms(), EngineTerms(async_scheduling=False),
                  EngineTerms(cuda_graph_sizes=(4,))):
        cost = make_cost_model(LLAMA, H100, 1, terms)
        for steps in (3, 40):                        # Python-float and numpy paths
            times, _ = cost.decode_run_energy_sum(12, 12 * 800, steps)
            stepped = [cost.iteration_time(BatchShape(12, 12, 12, 12 * 800 + 12 * i))[0]
                       for i in range(steps)]
            assert times == stepped


def _small(engine: dict) -> Scenario:
    return Scenario.from_dict({
        "model": "llama-3.1-8b", "hardware": {"name": "h100-sxm",
                                              "efficiency": {"model": "fixed"}},
        "engine": engine,
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 30}, "num_requests": 200,
                     "prompt_tokens": {"dist": "fixed", "value": 400},
                     "output_tokens": {"dist": "fixed", "value": 60}}})


def test_switching_terms_off_in_a_scenario_changes_time_as_expected():
    base = simulate(_small({})).summary["tpot_s"]["mean"]
    sync = simulate(_small({"async_scheduling": False})).summary["tpot_s"]["mean"]
    heavy = simulate(_small({"step_cpu_us": 50_000.0})).summary["tpot_s"]["mean"]
    assert sync > base                    # CPU time no longer hidden under the GPU
    assert heavy == pytest.approx(0.05, rel=0.1)     # a CPU-bound engine steps at its CPU pace


def test_bad_engine_terms_name_the_field():
    from sim.errors import ScenarioError
    with pytest.raises(ScenarioError, match="engine.cudagraph_mode"):
        _small({"cudagraph_mode": "sometimes"})
    with pytest.raises(ScenarioError, match="engine.cuda_graph_sizes"):
        _small({"cuda_graph_sizes": [0, 8]})
    with pytest.raises(ScenarioError, match="did you mean 'async_scheduling'"):
        _small({"async_schedule": True})
