"""A loopback HTTPS server for wire fakes: a test CA made on the fly, one handler
class per provider, and fault injection shared by every fake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class TestCA:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    ca_key_pem: Path | None = None


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_client_cert(
    ca: TestCA, folder: Path, name: str = "vangnet-client", days: int = 1
) -> tuple[Path, Path]:
    """A client certificate (TLS client auth) signed by the test CA: (cert, key)."""
    assert ca.ca_key_pem is not None
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem.read_bytes())
    ca_key: Any = serialization.load_pem_private_key(ca.ca_key_pem.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days, minutes=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


def make_ca(folder: Path) -> TestCA:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vangnet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = TestCA(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "ca.key")
    out.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    assert out.ca_key_pem is not None
    out.ca_key_pem.write_bytes(_pem_key(ca_key))
    out.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


@dataclass
class Fault:
    """What the next matching request gets instead of a normal answer."""

    kind: str  # "429" | "500" | "slow" | "malformed" | "expired" | "reset"
    path_contains: str = ""
    seconds: float = 0.0


@dataclass
class FaultPlan:
    queue: deque[Fault] = field(default_factory=deque)
    injected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, times: int = 1, path_contains: str = "", seconds: float = 0.0) -> None:
        for _ in range(times):
            self.queue.append(Fault(kind, path_contains, seconds))

    def take(self, path: str) -> Fault | None:
        with self.lock:
            for f in list(self.queue):
                if f.path_contains in path:
                    self.queue.remove(f)
                    self.injected.append(f.kind)
                    return f
        return None


class FakeHandler(BaseHTTPRequestHandler):
    """Base handler: JSON helpers and fault injection before the provider logic."""

    server: FakeServer
    protocol_version = "HTTP/1.1"
    _body: bytes | None = None

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output clean
        return

    def body(self) -> bytes:
        """The request body, read once (a fault answered before the handler read it must
        still drain it, or the next request on the kept-alive connection breaks)."""
        if self._body is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(n) if n else b""
        return self._body

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle and delayed ACKs
        # cost 40 ms a request and the fake, not the client, is what gets measured
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        self._body = None  # each request on a kept-alive connection anew
        super().handle_one_request()

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_raw(status, data, "application/json", headers)

    def send_raw(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def fault(self) -> bool:
        """Apply an injected fault; True when the request was answered by it."""
        self.body()
        f = self.server.faults.take(self.path)
        if f is None:
            return False
        if f.kind == "slow":
            time.sleep(f.seconds)
            return False  # then answer normally, too late for the client
        if f.kind == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        return self.provider_fault(f)

    def provider_fault(self, f: Fault) -> bool:
        raise NotImplementedError


_S = TypeVar("_S", bound="FakeServer")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, handler: type[FakeHandler], ca: TestCA, require_client_cert: bool = False
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ca.cert_pem, ca.key_pem)
        if require_client_cert:  # mutual TLS: no certificate from our CA, no connection
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(ca.ca_pem)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.faults = FaultPlan()
        self.requests: list[tuple[str, str]] = []
        self.connections = 0  # accepted TCP connections (keep-alive is seen here)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
