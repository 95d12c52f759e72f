"""Shared fixtures: real local peers (PostgreSQL, MariaDB) when their servers run."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "statements"
if not CORPUS.exists():  # a clone elsewhere: the corpus may be beside the repo
    CORPUS = Path(os.environ.get("VANGNET_CORPUS", CORPUS))

PG_HOST, PG_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.exists():
        pytest.fail(f"statement corpus not found at {CORPUS} (set VANGNET_CORPUS)")
    return CORPUS


@contextlib.contextmanager
def _fresh_pg_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database on loopback, drop it afterwards."""
    if not _listening(PG_HOST, PG_PORT):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _ledger_database() -> Iterator[str]:
    with _fresh_pg_database("vangnet_t") as name:
        yield f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}"
        from flows.context import forget_engines

        forget_engines(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the ledger; skipped only if no server runs."""
    yield from _ledger_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    """Each test twice: the embedded SQLite ledger (None), then a fresh PostgreSQL one."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url_b() -> Iterator[str]:
    """A second fresh PostgreSQL ledger, for tests that compare two runs."""
    yield from _ledger_database()


@pytest.fixture
def pg_odbc() -> Iterator[str]:
    """A fresh PostgreSQL database reached through the psqlodbc driver."""
    with _fresh_pg_database("vangnet_erp") as name:
        yield f"DRIVER={{PostgreSQL Unicode}};Server={PG_HOST};Port={PG_PORT};Database={name};Uid=postgres"


@pytest.fixture
def mariadb_odbc() -> Iterator[str]:
    """A fresh MariaDB database reached through the MariaDB ODBC driver."""
    if not _listening(MARIADB_HOST, MARIADB_PORT):
        pytest.skip("MariaDB is not running on 127.0.0.1:3306")
    import pyodbc

    name = f"vangnet_erp_{uuid.uuid4().hex[:10]}"
    base = f"DRIVER={{MariaDB Unicode}};Server={MARIADB_HOST};Port={MARIADB_PORT};Uid=root"
    admin = pyodbc.connect(base, autocommit=True)
    admin.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"{base};Database={name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
