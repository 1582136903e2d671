"""The arrival path skips rejection_reason below always_served_tokens: that bound must be exact
(no request under it would have been rejected) and tight enough to matter."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import Scenario
from sim.cluster.cluster import always_served_tokens, rejection_reason, resolve
from sim.workload.request import Request

CONFIGS = [
    {"name": "fcfs", "kv_blocks": 100, "block_size": 16},
    {"name": "fcfs", "kv_blocks": 5000, "block_size": 16, "max_model_len": 4096},
    {"name": "fcfs", "chunked_prefill": False, "kv_blocks": 400, "block_size": 8,
     "max_batched_tokens": 2048},
    {"name": "fcfs", "chunked_prefill": False, "kv_blocks": 400, "block_size": 16,
     "watermark": 0.2},
    {"name": "conservative", "kv_blocks": 60, "block_size": 1},
]


def deployment(cfg: dict):
    scenario = Scenario.from_dict({
        "name": "r", "model": "llama-3.1-8b", "hardware": "h100-sxm", "scheduler": cfg,
        "workload": {"arrivals": {"kind": "poisson", "rate_rps": 1.0}, "num_requests": 1,
                     "prompt_tokens": {"dist": "fixed", "value": 10},
                     "output_tokens": {"dist": "fixed", "value": 10}}})
    return scenario, resolve(scenario)


@pytest.mark.parametrize("cfg", CONFIGS)
@settings(max_examples=300, deadline=None)
@given(prompt=st.integers(1, 20000), output=st.integers(1, 5000))
def test_requests_under_the_bound_are_never_rejected(cfg, prompt, output):
    scenario, dep = deployment(cfg)
    bound = always_served_tokens(dep, scenario)
    req = Request(id=0, arrival_s=0.0, prompt_tokens=prompt, output_tokens=output)
    if prompt + output <= bound:
        assert rejection_reason(req, dep, scenario) == ""


@pytest.mark.parametrize("cfg", CONFIGS)
def test_the_bound_is_tight(cfg):
    scenario, dep = deployment(cfg)
    bound = always_served_tokens(dep, scenario)
    over = Request(id=0, arrival_s=0.0, prompt_tokens=bound, output_tokens=2)
    assert rejection_reason(over, dep, scenario) != ""    # just over it: rejected
