"""``ledger.store.frame`` reads the driver's rows and applies SQLAlchemy's result
processors a column at a time: the frame is the one its Rows would give, value for
value and type for type, on both ledgers and for every table of the ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from flows.context import make_ctx
from ledger import schema as s
from ledger.store import frame
from tests.cycle_steps import seeded, up_to_plan
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _by_rows(conn: Any, stmt: Any) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame([tuple(r) for r in result.fetchall()], columns=list(result.keys()))


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns) or list(a.dtypes) != list(b.dtypes):
        return False
    types = all(
        type(x) is type(y) for col in a.columns for x, y in zip(a[col], b[col], strict=True)
    )
    return types and a.equals(b)


def test_frame_is_what_the_rows_give_for_every_table(
    tmp_path: Path, ledger_url: str | None
) -> None:
    ctx = make_ctx(str(seeded(tmp_path / "demo", 40, NOW.date(), ledger_url)), NOW)
    up_to_plan(ctx)  # dates, timestamps, JSON, booleans, gaps: every kind of column
    filled = 0
    with ctx.engine.connect() as conn:
        for table in s.metadata.sorted_tables:
            stmt = select(table).order_by(*table.primary_key.columns)
            got = frame(conn, stmt)
            assert _same(got, _by_rows(conn, stmt)), table.name
            filled += len(got) > 0
        assert filled >= 10  # most tables hold rows here, so most were compared with some
        # nothing found: the statement's columns, no rows
        none = frame(conn, select(s.invoices.c.invoice_id).where(s.invoices.c.invoice_id == ""))
        assert list(none.columns) == ["invoice_id"] and none.empty
        # one name twice cannot be a column each by name: read by the Rows, both kept
        twice = select(s.invoices.c.invoice_id, s.invoices.c.due_date.label("invoice_id"))
        got = frame(conn, twice.order_by(s.invoices.c.invoice_id))
        assert list(got.columns) == ["invoice_id", "invoice_id"]
        assert _same(got, _by_rows(conn, twice.order_by(s.invoices.c.invoice_id)))
        assert isinstance(got.iloc[0, 1], dt.date)
