"""Exact Online on loopback HTTPS, as its API documentation describes it:

- ``POST /api/oauth2/token``: ``authorization_code`` and ``refresh_token`` grants; the
  refresh token rotates (the old one stops working); tokens live 600 s
- ``GET /api/v1/{division}/sync/...``: up to 1000 records a page ordered by
  ``Timestamp``, ``{"d": {"results": [...], "__next": url}}``
- ``GET /api/v1/{division}/<area>/<Entity>?$filter=...``: CRUD reads, 60 a page
- ``PUT /api/v1/{division}/<area>/<Entity>(guid'...')``: 204, empty body
- ``X-RateLimit-Limit/-Remaining/-Reset`` (daily) and ``X-RateLimit-Minutely-*`` on each
  answer, resets in epoch milliseconds; over the minutely budget: 429
- errors in OData form ``{"error": {"code", "message": {"lang", "value"}}}``; 401 for an
  unknown or expired token; dates as ``/Date(ms)/``.

The $filter understood is what vangnet sends: ``Timestamp gt N``, ``P eq 'x'`` / ``P eq N``
joined by ``or``, and one extra ``and (P eq ...)``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from tests.fakes.https import FakeHandler, FakeServer, Fault, TestCA


def odate(d: dt.date | dt.datetime) -> str:
    if not isinstance(d, dt.datetime):
        d = dt.datetime.combine(d, dt.time(0), dt.UTC)
    return f"/Date({int(d.timestamp() * 1000)})/"


class Division:
    def __init__(self, number: int) -> None:
        self.number = number
        self.entities: dict[str, list[dict[str, Any]]] = {}
        self.clock = 1000  # Timestamp rowversion
        self.client_id, self.client_secret = "exact-id", "exact-secret"
        self.redirect_uri = "https://vangnet.example/exact/callback"
        self.codes = {"good-code"}
        self.access: dict[str, float] = {}  # token -> expiry
        self.refresh: set[str] = set()
        self.token_calls = 0
        self.minutely_limit, self.minutely_used = 60, 0
        self.minute = int(time.time() // 60)
        self.daily_limit, self.daily_used = 5000, 0
        self.sync_page, self.crud_page = 1000, 60
        self.lock = threading.Lock()

    def add(self, endpoint: str, **fields: Any) -> dict[str, Any]:
        self.clock += 1
        rec = {"Timestamp": self.clock, "Modified": odate(dt.datetime.now(dt.UTC)), **fields}
        self.entities.setdefault(endpoint, []).append(rec)
        return rec

    def touch(self, rec: dict[str, Any]) -> None:
        self.clock += 1
        rec["Timestamp"] = self.clock
        rec["Modified"] = odate(dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=self.clock))

    def issue(self) -> dict[str, str]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.access[access] = time.time() + 600
        self.refresh.add(refresh)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": "600",
            "refresh_token": refresh,
        }


def _cond(expr: str) -> Any:
    """A predicate for the $filter subset vangnet sends."""
    parts = [p.strip() for p in re.split(r"\s+and\s+", expr)]
    preds = []
    for part in parts:
        part = part.strip("() ")
        m = re.fullmatch(r"Timestamp gt (\d+)", part)
        if m:
            n = int(m.group(1))
            preds.append(lambda r, n=n: r["Timestamp"] > n)
            continue
        alts = []
        for alt in re.split(r"\s+or\s+", part):
            m = re.fullmatch(r"(\w+) eq ('(?:[^']|'')*'|-?\d+|true|false)", alt.strip("() "))
            if not m:
                raise ValueError(f"unsupported filter: {alt[:40]}")
            prop, lit = m.groups()
            val: Any
            if lit.startswith("'"):
                val = lit[1:-1].replace("''", "'")
            elif lit in ("true", "false"):
                val = lit == "true"
            else:
                val = int(lit)
            alts.append((prop, val))
        preds.append(lambda r, alts=alts: any(r.get(p) == v for p, v in alts))
    return lambda r: all(p(r) for p in preds)


class ExactHandler(FakeHandler):
    server: ExactServer

    def _limits(self) -> dict[str, str]:
        d = self.server.division
        now = time.time()
        midnight = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return {
            "X-RateLimit-Limit": str(d.daily_limit),
            "X-RateLimit-Remaining": str(max(d.daily_limit - d.daily_used, 0)),
            "X-RateLimit-Reset": str(int(midnight.timestamp() * 1000)),
            "X-RateLimit-Minutely-Limit": str(d.minutely_limit),
            "X-RateLimit-Minutely-Remaining": str(max(d.minutely_limit - d.minutely_used, 0)),
            "X-RateLimit-Minutely-Reset": str(int((now // 60 + 1) * 60 * 1000)),
        }

    def _error(self, status: int, message: str) -> None:
        self.send_json(
            status,
            {"error": {"code": "", "message": {"lang": "", "value": message}}},
            self._limits(),
        )

    def provider_fault(self, f: Fault) -> bool:
        if f.kind == "429":
            h = self._limits()
            h["X-RateLimit-Minutely-Remaining"] = "0"
            h["X-RateLimit-Minutely-Reset"] = str(int((time.time() + 1) * 1000))
            self.send_json(
                429,
                {"error": {"code": "", "message": {"lang": "", "value": "Too many requests"}}},
                h,
            )
        elif f.kind == "500":
            self._error(500, "An error occurred.")
        elif f.kind == "malformed":
            self.send_raw(200, b'{"d": {"results": [', "application/json", self._limits())
        elif f.kind == "expired":
            self.server.division.access.clear()
            return False
        else:
            raise AssertionError(f.kind)
        return True

    def _authorised(self) -> bool:
        d = self.server.division
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if d.access.get(token, 0) > time.time():
            return True
        self.send_raw(401, b"", "text/plain", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return False

    def _budget(self) -> bool:
        d = self.server.division
        minute = int(time.time() // 60)
        if minute != d.minute:
            d.minute, d.minutely_used = minute, 0
        if d.minutely_used >= d.minutely_limit:
            self._error(429, "Too many requests")
            return False
        d.minutely_used += 1
        d.daily_used += 1
        return True

    def do_POST(self) -> None:  # noqa: N802
        self.server.requests.append(("POST", self.path))
        if self.fault():
            return
        d = self.server.division
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        if urlparse(self.path).path != "/api/oauth2/token":
            self._error(404, "Not found")
            return
        d.token_calls += 1
        if (form.get("client_id"), form.get("client_secret")) != (d.client_id, d.client_secret):
            self.send_json(400, {"error": "invalid_client"})
            return
        with d.lock:
            grant = form.get("grant_type")
            if (
                grant == "authorization_code"
                and form.get("code") in d.codes
                and form.get("redirect_uri") == d.redirect_uri
            ):
                d.codes.discard(form["code"])
            elif grant == "refresh_token" and form.get("refresh_token") in d.refresh:
                d.refresh.discard(form["refresh_token"])  # rotation: the old one is spent
            else:
                self.send_json(400, {"error": "invalid_grant"})
                return
            self.send_json(200, d.issue())

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path))
        if self.fault() or not self._authorised() or not self._budget():
            return
        d = self.server.division
        url = urlparse(self.path)
        if url.path == "/api/v1/current/Me":
            me = {"CurrentDivision": d.number, "UserName": "vangnet@wsnoord.example"}
            self.send_json(200, {"d": {"results": [me]}}, self._limits())
            return
        m = re.fullmatch(rf"/api/v1/{d.number}/([a-z]+(?:/[A-Za-z]+)+)", url.path)
        if not m or m.group(1) not in d.entities:
            self._error(404, "Not found")
            return
        endpoint = m.group(1)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        props = [p for p in (q.get("$select") or "").split(",") if p]
        try:
            keep = _cond(unquote(q["$filter"])) if q.get("$filter") else (lambda r: True)
        except ValueError as exc:
            self._error(400, str(exc))
            return
        known = set().union(*(r.keys() for r in d.entities[endpoint]))
        missing = [p for p in props if p not in known]
        if missing:
            self._error(400, f"Property '{missing[0]}' does not exist")
            return
        rows = sorted((r for r in d.entities[endpoint] if keep(r)), key=lambda r: r["Timestamp"])
        sync = endpoint.startswith("sync/")
        size = d.sync_page if sync else d.crud_page
        skip = int(q.get("$skiptoken") or 0)
        page = rows[skip : skip + size] if not sync else rows[:size]
        results = [
            {
                "__metadata": {
                    "uri": f"{self.server.url}{url.path}",
                    "type": "Exact.Web.Api.Models",
                },
                **{p: r.get(p) for p in (props or r.keys())},
            }
            for r in page
        ]
        body: dict[str, Any] = {"results": results}
        more = len(rows) > (size if sync else skip + size)
        if more:
            if sync:  # the next page continues after the last Timestamp
                nxt_filter = f"Timestamp gt {page[-1]['Timestamp']}"
                extra = re.sub(r"Timestamp gt \d+", "", unquote(q["$filter"])).strip()
                if extra:
                    nxt_filter += " " + extra
                body["__next"] = (
                    f"{self.server.url}{url.path}?$select={q.get('$select', '')}&$filter={quote(nxt_filter)}"
                )
            else:
                body["__next"] = f"{self.server.url}{url.path}?{url.query}&$skiptoken={skip + size}"
        self.send_json(200, {"d": body}, self._limits())

    def do_PUT(self) -> None:  # noqa: N802
        self.server.requests.append(("PUT", self.path))
        if self.fault() or not self._authorised() or not self._budget():
            return
        d = self.server.division
        m = re.fullmatch(
            rf"/api/v1/{d.number}/([a-z]+(?:/[A-Za-z]+)+)\(guid'([0-9a-f-]+)'\)",
            urlparse(self.path).path,
        )
        if not m:
            self._error(404, "Not found")
            return
        endpoint, guid = m.groups()
        try:
            data = json.loads(self.body())
        except ValueError:
            self._error(400, "Invalid JSON")
            return
        key = self.server.keys.get(endpoint, "ID")
        with d.lock:
            rec = next((r for r in d.entities.get(endpoint, []) if r.get(key) == guid), None)
            if rec is None:
                self._error(404, "Record not found")
                return
            if rec.get("Locked"):
                self._error(400, "This invoice is already processed and can no longer be changed")
                return
            rec.update(data)
            d.touch(rec)
        self.send_raw(204, b"", "text/plain", self._limits())


class ExactServer(FakeServer):
    def __init__(self, ca: TestCA, division: Division) -> None:
        super().__init__(ExactHandler, ca)
        self.division = division
        self.keys: dict[str, str] = {}  # CRUD endpoint -> its guid key property


def new_guid() -> str:
    return str(uuid.uuid4())
