"""Exact Online records -> canonical frames; OData literals and dates."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from connectors.odbc.mapping import to_canonical

_ODATA_DATE = re.compile(r"^/Date\((-?\d+)\)/$")


def plain(value: Any) -> Any:
    """Exact's JSON dates (``/Date(1700000000000)/``) as ISO 8601; the rest unchanged."""
    if isinstance(value, str):
        m = _ODATA_DATE.match(value)
        if m:
            t = dt.datetime.fromtimestamp(int(m.group(1)) / 1000, dt.UTC)
            return t.isoformat(timespec="milliseconds")
    return value


def odata_literal(value: str, number: bool) -> str:
    if number:
        if not re.fullmatch(r"-?[0-9]+", value):  # ASCII: \d takes any script's digits
            raise ValueError(f"{value!r} is not a number")
        return value
    return "'" + value.replace("'", "''") + "'"


def to_frame(
    entity: str, records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    flat = [{p: plain(r.get(p)) for p in columns.values()} for r in records]
    return to_canonical(entity, flat, columns)
