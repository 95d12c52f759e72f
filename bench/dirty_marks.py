"""What marking dirty debtors costs the cycle's writes on PostgreSQL:
``python -m bench.dirty_marks [--debtors N] [--json]``.

The ledger's triggers mark every debtor whose assessment inputs change (migrations 0009
and 0011). Into three fresh databases, with 0009's row triggers (revision 0010), with
0011's statement triggers (head), and with no triggers at all (the floor), this runs
what the cycle writes, through the ledger's own ``upsert``, ``update_many`` and
``insert_ignore``:

- validate: a portfolio's invoices (four a debtor) upserted in chunks of 100,000;
- reconcile: a fifth of them paid (``update_many``, statements of 2,000) and as many
  allocations inserted, while validate's marks are still unclaimed and unanalyzed (as
  in the cycle: assess claims them later, and nothing analyzes them);
- the next day: the marks claimed, the invoices upserted again with a fifth changed
  and a tenth new.

It prints each phase's seconds and the marks it left, and writes them to
``bench/results/dirty-marks-<date>-<debtors>.json``.

    python -m bench.dirty_marks --debtors 250000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from bench.cycle import save_result, scratch_pg
from ledger import schema as s
from ledger.store import (
    _MIGRATIONS,
    ensure_creditor,
    insert_ignore,
    make_engine,
    update_many,
    upsert,
    utcnow,
)

CHUNK = 100_000
KEYS = ["creditor_id", "invoice_id"]
COMPARED = ["debtor_id", "due_date", "amount_cents", "open_cents", "status", "bucket"]


def invoice_row(
    invoice_id: str, debtor_id: str, amount_cents: int, bucket: int, now: dt.datetime
) -> dict[str, Any]:
    """An open invoice of creditor c1, as the ledger's ``invoices`` holds it."""
    return {
        "creditor_id": "c1",
        "invoice_id": invoice_id,
        "debtor_id": debtor_id,
        "source": "erp",
        "invoice_date": dt.date(2026, 10, 1),
        "due_date": dt.date(2026, 10, 15),
        "amount_cents": amount_cents,
        "open_cents": amount_cents,
        "currency": "EUR",
        "status": "open",
        "bucket": bucket,
        "updated_at": now,
    }


def _invoices(debtors: int, day: int) -> list[dict[str, Any]]:
    """Four invoices a debtor; on day 1 a fifth of them changed and a tenth more new."""
    now, rows = utcnow(), []
    n = debtors * 4 + (debtors * 4 // 10 if day else 0)
    for i in range(n):
        amount = 10_000 + i % 997 + (1 if day and i % 5 == 0 else 0)
        rows.append(invoice_row(f"F{i:09d}", f"D{(i // 4) % debtors:08d}", amount, i % 1024, now))
    return rows


def _timed(engine: Any, run: Any) -> tuple[float, int]:
    """Seconds to run, and the marks in ``dirty_debtors`` afterwards."""
    start = time.perf_counter()
    run(engine)
    took = round(time.perf_counter() - start, 2)
    with engine.connect() as conn:
        return took, conn.execute(select(func.count()).select_from(s.dirty_debtors)).scalar()


def _upsert(engine: Any, rows: list[dict[str, Any]]) -> None:
    for k in range(0, len(rows), CHUNK):
        with engine.begin() as conn:
            upsert(conn, s.invoices, rows[k : k + CHUNK], KEYS, [*COMPARED, "updated_at"], COMPARED)


def _pay(engine: Any, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    with engine.begin() as conn:
        update_many(
            conn,
            s.invoices,
            {"creditor_id": "c1"},
            ["invoice_id"],
            [{"invoice_id": r["invoice_id"], "open_cents": 0, "status": "paid"} for r in rows],
        )
        insert_ignore(
            conn,
            s.allocations,
            [
                {
                    "creditor_id": "c1",
                    "payment_id": f"P{k:09d}",
                    "invoice_id": r["invoice_id"],
                    "amount_cents": r["amount_cents"],
                    "rule": "structured_reference",
                    "created_at": now,
                }
                for k, r in enumerate(rows)
            ],
        )


def one(kind: str, days: list[list[dict[str, Any]]]) -> dict[str, Any]:
    with scratch_pg("vangnet_marks") as url:
        engine = make_engine(url)
        try:
            return _phases(engine, kind, days)
        finally:
            engine.dispose()


def _phases(engine: Any, kind: str, days: list[list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"triggers": kind}
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010" if kind == "row (0009)" else "head")
        if kind == "none":
            for t in s.DIRTY_WATCHED:
                conn.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
        ensure_creditor(conn, "c1", "C", "housing", "x")
    out["validate_s"], out["validate_marks"] = _timed(engine, lambda c: _upsert(c, days[0]))
    with engine.begin() as conn:  # as validate's refresh_statistics does
        conn.execute(text("ANALYZE invoices"))
    paid = days[0][: len(days[0]) // 5]
    out["reconcile_s"], out["reconcile_marks"] = _timed(engine, lambda c: _pay(c, paid))
    with engine.begin() as conn:
        conn.execute(s.dirty_debtors.delete())  # as assess claims them
        conn.execute(text("ANALYZE invoices"))
    out["next_day_s"], out["next_day_marks"] = _timed(engine, lambda c: _upsert(c, days[1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debtors", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    days = [_invoices(args.debtors, 0), _invoices(args.debtors, 1)]
    results = [one(kind, days) for kind in ("none", "row (0009)", "statement (0011)")]
    out = save_result(
        "dirty_marks",
        f"dirty-marks-{dt.date.today().isoformat()}-{args.debtors}.json",
        {"debtors": args.debtors, "results": results},
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{args.debtors:,} debtors: validate {len(days[0]):,} invoices; reconcile pays"
        f" {len(days[0]) // 5:,}; the next day {len(days[1]):,} again (seconds, marks left)"
    )
    for r in results:
        print(
            f"  {r['triggers']:<17}"
            + "".join(
                f"  {p} {r[p + '_s']:>6.2f} s ({r[p + '_marks']:>7,})"
                for p in ("validate", "reconcile", "next_day")
            )
        )


if __name__ == "__main__":
    main()
