"""Two creditors in one ledger, with the same debtor and invoice numbers in their own
systems: each creditor's cycle reads, writes back, messages and exports only its own."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s

from .conftest import MORNING, TODAY
from .test_daily_cycle import run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def _creditor(folder: Path, creditor_id: str, seed_value: int, ledger: Path) -> Path:
    cfg = seed(folder, 120, TODAY, seed_value=seed_value)
    text = cfg.read_text().replace("id: demo-woonstichting", f"id: {creditor_id}")
    text = text.replace("url: sqlite:///ledger.sqlite", f"url: sqlite:///{ledger}")
    assert f"id: {creditor_id}" in text and str(ledger) in text
    cfg.write_text(text)
    return cfg


def test_two_creditors_sharing_a_ledger_never_cross(tmp_path: Path) -> None:
    shared = tmp_path / "shared-ledger.sqlite"
    a = _creditor(tmp_path / "a", "wonen-a", 7, shared)
    b = _creditor(tmp_path / "b", "energie-b", 8, shared)
    ra = run(a.parent, MORNING)
    rb = run(b.parent, MORNING)
    assert ra["creditor"] == "wonen-a" and rb["creditor"] == "energie-b"

    engine = make_ctx(str(a), MORNING).engine
    with engine.connect() as conn:
        per = {
            cid: {
                "invoices": set(
                    conn.execute(
                        select(s.invoices.c.invoice_id).where(s.invoices.c.creditor_id == cid)
                    ).scalars()
                ),
                "written": set(
                    conn.execute(
                        select(s.write_backs.c.record_id).where(
                            s.write_backs.c.creditor_id == cid,
                            s.write_backs.c.status == "applied",
                            s.write_backs.c.entity == "invoices",
                        )
                    ).scalars()
                ),
                "messages": set(
                    conn.execute(
                        select(s.contacts.c.message_id).where(
                            s.contacts.c.creditor_id == cid, s.contacts.c.status == "sent"
                        )
                    ).scalars()
                ),
            }
            for cid in ("wonen-a", "energie-b")
        }
    # the same invoice numbers exist at both creditors (their own systems number alike)
    assert per["wonen-a"]["invoices"] & per["energie-b"]["invoices"]
    assert per["wonen-a"]["messages"] and per["energie-b"]["messages"]
    assert not per["wonen-a"]["messages"] & per["energie-b"]["messages"]

    for cfg, cid in ((a, "wonen-a"), (b, "energie-b")):
        folder = cfg.parent
        with sqlite3.connect(folder / "erp.sqlite") as erp:
            touched = {
                r[0]
                for r in erp.execute(
                    "SELECT factuurnr FROM facturen WHERE incassostatus IS NOT NULL"
                )
            }
        # every status in this creditor's ERP came from this creditor's own write-backs
        assert touched == per[cid]["written"], cid
        files = list((folder / "outbox").glob("*/*/*.txt"))
        ids = {json.loads(f.read_text().split("\n\n", 1)[0])["message_id"] for f in files}
        assert ids == per[cid]["messages"], cid
        for export in (folder / "debt-help-outbox").glob("*.csv"):
            other = "energie-b" if cid == "wonen-a" else "wonen-a"
            assert other not in export.read_text()
