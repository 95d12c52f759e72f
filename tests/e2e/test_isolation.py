"""One creditor's outage never stops another's: creditor A's ERP is unreachable, its
cycle fails before contacting anyone and says why; creditor B, in the same ledger, runs
its whole cycle right after."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.context import make_ctx
from ledger import schema as s

from .conftest import MORNING
from .test_daily_cycle import run
from .test_tenancy import _creditor

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_creditor_whose_erp_is_down_does_not_stop_the_next(tmp_path: Path) -> None:
    shared = tmp_path / "shared-ledger.sqlite"
    a = _creditor(tmp_path / "a", "down-a", 7, shared)
    b = _creditor(tmp_path / "b", "up-b", 8, shared)
    text = a.read_text()
    assert "DRIVER={SQLite3}" in text
    a.write_text(text.replace("DRIVER={SQLite3}", "DRIVER={NoSuchOdbcDriver}"))

    with pytest.raises(Exception, match="ODBC connect refused"):
        run(a.parent, MORNING)
    rb = run(b.parent, MORNING)

    assert rb["ingest"]["rows"] > 1000 and sum(r["sent"] for r in rb["send"].values()) > 0
    engine = make_ctx(str(b), MORNING).engine
    with engine.connect() as conn:
        per = dict(
            conn.execute(
                select(s.contacts.c.creditor_id, func.count()).group_by(s.contacts.c.creditor_id)
            ).all()
        )
    assert per.get("down-a", 0) == 0 and per["up-b"] > 0
    assert not list((a.parent / "outbox").glob("*/*/*.txt"))
