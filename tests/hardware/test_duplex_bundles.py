"""Bank bundles: what two processors streaming at once get, on different or the same bundles."""

from __future__ import annotations

import numpy as np
import pytest

from sim.hardware.bundles import BankBundles, overlap_seconds

# Duplex: two bundles of 6.7 TB/s each (Logic-PIM reads both: 13.4); the xPU's PHY caps it at 3.35
BUNDLES = BankBundles(bundles=2, bundle_bytes_per_s=6.7e12)
XPU_CAP, PIM_CAP = 3.35e12, 13.4e12


def test_different_bundles_do_not_interfere():
    xpu, pim = BUNDLES.rates([XPU_CAP, PIM_CAP], [frozenset({0}), frozenset({1})])
    assert xpu == pytest.approx(XPU_CAP)          # one bundle gives the xPU all it can take
    assert pim == pytest.approx(6.7e12)           # the PIM is left its own bundle


def test_both_on_the_same_bundle_share_it_max_min_fairly():
    # the xPU wants less than half of the bundle: it keeps its rate, the PIM gets the rest
    xpu, pim = BUNDLES.rates([XPU_CAP, PIM_CAP], [frozenset({0}), frozenset({0})])
    assert xpu == pytest.approx(XPU_CAP)
    assert pim == pytest.approx(6.7e12 - XPU_CAP)
    # two streams that each want the whole bundle get half each
    a, b = BUNDLES.rates([6.7e12, 6.7e12], [frozenset({0}), frozenset({0})])
    assert a == pytest.approx(3.35e12) and b == pytest.approx(3.35e12)


def test_interleaved_data_shares_every_bundle():
    xpu, pim = BUNDLES.rates([XPU_CAP, PIM_CAP], [frozenset({0, 1}), frozenset({0, 1})])
    assert xpu == pytest.approx(XPU_CAP)
    assert pim == pytest.approx(13.4e12 - XPU_CAP)    # 75% of the PIM's bandwidth
    alone, = BUNDLES.rates([PIM_CAP], [frozenset({0, 1})])
    assert alone == pytest.approx(PIM_CAP)


def test_rates_reject_unknown_bundles():
    with pytest.raises(ValueError):
        BUNDLES.rates([1.0], [frozenset({2})])


def test_overlap_without_contention_is_the_longer_track():
    assert overlap_seconds(2.0, 1.0, 3.0, 1.0, capacity=10.0) == pytest.approx(3.0)


def test_overlap_with_contention_by_hand():
    # each wants 8 B/s of 10: both get 5, run at 5/8 speed, finish together at 1.6 s
    assert overlap_seconds(1.0, 8.0, 1.0, 8.0, capacity=10.0) == pytest.approx(1.6)
    # a wants 2 (< half): keeps it; b gets 8 of its 10 until a ends at 1 s (b did 0.8 of 2 s of
    # work... b's 2 s alone at 0.8 speed: 0.8 s done by t=1, 1.2 s left alone -> 2.2 s)
    assert overlap_seconds(1.0, 2.0, 2.0, 20.0, capacity=10.0) == pytest.approx(2.2)


def test_overlap_is_between_the_longer_track_and_the_serial_sum():
    rng = np.random.default_rng(0)
    t_a, t_b = rng.uniform(0.1, 2, 500), rng.uniform(0.1, 2, 500)
    b_a, b_b = t_a * rng.uniform(0, 10, 500), t_b * rng.uniform(0, 10, 500)
    both = overlap_seconds(t_a, b_a, t_b, b_b, capacity=10.0)
    assert np.all(both >= np.maximum(t_a, t_b) - 1e-12)
    assert np.all(both <= t_a + t_b + 1e-12)


def test_a_pim_that_locks_the_banks_serialises():
    assert overlap_seconds(1.0, 0.0, 2.0, 0.0, 10.0, concurrent=False) == pytest.approx(3.0)
    assert overlap_seconds(0.0, 0.0, 2.0, 5.0, 10.0) == pytest.approx(2.0)
