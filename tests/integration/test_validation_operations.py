"""Validation as operations meet it: the quarantine commands (list, show, release,
discard; all audited), GX Data Docs written per run, a bank line held back by the
statement suite, and an export that moves the open total stopping contact."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path

from sqlalchemy import insert, select
from typer.testing import CliRunner

from flows import stages
from flows.cli import app
from flows.context import make_ctx
from flows.demo import seed, sftp_server
from ledger import schema as s
from ledger.store import utcnow
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _run_validation(tmp_path: Path, debtors: int = 150):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", debtors, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    for entity in stages.ENTITIES:
        stages.ingest_entity(ctx, "erp", entity)
    out = stages.validate_staged(ctx)  # with the demo's data_docs_dir
    return cfg, ctx, out


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_quarantine_commands_and_data_docs(tmp_path: Path) -> None:
    cfg, ctx, out = _run_validation(tmp_path)
    docs = Path(out["data_docs"])
    assert docs.exists() and docs.parent == tmp_path / "demo" / "data-docs" / "2026-11-24"
    html = "".join(p.read_text(errors="ignore") for p in docs.parent.rglob("*.html"))
    with sqlite3.connect(tmp_path / "demo" / "erp.sqlite") as erp:
        people = erp.execute("SELECT naam, email, iban FROM relaties LIMIT 50").fetchall()
    assert "erp.invoices" in html and "erp.debtors" in html
    for name, email, iban in people:
        assert name not in html and (email or "@@") not in html and iban not in html

    listed = _cli("quarantine", "list", "--creditor", str(cfg), "--json")
    rows = [json.loads(line) for line in listed.output.splitlines()]
    unknown = [r for r in rows if "invoice.debtor_known" in r["rules"]]
    bad_iban = [r for r in rows if r["rules"] == "debtor.iban_valid"]
    assert unknown and bad_iban
    only = _cli(
        "quarantine", "list", "--creditor", str(cfg), "--rule", "invoice.debtor_known", "--json"
    )
    assert len(only.output.splitlines()) == len(unknown)

    shown = json.loads(
        _cli("quarantine", "show", str(bad_iban[0]["id"]), "--creditor", str(cfg)).output
    )
    assert shown["failures"][0]["rule"] == "debtor.iban_valid"
    assert shown["fields"]["iban"] != "NL00INGB0001234567"
    assert re.fullmatch(r"(\w\. ?)+", shown["fields"]["name"])  # initials only

    # the unknown debtor arrives later: releasing re-validates and now it passes
    inv = unknown[0]
    shown_inv = _cli("quarantine", "show", str(inv["id"]), "--creditor", str(cfg)).output
    owner = json.loads(shown_inv)["fields"]["debtor_id"]
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(s.debtors).values(
                creditor_id=ctx.creditor_id,
                debtor_id=owner,
                source="erp",
                name="Nieuw",
                language="nl",
                bucket=1,
                updated_at=utcnow(),
            )
        )
    ok = _cli(
        "quarantine", "release", str(inv["id"]), "--creditor", str(cfg), "--operator", "ops@demo"
    )
    assert ok.exit_code == 0 and "released" in ok.output, ok.output
    refused = _cli(
        "quarantine",
        "release",
        str(bad_iban[0]["id"]),
        "--creditor",
        str(cfg),
        "--operator",
        "ops@demo",
    )
    assert refused.exit_code == 1 and "still fails debtor.iban_valid" in refused.output
    again = _cli(
        "quarantine", "release", str(inv["id"]), "--creditor", str(cfg), "--operator", "ops"
    )
    assert again.exit_code == 2 and "not open" in again.output
    no_reason = _cli(
        "quarantine",
        "discard",
        str(bad_iban[0]["id"]),
        "--creditor",
        str(cfg),
        "--reason",
        "",
        "--operator",
        "ops",
    )
    assert no_reason.exit_code == 2
    gone = _cli(
        "quarantine",
        "discard",
        str(bad_iban[0]["id"]),
        "--creditor",
        str(cfg),
        "--reason",
        "testrecord",
        "--operator",
        "ops@demo",
    )
    assert gone.exit_code == 0 and "1 record(s) discarded" in gone.output

    with ctx.engine.connect() as conn:
        taken = conn.execute(
            select(s.invoices.c.debtor_id).where(s.invoices.c.invoice_id == inv["record"])
        ).scalar()
        actions = [
            (a.actor, a.action)
            for a in conn.execute(
                select(s.audit_log).where(s.audit_log.c.action.like("quarantine.%"))
            ).all()
        ]
    assert taken == owner
    assert actions == [
        ("ops@demo", "quarantine.released"),
        ("ops@demo", "quarantine.release_refused"),
        ("ops@demo", "quarantine.discarded"),
    ]


def test_a_bad_bank_line_is_held_and_the_rest_goes_on(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 60, NOW.date())
    statement = next((tmp_path / "demo" / "sftp" / "statements" / "incoming").iterdir())
    xml = statement.read_text()
    # one line booked next summer (a corrupt file), one payer IBAN with bad check digits
    xml, n = re.subn(r"(<BookgDt>\s*<Dt>)[^<]+", r"\g<1>2027-06-01", xml, count=1)
    ibans = list(re.finditer(r"(<DbtrAcct>\s*<Id>\s*<IBAN>)([^<]+)", xml))
    second = ibans[1]  # another line than the one booked next summer
    xml = xml[: second.start(2)] + "NL00INGB0001234567" + xml[second.end(2) :]
    assert n == 1
    statement.write_text(xml)
    ctx = make_ctx(str(cfg), NOW)
    with sftp_server(tmp_path / "demo") as srv:
        out = stages.fetch_statements(ctx, "bank", srv.port)
    assert out["quarantined_lines"] == 1 and out["entries"] > 0
    listed = [
        json.loads(line)
        for line in _cli(
            "quarantine", "list", "--creditor", str(cfg), "--entity", "statement_line", "--json"
        ).output.splitlines()
    ]
    assert [r["rules"] for r in listed] == ["statement.booking_date_plausible"]
    with ctx.engine.connect() as conn:
        held = conn.execute(
            select(s.payments.c.payment_id).where(s.payments.c.payment_id == listed[0]["record"])
        ).first()
        odd_iban = conn.execute(
            select(s.payments.c.payment_id).where(
                s.payments.c.counterparty_iban == "NL00INGB0001234567"
            )
        ).first()
    assert held is None  # never matched while held
    assert odd_iban is not None  # a payer IBAN that fails its check is reported, not held
    refused = _cli(
        "quarantine", "release", str(listed[0]["id"]), "--creditor", str(cfg), "--operator", "ops"
    )
    assert refused.exit_code == 1 and "booking_date_plausible" in refused.output


def test_an_export_that_moves_the_open_total_stops_contact(tmp_path: Path) -> None:
    cfg, ctx, first = _run_validation(tmp_path)
    assert first["stopped"] is None
    erp = sqlite3.connect(tmp_path / "demo" / "erp.sqlite")
    # a 10% rise in what some items still owe is business as usual
    erp.execute(
        "UPDATE facturen SET openstaand = printf('%.2f', openstaand * 1.1), "
        "gewijzigd_op = '2026-11-24T09:00:00' WHERE rowid % 10 = 0 AND betaaldatum IS NULL"
    )
    erp.commit()
    stages.ingest_entity(ctx, "erp", "invoices")
    assert stages.validate_staged(ctx)["stopped"] is None
    # every open item suddenly shows nothing owed (and nothing paid): broken
    erp.execute(
        "UPDATE facturen SET openstaand = '0.00', kosten = '0.00', "
        "gewijzigd_op = '2026-11-24T09:30:00' WHERE betaaldatum IS NULL"
    )
    erp.commit()
    erp.close()
    stages.ingest_entity(ctx, "erp", "invoices")
    out = stages.validate_staged(ctx)
    assert out["stopped"] and "open total" in out["stopped"] and "looks broken" in out["stopped"]
    with ctx.engine.connect() as conn:
        reason = conn.execute(select(s.creditors.c.stopped_reason)).scalar()
    assert reason == out["stopped"]
