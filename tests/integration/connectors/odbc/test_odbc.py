"""The ODBC connector through three real drivers: SQLite (libsqliteodbc), PostgreSQL
(psqlodbc) and MariaDB (odbc-mariadb), each against a real database on this machine."""

import sqlite3
from pathlib import Path

import pyodbc
import pytest

from connectors.errors import FatalError
from connectors.odbc import OdbcReader, OdbcSettings, OdbcWriter
from ledger.records import WriteBack

DDL = [
    "CREATE TABLE facturen (factuurnr VARCHAR(20) PRIMARY KEY, relatienr VARCHAR(20), factuurdatum VARCHAR(10),"
    " vervaldatum VARCHAR(10), bedrag VARCHAR(20), openstaand VARCHAR(20), valuta VARCHAR(3),"
    " betalingskenmerk VARCHAR(20), gewijzigd_op VARCHAR(30) NOT NULL, incassostatus VARCHAR(20))",
]
QUERY = (
    "SELECT factuurnr, relatienr, factuurdatum, vervaldatum, bedrag, openstaand, valuta, betalingskenmerk,"
    " gewijzigd_op FROM facturen WHERE gewijzigd_op > :watermark OR (gewijzigd_op = :watermark AND"
    " factuurnr > :last_key) ORDER BY gewijzigd_op, factuurnr"
)
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
UPDATE = (
    "UPDATE facturen SET incassostatus = :status WHERE factuurnr = :record_id"
    " AND gewijzigd_op = :expected_version"
)


def _rows(n: int, stamp: str) -> list[tuple]:
    return [
        (
            f"F{i:03d}",
            "R1",
            "2026-10-01",
            "2026-10-15",
            f"{100 + i}.50",
            f"{100 + i}.50",
            "EUR",
            "5000056789012345",
            stamp,
        )
        for i in range(n)
    ]


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def erp(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        db = tmp_path / "erp.sqlite"
        sqlite3.connect(db).close()
        conn_str = f"DRIVER={{SQLite3}};Database={db}"
    elif request.param == "postgres":
        conn_str = request.getfixturevalue("pg_odbc")
    else:
        conn_str = request.getfixturevalue("mariadb_odbc")
    with pyodbc.connect(conn_str, autocommit=True) as c:
        for ddl in DDL:
            c.execute(ddl)
        c.cursor().executemany(
            "INSERT INTO facturen (factuurnr, relatienr, factuurdatum, vervaldatum, bedrag,"
            " openstaand, valuta, betalingskenmerk, gewijzigd_op) VALUES (?,?,?,?,?,?,?,?,?)",
            _rows(7, "2026-11-22T06:00:00"),
        )
    return conn_str


def _settings(conn_str: str) -> OdbcSettings:
    return OdbcSettings(
        connection_string=conn_str,
        page_size=3,
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


def test_paged_incremental_read_and_idempotent_write_back(erp: str) -> None:
    reader = OdbcReader(_settings(erp))
    pages = list(reader.read("invoices", {}))
    assert [len(p.frame) for p in pages] == [3, 3, 1]  # streamed with fetchmany
    first = pages[0].frame.iloc[0]
    assert (
        first["invoice_id"] == "F000"
        and first["amount_cents"] == 10050
        and first["_errors"] is None
    )
    cursor = pages[-1].cursor
    assert cursor == {"watermark": "2026-11-22T06:00:00", "key": "F006"}
    # resuming from a committed page's cursor reads only what came after it
    assert sum(len(p.frame) for p in reader.read("invoices", pages[0].cursor)) == 4
    assert list(reader.read("invoices", cursor)) == []
    with pyodbc.connect(erp, autocommit=True) as c:
        c.execute(
            "INSERT INTO facturen (factuurnr, relatienr, factuurdatum, vervaldatum, bedrag, openstaand, valuta,"
            " betalingskenmerk, gewijzigd_op) VALUES ('F100','R2','2026-11-01','2026-11-15','9.99','9.99','EUR',"
            " NULL, '2026-11-23T06:00:00')"
        )
        c.execute(
            "UPDATE facturen SET gewijzigd_op = '2026-11-23T07:00:00' WHERE factuurnr = 'F001'"
        )
    changed = [r for p in reader.read("invoices", cursor) for r in p.frame["invoice_id"]]
    assert changed == ["F100", "F001"]

    writer = OdbcWriter(_settings(erp))
    changes = [
        WriteBack("c1", "invoices", "F002", {"status": "betaald"}, "2026-11-22T06:00:00"),
        WriteBack("c2", "invoices", "F001", {"status": "betaald"}, "2026-11-22T06:00:00"),
    ]
    results = {r.change_id: r.status for r in writer.write(changes)}
    assert results == {"c1": "applied", "c2": "conflict"}  # F001 changed since we read it
    assert {r.status for r in writer.write(changes[:1])} == {
        "applied"
    }  # applying twice is harmless
    with pyodbc.connect(erp) as c:
        got = dict(
            c.execute(
                "SELECT factuurnr, incassostatus FROM facturen WHERE factuurnr IN ('F001','F002')"
            ).fetchall()
        )
    assert got == {"F001": None, "F002": "betaald"}


def test_a_query_without_the_key_column_fails_clearly(erp: str) -> None:
    s = _settings(erp)
    s.entities["invoices"].key = "nummer"
    with pytest.raises(Exception, match="returns no column 'nummer'"):
        list(OdbcReader(s, source="erp").read("invoices", {}))


def test_a_legacy_encoding_is_read_with_text_encoding(tmp_path: Path) -> None:
    """A legacy ERP storing Windows-1252 text: read right once `text_encoding` says so."""
    db = tmp_path / "erp.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE relaties (relatienr TEXT, naam TEXT, gewijzigd_op TEXT)")
        c.execute(
            "INSERT INTO relaties VALUES ('R1', CAST(? AS TEXT), '1')",
            ("Müller café".encode("cp1252"),),
        )
    q = (
        "SELECT relatienr, naam, gewijzigd_op FROM relaties WHERE gewijzigd_op > :watermark OR "
        "(gewijzigd_op = :watermark AND relatienr > :last_key) ORDER BY gewijzigd_op, relatienr"
    )
    spec = {
        "debtors": {
            "query": q,
            "key": "relatienr",
            "watermark": "gewijzigd_op",
            "columns": {"debtor_id": "relatienr", "name": "naam"},
        }
    }
    s = OdbcSettings(
        connection_string=f"DRIVER={{SQLite3}};Database={db}", entities=spec, text_encoding="cp1252"
    )
    frame = next(iter(OdbcReader(s).read("debtors", {}))).frame
    assert frame.iloc[0]["name"] == "Müller café"


def test_a_write_back_statement_naming_a_value_the_change_lacks_fails_and_writes_nothing(
    erp: str,
) -> None:
    s = _settings(erp)
    s.write_back["invoices"] = UPDATE.replace(":status", ":status, openstaand = :open_amount")
    changes = [
        WriteBack(
            "c1",
            "invoices",
            "F002",
            {"status": "betaald", "open_amount": "0.00"},
            "2026-11-22T06:00:00",
        ),
        WriteBack("c2", "invoices", "F003", {"status": "betaald"}, "2026-11-22T06:00:00"),
    ]
    with pytest.raises(FatalError, match="without a value: open_amount"):
        OdbcWriter(s).write(changes)
    with pyodbc.connect(erp) as c:  # the batch is one transaction: c1 went back with it
        got = c.execute("SELECT incassostatus FROM facturen WHERE factuurnr = 'F002'").fetchone()
    assert got[0] is None
