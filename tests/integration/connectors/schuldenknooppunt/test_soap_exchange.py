"""The SOAP adapter against a loopback hub that demands a client certificate (mutual TLS
with a test CA made here): a Saldoverzoek in, its answer out; nothing lost when the run
dies between fetch and commit or between commit and confirmation; an answer resent
after a crash is still one answer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from connectors.errors import FatalError, RetriableError
from connectors.schuldenknooppunt import SoapExchange, SoapExchangeSettings
from connectors.secrets import SecretRef
from flows import debt_help
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from tests.cycle_steps import ingest_and_validate
from tests.fakes.https import make_ca, make_client_cert
from tests.fakes.schuldenknooppunt import HubServer, bericht, exchange_config
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


@pytest.fixture
def pki(tmp_path: Path):  # type: ignore[no-untyped-def]
    ca = make_ca(tmp_path / "pki")
    cert, key = make_client_cert(ca, tmp_path / "pki")
    return ca, cert, key


@pytest.fixture
def hub(pki):  # type: ignore[no-untyped-def]
    ca, _, _ = pki
    with HubServer(ca) as server:
        yield server


def _ctx(tmp_path: Path, pki, hub: HubServer):  # type: ignore[no-untyped-def]
    ca, cert, key = pki
    cfg = seed(tmp_path / "demo", 120, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc["debt_help"] = {
        "exchange": exchange_config(hub, ca, cert, key, read_timeout_seconds=5),
        "debt_type": "huur",
        "proposals": {"accept_min_percentage": 30},
    }
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    return ctx


def _debtor_with_open_items(ctx):  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(s.invoices.c.debtor_id)
            .where(s.invoices.c.open_cents > 0, s.invoices.c.costs_cents > 0)
            .limit(1)
        ).first()
        debtor = row[0]
        items = conn.execute(
            select(s.invoices).where(s.invoices.c.debtor_id == debtor, s.invoices.c.open_cents > 0)
        ).all()
    return debtor, items


def test_without_a_client_certificate_from_the_ca_there_is_no_connection(
    tmp_path: Path, hub: HubServer
) -> None:
    other = make_ca(tmp_path / "other")
    cert, key = make_client_cert(other, tmp_path / "other")
    settings = SoapExchangeSettings(
        endpoint=hub.url,
        organisation_code="WOONCORP",
        client_cert=SecretRef(file=str(cert)),
        client_key=SecretRef(file=str(key)),
        ca_bundle=str(tmp_path / "pki" / "ca.pem"),
    )
    with (
        SoapExchange(settings, cert.read_text(), key.read_text()) as ex,
        pytest.raises(FatalError, match="TLS handshake"),
    ):
        ex.fetch_inbox()
    assert hub.hub.fetches == 0


def test_saldoverzoek_round_trip_over_mutual_tls(tmp_path: Path, pki, hub: HubServer) -> None:
    ctx = _ctx(tmp_path, pki, hub)
    debtor, items = _debtor_with_open_items(ctx)
    ours = sorted(i.invoice_id for i in items)
    hub.hub.put(
        "SV-1",
        bericht(
            "SV-1",
            "Saldoverzoek",
            "2026-11-23",
            organisation_code="WOONCORP",
            client=debtor,
            invoices=[ours[0].lower()],  # the counsellor's spelling
        ),
    )
    hub.hub.put("KG-404", bericht("KG-404", "Kennisgeving", "2026-11-23", client="R-NOBODY"))
    hub.hub.put("BAD-1", bericht("BAD-1", "Saldoverzoek", "23 november"))
    out = debt_help.exchange_messages(ctx)
    assert (out["fetched"], out["stored"], out["unreadable"]) == (3, 3, 1)
    assert sorted(hub.hub.confirmed) == ["BAD-1", "KG-404", "SV-1"]
    assert out["answers_sent"] == 2 and not hub.hub.waiting

    answers = {a.findtext("{*}InAntwoordOp"): mid for mid, a in hub.hub.answers.items()}
    saldo = hub.answer(answers["SV-1"])
    assert saldo["BerichtType"] == "Saldoverzoek antwoord" and saldo["KlantnummerSE"] == debtor
    assert sorted(c["Factuurnummer"] for c in saldo["claims"]) == ours
    for c in saldo["claims"]:
        item = next(i for i in items if i.invoice_id == c["Factuurnummer"])
        principal = item.open_cents - item.costs_cents - item.interest_cents
        assert c["Hoofdsom"] == f"{principal / 100:.2f}"
        assert c["Kosten"] == f"{item.costs_cents / 100:.2f}"
        assert c["OorspronkelijkBedrag"] == f"{item.amount_cents / 100:.2f}"
        assert c["SoortSchuld"] == "huur" and c["DatumOntstaan"] == item.invoice_date.isoformat()
        assert c.get("FactuurnummerSHV") == (
            ours[0].lower() if c["Factuurnummer"] == ours[0] else None
        )
    unknown = hub.answer(answers["KG-404"])
    assert unknown["BerichtType"] == "Geen medewerking" and "onbekend" in unknown["Reden"]

    with ctx.engine.connect() as conn:
        rows = {r.message_id: r for r in conn.execute(select(s.skp_messages)).all()}
    assert rows["SV-1"].status == "answered" and rows["SV-1"].answer_due is None
    assert rows["BAD-1"].status == "unreadable" and "not a date" in rows["BAD-1"].note
    # a second round: nothing new, nothing answered twice
    again = debt_help.exchange_messages(ctx)
    assert again["fetched"] == 0 and again["answers_sent"] == 0 and hub.hub.answer_posts == 2


class DiesAfter:
    """The real adapter, dying at a chosen point (the process was killed)."""

    def __init__(self, inner: SoapExchange, at: str) -> None:
        self.inner, self.at = inner, at

    def fetch_inbox(self):  # type: ignore[no-untyped-def]
        return self.inner.fetch_inbox()

    def acknowledge(self, ids) -> None:  # type: ignore[no-untyped-def]
        if self.at == "acknowledge":
            raise RuntimeError("killed before confirming")
        self.inner.acknowledge(ids)

    def post_reply(self, reply) -> None:  # type: ignore[no-untyped-def]
        self.inner.post_reply(reply)  # the hub has it ...
        if self.at == "post_reply":
            raise RuntimeError("killed before recording the send")  # ... we never heard


def test_nothing_is_lost_or_answered_twice_across_crashes(
    tmp_path: Path, pki, hub: HubServer
) -> None:
    ctx = _ctx(tmp_path, pki, hub)
    debtor, _ = _debtor_with_open_items(ctx)
    hub.hub.put("KG-1", bericht("KG-1", "Kennisgeving", "2026-11-23", client=debtor))
    real = debt_help.exchange_for(ctx)
    assert isinstance(real, SoapExchange)
    # 1. fetched, then killed before anything was committed: the hub still has it
    real.fetch_inbox()
    assert "KG-1" in hub.hub.waiting
    # 2. committed, then killed before confirming: stored once, fetched again, confirmed
    with pytest.raises(RuntimeError):
        debt_help.exchange_messages(ctx, DiesAfter(real, "acknowledge"))
    assert "KG-1" in hub.hub.waiting
    # 3. handled, answer posted, killed before the send was recorded
    with pytest.raises(RuntimeError):
        debt_help.exchange_messages(ctx, DiesAfter(real, "post_reply"))
    assert hub.hub.confirmed == ["KG-1"] and hub.hub.answer_posts == 1
    out = debt_help.exchange_messages(ctx, real)
    assert out["answers_sent"] == 1
    assert hub.hub.answer_posts == 2 and len(hub.hub.answers) == 1  # same id: one answer
    with ctx.engine.connect() as conn:
        holds = conn.execute(select(s.holds).where(s.holds.c.debtor_id == debtor)).all()
        msgs = conn.execute(select(s.skp_messages)).all()
    assert len(holds) == 1 and holds[0].kind == "debt_assistance"
    assert len(msgs) == 1 and msgs[0].status == "answered"
    real.close()


def test_hub_trouble_is_retriable_and_a_wrong_organisation_is_fatal(
    tmp_path: Path, pki, hub: HubServer
) -> None:
    ctx = _ctx(tmp_path, pki, hub)
    ex = debt_help.exchange_for(ctx)
    assert isinstance(ex, SoapExchange)
    hub.faults.add("500")
    with pytest.raises(RetriableError, match="hub busy"):
        ex.fetch_inbox()
    hub.faults.add("malformed")
    with pytest.raises(RetriableError, match="unreadable"):
        ex.fetch_inbox()
    hub.faults.add("429")
    with pytest.raises(RetriableError, match="429"):
        ex.fetch_inbox()
    ex.settings = ex.settings.model_copy(update={"organisation_code": "SOMEONE-ELSE"})
    with pytest.raises(FatalError, match="unknown organisation"):
        ex.fetch_inbox()
    ex.close()
