import numpy as np
import pytest

from sim.config import ConfigValueError
from sim.workload import ArrivalConfig, ARRIVALS, LengthConfig, SessionConfig
from sim.workload.sessions import chunk_ids, generate_sessions


def test_chunk_ids_share_full_chunks_only():
    # one session, prompts of 20, 40 and 48 tokens in 16-token chunks
    ids = chunk_ids(np.array([0, 0, 0]), np.array([20, 40, 48]), 16).tolist()
    assert ids[0][0] == ids[1][0] == ids[2][0]               # chunk 0 is full everywhere
    assert ids[0][1] != ids[1][1]                            # partial in turn 1, full in turn 2
    assert ids[1][1] == ids[2][1]
    assert ids[1][2] != ids[2][2]                            # partial in turn 2 only
    assert [len(r) for r in ids] == [2, 3, 3]


def test_chunk_ids_sessions_are_disjoint():
    ids = chunk_ids(np.array([0, 1, 0]), np.array([32, 32, 32]), 16).tolist()
    assert ids[0] == ids[2] and not set(ids[0]) & set(ids[1])


def generate(n=40, think=2.0, seed=0):
    cfg = SessionConfig(turns=LengthConfig("uniform", min=1, max=5), think_time_s=think,
                        prefix_block_tokens=16)
    arrivals = ArrivalConfig("poisson", rate_rps=1.0)
    return generate_sessions(cfg, n, lambda k: ARRIVALS["poisson"](arrivals, k,
                                                                   np.random.default_rng(9)),
                             LengthConfig("uniform", min=5, max=50),
                             LengthConfig("uniform", min=1, max=40),
                             np.random.default_rng(seed))


def test_each_turn_contains_the_previous_prompt_and_answer():
    out = generate()
    s, p, o, a = out["session"], out["prompt_tokens"], out["output_tokens"], out["arrival_s"]
    assert len(s) == 40
    same = s[1:] == s[:-1]
    assert same.any()
    # next prompt = previous prompt + previous answer + a new message of 5..50 tokens
    grow = p[1:][same] - p[:-1][same] - o[:-1][same]
    assert grow.min() >= 5 and grow.max() <= 50
    assert np.all(a[1:][same] >= a[:-1][same])              # turns arrive in order
    ids = out["prefix_hashes"]
    for i in np.flatnonzero(same):                           # previous full chunks are shared
        full = p[i] // 16
        assert ids[i + 1][:full] == ids[i][:full]


def test_turns_add_up_and_last_session_is_cut():
    out = generate(n=7)
    assert len(out["session"]) == 7 and out["session"][0] == 0


def test_think_time_zero_sends_turns_together():
    out = generate(think=0.0)
    s, a = out["session"], out["arrival_s"]
    same = s[1:] == s[:-1]
    assert np.all(a[1:][same] == a[:-1][same])


def test_mean_think_gap():
    out = generate(n=4000, think=3.0)
    s, a = out["session"], out["arrival_s"]
    same = s[1:] == s[:-1]
    assert np.diff(a)[same].mean() == pytest.approx(3.0, rel=0.1)


def test_invalid():
    with pytest.raises(ConfigValueError) as exc:
        SessionConfig(turns=LengthConfig("fixed", value=2), think_time_s=-1.0)
    assert exc.value.field == "think_time_s"
