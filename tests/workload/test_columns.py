import numpy as np
import pytest

from sim.workload import IdLists, TraceColumns

ROWS = [(1, 2, 3), (), (4,), (5, 6)]


def test_from_lists_and_access():
    ids = IdLists.from_lists(ROWS)
    assert len(ids) == 4 and ids.offsets.tolist() == [0, 3, 3, 4, 6]
    assert ids[0] == (1, 2, 3) and ids[1] == () and ids[3] == (5, 6)
    assert ids.tolist() == ROWS and ids.rows(1, 3) == [(), (4,)]
    assert ids.lengths.tolist() == [3, 0, 1, 2]
    assert type(ids[2][0]) is int       # Python ints for the KV cache's hashing


def test_none_rows_are_empty():
    assert IdLists.from_lists([None, [7]]).tolist() == [(), (7,)]


def test_take_gathers_rows_in_any_order_with_repeats():
    ids = IdLists.from_lists(ROWS)
    assert ids.take(np.array([3, 0, 3, 1])).tolist() == [(5, 6), (1, 2, 3), (5, 6), ()]
    assert ids.take(np.array([], dtype=int)).tolist() == []


def test_truncate_keeps_prefixes():
    ids = IdLists.from_lists(ROWS)
    assert ids.truncate(np.array([2, 5, 0, 9])).tolist() == [(1, 2), (), (), (5, 6)]
    assert ids.truncate(np.array([9, 9, 9, 9])) is ids


def test_concat_and_equality():
    a, b = IdLists.from_lists(ROWS[:2]), IdLists.from_lists(ROWS[2:])
    assert IdLists.concat([a, b]) == IdLists.from_lists(ROWS)
    assert IdLists.concat([a, b]) != a


def test_invalid_offsets():
    with pytest.raises(ValueError):
        IdLists(np.array([0, 5]), np.array([1, 2]))


def test_trace_columns_take_keeps_rows_together():
    cols = TraceColumns(np.array([0.0, 1.0, 2.0]), np.array([10, 20, 30]), np.array([1, 2, 3]),
                        [(1,), (2,), (3,)], np.array([5, -1, 5]))
    t = cols.take(np.array([2, 0]))
    assert t.arrival_s.tolist() == [2.0, 0.0] and t.prompt_tokens.tolist() == [30, 10]
    assert t.prefix_hashes.tolist() == [(3,), (1,)] and t.session.tolist() == [5, 5]
