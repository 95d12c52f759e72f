"""A PostgreSQL server of the test's own, so that a test may restart it (the shared
server on 5432 serves parallel tests and must stay up): ``initdb`` into a temporary
folder, ``pg_ctl start`` on a free loopback port, ``restart()`` as a crash (``pg_ctl
stop -m immediate``: no shutdown checkpoint, every session cut) followed by a start
with crash recovery. It needs the PostgreSQL server binaries (Debian's
``postgresql-<n>``); as root, the server runs as the ``postgres`` user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().with_name("initdb").exists():
        return Path(found).resolve().parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists():
            return Path(d)
    return None


def available() -> str | None:
    """Why a private server cannot run here, or None when it can."""
    if _bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        bindir = _bindir()
        assert bindir is not None, available()
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.restarts = 0
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new database on this server; its SQLAlchemy URL."""
        import sqlalchemy as sa

        eng = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=50 -c shared_buffers=32MB"
        )
        self._pg_ctl("-l", str(self.root / "server.log"), "-o", opts, "start")

    def crash(self) -> None:
        """What a power cut does to the server: every session gone, no checkpoint."""
        self._pg_ctl("-m", "immediate", "stop")

    def restart(self) -> None:
        """A crash, then the server back (crash recovery replays its WAL)."""
        self.crash()
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("-m", "fast", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh server in a folder of its own under the system's temporary folder (the
    postgres user cannot enter pytest's, which only root may read)."""
    root = Path(tempfile.mkdtemp(prefix="vangnet-pg-"))
    pg = PrivatePostgres(root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
