"""The embedded default: a demo creditor that needs no account anywhere.

``seed`` writes, in a work folder: a SQLite "ERP" (read through the SQLite ODBC
driver), an SFTP root with today's CAMT.053 statement (served by a loopback SFTP server
with its own host key, pinned by fingerprint in the config), a Schuldenknooppunt portal
download with Kennisgevingen, SSH keys, and ``creditor.yaml`` tying it together.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import paramiko

from bench.generator import camt053, generate, write_erp, write_notices
from connectors.sftp import fingerprint_of
from connectors.sftp.localserver import LocalSftpServer

CONFIG_NAME = "creditor.yaml"
SFTP_USER = "vangnet"

DEMO_YAML = """\
# Demo creditor for vangnet's embedded default (written by `vangnet demo`).
# Every path is relative to this file. No secret is stored here: the SFTP key is a
# file reference, as a Prefect Secret block or an environment variable would be.
creditor:
  id: demo-woonstichting
  name: Woonstichting De Vang (demo)
  sector: housing
  language: nl

branding:
  display_name: Woonstichting De Vang
  phone: 088 123 45 67
  email: huurincasso@devang.example.nl
  website: https://www.devang.example.nl
  payment_link: https://betaal.devang.example.nl/?kenmerk={{reference}}&bedrag={{amount}}
  debt_help: Geldfit helpt gratis en anoniem, via www.geldfit.nl of 0800-8115.

ledger:
  url: sqlite:///ledger.sqlite

sources:
  erp:
    kind: odbc
    connection_string: "DRIVER={{SQLite3}};Database={erp}"
    page_size: 5000
    entities:
      debtors:
        query: >-
          SELECT relatienr, naam, email, telefoon, iban, straat, postcode, plaats, taal, gewijzigd_op
          FROM relaties
          WHERE gewijzigd_op > :watermark OR (gewijzigd_op = :watermark AND relatienr > :last_key)
          ORDER BY gewijzigd_op, relatienr
        key: relatienr
        watermark: gewijzigd_op
        columns: {{debtor_id: relatienr, name: naam, email: email, phone: telefoon, iban: iban,
                  street: straat, postcode: postcode, city: plaats, language: taal,
                  source_version: gewijzigd_op}}
      invoices:
        query: >-
          SELECT factuurnr, relatienr, factuurdatum, vervaldatum, bedrag, openstaand, kosten,
                 valuta, betalingskenmerk, betaaldatum, herinneringen, gewijzigd_op
          FROM facturen
          WHERE gewijzigd_op > :watermark OR (gewijzigd_op = :watermark AND factuurnr > :last_key)
          ORDER BY gewijzigd_op, factuurnr
        key: factuurnr
        watermark: gewijzigd_op
        columns: {{invoice_id: factuurnr, debtor_id: relatienr, invoice_date: factuurdatum,
                  due_date: vervaldatum, amount_cents: bedrag, open_cents: openstaand,
                  costs_cents: kosten, currency: valuta, payment_reference: betalingskenmerk, paid_date: betaaldatum,
                  prior_reminders: herinneringen, source_version: gewijzigd_op}}
    write_back:
      invoices: >-
        UPDATE facturen SET incassostatus = :status, vangnet_openstaand = :open_amount,
               vangnet_bijgewerkt = CURRENT_TIMESTAMP
        WHERE factuurnr = :record_id AND gewijzigd_op = :expected_version
      holds: >-
        UPDATE relaties SET schuldhulp = :hold, schuldhulp_sinds = :hold_since
        WHERE relatienr = :record_id AND gewijzigd_op = :expected_version
      debtors: >-
        UPDATE relaties SET voorkeursdag = :preferred_day, kanaal = :channel
        WHERE relatienr = :record_id AND gewijzigd_op = :expected_version
  bank:
    kind: sftp
    host: 127.0.0.1
    port: 0  # the demo's loopback server picks a free port at start
    username: {user}
    private_key: {{file: keys/client_ed25519}}
    host_key_fingerprint: "{fingerprint}"
    remote_dir: statements/incoming
    processed_dir: statements/processed
    failed_dir: statements/failed
    pattern: "*.xml"
    format: camt053

write_back:
  target: erp

channels:
  email: {{kind: outbox, dir: outbox}}
  sms: {{kind: outbox, dir: outbox}}
  letter: {{kind: outbox, dir: outbox}}

self_service:
  base_url: http://127.0.0.1:8000/r/   # `vangnet serve` (issue 9); the token is the debtor's key
  secret: {{file: keys/self_service.key}}

validation:
  data_docs_dir: data-docs        # GX Data Docs per run: data-docs/<date>/index.html

debt_help:
  exchange: {{kind: portal, inbox_dir: debt-help-inbox, outbox_dir: debt-help-outbox}}
  debt_type: huur
  proposals: {{accept_min_percentage: 30, max_term_months: 36}}
  wgs: {{enabled: true, min_days_late: 30, export_dir: wgs}}

scale:
  runner: {runner}  # {runner_why}

policy:
  partitions: 4
  contacts_per_week: 2
  max_reject_share: 0.5
"""


#: from this many debtors the demo creditor runs on a pool of worker processes
DEMO_PROCESSES_FROM = 20_000


def demo_runner(debtors: int) -> tuple[str, str]:
    """The demo creditor's ``scale.runner`` and why, by its size: a pool's start (each
    worker spawns and imports pandas, SQLAlchemy and the stages: 2-4 s) costs a small
    portfolio more than the second core saves it; from DEMO_PROCESSES_FROM debtors the
    pool pays (docs/performance.md)."""
    if debtors >= DEMO_PROCESSES_FROM:
        return "processes", "a pool of worker processes: every core (the default)"
    return "threads", (
        f"a small portfolio: starting worker processes costs more than it saves"
        f" (from {DEMO_PROCESSES_FROM:,} debtors: processes, the default)"
    )


def seed(
    workdir: Path,
    debtors: int,
    today: dt.date,
    seed_value: int = 7,
    months: int = 9,
    statement_lines: int | None = None,
) -> Path:
    """Create the demo creditor in ``workdir`` (once); returns the config path."""
    workdir = workdir.resolve()
    cfg = workdir / CONFIG_NAME
    if cfg.exists():
        return cfg
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys"
    keys.mkdir(exist_ok=True)
    host = paramiko.Ed25519Key.from_private_key_file(str(_keygen(keys / "host_ed25519")))
    _keygen(keys / "client_ed25519")
    secret = keys / "self_service.key"  # signs the personal links (never in the config)
    secret.write_text(base64.urlsafe_b64encode(os.urandom(48)).decode())
    secret.chmod(0o600)
    portfolio = generate(
        debtors, today, seed=seed_value, months=months, statement_lines=statement_lines
    )
    write_erp(workdir / "erp.sqlite", portfolio)
    incoming = workdir / "sftp" / "statements" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / f"camt053_{today:%Y%m%d}.xml").write_bytes(camt053(portfolio.statement, today))
    write_notices(
        workdir / "debt-help-inbox" / f"kennisgevingen_{today:%Y%m%d}.csv", portfolio.notices
    )
    tmp = cfg.with_suffix(".tmp")
    runner, why = demo_runner(debtors)
    tmp.write_text(
        DEMO_YAML.format(
            erp=workdir / "erp.sqlite",
            user=SFTP_USER,
            fingerprint=fingerprint_of(host),
            runner=runner,
            runner_why=why,
        )
    )
    tmp.replace(cfg)  # the config appears last: its presence means the seed is complete
    return cfg


def _keygen(path: Path) -> Path:
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    return path


def sftp_server(workdir: Path) -> LocalSftpServer:
    """The demo's loopback SFTP server (host key and client key from ``workdir/keys``)."""
    keys = workdir / "keys"
    host = paramiko.Ed25519Key.from_private_key_file(str(keys / "host_ed25519"))
    client = paramiko.Ed25519Key.from_private_key_file(str(keys / "client_ed25519"))
    return LocalSftpServer(workdir / "sftp", host_key=host, username=SFTP_USER, public_key=client)
