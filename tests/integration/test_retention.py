"""Retention: after content_days the rendered messages, statement files and provider
event details are gone, resolved quarantine rows lose their values; the contact rows
(exactly-once) and the audit log stay; a day with an unsettled message is kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import insert, select, update

from flows import stages
from flows.context import make_ctx
from flows.demo import sftp_server
from flows.retention import purge
from ledger import schema as s
from ledger.store import utcnow
from tests.cycle_steps import seeded, up_to_plan
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def test_content_goes_after_the_retention_period_and_the_ledger_stays(
    tmp_path: Path, ledger_url: str | None
) -> None:
    cfg = seeded(tmp_path / "demo", 120, NOW.date(), ledger_url)
    demo = cfg.parent
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    with sftp_server(demo) as srv:
        stages.fetch_statements(ctx, "bank", srv.port)
    for ch in ctx.cfg.channels:
        stages.send_channel(ctx, ch)
    files = list((demo / "outbox").glob("*/*/*.txt"))
    assert files
    with ctx.engine.begin() as conn:
        mid = conn.execute(select(s.contacts.c.message_id).limit(1)).scalar()
        conn.execute(
            insert(s.contact_events).values(
                creditor_id=ctx.creditor_id,
                message_id=mid,
                event="bounced",
                provider_event_id="ev-1",
                occurred_at=utcnow(),
                detail={"email": "iemand@example.nl", "reason": "mailbox full"},
            )
        )
        conn.execute(
            update(s.quarantine)
            .where(s.quarantine.c.entity == "invoices")
            .values(status="discarded", resolved_at=utcnow())
        )
        contacts = conn.execute(select(s.contacts.c.message_id)).scalars().all()

    # ten days on: nothing of that is old enough
    assert purge(make_ctx(str(cfg), NOW + dt.timedelta(days=10)))["message_files"] == 0
    assert all(f.exists() for f in files)

    # a message whose fate is unknown keeps its day's files until it is settled
    with ctx.engine.begin() as conn:
        conn.execute(
            update(s.contacts).where(s.contacts.c.message_id == mid).values(status="ambiguous")
        )
    later = make_ctx(str(cfg), NOW + dt.timedelta(days=200))
    held = purge(later)
    assert held["message_files"] == 0 and all(f.exists() for f in files)
    assert held["statement_files"] >= 1 and held["event_details"] >= 1
    assert held["quarantine_rows"] >= 1
    with ctx.engine.begin() as conn:
        conn.execute(update(s.contacts).where(s.contacts.c.message_id == mid).values(status="sent"))
    out = purge(later)
    assert out["message_files"] == len(files) and not any(f.exists() for f in files)
    assert not list((demo / "var" / ctx.creditor_id / "statements").glob("*.xml"))
    with ctx.engine.connect() as conn:
        details = conn.execute(select(s.contact_events.c.detail)).scalars().all()
        q = conn.execute(
            select(s.quarantine.c.payload, s.quarantine.c.failures).where(
                s.quarantine.c.status == "discarded"
            )
        ).first()
        still = conn.execute(select(s.contacts.c.message_id)).scalars().all()
        audited = (
            conn.execute(
                select(s.audit_log.c.action).where(s.audit_log.c.action == "retention.purged")
            )
            .scalars()
            .all()
        )
    assert details and all(d == {} for d in details) and q is not None and q[0] == {}
    assert all("value" not in f for f in q[1]) and all("rule" in f for f in q[1])
    assert sorted(still) == sorted(contacts)  # exactly-once needs the contact rows
    assert len(audited) == 3
