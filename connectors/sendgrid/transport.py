"""Keep-alive for the ``sendgrid`` client.

``python_http_client`` (under ``sendgrid``) sends every request through a new
``urllib`` opener: a new TCP connection and TLS handshake per call. A batch of 100
requests paid that 100 times. ``KeepAliveClient`` is the same client with one
``_make_request`` replaced (the method its authors left separate to be swapped): the
request it built (method, URL, headers, body) goes over a kept ``HTTPSConnection``,
one per thread, and the answer comes back as the client expects it (a ``getcode`` /
``read`` / ``info`` response, or the client's own ``HTTPError`` subclasses through
``handle_error``). Everything above it (URL building, JSON, headers) is the client's.

A connection idle longer than ``idle_seconds`` is not reused, since the server may
have closed it. A reused connection that breaks before any answer still raises
``ConnectionError``: for a ``POST`` it is unknown whether the request was read, and
the channel treats that as ambiguous (looked up before anything is sent again). It is
never resent here. ``close()`` closes every kept connection; the channel calls it at
the end of each ``send``.
"""

from __future__ import annotations

import http.client
import io
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from python_http_client.client import Client
from python_http_client.exceptions import handle_error


class _Answer:
    """What ``python_http_client.Response`` reads from a urllib response."""

    def __init__(self, status: int, body: bytes, headers: http.client.HTTPMessage) -> None:
        self._status, self._body, self._headers = status, body, headers

    def getcode(self) -> int:
        return self._status

    def read(self) -> bytes:
        return self._body

    def info(self) -> http.client.HTTPMessage:
        return self._headers


class ConnectionPool:
    """One kept HTTPS connection per (thread, host)."""

    def __init__(self, idle_seconds: float = 5.0, context: ssl.SSLContext | None = None) -> None:
        self.idle_seconds = idle_seconds
        self.context = context or ssl.create_default_context()
        self._lock = threading.Lock()
        self._conns: dict[tuple[int, str], tuple[http.client.HTTPSConnection, float]] = {}
        self.opened = 0  # connections opened (the tests read it)

    def take(self, netloc: str, timeout: float | None) -> http.client.HTTPSConnection:
        """A connection to ``netloc`` for this thread: the kept one if it is fresh."""
        key = (threading.get_ident(), netloc)
        with self._lock:
            kept = self._conns.pop(key, None)
        if kept is not None:
            conn, last = kept
            if time.monotonic() - last <= self.idle_seconds and conn.sock is not None:
                conn.timeout = timeout
                conn.sock.settimeout(timeout)
                return conn
            conn.close()
        with self._lock:
            self.opened += 1
        return http.client.HTTPSConnection(netloc, timeout=timeout, context=self.context)

    def give_back(self, netloc: str, conn: http.client.HTTPSConnection) -> None:
        with self._lock:
            self._conns[(threading.get_ident(), netloc)] = (conn, time.monotonic())

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn, _ in conns:
            conn.close()


class KeepAliveClient(Client):
    def __init__(self, *args: Any, pool: ConnectionPool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool or ConnectionPool()

    def _build_client(self, name: str | None = None) -> KeepAliveClient:
        url_path = self._url_path + [name] if name else self._url_path
        return KeepAliveClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            pool=self.pool,
        )

    def _make_request(
        self, opener: Any, request: urllib.request.Request, timeout: float | None = None
    ) -> _Answer:
        timeout = timeout or self.timeout
        url = urllib.parse.urlsplit(request.get_full_url())
        if url.scheme != "https":
            raise urllib.error.URLError(f"only https:// is spoken, not {url.scheme}://")
        target = url.path + (f"?{url.query}" if url.query else "")
        conn = self.pool.take(url.netloc, timeout)
        try:
            conn.request(
                request.get_method(),
                target or "/",
                body=request.data,
                headers=dict(request.header_items()),
            )
            resp = conn.getresponse()
            body = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self.pool.give_back(url.netloc, conn)
        if resp.status >= 400:
            err = urllib.error.HTTPError(
                request.get_full_url(), resp.status, resp.reason, resp.headers, io.BytesIO(body)
            )
            exc = handle_error(err)
            exc.__cause__ = None
            raise exc
        return _Answer(resp.status, body, resp.headers)


__all__ = ["ConnectionPool", "KeepAliveClient"]
