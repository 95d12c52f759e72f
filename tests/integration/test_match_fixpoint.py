"""The match stage on a real ledger (SQLite, and PostgreSQL when it runs): a run leaves
the ledger at the matcher's fixed point, so the same day again finds nothing to do and
says so without weighing the unmatched lines again; anything that changes what they
are weighed against (a debtor's IBAN from the ERP, a new statement line) is weighed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import delete, select, update

from flows import stages
from flows.context import make_ctx
from ledger import schema as s
from ledger.store import utcnow
from tests.cycle_steps import ingest_and_validate, insert_payment, seeded
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
STRANGER = "NL20INGB0001234567"  # an account no debtor has on file


def _ctx(tmp_path: Path, ledger_url: str | None):  # type: ignore[no-untyped-def]
    ctx = make_ctx(str(seeded(tmp_path / "demo", 120, NOW.date(), ledger_url)), NOW)
    ingest_and_validate(ctx)
    return ctx


def _pay(ctx, pid: str, cents: int, **extra) -> None:  # type: ignore[no-untyped-def]
    insert_payment(ctx, pid, cents, extra.pop("booked", NOW.date()), **extra)


def _ledger(ctx):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        pays = conn.execute(
            select(
                s.payments.c.payment_id,
                s.payments.c.status,
                s.payments.c.allocated_cents,
                s.payments.c.unmatched_reason,
                s.payments.c.suggestions,
            ).order_by(s.payments.c.payment_id)
        ).all()
        allocs = conn.execute(
            select(
                s.allocations.c.payment_id, s.allocations.c.invoice_id, s.allocations.c.amount_cents
            ).order_by(s.allocations.c.payment_id, s.allocations.c.invoice_id)
        ).all()
        items = conn.execute(
            select(s.invoices.c.invoice_id, s.invoices.c.open_cents).order_by(
                s.invoices.c.invoice_id
            )
        ).all()
    return [tuple(r) for r in pays], [tuple(r) for r in allocs], [tuple(r) for r in items]


def test_the_same_day_again_has_nothing_to_do_until_something_changes(
    tmp_path: Path, ledger_url: str | None
) -> None:
    ctx = _ctx(tmp_path, ledger_url)
    with ctx.engine.connect() as conn:
        # a debtor with two open items
        rows = conn.execute(
            select(
                s.invoices.c.debtor_id,
                s.invoices.c.invoice_id,
                s.invoices.c.open_cents,
                s.invoices.c.payment_reference,
            )
            .where(s.invoices.c.open_cents > 0, s.invoices.c.payment_reference.is_not(None))
            .order_by(s.invoices.c.debtor_id, s.invoices.c.due_date, s.invoices.c.invoice_id)
        ).all()
    by_debtor: dict[str, list] = {}
    for r in rows:
        by_debtor.setdefault(r.debtor_id, []).append(r)
    debtor, (first, second, *_) = next((d, v) for d, v in by_debtor.items() if len(v) >= 2)
    # booked yesterday: an unknown account and an amount, nothing else (below the
    # threshold until the account is linked to the debtor)
    _pay(
        ctx,
        "p-early",
        second.open_cents,
        counterparty_iban=STRANGER,
        booked=NOW.date() - dt.timedelta(days=1),
    )
    # today: the same account pays the first item by its reference (which links it)
    _pay(
        ctx,
        "p-ref",
        first.open_cents,
        structured_reference=first.payment_reference,
        counterparty_iban=STRANGER,
    )
    _pay(ctx, "p-noise", 1234, remittance="gift")  # nothing fits, ever

    r1 = stages.match_new_payments(ctx)
    assert r1["payments"] == 3 and r1["matched"] == 2 and r1["unmatched"] == 1
    assert not r1["unchanged"]
    assert r1["weighed_again"] == 1  # p-early, once p-ref linked the account
    ledger1 = _ledger(ctx)
    assert ("p-early", second.invoice_id, second.open_cents) in ledger1[1]

    # the same day again: the mark of what it reads is the one the first run left
    r2 = stages.match_new_payments(ctx)
    assert r2["unchanged"] and r2["payments"] == 1 and r2["unmatched"] == 1
    assert r2["unmatched_list"][0]["payment_id"] == "p-noise"
    # its reason as the first run stored it (the matcher's inputs do not carry it)
    assert r2["unmatched_list"][0]["reason"] == r1["unmatched_list"][0]["reason"]
    assert r2["unmatched_list"][0]["reason"]
    assert _ledger(ctx) == ledger1

    # without the mark, the matcher weighs the line again and changes nothing: the
    # first run left its fixed point
    with ctx.engine.begin() as conn:
        conn.execute(delete(s.source_cursors).where(s.source_cursors.c.entity == "match"))
    r3 = stages.match_new_payments(ctx)
    assert not r3["unchanged"] and r3["matched"] == 0 and r3["allocated_cents"] == 0
    assert _ledger(ctx) == ledger1
    assert stages.match_new_payments(ctx)["unchanged"]

    # the ERP gives a debtor the account the unmatched line came from: weighed again
    _pay(ctx, "p-later", 2500, counterparty_iban="NL02RABO0123456789", remittance=f"klant {debtor}")
    with ctx.engine.begin() as conn:
        conn.execute(
            update(s.debtors)
            .where(s.debtors.c.debtor_id == debtor)
            .values(iban="NL02RABO0123456789", updated_at=utcnow())
        )
    r4 = stages.match_new_payments(ctx)
    assert not r4["unchanged"] and r4["payments"] == 2
    assert stages.match_new_payments(ctx)["unchanged"]

    # an outside change to an item (a credit note booked in the ERP) is seen by the mark
    with ctx.engine.begin() as conn:
        open_item = conn.execute(
            select(s.invoices.c.invoice_id).where(s.invoices.c.open_cents > 100).limit(1)
        ).scalar_one()
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.invoice_id == open_item)
            .values(open_cents=s.invoices.c.open_cents - 100)
        )
    assert not stages.match_new_payments(ctx)["unchanged"]
