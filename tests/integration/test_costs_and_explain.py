"""The law in the ledger: statutory costs are booked only after a valid 14-day letter's
term has passed unanswered, once, never during a hold or for a debtor who can't pay;
and `vangnet explain` tells one debtor's story from the same ledger and planner."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from sqlalchemy import insert, select, update
from typer.testing import CliRunner

from flows import stages
from flows.cli import app
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from tests.cycle_steps import assess_all, ingest_and_validate
from transforms.contact_window import AMS
from transforms.wik import collection_costs_cents, wik_deadline

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    assess_all(ctx)
    return cfg, ctx


def _letter(ctx, debtor: str, dossier: str, sent: dt.date, cents: int) -> str:  # type: ignore[no-untyped-def]
    mid = str(uuid.uuid4())
    at = dt.datetime.combine(sent, dt.time(10), AMS)
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(s.contacts).values(
                creditor_id=ctx.creditor_id,
                debtor_id=debtor,
                dossier=dossier,
                step="wik_letter",
                channel="letter",
                message_id=mid,
                status="sent",
                segment="wont_pay",
                send_after=at,
                cycle_date=sent,
                amount_cents=1,
                costs_cents=cents,
                invoice_ids=[dossier],
                reasons=[],
                sent_at=at,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return mid


def _open_items(ctx, n: int):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        held = set(conn.execute(select(s.holds.c.debtor_id)).scalars())
        rows = conn.execute(
            select(s.invoices.c.debtor_id, s.invoices.c.invoice_id, s.invoices.c.open_cents)
            .where(s.invoices.c.open_cents > 0, s.invoices.c.costs_cents == 0)
            .order_by(s.invoices.c.invoice_id)
        ).all()
    seen, out = set(), []
    for r in rows:
        if r.debtor_id not in held and r.debtor_id not in seen:
            seen.add(r.debtor_id)
            out.append(r)
    return out[:n]


def test_costs_are_booked_once_after_the_term_and_never_early_or_held(tmp_path: Path) -> None:
    cfg, ctx = _ctx(tmp_path)
    due, early, held, cant, paid = _open_items(ctx, 5)
    costs = collection_costs_cents(due.open_cents)
    sent = NOW.date() - dt.timedelta(days=20)
    assert wik_deadline(sent) < NOW.date() <= wik_deadline(NOW.date() - dt.timedelta(days=10))
    m_due = _letter(ctx, due.debtor_id, due.invoice_id, sent, costs)
    _letter(ctx, early.debtor_id, early.invoice_id, NOW.date() - dt.timedelta(days=10), 4000)
    _letter(ctx, held.debtor_id, held.invoice_id, sent, 4000)
    _letter(ctx, cant.debtor_id, cant.invoice_id, sent, 4000)
    _letter(ctx, paid.debtor_id, paid.invoice_id, sent, 4000)
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(s.holds).values(
                creditor_id=ctx.creditor_id,
                debtor_id=held.debtor_id,
                kind="debt_assistance",
                reason="Kennisgeving",
                starts_on=NOW.date(),
                created_at=utcnow(),
            )
        )
        conn.execute(
            update(s.segments)
            .where(s.segments.c.debtor_id.in_([due.debtor_id, early.debtor_id, paid.debtor_id]))
            .values(segment="wont_pay")
        )
        conn.execute(
            update(s.segments)
            .where(s.segments.c.debtor_id == cant.debtor_id)
            .values(segment="cant_pay")
        )
        conn.execute(  # paid within the 14 days
            update(s.invoices)
            .where(s.invoices.c.invoice_id == paid.invoice_id)
            .values(open_cents=0)
        )
    out = stages.book_due_costs(ctx)
    assert out == {
        "booked": 1,
        "booked_cents": costs,
        "skipped_hold": 1,
        "skipped_cant_pay": 1,
    }
    assert stages.book_due_costs(ctx)["booked"] == 0  # once per letter
    with ctx.engine.connect() as conn:
        item = conn.execute(
            select(s.invoices.c.open_cents, s.invoices.c.costs_cents).where(
                s.invoices.c.invoice_id == due.invoice_id
            )
        ).one()
        booking = conn.execute(select(s.cost_bookings)).one()
        wb = conn.execute(
            select(s.write_backs.c["values"]).where(s.write_backs.c.record_id == due.invoice_id)
        ).scalar()
    assert (item.open_cents, item.costs_cents) == (due.open_cents + costs, costs)
    assert booking.message_id == m_due and booking.deadline == wik_deadline(sent)
    assert wb["open_costs"] == f"{costs / 100:.2f}"


def test_explain_reads_like_a_caseworkers_note(tmp_path: Path) -> None:
    from flows import debt_help

    cfg, ctx = _ctx(tmp_path)
    debt_help.exchange_messages(ctx)  # the demo's Kennisgevingen: holds
    for p in range(ctx.cfg.policy.partitions):
        stages.assess_partition(ctx, p, ctx.cfg.policy.partitions)
    with ctx.engine.connect() as conn:
        held = conn.execute(select(s.holds.c.debtor_id).limit(1)).scalar()
        cant = conn.execute(
            select(s.segments.c.debtor_id).where(s.segments.c.segment == "cant_pay").limit(1)
        ).scalar()
    cli = CliRunner()
    a = cli.invoke(app, ["explain", held, "--creditor", str(cfg), "--now", NOW.isoformat()])
    assert a.exit_code == 0, a.output
    assert "On hold since" in a.output and "in debt assistance: yes" in a.output
    assert "Next: on hold: no contact." in a.output
    b = cli.invoke(app, ["explain", cant, "--creditor", str(cfg), "--now", NOW.isoformat()])
    assert "Segment: wil wel, kan niet (cant_pay)" in b.output and "Because:" in b.output
    assert "Next:" in b.output or "Planned:" in b.output
    with ctx.engine.connect() as conn:
        name = conn.execute(select(s.debtors.c.name).where(s.debtors.c.debtor_id == cant)).scalar()
    assert name not in b.output  # initials only
    missing = cli.invoke(app, ["explain", "R-NOPE", "--creditor", str(cfg)])
    assert missing.exit_code == 2 and "no debtor R-NOPE" in missing.output


def test_small_claims_cap_and_statutory_interest(tmp_path: Path) -> None:
    import yaml

    from transforms.wik import statutory_interest_cents

    cfg, _ = _ctx(tmp_path)
    doc = yaml.safe_load(cfg.read_text())
    doc["policy"]["charge_interest"] = True
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = make_ctx(str(cfg), NOW)
    with ctx.engine.connect() as conn:
        debtor = (
            conn.execute(select(s.debtors.c.debtor_id).order_by(s.debtors.c.debtor_id))
            .scalars()
            .first()
        )
        seg_debtors = [debtor]
    # four small rent arrears of one debtor, each with its own unanswered 14-day letter
    sent = NOW.date() - dt.timedelta(days=60)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(s.segments)
            .where(s.segments.c.debtor_id.in_(seg_debtors))
            .values(segment="wont_pay")
        )
        for k in range(4):
            conn.execute(
                insert(s.invoices).values(
                    creditor_id=ctx.creditor_id,
                    invoice_id=f"KLEIN-{k}",
                    debtor_id=debtor,
                    source="erp",
                    invoice_date=sent - dt.timedelta(days=60),
                    due_date=sent - dt.timedelta(days=46),
                    amount_cents=20_000,
                    open_cents=20_000,
                    currency="EUR",
                    status="open",
                    bucket=0,
                    updated_at=utcnow(),
                )
            )
    for k in range(4):
        _letter(ctx, debtor, f"KLEIN-{k}", sent + dt.timedelta(days=k), 4_000)
    out = stages.book_due_costs(ctx)
    assert out["booked"] == 4 and out["booked_cents"] == 14_000  # 40 + 40 + 40 + 20
    with ctx.engine.connect() as conn:
        amounts = [
            r.amount_cents
            for r in conn.execute(
                select(s.cost_bookings.c.amount_cents).order_by(s.cost_bookings.c.deadline)
            ).all()
        ]
    assert amounts == [4_000, 4_000, 4_000, 2_000]

    got = stages.accrue_interest(ctx)
    deadline = wik_deadline(sent)
    expected = statutory_interest_cents(20_000, deadline + dt.timedelta(days=1), NOW.date())
    assert got["items"] == 4 and expected > 0
    with ctx.engine.connect() as conn:
        first = conn.execute(
            select(s.invoices.c.interest_cents, s.invoices.c.open_cents).where(
                s.invoices.c.invoice_id == "KLEIN-0"
            )
        ).one()
    assert first.interest_cents == expected and first.open_cents == 20_000 + 4_000 + expected
    assert stages.accrue_interest(ctx)["items"] == 0  # set, not added: a re-run changes nothing
