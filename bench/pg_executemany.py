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
import json
import time
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, text
from sqlalchemy import update as sa_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import OperationalError

from ledger.store import update_many


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args(argv)
    try:
        results = [one_mode(args.url, m, args.rows) for m in ("values_only", "values_plus_batch")]
    except OperationalError as exc:
        print(f"no PostgreSQL at {args.url}: {exc.orig}")
        return 2
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
