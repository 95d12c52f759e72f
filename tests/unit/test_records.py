"""``json_records`` (a frame's rows as JSON-able dicts, a column at a time) gives exactly
what ``to_json_value`` on every cell of ``to_dict("records")`` gives, whatever the
columns hold: nullable and plain integers, floats with NaN, text with gaps, dates,
timestamps, booleans, mixed objects."""

from __future__ import annotations

import datetime as dt
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
