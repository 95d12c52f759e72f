"""The Exact Online connector with the real ``exactonline`` package against a loopback
HTTPS fake of the documented API; tokens in a real ledger (SQLite here)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.errors import FatalError
from connectors.exact_online import (
    ExactClient,
    ExactOnlineSettings,
    ExactReader,
    ExactWriter,
    TokenStore,
)
from ledger.records import WriteBack
from ledger.store import ensure_creditor, open_ledger
from tests.fakes.exact_online import Division, ExactServer, new_guid, odate
from tests.fakes.https import make_ca

DIV = 1234
INVOICES = "sync/SalesInvoice/SalesInvoices"


@pytest.fixture
def division() -> Division:
    d = Division(DIV)
    accounts = [
        d.add(
            "sync/CRM/Accounts",
            ID=new_guid(),
            Code=f"{i:6d}",
            Name=f"Klant {i}",
            Email=f"k{i}@example.nl",
            Postcode="1234 AB",
        )
        for i in range(120)
    ]
    for i in range(7):
        d.add(
            INVOICES,
            InvoiceID=new_guid(),
            InvoiceNumber=26000 + i,
            InvoiceTo=accounts[i]["ID"],
            InvoiceDate=odate(dt.date(2026, 10, 1)),
            DueDate=odate(dt.date(2026, 10, 15)),
            AmountDC=100.5 + i,
            Currency="EUR",
            PaymentReference="5000056789012345",
            Remarks=None,
            Locked=i == 5,
        )
    d.entities["salesinvoice/SalesInvoices"] = d.entities[
        INVOICES
    ]  # the CRUD view of the same invoices
    return d


@pytest.fixture
def server(division: Division, tmp_path: Path):
    ca = make_ca(tmp_path / "ca")
    with ExactServer(ca, division) as srv:
        srv.keys["salesinvoice/SalesInvoices"] = "InvoiceID"
        srv.ca = ca
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "energy", "x" * 64)
    return TokenStore(engine, "c1", "exact")


def settings(server, **kw) -> ExactOnlineSettings:
    base = dict(
        base_url=server.url,
        division=DIV,
        client_id={"env": "X"},
        client_secret={"env": "Y"},
        redirect_uri="https://vangnet.example/exact/callback",
        ca_bundle=str(server.ca.ca_pem),
        timeout_seconds=1,
        entities={
            "debtors": {
                "endpoint": "sync/CRM/Accounts",
                "columns": {
                    "debtor_id": "ID",
                    "name": "Name",
                    "email": "Email",
                    "postcode": "Postcode",
                    "source_version": "Modified",
                },
            },
            "invoices": {
                "endpoint": INVOICES,
                "columns": {
                    "invoice_id": "InvoiceNumber",
                    "debtor_id": "InvoiceTo",
                    "invoice_date": "InvoiceDate",
                    "due_date": "DueDate",
                    "amount_cents": "AmountDC",
                    "currency": "Currency",
                    "payment_reference": "PaymentReference",
                    "source_version": "Modified",
                },
            },
        },
        write_back={
            "invoices": {
                "endpoint": "salesinvoice/SalesInvoices",
                "key": "InvoiceID",
                "match": "InvoiceNumber",
                "fields": {"status": "Remarks"},
            }
        },
    )
    base.update(kw)
    return ExactOnlineSettings(**base)


def client(server, store: TokenStore, **kw) -> ExactClient:
    return ExactClient(
        settings(server, **kw), SecretStr("exact-id"), SecretStr("exact-secret"), store
    )


@pytest.fixture
def authorised(server, store):
    c = client(server, store)
    c.authorize("good-code")
    return c


def test_authorisation_code_start_and_tokens_in_the_ledger(server, store, division) -> None:
    c = client(server, store)
    url = c.authorization_url()
    assert url.startswith(f"{server.url}/api/oauth2/auth?client_id=exact-id&redirect_uri=")
    with pytest.raises(FatalError, match="not authorised yet"):
        list(ExactReader(c).read("debtors", {}))
    c.authorize("good-code")
    saved = store.load()
    assert saved is not None and saved.refresh_token in division.refresh
    with pytest.raises(FatalError, match="refused the authorisation: invalid_grant") as err:
        client(server, store).authorize("good-code")  # a code works once
    assert "exact-secret" not in str(err.value) and err.value.__cause__ is None


def test_paging_follows_next_beyond_the_library_limit(authorised, server, division) -> None:
    division.sync_page = 2  # 120 accounts: 60 pages, more than Unwrap's 50
    division.minutely_limit = (
        1000  # (at 60 a minute the limiter would rightly wait for the next minute)
    )
    pages = list(ExactReader(authorised, "erp").read("debtors", {}))
    assert len(pages) == 60 and sum(len(p.frame) for p in pages) == 120
    assert pages[0].frame.iloc[0]["name"] == "Klant 0" and pages[0].frame.iloc[0][
        "source_version"
    ].endswith("+00:00")
    cursor = pages[-1].cursor
    assert list(ExactReader(authorised).read("debtors", cursor)) == []
    division.touch(division.entities["sync/CRM/Accounts"][7])
    again = [n for p in ExactReader(authorised).read("debtors", cursor) for n in p.frame["name"]]
    assert again == ["Klant 7"]
    assert (
        authorised.budgets["daily"]["limit"] == 5000
        and authorised.budgets["minutely"]["limit"] == 1000
    )
    assert authorised.budgets["daily"]["remaining"] == 5000 - division.daily_used


def test_invoice_dates_and_amounts_map(authorised) -> None:
    df = next(iter(ExactReader(authorised).read("invoices", {}))).frame
    row = df.iloc[0]
    assert (
        row["invoice_id"] == "26000" and row["amount_cents"] == 10050 and row["open_cents"] == 10050
    )
    assert row["due_date"] == dt.date(2026, 10, 15) and row["_errors"] is None


def test_rotating_refresh_token_is_shared_by_workers(authorised, server, store, division) -> None:
    worker_b = client(server, store)  # a second worker with the same tokens
    assert len(list(ExactReader(worker_b).read("invoices", {}))) == 1
    for c in (authorised, worker_b):
        c.storage.transient["access_expiry"] = "0"  # both think the token is about to expire
    calls = division.token_calls
    assert (
        len(list(ExactReader(authorised).read("invoices", {}))) == 1
    )  # A refreshes (token rotates)
    assert (
        len(list(ExactReader(worker_b).read("invoices", {}))) == 1
    )  # B adopts A's token from the ledger
    assert division.token_calls == calls + 1
    assert store.load().refresh_token in division.refresh


def test_expired_token_on_the_server_is_refreshed_once(authorised, server, division) -> None:
    server.faults.add("expired", path_contains="/sync/")
    assert len(list(ExactReader(authorised).read("invoices", {}))) == 1
    assert "expired" in server.faults.injected


def test_rate_limits_and_faults_are_survived(authorised, server) -> None:
    for kind in ("429", "500", "malformed"):
        server.faults.add(kind, path_contains="/sync/")
    server.faults.add("slow", path_contains="/sync/", seconds=2)  # beyond the 1 s timeout
    assert sum(len(p.frame) for p in ExactReader(authorised).read("invoices", {})) == 7
    assert server.faults.injected == ["429", "500", "malformed", "slow"]


def test_fatal_errors_name_the_problem(authorised, server, store) -> None:
    s = settings(server)
    s.entities["debtors"].columns["name"] = "NoSuchProperty"
    c = ExactClient(s, SecretStr("exact-id"), SecretStr("exact-secret"), store)
    with pytest.raises(FatalError, match="answered 400: Property 'NoSuchProperty' does not exist"):
        list(ExactReader(c).read("debtors", {}))


def test_write_back_is_conflict_checked_and_idempotent(authorised, server, division) -> None:
    inv = {r["InvoiceNumber"]: r for r in division.entities[INVOICES]}
    version = {
        n: p.frame.set_index("invoice_id")["source_version"].to_dict()
        for n, p in enumerate(ExactReader(authorised).read("invoices", {}))
    }[0]
    changes = [
        WriteBack("c0", "invoices", "26000", {"status": "betaald"}, version["26000"]),
        WriteBack(
            "c1", "invoices", "26001", {"status": "betaald"}, "2020-01-01T00:00:00.000+00:00"
        ),
        WriteBack("c5", "invoices", "26005", {"status": "betaald"}, version["26005"]),
        WriteBack("c9", "invoices", "99999", {"status": "betaald"}, None),
        WriteBack("cx", "invoices", "1 or 1 eq 1", {"status": "betaald"}, None),
    ]
    got = {r.change_id: (r.status, r.error) for r in ExactWriter(authorised).write(changes)}
    assert got["c0"] == ("applied", None) and inv[26000]["Remarks"] == "betaald"
    assert got["c1"][0] == "conflict" and "changed in Exact Online" in got["c1"][1]
    assert got["c5"][0] == "failed" and "can no longer be changed" in got["c5"][1]
    assert got["c9"][0] == "conflict" and got["cx"] == ("failed", "'1 or 1 eq 1' is not a number")
    puts = sum(1 for m, _ in server.requests if m == "PUT")
    assert ExactWriter(authorised).write(changes[:1])[0].status == "applied"
    assert (
        sum(1 for m, _ in server.requests if m == "PUT") == puts
    )  # already there: nothing written
