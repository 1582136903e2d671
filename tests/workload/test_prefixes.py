import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.workload import LengthConfig, PrefixSharingConfig
from sim.workload.prefixes import generate_prefix_groups


def cfg(**kw):
    base = dict(groups=3, share_degree=4, prefix_tokens=40,
                suffix_tokens=LengthConfig("uniform", min=1, max=30), prefix_block_tokens=16)
    return PrefixSharingConfig(**{**base, **kw})


def test_groups_times_share_degree_with_shared_prefix_ids():
    group, prompts, ids = generate_prefix_groups(cfg(), 12, np.random.default_rng(0))
    assert np.bincount(group).tolist() == [4, 4, 4]
    assert np.all((prompts > 40) & (prompts <= 70))
    rows = ids.tolist()
    for g in range(3):
        members = {rows[i] for i in np.flatnonzero(group == g)}
        assert len(members) == 1 and len(next(iter(members))) == 40 // 16
    assert len(set(rows)) == 3                       # groups never share ids


def test_sets_repeat_with_new_prefixes_and_random_order():
    group, _, ids = generate_prefix_groups(cfg(), 30, np.random.default_rng(1))
    assert sorted(set(group[:12].tolist())) == [0, 1, 2]
    assert sorted(set(group[12:24].tolist())) == [3, 4, 5]
    assert group[24:].tolist() != sorted(group[24:].tolist()) or len(set(group[24:])) == 1
    assert not set(ids.tolist()[:12]) & set(ids.tolist()[12:24])


def test_prefix_shorter_than_a_block_has_no_ids():
    _, _, ids = generate_prefix_groups(cfg(prefix_tokens=10), 12, np.random.default_rng(0))
    assert ids.tolist() == [()] * 12


@pytest.mark.parametrize("field", ["groups", "share_degree", "prefix_tokens",
                                   "prefix_block_tokens"])
def test_invalid(field):
    with pytest.raises(ConfigValueError) as exc:
        cfg(**{field: 0})
    assert exc.value.field == field


def test_simulated_group_members_hit_the_shared_prefix():
    import sim
    data = {"name": "p", "seed": 0, "model": "llama-3.1-8b", "hardware": "h100-sxm",
            "cluster": {"replicas": 1},
            "workload": {"arrivals": {"kind": "constant", "rate_rps": 1.0},
                         "prefix_sharing": {"groups": 3, "share_degree": 4, "prefix_tokens": 520,
                                            "suffix_tokens": {"dist": "uniform", "min": 1,
                                                              "max": 200}},
                         "output_tokens": {"dist": "fixed", "value": 4}}}
    r = sim.simulate(sim.Scenario.from_dict(data)).requests
    # one request per second, each done long before the next: every member but the first of
    # its group finds the 32 full blocks (512 tokens) of the shared prefix in the cache
    cached = r.cached_prompt_tokens.to_numpy()
    assert sorted(cached.tolist()) == [0] * 3 + [512] * 9
    off = sim.simulate(sim.Scenario.from_dict({**data, "scheduler": {"prefix_caching": False}}))
    assert off.requests.cached_prompt_tokens.sum() == 0
