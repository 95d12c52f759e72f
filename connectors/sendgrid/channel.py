"""E-mail as a ``Channel``: SendGrid v3 ``/v3/mail/send`` with the real ``sendgrid``
client.

- **Batches**: up to 1,000 personalizations per request (SendGrid's limit). Each
  personalization carries its own recipient, subject, ``send_at`` (the planned moment)
  and ``custom_args`` with our message id; the body is ours, rendered, passed per
  recipient through a substitution tag, so one request can carry different texts.
  Categories name the step. The EU host is one setting.
- **Faults**: 429 waits as the rate-limit headers say (``X-RateLimit-Reset``, or
  ``Retry-After``) and tries again, a bounded number of times; 5xx and timeouts are
  retriable for the flow. A 400 that names one personalization (``personalizations.3``)
  fails that message only and the rest of the batch is sent again without it.
- **Exactly once**: ``lookup`` asks SendGrid's Email Activity API whether a message with
  our id in ``custom_args`` was accepted, before an ambiguous send (a timeout, a reset,
  an answer other than 202) is sent again; the send stage trusts a "not found" only
  ``policy.ambiguous_settle_seconds`` after the attempt, as the provider may accept a
  request after our client gave up and its activity feed lags.
- Timeouts on every call; the client's debug logger (which would log bodies) is muted.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import FatalError, RetriableError
from connectors.secrets import SecretRef
from connectors.sendgrid.transport import ConnectionPool, KeepAliveClient
from ledger.records import OutboundMessage, Receipt

# the HTTP client logs request bodies (addresses, texts) at DEBUG: never
logging.getLogger("python_http_client").setLevel(logging.WARNING)

ID_ARG = "vangnet_message_id"
BODY_TAG = "-vangnet-body-"
MAX_PERSONALIZATIONS = 1000
_BAD_ITEM = re.compile(r"personalizations\.(\d+)")


class SendGridSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sendgrid"] = "sendgrid"
    api_key: SecretRef
    region: Literal["global", "eu"] = "global"
    host: str | None = Field(None, description="override the API host (tests, proxies)")
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    batch_size: int = Field(1000, ge=1, le=MAX_PERSONALIZATIONS)
    timeout_seconds: float = Field(20, gt=0, le=120)
    max_rate_limit_waits: int = Field(5, ge=0, le=20)
    max_wait_seconds: float = Field(60, gt=0)
    parallel_requests: int = Field(
        4, ge=1, le=16, description="requests in flight at once (each on its own kept connection)"
    )


class SendGridChannel:
    def __init__(
        self,
        name: str,
        settings: SendGridSettings,
        api_key: SecretStr,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import sendgrid

        self.name = name
        self.s = settings
        host = settings.host or (
            "https://api.eu.sendgrid.com" if settings.region == "eu" else "https://api.sendgrid.com"
        )
        if not host.startswith("https://"):
            raise FatalError("SendGrid host must be https://")
        self.sg = sendgrid.SendGridAPIClient(api_key=api_key.get_secret_value(), host=host)
        # the same client over kept connections (transport.py): urllib's opener made a
        # new TLS connection per request
        self.pool = ConnectionPool()
        self.sg.client = KeepAliveClient(
            host=self.sg.client.host,
            request_headers=self.sg.client.request_headers,
            version=3,
            timeout=settings.timeout_seconds,
            pool=self.pool,
        )
        self._sleep = sleep
        self.rate_limit_waits = 0

    # ---------------------------------------------------------------- the port
    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        try:
            return self._send(batch)
        finally:
            self.pool.close()  # kept for the batch's requests, not between stages

    def _send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        chunks = [
            list(batch[k : k + self.s.batch_size]) for k in range(0, len(batch), self.s.batch_size)
        ]
        if len(chunks) <= 1 or self.s.parallel_requests == 1:
            return [r for c in chunks for r in self._send_chunk(c)]
        from concurrent.futures import ThreadPoolExecutor

        # overlap the round trips (one kept connection per thread); results keep the
        # batch's order, and the first failure is raised after the others finished
        with ThreadPoolExecutor(max_workers=self.s.parallel_requests) as pool:
            futures = [pool.submit(self._send_chunk, c) for c in chunks]
        receipts: list[Receipt] = []
        first_error: BaseException | None = None
        for f in futures:
            exc = f.exception()
            if exc is not None:
                first_error = first_error or exc
                continue
            receipts.extend(f.result())
        if first_error is not None:
            raise first_error
        return receipts

    def lookup(self, message_ids: Sequence[str]) -> Mapping[str, Receipt]:
        """Which of these did SendGrid accept? (Email Activity API, one query per id.)"""
        found: dict[str, Receipt] = {}
        for mid in message_ids:
            query = f"(unique_args['{ID_ARG}']=\"{mid}\")"

            def ask(q: str = query) -> Any:
                return self.sg.client.messages.get(query_params={"query": q, "limit": 10})

            body = self._call(ask)
            messages = json.loads(body or b"{}").get("messages") or []
            if messages:
                found[mid] = Receipt(mid, "sent", provider_id=str(messages[0].get("msg_id")))
        return found

    def probe(self) -> dict[str, str]:
        """The key's scopes (``GET /v3/scopes``): it must hold ``mail.send``; the
        rate-limit headers say what is left of the current window."""
        seen: dict[str, str] = {}

        def ask() -> Any:
            r = self.sg.client.scopes.get()
            seen.update({k.lower(): v for k, v in dict(r.headers).items()})
            return r

        scopes = json.loads(self._call(ask) or b"{}").get("scopes") or []
        left = seen.get("x-ratelimit-remaining")
        out = {
            "detail": f"key holds {len(scopes)} scope(s)"
            + (f"; {left} of {seen.get('x-ratelimit-limit', '?')} requests left" if left else "")
        }
        if "mail.send" not in scopes:
            out["fail"] = "the API key lacks the mail.send scope"
        if "email_activity.read" not in scopes:
            out["warn"] = "without email_activity.read, ambiguous sends cannot be looked up"
        return out

    # -------------------------------------------------------------- internals
    def _payload(self, msgs: Sequence[OutboundMessage]) -> dict[str, Any]:
        soon = time.time() + 60  # SendGrid schedules up to 72 hours ahead
        personalizations: list[dict[str, Any]] = [
            {
                "to": [{"email": m.to}],
                "subject": m.subject,
                "substitutions": {BODY_TAG: m.body_text},
                "custom_args": {ID_ARG: m.message_id, "step": m.step},
            }
            for m in msgs
        ]
        for p, m in zip(personalizations, msgs, strict=True):
            if m.send_after is not None and m.send_after.timestamp() > soon:
                p["send_at"] = int(m.send_after.timestamp())
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": {
                "email": self.s.from_email,
                **({"name": self.s.from_name} if self.s.from_name else {}),
            },
            "content": [{"type": "text/plain", "value": BODY_TAG}],
            "categories": sorted({m.step for m in msgs})[:10],
        }
        if self.s.reply_to:
            payload["reply_to"] = {"email": self.s.reply_to}
        return payload

    def _send_chunk(self, msgs: list[OutboundMessage]) -> list[Receipt]:
        receipts: list[Receipt] = []
        while msgs:
            try:
                headers = self._call(lambda: self._post(msgs), want_headers=True)
            except _OneRejected as bad:
                if not 0 <= bad.index < len(msgs):
                    raise FatalError(f"SendGrid rejected the request: {bad.reason}") from None
                m = msgs.pop(bad.index)
                receipts.append(Receipt(m.message_id, "failed", error=bad.reason[:300]))
                continue  # the rest of the batch goes out without it
            provider = headers.get("X-Message-Id") if isinstance(headers, Mapping) else None
            receipts.extend(Receipt(m.message_id, "sent", provider_id=provider) for m in msgs)
            break
        return receipts

    def _post(self, msgs: list[OutboundMessage]) -> Any:
        """``POST /v3/mail/send``; SendGrid documents 202 Accepted as its only success.
        Any other answer that is not an error leaves it unknown whether the batch was
        taken: ambiguous, looked up before it is sent again."""
        r = self.sg.client.mail.send.post(request_body=self._payload(msgs))
        if r.status_code != 202:
            raise RetriableError(f"SendGrid: HTTP {r.status_code} on mail/send, not 202 Accepted")
        return r

    def _call(self, fn: Callable[[], Any], want_headers: bool = False) -> Any:
        import python_http_client.exceptions as hx

        waits = 0
        while True:
            try:
                r = fn()
                return dict(r.headers) if want_headers else r.body
            except hx.HTTPError as exc:
                status = int(getattr(exc, "status_code", 0) or 0)
                headers = dict(getattr(exc, "headers", {}) or {})
                body = getattr(exc, "body", b"") or b""
                if status == 429 and waits < self.s.max_rate_limit_waits:
                    waits += 1
                    self.rate_limit_waits += 1
                    self._sleep(self._wait_for(headers))
                    continue
                if status == 429:
                    raise RetriableError(
                        "SendGrid: still rate limited", self._wait_for(headers)
                    ) from None
                if status >= 500:
                    raise RetriableError(f"SendGrid: HTTP {status}") from None
                if status in (401, 403):
                    raise FatalError(
                        f"SendGrid: HTTP {status}: check the API key's scopes"
                    ) from None
                if status == 400:
                    raise _OneRejected.from_body(body) from None
                raise FatalError(f"SendGrid: HTTP {status}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                raise RetriableError(f"SendGrid: {type(exc).__name__}") from None

    def _wait_for(self, headers: Mapping[str, str]) -> float:
        low = {k.lower(): v for k, v in headers.items()}
        reset = low.get("x-ratelimit-reset")
        if reset and reset.isdigit():
            return min(max(int(reset) - time.time(), 0.0), self.s.max_wait_seconds)
        retry = low.get("retry-after")
        if retry and retry.replace(".", "", 1).isdigit():
            return min(float(retry), self.s.max_wait_seconds)
        return 1.0


class _OneRejected(Exception):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index, self.reason = index, reason

    @classmethod
    def from_body(cls, body: bytes) -> _OneRejected:
        try:
            errors = json.loads(body or b"{}").get("errors") or []
        except ValueError:
            errors = []
        for e in errors:
            m = _BAD_ITEM.search(str(e.get("field") or ""))
            if m:
                return cls(int(m.group(1)), f"{e.get('field')}: {e.get('message')}")
        reason = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors) or "HTTP 400"
        return cls(-1, reason)


__all__ = ["SendGridChannel", "SendGridSettings"]
