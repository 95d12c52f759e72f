"""Every message carries the debtor's own signed link to the self-service page."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from sqlalchemy import select

from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from tests.cycle_steps import up_to_plan
from transforms.contact_window import AMS
from transforms.selfservice import verify

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def test_each_message_links_to_its_own_debtors_page(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    stages.send_channel(ctx, "email")
    key = (tmp_path / "demo" / "keys" / "self_service.key").read_text().encode()
    files = list((tmp_path / "demo" / "outbox" / "email").glob("*/*.txt"))
    assert files
    for f in files:
        head, body = f.read_text().split("\n\n", 1)
        links = re.findall(r"http://127\.0\.0\.1:8000/r/([A-Za-z0-9_.-]+)", body)
        assert len(links) == 1
        _, nonce = verify(key, links[0], ctx.creditor_id, NOW.date())
        assert nonce == json.loads(head)["message_id"][:12]
    # and it belongs to the message's own debtor
    with ctx.engine.connect() as conn:
        owner = dict(conn.execute(select(s.contacts.c.message_id, s.contacts.c.debtor_id)).all())
    for f in files:
        head, body = f.read_text().split("\n\n", 1)
        token = re.findall(r"/r/([A-Za-z0-9_.-]+)", body)[0]
        assert (
            verify(key, token, ctx.creditor_id, NOW.date())[0]
            == owner[json.loads(head)["message_id"]]
        )
