"""Statement files through the stage, over the loopback SFTP server: a broken file goes
to failed/ and quarantine, a re-uploaded file under another name is not booked twice."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from sqlalchemy import func, select

from flows import stages
from flows.context import make_ctx
from flows.demo import seed, sftp_server
from ledger import schema as s
from transforms.contact_window import AMS


def test_broken_and_repeated_files(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 30, dt.date(2026, 11, 24))
    root = tmp_path / "demo" / "sftp" / "statements"
    good = next((root / "incoming").iterdir())
    (root / "incoming" / "kapot.xml").write_bytes(b"<Document><BkToCstmrStmt>")
    ctx = make_ctx(str(cfg), dt.datetime(2026, 11, 24, 10, tzinfo=AMS))
    with sftp_server(tmp_path / "demo") as srv:
        first = stages.fetch_statements(ctx, "bank", srv.port)
        shutil.copy(root / "processed" / good.name, root / "incoming" / "zelfde_opnieuw.xml")
        second = stages.fetch_statements(ctx, "bank", srv.port)
    assert (first["files"], first["failed"]) == (1, 1) and first["entries"] > 0
    assert (second["files"], second["duplicates"]) == (0, 1)
    assert (root / "failed" / "kapot.xml").exists() and (
        root / "processed" / "zelfde_opnieuw.xml"
    ).exists()
    with ctx.engine.connect() as conn:
        q = conn.execute(select(s.quarantine.c.record_id, s.quarantine.c.failures)).one()
        files = conn.execute(select(func.count()).select_from(s.statement_files)).scalar()
    assert q.record_id == "kapot.xml" and q.failures[0]["rule"] == "statement.parseable"
    assert "kapot.xml: line 1" in q.failures[0]["value"] and files == 1
