"""Salesforce records -> canonical frames, and the cursor's SOQL literal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from connectors.odbc.mapping import to_canonical

EPOCH = "1970-01-01T00:00:00Z"


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """A field or a relationship path (``Account.Name``) of a query record (nested in
    REST answers, a flat ``Account.Name`` column in Bulk CSV)."""
    if path in record:
        return record[path]
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def soql_datetime(value: str) -> str:
    """A SystemModstamp as SOQL wants a datetime literal: UTC, whole seconds, ``Z``."""
    if value == EPOCH:
        return value
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_frame(
    entity: str, records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    flat = [{f: field_value(r, f) for f in columns.values()} for r in records]
    return to_canonical(entity, flat, columns)
