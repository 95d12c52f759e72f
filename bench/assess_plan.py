"""Assess + plan at portfolio scale: ``python -m bench.assess_plan [--debtors 250000]``.

A ledger on SQLite (the embedded default) filled with a synthetic portfolio: N debtors
with 4 invoices each (1M invoices at 250k), a paid history, about a third overdue, a
few holds and preferences. Then every partition is assessed (signals, segments) and
planned (next steps) as the daily cycle does, without Prefect. Prints seconds and
rows/s per stage; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert

from bench.odbc import commit_id
from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from transforms.contact_window import AMS
from transforms.partition import bucket_column

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def fill(ctx: Any, n_debtors: int, seed_value: int = 11) -> int:
    rng = np.random.default_rng(seed_value)
    ids = pd.Series([f"B{i:08d}" for i in range(n_debtors)])
    buckets = bucket_column(ids)
    now = utcnow()
    has_mail = rng.random(n_debtors) < 0.85
    debtors = pd.DataFrame(
        {
            "creditor_id": ctx.creditor_id,
            "debtor_id": ids,
            "source": "bench",
            "name": "x",
            "email": pd.Series("x@example.nl", index=range(n_debtors)).where(has_mail),
            "phone": pd.Series("+31612345678", index=range(n_debtors)).where(
                rng.random(n_debtors) < 0.7
            ),
            "street": "Dorpsstraat 1",
            "postcode": "1234 AB",
            "city": "Urk",
            "language": "nl",
            "bucket": buckets,
            "updated_at": now,
        }
    )
    today = NOW.date()
    per = 4
    n = n_debtors * per
    owner = np.repeat(np.arange(n_debtors), per)
    month = np.tile(np.arange(per), n_debtors)  # 0 = oldest
    due = pd.to_datetime(today) - pd.to_timedelta((per - month) * 30 - 10, unit="D")
    kind = rng.random(n_debtors)[owner]  # a debtor's habit
    late = np.where(kind < 0.6, rng.integers(0, 3, n), rng.integers(5, 40, n))
    paid_at = due + pd.to_timedelta(late, unit="D")
    paid = paid_at < pd.Timestamp(today)
    amount = rng.integers(40_000, 95_000, n)
    invoices = pd.DataFrame(
        {
            "creditor_id": ctx.creditor_id,
            "invoice_id": [f"I{i:09d}" for i in range(n)],
            "debtor_id": ids.to_numpy()[owner],
            "source": "bench",
            "invoice_date": (due - pd.Timedelta(days=14)).date,
            "due_date": due.date,
            "amount_cents": amount,
            "open_cents": np.where(paid, 0, amount),
            "costs_cents": 0,
            "interest_cents": 0,
            "currency": "EUR",
            "paid_date": np.where(paid, paid_at.date, None),
            "prior_reminders": 0,
            "status": np.where(paid, "paid", "open"),
            "bucket": buckets.to_numpy()[owner],
            "updated_at": now,
        }
    )
    held = ids[rng.random(n_debtors) < 0.02]
    with ctx.engine.begin() as conn:
        for t, df in ((s.debtors, debtors), (s.invoices, invoices)):
            recs = df.to_dict("records")
            for k in range(0, len(recs), 50_000):
                conn.execute(insert(t), recs[k : k + 50_000])
        conn.execute(
            insert(s.holds),
            [
                {
                    "creditor_id": ctx.creditor_id,
                    "debtor_id": d,
                    "kind": "debt_assistance",
                    "reason": "bench",
                    "starts_on": today,
                    "created_at": now,
                }
                for d in held
            ],
        )
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--debtors", type=int, default=250_000)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vangnet-bench-"))
    cfg = seed(work, 10, NOW.date())
    text = cfg.read_text().replace("partitions: 4", f"partitions: {args.partitions}")
    cfg.write_text(text)
    ctx = make_ctx(str(cfg), NOW)
    t = time.perf_counter()
    n_inv = fill(ctx, args.debtors)
    filled = time.perf_counter() - t
    n = ctx.cfg.policy.partitions
    t = time.perf_counter()
    seg: dict[str, int] = {}
    for p in range(n):
        for k, v in stages.assess_partition(ctx, p, n)["segments"].items():
            seg[k] = seg.get(k, 0) + v
    assess = time.perf_counter() - t
    t = time.perf_counter()
    planned = sum(stages.plan_partition(ctx, p, n)["planned"] for p in range(n))
    plan = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    debtors = args.debtors + 10
    out = {
        "benchmark": "assess_plan",
        "debtors": debtors,
        "invoices": n_inv,
        "partitions": n,
        "assess_seconds": round(assess, 1),
        "plan_seconds": round(plan, 1),
        "debtors_per_second": round(debtors / (assess + plan)),
        "segments": seg,
        "planned": planned,
        "peak_rss_mb": round(peak / 2**20),
        "fill_seconds": round(filled, 1),
        "ledger": "sqlite",
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": commit_id(),
        "machine": {"cpus": os.cpu_count()},
    }
    print(
        f"assess {debtors:,} debtors / {n_inv:,} invoices in {n} partitions: {assess:.1f} s; "
        f"plan: {plan:.1f} s ({planned:,} contacts); {out['debtors_per_second']:,} debtors/s; "
        f"segments {seg}; peak RSS {peak / 2**20:,.0f} MiB (ledger fill {filled:.0f} s, not counted)"
    )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    (res / f"assess_plan-{dt.date.today().isoformat()}.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
