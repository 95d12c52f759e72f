"""The SOAP system link: mutual TLS with a PKIoverheid client certificate (requests),
payloads from ``soap_schema`` (the one module to swap for the toolkit's WSDL)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from connectors.errors import FatalError, RetriableError
from connectors.schuldenknooppunt import soap_schema as schema
from connectors.schuldenknooppunt.messages import InMessage, MessageError, Reply, Unreadable
from connectors.schuldenknooppunt.settings import SoapExchangeSettings


class SoapExchange:
    """``DebtHelpExchange`` over SOAP. Certificate and key arrive as text (from a block,
    env or file) and live in a private temporary folder for the adapter's lifetime."""

    def __init__(self, settings: SoapExchangeSettings, cert_pem: str, key_pem: str) -> None:
        if not settings.endpoint.startswith("https://"):
            raise FatalError("the Schuldenknooppunt endpoint must be https://")
        self.settings = settings
        self._dir = tempfile.TemporaryDirectory(prefix="vangnet-skn-")
        folder = Path(self._dir.name)
        os.chmod(folder, 0o700)
        cert, key = folder / "client.pem", folder / "client.key"
        for path, text in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace our CA choice
        self._files = (str(cert), str(key))
        self.session.cert = self._files
        self.session.verify = settings.ca_bundle or True
        self.timeout = (settings.connect_timeout_seconds, settings.read_timeout_seconds)

    def probe(self) -> dict[str, str]:
        """Mutual TLS to the endpoint (the hub's certificate verified, ours presented
        and accepted) and how long our certificate stays valid."""
        import datetime as dt
        import socket
        import ssl
        from urllib.parse import urlsplit

        from cryptography import x509

        cert_path, key_path = self._files
        url = urlsplit(self.settings.endpoint)
        host, port = url.hostname or "", url.port or 443
        tls = ssl.create_default_context(cafile=self.settings.ca_bundle)
        tls.load_cert_chain(cert_path, key_path)
        try:
            with (
                socket.create_connection((host, port), self.timeout[0]) as raw,
                tls.wrap_socket(raw, server_hostname=host) as conn,
            ):
                conn.settimeout(self.timeout[1])
                conn.sendall(
                    f"GET {url.path or '/'}?wsdl HTTP/1.1\r\nHost: {host}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                status = conn.recv(64).split(b"\r\n", 1)[0].decode("latin-1")
                version = conn.version()
        except ssl.SSLCertVerificationError as exc:
            raise FatalError(
                f"the hub's certificate is not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise FatalError(
                f"TLS with the hub failed ({exc.reason}): is our certificate accepted?"
            ) from None
        except OSError as exc:
            raise RetriableError(f"cannot reach {host}:{port}: {exc}") from None
        if not status:
            raise FatalError("the hub closed the connection: our certificate was refused")
        ours = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        days = (ours.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
        out = {
            "detail": f"{version}, client certificate accepted ({status});"
            f" it expires in {days} days"
        }
        if days < 0:
            out["fail"] = "our client certificate has expired"
        elif days < 30:
            out["warn"] = f"our client certificate expires in {days} days: renew it now"
        return out

    def close(self) -> None:
        self.session.close()
        self._dir.cleanup()

    def __enter__(self) -> SoapExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------- the port
    def fetch_inbox(self) -> Sequence[InMessage | Unreadable]:
        body = self._call("fetch", schema.fetch_request(self._code, self._ns))
        try:
            return schema.parse_messages(body, self._ns)
        except MessageError as exc:
            raise RetriableError(f"Schuldenknooppunt fetch: unreadable response: {exc}") from None

    def acknowledge(self, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        body = self._call(
            "confirm", schema.confirm_request(self._code, list(message_ids), self._ns)
        )
        self._ack(body, "confirm")

    def post_reply(self, reply: Reply) -> None:
        body = self._call("send", schema.send_request(self._code, reply, self._ns))
        self._ack(body, "send")

    # ------------------------------------------------------------------- internals
    @property
    def _code(self) -> str:
        return self.settings.organisation_code

    @property
    def _ns(self) -> str:
        return self.settings.namespace

    def _ack(self, body: bytes, operation: str) -> None:
        try:
            schema.parse_ack(body, operation, self._ns)
        except MessageError as exc:
            raise RetriableError(
                f"Schuldenknooppunt {operation}: unreadable answer: {exc}"
            ) from None

    def _call(self, operation: str, envelope: bytes) -> bytes:
        action = schema.ACTIONS[operation]
        try:
            r = self.session.post(
                self.settings.endpoint,
                data=envelope,
                headers={
                    "Content-Type": "text/xml; charset=utf-8",
                    "SOAPAction": f'"{self._ns}/{action}"',
                },
                timeout=self.timeout,
            )
        except requests.exceptions.SSLError as exc:
            raise FatalError(
                f"Schuldenknooppunt {action}: TLS handshake failed (certificate, key or CA):"
                f" {type(exc).__name__}"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableError(f"Schuldenknooppunt {action}: {type(exc).__name__}") from None
        if r.status_code == 500 and b"Fault" in r.content:
            return self._fault(action, r.content)
        if r.status_code in (429, 502, 503, 504) or r.status_code >= 500:
            retry = r.headers.get("Retry-After")
            raise RetriableError(
                f"Schuldenknooppunt {action}: HTTP {r.status_code}",
                float(retry) if retry and retry.isdigit() else None,
            )
        if r.status_code in (401, 403):
            raise FatalError(f"Schuldenknooppunt {action}: HTTP {r.status_code}: not authorised")
        if r.status_code != 200:
            raise FatalError(f"Schuldenknooppunt {action}: HTTP {r.status_code}")
        return bytes(r.content)

    @staticmethod
    def _fault(action: str, content: bytes) -> Any:
        try:
            schema.parse_ack(content, "fetch")
        except schema.SoapFault as f:
            cls = RetriableError if f.server_side else FatalError
            raise cls(f"Schuldenknooppunt {action}: {f}") from None
        except MessageError:
            pass
        raise RetriableError(f"Schuldenknooppunt {action}: HTTP 500")


__all__ = ["SoapExchange"]
