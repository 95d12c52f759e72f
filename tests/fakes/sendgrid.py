"""A loopback SendGrid: ``POST /v3/mail/send`` and the Email Activity API's
``GET /v3/messages``, as SendGrid documents them, with the limits enforced: at most
1,000 personalizations per request, valid recipient addresses (a 400 naming the
``personalizations.N.to.0.email`` field), ``custom_args`` under 10,000 bytes, a Bearer
key, and a request-rate limit answered by 429 with ``X-RateLimit-*`` headers."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.https import FakeHandler, FakeServer, Fault, TestCA

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
QUERY = re.compile(r"unique_args\['([^']+)'\]=\"([^\"]*)\"")


@dataclass
class Mailbox:
    api_key: str = "SG.test-key"
    scopes: list[str] = field(default_factory=lambda: ["mail.send", "email_activity.read"])
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # our id -> personalization
    deliveries: dict[str, int] = field(default_factory=dict)  # our id -> times accepted
    requests: int = 0
    posts: int = 0
    rate_limit: int | None = None  # requests per window before 429
    window_seconds: float = 1.0
    _window: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def limited(self) -> int | None:
        """The reset moment (epoch seconds) when over the limit, else None."""
        if self.rate_limit is None:
            return None
        now = time.time()
        self._window = [t for t in self._window if now - t < self.window_seconds]
        if len(self._window) >= self.rate_limit:
            return int(self._window[0] + self.window_seconds) + 1
        self._window.append(now)
        return None


class SendGridHandler(FakeHandler):
    server: SendGridServer

    def _auth(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.server.box.api_key}":
            self.send_json(401, {"errors": [{"field": None, "message": "authorization required"}]})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802
        if self.fault() or not self._auth():
            return
        box = self.server.box
        with box.lock:
            box.requests += 1
            reset = box.limited()
        if reset is not None:
            self.send_raw(
                429,
                b'{"errors":[{"field":null,"message":"too many requests"}]}',
                "application/json",
                {
                    "X-RateLimit-Limit": str(box.rate_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            )
            return
        if urlparse(self.path).path != "/v3/mail/send":
            self.send_json(404, {"errors": [{"field": None, "message": "not found"}]})
            return
        try:
            req = json.loads(self.body())
        except ValueError:
            self.send_json(400, {"errors": [{"field": None, "message": "invalid JSON"}]})
            return
        errors = self._validate(req)
        if errors:
            self.send_json(400, {"errors": errors})
            return
        msg_id = uuid.uuid4().hex[:22]
        with box.lock:
            box.posts += 1
            for p in req["personalizations"]:
                ours = (p.get("custom_args") or {}).get("vangnet_message_id")
                if ours:
                    box.deliveries[ours] = box.deliveries.get(ours, 0) + 1
                    body = (p.get("substitutions") or {}).get(req["content"][0]["value"], "")
                    box.accepted.setdefault(ours, {**p, "msg_id": msg_id, "text": body})
        self.send_raw(202, b"", "text/plain", {"X-Message-Id": msg_id})

    def do_GET(self) -> None:  # noqa: N802
        if self.fault() or not self._auth():
            return
        url = urlparse(self.path)
        if url.path == "/v3/scopes":
            headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "599"}
            self.send_json(200, {"scopes": list(self.server.box.scopes)}, headers)
            return
        if url.path != "/v3/messages":
            self.send_json(404, {"errors": [{"field": None, "message": "not found"}]})
            return
        q = (parse_qs(url.query).get("query") or [""])[0]
        m = QUERY.search(q)
        box = self.server.box
        hits = []
        if m and m.group(1) == "vangnet_message_id":
            with box.lock:
                p = box.accepted.get(m.group(2))
            if p is not None:
                hits.append(
                    {
                        "msg_id": f"{p['msg_id']}.filter0001.1",
                        "to_email": p["to"][0]["email"],
                        "subject": p.get("subject"),
                        "status": "delivered",
                        "opens_count": 0,
                        "clicks_count": 0,
                    }
                )
        self.send_json(200, {"messages": hits})

    @staticmethod
    def _validate(req: dict[str, Any]) -> list[dict[str, Any]]:
        ps = req.get("personalizations")
        if not isinstance(ps, list) or not 1 <= len(ps) <= 1000:
            return [{"field": "personalizations", "message": "between 1 and 1000 personalizations"}]
        if not (req.get("from") or {}).get("email"):
            return [{"field": "from.email", "message": "The from email is required."}]
        if not req.get("content"):
            return [{"field": "content", "message": "content is required"}]
        for i, p in enumerate(ps):
            for j, to in enumerate(p.get("to") or []):
                if not EMAIL.match(str(to.get("email", ""))):
                    return [
                        {
                            "field": f"personalizations.{i}.to.{j}.email",
                            "message": "Does not contain a valid address.",
                        }
                    ]
            if len(json.dumps(p.get("custom_args") or {})) > 10_000:
                return [{"field": f"personalizations.{i}.custom_args", "message": "too large"}]
        return []

    def provider_fault(self, f: Fault) -> bool:
        if f.kind == "500":
            self.send_json(500, {"errors": [{"field": None, "message": "internal error"}]})
            return True
        if f.kind == "429":
            self.send_raw(429, b"{}", "application/json", {"Retry-After": "0"})
            return True
        if f.kind == "malformed":
            self.send_raw(200, b"{not json", "application/json")
            return True
        return False


class SendGridServer(FakeServer):
    def __init__(self, ca: TestCA, box: Mailbox | None = None) -> None:
        super().__init__(SendGridHandler, ca)
        self.box = box or Mailbox()


def channel_config(server: SendGridServer, **extra: Any) -> dict[str, Any]:
    """The creditor file's ``channels.email`` for this fake (key from ``SG_KEY``; the
    client trusts the test CA through ``SSL_CERT_FILE``)."""
    return {
        "kind": "sendgrid",
        "api_key": {"env": "SG_KEY"},
        "host": server.url,
        "from_email": "incasso@wooncorp.nl",
        **extra,
    }
