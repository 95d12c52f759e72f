"""``json_records`` (a frame's rows as JSON-able dicts, a column at a time) gives exactly
what ``to_json_value`` on every cell of ``to_dict("records")`` gives, whatever the
columns hold: nullable and plain integers, floats with NaN, text with gaps, dates,
timestamps, booleans, mixed objects."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import json_records, to_json_value

_gap = st.sampled_from([None, np.nan, pd.NA])
_cells: dict[str, Any] = {  # one cell of a column of each kind
    "int": st.integers(-(2**40), 2**40),
    "nullable_int": st.one_of(st.integers(-(2**40), 2**40), st.none()),
    "float": st.one_of(st.floats(allow_nan=True, allow_infinity=False), st.none()),
    "text": st.one_of(st.text(max_size=8), _gap),
    "date": st.one_of(st.dates(), st.none()),
    "bool": st.booleans(),
    "mixed": st.one_of(st.integers(), st.text(max_size=4), st.dates(), st.floats(), _gap),
}


def _column(kind: str, values: list[Any]) -> pd.Series:
    if kind == "nullable_int":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "int":
        return pd.Series(np.array(values, dtype="int64"))
    if kind == "bool":
        return pd.Series(np.array(values, dtype=bool))
    return pd.Series(values, dtype=object if kind in ("text", "date", "mixed") else None)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_json_records_equals_the_cell_by_cell_conversion(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 12))
    kinds = data.draw(st.lists(st.sampled_from(sorted(_cells)), min_size=1, max_size=5))
    cols = {}
    for i, kind in enumerate(kinds):
        values = data.draw(st.lists(_cells[kind], min_size=n, max_size=n))
        cols[f"{kind}_{i}"] = _column(kind, values)
    df = pd.DataFrame(cols)
    want = [{k: to_json_value(v) for k, v in r.items()} for r in df.to_dict("records")]
    assert json_records(df) == want


def test_timestamps_and_text_dtypes() -> None:
    df = pd.DataFrame(
        {
            "at": pd.to_datetime(["2026-11-24 10:00", None]),
            "s": pd.Series(["a", None], dtype="string"),
            "d": [dt.date(2026, 11, 24), None],
        }
    )
    want = [{k: to_json_value(v) for k, v in r.items()} for r in df.to_dict("records")]
    assert json_records(df) == want


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),  # past 64 bits: json's path
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json)
def test_json_columns_are_written_losslessly(value: Any) -> None:
    """orjson writes; what it cannot (an integer past 64 bits) json writes."""
    from ledger.store import json_dumps

    assert json.loads(json_dumps(value)) == value


@given(_json)
def test_staged_payloads_read_back_what_json_records_wrote(value: Any) -> None:
    from ledger.store import json_dumps, json_loads_staged

    def fits(v: Any) -> bool:  # what a canonical frame's columns can hold
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, dict):
                return all(fits(x) for x in v.values())
            if isinstance(v, list):
                return all(fits(x) for x in v)
            return True
        return -(2**63) <= v < 2**63

    if fits(value):
        assert json_loads_staged(json_dumps(value)) == value
        assert json_loads_staged(json.dumps(value)) == value  # what staging held before
    assert json_loads_staged({"a": 1}) == {"a": 1}  # psycopg2 decoded it already


def test_staged_payloads_written_by_json_with_nan_still_read() -> None:
    from ledger.store import json_loads_staged

    got = json_loads_staged(json.dumps({"a": float("nan"), "b": 1}))
    assert got["b"] == 1 and got["a"] != got["a"]


def test_tuples_are_itertuples_read_a_column_at_a_time() -> None:
    import numpy as np
    import pandas as pd

    from ledger.records import tuples

    df = pd.DataFrame(
        {
            "a": ["x", None, "z"],
            "b": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.to_datetime(["2026-01-01", None, "2026-01-03"]),
            "d": [1.5, np.nan, 2.0],
            "e": [{"k": 1}, None, [1]],
            "not an identifier": [1, 2, 3],
        }
    )
    got, want = list(tuples(df)), list(df.itertuples(index=False))
    assert [g._fields for g in got] == [w._fields for w in want]
    for g, w in zip(got, want, strict=True):
        for x, y in zip(g, w, strict=True):
            assert (
                (pd.isna(x) and pd.isna(y))
                if not isinstance(y, (dict, list)) and pd.isna(y)
                else x == y
            )
    assert type(got[0].b) is int  # a Python int, which json and isinstance(int) take
    assert list(tuples(df[[]])) == [()] * 3


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_json_texts_are_json_dumps_of_json_records(data: st.DataObject) -> None:
    """The staging path writes each row's JSON text straight from the frame: the same
    text as ``json_dumps`` of its ``json_records`` row, gaps, dates and all."""
    from ledger.store import json_dumps, json_texts

    n = data.draw(st.integers(0, 12))
    kinds = data.draw(st.lists(st.sampled_from(sorted(_cells)), min_size=1, max_size=5))
    df = pd.DataFrame(
        {
            f"{kind}_{i}": _column(kind, data.draw(st.lists(_cells[kind], min_size=n, max_size=n)))
            for i, kind in enumerate(kinds)
        }
    )
    assert json_texts(df) == [json_dumps(r) for r in json_records(df)]
    big = pd.DataFrame({"n": pd.Series([2**70, np.int64(3), pd.NA], dtype=object)})
    assert json_texts(big) == [json_dumps(r) for r in json_records(big)]
