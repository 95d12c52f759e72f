"""The ledger store: engine, migrations and the generic write helpers.

SQLite file by default (WAL, busy timeout, foreign keys on); PostgreSQL by URL. The
same Core statements run on both; the only dialect-specific piece is the upsert, for
which both dialects offer ``INSERT .. ON CONFLICT``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import re
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, overload

import orjson
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.cursor import CursorFetchStrategy
from sqlalchemy.sql.dml import Insert

from ledger import schema
from ledger.records import json_column, to_json_value

_MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def json_dumps(value: Any) -> str:
    """JSON columns are written by orjson (several times faster than ``json`` on a day's
    payloads); what it refuses (an integer past 64 bits) goes through ``json``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_texts(df: pd.DataFrame) -> list[str]:
    """The frame's rows as JSON texts: ``json_dumps`` of each of ``json_records(df)``,
    without a JSON-able copy of every cell first. orjson writes dates, ``None`` and NaN
    (as null) itself; a row it refuses (pandas NA or a numpy scalar in a text column, an
    integer past 64 bits) goes through ``to_json_value`` and ``json_dumps``. The ingest
    stages a day's records through here."""
    cols = [str(c) for c in df.columns]
    values = [
        json_column(col) if col.dtype.kind in "iubf" else col.tolist()
        for col in (df.iloc[:, i] for i in range(len(cols)))
    ]
    dumps = orjson.dumps
    out: list[str] = []
    for row in zip(*values, strict=True):
        rec = dict(zip(cols, row, strict=True))
        try:
            out.append(dumps(rec).decode())
        except TypeError:
            out.append(json_dumps({k: to_json_value(v) for k, v in rec.items()}))
    return out


def json_loads_staged(text: Any) -> Any:
    """A staged payload, read by orjson (three times faster than ``json`` on a day's
    million payloads). Only for payloads ``json_records`` made from canonical frames,
    whose integers fit 64 bits: orjson reads a larger integer as a float, losing digits,
    which is why the engine keeps ``json`` for every other JSON column. A value the
    driver already decoded (psycopg2 does for json columns) is passed through."""
    if not isinstance(text, str | bytes):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # NaN, which json wrote before


#: the page cache of each SQLite connection, in KiB (the pool keeps a few connections)
SQLITE_CACHE_KIB = 65536


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 60},
            json_serializer=json_dumps,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # SQLite's default page cache is 2 MiB: a day's upserts into a ledger of a
            # million invoices then re-read their index pages from the OS for every batch
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_dumps)


def migration_state(engine: Engine) -> tuple[str | None, str]:
    """(the ledger's revision, the newest revision), without changing anything."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head() or ""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), head


def migrate(engine: Engine) -> None:
    """Bring the ledger to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # held to the commit: DDL is transactional
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


#: PostgreSQL advisory lock held while a process migrates the ledger ("vangnet" in ASCII)
_MIGRATION_LOCK_KEY = 0x76616E676E6574


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One process at a time migrates a SQLite ledger: the cycle's worker processes open
    the same new file as the cycle, and two migrations at once both create the tables.
    An exclusive lock on a file beside it (PostgreSQL takes an advisory lock instead)."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    import fcntl

    with open(f"{path}.migrate-lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_ledger(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def _insert(conn: Connection, table: Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"ledger dialect {name!r} is not supported (sqlite, postgresql)")


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
    only_if_changed: Sequence[str] | None = None,
) -> int:
    """Insert rows; on a key conflict update ``update`` columns (or do nothing).

    With ``only_if_changed`` the update happens only where one of those columns
    differs, so re-reading an unchanged source writes nothing. A key named twice takes
    its last row (one statement may not update a row twice). Returns the number of rows
    inserted or changed.
    """
    if not rows:
        return 0
    if update:
        rows = _last_per_key(rows, keys)
    shape = ("upsert", table, tuple(keys), tuple(update or ()), tuple(only_if_changed or ()))

    def build() -> Any:
        stmt = _insert(conn, table)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))
        excluded = stmt.excluded
        where = None
        for col in only_if_changed or ():
            cond = table.c[col].is_distinct_from(excluded[col])
            where = cond if where is None else (where | cond)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: excluded[c] for c in update}, where=where
        )

    return execute_many(conn, _statement(conn, shape, build), rows, shape)


def _last_per_key(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> Sequence[Mapping[str, Any]]:
    """The rows with each key once, at its last row's place and with its values; the
    rows themselves when no key repeats (the common case: one pass over the keys)."""
    if isinstance(rows, ColumnRows):
        tuples_: list[Any] = list(zip(*(rows.column(k) for k in keys), strict=True))
    else:  # itemgetter: a key's values (a tuple of them for several) read in C
        tuples_ = list(map(itemgetter(*keys), rows))
    last = {t: i for i, t in enumerate(tuples_)}
    if len(last) == len(tuples_):
        return rows
    keep = sorted(last.values())
    if isinstance(rows, ColumnRows):
        return ColumnRows({c: [v[i] for i in keep] for c, v in rows.columns.items()})
    return [rows[i] for i in keep]


def update_many(
    conn: Connection,
    table: Table,
    fixed: Mapping[str, Any],
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """``UPDATE table SET <the rows' other columns> WHERE <fixed> AND <keys>`` for each
    row, as one prepared statement run by ``execute_many`` (a statement per row costs a
    compile and a round-trip each). Every row names the same columns; a key named twice
    gets its last row's values, as one UPDATE a row would leave it. The number of rows
    changed."""
    if not rows:
        return 0
    cols = [c for c in rows[0] if c not in keys]
    stmt = (
        sa_update(table)
        .where(
            *[table.c[k] == v for k, v in fixed.items()],
            *[table.c[k] == bindparam(f"k_{k}") for k in keys],
        )
        .values({c: bindparam(f"v_{c}") for c in cols})
    )
    rows = _last_per_key(rows, keys)  # a key named twice: its last row, counted once
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2" and cols:
        return _pg_update_from_values(conn, table, fixed, keys, cols, rows)
    if conn.dialect.name == "sqlite" and cols and len(rows) >= SQLITE_BULK_FROM:
        return _sqlite_update_from_temp(conn, table, fixed, keys, cols, rows)
    params = [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{c}": r[c] for c in cols}} for r in rows]
    return execute_many(conn, stmt, params)


def _pg_update_from_values(
    conn: Connection,
    table: Table,
    fixed: Mapping[str, Any],
    keys: Sequence[str],
    cols: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """``update_many`` on PostgreSQL: ``UPDATE t SET c = v.c FROM (VALUES …) AS v WHERE
    t.k = v.k``, 2,000 rows a statement (from ``PG_COPY_FROM`` rows, the rows go by COPY
    instead: ``_pg_update_from_copy``). psycopg2's ``executemany`` sends an UPDATE one
    row a round trip (bench.pg_executemany: 3.8 s for 20k rows), and its batch mode
    reports no true row count; one statement a batch does both. Each value goes through
    its column type's bind processor and is cast to the column's type (a VALUES list
    types its columns from the literals: text, or for a column of NULLs nothing). Keys
    are distinct here (``update_many`` keeps a repeated key's last row)."""
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    names = [*keys, *cols]
    types = [table.c[n].type for n in names]
    procs = [t._cached_bind_processor(dialect) for t in types]
    template = "(" + ", ".join(f"%s::{t.compile(dialect=dialect)}" for t in types) + ")"
    fixed_types = [table.c[k].type for k in fixed]
    fixed_values = [
        p(v) if (p := t._cached_bind_processor(dialect)) else v
        for t, v in zip(fixed_types, fixed.values(), strict=True)
    ]
    cur = conn.connection.cursor()
    try:
        fixed_where = [
            cur.mogrify(f"t.{quote(k)} = %s::{t.compile(dialect=dialect)}", (v,)).decode()
            for k, t, v in zip(fixed, fixed_types, fixed_values, strict=True)
        ]
        if len(rows) >= PG_COPY_FROM:
            copied = _pg_update_from_copy(conn, cur, table, keys, cols, procs, rows, fixed_where)
            if copied is not None:
                return copied
        where = [f"t.{quote(k)} = v.x{i}" for i, k in enumerate(keys)] + fixed_where
        head = (
            f"UPDATE {dialect.identifier_preparer.format_table(table)} AS t SET "
            + ", ".join(f"{quote(c)} = v.x{len(keys) + i}" for i, c in enumerate(cols))
            + " FROM (VALUES "
        ).encode()
        tail = (
            ") AS v("
            + ", ".join(f"x{i}" for i in range(len(names)))
            + ") WHERE "
            + " AND ".join(where)
        ).encode()
        total = 0
        for chunk in _chunks(rows, 2000):
            values = b",".join(
                cur.mogrify(
                    template,
                    [p(r[n]) if p else r[n] for n, p in zip(names, procs, strict=True)],
                )
                for r in chunk
            )
            cur.execute(head + values + tail)
            total += max(cur.rowcount, 0)
        return total
    finally:
        cur.close()


def _pg_update_from_copy(
    conn: Connection,
    cur: Any,
    table: Table,
    keys: Sequence[str],
    cols: Sequence[str],
    procs: Sequence[Any],
    rows: Sequence[Mapping[str, Any]],
    fixed_where: Sequence[str],
) -> int | None:
    """Many rows of ``_pg_update_from_values``: COPY into a temporary table of the
    table's own column types, then one ``UPDATE … FROM`` it; the rows changed. Quoting
    every value into VALUES lists had cost an update of 200,000 invoices about a third
    of its time: 7.0–8.7 s, against 4.8–5.2 s this way. None when a value has no COPY
    text (the caller sends VALUES)."""
    names = [*keys, *cols]
    binds = [(n, p, True, None) for n, p in zip(names, procs, strict=True)]
    try:
        texts = [copy_column(c) for c in _bound_columns(binds, rows)]
    except TypeError:
        return None
    preparer = conn.dialect.identifier_preparer
    quote = preparer.quote
    target = preparer.format_table(table)
    _copy_into_temp(cur, "vangnet_bulk_update", target, ", ".join(quote(n) for n in names), texts)
    sets = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in cols)
    where = [f"t.{quote(k)} = v.{quote(k)}" for k in keys] + list(fixed_where)
    cur.execute(
        f"UPDATE {target} AS t SET {sets} FROM vangnet_bulk_update AS v WHERE {' AND '.join(where)}"
    )
    total = max(cur.rowcount, 0)
    cur.execute("DROP TABLE vangnet_bulk_update")
    return total


def _sqlite_update_from_temp(
    conn: Connection,
    table: Table,
    fixed: Mapping[str, Any],
    keys: Sequence[str],
    cols: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """``update_many`` on SQLite for many rows: the keys and values into a temporary
    table, then one ``UPDATE t SET c = v.c FROM temp AS v WHERE t.k = v.k`` (SQLite
    3.33+). A statement a row journals the same pages once a row on a table with
    triggers (see ``_sqlite_bulk_insert``). Each value goes through its column type's bind
    processor; the temporary table has no types, so the ledger's column gives a value its
    affinity once, as a direct UPDATE does. Keys are distinct here (``update_many``
    keeps a repeated key's last row)."""
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    names = [*keys, *cols]
    columns = _bound_columns(
        [(n, table.c[n].type._cached_bind_processor(dialect), True, None) for n in names], rows
    )
    fixed_values = [
        p(v) if (p := table.c[k].type._cached_bind_processor(dialect)) else v
        for k, v in fixed.items()
    ]
    target = dialect.identifier_preparer.format_table(table)
    temp = ", ".join(f"x{i}" for i in range(len(names)))
    where = [f"{target}.{quote(k)} = v.x{i}" for i, k in enumerate(keys)]
    # a fixed column outside the primary key is a guard, not a way in: "+" keeps its
    # index out of the plan. Without it SQLite (no statistics on the temporary table)
    # walked an index on (creditor_id, status) and scanned the temporary table for every
    # row it found: 7,500 replies marked answered took 2.6-3.1 s instead of 0.01 s
    pk = set(table.primary_key.columns.keys())
    where += [f"{'' if k in pk else '+'}{target}.{quote(k)} = ?" for k in fixed]
    with _sqlite_temp_rows(conn, temp, list(zip(*columns, strict=True))) as run:
        total = run(
            f"UPDATE {target} SET "
            + ", ".join(f"{quote(c)} = v.x{len(keys) + i}" for i, c in enumerate(cols))
            + " FROM temp.vangnet_bulk AS v WHERE "
            + " AND ".join(where),
            tuple(fixed_values),
        ).rowcount
    return max(total, 0)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows, skipping any that collide with a unique constraint."""
    if not rows:
        return 0
    shape = ("insert_ignore", table)
    stmt = _statement(conn, shape, lambda: _insert(conn, table).on_conflict_do_nothing())
    return execute_many(conn, stmt, rows, shape)


DRIVER_EXECUTEMANY = True  # False: every batch through SQLAlchemy's own executemany

# Statements (and on SQLite their compiled form) by the dialect and the statement's
# shape: a debt-help round writes a few rows per message, thousands of times, and
# building and compiling the same INSERT .. ON CONFLICT each time cost more than
# running it (1.5 ms a message of 4.5 at 1,500 messages). Keyed weakly by the dialect,
# so a disposed engine's entries go with it.
_CACHE: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def _statement(conn: Connection, shape: Hashable, build: Callable[[], Any]) -> Any:
    per = _CACHE.setdefault(conn.dialect, {})
    stmt = per.get(("stmt", shape))
    if stmt is None:
        stmt = per[("stmt", shape)] = build()
    return stmt


def _plan(
    conn: Connection,
    kind: str,
    stmt: Any,
    keys: list[str],
    shape: Hashable | None,
    build: Callable[[Any], Any],
) -> Any:
    """``build`` of the statement compiled for ``keys`` (a driver path's plan, or None
    where that path cannot take it), kept by ``shape`` for the next call."""
    per = _CACHE.setdefault(conn.dialect, {}) if shape is not None else None
    key = (kind, shape, tuple(keys))
    if per is not None and key in per:
        return per[key]
    plan = build(stmt.compile(dialect=conn.dialect, column_keys=keys))
    if per is not None:
        per[key] = plan
    return plan


def _bind(conn: Connection, name: str, b: Any, keys: list[str]) -> tuple[Any, ...]:
    """(key, bind processor, from the row?, fixed value) of one parameter."""
    return (name, b.type._cached_bind_processor(conn.dialect), name in keys, b.effective_value)


def _bound_columns(
    binds: Sequence[tuple[Any, ...]], rows: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """The values of each parameter of ``binds`` (see ``_bind``) for all rows, column by
    column (the per-value branching once per column), each through its bind processor;
    a fixed value repeated. KeyError when a row lacks a column of the first."""
    columns: list[Sequence[Any]] = []
    for k, p, from_row, fixed in binds:
        if not from_row:
            columns.append([p(fixed) if p else fixed] * len(rows))
            continue
        values = rows.column(k) if isinstance(rows, ColumnRows) else list(map(itemgetter(k), rows))
        columns.append(_processed(p, values) if p else values)
    return columns


def _sqlite_plan(conn: Connection, stmt: Any, keys: list[str], shape: Hashable | None) -> Any:
    """(the SQL text, ``_bind`` per parameter), or None where the driver path cannot take
    the statement."""

    def build(compiled: Any) -> Any:
        if compiled.insert_prefetch or compiled.positiontup is None:
            return None
        binds = [compiled.binds[n] for n in compiled.positiontup]
        return compiled.string, [_bind(conn, b.key, b, keys) for b in binds]

    return _plan(conn, "plan", stmt, keys, shape, build)


class ColumnRows(Sequence[Mapping[str, Any]]):
    """Rows held a column at a time (column name -> its values, all of one length), as
    a frame gives them: ``execute_many`` takes them a column at a time on SQLite with no
    mapping per row; every other path sees a sequence of row mappings."""

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        self.columns = dict(columns)
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self._n = lengths.pop() if lengths else 0

    def column(self, name: str) -> Sequence[Any]:
        return self.columns[name]

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[Mapping[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> Mapping[str, Any] | list[Mapping[str, Any]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return {c: v[i] for c, v in self.columns.items()}


def _processed(p: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """``p`` of every value, each distinct one once: a day's rows repeat their dates,
    stamps and codes, and a bind processor costs a microsecond a value. Values are told
    apart by type too (``True`` and ``1`` are one dict key, not one JSON value)."""
    keys = list(zip(map(type, values), values, strict=True))
    try:
        memo = dict.fromkeys(keys)
    except TypeError:  # unhashable values (a JSON column's dicts)
        return list(map(p, values))
    if len(memo) * 2 > len(keys):  # mostly distinct: the memo does not pay
        return list(map(p, values))
    for key in memo:
        memo[key] = p(key[1])
    return list(map(memo.__getitem__, keys))


def execute_many(
    conn: Connection,
    stmt: Any,
    rows: Sequence[Mapping[str, Any]],
    shape: Hashable | None = None,
) -> int:
    """Run ``stmt`` for every row, 2,000 rows a batch; the number of rows it changed.

    On SQLite the statement is compiled once and the rows go to the driver's
    ``executemany`` as tuples, each value through its column type's own bind processor
    (what SQLAlchemy does, without its per-row parameter bookkeeping: about a third of
    a large promote's time). A statement with Python-side defaults, a row without one of
    the first row's keys, or another database takes SQLAlchemy's path. ``shape`` (a
    hashable that names the statement exactly) keeps the compiled form for the next
    call."""
    if not rows:
        return 0
    keys = list(rows[0])
    if DRIVER_EXECUTEMANY and conn.dialect.name == "sqlite":
        plan = _sqlite_plan(conn, stmt, keys, shape)
        if plan is not None:
            sql, binds = plan
            params: list[tuple[Any, ...]] | None
            try:
                columns = _bound_columns(binds, rows)
                params = list(zip(*columns, strict=True)) if columns else [()] * len(rows)
            except KeyError:
                params = None  # rows of different shapes: SQLAlchemy sorts them out
            if params is not None:
                bulk = _sqlite_bulk(sql) if len(params) >= SQLITE_BULK_FROM else None
                if bulk is not None:
                    return _sqlite_bulk_insert(conn, bulk, params)
                total = 0
                for chunk in _chunks(params, 2000):
                    total += max(conn.exec_driver_sql(sql, list(chunk)).rowcount, 0)
                return total
    if conn.dialect.name == "postgresql" and _counted_by_returning(stmt):
        # psycopg2 sends an INSERT … ON CONFLICT of many rows one row a round trip;
        # with RETURNING, SQLAlchemy's insertmanyvalues sends pages of rows, and the
        # rows returned are those inserted or changed (bench.pg_executemany: an upsert
        # of 25k rows 4.5 s -> 0.4 s; its row count the same)
        key = list(stmt.table.primary_key.columns)[:1] or [literal_column("1")]
        counting = stmt.returning(*key)
        if DRIVER_EXECUTEMANY and conn.dialect.driver == "psycopg2":
            pg = _pg_insert_plan(conn, counting, keys, shape)
            if pg is not None:
                counted = _pg_insert_rows(conn, pg, rows)
                if counted is not None:
                    return counted
        return sum(len(conn.execute(counting, list(chunk)).all()) for chunk in _chunks(rows, 2000))
    total = 0
    for chunk in _chunks(rows, 2000):
        total += max(conn.execute(stmt, list(chunk)).rowcount, 0)
    return total


#: from this many rows, an INSERT on SQLite goes through a temporary table and one
#: INSERT … SELECT (see ``_sqlite_bulk_insert``); fewer are not worth the table
SQLITE_BULK_FROM = 500

#: a SQLite INSERT of parameters only: the table, its columns, the ``?`` of each, and
#: what follows (ON CONFLICT …)
_SQLITE_VALUES = re.compile(
    r"INSERT INTO (?P<table>\S+) \((?P<names>[^()]*)\) VALUES \((?P<marks>\?(?:, \?)*)\)"
    r"(?P<tail>.*)",
    re.S,
)


@functools.lru_cache(maxsize=256)
def _sqlite_bulk(sql: str) -> tuple[str, str, str] | None:
    """(table, column list, tail) of an INSERT ``_sqlite_bulk_insert`` can run as one
    INSERT … SELECT; None for any other statement (a parameter outside VALUES, a
    RETURNING, an UPDATE)."""
    found = _SQLITE_VALUES.fullmatch(sql)
    if found is None:
        return None
    names, tail = found["names"], found["tail"]
    if "?" in tail or "RETURNING" in tail.upper():
        return None
    if names.count(",") != found["marks"].count(","):
        return None
    return found["table"], names, tail


def _sqlite_bulk_insert(conn: Connection, bulk: tuple[str, str, str], params: list[Any]) -> int:
    """Many rows of one INSERT on SQLite: into a temporary table without indexes or
    triggers, then one ``INSERT … SELECT`` with the statement's own ON CONFLICT; the
    number of rows inserted or changed (SQLite's changes of that one statement, as
    ``executemany`` adds them up row by row).

    A statement a row costs more than it looks on a table with triggers: SQLite keeps a
    statement journal for each statement that may have to undo part of itself (a row
    and the dirty-debtor mark its trigger writes), and with ``executemany`` each row's
    statement journals the same index pages again. One statement journals each page
    once: a day's 973,046 invoices into the ledger took 22.7 s a row at a time, 12.4 s
    this way, with the same count and the same marks. The temporary table's columns
    have no type, so a value reaches the ledger's column exactly as bound and gets that
    column's affinity once, as a direct insert gives it; its rows are read back in the
    order they came (rowid), so ids and marks follow the same order. ``WHERE true``:
    SQLite would read ``ON CONFLICT`` after a bare ``FROM`` as a join's ON."""
    table, names, tail = bulk
    with _sqlite_temp_rows(conn, names, params) as run:
        total = run(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM temp.vangnet_bulk WHERE true{tail}"
        ).rowcount
    return max(total, 0)


@contextmanager
def _sqlite_temp_rows(conn: Connection, names: str, params: Sequence[Any]) -> Iterator[Any]:
    """``params`` (a tuple a row) in the temporary table ``temp.vangnet_bulk`` with the
    untyped columns ``names`` (comma-separated), for the statements of the ``with``
    block (given ``exec_driver_sql``: SQLAlchemy's events see every statement); dropped
    after it. A table a failed statement left behind is dropped first."""
    run = conn.exec_driver_sql
    marks = ", ".join("?" * (names.count(",") + 1))
    run("DROP TABLE IF EXISTS temp.vangnet_bulk")
    run(f"CREATE TEMP TABLE vangnet_bulk ({names})")
    for chunk in _chunks(params, 20_000):
        run(f"INSERT INTO temp.vangnet_bulk VALUES ({marks})", list(chunk))
    yield run
    run("DROP TABLE temp.vangnet_bulk")


#: an INSERT whose VALUES are the rows' parameters only, each perhaps cast (JSON is)
_PG_VALUES = re.compile(
    r"(.* VALUES )\(((?:%\(\w+\)s(?:::\w+)?, )*%\(\w+\)s(?:::\w+)?)\)( .*)?", re.S
)
_PG_BIND = re.compile(r"%\((\w+)\)s")

#: rows a statement on PostgreSQL: insertmanyvalues' own page size, so the rows that
#: meet in one INSERT … ON CONFLICT (which refuses a key twice) are the same as before
PG_PAGE = 1000


def _pg_insert_plan(conn: Connection, stmt: Any, keys: list[str], shape: Hashable | None) -> Any:
    """(the SQL before and after the VALUES list, the row template, (key, bind
    processor, from the row?, fixed value) per value), or None where the statement is
    not a plain INSERT of parameters (a Python-side default, a parameter outside VALUES,
    a literal ``%``). A value the statement fixes (``.values(creditor_id=…)``) is the
    same for every row."""

    def build(compiled: Any) -> Any:
        found = _PG_VALUES.fullmatch(compiled.string)
        if not found or compiled.insert_prefetch:
            return None
        head, values, tail = found.group(1), found.group(2), found.group(3) or ""
        names = _PG_BIND.findall(values)
        # every parameter the statement renders is in VALUES (bind_names: a fixed
        # value's parameter is also in ``binds`` under its anonymous name)
        rendered = {name: b for b, name in compiled.bind_names.items()}
        if set(names) != set(rendered) or "%" in head + tail:
            return None
        return (
            head.encode(),
            tail.encode(),
            "(" + _PG_BIND.sub("%s", values) + ")",
            [_bind(conn, n, rendered[n], keys) for n in names],
        )

    return _plan(conn, "pgplan", stmt, keys, shape, build)


#: from this many rows, an INSERT on PostgreSQL goes through COPY into a temporary table
#: and one INSERT … SELECT (3x faster than pages of VALUES for a day's upsert, measured in
#: bench.pg_executemany); fewer rows are not worth the table
PG_COPY_FROM = 500

_COPY_PLAIN = (str, int, float, bool, dt.date, dt.datetime, Decimal)


def _copy_text(v: Any) -> str:
    """A value in COPY's text format (NULL as ``\\N``; backslash, tab, newline, CR
    escaped). A value of another kind raises TypeError: the caller falls back."""
    if v is None:
        return "\\N"
    if isinstance(v, str):
        if "\\" in v or "\t" in v or "\n" in v or "\r" in v:
            v = v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            v = v.replace("\r", "\\r")
        return v
    if isinstance(v, _COPY_PLAIN):
        if isinstance(v, float) and v != v:
            return "NaN"
        return str(v)
    raise TypeError(f"no COPY text for {type(v).__name__}")


def _copy_into_temp(cur: Any, temp: str, table: str, names: str, texts: list[list[str]]) -> None:
    """A temporary table ``temp`` (dropped at commit at the latest) with the columns
    ``names`` (comma-separated, as SQL) of ``table`` and their types, filled by COPY with
    ``texts`` (each column's values in COPY's text format)."""
    cur.execute(
        f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA"
    )
    data = io.StringIO("\n".join(map("\t".join, zip(*texts, strict=True))) + "\n")
    cur.copy_expert(f"COPY {temp} ({names}) FROM STDIN", data)


#: characters COPY's text format escapes
_COPY_SPECIAL = ("\\", "\t", "\n", "\r")


def copy_column(values: Sequence[Any]) -> list[str]:
    """``_copy_text`` of every value of a column (TypeError likewise). A column of one
    kind of value and gaps, as the ledger's columns are, goes without a call per value:
    text with nothing to escape as it is; whole numbers, dates and stamps of one zone a
    distinct value at a time. (Per value, each told apart by its type as ``_processed``
    does, this was 0.8 s of 3.1 s for 100,000 invoices promoted on PostgreSQL.) Mixed
    kinds (1, 1.0 and True are equal keys) go as ``_processed`` takes them; other kinds
    value by value, where equal values may read differently (Decimal 1.0 and 1.00, float
    0.0 and -0.0)."""
    kinds = set(map(type, values))
    gaps = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return ["\\N"] * len(values)
    if len(kinds) > 1:
        return _processed(_copy_text, values)
    kind = kinds.pop()
    if kind is str:
        joined = "".join([v for v in values if v is not None] if gaps else values)
        if any(c in joined for c in _COPY_SPECIAL):
            return list(map(_copy_text, values))
        return ["\\N" if v is None else v for v in values] if gaps else list(values)
    if issubclass(kind, dt.datetime):  # pandas' Timestamp too
        if len({v.tzinfo for v in values if v is not None}) > 1:  # one instant, two zones
            return list(map(_copy_text, values))
    elif kind not in (int, bool, dt.date):
        return list(map(_copy_text, values))
    distinct = set(values)
    if len(distinct) * 2 > len(values):  # mostly distinct: the memo does not pay
        return list(map(_copy_text, values))
    memo = {v: _copy_text(v) for v in distinct}
    return list(map(memo.__getitem__, values))


def _pg_insert_rows(conn: Connection, plan: Any, rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Run an INSERT plan (``_pg_insert_plan``) over the rows, each value through its
    type's bind processor; the number of rows returned. Many rows go by COPY into a
    temporary table and one ``INSERT … SELECT`` (the statement's own ON CONFLICT and
    RETURNING), fewer as pages of VALUES quoted by psycopg2. None when a row lacks a
    column of the first, or holds a value COPY has no text for (SQLAlchemy then runs
    them)."""
    head, tail, template, binds = plan
    try:
        columns = _bound_columns(binds, rows)
    except KeyError:
        return None
    cur = conn.connection.cursor()
    try:
        if len(rows) >= PG_COPY_FROM:
            try:
                texts = [copy_column(c) for c in columns]
            except TypeError:
                return None
            # "INSERT INTO <table> (<columns>)", the columns in the order of the values
            into = head[: head.rindex(b" VALUES ")].decode()
            table = into[len("INSERT INTO ") : into.index(" (")]
            names = into[into.index(" (") + 2 : into.rindex(")")]
            _copy_into_temp(cur, "vangnet_bulk", table, names, texts)
            cur.execute(f"{into} SELECT {names} FROM vangnet_bulk{tail.decode()}")
            total = len(cur.fetchall())
            cur.execute("DROP TABLE vangnet_bulk")
            return total
        mogrify = cur.mogrify
        total = 0
        for chunk in _chunks(list(zip(*columns, strict=True)), PG_PAGE):
            cur.execute(head + b",".join([mogrify(template, r) for r in chunk]) + tail)
            total += len(cur.fetchall())
        return total
    finally:
        cur.close()


def _counted_by_returning(stmt: Any) -> bool:
    """An INSERT that returns nothing yet (so its count may come from what it returns)."""
    if not isinstance(stmt, Insert) or stmt.table is None:
        return False
    return not getattr(stmt, "_returning", ())


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


IN_CHUNK = 5000  # SQLite allows 32,766 bound values per statement (250,000 when built so)


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """Slices for ``IN (...)`` lists, so a large day never exceeds a driver's limit."""
    for k in range(0, len(values), size):
        yield values[k : k + size]


def dirty_tracking(conn: Connection) -> bool:
    """Whether every trigger that marks dirty debtors is in place (SQLite: migration
    0009's four row triggers per table; PostgreSQL: 0011's three statement triggers): a
    later migration that rebuilds a watched table (SQLite's batch mode copies it) would
    drop its triggers, and an assessment that trusted the marks would then miss changes."""
    if conn.dialect.name == "sqlite":
        found = set(
            conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'dirty_%'"
            ).scalars()
        )
        ops: tuple[str, ...] = ("insert", "update", "update_old", "delete")
    else:
        found = set(
            conn.execute(
                text(
                    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                    " WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'"
                    " AND c.relnamespace = to_regnamespace(current_schema())::oid"
                    " AND t.tgname LIKE 'dirty_%'"
                )
            ).scalars()
        )
        ops = ("insert", "update", "delete")
    return {f"dirty_{t}_{op}" for t in schema.DIRTY_WATCHED for op in ops} <= found


def frame(conn: Connection, stmt: Any) -> pd.DataFrame:
    """Run a Core select and return a DataFrame with the statement's column names.

    The driver's rows are taken as they come and turned into columns, and each column
    that has a result processor (a date from SQLite's text, say) goes through it:
    SQLAlchemy's own processors for this result, the ones its Rows would apply, without
    building a Row per record (whole-table reads of the 250k ledgers took 10-40% less).
    Where the result does not expose them, its Rows are read."""
    result = conn.execute(stmt)
    names = list(result.keys())
    processors = getattr(getattr(result, "_metadata", None), "_processors", None)
    cursor = getattr(result, "cursor", None)
    if (
        cursor is None
        # rows SQLAlchemy buffered (a server-side cursor) are not in the driver's cursor
        or type(getattr(result, "cursor_strategy", None)) is not CursorFetchStrategy
        or processors is None
        or len(processors) != len(names)
        or len(set(names)) != len(names)
    ):
        # plain tuples: pandas probes every Row for attributes it lacks, and SQLAlchemy
        # answers each probe with an exception (3x the cost on 200k rows)
        return pd.DataFrame([tuple(r) for r in result.fetchall()], columns=names)
    rows = cursor.fetchall()
    result.close()
    if not rows:
        return pd.DataFrame([], columns=names)
    columns = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            name: (list(map(p, col)) if p is not None else col)
            for name, p, col in zip(names, processors, columns, strict=True)
        },
        columns=names,
    )


#: a PostgreSQL table that changed by this many rows in one go has its statistics read
#: again (ANALYZE) before the next stage's statements are planned on them
ANALYZE_FROM = 10_000


def refresh_statistics(conn: Connection, changed: Mapping[Table, int]) -> list[str]:
    """ANALYZE each table of ``changed`` (table -> rows written) that changed by
    ``ANALYZE_FROM`` rows or more, on PostgreSQL; the tables analyzed. A table filled in
    bulk has no statistics until autovacuum gets to it (never, where it is off): the
    planner then reads a million invoices through the creditor's index for each batch of
    2,000 keys (0.4-0.7 s a statement) instead of looking each key up (10-70 ms).
    SQLite plans without statistics, from its indexes alone: nothing to do there."""
    if conn.dialect.name != "postgresql":
        return []
    done = []
    for table, n in changed.items():
        if n >= ANALYZE_FROM:
            conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}")
            done.append(table.name)
    return done


def frame_in(
    conn: Connection, build: Callable[[Sequence[Any]], Any], values: Iterable[Any]
) -> pd.DataFrame:
    """One frame of ``build(part)`` run for each ``chunks`` part of ``values``: the select
    of the rows whose key is in ``part``. One IN list of a large day's keys exceeds
    SQLite's limit on bound values (250,000 in Debian's build, 32,766 by default): a
    rent day's 200,000 changed invoices were a hair below it at 250k debtors."""
    values = list(values)
    parts = [frame(conn, build(part)) for part in chunks(values)] or [frame(conn, build([]))]
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


_AUDIT = insert(schema.audit_log)  # one statement object: SQLAlchemy compiles it once


def audit(
    conn: Connection,
    creditor_id: str,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append to the audit log. ``subject`` and ``detail`` carry ids, never personal data."""
    conn.execute(
        _AUDIT,
        {
            "creditor_id": creditor_id,
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": dict(detail or {}),
        },
    )


def audit_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append many rows to the audit log, in their order: each with the columns ``audit``
    gives one (``creditor_id``, ``at``, ``actor``, ``action``, ``subject``, ``detail``)."""
    execute_many(conn, _AUDIT, rows, "audit")


def ensure_creditor(
    conn: Connection, creditor_id: str, name: str, sector: str, config_sha256: str
) -> None:
    now = utcnow()
    upsert(
        conn,
        schema.creditors,
        [
            {
                "creditor_id": creditor_id,
                "name": name,
                "sector": sector,
                "config_sha256": config_sha256,
                "created_at": now,
                "updated_at": now,
            }
        ],
        keys=["creditor_id"],
        update=["name", "sector", "config_sha256", "updated_at"],
        only_if_changed=["name", "sector", "config_sha256"],
    )


def get_cursor(conn: Connection, creditor_id: str, source: str, entity: str) -> dict[str, Any]:
    t = schema.source_cursors
    row = conn.execute(
        select(t.c.cursor).where(
            t.c.creditor_id == creditor_id, t.c.source == source, t.c.entity == entity
        )
    ).first()
    return dict(row[0]) if row else {}


def stage_payloads(
    conn: Connection,
    creditor_id: str,
    source: str,
    entity: str,
    payloads: Sequence[str],
    staged_at: dt.datetime,
) -> None:
    """A page's payloads (JSON texts, in order) into ``staging``. On SQLite, as one
    statement over the page's JSON array (``json_each``, in the array's order): its rows
    in C with Python's interpreter lock released, which the page being read beside it
    (``flows.ahead``) wants; a row at a time, each row took the lock back."""
    if not payloads:
        return
    if conn.dialect.name == "sqlite":
        conn.execute(
            text(
                "INSERT INTO staging (creditor_id, source, entity, staged_at, payload)"
                " SELECT :creditor_id, :source, :entity, :staged_at, value"
                " FROM json_each(:page) ORDER BY key"
            ).bindparams(bindparam("staged_at", type_=schema.staging.c.staged_at.type)),
            {
                "creditor_id": creditor_id,
                "source": source,
                "entity": entity,
                "staged_at": staged_at,
                "page": "[" + ",".join(payloads) + "]",
            },
        )
        return
    stmt = schema.staging.insert().values(
        creditor_id=creditor_id,
        source=source,
        entity=entity,
        staged_at=staged_at,
        payload=bindparam("payload", type_=Text),
    )
    execute_many(conn, stmt, [{"payload": p} for p in payloads])


def set_cursor(
    conn: Connection, creditor_id: str, source: str, entity: str, cursor: Mapping[str, Any]
) -> None:
    upsert(
        conn,
        schema.source_cursors,
        [
            {
                "creditor_id": creditor_id,
                "source": source,
                "entity": entity,
                "cursor": dict(cursor),
                "updated_at": utcnow(),
            }
        ],
        keys=["creditor_id", "source", "entity"],
        update=["cursor", "updated_at"],
    )
