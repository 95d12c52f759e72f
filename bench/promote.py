"""What promoting a day's new invoices costs the ledger, on SQLite and PostgreSQL:
``python -m bench.promote [--invoices N] [--rounds R] [--json]``.

Validate's ``promoted`` part alone: ``stages.promote`` (the stage's own call, its
allocation netting, column work and upsert) of ``--invoices`` new invoices, in chunks of
``--chunk-rows`` each in its own transaction as the stage commits them, into a fresh
ledger at each revision: before migration 0013 (with the index on invoices'
``creditor_id, payment_reference``) and at it (without). The revisions take turns,
``--rounds`` times, so a slow minute of the machine falls on both. PostgreSQL is used
when it runs on 127.0.0.1:5432.

It prints each run's seconds and writes them to
``bench/results/promote-<date>-<invoices>.json``.

    python -m bench.promote --invoices 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from bench.cycle import save_result, scratch_pg
from bench.validation import invoices
from bench.write_back import _postgres, ledger_at
from ledger import schema as s
from ledger.store import utcnow

REVISIONS = {"before 0013": "0012", "0013": "head"}


def one(url: str, revision: str, day: pd.DataFrame, chunk_rows: int) -> dict[str, Any]:
    """Promote ``day`` into a fresh ledger at ``revision``, a chunk a transaction."""
    from flows import stages

    engine = ledger_at(url, revision)
    try:
        ctx = SimpleNamespace(creditor_id="c1", engine=engine)
        t = time.perf_counter()
        with engine.connect() as conn:  # as the stage reads them: once for every chunk
            alloc = stages._allocated(conn, ctx, None)  # type: ignore[arg-type]
        changed = 0
        for start in range(0, len(day), chunk_rows):
            with engine.begin() as conn:
                changed += stages.promote(
                    conn,
                    ctx,  # type: ignore[arg-type]
                    "invoices",
                    "erp",
                    day.iloc[start : start + chunk_rows],
                    utcnow(),
                    alloc,
                )
        took = time.perf_counter() - t
        with engine.connect() as conn:
            held = conn.execute(select(func.count()).select_from(s.invoices)).scalar()
        assert changed == held == len(day), (changed, held, len(day))
        return {"seconds": round(took, 2), "promoted": changed}
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="validation.chunk_rows")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    day = invoices(args.invoices)
    ledgers = ["sqlite", *(["postgresql"] if _postgres() else [])]
    results: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for ledger in ledgers:
            for label, revision in REVISIONS.items():
                if ledger == "sqlite":
                    with tempfile.TemporaryDirectory() as tmp:
                        got = one(
                            f"sqlite:///{Path(tmp) / 'l.sqlite'}", revision, day, args.chunk_rows
                        )
                else:
                    with scratch_pg("vangnet_promote") as url:
                        got = one(url, revision, day, args.chunk_rows)
                results.append({"round": rnd, "ledger": ledger, "index": label, **got})
                print(results[-1], flush=True)
    summary = {
        f"{ledger}, {label}": statistics.median(
            r["seconds"] for r in results if r["ledger"] == ledger and r["index"] == label
        )
        for ledger in ledgers
        for label in REVISIONS
    }
    for k, v in summary.items():
        print(f"{k:28} median {v:6.2f} s")
    out = save_result(
        "promote",
        f"promote-{dt.date.today().isoformat()}-{args.invoices}.json",
        {
            "invoices": args.invoices,
            "chunk_rows": args.chunk_rows,
            "results": results,
            "median_seconds": summary,
        },
    )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
