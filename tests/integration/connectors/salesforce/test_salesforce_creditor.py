"""A creditor configured on Salesforce from YAML alone: its debtors and invoices come
from the (fake) org, a bank payment is matched, and the status lands in the org."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from flows import stages
from flows.context import make_ctx
from ledger import schema as s
from tests.cycle_steps import insert_payment
from tests.fakes.https import make_ca
from tests.fakes.salesforce import Org, SalesforceServer
from transforms.contact_window import AMS
from transforms.references import new_betalingskenmerk
from transforms.validation import Validator

from .test_salesforce import stamp

YAML = """
creditor: {{id: energie-noord, name: Energie Noord, sector: energy}}
branding: {{display_name: Energie Noord, phone: 050 000 00 00, email: i@e.example, website: https://e.example,
           payment_link: "https://e.example/pay?r={{reference}}"}}
sources:
  crm:
    kind: salesforce
    instance_url: {url}
    token_url: {url}/services/oauth2/token
    client_id: {{env: SF_CLIENT_ID}}
    client_secret: {{env: SF_CLIENT_SECRET}}
    ca_bundle: {ca}
    entities:
      debtors:
        object: Account
        columns: {{debtor_id: Debtor_Number__c, name: Name, email: PersonEmail, postcode: BillingPostalCode}}
      invoices:
        object: Invoice__c
        where: "IsDeleted = false"
        columns: {{invoice_id: Name, debtor_id: Debtor_Number__c, invoice_date: Invoice_Date__c,
                  due_date: Due_Date__c, amount_cents: Amount__c, open_cents: Open_Amount__c,
                  currency: CurrencyIsoCode, payment_reference: Payment_Reference__c}}
    write_back:
      invoices: {{object: Invoice__c, external_id_field: Name,
                 fields: {{status: Collection_Status__c, open_amount: Vangnet_Open__c}}}}
write_back: {{target: crm}}
channels: {{email: {{kind: outbox, dir: outbox}}}}
"""


def energy_org(
    n: int,
    account_stamp: Callable[[int], str],
    invoice_stamp: Callable[[int], str],
    usd: int | None = 7,
) -> Org:
    """An energy company's org: ``n`` accounts ``E<i>`` with one open invoice ``EN-<i>``
    of EUR 80 each, due 15 October; invoice ``usd`` is in dollars."""
    org = Org()
    for i in range(n):
        org.add(
            "Account",
            Id=f"001{i:015d}",
            SystemModstamp=account_stamp(i),
            Name=f"Klant {i}",
            PersonEmail=f"k{i}@example.nl",
            BillingPostalCode="9712 AB",
            Debtor_Number__c=f"E{i}",
        )
        org.add(
            "Invoice__c",
            Id=f"a0X{i:015d}",
            SystemModstamp=invoice_stamp(i),
            Name=f"EN-{i}",
            Debtor_Number__c=f"E{i}",
            Invoice_Date__c="2026-10-01",
            Due_Date__c="2026-10-15",
            Amount__c=80.0,
            Open_Amount__c=80.0,
            CurrencyIsoCode="EUR" if i != usd else "USD",
            Payment_Reference__c=new_betalingskenmerk(1000 + i),
            IsDeleted=False,
            Collection_Status__c=None,
            Vangnet_Open__c=None,
        )
    return org


@pytest.fixture
def creditor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SF_CLIENT_ID", "cid")
    monkeypatch.setenv("SF_CLIENT_SECRET", "csecret")
    org = energy_org(30, lambda i: stamp(200 - i), lambda i: stamp(150 - i))
    ca = make_ca(tmp_path / "ca")
    with SalesforceServer(ca, org) as srv:
        cfg = tmp_path / "creditor.yaml"
        cfg.write_text(YAML.format(url=srv.url, ca=ca.ca_pem))
        yield make_ctx(str(cfg), dt.datetime(2026, 11, 24, 10, tzinfo=AMS)), org, srv


def _pay(ctx, ref: str, cents: int) -> None:
    insert_payment(
        ctx,
        f"p-{ref}",
        cents,
        ctx.today,
        structured_reference=ref,
        reversal=False,
        allocated_cents=0,
    )


def test_read_match_and_write_back_from_yaml_alone(creditor) -> None:
    ctx, org, srv = creditor
    first = [stages.ingest_entity(ctx, "crm", e) for e in stages.ENTITIES]
    assert [r["rows"] for r in first] == [30, 30, 0] and first[0][
        "api_requests"
    ] >= 2  # no payments mapped
    v = stages.validate_staged(ctx, Validator())
    assert v["entities"]["invoices"]["quarantined"] == 1  # the USD invoice, with its rule
    with ctx.engine.connect() as conn:
        q = conn.execute(select(s.quarantine.c.record_id, s.quarantine.c.failures)).one()
    assert q.record_id == "EN-7" and q.failures[0]["rule"] == "invoice.currency"
    _pay(ctx, new_betalingskenmerk(1003), 8000)
    _pay(ctx, new_betalingskenmerk(1004), 3000)
    assert stages.match_new_payments(ctx)["write_backs_planned"] == 2
    assert stages.write_back(ctx) == {
        "applied": 2,
        "conflict": 0,
        "failed": 0,
        "planned_preferences": 0,
        "retried_conflicts": 0,
        "resumed": 0,
    }
    inv = {r["Name"]: r for r in org.objects["Invoice__c"]}
    assert (inv["EN-3"]["Collection_Status__c"], inv["EN-3"]["Vangnet_Open__c"]) == ("betaald", 0.0)
    assert (inv["EN-4"]["Collection_Status__c"], inv["EN-4"]["Vangnet_Open__c"]) == (
        "deels betaald",
        50.0,
    )

    # the next run: only the cursor's own second and the two records we wrote come back;
    # nothing changes in the ledger and nothing is written again
    second = [stages.ingest_entity(ctx, "crm", e) for e in stages.ENTITIES]
    assert second[0]["rows"] <= 1 and second[1]["rows"] <= 3
    v2 = stages.validate_staged(ctx, Validator())
    assert (
        v2["entities"]["invoices"]["changed"] == 2
    )  # the echo of our own write (new SystemModstamp)
    assert stages.match_new_payments(ctx)["payments"] == 0
    assert stages.write_back(ctx) == {
        "applied": 0,
        "conflict": 0,
        "failed": 0,
        "planned_preferences": 0,
        "retried_conflicts": 0,
        "resumed": 0,
    }


def test_a_conflict_is_recorded_and_retried_next_cycle(creditor) -> None:
    ctx, org, srv = creditor
    for e in stages.ENTITIES:
        stages.ingest_entity(ctx, "crm", e)
    stages.validate_staged(ctx, Validator())
    _pay(ctx, new_betalingskenmerk(1005), 8000)
    stages.match_new_payments(ctx)
    inv = {r["Name"]: r for r in org.objects["Invoice__c"]}
    inv["EN-5"]["Due_Date__c"] = "2026-10-20"  # someone edits the invoice in Salesforce meanwhile
    inv["EN-5"]["SystemModstamp"] = stamp(0)
    assert stages.write_back(ctx)["conflict"] == 1
    assert inv["EN-5"]["Collection_Status__c"] is None  # never overwritten blindly
    with ctx.engine.connect() as conn:
        assert conn.execute(select(s.write_backs.c.status)).scalar() == "conflict"
    # a cycle that has not re-read the record leaves the conflict alone ...
    assert stages.write_back(ctx)["retried_conflicts"] == 0
    # ... the next one reads the newer version, and the change is retried against it
    for e in stages.ENTITIES:
        stages.ingest_entity(ctx, "crm", e)
    stages.validate_staged(ctx, Validator())
    out = stages.write_back(ctx)
    assert out["retried_conflicts"] == 1 and out["applied"] == 1
    assert (
        inv["EN-5"]["Collection_Status__c"] == "betaald"
        and inv["EN-5"]["Due_Date__c"] == "2026-10-20"
    )


def test_a_read_failing_half_way_keeps_the_cursor_at_the_committed_page(creditor) -> None:
    from connectors.errors import RetriableError
    from ledger.store import get_cursor

    ctx, org, srv = creditor
    org.batch = 10  # 30 accounts: three API pages
    srv.faults.add("500", times=20, path_contains="/query/01g")  # every query-more fails
    with pytest.raises(RetriableError):
        stages.ingest_entity(ctx, "crm", "debtors")
    with ctx.engine.connect() as conn:
        staged = conn.execute(select(s.staging.c.id).where(s.staging.c.entity == "debtors")).all()
        cursor = get_cursor(conn, ctx.creditor_id, "crm", "debtors")
    first_page = sorted(org.objects["Account"], key=lambda r: r["SystemModstamp"])[:10]
    assert len(staged) == 10  # the first page is committed ...
    assert (
        cursor["watermark"] == first_page[-1]["SystemModstamp"][:19] + "Z"
    )  # ... and the cursor with it, no further
    srv.faults.queue.clear()
    again = stages.ingest_entity(ctx, "crm", "debtors")
    assert again["rows"] == 21  # the cursor's own second again, then the rest
