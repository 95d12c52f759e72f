"""A small SFTP server on loopback, for the embedded default and the tests.

Built on paramiko's server interface: one root folder, one user with a public key or a
password, paths confined to the root (``..`` and absolute escapes refused). It is a real
SFTP peer speaking the protocol over TCP, not a mock of the client.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

log = logging.getLogger(__name__)
# the server side logs a client's ordinary disconnect as an error; it is not one here
logging.getLogger("vangnet.localsftp").setLevel(logging.CRITICAL)


class Tripwire:
    """Fault injection for tests: every session is dropped at the n-th SFTP request
    after ``arm(n)`` (a listing, an open, a read of a block, a rename ...), as a network
    that gives out mid-transfer or mid-move would. Disarmed, it costs a counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: int | None = None
        self._every, self._times = 1, 0
        self.requests = 0
        self.seen: list[str] = []  # the first requests' kinds, for a test to aim at one
        self.fired = 0
        self.on_fire: Any = None  # set by the server: drops every session

    def arm(self, n: int, times: int = 1) -> None:
        """Drop at the n-th request from now; ``times`` > 1 drops again every n-th
        request after that (a line that keeps failing)."""
        with self._lock:
            self._every, self._times = max(n, 1), times
            self._left = self._every

    def disarm(self) -> None:
        with self._lock:
            self._left = None

    def tick(self, kind: str) -> None:
        """Count one request; at the armed one, drop every session and fail it."""
        with self._lock:
            self.requests += 1
            if len(self.seen) < 10_000:
                self.seen.append(kind)
            if self._left is None:
                return
            self._left -= 1
            if self._left > 0:
                return
            self.fired += 1
            self._times -= 1
            self._left = self._every if self._times > 0 else None
        # another thread closes the transports: this one is inside one of them
        threading.Thread(target=self.on_fire, daemon=True).start()
        raise ConnectionResetError("tripwire: the connection dropped")


class _Handle(paramiko.SFTPHandle):
    tripwire: Tripwire | None = None

    def read(self, offset: int, length: int) -> Any:
        if self.tripwire is not None:
            try:
                self.tripwire.tick("read")
            except ConnectionResetError:
                return SFTP_FAILURE
        return super().read(offset, length)

    def stat(self) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)


class _Sftp(paramiko.SFTPServerInterface):
    def __init__(self, server: Any, root: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = root.resolve()
        self.tripwire: Tripwire | None = getattr(server, "tripwire", None)

    def _real(self, path: str) -> Path:
        p = (self.root / path.lstrip("/")).resolve()
        if p != self.root and self.root not in p.parents:
            raise PermissionError(path)
        return p

    def _guard(self, fn: Any, kind: str = "") -> Any:
        try:
            if self.tripwire is not None:
                self.tripwire.tick(kind or getattr(fn, "__name__", "request"))
            return fn()
        except ConnectionResetError:
            return SFTP_FAILURE
        except PermissionError:
            return SFTP_PERMISSION_DENIED
        except FileNotFoundError:
            return SFTP_NO_SUCH_FILE
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno) if exc.errno else SFTP_FAILURE

    def canonicalize(self, path: str) -> str:
        return "/" + str(Path("/", path).resolve()).lstrip("/")

    def list_folder(self, path: str) -> Any:
        def go() -> Any:
            real = self._real(path)
            out = []
            for name in sorted(os.listdir(real)):
                attr = paramiko.SFTPAttributes.from_stat(os.stat(real / name))
                attr.filename = name
                out.append(attr)
            return out

        return self._guard(go, "list")

    def stat(self, path: str) -> Any:
        return self._guard(
            lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._real(path))), "stat"
        )

    lstat = stat

    def open(self, path: str, flags: int, attr: Any) -> Any:
        def go() -> Any:
            real = self._real(path)
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
            if flags & os.O_WRONLY:
                mode = "ab" if flags & os.O_APPEND else "wb"
            elif flags & os.O_RDWR:
                mode = "a+b" if flags & os.O_APPEND else "r+b"
            else:
                mode = "rb"
            f = os.fdopen(fd, mode)
            h = _Handle(flags)
            h.tripwire = self.tripwire
            h.filename = str(real)
            h.readfile = f
            h.writefile = f
            return h

        return self._guard(go, "open")

    def _ok(self, fn: Any, *args: Any) -> int:
        fn(*args)
        return SFTP_OK

    def remove(self, path: str) -> Any:
        return self._guard(lambda: self._ok(os.remove, self._real(path)), "remove")

    def rename(self, oldpath: str, newpath: str) -> Any:
        def go() -> Any:
            new = self._real(newpath)
            if new.exists():
                return SFTP_FAILURE
            os.rename(self._real(oldpath), new)
            return SFTP_OK

        return self._guard(go, "rename")

    def posix_rename(self, oldpath: str, newpath: str) -> Any:
        return self._guard(
            lambda: self._ok(os.replace, self._real(oldpath), self._real(newpath)), "rename"
        )

    def mkdir(self, path: str, attr: Any) -> Any:
        return self._guard(lambda: self._ok(os.mkdir, self._real(path)), "mkdir")

    def rmdir(self, path: str) -> Any:
        return self._guard(lambda: self._ok(os.rmdir, self._real(path)), "rmdir")


class _Auth(paramiko.ServerInterface):
    def __init__(
        self, username: str, password: str | None, public_key: paramiko.PKey | None
    ) -> None:
        self.username, self.password, self.public_key = username, password, public_key
        self.tripwire = Tripwire()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED
            if kind == "session"
            else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        )

    def get_allowed_auths(self, username: str) -> str:
        kinds = []
        if self.public_key is not None:
            kinds.append("publickey")
        if self.password is not None:
            kinds.append("password")
        return ",".join(kinds)

    def check_auth_password(self, username: str, password: str) -> int:
        ok = self.password is not None and username == self.username and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = self.public_key is not None and username == self.username and key == self.public_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED


class LocalSftpServer:
    """Serve ``root`` over SFTP on 127.0.0.1; ``port=0`` picks a free port."""

    def __init__(
        self,
        root: Path,
        host_key: paramiko.PKey,
        username: str,
        password: str | None = None,
        public_key: paramiko.PKey | None = None,
        port: int = 0,
    ) -> None:
        self.root = Path(root)
        self.host_key = host_key
        self.auth = _Auth(username, password, public_key)
        self.tripwire = self.auth.tripwire
        self.tripwire.on_fire = self.drop_connections
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, name="local-sftp", daemon=True)

    def __enter__(self) -> LocalSftpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            t = paramiko.Transport(conn)
            t.set_log_channel("vangnet.localsftp")
            t.add_server_key(self.host_key)
            t.set_subsystem_handler("sftp", paramiko.SFTPServer, _Sftp, self.root)
            try:
                t.start_server(server=self.auth)
            except (paramiko.SSHException, EOFError, OSError):
                t.close()
                continue
            self._transports.append(t)

    def drop_connections(self) -> None:
        """Kill every open session (to test resuming after a dropped connection)."""
        dropped, self._transports = self._transports, []
        for t in dropped:
            t.close()

    def stop(self) -> None:
        self._stop.set()
        self.drop_connections()
        self._thread.join(timeout=5)
        self._sock.close()
