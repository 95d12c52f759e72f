"""The Salesforce connector with the real simple-salesforce client against a loopback
HTTPS fake of the REST API (test CA made here; REQUESTS_CA_BUNDLE does not apply)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.errors import FatalError, RetriableError
from connectors.salesforce import (
    SalesforceClient,
    SalesforceReader,
    SalesforceSettings,
    SalesforceWriter,
)
from ledger.records import WriteBack
from tests.fakes.https import make_ca
from tests.fakes.salesforce import Org, SalesforceServer


def stamp(seconds_ago: int) -> str:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@pytest.fixture
def org() -> Org:
    o = Org()
    for i in range(5):
        o.add(
            "Account",
            Id=f"001{i:015d}",
            SystemModstamp=stamp(100 - i),
            Name=f"Klant {i}",
            PersonEmail=f"k{i}@example.nl",
            Phone="+31612345678",
            Debtor_Number__c=f"R{i}",
        )
    for i in range(7):
        o.add(
            "Invoice__c",
            Id=f"a0X{i:015d}",
            SystemModstamp=stamp(90 - i),
            Name=f"F{i:03d}",
            Debtor_Number__c=f"R{i % 5}",
            Invoice_Date__c="2026-10-01",
            Due_Date__c="2026-10-15",
            Amount__c=100.5 + i,
            Open_Amount__c=100.5 + i,
            CurrencyIsoCode="EUR",
            Payment_Reference__c="5000056789012345",
            Collection_Status__c=None,
            Vangnet_Open__c=None,
        )
    o.batch = 3
    return o


@pytest.fixture
def server(org: Org, tmp_path: Path):
    ca = make_ca(tmp_path / "ca")
    with SalesforceServer(ca, org) as srv:
        srv.ca = ca
        yield srv


def settings(server, **kw) -> SalesforceSettings:
    base = dict(
        instance_url=server.url,
        token_url=server.url + "/services/oauth2/token",
        client_id={"env": "SF_ID"},
        client_secret={"env": "SF_SECRET"},
        ca_bundle=str(server.ca.ca_pem),
        timeout_seconds=2,
        max_backoff_seconds=2,
        page_size=2,
        entities={
            "debtors": {
                "object": "Account",
                "columns": {
                    "debtor_id": "Debtor_Number__c",
                    "name": "Name",
                    "email": "PersonEmail",
                    "phone": "Phone",
                },
            },
            "invoices": {
                "object": "Invoice__c",
                "columns": {
                    "invoice_id": "Name",
                    "debtor_id": "Debtor_Number__c",
                    "invoice_date": "Invoice_Date__c",
                    "due_date": "Due_Date__c",
                    "amount_cents": "Amount__c",
                    "open_cents": "Open_Amount__c",
                    "currency": "CurrencyIsoCode",
                    "payment_reference": "Payment_Reference__c",
                },
            },
        },
        write_back={
            "invoices": {
                "object": "Invoice__c",
                "external_id_field": "Name",
                "fields": {"status": "Collection_Status__c", "open_amount": "Vangnet_Open__c"},
            }
        },
    )
    base.update(kw)
    return SalesforceSettings(**base)


def client(server, secret: str = "csecret", **kw) -> SalesforceClient:
    return SalesforceClient(settings(server, **kw), SecretStr("cid"), SecretStr(secret))


def test_paged_incremental_read(server, org: Org) -> None:
    c = client(server)
    reader = SalesforceReader(c, "crm")
    pages = list(reader.read("invoices", {}))
    assert [len(p.frame) for p in pages] == [
        2,
        1,
        2,
        1,
        1,
    ]  # API batches of 3, committed pages of 2
    first = pages[0].frame.iloc[0]
    assert (
        first["invoice_id"] == "F000"
        and first["amount_cents"] == 10050
        and first["debtor_id"] == "R0"
    )
    assert first["source_version"].endswith("+0000")
    assert any(
        p == "GET" and "/query/01g" in path for p, path in server.requests
    )  # nextRecordsUrl followed
    cursor = pages[-1].cursor
    # the next run reads only the cursor's own second again, plus what changed
    again = [r for p in reader.read("invoices", cursor) for r in p.frame["invoice_id"]]
    assert again == ["F006"]
    org.objects["Invoice__c"][2]["Open_Amount__c"] = 1.0
    org.objects["Invoice__c"][2]["SystemModstamp"] = stamp(0)
    changed = [r for p in reader.read("invoices", cursor) for r in p.frame["invoice_id"]]
    assert changed == ["F006", "F002"]
    assert c.api_usage["api-usage"]["total"] == 15000 and c.token_fetches == 1


def test_soql_values_are_quoted(server) -> None:
    c = client(server)
    bad = "x' OR Name != 'y"
    ch = [WriteBack("c1", "invoices", bad, {"status": "betaald"}, None)]
    out = SalesforceWriter(c).write(ch)
    assert (
        out[0].status == "conflict" and "missing" in out[0].error
    )  # quoted: matched nothing, injected nothing


def test_write_back_upserts_by_external_id_and_reports_each_failure(server, org: Org) -> None:
    c = client(server)
    inv = {r["Name"]: r for r in org.objects["Invoice__c"]}
    org.locked.add("F003")
    changes = [
        WriteBack(
            "c0",
            "invoices",
            "F000",
            {"status": "betaald", "open_amount": "0.00"},
            inv["F000"]["SystemModstamp"],
        ),
        WriteBack(
            "c1",
            "invoices",
            "F001",
            {"status": "deels betaald", "open_amount": "51.50"},
            "2020-01-01T00:00:00.000+0000",
        ),
        WriteBack(
            "c3",
            "invoices",
            "F003",
            {"status": "betaald", "open_amount": "0.00"},
            inv["F003"]["SystemModstamp"],
        ),
        WriteBack("c9", "invoices", "F999", {"status": "betaald", "open_amount": "0.00"}, None),
    ]
    got = {r.change_id: (r.status, r.error) for r in SalesforceWriter(c).write(changes)}
    assert got["c0"] == ("applied", None)
    assert got["c1"][0] == "conflict" and "changed in Salesforce" in got["c1"][1]
    assert got["c3"] == (
        "failed",
        "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record",
    )
    assert got["c9"][0] == "conflict"  # never created by an upsert
    assert (
        inv["F000"]["Collection_Status__c"] == "betaald" and inv["F000"]["Vangnet_Open__c"] == 0.0
    )
    assert len(org.objects["Invoice__c"]) == 7
    # applying again is a no-op: the values are already there, nothing is written
    patches = sum(1 for m, _ in server.requests if m == "PATCH")
    assert SalesforceWriter(c).write(changes[:1])[0].status == "applied"
    assert sum(1 for m, _ in server.requests if m == "PATCH") == patches


def test_upserts_go_in_collections_of_200(server, org: Org) -> None:
    for i in range(450):
        org.add("Invoice__c", Name=f"B{i:04d}", Collection_Status__c=None, Vangnet_Open__c=None)
    c = client(server)
    changes = [
        WriteBack(f"b{i}", "invoices", f"B{i:04d}", {"status": "betaald"}, None) for i in range(450)
    ]
    assert {r.status for r in SalesforceWriter(c).write(changes)} == {"applied"}
    assert sum(1 for m, _ in server.requests if m == "PATCH") == 3


def test_expired_session_is_refreshed_once(server, org: Org) -> None:
    c = client(server)
    reader = SalesforceReader(c)
    assert len(list(reader.read("debtors", {}))) > 0
    server.faults.add("expired", path_contains="/query")
    assert sum(len(p.frame) for p in reader.read("debtors", {})) == 5
    assert c.token_fetches == 2


def test_retriable_faults_are_retried_and_then_given_up(server) -> None:
    c = client(server)
    server.faults.add("429", path_contains="/query")
    server.faults.add("500", path_contains="/query")
    server.faults.add("malformed", path_contains="/query")
    server.faults.add("slow", path_contains="/query", seconds=3)  # beyond the 2 s timeout
    assert sum(len(p.frame) for p in SalesforceReader(c).read("debtors", {})) == 5
    assert server.faults.injected == ["429", "500", "malformed", "slow"]
    server.faults.add("500", times=10, path_contains="/query")
    with pytest.raises(RetriableError, match="answered 500"):
        list(SalesforceReader(client(server, max_retries=2)).read("debtors", {}))


def test_fatal_errors_fail_clearly(server) -> None:
    with pytest.raises(FatalError, match="refused the client credentials: invalid_client"):
        list(SalesforceReader(client(server, secret="wrong")).read("debtors", {}))
    s = settings(server)
    s.entities["debtors"].columns["name"] = "No_Such_Field__c"
    c = SalesforceClient(s, SecretStr("cid"), SecretStr("csecret"))
    with pytest.raises(FatalError, match="INVALID_FIELD: No such column 'No_Such_Field__c'"):
        list(SalesforceReader(c).read("debtors", {}))


def test_only_https_is_accepted() -> None:
    with pytest.raises(ValueError, match="only reached over https"):
        SalesforceSettings(
            instance_url="http://x", client_id={"env": "A"}, client_secret={"env": "B"}, entities={}
        )


def test_a_large_pull_goes_through_a_bulk_query_job(server, org: Org) -> None:
    for i in range(40):
        org.add(
            "Invoice__c",
            SystemModstamp=stamp(50 - i),
            Name=f"B{i:03d}",
            Debtor_Number__c="R1",
            Invoice_Date__c="2026-10-01",
            Due_Date__c="2026-10-15",
            Amount__c=10.0,
            Open_Amount__c=10.0,
            CurrencyIsoCode="EUR",
            Payment_Reference__c=None,
        )
    c = client(server, bulk_threshold=20, bulk_poll_seconds=0.05, page_size=15)
    reader = SalesforceReader(c)
    pages = list(reader.read("invoices", {}))
    assert reader.used_bulk and reader.last_count == 47
    assert [len(p.frame) for p in pages] == [15, 15, 15, 2]
    assert all(p.cursor == {} for p in pages[:-1])  # the cursor moves with the last page only
    assert pages[-1].cursor["watermark"].endswith("Z")
    frame = pages[0].frame
    assert frame.iloc[0]["amount_cents"] in (10050, 1000) and frame["_errors"].isna().all()
    assert any("/jobs/query/" in path and "results" in path for _, path in server.requests)
    # below the threshold the next run uses the REST query again
    small = SalesforceReader(c)
    list(small.read("invoices", pages[-1].cursor))
    assert not small.used_bulk


def test_a_large_write_back_goes_through_a_bulk_upsert_job(server, org: Org) -> None:
    for i in range(60):
        org.add("Invoice__c", Name=f"W{i:03d}", Collection_Status__c=None, Vangnet_Open__c=None)
    org.locked.add("W007")
    c = client(server, bulk_write_threshold=50, bulk_poll_seconds=0.05)
    changes = [
        WriteBack(
            f"w{i}", "invoices", f"W{i:03d}", {"status": "betaald", "open_amount": "0.00"}, None
        )
        for i in range(60)
    ]
    got = {r.change_id: (r.status, r.error) for r in SalesforceWriter(c).write(changes)}
    assert got["w7"] == (
        "failed",
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record",
    )
    assert sum(1 for s, _ in got.values() if s == "applied") == 59
    assert not any(
        m == "PATCH" and "composite" in p for m, p in server.requests
    )  # no collections used
    assert any(m == "PUT" and p.endswith("/batches") for m, p in server.requests)
    assert {
        r["Collection_Status__c"]
        for r in org.objects["Invoice__c"]
        if r["Name"].startswith("W") and r["Name"] != "W007"
    } == {"betaald"}
