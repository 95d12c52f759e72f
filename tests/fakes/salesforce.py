"""A Salesforce org on loopback HTTPS, as the REST API documents it:

- ``POST /services/oauth2/token`` (client credentials) -> access_token, instance_url
- ``GET /services/data/vXX.X/query?q=SOQL`` -> totalSize, done, nextRecordsUrl, records
  (each with ``attributes``); ``GET /services/data/vXX.X/query/<locator>`` for more
- ``PATCH /services/data/vXX.X/composite/sobjects/<Object>/<ExternalIdField>`` ->
  one UpsertResult per record, at most 200 records, ``attributes.type`` required
- errors as ``[{"message", "errorCode"}]``; 401 INVALID_SESSION_ID for an unknown or
  expired token; ``Sforce-Limit-Info: api-usage=N/M`` on every API answer.

The SOQL understood is the subset vangnet sends (field lists, the cursor condition,
``IN`` lists, simple ``=`` conditions, ``ORDER BY``); anything else is MALFORMED_QUERY.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
import threading
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlparse

from tests.fakes.https import FakeHandler, FakeServer, Fault, TestCA

API = re.compile(r"^/services/data/v(\d+\.\d)/(.*)$")
LITERAL = r"('(?:[^'\\]|\\.)*'|[0-9TZ:.+\-]+|true|false|null)"


def sf_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _parse_dt(v: str) -> dt.datetime:
    v = v.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", v):
        v = v[:-2] + ":" + v[-2:]
    return dt.datetime.fromisoformat(v)


def _lit(v: str) -> Any:
    if v.startswith("'"):
        return re.sub(r"\\(.)", r"\1", v[1:-1])
    if v in ("true", "false"):
        return v == "true"
    if v == "null":
        return None
    return v


class SoqlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Org:
    """The org's data: sObjects as lists of records."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.client_id, self.client_secret = "cid", "csecret"
        self.tokens: set[str] = set()
        self.locked: set[str] = set()  # external ids whose upsert fails (UNABLE_TO_LOCK_ROW)
        self.api_calls = 0
        self.api_limit = 15000
        self.batch = 2000
        self.lock = threading.Lock()
        self._seq = 0

    def new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:015d}"[:18]

    def add(self, obj: str, **fields: Any) -> dict[str, Any]:
        rec = {"Id": self.new_id("a0X"), "SystemModstamp": sf_now(), **fields}
        self.objects.setdefault(obj, []).append(rec)
        return rec

    def query(self, soql: str) -> tuple[str, list[dict[str, Any]]]:
        m = re.fullmatch(
            r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER BY\s+(.+?))?\s*",
            soql,
            re.S,
        )
        if not m:
            raise SoqlError("MALFORMED_QUERY", "unexpected token in query")
        fields = [f.strip() for f in m.group(1).split(",")]
        obj, where, order = m.group(2), m.group(3), m.group(4)
        if obj not in self.objects:
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        if fields == ["COUNT()"]:
            n = sum(1 for r in self.objects[obj] if not where or self._match(where, r))
            return obj, [{"__count__": n}]
        known = set().union(*(r.keys() for r in self.objects[obj])) | {"Id", "SystemModstamp"}
        for f in fields:
            if f.split(".")[0] not in known:
                raise SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{obj}'.")
        rows = (
            [r for r in self.objects[obj] if self._match(where, r)]
            if where
            else list(self.objects[obj])
        )
        if order:
            keys = [k.strip() for k in order.split(",")]
            rows.sort(
                key=lambda r: tuple(
                    _parse_dt(r[k]) if k == "SystemModstamp" else r.get(k) for k in keys
                )
            )
        out = [
            {
                "attributes": {
                    "type": obj,
                    "url": f"/services/data/v59.0/sobjects/{obj}/{r['Id']}",
                },
                **{f: r.get(f) for f in fields},
            }
            for r in rows
        ]
        return obj, out

    def _match(self, where: str, r: dict[str, Any]) -> bool:
        cursor = re.search(rf"SystemModstamp >= {LITERAL}", where)
        rest = where
        ok = True
        if cursor:
            ok = _parse_dt(r["SystemModstamp"]) >= _parse_dt(cursor.group(1))
            rest = where.replace(cursor.group(0), "TRUE")
        in_list = re.search(r"(\w+) IN \(((?:'(?:[^'\\]|\\.)*',?)+)\)", rest)
        if in_list:
            values = [_lit(v) for v in re.findall(r"'(?:[^'\\]|\\.)*'", in_list.group(2))]
            ok = ok and r.get(in_list.group(1)) in values
            rest = rest.replace(in_list.group(0), "TRUE")
        for f, v in re.findall(rf"(\w+) = {LITERAL}", rest):
            ok = ok and r.get(f) == _lit(v)
            rest = rest.replace(f"{f} = {v}", "TRUE")
        leftover = re.sub(r"[()\s]|TRUE|AND", "", rest)
        if leftover:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {leftover[:30]}")
        return ok

    def upsert(self, obj: str, ext: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        rows = self.objects.setdefault(obj, [])
        for rec in records:
            if rec.get("attributes", {}).get("type") != obj:
                out.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "INVALID_TYPE",
                                "message": "attributes.type is required",
                                "fields": [],
                            }
                        ],
                    }
                )
                continue
            key = rec.get(ext)
            if key in self.locked:
                out.append(
                    {
                        "id": None,
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "UNABLE_TO_LOCK_ROW",
                                "message": "unable to obtain exclusive access to this record",
                                "fields": [],
                            }
                        ],
                    }
                )
                continue
            values = {k: v for k, v in rec.items() if k != "attributes"}
            hit = next((r for r in rows if r.get(ext) == key), None)
            if hit is None:
                hit = self.add(obj, **values)
                out.append({"id": hit["Id"], "success": True, "errors": [], "created": True})
            else:
                hit.update(values)
                hit["SystemModstamp"] = sf_now()
                out.append({"id": hit["Id"], "success": True, "errors": [], "created": False})
        return out


class SalesforceHandler(FakeHandler):
    server: SalesforceServer

    def provider_fault(self, f: Fault) -> bool:
        if f.kind == "429":
            self.send_json(
                429,
                [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                {"Retry-After": "1"},
            )
        elif f.kind == "500":
            self.send_json(
                500, [{"message": "An unexpected error occurred", "errorCode": "UNKNOWN_EXCEPTION"}]
            )
        elif f.kind == "malformed":
            self.send_raw(200, b'{"totalSize": 3, "records": [', "application/json")
        elif f.kind == "expired":
            self.server.org.tokens.clear()
            return False  # the normal path now answers INVALID_SESSION_ID
        else:
            raise AssertionError(f.kind)
        return True

    def _limit(self) -> dict[str, str]:
        return {
            "Sforce-Limit-Info": f"api-usage={self.server.org.api_calls}/{self.server.org.api_limit}"
        }

    def _authorised(self) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token in self.server.org.tokens:
            return True
        self.send_json(
            401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )
        return False

    def do_POST(self) -> None:  # noqa: N802
        self.server.requests.append(("POST", self.path))
        if self.fault():
            return
        if re.fullmatch(r"/services/data/v\d+\.\d/jobs/query", urlparse(self.path).path):
            self._create_job()
            return
        if re.fullmatch(r"/services/data/v\d+\.\d/jobs/ingest/?", urlparse(self.path).path):
            self._create_ingest()
            return
        if urlparse(self.path).path != "/services/oauth2/token":
            self.send_json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
            return
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        org = self.server.org
        if form.get("grant_type") != "client_credentials" or (
            form.get("client_id"),
            form.get("client_secret"),
        ) != (org.client_id, org.client_secret):
            self.send_json(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
            return
        token = "00D" + secrets.token_hex(12)
        org.tokens.add(token)
        self.send_json(
            200,
            {
                "access_token": token,
                "instance_url": self.server.url,
                "token_type": "Bearer",
                "issued_at": str(int(dt.datetime.now().timestamp() * 1000)),
                "signature": "x",
            },
        )

    def _create_job(self) -> None:
        if not self._authorised():
            return
        payload = json.loads(self.body())
        try:
            obj, rows = self.server.org.query(payload["query"])
        except SoqlError as exc:
            self.send_json(400, [{"message": str(exc), "errorCode": exc.code}])
            return
        fields = [
            f.strip()
            for f in re.match(r"\s*SELECT\s+(.+?)\s+FROM", payload["query"], re.S)
            .group(1)
            .split(",")
        ]
        job_id = "750" + secrets.token_hex(6)
        self.server.jobs[job_id] = {"object": obj, "rows": rows, "fields": fields, "polls": 0}
        self.send_json(
            200,
            {
                "id": job_id,
                "operation": payload.get("operation"),
                "object": obj,
                "state": "UploadComplete",
                "contentType": "CSV",
            },
            self._limit(),
        )

    def _create_ingest(self) -> None:
        if not self._authorised():
            return
        p = json.loads(self.body())
        if (
            p.get("operation") != "upsert"
            or not p.get("externalIdFieldName")
            or p.get("contentType") != "CSV"
        ):
            self.send_json(400, [{"message": "invalid job", "errorCode": "INVALIDJOB"}])
            return
        job_id = "750" + secrets.token_hex(6)
        self.server.ingests[job_id] = {
            "object": p["object"],
            "ext": p["externalIdFieldName"],
            "csv": "",
            "state": "Open",
            "failed": [],
            "processed": 0,
        }
        self.send_json(
            200,
            {
                "id": job_id,
                "operation": "upsert",
                "object": p["object"],
                "state": "Open",
                "contentType": "CSV",
            },
            self._limit(),
        )

    def _ingest(self, method: str, rest: str) -> None:
        job_id, _, tail = rest.partition("/")
        job = self.server.ingests.get(job_id)
        if job is None:
            self.send_json(404, [{"message": "job not found", "errorCode": "NOT_FOUND"}])
            return
        if method == "PUT" and tail == "batches":
            job["csv"] += self.body().decode()
            self.send_raw(201, b"", "text/plain", self._limit())
        elif method == "PATCH" and not tail:
            state = json.loads(self.body()).get("state")
            if state == "UploadComplete":
                rows = list(csv.DictReader(io.StringIO(job["csv"])))
                for row in rows:
                    rec = {
                        "attributes": {"type": job["object"]},
                        **{k: (v or None) for k, v in row.items()},
                    }
                    result = self.server.org.upsert(job["object"], job["ext"], [rec])[0]
                    if not result["success"]:
                        e = result["errors"][0]
                        job["failed"].append(
                            {"sf__Id": "", "sf__Error": f"{e['statusCode']}:{e['message']}", **row}
                        )
                job["processed"] = len(rows)
            job["state"] = "JobComplete" if state == "UploadComplete" else state
            self.send_json(200, {"id": job_id, "state": job["state"]}, self._limit())
        elif method == "GET" and not tail:
            self.send_json(
                200,
                {
                    "id": job_id,
                    "state": job["state"],
                    "numberRecordsProcessed": job["processed"],
                    "numberRecordsFailed": len(job["failed"]),
                },
                self._limit(),
            )
        elif method == "GET" and tail.rstrip("/") == "failedResults":
            out = io.StringIO()
            if job["failed"]:
                w = csv.DictWriter(out, fieldnames=list(job["failed"][0]), lineterminator="\n")
                w.writeheader()
                w.writerows(job["failed"])
            self.send_raw(200, out.getvalue().encode(), "text/csv", self._limit())
        else:
            self.send_json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

    def do_PUT(self) -> None:  # noqa: N802
        self.server.requests.append(("PUT", self.path))
        if self.fault() or not self._authorised():
            return
        m = re.fullmatch(r"/services/data/v\d+\.\d/jobs/ingest/(.+)", urlparse(self.path).path)
        if m:
            self._ingest("PUT", m.group(1))
        else:
            self.send_json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path))
        if self.fault() or not self._authorised():
            return
        org = self.server.org
        org.api_calls += 1
        url = urlparse(self.path)
        m = API.match(url.path)
        if not m:
            self.send_json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
            return
        version, rest = m.groups()
        if rest in ("limits", "limits/"):
            # REST API "limits/": every limit as {"Max": n, "Remaining": n}
            self.send_json(
                200,
                {
                    "DailyApiRequests": {
                        "Max": org.api_limit,
                        "Remaining": org.api_limit - org.api_calls,
                    },
                    "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                },
                self._limit(),
            )
            return
        if rest == "query" or rest == "query/":
            q = unquote_plus(parse_qs(url.query).get("q", [""])[0])
            try:
                _, rows = org.query(q)
            except SoqlError as exc:
                self.send_json(400, [{"message": str(exc), "errorCode": exc.code}], self._limit())
                return
            if rows and "__count__" in rows[0]:
                self.send_json(
                    200,
                    {"totalSize": rows[0]["__count__"], "done": True, "records": []},
                    self._limit(),
                )
                return
            loc = "01g" + secrets.token_hex(6)
            self.server.cursors[loc] = rows
            self._page(version, loc, 0)
        elif rest.startswith("jobs/ingest/"):
            self._ingest("GET", rest.removeprefix("jobs/ingest/"))
        elif rest.startswith("jobs/query/"):
            self._job(rest.removeprefix("jobs/query/"), parse_qs(url.query))
        elif rest.startswith("query/"):
            loc, _, offset = rest.removeprefix("query/").rpartition("-")
            if loc not in self.server.cursors:
                self.send_json(
                    400,
                    [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}],
                )
                return
            self._page(version, loc, int(offset))
        else:
            self.send_json(
                404,
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
            )

    def _job(self, rest: str, params: dict[str, list[str]]) -> None:
        job_id, _, tail = rest.partition("/")
        job = self.server.jobs.get(job_id)
        if job is None:
            self.send_json(404, [{"message": "job not found", "errorCode": "NOT_FOUND"}])
            return
        if not tail:  # the job's state: in progress once, then complete
            job["polls"] += 1
            state = "InProgress" if job["polls"] == 1 else "JobComplete"
            self.send_json(
                200,
                {
                    "id": job_id,
                    "operation": "query",
                    "object": job["object"],
                    "state": state,
                    "numberRecordsProcessed": len(job["rows"]),
                },
                self._limit(),
            )
            return
        start = int((params.get("locator") or ["0"])[0] or 0)
        size = int((params.get("maxRecords") or ["50000"])[0])
        page = job["rows"][start : start + size]
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(job["fields"])
        for r in page:
            w.writerow(["" if r.get(f) is None else r.get(f) for f in job["fields"]])
        nxt = start + size
        headers = {
            "Sforce-Locator": str(nxt) if nxt < len(job["rows"]) else "null",
            "Sforce-NumberOfRecords": str(len(page)),
            **self._limit(),
        }
        self.send_raw(200, out.getvalue().encode(), "text/csv", headers)

    def _page(self, version: str, loc: str, offset: int) -> None:
        rows = self.server.cursors[loc]
        batch = self.server.org.batch
        page = rows[offset : offset + batch]
        done = offset + batch >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{loc}-{offset + batch}"
        self.send_json(200, body, self._limit())

    def do_PATCH(self) -> None:  # noqa: N802
        self.server.requests.append(("PATCH", self.path))
        if self.fault() or not self._authorised():
            return
        org = self.server.org
        org.api_calls += 1
        ingest = re.fullmatch(r"/services/data/v\d+\.\d/jobs/ingest/(.+)", urlparse(self.path).path)
        if ingest:
            self._ingest("PATCH", ingest.group(1))
            return
        m = re.match(
            r"^/services/data/v\d+\.\d/composite/sobjects/(\w+)/(\w+)$", urlparse(self.path).path
        )
        if not m:
            self.send_json(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
            return
        try:
            payload = json.loads(self.body())
        except ValueError:
            self.send_json(
                400, [{"message": "JSON parser error", "errorCode": "JSON_PARSER_ERROR"}]
            )
            return
        records = payload.get("records") or []
        if len(records) > 200:
            self.send_json(
                400,
                [
                    {
                        "message": "Maximum number of records allowed is 200",
                        "errorCode": "EXCEEDED_ID_LIMIT",
                    }
                ],
                self._limit(),
            )
            return
        with org.lock:
            out = org.upsert(m.group(1), m.group(2), records)
        self.send_json(200, out, self._limit())


class SalesforceServer(FakeServer):
    def __init__(self, ca: TestCA, org: Org | None = None) -> None:
        super().__init__(SalesforceHandler, ca)
        self.org = org or Org()
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.ingests: dict[str, dict[str, Any]] = {}
