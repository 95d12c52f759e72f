"""The only module of this connector that talks to Salesforce.

Authentication: OAuth 2.0 client credentials of a connected app; the access token is
fetched at first use and again when Salesforce says INVALID_SESSION_ID. Every call has a
timeout; 429 and 5xx, timeouts and dropped connections are retried here with backoff
honouring Retry-After; other errors are fatal with Salesforce's own error code. The
``Sforce-Limit-Info`` usage is kept for the run report.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import requests
from pydantic import SecretStr
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
)

from connectors.errors import FatalError, RetriableError
from connectors.salesforce.mapping import EPOCH, soql_datetime, to_frame
from connectors.salesforce.settings import SalesforceSettings
from connectors.writeback import by_entity, same_value
from ledger.ports import Cursor, Page
from ledger.records import WriteBack, WriteResult

T = TypeVar("T")
COLLECTION_LIMIT = 200  # records per sObject Collections request (Salesforce's limit)
_DECIMAL = re.compile(r"^-?\d+\.\d+$")


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _describe(exc: SalesforceError) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return "; ".join(f"{c.get('errorCode')}: {c.get('message')}" for c in content)
    return str(content)[:300]


class SalesforceClient:
    def __init__(
        self, settings: SalesforceSettings, client_id: SecretStr, client_secret: SecretStr
    ) -> None:
        self.s = settings
        self._client_id, self._client_secret = client_id, client_secret
        self.session = requests.Session()
        # every request has a timeout, including those simple-salesforce's bulk2 makes
        adapter = _TimeoutAdapter(settings.timeout_seconds)
        self.session.mount("https://", adapter)
        if settings.ca_bundle:
            # an explicit CA: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE must not override it
            self.session.trust_env = False
            self.session.verify = settings.ca_bundle
        self.session.hooks["response"].append(self._remember)
        self._sf: Salesforce | None = None
        self._retry_after: float | None = None
        self.api_usage: dict[str, Any] = {}
        self.requests = 0
        self.token_fetches = 0

    @property
    def usage(self) -> dict[str, Any]:
        """The org's API budget as Sforce-Limit-Info last reported it."""
        return self.api_usage

    def probe(self) -> dict[str, str]:
        """Log in with the client credentials and read the org's daily API budget
        (REST ``limits/``: ``DailyApiRequests`` Max and Remaining)."""
        limits = self.call(lambda sf: sf.limits(), "limits")
        daily = limits.get("DailyApiRequests") or {}
        top, left = int(daily.get("Max", 0)), int(daily.get("Remaining", 0))
        out = {"detail": f"logged in; daily API requests {left:,} of {top:,} left"}
        if top and left < top * 0.1:
            out["warn"] = f"less than 10% of the daily API budget left ({left:,})"
        return out

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests += 1
        ra = response.headers.get("Retry-After")
        try:
            self._retry_after = float(ra) if ra else None
        except ValueError:
            self._retry_after = None

    def _login(self) -> Salesforce:
        data = {
            "grant_type": "client_credentials",
            "client_id": self._client_id.get_secret_value(),
            "client_secret": self._client_secret.get_secret_value(),
        }
        try:
            r = self.session.post(self.s.token_url, data=data, timeout=self.s.timeout_seconds)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetriableError(
                f"Salesforce token endpoint unreachable: {type(exc).__name__}"
            ) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise RetriableError(
                f"Salesforce token endpoint answered {r.status_code}", self._retry_after
            )
        try:
            body = r.json()
        except ValueError:
            raise RetriableError("Salesforce token endpoint sent a malformed body") from None
        if r.status_code != 200 or "access_token" not in body:
            raise FatalError(
                f"Salesforce refused the client credentials: {body.get('error', r.status_code)}"
            )
        self.token_fetches += 1
        return Salesforce(
            instance_url=self.s.instance_url,
            session_id=body["access_token"],
            session=self.session,
            version=self.s.api_version,
        )

    def call(self, fn: Callable[[Salesforce], T], what: str) -> T:
        """Run one API call with token refresh and retries in one place."""
        attempt, refreshed = 0, False
        while True:
            try:
                if self._sf is None:
                    self._sf = self._login()
                out = fn(self._sf)
                self.api_usage = {
                    k: {"used": v.used, "total": v.total}
                    for k, v in self._sf.api_usage.items()
                    if hasattr(v, "used")
                }
                return out
            except SalesforceExpiredSession:
                if refreshed:
                    raise FatalError(
                        f"{what}: Salesforce keeps refusing the session after a refresh"
                    ) from None
                self._sf, refreshed = None, True
                continue
            except SalesforceGeneralError as exc:
                if exc.status != 429 and exc.status < 500:
                    raise FatalError(
                        f"{what}: Salesforce answered {exc.status}: {_describe(exc)}"
                    ) from None
                err = RetriableError(f"{what}: Salesforce answered {exc.status}", self._retry_after)
            except SalesforceError as exc:
                raise FatalError(
                    f"{what}: Salesforce answered {exc.status}: {_describe(exc)}"
                ) from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                err = RetriableError(f"{what}: {type(exc).__name__} talking to Salesforce")
            except RetriableError as exc:
                err = exc
            except ValueError:
                err = RetriableError(f"{what}: Salesforce sent a malformed body")
            attempt += 1
            if attempt > self.s.max_retries:
                raise err
            wait = err.retry_after if err.retry_after is not None else 0.5 * 2 ** (attempt - 1)
            time.sleep(min(wait, self.s.max_backoff_seconds))


class SalesforceReader:
    """``SourceReader``: records changed since the cursor, a committed page at a time
    (``query`` then ``query_more`` on ``nextRecordsUrl``, the paging ``query_all_iter``
    does, one retried call per page).

    The cursor is the last SystemModstamp read, cut to the second (SOQL datetimes have
    whole seconds). The next read starts *at* that second: the few rows of that second
    are read again and upserted unchanged, and a row changed later within the same
    second is never missed."""

    def __init__(self, client: SalesforceClient, source: str = "salesforce") -> None:
        self.client = client
        self.source = source
        self.last_count = 0
        self.used_bulk = False

    def soql(self, entity: str, since: Cursor) -> str:
        spec = self.client.s.entities[entity]  # type: ignore[index]
        fields = list(dict.fromkeys(["Id", "SystemModstamp", *spec.columns.values()]))
        wm = soql_datetime(str(since.get("watermark") or EPOCH))
        cond = format_soql("SystemModstamp >= {wm:literal}", wm=wm)
        if spec.where:
            cond = f"({spec.where}) AND {cond}"
        select = f"SELECT {', '.join(fields)} FROM {spec.object}"
        return f"{select} WHERE {cond} ORDER BY SystemModstamp, Id"

    def read(self, entity: str, since: Cursor) -> Iterator[Page]:
        spec = self.client.s.entities.get(entity)  # type: ignore[call-overload]
        if spec is None:
            return
        columns = {"source_version": "SystemModstamp", **spec.columns}
        t = self.client.s.timeout_seconds
        soql = self.soql(entity, since)
        count_soql = "SELECT COUNT() FROM" + soql.split(" FROM", 1)[1].split(" ORDER BY")[0]
        count = self.client.call(
            lambda sf: sf.query(count_soql, timeout=t), f"{self.source}.{entity} count"
        )
        self.last_count = int(count.get("totalSize") or 0)
        if self.last_count > self.client.s.bulk_threshold:
            yield from self._bulk(entity, spec.object, soql, since, columns)
            return
        result = self.client.call(
            lambda sf: sf.query(self.soql(entity, since), timeout=t),
            f"{self.source}.{entity} query",
        )
        while True:
            records = result.get("records") or []
            for i in range(0, len(records), self.client.s.page_size):
                chunk = records[i : i + self.client.s.page_size]
                last = chunk[-1]
                yield Page(
                    to_frame(entity, chunk, columns),
                    {"watermark": soql_datetime(last["SystemModstamp"])},
                )
            nxt = result.get("nextRecordsUrl")
            if result.get("done", True) or not nxt:
                return
            result = self.client.call(
                functools.partial(_query_more, url=str(nxt), timeout=t),
                f"{self.source}.{entity} query_more",
            )

    def _bulk(
        self, entity: str, obj: str, soql: str, since: Cursor, columns: dict[str, str]
    ) -> Iterator[Page]:
        """A Bulk API 2.0 query job. Its CSV pages are staged as they arrive; the cursor
        moves only with the last one (a job's rows come in no promised order), so a
        failure half-way makes the next run read from the old cursor again."""
        s = self.client.s
        self.used_bulk = True
        sf = self.client.call(
            lambda sf: sf, f"{self.source}.{entity} login"
        )  # logged in, with retries
        pending: Page | None = None
        newest = str(since.get("watermark") or EPOCH)
        try:
            chunks = getattr(sf.bulk2, obj).query(
                soql, max_records=s.page_size, wait=s.bulk_poll_seconds
            )
            for chunk in chunks:
                records = [
                    {k: (v if v != "" else None) for k, v in r.items()}
                    for r in csv.DictReader(io.StringIO(chunk))
                ]
                if not records:
                    continue
                newest = max([newest, *(soql_datetime(str(r["SystemModstamp"])) for r in records)])
                if pending is not None:
                    yield pending
                pending = Page(to_frame(entity, records, columns), dict(since))
        except SalesforceError as exc:
            raise RetriableError(
                f"{self.source}.{entity} bulk query failed: {_describe(exc)}"
            ) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetriableError(
                f"{self.source}.{entity} bulk query: {type(exc).__name__}"
            ) from None
        if pending is not None:
            yield Page(pending.frame, {"watermark": newest})


def _query_more(sf: Salesforce, url: str, timeout: float) -> Any:
    return sf.query_more(url, identifier_is_url=True, timeout=timeout)


def _json_value(v: Any) -> Any:
    """Amounts travel as JSON numbers; everything else as given."""
    if isinstance(v, str) and _DECIMAL.fullmatch(v):
        return float(v)
    return v


class SalesforceWriter:
    """``StatusWriter``: upsert by external id with sObject Collections, 200 at a time.

    Before writing, the records' current SystemModstamp and target fields are read: a
    record changed since we read it (or gone) is a ``conflict``, one that already holds
    the values is ``applied`` without a write, and each record's own failure is reported
    with Salesforce's error code, never swallowed."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        results: dict[str, WriteResult] = {}
        for entity, _wb, mine in by_entity(changes, self.client.s.write_back, results):
            todo: list[WriteBack] = []
            for i in range(0, len(mine), COLLECTION_LIMIT):
                decided, needed = self._check(entity, mine[i : i + COLLECTION_LIMIT])
                results.update(decided)
                todo.extend(needed)
            if len(todo) > self.client.s.bulk_write_threshold:
                results.update(self._bulk_upsert(entity, todo))
            else:
                for i in range(0, len(todo), COLLECTION_LIMIT):
                    results.update(self._upsert(entity, todo[i : i + COLLECTION_LIMIT]))
        return [results[c.change_id] for c in changes]

    def _check(
        self, entity: str, chunk: list[WriteBack]
    ) -> tuple[dict[str, WriteResult], list[WriteBack]]:
        """What the org holds now: conflicts and already-applied changes are decided here."""
        wb = self.client.s.write_back[entity]
        t = self.client.s.timeout_seconds
        fields = list(dict.fromkeys(["SystemModstamp", wb.external_id_field, *wb.fields.values()]))
        soql = format_soql(
            f"SELECT {', '.join(fields)} FROM {wb.object} WHERE {wb.external_id_field} IN {{ids}}",
            ids=[c.record_id for c in chunk],
        )
        rows = self.client.call(
            lambda sf: sf.query_all(soql, timeout=t), f"{entity} write-back check"
        )["records"]
        current = {r[wb.external_id_field]: r for r in rows}
        out: dict[str, WriteResult] = {}
        todo: list[WriteBack] = []
        for c in chunk:
            row = current.get(c.record_id)
            wanted = {wb.fields[k]: v for k, v in c.values.items() if k in wb.fields}
            if row is None:
                out[c.change_id] = WriteResult(
                    c.change_id, "conflict", "record missing in Salesforce"
                )
            elif all(same_value(row.get(f), v) for f, v in wanted.items()):
                out[c.change_id] = WriteResult(c.change_id, "applied")  # already there
            elif c.expected_version and row.get("SystemModstamp") != c.expected_version:
                out[c.change_id] = WriteResult(
                    c.change_id, "conflict", "record changed in Salesforce since it was read"
                )
            else:
                todo.append(c)
        return out, todo

    def _records(self, entity: str, todo: list[WriteBack], with_type: bool) -> list[dict[str, Any]]:
        wb = self.client.s.write_back[entity]
        return [
            {
                **({"attributes": {"type": wb.object}} if with_type else {}),
                wb.external_id_field: c.record_id,
                **{wb.fields[k]: _json_value(v) for k, v in c.values.items() if k in wb.fields},
            }
            for c in todo
        ]

    def _bulk_upsert(self, entity: str, todo: list[WriteBack]) -> dict[str, WriteResult]:
        """One Bulk API 2.0 upsert job; each failed record is read back from the job's
        failed results (``sf__Error``), every other one is applied."""
        wb = self.client.s.write_back[entity]
        s = self.client.s

        def run(sf: Salesforce) -> list[str]:
            job = getattr(sf.bulk2, wb.object)
            jobs = job.upsert(
                records=self._records(entity, todo, False),
                external_id_field=wb.external_id_field,
                wait=s.bulk_poll_seconds,
            )
            return [
                job.get_failed_records(info["job_id"])
                for info in (jobs if isinstance(jobs, list) else [jobs])
                if int(info.get("numberRecordsFailed", 0))
            ]

        failed: dict[str, str] = {}
        for failed_csv in self.client.call(run, f"{entity} bulk upsert"):
            for r in csv.DictReader(io.StringIO(failed_csv)):
                failed[r[wb.external_id_field]] = r.get("sf__Error") or "failed"
        return {
            c.change_id: WriteResult(c.change_id, "failed", failed[c.record_id])
            if c.record_id in failed
            else WriteResult(c.change_id, "applied")
            for c in todo
        }

    def _upsert(self, entity: str, todo: list[WriteBack]) -> dict[str, WriteResult]:
        wb = self.client.s.write_back[entity]
        t = self.client.s.timeout_seconds
        out: dict[str, WriteResult] = {}
        body = {"allOrNone": False, "records": self._records(entity, todo, True)}
        path = f"composite/sobjects/{wb.object}/{wb.external_id_field}"
        answer = self.client.call(
            lambda sf: sf.restful(path, method="PATCH", json=body, timeout=t), f"{entity} upsert"
        )
        if not isinstance(answer, list) or len(answer) != len(todo):
            raise RetriableError(f"{entity} upsert: unexpected answer from Salesforce")
        for c, r in zip(todo, answer, strict=True):
            if r.get("success"):
                out[c.change_id] = WriteResult(c.change_id, "applied")
            else:
                errs = "; ".join(
                    f"{e.get('statusCode')}: {e.get('message')}" for e in r.get("errors") or []
                )
                out[c.change_id] = WriteResult(
                    c.change_id, "failed", errs or "failed without a reason"
                )
        return out
