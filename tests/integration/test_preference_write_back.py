"""A debtor's preferred payment day goes back into the creditor's ERP (ODBC, the demo's
SQLite ERP through the real driver), once, and never over a record changed meanwhile."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy import insert

from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from transforms.contact_window import AMS
from transforms.validation import Validator

DEBTORS = (
    "      debtors: >-\n"
    "        UPDATE relaties SET voorkeursdag = :preferred_day, kanaal = :channel\n"
    "        WHERE relatienr = :record_id AND gewijzigd_op = :expected_version\n"
)


def test_preferred_day_is_written_back_once(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 40, dt.date(2026, 11, 24))
    assert DEBTORS in cfg.read_text()  # the demo ERP takes preferences back
    erp = tmp_path / "demo" / "erp.sqlite"
    ctx = make_ctx(str(cfg), dt.datetime(2026, 11, 24, 10, tzinfo=AMS))
    for entity in stages.ENTITIES:
        stages.ingest_entity(ctx, "erp", entity)
    stages.validate_staged(ctx, Validator())
    with ctx.engine.begin() as conn:
        for debtor, day in (("R0000002", 26), ("R0000005", 3)):
            conn.execute(
                insert(s.preferences).values(
                    creditor_id=ctx.creditor_id,
                    debtor_id=debtor,
                    preferred_day=day,
                    channel="sms",
                    source="portal",
                    updated_at=utcnow(),
                )
            )
    with sqlite3.connect(erp) as c:  # someone edits R0000005 in the ERP meanwhile
        c.execute(
            "UPDATE relaties SET gewijzigd_op = '2026-11-24T09:00:00' WHERE relatienr = 'R0000005'"
        )
    out = stages.write_back(ctx)
    assert out["planned_preferences"] == 2 and out["applied"] == 1 and out["conflict"] == 1
    with sqlite3.connect(erp) as c:
        got = dict(
            c.execute("SELECT relatienr, voorkeursdag FROM relaties WHERE voorkeursdag IS NOT NULL")
        )
    assert got == {"R0000002": 26}
    # the next cycle reads R0000005's newer version, and the conflicted change goes through
    stages.ingest_entity(ctx, "erp", "debtors")
    stages.validate_staged(ctx, Validator())
    again = stages.write_back(ctx)
    assert (
        again["planned_preferences"] == 0
        and again["retried_conflicts"] == 1
        and again["applied"] == 1
    )
    with sqlite3.connect(erp) as c:
        assert c.execute(
            "SELECT voorkeursdag FROM relaties WHERE relatienr = 'R0000005'"
        ).fetchone() == (3,)
    assert stages.write_back(ctx)["applied"] == 0


def test_a_record_without_an_id_keeps_its_reasons_in_quarantine(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 30, dt.date(2026, 11, 24))
    with sqlite3.connect(tmp_path / "demo" / "erp.sqlite") as c:
        c.execute(
            "INSERT INTO relaties (relatienr, naam, email, gewijzigd_op) VALUES (NULL, 'Zonder Nummer', 'z@x.nl', '2026-11-23T07:00:00')"
        )
    ctx = make_ctx(str(cfg), dt.datetime(2026, 11, 24, 10, tzinfo=AMS))
    stages.ingest_entity(ctx, "erp", "debtors")
    stages.validate_staged(ctx, Validator())
    from sqlalchemy import select

    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(s.quarantine.c.record_id, s.quarantine.c.failures).where(
                s.quarantine.c.record_id.like("<row%")
            )
        ).all()
    assert len(rows) == 1
    assert "debtor.id_present" in {f["rule"] for f in rows[0].failures}
