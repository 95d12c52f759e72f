"""The only module of this connector that talks SFTP.

Host keys are pinned (a configured SHA256 fingerprint or a known_hosts file) and never
auto-added. Downloads land under a temporary name, are size-checked and hashed, and only
then renamed into place, so a dropped connection leaves nothing half-read behind.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import io
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from pydantic import SecretStr

from connectors.errors import DataError, FatalError, RetriableError
from connectors.sftp.settings import SftpSettings


class ChecksumMissing(RetriableError):
    """The file's checksum file is not there (yet): leave the file for a later run."""


class ChecksumMismatch(DataError):
    """The file does not match its checksum file: it goes to failed/, never into the ledger."""


def fingerprint_of(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _PinnedFingerprint(paramiko.MissingHostKeyPolicy):
    def __init__(self, expected: str) -> None:
        self.expected = expected.strip()

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        got = fingerprint_of(key)
        if got != self.expected:
            raise FatalError(
                f"host key of {hostname} is {got}, expected {self.expected}: refusing to connect"
            )


@dataclass(frozen=True)
class Downloaded:
    remote_name: str
    local_path: Path
    sha256: str
    size: int


def _load_pkey(text: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise FatalError("private key could not be read (ed25519, ecdsa or rsa expected)")


# what paramiko raises when the connection itself is gone (a lost request comes back as
# an OSError, which the callers already sort)
_DROPPED = (EOFError, paramiko.SSHException)


def _join_prefetch_threads(timeout: float = 5.0) -> None:
    """paramiko prefetches in a background thread that dies on its own when the
    connection drops; wait for it so the failure is over when ``download`` returns."""
    for t in threading.enumerate():
        target = getattr(t, "_target", None)
        if getattr(target, "__name__", "") == "_prefetch_thread":
            t.join(timeout)


SEGMENT_BYTES = 8 << 20  # what one pipelined read asks for (``SftpClient._fetch``)
_BLOCK = paramiko.SFTPFile.MAX_REQUEST_SIZE  # 32 KiB: one read request


class SftpClient:
    def __init__(
        self,
        settings: SftpSettings,
        password: SecretStr | None = None,
        private_key: SecretStr | None = None,
    ) -> None:
        self.s = settings
        self._password = password
        self._key = private_key
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> SftpClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        ssh = paramiko.SSHClient()
        if self.s.known_hosts:
            ssh.load_host_keys(str(Path(self.s.known_hosts).expanduser()))
            ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            assert self.s.host_key_fingerprint
            ssh.set_missing_host_key_policy(_PinnedFingerprint(self.s.host_key_fingerprint))
        pkey = _load_pkey(self._key.get_secret_value()) if self._key else None
        try:
            ssh.connect(
                self.s.host,
                port=self.s.port,
                username=self.s.username,
                password=self._password.get_secret_value() if self._password else None,
                pkey=pkey,
                timeout=self.s.connect_timeout_seconds,
                banner_timeout=self.s.banner_timeout_seconds,
                auth_timeout=self.s.auth_timeout_seconds,
                allow_agent=False,
                look_for_keys=False,
            )
        except FatalError:
            ssh.close()
            raise
        except paramiko.AuthenticationException:
            ssh.close()
            raise FatalError(f"SFTP authentication refused for user {self.s.username}") from None
        except paramiko.BadHostKeyException as exc:
            ssh.close()
            raise FatalError(f"host key mismatch for {exc.hostname}: refusing to connect") from None
        except paramiko.SSHException as exc:
            ssh.close()
            if "not found in known_hosts" in str(exc):
                raise FatalError(
                    f"host key of {self.s.host} not in known_hosts: refusing"
                ) from None
            raise RetriableError(f"SFTP connection failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            ssh.close()
            raise RetriableError(
                f"SFTP connection to {self.s.host}:{self.s.port} failed: {exc}"
            ) from None
        sftp = ssh.open_sftp()
        sftp.get_channel().settimeout(self.s.connect_timeout_seconds * 4)
        self._ssh, self._sftp = ssh, sftp

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise FatalError("SFTP client is not connected")
        return self._sftp

    def close(self) -> None:
        """Close quietly: after a dropped connection there is nothing left to close, and
        an error here must not hide the one that ended the session."""
        for closable in (self._sftp, self._ssh):
            if closable is None:
                continue
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                closable.close()
        self._sftp = self._ssh = None

    def probe(self) -> dict[str, str]:
        """Connect (host key, login) and count what waits in ``remote_dir``."""
        with self:
            waiting = len(self.list_new())
        key = "known_hosts" if self.s.known_hosts else "pinned fingerprint"
        return {
            "detail": f"host key matches {key}; {waiting} file(s) waiting in {self.s.remote_dir}"
        }

    def list_new(self) -> list[str]:
        """File names in ``remote_dir`` matching ``pattern``, oldest name first."""
        try:
            names = self.sftp.listdir(self.s.remote_dir)
        except (OSError, *_DROPPED) as exc:
            raise RetriableError(f"SFTP: cannot list {self.s.remote_dir}: {exc!r}") from None
        return sorted(
            n
            for n in names
            if fnmatch.fnmatch(n, self.s.pattern)
            and not n.startswith(".")
            and not n.endswith(".sha256")
        )

    def _expected_sha256(self, name: str) -> str | None:
        if self.s.checksum != "sha256":
            return None
        path = posixpath.join(self.s.remote_dir, f"{name}.sha256")
        try:
            with self.sftp.open(path, "r") as fh:
                text = fh.read(4096).decode("ascii", "replace")
        except OSError:
            raise ChecksumMissing(f"{name}: no {name}.sha256 yet") from None
        except _DROPPED as exc:
            raise RetriableError(f"SFTP: reading {name}.sha256 interrupted: {exc!r}") from None
        token = text.split()[0].lower() if text.split() else ""
        if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
            raise ChecksumMismatch(f"{name}.sha256 holds no SHA-256 digest")
        return token

    def _fetch(
        self, remote: str, tmp: Path, size: int, progress: Callable[[int, int], object] | None
    ) -> None:
        """The file in segments of ``SEGMENT_BYTES``, each read with paramiko's pipelined
        reads (``readv``). ``SFTPClient.get`` pipelines the whole file at once, and when
        the answers catch up with the thread that sends the requests, paramiko takes the
        prefetch for done and reads the rest one 32 KiB round trip at a time, while the
        requests already sent are answered into a buffer nobody reads (paramiko #2418):
        once, a 430 MB statement took about 8 minutes instead of 5 s. Per segment, such a
        fall-back is over at the segment's end. Measured on loopback, 430 MB: 4.8-5.2 s
        with ``get``, 6.3 s so."""
        with self.sftp.open(remote, "rb") as src, open(tmp, "wb") as out:
            for start in range(0, size, SEGMENT_BYTES):
                end = min(start + SEGMENT_BYTES, size)
                # one block a request: given the segment as one chunk, readv assembles an
                # 8 MiB read from its buffers, which took 10.4-11.1 s for the 430 MB file
                blocks = [(o, min(_BLOCK, end - o)) for o in range(start, end, _BLOCK)]
                for data in src.readv(blocks):
                    out.write(data)
                if progress is not None:
                    progress(end, size)

    def download(
        self, name: str, local_dir: Path, progress: Callable[[int, int], object] | None = None
    ) -> Downloaded:
        if "/" in name or name in (".", ".."):
            raise FatalError(f"refusing remote file name {name!r}")
        remote = posixpath.join(self.s.remote_dir, name)
        expected = self._expected_sha256(name)
        local_dir.mkdir(parents=True, exist_ok=True)
        tmp = local_dir / f".{name}.part"
        try:
            size = self.sftp.stat(remote).st_size or 0
            if size > self.s.max_file_bytes:
                raise FatalError(f"{name}: {size} bytes exceeds the {self.s.max_file_bytes} limit")
            self._fetch(remote, tmp, size, progress)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            _join_prefetch_threads()
            tmp.unlink(missing_ok=True)
            raise RetriableError(f"SFTP download of {name} interrupted: {exc!r}") from None
        got = tmp.stat().st_size
        if got != size:
            tmp.unlink(missing_ok=True)
            raise RetriableError(f"SFTP download of {name}: got {got} of {size} bytes")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if expected is not None and digest != expected:
            tmp.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{name}: SHA-256 {digest[:12]}... does not match its checksum file"
                f" ({expected[:12]}...)"
            )
        final = local_dir / name
        tmp.replace(final)
        return Downloaded(name, final, digest, got)

    def move(self, name: str, to_dir: str) -> None:
        src = posixpath.join(self.s.remote_dir, name)
        try:
            self._ensure_dir(to_dir)
            target = posixpath.join(to_dir, name)
            try:
                self.sftp.stat(target)
                target = posixpath.join(
                    to_dir, f"{name}.{hashlib.sha256(src.encode()).hexdigest()[:8]}"
                )
            except OSError:
                pass
            self.sftp.rename(src, target)
            if self.s.checksum == "sha256":  # the checksum file travels with its file
                with contextlib.suppress(OSError):
                    self.sftp.rename(f"{src}.sha256", f"{target}.sha256")
        except (OSError, *_DROPPED) as exc:
            raise RetriableError(f"SFTP: cannot move {name} to {to_dir}: {exc!r}") from None

    def upload(self, local: Path, remote_dir: str, replace: bool = False) -> None:
        """Upload under a temporary name, then rename into place (readers never see half a
        file). ``replace``: an existing file of that name is replaced."""
        tmp = posixpath.join(remote_dir, f".{local.name}.part")
        target = posixpath.join(remote_dir, local.name)
        try:
            self._ensure_dir(remote_dir)
            self.sftp.put(str(local), tmp)
            if replace:
                with contextlib.suppress(OSError):
                    self.sftp.remove(target)
            self.sftp.rename(tmp, target)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RetriableError(f"SFTP upload of {local.name} failed: {exc!r}") from None

    def _ensure_dir(self, path: str) -> None:
        """mkdir -p on the server."""
        try:
            self.sftp.stat(path)
            return
        except OSError:
            pass
        parent = posixpath.dirname(path.rstrip("/"))
        if parent and parent not in (".", "/"):
            self._ensure_dir(parent)
        self.sftp.mkdir(path)
