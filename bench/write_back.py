"""What write back costs the ledger, on SQLite and PostgreSQL:
``python -m bench.write_back [--changes N] [--json]``.

The stage's own bookkeeping, without a creditor's system: ``stages.write_back`` with a
writer that applies every change in memory. Into a fresh ledger at each revision, it
puts the write-backs of earlier days (``--history`` of them, applied) and ``--changes``
planned today, then times the stage, with the write-backs index before migration 0012
(``creditor_id, status``) and after it (``creditor_id, status, id``). PostgreSQL is used
when it runs on 127.0.0.1:5432.

It prints each run's seconds and writes them to
``bench/results/write-back-<date>-<changes>.json``.

    python -m bench.write_back --changes 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from bench.cycle import save_result, scratch_pg
from ledger import schema as s
from ledger.records import WriteBack, WriteResult
from ledger.store import _MIGRATIONS, ensure_creditor, insert_ignore, make_engine, utcnow

REVISIONS = {"before 0012": "0011", "0012": "head"}


class Applying:
    """A writer that applies every change (the stage's cost, not a creditor's)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        self.written += len(changes)
        return [WriteResult(c.change_id, "applied") for c in changes]


def _rows(n: int, status: str, day: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "creditor_id": "c1",
            "target": "erp",
            "entity": "invoices",
            "record_id": f"F{i:08d}",
            "change_id": f"d{day}-{i}",
            "values": {
                "status": "betaald",
                "open_amount": "0.00",
                "open_costs": "0.00",
                "open_interest": "0.00",
            },
            "expected_version": "2026-11-23T06:00:00",
            "status": status,
            "attempts": 1 if status == "applied" else 0,
            "created_at": now,
        }
        for i in range(n)
    ]


def ledger_at(url: str, revision: str) -> Engine:
    """An engine on the fresh ledger at ``url``, migrated to ``revision`` only, with the
    creditor ``c1``."""
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        ensure_creditor(conn, "c1", "C", "housing", "x")
    return engine


def one(url: str, revision: str, history: int, changes: int) -> dict[str, Any]:
    engine = ledger_at(url, revision)
    try:
        for day in range(history // max(changes, 1)):
            with engine.begin() as conn:
                insert_ignore(conn, s.write_backs, _rows(changes, "applied", day))
        with engine.begin() as conn:
            insert_ignore(conn, s.write_backs, _rows(changes, "planned", 99))
            conn.execute(text("ANALYZE"))
        ctx = SimpleNamespace(
            creditor_id="c1",
            engine=engine,
            cfg=SimpleNamespace(
                write_back=SimpleNamespace(target="erp"), write_back_entities=lambda: {"invoices"}
            ),
        )
        from flows import stages

        writer = Applying()
        t = time.perf_counter()
        out = stages.write_back(ctx, writer=writer)  # type: ignore[arg-type]
        took = time.perf_counter() - t
        assert out["applied"] == changes == writer.written, out
        return {"seconds": round(took, 2), "applied": out["applied"]}
    finally:
        engine.dispose()


def _postgres() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=200_000)
    ap.add_argument("--history", type=int, default=400_000, help="applied on earlier days")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    for label, revision in REVISIONS.items():
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'ledger.sqlite'}"
            results.append(
                {
                    "ledger": "sqlite",
                    "index": label,
                    **one(url, revision, args.history, args.changes),
                }
            )
        print(results[-1], flush=True)
        if not _postgres():
            continue
        with scratch_pg("vangnet_wb") as url:
            results.append(
                {
                    "ledger": "postgresql",
                    "index": label,
                    **one(url, revision, args.history, args.changes),
                }
            )
        print(results[-1], flush=True)
    out = save_result(
        "write_back",
        f"write-back-{dt.date.today().isoformat()}-{args.changes}.json",
        {"changes": args.changes, "history": args.history, "results": results},
    )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
