"""The only module of this connector that talks to the database."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyodbc
from pydantic import SecretStr

from connectors.errors import FatalError, RetriableError
from connectors.odbc.mapping import columns_to_canonical
from connectors.odbc.settings import OdbcSettings
from ledger.ports import Cursor, Page
from ledger.records import WriteBack, WriteResult

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=256)
def _qmark(sql: str) -> tuple[str, tuple[str, ...]]:
    order: list[str] = []

    def repl(m: re.Match[str]) -> str:
        order.append(m.group(1))
        return "?"

    return _NAMED.sub(repl, sql), tuple(order)


def named_to_qmark(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Turn ``:name`` parameters into ODBC ``?`` markers with their values in order (the
    rewrite once per statement text: a write-back runs the same one per record)."""
    out, order = _qmark(sql)
    missing = [n for n in order if n not in params]
    if missing:
        raise FatalError(f"query parameter(s) without a value: {', '.join(sorted(set(missing)))}")
    return out, [params[n] for n in order]


def _set_query_timeout(conn: pyodbc.Connection, seconds: int) -> None:
    """Every query gets a timeout; psqlodbc lacks the ODBC attribute, so PostgreSQL gets
    ``statement_timeout`` instead."""
    try:
        conn.timeout = seconds
        return
    except pyodbc.Error:
        pass
    driver = str(conn.getinfo(pyodbc.SQL_DRIVER_NAME)).lower()
    if "psql" in driver:
        conn.execute(f"SET statement_timeout = {int(seconds) * 1000}")
        return
    raise FatalError(f"the ODBC driver {driver} cannot set a query timeout")


def _is_sqlite(conn_str: str) -> bool:
    return "sqlite" in conn_str.lower()


class _Connection:
    def __init__(self, settings: OdbcSettings, password: SecretStr | None = None) -> None:
        self.settings = settings
        self._password = password

    def connect(self) -> pyodbc.Connection:
        conn_str = self.settings.connection_string
        low = conn_str.lower()
        if ("mariadb" in low or "mysql" in low) and "option=" not in low:
            # FOUND_ROWS: rowcount = rows matched, not rows changed, so re-applying the
            # same write-back is not mistaken for a conflict
            conn_str = f"{conn_str.rstrip(';')};OPTION=2"
        if self._password is not None:
            conn_str = f"{conn_str.rstrip(';')};PWD={{{self._password.get_secret_value()}}}"
        try:
            conn = pyodbc.connect(
                conn_str, timeout=self.settings.login_timeout_seconds, autocommit=False
            )
        except pyodbc.OperationalError as exc:
            raise RetriableError(
                f"ODBC connect failed: {exc.args[0] if exc.args else 'error'}"
            ) from None
        except pyodbc.Error as exc:
            raise FatalError(
                f"ODBC connect refused: {exc.args[0] if exc.args else 'error'}"
            ) from None
        _set_query_timeout(conn, self.settings.query_timeout_seconds)
        if self.settings.text_encoding:
            conn.setdecoding(pyodbc.SQL_CHAR, encoding=self.settings.text_encoding)
        return conn

    def probe(self) -> dict[str, str]:
        """Connect (driver, network, login) and name the database product."""
        conn = self.connect()
        try:
            dbms = conn.getinfo(pyodbc.SQL_DBMS_NAME)
            version = conn.getinfo(pyodbc.SQL_DBMS_VER)
            driver = conn.getinfo(pyodbc.SQL_DRIVER_NAME)
        finally:
            conn.close()
        return {"detail": f"{dbms} {version} via {driver}"}


class OdbcReader(_Connection):
    """``SourceReader`` over ODBC: streamed pages (``fetchmany``), watermark cursor."""

    def __init__(
        self, settings: OdbcSettings, password: SecretStr | None = None, source: str = "odbc"
    ) -> None:
        super().__init__(settings, password)
        self.source = source

    def read(self, entity: str, since: Cursor) -> Iterator[Page]:
        spec = self.settings.entities.get(entity)  # type: ignore[call-overload]
        if spec is None:
            return
        params = {"watermark": since.get("watermark", ""), "last_key": since.get("key", "")}
        sql, values = named_to_qmark(spec.query, params)
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql, values)
            names = [d[0] for d in cur.description]
            for col in (spec.key, spec.watermark):
                if col not in names:
                    raise FatalError(f"{self.source}.{entity}: the query returns no column {col!r}")
            at_watermark, at_key = names.index(spec.watermark), names.index(spec.key)
            while True:
                rows = cur.fetchmany(self.settings.page_size)
                if not rows:
                    break
                # a column at a time: no mapping per row
                source = dict(zip(names, zip(*rows, strict=True), strict=True))
                frame = columns_to_canonical(entity, source, len(rows), spec.columns)
                last = rows[-1]
                yield Page(frame, {"watermark": str(last[at_watermark]), "key": str(last[at_key])})
        except pyodbc.OperationalError as exc:
            raise RetriableError(
                f"{self.source}.{entity}: read failed: {exc.args[0] if exc.args else ''}"
            ) from None
        except UnicodeDecodeError as exc:
            raise FatalError(
                f"{self.source}.{entity}: text is not {exc.encoding} ({exc.reason}); set"
                " `text_encoding` (e.g. cp1252) to the ERP's encoding"
            ) from None
        finally:
            conn.close()


def _bound(stmt: str, ch: WriteBack) -> tuple[str, list[Any]]:
    """The statement with ``?`` markers and the change's values in their order:
    ``:record_id`` and ``:expected_version`` are the change's own, the rest its values
    (``named_to_qmark`` of the merged mapping, without building it for every record)."""
    sql, order = _qmark(stmt)
    values = ch.values
    try:
        return sql, [
            ch.record_id
            if n == "record_id"
            else ch.expected_version
            if n == "expected_version"
            else values[n]
            for n in order
        ]
    except KeyError:
        return named_to_qmark(
            stmt, {**values, "record_id": ch.record_id, "expected_version": ch.expected_version}
        )  # raises, naming every parameter without a value


class OdbcWriter(_Connection):
    """``StatusWriter`` over ODBC: parameterised UPDATEs in one transaction per batch.

    A statement that touches no row means the record changed since we read it (its
    version no longer matches) or is gone: reported as ``conflict``, never forced.
    """

    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        if not changes:
            return []
        conn = self.connect()
        results: list[WriteResult] = []
        try:
            cur = conn.cursor()
            if self.settings.fast_executemany and not _is_sqlite(self.settings.connection_string):
                cur.fast_executemany = True
            for ch in changes:
                stmt = self.settings.write_back.get(ch.entity)
                if stmt is None:
                    results.append(
                        WriteResult(
                            ch.change_id, "failed", f"no write_back statement for {ch.entity}"
                        )
                    )
                    continue
                cur.execute(*_bound(stmt, ch))
                if cur.rowcount == 0:
                    results.append(
                        WriteResult(ch.change_id, "conflict", "record changed or missing in source")
                    )
                else:
                    results.append(WriteResult(ch.change_id, "applied"))
            conn.commit()
        except pyodbc.OperationalError as exc:
            conn.rollback()
            raise RetriableError(f"write-back failed: {exc.args[0] if exc.args else ''}") from None
        except pyodbc.Error as exc:
            conn.rollback()
            raise FatalError(f"write-back refused: {exc.args[0] if exc.args else ''}") from None
        finally:
            conn.close()
        return results
