"""A loopback MessageBird: ``POST /messages`` and ``GET /messages`` (list, filtered by
``reference``), as MessageBird documents them: an ``AccessKey`` header, at most 50
recipients, an originator of at most 11 letters or 17 digits, a body of at most 1,377
characters, MSISDNs as digits; errors as ``{"errors": [{"code", "description",
"parameter"}]}`` with 422; 429 when over a request rate."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.https import FakeHandler, FakeServer, Fault, TestCA


@dataclass
class SmsCentre:
    access_key: str = "live_test_key"
    payment: str = "prepaid"
    balance: float = 125.5
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # reference -> message
    deliveries: dict[str, int] = field(default_factory=dict)  # reference -> times accepted
    lock: threading.Lock = field(default_factory=threading.Lock)


class MessageBirdHandler(FakeHandler):
    server: MessageBirdServer

    def _auth(self) -> bool:
        if self.headers.get("Authorization") != f"AccessKey {self.server.centre.access_key}":
            self.send_json(
                401,
                {"errors": [{"code": 2, "description": "Request not allowed", "parameter": None}]},
            )
            return False
        return True

    def _error(self, description: str, parameter: str) -> None:
        self.send_json(
            422, {"errors": [{"code": 9, "description": description, "parameter": parameter}]}
        )

    def do_POST(self) -> None:  # noqa: N802
        if self.fault() or not self._auth():
            return
        if urlparse(self.path).path != "/messages":
            self.send_json(
                404, {"errors": [{"code": 20, "description": "not found", "parameter": None}]}
            )
            return
        try:
            req = json.loads(self.body())
        except ValueError:
            self._error("invalid JSON", "body")
            return
        originator = str(req.get("originator") or "")
        if (
            not originator
            or (not originator.isdigit() and len(originator) > 11)
            or len(originator) > 17
        ):
            self._error("originator is invalid", "originator")
            return
        recipients = [r for r in str(req.get("recipients") or "").split(",") if r]
        if not recipients or len(recipients) > 50:
            self._error("between 1 and 50 recipients", "recipients")
            return
        if any(not r.isdigit() or not 8 <= len(r) <= 15 for r in recipients):
            self._error("no (correct) recipients found", "recipients")
            return
        body = str(req.get("body") or "")
        if not body or len(body) > 1377:
            self._error("body is missing or too long", "body")
            return
        mid = uuid.uuid4().hex
        msg = {
            "id": mid,
            "href": f"{self.server.url}/messages/{mid}",
            "direction": "mt",
            "type": "sms",
            "originator": originator,
            "body": body,
            "reference": req.get("reference"),
            "datacoding": req.get("datacoding", "plain"),
            "createdDatetime": "2026-11-24T10:00:00+00:00",
            "recipients": {
                "totalCount": len(recipients),
                "totalSentCount": len(recipients),
                "totalDeliveredCount": 0,
                "totalDeliveryFailedCount": 0,
                "items": [{"recipient": int(r), "status": "sent"} for r in recipients],
            },
        }
        ref = req.get("reference")
        if ref:
            with self.server.centre.lock:
                self.server.centre.sent.setdefault(ref, msg)
                self.server.centre.deliveries[ref] = self.server.centre.deliveries.get(ref, 0) + 1
        self.send_json(201, msg)

    def do_GET(self) -> None:  # noqa: N802
        if self.fault() or not self._auth():
            return
        url = urlparse(self.path)
        if url.path == "/balance":
            c = self.server.centre
            self.send_json(200, {"payment": c.payment, "type": "euros", "amount": c.balance})
            return
        if url.path != "/messages":
            self.send_json(
                404, {"errors": [{"code": 20, "description": "not found", "parameter": None}]}
            )
            return
        refs = parse_qs(url.query).get("reference")
        ref = refs[0] if refs else None
        with self.server.centre.lock:
            items = [m for r, m in self.server.centre.sent.items() if ref is None or r == ref]
        self.send_json(
            200,
            {
                "offset": 0,
                "limit": 20,
                "count": len(items),
                "totalCount": len(items),
                "items": items,
            },
        )

    def provider_fault(self, f: Fault) -> bool:
        if f.kind == "500":
            self.send_json(
                500, {"errors": [{"code": 99, "description": "internal error", "parameter": None}]}
            )
            return True
        if f.kind == "429":
            self.send_raw(429, b"{}", "application/json", {"Retry-After": "1"})
            return True
        return False


class MessageBirdServer(FakeServer):
    def __init__(self, ca: TestCA, centre: SmsCentre | None = None) -> None:
        super().__init__(MessageBirdHandler, ca)
        self.centre = centre or SmsCentre()


def channel_config(server: MessageBirdServer, ca: TestCA, **extra: Any) -> dict[str, Any]:
    """The creditor file's ``channels.sms`` for this fake (key from ``MB_KEY``)."""
    return {
        "kind": "messagebird",
        "access_key": {"env": "MB_KEY"},
        "originator": "WoonCorp",
        "endpoint": server.url,
        "ca_bundle": str(ca.ca_pem),
        **extra,
    }
