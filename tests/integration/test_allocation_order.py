"""Allocation by component through the stages: costs booked in the creditor's ERP (read
through the SQLite ODBC driver) are paid before interest and principal (art. 6:44 BW),
or principal first when the creditor's policy says so; the ledger, the write-back and a
reversal all agree."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, update

from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from tests.cycle_steps import ingest_and_validate, insert_payment
from transforms.contact_window import AMS
from transforms.validation import Validator

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _ctx(tmp_path: Path, order: list[str] | None = None):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 200, NOW.date())
    if order:
        doc = yaml.safe_load(cfg.read_text())
        doc.setdefault("policy", {})["allocation_order"] = order
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    return ctx


def _item_with_costs(ctx):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(s.invoices).where(s.invoices.c.costs_cents > 0).order_by(s.invoices.c.invoice_id)
        ).first()
    assert row is not None, "the demo ERP books WIK costs on items after its own 14-day letter"
    assert row.open_cents == row.amount_cents + row.costs_cents
    return row


def _pay(ctx, pid: str, cents: int, ref: str | None, **extra) -> None:  # type: ignore[no-untyped-def]
    insert_payment(ctx, pid, cents, NOW.date(), structured_reference=ref, **extra)


def _state(ctx, invoice_id: str):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        inv = conn.execute(select(s.invoices).where(s.invoices.c.invoice_id == invoice_id)).one()
        allocs = conn.execute(
            select(s.allocations)
            .where(s.allocations.c.invoice_id == invoice_id)
            .order_by(s.allocations.c.created_at, s.allocations.c.payment_id)
        ).all()
        wbs = conn.execute(
            select(s.write_backs.c["values"])
            .where(s.write_backs.c.record_id == invoice_id)
            .order_by(s.write_backs.c.id)
        ).all()
    return inv, allocs, [w[0] for w in wbs]


def test_costs_are_paid_first_and_a_reversal_restores_them(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    item = _item_with_costs(ctx)
    part = item.costs_cents + 1000  # the costs and 10.00 of the principal
    _pay(ctx, "p-1", part, item.payment_reference, end_to_end_id="E2E-ALLOC-1")
    stages.match_new_payments(ctx)
    inv, allocs, wbs = _state(ctx, item.invoice_id)
    assert [(a.costs_cents, a.interest_cents, a.principal_cents) for a in allocs] == [
        (item.costs_cents, 0, 1000)
    ]
    assert (inv.open_cents, inv.costs_cents, inv.status) == (item.amount_cents - 1000, 0, "partial")
    assert wbs[-1]["open_costs"] == "0.00"
    assert wbs[-1]["open_amount"] == f"{(item.amount_cents - 1000) / 100:.2f}"

    # the next ingest reads the ERP's (unchanged) costs again: vangnet's allocation stays
    with ctx.engine.begin() as conn:  # force the item to be re-read as changed
        conn.execute(update(s.invoices).values(source_version="older"))
    stages.ingest_entity(ctx, "erp", "invoices")
    stages.validate_staged(ctx, Validator())
    inv, _, _ = _state(ctx, item.invoice_id)
    assert (inv.open_cents, inv.costs_cents) == (item.amount_cents - 1000, 0)

    # the direct debit comes back (MD06): the costs are owed again, exactly
    _pay(ctx, "p-2", -part, None, end_to_end_id="E2E-ALLOC-1", reversal=True, return_reason="MD06")
    stages.match_new_payments(ctx)
    inv, allocs, _ = _state(ctx, item.invoice_id)
    assert [(a.amount_cents, a.costs_cents, a.principal_cents) for a in allocs][-1] == (
        -part,
        -item.costs_cents,
        -1000,
    )
    assert (inv.open_cents, inv.costs_cents) == (item.open_cents, item.costs_cents)


def test_a_creditor_can_choose_principal_first(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ["principal", "interest", "costs"])
    item = _item_with_costs(ctx)
    _pay(ctx, "p-1", item.amount_cents, item.payment_reference)
    stages.match_new_payments(ctx)
    inv, allocs, wbs = _state(ctx, item.invoice_id)
    assert [(a.costs_cents, a.principal_cents) for a in allocs] == [(0, item.amount_cents)]
    assert (inv.open_cents, inv.costs_cents) == (item.costs_cents, item.costs_cents)
    assert wbs[-1]["open_costs"] == f"{item.costs_cents / 100:.2f}"


def test_a_wrong_allocation_order_is_refused_with_the_fix(tmp_path: Path) -> None:
    from flows.config import ConfigError, load

    cfg = seed(tmp_path / "demo", 20, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc.setdefault("policy", {})["allocation_order"] = ["costs", "principal"]
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="allocation_order"):
        load(cfg)


def test_status_write_backs_say_what_the_ledger_holds_after_matching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matcher plans each changed invoice's write-back from the rows it writes: the
    values are the ledger's own afterwards (status, open amount, costs, interest), under
    the version the ledger holds, and only for the invoices it changed."""
    ctx = _ctx(tmp_path)
    with ctx.engine.connect() as conn:
        items = conn.execute(
            select(s.invoices)
            .where(s.invoices.c.open_cents > 0, s.invoices.c.payment_reference.is_not(None))
            .order_by(s.invoices.c.invoice_id)
            .limit(3)
        ).all()
    assert len(items) == 3
    paid_in_full, partly, with_costs = items
    _pay(ctx, "p-full", paid_in_full.open_cents, paid_in_full.payment_reference)
    _pay(ctx, "p-part", 1000, partly.payment_reference)
    _pay(ctx, "p-costs", with_costs.open_cents - 1, with_costs.payment_reference)
    with ctx.engine.connect() as conn:
        before = set(conn.execute(select(s.write_backs.c.id)).scalars())
    monkeypatch.setattr(stages, "SPLIT_SHOWN_FROM", 0.0)  # every part named, however short
    with caplog.at_level(logging.INFO, logger="vangnet"):
        stages.match_new_payments(ctx)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("match: ")]
    assert len(said) == 1, said
    parts = "inputs' mark, allocations, payments, invoices, write-backs, statistics, commit"
    assert re.search(
        r"written \d+\.\d s \(" + ", ".join(rf"{p} \d+\.\d s" for p in parts.split(", ")) + r"\)$",
        said[0],
    ), said
    with ctx.engine.connect() as conn:
        new = conn.execute(
            select(
                s.write_backs.c.id,
                s.write_backs.c.record_id,
                s.write_backs.c["values"],
                s.write_backs.c.expected_version,
            )
        ).all()
        ledger = {
            r.invoice_id: r
            for r in conn.execute(
                select(s.invoices).where(s.invoices.c.invoice_id.in_([i.invoice_id for i in items]))
            )
        }
    planned = {w.record_id: w for w in new if w.id not in before}
    assert set(planned) == {i.invoice_id for i in items}
    for invoice_id, w in planned.items():
        inv = ledger[invoice_id]
        assert w.values == {
            "status": stages.STATUS_NL[inv.status],
            "open_amount": f"{inv.open_cents / 100:.2f}",
            "open_costs": f"{inv.costs_cents / 100:.2f}",
            "open_interest": f"{inv.interest_cents / 100:.2f}",
        }, invoice_id
        assert w.expected_version == inv.source_version
    assert ledger[paid_in_full.invoice_id].status == "paid"
    assert ledger[partly.invoice_id].open_cents == partly.open_cents - 1000
    assert ledger[with_costs.invoice_id].open_cents == 1
