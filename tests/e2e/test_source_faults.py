"""The whole daily cycle under faults from the systems it reads and answers: Salesforce
and Exact Online as the creditor's ERP, the Schuldenknooppunt hub (SOAP, mutual TLS) as
its debt-help exchange. Each fake answers with the storm its provider's documentation
allows (429 with Retry-After or X-RateLimit headers, 5xx in the provider's error form,
a reset connection, a truncated body, an answer after the client's timeout, an expired
token, an outage). The cycle runs in a child process through the tasks' own functions
and retry policy (``tests/crash``), then the day is run to its end.

What must hold, compared with the same day without a fault:
- a transient fault costs nothing: the run goes through on its retries;
- an outage fails the run in the stage that met it (ingest, or debt help), naming the
  provider, before any contact: nobody is reminded on a half-read ledger, or while a
  Kennisgeving waits unread at the hub;
- the next run catches up: the ledger is the reference's row for row (no record lost,
  no cursor past uncommitted data), each message once, each hub message confirmed and
  answered once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.crash import harness as h
from tests.fakes.exact_online import Division, ExactServer, odate
from tests.fakes.https import make_ca, make_client_cert
from tests.fakes.salesforce import Org, SalesforceServer
from tests.fakes.schuldenknooppunt import HubServer, bericht, exchange_config
from tests.integration.connectors.exact_online.test_exact_creditor import YAML as EXACT_YAML
from tests.integration.connectors.exact_online.test_exact_creditor import water_division
from tests.integration.connectors.salesforce.test_salesforce_creditor import YAML as SF_YAML
from tests.integration.connectors.salesforce.test_salesforce_creditor import energy_org

pytestmark = pytest.mark.e2e
DEBTORS = 30
ENV = {
    "SF_CLIENT_ID": "cid",
    "SF_CLIENT_SECRET": "csecret",
    "EXACT_CLIENT_ID": "exact-id",
    "EXACT_CLIENT_SECRET": "exact-secret",
}
CHANGED = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)  # when the ERP rows last changed
# what each storm queues on the faulted fake: (kind, times, seconds)
STORMS: dict[str, list[tuple[str, int, float]]] = {
    "blips": [("429", 1, 0), ("500", 1, 0)],
    "reset": [("reset", 1, 0)],
    "malformed": [("malformed", 1, 0)],
    "slow": [("slow", 1, 1.5)],  # answered after the client gave up at 1 s
    "expired": [("expired", 1, 0)],  # every access token revoked
    "outage": [("500", 60, 0)],  # beyond every retry
}
CASES = [
    ("salesforce", "blips"),
    ("salesforce", "malformed"),
    ("salesforce", "expired"),
    ("salesforce", "outage"),
    ("exact_online", "reset"),
    ("exact_online", "slow"),
    ("exact_online", "expired"),
    ("exact_online", "outage"),
    ("schuldenknooppunt", "blips"),
    ("schuldenknooppunt", "slow"),
    ("schuldenknooppunt", "malformed"),
    ("schuldenknooppunt", "outage"),
]
FAILS_IN = {"salesforce": "ingest", "exact_online": "ingest", "schuldenknooppunt": "debt_help"}
NAMED = {"salesforce": "Salesforce", "exact_online": "Exact", "schuldenknooppunt": "hub"}


def _when(i: int) -> dt.datetime:
    return CHANGED + dt.timedelta(seconds=i)


def _org() -> Org:
    def stamp(i: int) -> str:
        return _when(i).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    return energy_org(DEBTORS, stamp, stamp, usd=None)


def _division() -> Division:
    return water_division(DEBTORS, lambda i: odate(_when(i)), supplier=None, receivables=0)


@contextlib.contextmanager
def creditor(root: Path, erp: str) -> Iterator[tuple[h.Creditor, dict[str, Any]]]:
    """A creditor on Salesforce (with the Schuldenknooppunt over SOAP) or on Exact
    Online, its fakes running; clients with a 1 s timeout and short backoffs."""
    root.mkdir(parents=True)
    ca = make_ca(root / "ca")
    with contextlib.ExitStack() as stack:
        peers: dict[str, Any] = {}
        if erp == "salesforce":
            sf = stack.enter_context(SalesforceServer(ca, _org()))
            doc = yaml.safe_load(SF_YAML.format(url=sf.url, ca=ca.ca_pem))
            doc["sources"]["crm"].update(timeout_seconds=1, max_retries=1, max_backoff_seconds=0.2)
            cert, key = make_client_cert(ca, root / "pki")
            hub = stack.enter_context(HubServer(ca))
            hub.hub.put("KG-1", bericht("KG-1", "Kennisgeving", "2026-11-23", client="E3"))
            hub.hub.put(
                "SV-1",
                bericht("SV-1", "Saldoverzoek", "2026-11-23", client="E5", invoices=["EN-5"]),
            )
            doc["debt_help"] = {
                "exchange": exchange_config(
                    hub, ca, cert, key, connect_timeout_seconds=1, read_timeout_seconds=1
                )
            }
            peers = {"salesforce": sf, "schuldenknooppunt": hub}
        else:
            ex = stack.enter_context(ExactServer(ca, _division()))
            ex.keys["salesinvoice/SalesInvoices"] = "InvoiceID"
            doc = yaml.safe_load(EXACT_YAML.format(url=ex.url, ca=ca.ca_pem))
            doc["sources"]["erp"].update(timeout_seconds=1, max_retries=1)
            del doc["sources"]["erp"]["entities"]["payments"]  # none booked in the ERP
            peers = {"exact_online": ex}
        doc["channels"] = {"email": {"kind": "outbox", "dir": str(root / "outbox")}}
        cfg = root / "creditor.yaml"
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        if erp == "exact_online":
            with pytest.MonkeyPatch.context() as mp:
                for k, v in ENV.items():
                    mp.setenv(k, v)
                done = CliRunner().invoke(
                    app,
                    ["exact", "authorize", "good-code", "--creditor", str(cfg), "--source", "erp"],
                )
            assert done.exit_code == 0, done.stdout
        yield h.Creditor(cfg, None, dict(ENV)), peers


def _outbox(c: h.Creditor) -> set[str]:
    box = c.cfg.parent / "outbox"
    return {p.name for p in box.rglob("*") if p.is_file()} if box.exists() else set()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each creditor's day without a fault."""
    out = {}
    for erp in ("salesforce", "exact_online"):
        with creditor(tmp_path_factory.mktemp(erp) / "c", erp) as (c, peers):
            h.settle(c)
            hub = peers.get("schuldenknooppunt")
            out[erp] = {
                "ledger": h.ledger_dump(h.ledger_url_of(c)),
                "outbox": _outbox(c),
                "answers": sorted(hub.hub.answers) if hub else [],
            }
    return out


@pytest.mark.parametrize(("target", "storm"), CASES)
def test_the_cycle_rides_out_a_provider_storm_or_stops_before_contact(
    tmp_path: Path, references: dict[str, dict[str, Any]], target: str, storm: str
) -> None:
    erp = "exact_online" if target == "exact_online" else "salesforce"
    with creditor(tmp_path / "c", erp) as (c, peers):
        c.faulted = [peers[target]]
        h.STORMS.setdefault(f"{target}:{storm}", STORMS[storm])
        first = h.run_once(c, ("faults", f"{target}:{storm}", 0))
        injected = list(peers[target].faults.injected)
        sent_in_first = _outbox(c)
        h.settle(c)
        got = h.ledger_dump(h.ledger_url_of(c))
        outbox = _outbox(c)
        hub = peers.get("schuldenknooppunt")
        answers = sorted(hub.hub.answers) if hub else []
        confirmed = list(hub.hub.confirmed) if hub else []
    ref = references[erp]
    assert injected, "the storm met no request"
    if storm == "outage":
        assert first["ended"] == "failed", first
        assert first["stage"] == FAILS_IN[target], first
        assert NAMED[target] in first["error"], first["error"]
        assert sent_in_first == set()  # stopped before any contact
    else:
        assert first["ended"] == "done", first.get("error")
    assert h.differences(ref["ledger"], got) == {}  # nothing lost, nothing twice
    assert outbox == ref["outbox"]  # each message once, none lost
    assert answers == ref["answers"]
    if hub:
        assert sorted(confirmed) == ["KG-1", "SV-1"]  # each hub message confirmed once
