"""The only module of this connector that talks to Exact Online.

Built from the ``exactonline`` package's own parts: ``ExactRawApi`` (wire, OAuth and its
X-RateLimit-* limiter) with ``Autorefresh`` (a token refresh 30 s before expiry and once on
a 401). Not ``Unwrap``: it gathers every ``__next`` page in memory and stops after 50;
this reader follows ``__next`` itself, one page at a time, so each page is committed with
its cursor and there is no page limit.

The package sets no network timeout (it uses urllib without one); calls run with a socket
timeout set for their duration, under a lock, and the previous default is restored.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from exactonline import http as exact_http
from exactonline.api.autorefresh import Autorefresh
from exactonline.rawapi import ExactRawApi, RateLimiter
from exactonline.resource import GET, PUT
from exactonline.storage.base import ExactOnlineConfig, MissingSetting
from pydantic import SecretStr

from connectors.errors import FatalError, RetriableError
from connectors.exact_online.mapping import odata_literal, plain, to_frame
from connectors.exact_online.settings import ExactOnlineSettings
from connectors.writeback import by_entity, same_value
from ledger.ports import Cursor, Page
from ledger.records import WriteBack, WriteResult
from ledger.tokens import Tokens, TokenStore

_SOCKET_LOCK = threading.Lock()
LOOKUP_BATCH = 20  # record ids per lookup ($filter ... or ...), keeps URLs short


@contextlib.contextmanager
def _timeout(seconds: float) -> Iterator[None]:
    with _SOCKET_LOCK:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(old)


class _Limiter(RateLimiter):
    """The package's limiter (waits when a minutely or daily budget is spent), keeping
    the last budgets for the run report."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: dict[str, dict[str, int]] = {}

    def update(self, until: Any, limit: Any, remaining: Any) -> None:
        super().update(until, limit, remaining)
        # the package reports both budgets through here; the minutely one resets within a minute
        kind = "minutely" if int(until) - time.time() * 1000 <= 61_000 else "daily"
        self.budgets[kind] = {
            "limit": int(limit),
            "remaining": int(remaining),
            "reset_ms": int(until),
        }


class _Storage(ExactOnlineConfig):
    """Settings from the configuration, tokens from the ledger (``TokenStore``)."""

    def __init__(
        self,
        s: ExactOnlineSettings,
        client_id: SecretStr,
        client_secret: SecretStr,
        tokens: TokenStore,
    ) -> None:
        self._static = {
            ("server", "auth_url"): f"{s.base_url}/api/oauth2/auth",
            ("server", "rest_url"): f"{s.base_url}/api",
            ("server", "token_url"): f"{s.base_url}/api/oauth2/token",
            ("application", "base_url"): s.base_url,
            ("application", "iteration_limit"): "1000000",
        }
        self._secret = {
            ("application", "client_id"): client_id,
            ("application", "client_secret"): client_secret,
        }
        self.redirect_uri = s.redirect_uri
        self.store = tokens
        current = tokens.load()
        self.transient: dict[str, str] = {}
        if current:
            self.adopt(current)

    def adopt(self, t: Tokens) -> None:
        self.transient = {
            "access_token": t.access_token,
            "refresh_token": t.refresh_token,
            "access_expiry": str(t.access_expiry),
        }

    def tokens(self) -> Tokens:
        return Tokens(
            self.transient["access_token"],
            self.transient["refresh_token"],
            int(self.transient["access_expiry"]),
        )

    def get(self, section: str, option: str) -> Any:
        if (section, option) in self._static:
            return self._static[(section, option)]
        if (section, option) in self._secret:
            return self._secret[(section, option)].get_secret_value()
        if section == "transient" and option in self.transient:
            return self.transient[option]
        raise MissingSetting(option)

    def set(self, section: str, option: str, value: Any) -> None:
        if section == "transient":
            self.transient[option] = str(value)
        else:
            self._static[(section, option)] = str(value)

    def get_response_url(self) -> str:
        return self.redirect_uri


class _Api(Autorefresh, ExactRawApi):
    def __init__(self, storage: _Storage) -> None:
        super().__init__(storage=storage)
        self.calls = 0

    def get_ratelimiter(self) -> _Limiter:
        return _Limiter()

    def refresh_token(self) -> None:
        """Refresh under the ledger's row lock; adopt another worker's fresh token."""
        storage: _Storage = self.storage
        with storage.store.locked() as (current, conn):
            if current is None:
                raise FatalError(
                    "Exact Online is not authorised yet: run `vangnet exact authorize`"
                )
            fresh = current.access_expiry - time.time() > 60
            if fresh and current.access_token != storage.transient.get("access_token"):
                storage.adopt(current)  # another worker refreshed a moment ago
                return
            storage.adopt(current)
            super().refresh_token()
            storage.store.save(conn, storage.tokens())

    def _rest_query(self, request: Any) -> Any:
        self.calls += 1
        return super()._rest_query(request)


def _odata_error(exc: exact_http.HTTPError) -> str:
    try:
        body = json.loads(exc.response)
        return str(body["error"]["message"]["value"])[:300]
    except (ValueError, KeyError, TypeError):
        return str(exc.response)[:200] if exc.response else exc.msg


def _oauth_error(exc: exact_http.HTTPError) -> str:
    try:
        return str(json.loads(exc.response).get("error", exc.code))
    except (ValueError, AttributeError, TypeError):
        return str(exc.code)


class ExactClient:
    def __init__(
        self,
        settings: ExactOnlineSettings,
        client_id: SecretStr,
        client_secret: SecretStr,
        tokens: TokenStore,
    ) -> None:
        self.s = settings
        if settings.ca_bundle:
            # the package's documented knob for its HTTPS trust store (process-wide)
            exact_http.opt_secure.cacert_file = settings.ca_bundle
        self.storage = _Storage(settings, client_id, client_secret, tokens)
        self.api = _Api(self.storage)

    @property
    def requests(self) -> int:
        return self.api.calls

    @property
    def budgets(self) -> dict[str, dict[str, int]]:
        """The division's daily and minutely budgets as X-RateLimit-* last reported them."""
        return self.api.limiter.budgets

    @property
    def usage(self) -> dict[str, Any]:
        return dict(self.budgets)

    def probe(self) -> dict[str, str]:
        """Refresh the stored tokens and ask who we are (``current/Me``); report the
        division's daily and minutely budgets from the X-RateLimit headers."""
        decoded = self.rest(GET("v1/current/Me?$select=CurrentDivision,UserName"), "probe")
        me = ((decoded or {}).get("d") or {}).get("results") or [{}]
        division = me[0].get("CurrentDivision")
        daily = self.budgets.get("daily") or {}
        out = {
            "detail": f"authorised as {me[0].get('UserName', '?')}; "
            f"daily budget {daily.get('remaining', '?')} of {daily.get('limit', '?')} left"
        }
        if division is not None and int(division) != self.s.division:
            out["warn"] = (
                f"the user's current division is {division}; vangnet reads {self.s.division}"
            )
        elif daily.get("limit") and daily.get("remaining", 0) < daily["limit"] * 0.1:
            out["warn"] = "less than 10% of the daily budget left"
        return out

    def authorization_url(self) -> str:
        return str(self.api.create_auth_request_url())

    def authorize(self, code: str) -> None:
        """Trade an authorisation code for tokens and keep them in the ledger."""
        with self.storage.store.locked() as (_current, conn), _timeout(self.s.timeout_seconds):
            try:
                self.api.request_token(code)
            except exact_http.HTTPError as exc:
                # the package's message holds the request body, client secret included
                raise FatalError(
                    f"Exact Online refused the authorisation: {_oauth_error(exc)}"
                ) from None
            self.storage.store.save(conn, self.storage.tokens())

    def rest(self, request: Any, what: str) -> Any:
        if not self.storage.transient.get("refresh_token"):
            current = self.storage.store.load()
            if current is None:
                raise FatalError(
                    "Exact Online is not authorised yet: run `vangnet exact authorize`"
                )
            self.storage.adopt(current)
        attempt = 0
        while True:
            try:
                with _timeout(self.s.timeout_seconds):
                    return self.api.rest(request)
            except exact_http.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    raise FatalError(
                        f"{what}: Exact Online answered {exc.code}: {_odata_error(exc)}"
                    ) from None
                err = RetriableError(f"{what}: Exact Online answered {exc.code}")
            except (TimeoutError, OSError) as exc:
                err = RetriableError(f"{what}: {type(exc).__name__} talking to Exact Online")
            except ValueError:
                err = RetriableError(f"{what}: Exact Online sent a malformed body")
            attempt += 1
            if attempt > self.s.max_retries:
                raise err
            time.sleep(min(0.5 * 2 ** (attempt - 1), 30))


class ExactReader:
    """``SourceReader`` on a sync endpoint: ``Timestamp gt <cursor>``, a page at a time."""

    def __init__(self, client: ExactClient, source: str = "exact") -> None:
        self.client = client
        self.source = source

    def read(self, entity: str, since: Cursor) -> Iterator[Page]:
        spec = self.client.s.entities.get(entity)  # type: ignore[call-overload]
        if spec is None:
            return
        columns = dict(spec.columns)
        props = list(dict.fromkeys(["Timestamp", *columns.values()]))
        flt = f"Timestamp gt {int(since.get('watermark') or 1)}"
        if spec.filter:
            flt += f" and ({spec.filter})"
        resource: str | None = (
            f"v1/{self.client.s.division}/{spec.endpoint}?$select={','.join(props)}&$filter={quote(flt)}"
        )
        while resource:
            decoded = self.client.rest(GET(resource), f"{self.source}.{entity}")
            data = decoded.get("d") if isinstance(decoded, Mapping) else None
            if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
                raise RetriableError(f"{self.source}.{entity}: unexpected answer (no d.results)")
            results = data["results"]
            if results:
                yield Page(
                    to_frame(entity, results, columns), {"watermark": str(results[-1]["Timestamp"])}
                )
            resource = data.get("__next")


class ExactWriter:
    """``StatusWriter``: look the records up (a batch of ids per call), then PUT each
    change that is needed. A record changed since we read it (``Modified``) or missing is
    a ``conflict``; one that already holds the values is ``applied`` without a call."""

    def __init__(self, client: ExactClient) -> None:
        self.client = client

    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        out: dict[str, WriteResult] = {}
        for entity, _wb, mine in by_entity(changes, self.client.s.write_back, out):
            for i in range(0, len(mine), LOOKUP_BATCH):
                out.update(self._batch(entity, mine[i : i + LOOKUP_BATCH]))
        return [out[c.change_id] for c in changes]

    def _batch(self, entity: str, batch: list[WriteBack]) -> dict[str, WriteResult]:
        wb = self.client.s.write_back[entity]
        div = self.client.s.division
        out: dict[str, WriteResult] = {}
        valid = []
        for c in batch:
            try:
                odata_literal(c.record_id, wb.match_is_number)
                valid.append(c)
            except ValueError as exc:
                out[c.change_id] = WriteResult(c.change_id, "failed", str(exc))
        if not valid:
            return out
        flt = " or ".join(
            f"{wb.match} eq {odata_literal(c.record_id, wb.match_is_number)}" for c in valid
        )
        props = list(dict.fromkeys([wb.key, wb.match, "Modified", *wb.fields.values()]))
        found = self.client.rest(
            GET(f"v1/{div}/{wb.endpoint}?$select={','.join(props)}&$filter={quote(flt)}"),
            f"{entity} lookup",
        )
        rows = found.get("d", {}).get("results", []) if isinstance(found, Mapping) else []
        current = {str(r.get(wb.match)): r for r in rows}
        for c in valid:
            row = current.get(c.record_id)
            wanted = {wb.fields[k]: v for k, v in c.values.items() if k in wb.fields}
            if row is None:
                out[c.change_id] = WriteResult(
                    c.change_id, "conflict", "record missing in Exact Online"
                )
            elif all(same_value(row.get(p), v) for p, v in wanted.items()):
                out[c.change_id] = WriteResult(c.change_id, "applied")
            elif c.expected_version and plain(row.get("Modified")) != c.expected_version:
                out[c.change_id] = WriteResult(
                    c.change_id, "conflict", "record changed in Exact Online since it was read"
                )
            else:
                guid = str(row[wb.key])
                try:
                    self.client.rest(
                        PUT(f"v1/{div}/{wb.endpoint}(guid'{guid}')", data=wanted),
                        f"{entity} update",
                    )
                    out[c.change_id] = WriteResult(c.change_id, "applied")
                except FatalError as exc:
                    out[c.change_id] = WriteResult(c.change_id, "failed", str(exc))
        return out
