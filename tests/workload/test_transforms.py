import numpy as np

from sim.workload import TraceColumns
from sim.workload import transforms as tr


def cols(arrivals, prompts=None, outputs=None, hashes=None, session=None):
    n = len(arrivals)
    return TraceColumns(np.asarray(arrivals, dtype=float),
                        np.asarray(prompts or [10] * n), np.asarray(outputs or [5] * n),
                        hashes, None if session is None else np.asarray(session))


def test_out_of_order_counts_descents():
    assert tr.out_of_order(np.array([0.0, 2.0, 1.0, 3.0, 0.5])) == 2
    assert tr.out_of_order(np.array([1.0])) == 0


def test_clip_to_context_cuts_prompt_then_output_and_prefix_ids():
    c = cols([0, 1, 2, 3], prompts=[100, 5000, 4000, 10], outputs=[10, 10, 500, 4096],
             hashes=[(1,), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), (1, 2), ()])
    out, clipped = tr.clip_to_context(c, 4096, block_tokens=512)
    assert clipped == 3
    assert out.prompt_tokens.tolist() == [100, 4095, 4000, 10]
    assert out.output_tokens.tolist() == [10, 1, 96, 4086]
    # 4095 tokens need 8 ids of 512; rows already short enough keep theirs
    assert out.prefix_hashes.tolist() == [(1,), (1, 2, 3, 4, 5, 6, 7, 8), (1, 2), ()]
    assert np.all(out.prompt_tokens + out.output_tokens <= 4096)


def test_clip_nothing_to_do():
    c = cols([0], prompts=[10], outputs=[10])
    out, clipped = tr.clip_to_context(c, 100, 16)
    assert clipped == 0 and out.prompt_tokens.tolist() == [10]


def test_repeat_renumbers_sessions():
    c = cols([0.0, 2.0], session=[0, -1])
    out = tr.repeat(c, 3)
    assert out.session.tolist() == [0, -1, 1, -1, 2, -1]
    assert out.arrival_s.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_repeat_single_request_uses_one_second_gaps():
    assert tr.repeat(cols([3.0]), 3).arrival_s.tolist() == [3.0, 4.0, 5.0]


def test_scale_gaps_keeps_first_arrival():
    assert tr.scale_gaps(cols([2.0, 3.0, 5.0]), 3.0).arrival_s.tolist() == [2.0, 5.0, 11.0]
    assert tr.rate_rps(np.array([2.0, 3.0, 5.0])) == 2 / 3
