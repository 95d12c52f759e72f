"""The web-portal route end to end on the demo creditor: the portal's CSV downloads in,
holds written back into the demo ERP (SQLite ODBC), the filled-in answer CSVs out; a
payment proposal decided within policy or by a person; a scheme agreed and ended."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy import select

from flows import debt_help, stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from tests.cycle_steps import ingest_and_validate
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
HEADER = "BerichtId;BerichtType;Datum;KlantnummerSE;KlantnummerSHV;Percentage;Looptijd;Ingangsdatum"


def _ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    return ctx


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_saldoverzoek_round_trip_and_holds_in_the_erp(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    demo = tmp_path / "demo"
    inbox = demo / "debt-help-inbox"
    notices = _rows(next(inbox.glob("*.csv")))
    held = {n["KlantnummerSE"] for n in notices if n["BerichtType"] == "Kennisgeving"}
    asked = {n["KlantnummerSE"] for n in notices if n["BerichtType"] == "Saldoverzoek"}
    assert held and asked
    (inbox / "kapot.csv").write_bytes(
        "BerichtId;BerichtType\nX;Kennisgeving caf\xe9\n".encode("latin-1")
    )

    out = debt_help.exchange_messages(ctx)
    assert out["holds"] == len(held) and out["unreadable"] == 1
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        f"kennisgevingen_{NOW:%Y%m%d}.csv"
    ]
    assert [p.name for p in (inbox / "failed").iterdir()] == ["kapot.csv"]

    saldo = _rows(demo / "debt-help-outbox" / f"saldoverzoek-antwoord-{NOW:%Y%m%d}.csv")
    with ctx.engine.connect() as conn:
        open_items = conn.execute(
            select(s.invoices.c.debtor_id, s.invoices.c.invoice_id, s.invoices.c.open_cents).where(
                s.invoices.c.debtor_id.in_(asked), s.invoices.c.open_cents > 0
            )
        ).all()
    assert {(r["KlantnummerSE"], r["Factuurnummer"]) for r in saldo} == {
        (d, i) for d, i, _ in open_items
    }
    for r in saldo:
        assert r["SoortSchuld"] == "huur" and r["InAntwoordOp"].startswith("SKN-")
        assert "," in r["Hoofdsom"]  # Dutch decimals, as the portal's spreadsheet expects
    answers = _rows(demo / "debt-help-outbox" / f"antwoorden-{NOW:%Y%m%d}.csv")
    assert {
        a["KlantnummerSE"] for a in answers if a["BerichtType"] == "Kennisgeving antwoord"
    } == held

    # the holds go back into the creditor's own system
    stages.write_back(ctx)
    with sqlite3.connect(demo / "erp.sqlite") as erp:
        marked = dict(
            erp.execute(
                "SELECT relatienr, schuldhulp_sinds FROM relaties WHERE schuldhulp = 'debt_assistance'"
            ).fetchall()
        )
    assert set(marked) == held and set(marked.values()) == {NOW.date().isoformat()}

    # nothing twice: a second round writes no new answer rows
    again = debt_help.exchange_messages(ctx)
    assert again["fetched"] == 0 and again["answers_sent"] == 0
    assert len(_rows(demo / "debt-help-outbox" / f"saldoverzoek-antwoord-{NOW:%Y%m%d}.csv")) == len(
        saldo
    )


def test_proposals_schemes_and_the_end_of_a_scheme(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    demo = tmp_path / "demo"
    inbox = demo / "debt-help-inbox"
    for f in inbox.glob("*.csv"):
        f.unlink()
    with ctx.engine.connect() as conn:
        a, b = conn.execute(
            select(s.invoices.c.debtor_id).where(s.invoices.c.open_cents > 0).distinct().limit(2)
        ).scalars()
    (inbox / "dag1.csv").write_text(
        f"{HEADER}\n"
        f"KG-A;Kennisgeving;2026-11-20;{a};SHV-A;;;\n"
        f"BV-A;Betaalvoorstel;2026-11-24;{a};SHV-A;40;18;2027-01-01\n"
        f"BV-B;Betaalvoorstel;2026-11-24;{b};SHV-B;10;36;2027-01-01\n"
    )
    out = debt_help.exchange_messages(ctx)
    assert out["review"] == 1 and out["answers_sent"] == 2  # KG antwoord + accepted BV-A
    due = {d["message_id"]: d for d in out["due"]}
    assert due["BV-B"]["status"] == "review" and "10.0% below 30.0%" in due["BV-B"]["note"]
    assert due["BV-B"]["answer_due"] == "2026-12-08"  # 10 working days
    # a person answers the one in review; the reason is kept out of formula reach
    assert (
        debt_help.answer_review(ctx, "BV-B", "reject", '=HYPERLINK("x")', "ops@wooncorp")
        == "answered"
    )
    debt_help.exchange_messages(ctx)
    answers = _rows(demo / "debt-help-outbox" / f"antwoorden-{NOW:%Y%m%d}.csv")
    by_reply = {r["InAntwoordOp"]: r for r in answers}
    assert by_reply["BV-A"]["Akkoord"] == "ja" and by_reply["BV-B"]["Akkoord"] == "nee"
    assert by_reply["BV-B"]["Reden"] == '\'=HYPERLINK("x")'
    with ctx.engine.connect() as conn:  # written in one go, marked in one go
        owed = dict(
            conn.execute(
                select(s.skp_messages.c.message_id, s.skp_messages.c.answer_due).where(
                    s.skp_messages.c.message_id.in_(["KG-A", "BV-A", "BV-B"])
                )
            ).all()
        )
        replies = conn.execute(select(s.skp_replies.c.status, s.skp_replies.c.sent_at)).all()
    assert owed == {"KG-A": None, "BV-A": None, "BV-B": None}
    assert replies and all(r.status == "sent" and r.sent_at is not None for r in replies)

    (inbox / "dag2.csv").write_text(
        f"{HEADER}\nAK-A;Schuldregeling akkoord;2026-11-24;{a};SHV-A;;;\n"
    )
    debt_help.exchange_messages(ctx)
    with ctx.engine.connect() as conn:
        arr = conn.execute(select(s.arrangements).where(s.arrangements.c.debtor_id == a)).one()
        total = sum(
            conn.execute(
                select(s.invoices.c.open_cents).where(
                    s.invoices.c.debtor_id == a, s.invoices.c.open_cents > 0
                )
            ).scalars()
        )
    assert arr.status == "active" and len(arr.instalments) == 18
    assert arr.instalments[0]["due_on"] == "2027-01-01"
    assert arr.total_cents == round(total * 0.40)
    # reconciliation follows it: nothing due yet today; nothing paid by March is broken
    assert debt_help.track_arrangements(ctx) == {"active": 1, "completed": 0, "broken": 0}
    march = make_ctx(str(demo / "creditor.yaml"), "2027-03-15T10:00:00+01:00")
    assert debt_help.track_arrangements(march)["broken"] == 1
    with ctx.engine.begin() as conn:  # (the next step reads it active again)
        conn.execute(s.arrangements.update().values(status="active"))

    (inbox / "dag3.csv").write_text(
        f"{HEADER}\nEND-A;Schuldregeling beëindigd;2026-11-24;{a};SHV-A;;;\n"
    )
    debt_help.exchange_messages(ctx)
    with ctx.engine.connect() as conn:
        hold = conn.execute(select(s.holds).where(s.holds.c.debtor_id == a)).one()
        arr = conn.execute(select(s.arrangements).where(s.arrangements.c.debtor_id == a)).one()
        lifted = (
            conn.execute(
                select(s.audit_log.c.actor).where(
                    s.audit_log.c.action == "hold.lifted", s.audit_log.c.subject == a
                )
            )
            .scalars()
            .all()
        )
        wb = (
            conn.execute(
                select(s.write_backs.c["values"])
                .where(s.write_backs.c.entity == "holds", s.write_backs.c.record_id == a)
                .order_by(s.write_backs.c.id)
            )
            .scalars()
            .all()
        )
    assert hold.lifted_at is not None and hold.lifted_by == "schuldenknooppunt"
    assert arr.status == "ended" and lifted == ["schuldenknooppunt"]
    assert [v["hold"] for v in wb] == ["debt_assistance", ""]


def test_the_portal_route_over_sftp(tmp_path: Path) -> None:
    """Downloads fetched from an SFTP folder (the loopback server, pinned host key),
    moved to processed/ there once safe locally; the answer files uploaded back."""
    import shutil

    import yaml

    from flows.demo import sftp_server

    _ctx(tmp_path)  # the demo creditor, its debtors and claims ingested
    demo = tmp_path / "demo"
    local = demo / "debt-help-inbox"
    remote = demo / "sftp" / "skn" / "downloads"
    remote.mkdir(parents=True)
    for f in local.glob("*.csv"):
        shutil.move(str(f), remote / f.name)
    cfg = demo / "creditor.yaml"
    doc = yaml.safe_load(cfg.read_text())
    bank = doc["sources"]["bank"]
    with sftp_server(demo) as srv:
        doc["debt_help"]["exchange"]["sftp"] = {
            "host": "127.0.0.1",
            "port": srv.port,
            "username": bank["username"],
            "private_key": bank["private_key"],
            "host_key_fingerprint": bank["host_key_fingerprint"],
            "remote_dir": "skn/downloads",
            "processed_dir": "skn/processed",
        }
        doc["debt_help"]["exchange"]["upload_dir"] = "skn/answers"
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        sctx = make_ctx(str(cfg), NOW)
        out = debt_help.exchange_messages(sctx)
        again = debt_help.exchange_messages(sctx)
    assert out["stored"] > 0 and out["holds"] > 0 and out["answer_files_uploaded"] == 2
    assert list(remote.iterdir()) == []
    assert [p.name for p in (demo / "sftp" / "skn" / "processed").iterdir()] == [
        f"kennisgevingen_{NOW:%Y%m%d}.csv"
    ]
    uploaded = sorted(p.name for p in (demo / "sftp" / "skn" / "answers").iterdir())
    assert uploaded == [f"antwoorden-{NOW:%Y%m%d}.csv", f"saldoverzoek-antwoord-{NOW:%Y%m%d}.csv"]
    assert (demo / "sftp" / "skn" / "answers" / uploaded[1]).read_bytes() == (
        demo / "debt-help-outbox" / uploaded[1]
    ).read_bytes()
    assert again["fetched"] == 0 and again["answer_files_uploaded"] == 0
