import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sim.errors import TraceError
from sim.workload.formats.common import (COUNT, TIME, arrow_id_lists, check_columns,
                                         csv_id_lists, numeric_column)


def test_csv_id_lists_empty_and_null_fields_are_empty_rows(tmp_path):
    series = pd.Series(["1 2", None, "", "3|4", " 5 "], dtype=object)
    ids = csv_id_lists(tmp_path / "t.csv", series, "prefix_hashes", lambda r: r + 2)
    assert ids.tolist() == [(1, 2), (), (), (3, 4), (5,)]


def test_arrow_id_lists_nulls_and_slices():
    arr = pa.array([[1, 2], None, [], [3]], type=pa.list_(pa.int64()))
    assert arrow_id_lists(arr).tolist() == [(1, 2), (), (), (3,)]
    assert arrow_id_lists(arr.slice(1)).tolist() == [(), (), (3,)]
    with pytest.raises(TypeError):
        arrow_id_lists(pa.array([["a"]]))


def test_numeric_column_kinds(tmp_path):
    path = tmp_path / "t.csv"
    assert numeric_column(path, pd.Series([1.0, 2.0]), "c", COUNT, lambda r: r).dtype == np.int64
    assert numeric_column(path, pd.Series([0, 1]), "t", TIME, lambda r: r).tolist() == [0.0, 1.0]
    with pytest.raises(TraceError, match=r"line 12: column 'c': expected an integer >= 1 \(at most 1,000,000,000\), got 0"):
        numeric_column(path, pd.Series([3, 0]), "c", COUNT, lambda r: r + 11)
    with pytest.raises(TraceError, match=r"line 1: column 't': expected a number >= 0 \(seconds\), "
                                         r"got an empty value"):
        numeric_column(path, pd.Series([None, 1.0]), "t", TIME, lambda r: r + 1)


def test_check_columns_message():
    with pytest.raises(TraceError) as exc:
        check_columns("f.csv", ["a", "bb"], ["a", "b", "c"], fmt="x")
    assert str(exc.value).startswith("f.csv: missing columns 'b', 'c' for format 'x'; found: "
                                     "a, bb; expected: a, b, c; did you mean 'bb'?")
