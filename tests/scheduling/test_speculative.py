"""Speculative decoding: acceptance draws, verification steps, the draft's cost, end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import Scenario, simulate
from sim.cost.model import BatchShape, CostModel
from sim.cost.speculative import SpeculativeCostModel
from sim.errors import ScenarioError
from sim.hardware import load_device
from sim.models import get_model
from sim.scheduling.speculative import AcceptanceSampler, SpeculativeConfig

H100 = load_device("h100-sxm", {"efficiency": {"model": "fixed"}})


def test_accepted_drafts_follow_the_position_probabilities():
    cfg = SpeculativeConfig(num_tokens=3, acceptance=(0.9, 0.5, 0.5))
    assert cfg.expected_accepted() == pytest.approx(0.9 + 0.45 + 0.225)
    sampler = AcceptanceSampler(cfg, np.random.default_rng(0))
    draws = np.array([sampler.accepted() for _ in range(20000)])
    assert draws.min() == 0 and draws.max() == 3
    assert draws.mean() == pytest.approx(cfg.expected_accepted(), abs=0.03)
    assert (draws == 0).mean() == pytest.approx(0.1, abs=0.01)      # the first draft fails
    always = AcceptanceSampler(SpeculativeConfig(num_tokens=4, acceptance=1.0),
                               np.random.default_rng(1))
    never = AcceptanceSampler(SpeculativeConfig(num_tokens=4, acceptance=0.0),
                              np.random.default_rng(1))
    assert {always.accepted() for _ in range(50)} == {4}
    assert {never.accepted() for _ in range(50)} == {0}


def test_the_draft_cost_is_added_per_speculating_request():
    base = CostModel(get_model("llama-3.1-70b"), H100, 4)
    spec = SpeculativeCostModel.head(base, 1, 3)
    assert spec.draft.model.num_layers == 1
    # 8 requests verifying 3 drafts after 1,000 cached tokens each
    shape = BatchShape.from_requests([4] * 8, [1000] * 8, 8, speculative=8,
                                     speculative_context=8000)
    t_base, _ = base.iteration_time(shape)
    draft = sum(spec.draft.iteration_time(BatchShape(8, 8, 8, 8000 + (i + 1) * 8))[0]
                for i in range(3))
    assert spec.iteration_time(shape)[0] == pytest.approx(t_base + draft, rel=1e-12)
    # a shape without speculation costs the base alone
    plain = BatchShape.decode([1000] * 8)
    assert spec.iteration_time(plain) == base.iteration_time(plain)


def _scenario(rate: float = 0.5, **speculative) -> Scenario:
    data = {"name": "spec", "seed": 5, "model": "llama-3.1-8b", "hardware": "h100-sxm",
            "workload": {"arrivals": {"kind": "poisson", "rate_rps": rate}, "num_requests": 60,
                         "prompt_tokens": {"dist": "uniform", "min": 100, "max": 1500},
                         "output_tokens": {"dist": "uniform", "min": 1, "max": 300}},
            "simulation": {"check_invariants": True}}
    if speculative:
        data["speculative"] = speculative
    return Scenario.from_dict(data)


def test_speculation_emits_accepted_tokens_and_cuts_tpot_at_low_load():
    plain = simulate(_scenario())
    spec = simulate(_scenario(method="eagle", num_tokens=3, acceptance=0.7))
    r = spec.requests
    assert (r["state"] == "completed").all()
    assert (r["output_generated"] == r["output_tokens"]).all()      # never past the end
    assert spec.summary["speculative_tokens_per_step"] == pytest.approx(1 + 0.7 + 0.49 + 0.343,
                                                                         abs=0.15)
    assert spec.summary["tpot_s"]["p50"] < 0.6 * plain.summary["tpot_s"]["p50"]
    # fewer iterations than tokens: several tokens per step
    assert spec.summary["iterations"] < 0.7 * plain.summary["iterations"]
    again = simulate(_scenario(method="eagle", num_tokens=3, acceptance=0.7)).requests
    pd.testing.assert_frame_equal(r, again)                           # seeded


def test_a_draft_model_runs_too():
    result = simulate(_scenario(method="draft", num_tokens=2, acceptance=[0.8, 0.6],
                                draft_model="llama-2-7b"))
    assert result.summary["requests_completed"] == 60


@pytest.mark.parametrize("speculative, field", [
    ({"num_tokens": 3, "acceptance": [0.5, 0.5]}, "speculative.acceptance"),
    ({"num_tokens": 3, "acceptance": 1.5}, "speculative.acceptance"),
    ({"method": "draft", "num_tokens": 2}, "speculative.draft_model"),
    ({"num_tokens": 40}, "speculative.num_tokens"),
])
def test_bad_speculative_settings_are_named(speculative, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        _scenario(**speculative)


def test_speculation_with_expert_parallel_is_refused():
    data = _scenario(num_tokens=2).to_dict()
    data["cluster"]["expert_parallel"] = True
    with pytest.raises(ScenarioError, match="speculative.num_tokens"):
        Scenario.from_dict(data)
