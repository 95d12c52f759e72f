"""A creditor configured on Exact Online from YAML alone: authorised with the CLI,
read through the stages, a payment matched, the status written into Exact."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows import stages
from flows.cli import app
from flows.context import make_ctx
from ledger import schema as s
from tests.cycle_steps import insert_payment
from tests.fakes.exact_online import Division, ExactServer, new_guid, odate
from tests.fakes.https import make_ca
from transforms.contact_window import AMS
from transforms.references import new_betalingskenmerk
from transforms.validation import Validator

YAML = """
creditor: {{id: water-zuid, name: Water Zuid, sector: water}}
branding: {{display_name: Water Zuid, phone: 040 000 00 00, email: i@w.example, website: https://w.example,
           payment_link: "https://w.example/pay?r={{reference}}"}}
sources:
  erp:
    kind: exact_online
    base_url: {url}
    division: 4321
    client_id: {{env: EXACT_CLIENT_ID}}
    client_secret: {{env: EXACT_CLIENT_SECRET}}
    redirect_uri: https://vangnet.example/exact/callback
    ca_bundle: {ca}
    entities:
      debtors:
        endpoint: sync/CRM/Accounts
        filter: "Status eq 'C'"
        columns: {{debtor_id: ID, name: Name, email: Email, postcode: Postcode, source_version: Modified}}
      invoices:
        endpoint: sync/SalesInvoice/SalesInvoices
        columns: {{invoice_id: InvoiceNumber, debtor_id: InvoiceTo, invoice_date: InvoiceDate, due_date: DueDate,
                  amount_cents: AmountDC, currency: Currency, payment_reference: PaymentReference,
                  source_version: Modified}}
      payments:
        endpoint: sync/Cashflow/Receivables
        filter: "IsFullyPaid eq true"
        columns: {{payment_id: ID, debtor_id: Account, invoice_id: InvoiceNumber, paid_on: TransactionDate,
                  amount_cents: AmountDC, method: PaymentMethod, source_version: Modified}}
    write_back:
      invoices: {{endpoint: salesinvoice/SalesInvoices, key: InvoiceID, match: InvoiceNumber,
                 fields: {{status: Remarks}}}}
write_back: {{target: erp}}
channels: {{email: {{kind: outbox, dir: outbox}}}}
"""


def water_division(
    n: int,
    modified: Callable[[int], str] | None = None,
    supplier: int | None = 3,
    receivables: int = 10,
) -> Division:
    """A water company's division: ``n`` accounts (account ``supplier`` is a supplier,
    no debtor) with one invoice ``31000 + i`` of EUR 45 each, due 15 October, and the
    first ``receivables`` accounts' earlier payments. ``modified`` fixes the records'
    Modified stamps (else: when they are added)."""
    d = Division(4321)
    stamped = (lambda i: {"Modified": modified(i)}) if modified else (lambda i: {})
    for i in range(n):
        acc = d.add(
            "sync/CRM/Accounts",
            ID=new_guid() if modified is None else f"00000000-0000-4000-8000-{i:012d}",
            Name=f"Klant {i}",
            Email=f"k{i}@example.nl",
            Postcode="5611 AB",
            Status="C" if i != supplier else "S",
            **stamped(i),
        )
        d.add(
            "sync/SalesInvoice/SalesInvoices",
            InvoiceID=new_guid() if modified is None else f"00000000-0000-4000-9000-{i:012d}",
            InvoiceNumber=31000 + i,
            InvoiceTo=acc["ID"],
            InvoiceDate=odate(dt.date(2026, 10, 1)),
            DueDate=odate(dt.date(2026, 10, 15)),
            AmountDC=45.0,
            Currency="EUR",
            PaymentReference=new_betalingskenmerk(31000 + i),
            Remarks=None,
            **stamped(i),
        )
        if i < receivables:  # the ERP's own payment history: received payments
            d.add(
                "sync/Cashflow/Receivables",
                ID=new_guid(),
                Account=acc["ID"],
                InvoiceNumber=30000 + i,
                TransactionDate=odate(dt.date(2026, 9, 20 + i % 5)),
                AmountDC=45.0,
                PaymentMethod="B",
                IsFullyPaid=i != 9,
            )
    d.entities["salesinvoice/SalesInvoices"] = d.entities["sync/SalesInvoice/SalesInvoices"]
    return d


@pytest.fixture
def creditor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EXACT_CLIENT_ID", "exact-id")
    monkeypatch.setenv("EXACT_CLIENT_SECRET", "exact-secret")
    d = water_division(25)
    ca = make_ca(tmp_path / "ca")
    with ExactServer(ca, d) as srv:
        srv.keys["salesinvoice/SalesInvoices"] = "InvoiceID"
        cfg = tmp_path / "creditor.yaml"
        cfg.write_text(YAML.format(url=srv.url, ca=ca.ca_pem))
        yield cfg, d


def test_authorise_read_match_write_back(creditor) -> None:
    cfg, d = creditor
    runner = CliRunner()
    url = runner.invoke(app, ["exact", "auth-url", "--creditor", str(cfg), "--source", "erp"])
    assert url.exit_code == 0 and "/api/oauth2/auth?client_id=exact-id" in url.stdout
    ok = runner.invoke(
        app, ["exact", "authorize", "good-code", "--creditor", str(cfg), "--source", "erp"]
    )
    assert ok.exit_code == 0 and "authorised" in ok.stdout and "exact-secret" not in ok.stdout

    ctx = make_ctx(str(cfg), dt.datetime(2026, 11, 24, 10, tzinfo=AMS))
    first = [stages.ingest_entity(ctx, "erp", e) for e in stages.ENTITIES]
    assert [r["rows"] for r in first] == [24, 25, 9] and '"daily"' in first[0]["api_usage"]
    v = stages.validate_staged(ctx, Validator())
    assert v["entities"]["invoices"]["quarantined"] == 1  # the supplier's invoice: debtor unknown
    assert v["entities"]["payments"]["quarantined"] == 1  # the supplier's payment: debtor unknown
    with ctx.engine.connect() as conn:
        paid = conn.execute(
            select(s.erp_payments.c.paid_on, s.erp_payments.c.amount_cents, s.erp_payments.c.method)
        ).all()
    assert len(paid) == 8 and {(p.amount_cents, p.method) for p in paid} == {(4500, "B")}
    assert min(p.paid_on for p in paid) == dt.date(2026, 9, 20)
    insert_payment(
        ctx,
        "p1",
        4500,
        ctx.today,
        structured_reference=new_betalingskenmerk(31007),
        reversal=False,
        allocated_cents=0,
    )
    assert stages.match_new_payments(ctx)["write_backs_planned"] == 1
    assert stages.write_back(ctx)["applied"] == 1
    assert {r["InvoiceNumber"]: r["Remarks"] for r in d.entities["salesinvoice/SalesInvoices"]}[
        31007
    ] == "betaald"
    second = [stages.ingest_entity(ctx, "erp", e) for e in stages.ENTITIES]
    assert [r["rows"] for r in second] == [0, 1, 0]  # only the invoice we wrote into comes back
    stages.validate_staged(ctx, Validator())
    assert stages.write_back(ctx)["applied"] == 0
