"""What marking dirty debtors costs validate's upsert on PostgreSQL:
``python -m bench.dirty_marks [--debtors N] [--url URL]``.

The ledger's triggers mark every debtor whose assessment inputs change (migrations 0009
and 0011). This upserts a portfolio's invoices (four a debtor) in validate's chunks of
100,000 through ``ledger.store.upsert``, then the same day again with a fifth of them
changed and a tenth new, into three fresh databases: with 0009's row triggers (revision
0010), with 0011's statement triggers (head), and with no triggers at all (the floor).
It prints each one's seconds and the marks left.

    python -m bench.dirty_marks --debtors 250000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import uuid
from typing import Any

import psycopg2
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from ledger import schema as s
from ledger.store import _MIGRATIONS, ensure_creditor, make_engine, upsert, utcnow

ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
CHUNK = 100_000
KEYS = ["creditor_id", "invoice_id"]
COMPARED = ["debtor_id", "due_date", "amount_cents", "open_cents", "status", "bucket"]


def _invoices(debtors: int, day: int) -> list[dict[str, Any]]:
    """Four invoices a debtor; on day 1 a fifth of them changed and a tenth more new."""
    now, rows = utcnow(), []
    n = debtors * 4 + (debtors * 4 // 10 if day else 0)
    for i in range(n):
        amount = 10_000 + i % 997 + (1 if day and i % 5 == 0 else 0)
        rows.append(
            {
                "creditor_id": "c1",
                "invoice_id": f"F{i:09d}",
                "debtor_id": f"D{(i // 4) % debtors:08d}",
                "source": "bench",
                "invoice_date": dt.date(2026, 10, 1),
                "due_date": dt.date(2026, 10, 15),
                "amount_cents": amount,
                "open_cents": amount,
                "currency": "EUR",
                "status": "open",
                "bucket": i % 1024,
                "updated_at": now,
            }
        )
    return rows


def one(kind: str, debtors: int, days: list[list[dict[str, Any]]]) -> dict[str, Any]:
    name = f"vangnet_marks_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
    out: dict[str, Any] = {"triggers": kind}
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0010" if kind == "row (0009)" else "head")
            if kind == "none":
                for t in s.DIRTY_WATCHED:
                    conn.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
            ensure_creditor(conn, "c1", "C", "housing", "x")
        for day, rows in enumerate(days):
            start = time.perf_counter()
            changed = 0
            for k in range(0, len(rows), CHUNK):
                with engine.begin() as conn:
                    changed += upsert(
                        conn,
                        s.invoices,
                        rows[k : k + CHUNK],
                        KEYS,
                        [*COMPARED, "updated_at"],
                        only_if_changed=COMPARED,
                    )
            out[f"day{day}_s"] = round(time.perf_counter() - start, 2)
            out[f"day{day}_changed"] = changed
            with engine.begin() as conn:
                out[f"day{day}_marks"] = conn.execute(
                    select(func.count()).select_from(s.dirty_debtors)
                ).scalar()
                conn.execute(s.dirty_debtors.delete())  # as assess claims them
                conn.execute(text("ANALYZE invoices"))
    finally:
        engine.dispose()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debtors", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    days = [_invoices(args.debtors, 0), _invoices(args.debtors, 1)]
    results = [one(kind, args.debtors, days) for kind in ("none", "row (0009)", "statement (0011)")]
    if args.json:
        print(json.dumps({"debtors": args.debtors, "results": results}, indent=2))
        return
    print(f"{args.debtors:,} debtors, {len(days[0]):,} invoices, then {len(days[1]):,} again")
    for r in results:
        print(
            f"  {r['triggers']:<17} first {r['day0_s']:>7.2f} s ({r['day0_marks']:,} marks)"
            f"   again {r['day1_s']:>7.2f} s ({r['day1_changed']:,} changed,"
            f" {r['day1_marks']:,} marks)"
        )


if __name__ == "__main__":
    main()
