"""Letters through the send stage: a PDF per letter with the address in the window, the
expected delivery date kept with the contact, and the day's batch with its manifest on
the print provider's SFTP server (the loopback server, pinned host key), once."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import yaml
from sqlalchemy import select

from flows import stages
from flows.context import make_ctx
from flows.demo import seed, sftp_server
from ledger import schema as s
from tests.cycle_steps import up_to_plan
from transforms.contact_window import AMS
from transforms.wik import expected_delivery

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def test_letters_become_pdfs_and_one_batch_for_the_printer(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 400, NOW.date())
    demo = tmp_path / "demo"
    with sftp_server(demo) as srv:
        doc = yaml.safe_load(cfg.read_text())
        bank = doc["sources"]["bank"]
        doc["channels"]["letter"] = {
            "kind": "letters",
            "dir": "brieven",
            "sender_lines": ["Postbus 1", "1000 AA Amsterdam"],
            "upload_dir": "print",
            "print_provider": {
                "host": "127.0.0.1",
                "port": srv.port,
                "username": bank["username"],
                "private_key": bank["private_key"],
                "host_key_fingerprint": bank["host_key_fingerprint"],
            },
        }
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        ctx = make_ctx(str(cfg), NOW)
        up_to_plan(ctx)
        out = stages.send_channel(ctx, "letter")
        again = stages.send_channel(ctx, "letter")
    assert out["sent"] > 0 and out["print_batch"]["uploaded"] == out["sent"] + 2
    assert again["sent"] == 0 and again["print_batch"]["uploaded"] == 0  # once a day
    day = NOW.date().isoformat()
    pdfs = sorted((demo / "brieven" / day).glob("*.pdf"))
    assert len(pdfs) == out["sent"] and all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    remote = demo / "sftp" / "print" / day
    assert sorted(p.name for p in remote.glob("*.pdf")) == [p.name for p in pdfs]
    assert (remote / f"batch-{day}.done").read_text() == f"{len(pdfs)}\n"
    with open(remote / f"manifest-{day}.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    assert {r["message_id"] for r in rows} == {p.stem for p in pdfs}
    first = rows[0]
    assert first["sha256"] == hashlib.sha256((remote / first["file"]).read_bytes()).hexdigest()
    assert len(first["postcode"]) in (6, 7) and int(first["pages"]) >= 1
    with ctx.engine.connect() as conn:
        ev = conn.execute(
            select(s.contact_events.c.detail).where(
                s.contact_events.c.message_id == first["message_id"]
            )
        ).scalar()
    assert ev["expected_delivery"] == expected_delivery(NOW.date()).isoformat()
