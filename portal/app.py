"""The self-service page (``/r/{token}``) and the webhook receivers.

Plain HTML, B1 Dutch with an English switch, no JavaScript, works on a phone. A debtor
reaches it by the signed link in every message (``transforms/selfservice.py``): no login,
no personal data in the URL. Forms carry a CSRF token bound to the link; every choice
lands in the ledger (audited) and goes back to the creditor's system with the next
write-back. Rate limits per link and per address; security headers on every answer;
no request line in the logs (the link is a credential). The app refuses to start
without its signing secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import re
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import and_, select

from flows.config import resolve_secret
from flows.context import Ctx, make_ctx
from ledger import schema as s
from ledger.store import audit, insert_ignore, upsert, utcnow
from portal.webhooks import (
    MESSAGEBIRD_STATUS,
    SENDGRID_EVENTS,
    SignatureError,
    verify_messagebird,
    verify_sendgrid,
)
from transforms.messages import day as day_text
from transforms.messages import money
from transforms.selfservice import TokenError, creditor_of, verify

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

CHANNEL_TEXT = {
    "nl": {"email": "e-mail", "sms": "sms", "letter": "brief"},
    "en": {"email": "e-mail", "sms": "text message", "letter": "letter"},
}
TEXT: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Uw betalingen",
        "open": "Dit staat nog open",
        "due": "vervalt op",
        "ref": "betalingskenmerk",
        "day": "Op welke dag van de maand kunt u het beste betalen?",
        "day_help": "Bijvoorbeeld de dag na uw salaris of uitkering. Wij sturen geen herinnering vóór die dag.",
        "arrangement": "Wilt u in delen betalen?",
        "terms": "Aantal maanden",
        "channel": "Hoe wilt u berichten krijgen?",
        "pause": "Ik kan nu niet betalen",
        "pause_help": "Wij sturen dan {days} dagen geen herinneringen. Hulp nodig? {help}",
        "dispute": "Klopt een rekening niet?",
        "send": "Versturen",
        "thanks": "Dank u wel. Wij hebben uw keuze ontvangen.",
        "back": "Terug",
        "switch": "English",
    },
    "en": {
        "title": "Your payments",
        "open": "Still open",
        "due": "due on",
        "ref": "payment reference",
        "day": "Which day of the month suits you best to pay?",
        "day_help": "For example the day after your salary or benefit. We send no reminder before that day.",
        "arrangement": "Would you like to pay in parts?",
        "terms": "Number of months",
        "channel": "How would you like to hear from us?",
        "pause": "I can't pay right now",
        "pause_help": "We then send no reminders for {days} days. Need help? {help}",
        "dispute": "Is an invoice wrong?",
        "send": "Send",
        "thanks": "Thank you. We have received your choice.",
        "back": "Back",
        "switch": "Nederlands",
    },
}


class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds per key (a link or an address)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        q = self.hits[key]
        while q and now - q[0] > self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True


def create_app(creditor_files: list[str], now: str | None = None) -> FastAPI:
    contexts: dict[str, Ctx] = {}
    keys: dict[str, bytes] = {}
    for f in creditor_files:
        ctx = make_ctx(f, now)
        ss = ctx.cfg.self_service
        if ss is None:
            raise SystemExit(f"{f}: no self_service section: the portal needs its signing secret")
        secret = resolve_secret(ss.secret, ctx.cfg.base_dir)
        if secret is None or len(secret.get_secret_value()) < 32:
            raise SystemExit(f"{f}: the self-service signing secret is missing or too short")
        contexts[ctx.creditor_id] = ctx
        keys[ctx.creditor_id] = secret.get_secret_value().encode()

    app = FastAPI(title="vangnet", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.refused = defaultdict(int)
    per_token = RateLimiter(30)
    per_ip = RateLimiter(120)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        ip = request.client.host if request.client else "-"
        if not per_ip.allow(ip):
            response: Response = Response("Too many requests", status_code=429)
        else:
            response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers[k] = v
        return response

    def open_link(token: str) -> tuple[Ctx, str, bytes]:
        """(ctx, debtor, key) of a valid link; raises TokenError."""
        cid = creditor_of(token)
        if cid not in keys:
            raise TokenError("token for another creditor")
        debtor, nonce = verify(keys[cid], token, cid, contexts[cid].today)
        if _revoked(contexts[cid], debtor, nonce):
            raise TokenError("revoked")
        return contexts[cid], debtor, keys[cid]

    def csrf(key: bytes, token: str) -> str:
        return hmac.new(key, b"csrf|" + token.encode(), hashlib.sha256).hexdigest()[:32]

    def refuse(why: str, status: int = 403) -> HTMLResponse:
        app.state.refused[why] += 1
        return HTMLResponse(f"<!doctype html><p>{html.escape(why)}</p>", status_code=status)

    @app.get("/r/{token}", response_class=HTMLResponse)
    def page(token: str, lang: str = "nl") -> Response:
        if not per_token.allow(token):
            return refuse("Too many requests", 429)
        try:
            ctx, debtor, key = open_link(token)
        except TokenError:
            return refuse("This link is not valid (any more).")
        return HTMLResponse(
            _page(ctx, debtor, token, csrf(key, token), lang if lang in TEXT else "nl")
        )

    @app.post("/r/{token}/{action}", response_class=HTMLResponse)
    async def choose(token: str, action: str, request: Request) -> Response:
        if not per_token.allow(token):
            return refuse("Too many requests", 429)
        try:
            ctx, debtor, key = open_link(token)
        except TokenError:
            return refuse("This link is not valid (any more).")
        declared = request.headers.get("content-length", "0")
        if not declared.isascii() or not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            return refuse("The form is too large.", 413)  # refused before it is read
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            return refuse("The form is too large.", 413)
        try:
            fields = parse_qs(raw.decode("utf-8"), max_num_fields=10, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):  # not UTF-8, or more fields than a form has
            return refuse("The form could not be read.", 400)
        form = {k: v[0] for k, v in fields.items()}
        if not hmac.compare_digest(form.get("csrf", ""), csrf(key, token)):
            return refuse("The form has expired: open the link again.")
        lang = form.get("lang", "nl") if form.get("lang") in TEXT else "nl"
        try:
            _apply(ctx, debtor, action, form)
        except ValueError as exc:
            return refuse(str(exc), 400)
        t = TEXT[lang]
        return HTMLResponse(
            _shell(
                t["title"],
                f"<p>{t['thanks']}</p><p><a href='/r/{token}?lang={lang}'>{t['back']}</a></p>",
                lang,
            )
        )

    def webhook_key(creditor: str, field: str) -> tuple[Ctx, str] | None:
        """The creditor and its key for a provider's webhook (None: unknown or unset)."""
        ctx = contexts.get(creditor)
        ref = getattr(ctx.cfg.webhooks, field) if ctx else None
        if ctx is None or ref is None:
            return None
        secret = resolve_secret(ref, ctx.cfg.base_dir)
        return (ctx, secret.get_secret_value()) if secret is not None else None

    @app.post("/webhooks/sendgrid/{creditor}")
    async def sendgrid_events(creditor: str, request: Request) -> Response:
        body = await request.body()
        found = webhook_key(creditor, "sendgrid_public_key")
        if found is None:
            app.state.refused["sendgrid: unknown creditor"] += 1
            return JSONResponse({"error": "unknown"}, status_code=401)
        ctx, public = found
        try:
            verify_sendgrid(
                public.strip(),
                request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
                request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""),
                body,
            )
        except SignatureError as exc:
            app.state.refused[f"sendgrid: {exc}"] += 1
            return JSONResponse({"error": "signature"}, status_code=401)
        import json

        events = json.loads(body or b"[]")
        rows = [
            {
                "creditor_id": ctx.creditor_id,
                "message_id": str(e.get("vangnet_message_id")),
                "event": SENDGRID_EVENTS.get(str(e.get("event")), str(e.get("event"))[:32]),
                "provider_event_id": f"sg:{e.get('sg_event_id')}",
                "occurred_at": dt.datetime.fromtimestamp(int(e.get("timestamp", 0)), dt.UTC),
                "detail": {k: e.get(k) for k in ("reason", "type", "status") if e.get(k)},
            }
            for e in events
            if e.get("vangnet_message_id") and e.get("sg_event_id")
        ]
        with ctx.engine.begin() as conn:  # stored before the provider hears "ok"
            stored = insert_ignore(conn, s.contact_events, rows)
        return JSONResponse({"stored": stored, "received": len(events)})

    @app.post("/webhooks/messagebird/{creditor}")
    async def messagebird_status(creditor: str, request: Request) -> Response:
        body = await request.body()
        found = webhook_key(creditor, "messagebird_signing_key")
        if found is None:
            app.state.refused["messagebird: unknown creditor"] += 1
            return JSONResponse({"error": "unknown"}, status_code=401)
        ctx, key = found
        base = (ctx.cfg.webhooks.public_url or str(request.base_url)).rstrip("/")
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            verify_messagebird(
                key,
                request.headers.get("MessageBird-Signature-JWT", ""),
                url,
                body,
            )
        except SignatureError as exc:
            app.state.refused[f"messagebird: {exc}"] += 1
            return JSONResponse({"error": "signature"}, status_code=401)
        q = dict(request.query_params)
        if body:
            import json

            q.update(json.loads(body))
        reference, status = q.get("reference"), q.get("status")
        if not reference or not status:
            return JSONResponse({"error": "no reference or status"}, status_code=400)
        with ctx.engine.begin() as conn:
            stored = insert_ignore(
                conn,
                s.contact_events,
                [
                    {
                        "creditor_id": ctx.creditor_id,
                        "message_id": str(reference),
                        "event": MESSAGEBIRD_STATUS.get(str(status), str(status)[:32]),
                        "provider_event_id": f"mb:{q.get('id')}:{status}:{q.get('statusDatetime')}",
                        "occurred_at": utcnow(),
                        "detail": {"status": status, "reason": q.get("statusReason")},
                    }
                ],
            )
        return JSONResponse({"stored": stored})

    return app


def _revoked(ctx: Ctx, debtor: str, nonce: str) -> bool:
    r = s.token_revocations
    with ctx.engine.connect() as conn:
        hit = conn.execute(
            select(r.c.id).where(
                r.c.creditor_id == ctx.creditor_id,
                r.c.debtor_id == debtor,
                (r.c.nonce.is_(None)) | (r.c.nonce == nonce),
            )
        ).first()
    return hit is not None


def revoke(ctx: Ctx, debtor: str, nonce: str | None, reason: str, operator: str) -> None:
    """Withdraw one message's link (its nonce) or every link of a debtor; audited."""
    if not reason.strip():
        raise ValueError("revoking needs a reason (it is audited)")
    with ctx.engine.begin() as conn:
        conn.execute(
            s.token_revocations.insert().values(
                creditor_id=ctx.creditor_id,
                debtor_id=debtor,
                nonce=nonce,
                reason=reason,
                revoked_at=utcnow(),
            )
        )
        audit(
            conn,
            ctx.creditor_id,
            operator,
            "portal.revoked",
            debtor,
            {"nonce": nonce, "reason": reason},
        )


def _shell(title: str, body: str, lang: str) -> str:
    return (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem;"
        "line-height:1.5;font-size:1.1rem}fieldset{margin:1rem 0;padding:1rem}"
        "button,select{font-size:1.1rem;padding:.4rem .8rem}label{display:block;margin:.3rem 0}"
        "</style></head><body>" + body + "</body></html>"
    )


def _page(ctx: Ctx, debtor: str, token: str, csrf_token: str, lang: str) -> str:
    t = TEXT[lang]
    ss = ctx.cfg.self_service
    assert ss is not None
    with ctx.engine.connect() as conn:
        items = conn.execute(
            select(
                s.invoices.c.invoice_id,
                s.invoices.c.due_date,
                s.invoices.c.open_cents,
                s.invoices.c.payment_reference,
            )
            .where(
                s.invoices.c.creditor_id == ctx.creditor_id,
                s.invoices.c.debtor_id == debtor,
                s.invoices.c.open_cents > 0,
            )
            .order_by(s.invoices.c.due_date)
        ).all()
        pref = conn.execute(
            select(s.preferences.c.preferred_day, s.preferences.c.channel).where(
                and_(
                    s.preferences.c.creditor_id == ctx.creditor_id,
                    s.preferences.c.debtor_id == debtor,
                )
            )
        ).first()
    e = html.escape
    hidden = f"<input type='hidden' name='csrf' value='{csrf_token}'><input type='hidden' name='lang' value='{lang}'>"
    rows = (
        "".join(
            f"<li>{e(money(int(i.open_cents), lang))}, {t['due']} {e(day_text(i.due_date, lang))}, "
            f"{t['ref']} {e(i.payment_reference or i.invoice_id)}</li>"
            for i in items
        )
        or "<li>-</li>"
    )
    days = "".join(
        f"<option value='{d}'{' selected' if pref and pref.preferred_day == d else ''}>{d}</option>"
        for d in range(1, 29)
    )
    terms = "".join(f"<option value='{n}'>{n}</option>" for n in range(2, ss.max_instalments + 1))
    channels = "".join(
        f"<label><input type='radio' name='channel' value='{c}'"
        f"{' checked' if pref and pref.channel == c else ''}> {CHANNEL_TEXT[lang][c]}</label>"
        for c in ("email", "sms", "letter")
    )
    disputes = "".join(
        f"<label><input type='radio' name='invoice' value='{e(i.invoice_id)}'> {e(i.invoice_id)}</label>"
        for i in items
    )
    other = "en" if lang == "nl" else "nl"
    body = (
        f"<p><a href='/r/{token}?lang={other}'>{t['switch']}</a></p>"
        f"<h1>{e(ctx.cfg.branding.display_name)}: {t['title']}</h1>"
        f"<h2>{t['open']}</h2><ul>{rows}</ul>"
        f"<form method='post' action='/r/{token}/day'><fieldset><legend>{t['day']}</legend>"
        f"<p>{t['day_help']}</p><select name='day'>{days}</select> {hidden}"
        f"<button>{t['send']}</button></fieldset></form>"
        f"<form method='post' action='/r/{token}/arrangement'><fieldset><legend>{t['arrangement']}</legend>"
        f"<label>{t['terms']} <select name='months'>{terms}</select></label>{hidden}"
        f"<button>{t['send']}</button></fieldset></form>"
        f"<form method='post' action='/r/{token}/channel'><fieldset><legend>{t['channel']}</legend>"
        f"{channels}{hidden}<button>{t['send']}</button></fieldset></form>"
        f"<form method='post' action='/r/{token}/pause'><fieldset><legend>{t['pause']}</legend>"
        f"<p>{e(t['pause_help'].format(days=ss.pause_days, help=ctx.cfg.branding.debt_help))}</p>"
        f"{hidden}<button>{t['pause']}</button></fieldset></form>"
        f"<form method='post' action='/r/{token}/dispute'><fieldset><legend>{t['dispute']}</legend>"
        f"{disputes}{hidden}<button>{t['send']}</button></fieldset></form>"
        f"<p>{e(ctx.cfg.branding.phone)} · {e(ctx.cfg.branding.email)}</p>"
    )
    return _shell(t["title"], body, lang)


MAX_FORM_BYTES = 16_384  # the largest of the page's forms is a few hundred bytes


def _form_number(form: dict[str, str], field: str) -> int:
    """A small whole number as a form sends it (ASCII digits, at most three), else 0:
    not the Unicode digits, signs, exponents or 5,000-digit strings ``int()`` takes or
    chokes on."""
    value = form.get(field, "")
    return int(value) if re.fullmatch(r"[0-9]{1,3}", value) else 0


def _apply(ctx: Ctx, debtor: str, action: str, form: dict[str, str]) -> None:
    """One choice into the ledger, audited; the write-back picks it up."""
    ss = ctx.cfg.self_service
    assert ss is not None
    now = utcnow()
    with ctx.engine.begin() as conn:
        if action == "day":
            day = _form_number(form, "day")
            if not 1 <= day <= 28:
                raise ValueError("Choose a day from 1 to 28.")
            _pref(conn, ctx, debtor, {"preferred_day": day}, now)
        elif action == "channel":
            ch = form.get("channel")
            if ch not in ("email", "sms", "letter"):
                raise ValueError("Choose e-mail, SMS or letter.")
            _pref(conn, ctx, debtor, {"channel": ch}, now)
        elif action == "pause":
            _pref(
                conn,
                ctx,
                debtor,
                {"promise_until": ctx.today + dt.timedelta(days=ss.pause_days)},
                now,
            )
        elif action == "arrangement":
            months = _form_number(form, "months")
            if not 2 <= months <= ss.max_instalments:
                raise ValueError(f"Choose 2 to {ss.max_instalments} months.")
            total = sum(
                conn.execute(
                    select(s.invoices.c.open_cents).where(
                        s.invoices.c.creditor_id == ctx.creditor_id,
                        s.invoices.c.debtor_id == debtor,
                        s.invoices.c.open_cents > 0,
                    )
                ).scalars()
            )
            part = total // months
            start = (ctx.today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
            plan = [
                {
                    "due_on": (
                        start.replace(
                            month=(start.month - 1 + k) % 12 + 1,
                            year=start.year + (start.month - 1 + k) // 12,
                        )
                    ).isoformat(),
                    "amount_cents": part if k < months - 1 else total - part * (months - 1),
                }
                for k in range(months)
            ]
            insert_ignore(
                conn,
                s.arrangements,
                [
                    {
                        "creditor_id": ctx.creditor_id,
                        "arrangement_id": f"portal-{debtor}-{ctx.today.isoformat()}"[:64],
                        "debtor_id": debtor,
                        "origin": "portal",
                        "source_message_id": None,
                        "total_cents": total,
                        "instalments": plan,
                        "status": "requested",
                        "starts_on": start,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        elif action == "dispute":
            inv = form.get("invoice", "")
            mine = conn.execute(
                select(s.invoices.c.invoice_id).where(
                    s.invoices.c.creditor_id == ctx.creditor_id,
                    s.invoices.c.debtor_id == debtor,
                    s.invoices.c.invoice_id == inv,
                )
            ).first()
            if mine is None:
                raise ValueError("Choose one of your invoices.")
            # a dispute pauses collection for the debtor until a person has looked
            insert_ignore(
                conn,
                s.holds,
                [
                    {
                        "creditor_id": ctx.creditor_id,
                        "debtor_id": debtor,
                        "kind": "dispute",
                        "reason": f"disputed on the self-service page: {inv}",
                        "source_message_id": f"portal-dispute-{debtor}-{inv}"[:128],
                        "starts_on": ctx.today,
                        "created_at": now,
                    }
                ],
            )
            from flows.debt_help import plan_hold_write_back

            plan_hold_write_back(conn, ctx, debtor, "dispute", ctx.today)
        else:
            raise ValueError("Unknown choice.")
        audit(
            conn,
            ctx.creditor_id,
            "self-service",
            f"portal.{action}",
            debtor,
            {k: v for k, v in form.items() if k not in ("csrf", "lang")},
        )


def _pref(conn: Any, ctx: Ctx, debtor: str, values: dict[str, Any], now: dt.datetime) -> None:
    current = conn.execute(
        select(s.preferences).where(
            s.preferences.c.creditor_id == ctx.creditor_id, s.preferences.c.debtor_id == debtor
        )
    ).first()
    row = {
        "creditor_id": ctx.creditor_id,
        "debtor_id": debtor,
        "channel": current.channel if current else None,
        "preferred_day": current.preferred_day if current else None,
        "language": current.language if current else None,
        "wgs_refused": current.wgs_refused if current else False,
        "promise_until": current.promise_until if current else None,
        "source": "portal",
        "updated_at": now,
        **values,
    }
    upsert(
        conn,
        s.preferences,
        [row],
        ["creditor_id", "debtor_id"],
        [
            "channel",
            "preferred_day",
            "language",
            "wgs_refused",
            "promise_until",
            "source",
            "updated_at",
        ],
    )


__all__ = ["create_app", "revoke"]
