"""The self-service page and the webhook receivers, over HTTP (FastAPI's test client)
against the demo creditor's ledger: a link from a real message opens the page; choices
land in the ledger and, after the write-back, in the demo ERP; forged, expired, foreign
and cross-site requests are refused; webhooks are stored only when signed."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import sqlite3
import time
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from portal.app import create_app
from tests.cycle_steps import up_to_plan
from transforms.contact_window import AMS
from transforms.selfservice import sign

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
MB_KEY = "messagebird-signing-key-0123456789abcdef"


class Served:
    """The app under uvicorn on a loopback port, and a client for it (as a browser
    would reach it: real HTTP, real forms)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
            )
        )

    def __enter__(self) -> Served:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.session = requests.Session()
        self.session.trust_env = False
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.session.get(f"http://127.0.0.1:{self.port}{path}", timeout=10, **kw)

    def post(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.session.post(f"http://127.0.0.1:{self.port}{path}", timeout=10, **kw)


@pytest.fixture
def demo(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    sg_key = ec.generate_private_key(ec.SECP256R1())
    public = sg_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keys = tmp_path / "demo" / "keys"
    (keys / "sendgrid.pub").write_text(base64.b64encode(public).decode())
    (keys / "messagebird.key").write_text(MB_KEY)
    doc = yaml.safe_load(cfg.read_text())
    doc["webhooks"] = {
        "sendgrid_public_key": {"file": "keys/sendgrid.pub"},
        "messagebird_signing_key": {"file": "keys/messagebird.key"},
        "public_url": "https://hooks.example.nl",
    }
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    stages.send_channel(ctx, "email")
    app = create_app([str(cfg)], NOW.isoformat())
    with Served(app) as client:
        yield cfg, ctx, client, sg_key


def _link(demo_dir: Path) -> tuple[str, str]:
    f = next((demo_dir / "outbox" / "email").glob("*/*.txt"))
    head, body = f.read_text().split("\n\n", 1)
    return re.findall(r"/r/([A-Za-z0-9_.-]+)", body)[0], json.loads(head)["message_id"]


def _csrf(page: str) -> str:
    return re.findall(r"name='csrf' value='([0-9a-f]+)'", page)[0]


def test_a_link_from_a_message_opens_the_page_and_a_choice_reaches_the_erp(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, ctx, client, _ = demo
    token, message_id = _link(tmp_path / "demo")
    page = client.get(f"/r/{token}")
    assert page.status_code == 200 and "Uw betalingen" in page.text and "<script" not in page.text
    for h in ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"):
        assert h in page.headers
    assert "Your payments" in client.get(f"/r/{token}?lang=en").text
    with ctx.engine.connect() as conn:
        debtor = conn.execute(
            select(s.contacts.c.debtor_id).where(s.contacts.c.message_id == message_id)
        ).scalar()
    done = client.post(
        f"/r/{token}/day", data={"day": "26", "csrf": _csrf(page.text), "lang": "nl"}
    )
    assert done.status_code == 200 and "Dank u wel" in done.text
    client.post(f"/r/{token}/channel", data={"channel": "sms", "csrf": _csrf(page.text)})
    with ctx.engine.connect() as conn:
        pref = conn.execute(select(s.preferences).where(s.preferences.c.debtor_id == debtor)).one()
        audited = (
            conn.execute(select(s.audit_log.c.action).where(s.audit_log.c.subject == debtor))
            .scalars()
            .all()
        )
    assert (pref.preferred_day, pref.channel, pref.source) == (26, "sms", "portal")
    assert "portal.day" in audited and "portal.channel" in audited
    stages.write_back(ctx)  # the reconciliation flow's write-back
    with sqlite3.connect(tmp_path / "demo" / "erp.sqlite") as erp:
        row = erp.execute(
            "SELECT voorkeursdag, kanaal FROM relaties WHERE relatienr = ?", (debtor,)
        ).fetchone()
    assert row == (26, "sms")


def test_pause_arrangement_and_dispute(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, ctx, client, _ = demo
    token, message_id = _link(tmp_path / "demo")
    csrf = _csrf(client.get(f"/r/{token}").text)
    with ctx.engine.connect() as conn:
        debtor = conn.execute(
            select(s.contacts.c.debtor_id).where(s.contacts.c.message_id == message_id)
        ).scalar()
        invoice = (
            conn.execute(
                select(s.invoices.c.invoice_id).where(
                    s.invoices.c.debtor_id == debtor, s.invoices.c.open_cents > 0
                )
            )
            .scalars()
            .first()
        )
    assert client.post(f"/r/{token}/pause", data={"csrf": csrf}).status_code == 200
    assert (
        client.post(f"/r/{token}/arrangement", data={"months": "6", "csrf": csrf}).status_code
        == 200
    )
    assert (
        client.post(f"/r/{token}/arrangement", data={"months": "99", "csrf": csrf}).status_code
        == 400
    )
    assert (
        client.post(f"/r/{token}/dispute", data={"invoice": invoice, "csrf": csrf}).status_code
        == 200
    )
    assert (
        client.post(f"/r/{token}/dispute", data={"invoice": "F-NOT-MINE", "csrf": csrf}).status_code
        == 400
    )
    with ctx.engine.connect() as conn:
        pref = conn.execute(select(s.preferences).where(s.preferences.c.debtor_id == debtor)).one()
        arr = conn.execute(select(s.arrangements).where(s.arrangements.c.debtor_id == debtor)).one()
        hold = conn.execute(select(s.holds).where(s.holds.c.debtor_id == debtor)).one()
    assert pref.promise_until == NOW.date() + dt.timedelta(days=30)
    assert arr.status == "requested" and len(arr.instalments) == 6 and arr.origin == "portal"
    assert hold.kind == "dispute" and invoice in hold.reason


def test_forged_expired_foreign_and_cross_site_requests_are_refused(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, ctx, client, _ = demo
    token, _ = _link(tmp_path / "demo")
    key = (tmp_path / "demo" / "keys" / "self_service.key").read_text().encode()
    forged = sign(b"z" * 48, ctx.creditor_id, "R0000001", NOW.date() + dt.timedelta(days=9), "n")
    other = sign(key, "another-creditor", "R0000001", NOW.date() + dt.timedelta(days=9), "n")
    expired = sign(key, ctx.creditor_id, "R0000001", NOW.date() - dt.timedelta(days=1), "n")
    for bad in (forged, other, expired, "nonsense", token[:-2] + "xx"):
        assert client.get(f"/r/{bad}").status_code == 403
    # a form posted without the page's CSRF token (another site) changes nothing
    assert client.post(f"/r/{token}/day", data={"day": "5"}).status_code == 403
    with ctx.engine.connect() as conn:
        assert conn.execute(select(s.preferences)).first() is None
    # one link, many requests: rate limited
    codes = [client.get(f"/r/{token}").status_code for _ in range(35)]
    assert 429 in codes
    # a revoked link stops working (one message's, or all of a debtor's)
    from portal.app import revoke

    _, message_id = _link(tmp_path / "demo")
    with ctx.engine.connect() as conn:
        owner = conn.execute(
            select(s.contacts.c.debtor_id).where(s.contacts.c.message_id == message_id)
        ).scalar()
    fresh = sign(key, ctx.creditor_id, owner, NOW.date() + dt.timedelta(days=9), message_id[:12])
    assert client.get(f"/r/{fresh}").status_code == 200
    revoke(ctx, owner, message_id[:12], "phone lost", "ops")
    assert client.get(f"/r/{fresh}").status_code == 403
    other_link = sign(key, ctx.creditor_id, owner, NOW.date() + dt.timedelta(days=9), "other")
    assert client.get(f"/r/{other_link}").status_code == 200  # only that message's link
    revoke(ctx, owner, None, "asked to stop", "ops")
    assert client.get(f"/r/{other_link}").status_code == 403  # every link of the debtor
    with pytest.raises(ValueError, match="reason"):
        revoke(ctx, owner, None, " ", "ops")
    # the app does not start without its signing secret
    doc = yaml.safe_load(cfg.read_text())
    doc.pop("self_service")
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        yaml.safe_dump(doc, sort_keys=False).replace("keys/", str(tmp_path / "demo" / "keys") + "/")
    )
    with pytest.raises(SystemExit, match="signing secret"):
        create_app([str(bare)])


def _sg_signed(
    key: ec.EllipticCurvePrivateKey, body: bytes, ts: int | None = None
) -> dict[str, str]:
    stamp = str(ts or int(time.time()))
    sig = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def test_webhooks_are_stored_only_when_signed(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, ctx, client, sg_key = demo
    _, message_id = _link(tmp_path / "demo")
    events = [
        {
            "email": "x@example.nl",
            "event": "open",
            "sg_event_id": "ev-1",
            "timestamp": int(time.time()),
            "vangnet_message_id": message_id,
        },
        {
            "email": "x@example.nl",
            "event": "bounce",
            "sg_event_id": "ev-2",
            "timestamp": int(time.time()),
            "vangnet_message_id": message_id,
            "reason": "550 no such user",
        },
    ]
    body = json.dumps(events).encode()
    url = f"/webhooks/sendgrid/{ctx.creditor_id}"
    ok = client.post(url, data=body, headers=_sg_signed(sg_key, body))
    assert ok.status_code == 200 and ok.json()["stored"] == 2
    assert client.post(url, data=body, headers=_sg_signed(sg_key, body)).json()["stored"] == 0
    assert (
        client.post(url, data=body, headers={"Content-Type": "application/json"}).status_code == 401
    )
    tampered = body.replace(b"bounce", b"click")
    assert client.post(url, data=tampered, headers=_sg_signed(sg_key, body)).status_code == 401
    old = _sg_signed(sg_key, body, int(time.time()) - 3600)
    assert client.post(url, data=body, headers=old).status_code == 401
    assert (
        client.post(
            "/webhooks/sendgrid/nobody", data=body, headers=_sg_signed(sg_key, body)
        ).status_code
        == 401
    )

    mb_path = f"/webhooks/messagebird/{ctx.creditor_id}?id=mb1&reference={message_id}&status=delivered&statusDatetime=2026-11-24T10:00:00Z"
    claims = {
        "iss": "MessageBird",
        "nbf": int(time.time()) - 5,
        "exp": int(time.time()) + 60,
        "url_hash": hashlib.sha256(("https://hooks.example.nl" + mb_path).encode()).hexdigest(),
    }
    good = jwt.encode(claims, MB_KEY, algorithm="HS256")
    r = (
        client.get(mb_path)
        if False
        else client.post(mb_path, headers={"MessageBird-Signature-JWT": good})
    )
    assert r.status_code == 200 and r.json()["stored"] == 1
    wrong_url = jwt.encode({**claims, "url_hash": "0" * 64}, MB_KEY, algorithm="HS256")
    assert client.post(mb_path, headers={"MessageBird-Signature-JWT": wrong_url}).status_code == 401
    assert client.post(mb_path).status_code == 401
    forged = jwt.encode(claims, "not-the-signing-key-0123456789abcdef", algorithm="HS256")
    assert client.post(mb_path, headers={"MessageBird-Signature-JWT": forged}).status_code == 401

    with ctx.engine.connect() as conn:
        got = {
            e.event
            for e in conn.execute(
                select(s.contact_events).where(s.contact_events.c.message_id == message_id)
            ).all()
        }
    assert {"opened", "bounced", "delivered"} <= got
    refused = client.app.state.refused
    assert sum(v for k, v in refused.items() if k.startswith(("sendgrid", "messagebird"))) >= 6


# what a hostile or broken browser may post to the self-service forms: each must get a
# clear 4xx and change nothing (action, form fields); raw bodies below
HOSTILE_FORMS = [
    ("day", {"day": "0"}),
    ("day", {"day": "29"}),
    ("day", {"day": "²"}),  # a digit to str.isdigit(), not to int()
    ("day", {"day": "٢٦"}),  # Arabic-Indic 26: a number, but not one a form sends
    ("day", {"day": "9" * 5000}),  # past Python's int() digit limit
    ("day", {"day": "26; DROP TABLE preferences"}),
    ("channel", {"channel": "../../etc/passwd"}),
    ("channel", {"channel": "email\u202e"}),
    ("arrangement", {"months": "-6"}),
    ("arrangement", {"months": "1e9"}),
    ("arrangement", {"months": "999999999999999999999"}),
    ("dispute", {"invoice": "' OR '1'='1"}),
    ("dispute", {"invoice": '=HYPERLINK("http://evil.example")'}),
    ("dispute", {"invoice": "x" * 100_000}),
    ("../../admin", {}),
]
HOSTILE_BODIES = [
    b"\xff\xfe\x00csrf=",  # not UTF-8
    b"a=" + b"b" * 200_000,  # far over what a form of four fields needs
]


def test_hostile_form_values_get_a_clear_refusal_and_change_nothing(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, ctx, client, _ = demo
    token, _ = _link(tmp_path / "demo")
    csrf = _csrf(client.get(f"/r/{token}").text)

    def ledger() -> tuple[int, int, int, int]:
        with ctx.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                len(conn.execute(select(t)).all())
                for t in (s.preferences, s.arrangements, s.holds, s.audit_log)
            )

    before = ledger()
    answers = []
    for action, fields in HOSTILE_FORMS:
        r = client.post(f"/r/{token}/{action}", data={**fields, "csrf": csrf})
        answers.append((action, r.status_code))
        assert 400 <= r.status_code < 500, (action, fields, r.status_code, r.text[:200])
        assert "Traceback" not in r.text and "<script" not in r.text
    for body in HOSTILE_BODIES:
        r = client.post(
            f"/r/{token}/day",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answers.append(("raw", r.status_code))
        assert 400 <= r.status_code < 500, (body[:20], r.status_code)
    assert ledger() == before, answers
    # and the page still works for the debtor afterwards
    assert client.get(f"/r/{token}").status_code == 200
