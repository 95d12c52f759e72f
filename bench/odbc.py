"""ODBC connector throughput next to bare pyodbc, on SQLite and PostgreSQL.

    python -m bench.odbc [--rows 100000] [--json]

Per database: the connector's read (streamed pages mapped to canonical frames) against a
bare ``cursor.fetchall()`` of the same query, and the connector's write-back
(parameterised UPDATEs with the version check, one transaction per batch) against a
bare ``executemany`` of the same UPDATE. PostgreSQL is used when it runs on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyodbc

from connectors.odbc import OdbcReader, OdbcSettings, OdbcWriter
from ledger.records import WriteBack

QUERY = (
    "SELECT factuurnr, relatienr, factuurdatum, vervaldatum, bedrag, openstaand, valuta, betalingskenmerk,"
    " gewijzigd_op FROM facturen WHERE gewijzigd_op > :watermark OR (gewijzigd_op = :watermark AND"
    " factuurnr > :last_key) ORDER BY gewijzigd_op, factuurnr"
)
BARE_QUERY = QUERY.replace(":watermark", "''").replace(":last_key", "''")
COLUMNS = {
    "invoice_id": "factuurnr",
    "debtor_id": "relatienr",
    "invoice_date": "factuurdatum",
    "due_date": "vervaldatum",
    "amount_cents": "bedrag",
    "open_cents": "openstaand",
    "currency": "valuta",
    "payment_reference": "betalingskenmerk",
    "source_version": "gewijzigd_op",
}
UPDATE = "UPDATE facturen SET incassostatus = :status WHERE factuurnr = :record_id AND gewijzigd_op = :expected_version"
DDL = (
    "CREATE TABLE facturen (factuurnr VARCHAR(20) PRIMARY KEY, relatienr VARCHAR(20), factuurdatum VARCHAR(10),"
    " vervaldatum VARCHAR(10), bedrag VARCHAR(20), openstaand VARCHAR(20), valuta VARCHAR(3),"
    " betalingskenmerk VARCHAR(20), gewijzigd_op VARCHAR(30) NOT NULL, incassostatus VARCHAR(20))"
)
STAMP = "2026-11-22T06:00:00"


def rows(n: int) -> list[tuple[Any, ...]]:
    return [
        (
            f"F{i:08d}",
            f"R{i % 25000:07d}",
            "2026-10-01",
            "2026-10-15",
            f"{100 + i % 900}.50",
            f"{100 + i % 900}.50",
            "EUR",
            "5000056789012345",
            STAMP,
        )
        for i in range(n)
    ]


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def setup_sqlite(folder: Path, n: int) -> str:
    db = folder / "erp.sqlite"
    with sqlite3.connect(db) as c:
        c.execute(DDL)
        c.execute("CREATE INDEX fw ON facturen (gewijzigd_op, factuurnr)")
        c.executemany("INSERT INTO facturen VALUES (?,?,?,?,?,?,?,?,?,NULL)", rows(n))
    return f"DRIVER={{SQLite3}};Database={db}"


def setup_pg(n: int) -> tuple[str, str]:
    import psycopg2
    from psycopg2.extras import execute_values

    name = f"vangnet_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=name) as c, c.cursor() as cur:
        cur.execute(DDL)
        cur.execute("CREATE INDEX fw ON facturen (gewijzigd_op, factuurnr)")
        execute_values(
            cur, "INSERT INTO facturen VALUES %s", [(*r, None) for r in rows(n)], page_size=5000
        )
    admin.close()
    return (
        f"DRIVER={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database={name};Uid=postgres",
        name,
    )


def drop_pg(name: str) -> None:
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def measure(conn_str: str, n: int, fast: bool) -> dict[str, float]:
    settings = OdbcSettings(
        connection_string=conn_str,
        page_size=5000,
        fast_executemany=fast,
        entities={
            "invoices": {
                "query": QUERY,
                "key": "factuurnr",
                "watermark": "gewijzigd_op",
                "columns": COLUMNS,
            }
        },
        write_back={"invoices": UPDATE},
    )
    t = time.perf_counter()
    with pyodbc.connect(conn_str) as c:
        got = c.cursor().execute(BARE_QUERY).fetchall()
    bare_read = time.perf_counter() - t
    assert len(got) == n
    t = time.perf_counter()
    read = sum(len(p.frame) for p in OdbcReader(settings).read("invoices", {}))
    conn_read = time.perf_counter() - t
    assert read == n
    changes = [
        WriteBack(f"c{i}", "invoices", f"F{i:08d}", {"status": "betaald"}, STAMP) for i in range(n)
    ]
    t = time.perf_counter()
    results = OdbcWriter(settings).write(changes)
    conn_write = time.perf_counter() - t
    assert all(r.status == "applied" for r in results)
    t = time.perf_counter()
    with pyodbc.connect(conn_str, autocommit=False) as c:
        cur = c.cursor()
        if fast:
            cur.fast_executemany = True
        cur.executemany(
            "UPDATE facturen SET incassostatus = ? WHERE factuurnr = ? AND gewijzigd_op = ?",
            [("open", f"F{i:08d}", STAMP) for i in range(n)],
        )
        c.commit()
    bare_write = time.perf_counter() - t
    return {
        "bare_read_s": bare_read,
        "read_s": conn_read,
        "bare_write_s": bare_write,
        "write_s": conn_write,
    }


#: what a benchmark's figure does not depend on (git pathspecs)
_NOT_CODE = (":(exclude)docs", ":(exclude)bench/results", ":(exclude)*.md")


def commit_id() -> str:
    """The commit measured: HEAD's short id, ``+dirty`` when tracked files other than
    documentation and results differ from it (a run of uncommitted code is not that
    commit's figure; a doc being written beside it changes nothing measured)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_NOT_CODE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.rows
    results: dict[str, Any] = {
        "benchmark": "odbc",
        "rows": n,
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": commit_id(),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(setup_sqlite(Path(tmp), n), n, fast=False)
    if _pg_up():
        conn_str, name = setup_pg(n)
        try:
            results["postgresql"] = measure(conn_str, n, fast=True)
        finally:
            drop_pg(name)
    lines = [
        f"ODBC connector, {n} rows (rows/s; ratio = connector time / bare time)",
        f"{'database':<11} {'read':>10} {'bare fetchall':>14} {'ratio':>6} {'write-back':>11} {'bare executemany':>17} {'ratio':>6}",
    ]
    for db in ("sqlite", "postgresql"):
        r = results.get(db)
        if r:
            lines.append(
                f"{db:<11} {n / r['read_s']:>10.0f} {n / r['bare_read_s']:>14.0f} {r['read_s'] / r['bare_read_s']:>6.2f}"
                f" {n / r['write_s']:>11.0f} {n / r['bare_write_s']:>17.0f} {r['write_s'] / r['bare_write_s']:>6.2f}"
            )
    print("\n".join(lines))
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / f"odbc-{dt.date.today().isoformat()}.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
