"""Exactly-once contact: the send step crashes at random points, many times, and is run
again each time. Every planned message must reach the channel once: none twice, none lost.

The stages run without Prefect here (they are plain functions); the ERP is read through
the SQLite ODBC driver and the statement over the loopback SFTP server.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connectors.outbox import OutboxChannel, OutboxSettings
from flows import debt_help, stages
from flows.context import make_ctx
from flows.demo import seed, sftp_server
from ledger import schema as s
from ledger.records import OutboundMessage, Receipt
from ledger.store import utcnow
from tests.cycle_steps import planned_ids
from transforms.contact_window import AMS
from transforms.validation import Validator

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


class Crash(RuntimeError):
    pass


class CrashingOutbox(OutboxChannel):
    """The real outbox channel, dying after it delivered ``after`` messages of a batch
    (the provider accepted them; the ledger never heard back)."""

    def __init__(self, settings: OutboxSettings, after: int | None) -> None:
        super().__init__("email", settings)
        self.after = after

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        if self.after is None:
            return super().send(batch)
        super().send(batch[: self.after])
        raise Crash(f"killed after {self.after} of {len(batch)}")


@pytest.fixture
def planned(tmp_path: Path):
    cfg = seed(tmp_path / "demo", 300, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    for entity in stages.ENTITIES:
        stages.ingest_entity(ctx, "erp", entity)
    stages.validate_staged(ctx, Validator())
    debt_help.exchange_messages(ctx)
    with sftp_server(tmp_path / "demo") as srv:
        stages.fetch_statements(ctx, "bank", srv.port)
    stages.match_new_payments(ctx)
    for p in range(4):
        stages.assess_partition(ctx, p, 4)
        stages.plan_partition(ctx, p, 4)
    return ctx


def test_send_survives_random_crashes_exactly_once(planned) -> None:
    ctx = planned
    due = planned_ids(ctx, "email")
    assert len(due) > 20
    settings = OutboxSettings(dir=str(ctx.cfg.path("outbox")))
    rng = random.Random(20261124)
    kills = 0
    for _ in range(40):
        try:
            stages.send_channel(
                ctx, "email", batch_size=7, channel=CrashingOutbox(settings, rng.randint(0, 6))
            )
        except Crash:
            kills += 1
    stages.send_channel(ctx, "email", batch_size=7, channel=CrashingOutbox(settings, None))
    delivered = Counter(
        json.loads(f.read_text().split("\n", 1)[0])["message_id"]
        for f in (ctx.cfg.path("outbox") / "email").glob("*/*.txt")
    )
    assert kills >= 5
    assert set(delivered) == due  # none lost
    assert max(delivered.values()) == 1  # none twice
    with ctx.engine.connect() as conn:
        statuses = Counter(
            conn.execute(
                select(s.contacts.c.status).where(s.contacts.c.channel == "email")
            ).scalars()
        )
    assert statuses == {"sent": len(due)}


def test_write_back_resumes_after_a_crash_and_reapplies_only_absolute_values(planned) -> None:
    ctx = planned
    from tests.fakes.ports import MemoryWriter

    with ctx.engine.connect() as conn:
        wbs = conn.execute(
            select(s.write_backs.c.record_id, s.write_backs.c.expected_version)
        ).all()
    assert wbs
    writer = MemoryWriter(dict(wbs))

    class Dying(MemoryWriter):
        def write(self, changes):  # applies, then dies before the ledger commits
            writer.write(changes)
            raise Crash("killed")

    with pytest.raises(Crash):
        stages.write_back(ctx, batch_size=5, writer=Dying({}))
    out = stages.write_back(ctx, batch_size=5, writer=writer)
    assert out["applied"] == len(wbs)
    assert out["resumed"] == 5  # the batch that died between its write and its results
    assert stages.write_back(ctx, writer=writer) == {
        "applied": 0,
        "conflict": 0,
        "failed": 0,
        "planned_preferences": 0,
        "retried_conflicts": 0,
        "resumed": 0,
    }
    assert set(writer.applied) == {r for r, _ in wbs}


def test_a_send_we_never_heard_back_from_waits_before_it_goes_again(planned) -> None:
    """A provider may accept a request after our client gave up, and its lookup may lag
    (SendGrid's Email Activity): a message whose fate is unknown is looked up, and sent
    again only when the provider still does not know it ``ambiguous_settle_seconds``
    (600 by default) after the attempt."""
    ctx = planned
    settings = OutboxSettings(dir=str(ctx.cfg.path("outbox")))

    class Lagging(CrashingOutbox):
        lookup_lags = True

        def lookup(self, message_ids):  # the provider's feed has not caught up
            return {}

    with pytest.raises(Crash):
        stages.send_channel(ctx, "email", batch_size=7, channel=Lagging(settings, 0))
    c = s.contacts
    with ctx.engine.connect() as conn:
        unknown = set(conn.execute(select(c.c.message_id).where(c.c.status == "sending")).scalars())
    assert len(unknown) == 7

    out = stages.send_channel(ctx, "email", batch_size=7, channel=Lagging(settings, None))
    assert out["unsettled"] == 7 and out["sent"] > 0  # the rest of the day's mail went
    with ctx.engine.connect() as conn:
        waiting = set(
            conn.execute(select(c.c.message_id).where(c.c.status == "ambiguous")).scalars()
        )
    assert waiting == unknown
    sent_files = {f.stem for f in (ctx.cfg.path("outbox") / "email").glob("*/*.txt")}
    assert not (sent_files & unknown)  # not sent again while the provider may have it

    with ctx.engine.begin() as conn:  # ten minutes and a bit later
        conn.execute(
            update(c)
            .where(c.c.status == "ambiguous")
            .values(updated_at=utcnow() - dt.timedelta(seconds=601))
        )
    out = stages.send_channel(ctx, "email", batch_size=7, channel=Lagging(settings, None))
    assert out["unsettled"] == 0 and out["resolved_ambiguous"] == 7
    sent_files = {f.stem for f in (ctx.cfg.path("outbox") / "email").glob("*/*.txt")}
    assert unknown <= sent_files


def test_each_receipt_of_a_batch_is_recorded_as_the_channel_gave_it(planned) -> None:
    """A batch's receipts, recorded at once: sent with the provider's id and time, a
    retriable failure planned again (and sent on a later batch), a refused one failed,
    each with its error and its event."""
    ctx = planned
    settings = OutboxSettings(dir=str(ctx.cfg.path("outbox")))
    due = sorted(planned_ids(ctx, "email"))
    assert len(due) >= 6
    retry_once, refuse = set(due[1:3]), set(due[3:5])

    class Picky(OutboxChannel):
        def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
            out: list[Receipt] = []
            for m in batch:
                if m.message_id in retry_once:
                    retry_once.discard(m.message_id)
                    out.append(
                        Receipt(m.message_id, "failed", error="429 slow down", retriable=True)
                    )
                elif m.message_id in refuse:
                    out.append(Receipt(m.message_id, "failed", error="bad address"))
                else:
                    out.extend(super().send([m]))
            return out

    out = stages.send_channel(ctx, "email", batch_size=4, channel=Picky("email", settings))
    assert (out["sent"], out["failed"]) == (len(due) - 2, 2)
    c, ev = s.contacts, s.contact_events
    with ctx.engine.connect() as conn:
        rows = {
            r.message_id: r
            for r in conn.execute(
                select(
                    c.c.message_id, c.c.status, c.c.provider_id, c.c.sent_at, c.c.last_error
                ).where(c.c.message_id.in_(due))
            )
        }
        events = Counter(
            (r.message_id, r.event)
            for r in conn.execute(
                select(ev.c.message_id, ev.c.event).where(ev.c.message_id.in_(due))
            )
        )
    for mid in due:
        r = rows[mid]
        if mid in refuse:
            assert (r.status, r.last_error, r.sent_at) == ("failed", "bad address", None)
            assert events[(mid, "failed")] == 1 and events[(mid, "sent")] == 0
        else:
            assert r.status == "sent" and r.provider_id and r.sent_at is not None
            assert events[(mid, "sent")] == 1
    for mid in due[1:3]:  # failed once, planned again, then sent (its error kept)
        assert rows[mid].last_error == "429 slow down" and events[(mid, "failed")] == 1
