"""How psycopg2 runs the ledger's many-row statements: ``python -m bench.pg_executemany``.

The ledger's bulk writes are one statement run for many rows (``execute_many``). On
PostgreSQL, SQLAlchemy's default ``executemany_mode`` ("values_only") sends an UPDATE or
an ``INSERT … ON CONFLICT`` row by row. "values_plus_batch" pages them through psycopg2's
``execute_batch``, but then the row count is that of the last page's last statement,
and the product counts on it (rows promoted, messages stored, contacts added). This
prints both modes' time and row count for each statement kind the ledger uses, and
beside them the time and count of ``ledger.store.update_many`` on the same rows (one
``UPDATE … FROM (VALUES …)`` a batch of 2,000).

    python -m bench.pg_executemany --url postgresql+psycopg2://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    text,
)
from sqlalchemy import update as sa_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import OperationalError

import ledger.store as store
from ledger.schema import TS
from ledger.store import insert_ignore, make_engine, update_many, upsert, utcnow


def one_mode(url: str, mode: str, n: int) -> dict[str, Any]:
    eng = create_engine(url, executemany_mode=mode, executemany_batch_page_size=500)
    md = MetaData()
    t = Table("bench_executemany", md, Column("k", String, primary_key=True), Column("v", Integer))
    out: dict[str, Any] = {"mode": mode}
    try:
        with eng.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_executemany"))
            md.create_all(conn)
            start = time.perf_counter()
            conn.execute(t.insert(), [{"k": f"k{i}", "v": i} for i in range(n)])
            out["insert_s"] = round(time.perf_counter() - start, 2)
            # a third of the rows changed, a quarter new: what a day's promote looks like
            rows = [{"k": f"k{i}", "v": i + (i % 3 == 0)} for i in range(n + n // 4)]
            ins = pg_insert(t)
            upsert = ins.on_conflict_do_update(
                index_elements=["k"],
                set_={"v": ins.excluded.v},
                where=t.c.v.is_distinct_from(ins.excluded.v),
            )
            start = time.perf_counter()
            got = conn.execute(upsert, rows).rowcount
            out["upsert_s"] = round(time.perf_counter() - start, 2)
            out["upsert_rowcount"] = {"got": got, "want": n // 3 + (n % 3 > 0) + n // 4}
            ignore = pg_insert(t).on_conflict_do_nothing()
            extra = [{"k": f"k{i}", "v": 0} for i in range(n, n + n // 2)]
            start = time.perf_counter()
            got = conn.execute(ignore, extra).rowcount
            out["insert_ignore_s"] = round(time.perf_counter() - start, 2)
            out["insert_ignore_rowcount"] = {"got": got, "want": len(extra) - n // 4}
            upd = sa_update(t).where(t.c.k == bindparam("kk")).values(v=bindparam("vv"))
            start = time.perf_counter()
            got = conn.execute(upd, [{"kk": f"k{i}", "vv": -i} for i in range(n)]).rowcount
            out["update_s"] = round(time.perf_counter() - start, 2)
            out["update_rowcount"] = {"got": got, "want": n}
            # the product's path for the same rows: UPDATE … FROM (VALUES …), by batch
            start = time.perf_counter()
            got = update_many(conn, t, {}, ["k"], [{"k": f"k{i}", "v": i} for i in range(n)])
            out["update_many_s"] = round(time.perf_counter() - start, 2)
            out["update_many_rowcount"] = {"got": got, "want": n}
            conn.execute(text("DROP TABLE bench_executemany"))
    finally:
        eng.dispose()
    return out


def product_paths(url: str, n: int) -> list[dict[str, Any]]:
    """The ledger's own ``upsert``, ``insert_ignore`` and ``update_many`` on a table shaped
    like the invoices (text, integers, dates, a timestamp, JSON), with their fast path
    (``DRIVER_EXECUTEMANY``) and without it (SQLAlchemy's insertmanyvalues, RETURNING)."""
    md = MetaData()
    t = Table(
        "bench_ledger_writes",
        md,
        Column("creditor_id", String(64), primary_key=True),
        Column("invoice_id", String(64), primary_key=True),
        Column("debtor_id", String(64)),
        Column("due_date", Date),
        Column("amount_cents", BigInteger),
        Column("open_cents", BigInteger),
        Column("status", String(16)),
        Column("reference", String(35)),
        Column("bucket", Integer),
        Column("extra", JSON),
        Column("updated_at", TS),
    )
    now = utcnow()

    def row(i: int, open_: int) -> dict[str, Any]:
        return {
            "creditor_id": "c1",
            "invoice_id": f"F{i:08d}",
            "debtor_id": f"R{i // 4}",
            "due_date": dt.date(2026, 1, 1) + dt.timedelta(days=i % 300),
            "amount_cents": 75_000,
            "open_cents": open_,
            "status": "open" if open_ else "paid",
            "reference": f"{i:016d}",
            "bucket": i % 1024,
            "extra": {"lines": i % 3} if i % 5 == 0 else None,
            "updated_at": now,
        }

    watched = ["open_cents", "status"]
    keys = ["creditor_id", "invoice_id"]
    out = []
    eng = make_engine(url)
    try:
        for fast in (True, False):
            store.DRIVER_EXECUTEMANY = fast
            r: dict[str, Any] = {"path": "ledger, fast" if fast else "ledger, SQLAlchemy"}
            with eng.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS bench_ledger_writes"))
                md.create_all(conn)
                day1 = [row(i, 75_000) for i in range(n)]
                start = time.perf_counter()
                got = upsert(conn, t, day1, keys, watched, only_if_changed=watched)
                r["upsert_new_s"] = round(time.perf_counter() - start, 2)
                r["upsert_new_count"] = {"got": got, "want": n}
                day2 = [row(i, 0 if i % 3 == 0 else 75_000) for i in range(n + n // 4)]
                start = time.perf_counter()
                got = upsert(conn, t, day2, keys, watched, only_if_changed=watched)
                r["upsert_day2_s"] = round(time.perf_counter() - start, 2)
                r["upsert_day2_count"] = {"got": got, "want": len(range(0, n, 3)) + n // 4}
                extra = [row(i, 1) for i in range(n, n + n // 2)]
                start = time.perf_counter()
                got = insert_ignore(conn, t, extra)
                r["insert_ignore_s"] = round(time.perf_counter() - start, 2)
                r["insert_ignore_count"] = {"got": got, "want": len(extra) - n // 4}
                changes = [{"invoice_id": f"F{i:08d}", "open_cents": i} for i in range(n)]
                start = time.perf_counter()
                got = update_many(conn, t, {"creditor_id": "c1"}, ["invoice_id"], changes)
                r["update_many_s"] = round(time.perf_counter() - start, 2)
                r["update_many_count"] = {"got": got, "want": n}
                conn.execute(text("DROP TABLE bench_ledger_writes"))
            out.append(r)
    finally:
        store.DRIVER_EXECUTEMANY = True
        eng.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args(argv)
    try:
        results = [one_mode(args.url, m, args.rows) for m in ("values_only", "values_plus_batch")]
        results += product_paths(args.url, args.rows)
    except OperationalError as exc:
        print(f"no PostgreSQL at {args.url}: {exc.orig}")
        return 2
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
