"""The whole daily cycle through Prefect on the embedded default: the ERP through the
SQLite ODBC driver, the statement from the loopback SFTP server, the ledger on SQLite
or PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.context import make_ctx
from flows.cycle import daily_cycle
from flows.demo import sftp_server
from ledger import schema as s

from .conftest import MORNING

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def run(demo: Path, now: dt.datetime) -> dict:
    with sftp_server(demo) as srv:
        return daily_cycle(str(demo / "creditor.yaml"), now.isoformat(), srv.port)


def sent(result: dict) -> int:
    return sum(r["sent"] for r in result["send"].values())


def _check_first_run(demo: Path, r1: dict) -> None:
    assert r1["ingest"]["rows"] > 1000
    v = r1["validate"]["entities"]
    assert v["invoices"]["quarantined"] > 0 and v["invoices"]["passed"] > 1000
    assert r1["validate"]["stopped"] is None
    assert r1["debt_help"]["holds"] >= 1
    assert r1["reconcile"]["matched"] > 0 and r1["reconcile"]["unmatched"] > 0
    assert set(r1["assess"]["segments"]) >= {"on_time", "forgetful", "cant_pay", "protected"}
    assert sent(r1) > 0 and r1["plan"]["planned"] == sent(r1)
    assert r1["write_back"]["applied"] > 0
    # every message is a file in the outbox, each exactly once
    files = list((demo / "outbox").glob("*/*/*.txt"))
    assert len(files) == sent(r1)
    # the statement was picked up and moved
    assert list((demo / "sftp/statements/incoming").iterdir()) == []
    assert len(list((demo / "sftp/statements/processed").iterdir())) == 1
    # the creditor sees the payment status in its own system
    with sqlite3.connect(demo / "erp.sqlite") as erp:
        statuses = dict(
            erp.execute(
                "SELECT incassostatus, count(*) FROM facturen WHERE incassostatus IS NOT NULL GROUP BY 1"
            )
        )
        holds = erp.execute("SELECT count(*) FROM relaties WHERE schuldhulp IS NOT NULL").fetchone()
    # payment statuses on invoices, and the debt-assistance holds on the debtors
    assert sum(statuses.values()) + holds[0] == r1["write_back"]["applied"]
    assert set(statuses) <= {"betaald", "deels betaald"} and holds[0] == r1["debt_help"]["holds"]


def _check_protected_untouched(demo: Path) -> None:
    ctx = make_ctx(str(demo / "creditor.yaml"))
    with ctx.engine.connect() as conn:
        held = set(conn.execute(select(s.holds.c.debtor_id)).scalars())
        contacted = set(
            conn.execute(
                select(s.contacts.c.debtor_id).where(s.contacts.c.status == "sent")
            ).scalars()
        )
    assert held and not (held & contacted)


def test_cycle_twice_on_sqlite(demo_dir: Path) -> None:
    r1 = run(demo_dir, MORNING.astimezone(dt.UTC))  # a UTC clock, as a server has
    _check_first_run(demo_dir, r1)
    _check_protected_untouched(demo_dir)
    r2 = run(demo_dir, MORNING + dt.timedelta(hours=2))
    assert r2["ingest"]["rows"] == 0
    assert sent(r2) == 0 and r2["plan"]["planned"] == 0
    assert r2["write_back"] == {
        "applied": 0,
        "conflict": 0,
        "failed": 0,
        "planned_preferences": 0,
        "retried_conflicts": 0,
        "resumed": 0,
    }
    # only the lines nothing fitted are looked at again (for 30 days); nothing changes
    assert r2["reconcile"]["payments"] == r1["reconcile"]["unmatched"]
    assert r2["reconcile"]["matched"] == 0 and r2["reconcile"]["allocated_cents"] == 0
    assert len(list((demo_dir / "outbox").glob("*/*/*.txt"))) == sent(r1)


def test_cycle_twice_with_the_ledger_on_postgres(demo_dir: Path, pg_url: str) -> None:
    cfg = demo_dir / "creditor.yaml"
    cfg.write_text(cfg.read_text().replace("url: sqlite:///ledger.sqlite", f"url: {pg_url}"))
    r1 = run(demo_dir, MORNING)
    _check_first_run(demo_dir, r1)
    _check_protected_untouched(demo_dir)
    assert not (demo_dir / "ledger.sqlite").exists()
    r2 = run(demo_dir, MORNING + dt.timedelta(hours=1))
    assert sent(r2) == 0 and r2["write_back"]["applied"] == 0


def test_quiet_hours_hold_messages_and_a_kennisgeving_cancels_them(demo_dir: Path) -> None:
    evening = MORNING.replace(hour=21)
    r1 = run(demo_dir, evening)
    assert sent(r1) == 0 and r1["plan"]["planned"] > 0  # nothing goes out after 20:00
    ctx = make_ctx(str(demo_dir / "creditor.yaml"))
    with ctx.engine.connect() as conn:
        debtor = conn.execute(
            select(s.contacts.c.debtor_id).where(s.contacts.c.status == "planned").limit(1)
        ).scalar()
    inbox = demo_dir / "debt-help-inbox"
    (inbox / "kennisgevingen_extra.csv").write_text(
        f"BerichtId;BerichtType;Datum;KlantnummerSE;OrganisatieSHV\nSKN-X-1;Kennisgeving;2026-11-24;{debtor};Gemeente\n"
    )
    r2 = run(demo_dir, MORNING + dt.timedelta(days=1))
    assert r2["debt_help"]["holds"] == 1 and r2["debt_help"]["cancelled_contacts"] >= 1
    assert sent(r2) > 0
    with ctx.engine.connect() as conn:
        statuses = set(
            conn.execute(
                select(s.contacts.c.status).where(s.contacts.c.debtor_id == debtor)
            ).scalars()
        )
        audited = conn.execute(
            select(func.count())
            .select_from(s.audit_log)
            .where(s.audit_log.c.action == "hold.added", s.audit_log.c.subject == debtor)
        ).scalar()
    assert statuses == {"cancelled"} and audited == 1


def test_a_broken_export_stops_contact_loudly(demo_dir: Path) -> None:
    with sqlite3.connect(demo_dir / "erp.sqlite") as erp:
        erp.execute("UPDATE facturen SET bedrag = '0', openstaand = '0'")
    r = run(demo_dir, MORNING)
    assert r["validate"]["stopped"] and "looks broken" in r["validate"]["stopped"]
    assert sent(r) == 0 and r["plan"]["planned"] == 0
    assert all(x.get("stopped") for x in r["send"].values())
