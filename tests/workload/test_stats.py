import numpy as np
import pytest

from sim.workload import TraceColumns
from sim.workload.stats import plot_stats, prefix_sharing_ratio, seen_blocks, trace_stats
from sim.workload.columns import IdLists


def test_seen_blocks_follow_the_chain_not_the_id():
    # row 1 repeats row 0's first id; row 2 has id 2 at position 1 but after a different first id
    ids = IdLists.from_lists([(1, 2, 3), (1, 9), (7, 2), (1, 2, 3, 4)])
    # seen: row 1 pos 0; row 3 pos 0, 1, 2
    assert seen_blocks(ids) == 4


def test_prefix_sharing_ratio_counts_all_prompt_blocks():
    cols = TraceColumns(np.array([0.0, 1.0]), np.array([64, 64]), np.array([1, 1]),
                        [(1, 2), (1, 2)])
    # 16-token blocks: 4 per prompt, 8 in all; ids cover 2 of each; row 1's 2 are seen
    assert prefix_sharing_ratio(cols, 16) == 2 / 8
    assert prefix_sharing_ratio(cols, 32) == 2 / 4
    # ids past the end of the prompt are not blocks of it
    short = TraceColumns(np.array([0.0, 1.0]), np.array([32, 16]), np.array([1, 1]),
                         [(1, 2), (1, 2)])
    assert prefix_sharing_ratio(short, 16) == 1 / 3


def test_stats_numbers():
    arrivals = np.concatenate([np.linspace(0, 59, 30), np.linspace(60, 119, 90)])
    prompts = np.arange(1, 121)
    cols = TraceColumns(arrivals, prompts, np.full(120, 7))
    s = trace_stats(cols)
    assert s["requests"] == 120 and s["duration_s"] == 119.0
    assert s["peak_rate_per_min"] == 90
    assert s["mean_rate_per_min"] == pytest.approx(120 / 119 * 60)
    assert s["prompt_tokens"]["p50"] == 60.5 and s["prompt_tokens"]["max"] == 120
    assert s["output_tokens"]["mean"] == 7.0
    assert s["prefix_sharing_ratio"] == 0.0 and not s["has_prefix_hashes"]


def test_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    cols = TraceColumns(np.sort(rng.uniform(0, 600, 500)), rng.integers(1, 20000, 500),
                        rng.integers(1, 500, 500))
    plot_stats(cols, tmp_path / "p.png", title="t")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_timestamps_no_rates():
    cols = TraceColumns(np.zeros(3), np.array([1, 2, 3]), np.array([1, 1, 1]),
                        has_timestamps=False)
    s = trace_stats(cols)
    assert s["requests"] == 3
    assert s["duration_s"] is None and s["mean_rate_per_min"] is None
    assert s["peak_rate_per_min"] is None
