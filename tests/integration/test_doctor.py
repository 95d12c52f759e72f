"""``vangnet doctor`` against real local peers: the demo ERP through the SQLite ODBC
driver, the loopback SFTP server, and the loopback fakes of Salesforce, Exact Online,
SendGrid, MessageBird and the Schuldenknooppunt (mutual TLS), each reached by its real
client library. All green first; then each kind of trouble is named in its row."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.demo import seed, sftp_server
from flows.doctor import Check, run_checks
from tests.fakes.exact_online import Division, ExactServer
from tests.fakes.https import make_ca, make_client_cert
from tests.fakes.messagebird import MessageBirdServer
from tests.fakes.messagebird import channel_config as messagebird_channel
from tests.fakes.salesforce import SalesforceServer
from tests.fakes.schuldenknooppunt import HubServer, exchange_config
from tests.fakes.sendgrid import SendGridServer
from tests.fakes.sendgrid import channel_config as sendgrid_channel

TODAY = dt.date(2026, 11, 24)


@pytest.fixture
def everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The demo creditor with every kind of connection configured beside its own."""
    ca = make_ca(tmp_path / "ca")
    cert, key = make_client_cert(ca, tmp_path / "pki", days=365)
    cert.chmod(0o600)
    key.chmod(0o600)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_pem))  # urllib (sendgrid) trusts the test CA
    for name, value in {
        "SF_ID": "cid",
        "SF_SECRET": "csecret",
        "EXACT_ID": "exact-id",
        "EXACT_SECRET": "exact-secret",
        "SG_KEY": "SG.test-key",
        "MB_KEY": "live_test_key",
    }.items():
        monkeypatch.setenv(name, value)
    cfg = seed(tmp_path / "demo", 40, TODAY)
    division = Division(4321)
    with (
        SalesforceServer(ca) as sf,
        ExactServer(ca, division) as exact,
        SendGridServer(ca) as sg,
        MessageBirdServer(ca) as mb,
        HubServer(ca) as hub,
        sftp_server(cfg.parent) as sftp,
    ):
        doc = yaml.safe_load(cfg.read_text())
        doc["sources"]["crm"] = {
            "kind": "salesforce",
            "instance_url": sf.url,
            "token_url": f"{sf.url}/services/oauth2/token",
            "client_id": {"env": "SF_ID"},
            "client_secret": {"env": "SF_SECRET"},
            "ca_bundle": str(ca.ca_pem),
            "entities": {
                "debtors": {"object": "Account", "columns": {"debtor_id": "Id", "name": "Name"}}
            },
        }
        doc["sources"]["exact"] = {
            "kind": "exact_online",
            "base_url": exact.url,
            "division": 4321,
            "client_id": {"env": "EXACT_ID"},
            "client_secret": {"env": "EXACT_SECRET"},
            "redirect_uri": "https://vangnet.example/exact/callback",
            "ca_bundle": str(ca.ca_pem),
            "entities": {
                "debtors": {
                    "endpoint": "sync/CRM/Accounts",
                    "columns": {"debtor_id": "ID", "name": "Name"},
                }
            },
        }
        doc["channels"]["email"] = sendgrid_channel(sg)
        doc["channels"]["sms"] = messagebird_channel(mb, ca)
        doc["debt_help"]["exchange"] = exchange_config(hub, ca, cert, key)
        doc["debt_help"].pop("inbox_dir", None)
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        runner = CliRunner()
        authorised = runner.invoke(
            app, ["exact", "authorize", "good-code", "--creditor", str(cfg), "--source", "exact"]
        )
        assert authorised.exit_code == 0, authorised.output
        yield {
            "cfg": cfg,
            "port": sftp.port,
            "ca": ca,
            "sg": sg,
            "mb": mb,
            "sf": sf,
            "tmp": tmp_path,
        }


def by_component(checks: list[Check]) -> dict[str, Check]:
    return {c.component: c for c in checks}


def test_every_connection_checked_and_green(everything: dict[str, Any]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # as on a machine with no Prefect server configured (an e2e test in the same worker
    # may have left its test server's URL in the settings): the Prefect check itself is
    # tested against a real server in tests/e2e/test_prefect_server.py
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        checks = run_checks(everything["cfg"], sftp_port=everything["port"])
    rows = by_component(checks)
    assert not [c for c in checks if c.status != "ok"], [c for c in checks if c.status != "ok"]
    assert {
        "source erp (odbc)",
        "source bank (sftp)",
        "source crm (salesforce)",
        "source exact (exact_online)",
        "channel email (sendgrid)",
        "channel sms (messagebird)",
        "channel letter (outbox)",
        "schuldenknooppunt (soap)",
        "ledger",
        "secret sources.crm.client_secret",
        "secret debt_help.exchange.client_key",
    } <= set(rows)
    assert "SQLite" in rows["source erp (odbc)"].detail
    assert "file(s) waiting" in rows["source bank (sftp)"].detail
    assert "daily API requests" in rows["source crm (salesforce)"].detail
    assert "authorised as vangnet@wsnoord.example" in rows["source exact (exact_online)"].detail
    assert "daily budget" in rows["source exact (exact_online)"].detail
    assert "requests left" in rows["channel email (sendgrid)"].detail
    assert "balance 125.5 euros" in rows["channel sms (messagebird)"].detail
    assert "client certificate accepted" in rows["schuldenknooppunt (soap)"].detail
    # secrets are resolved, never shown
    text = json.dumps([c.__dict__ for c in checks])
    for secret in ("csecret", "exact-secret", "SG.test-key", "live_test_key"):
        assert secret not in text


def test_each_kind_of_trouble_is_named(
    everything: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg: Path = everything["cfg"]
    everything["sg"].box.scopes = ["mail.send"]  # no Email Activity: lookups impossible
    everything["mb"].centre.balance = 0.0
    everything["sf"].org.api_calls = everything["sf"].org.api_limit - 5
    monkeypatch.setenv("SF_SECRET", "wrong")
    monkeypatch.delenv("EXACT_SECRET")
    # a client certificate from another CA, about to expire anyway
    other = make_ca(everything["tmp"] / "other")
    cert, key = make_client_cert(other, everything["tmp"] / "other")
    doc = yaml.safe_load(cfg.read_text())
    doc["debt_help"]["exchange"]["client_cert"] = {"file": str(cert)}
    doc["debt_help"]["exchange"]["client_key"] = {"file": str(key)}
    # a host key that is not the bank's
    doc["sources"]["bank"].pop("known_hosts", None)
    doc["sources"]["bank"]["host_key_fingerprint"] = "SHA256:" + "A" * 43
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    args = ["doctor", "--creditor", str(cfg), "--sftp-port", str(everything["port"])]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 1 and "failure(s)" in table.output
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    row = {c["component"]: c for c in json.loads(result.output)}

    def says(component: str, status: str, words: str) -> None:
        assert row[component]["status"] == status and words in row[component]["detail"], row[
            component
        ]

    says("source bank (sftp)", "fail", "host key")
    says("source crm (salesforce)", "fail", "refused the client credentials")
    says("secret sources.exact.client_secret", "fail", "EXACT_SECRET is not set")
    says("channel email (sendgrid)", "warn", "email_activity.read")
    says("channel sms (messagebird)", "fail", "used up")
    says("schuldenknooppunt (soap)", "fail", "certificate")
    says("secret debt_help.exchange.client_key", "warn", "chmod 600")
    assert "wrong" not in result.output and "wrong" not in table.output
