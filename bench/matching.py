"""Matching throughput: ``python -m bench.matching [--items 1000000] [--lines 300000]``.

Synthetic but shaped like a real day: 250k debtors with 4 open items each, statement
lines of which half carry a structured reference, some write the reference or the
invoice number (with OCR noise) in the text, some come only from a known IBAN, and some
are noise (a line may pay an item another line already paid: that item has left the
index, so the line is weighed on what else it carries). Prints lines/s and the outcome mix; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import time
from pathlib import Path

import pandas as pd

from bench.odbc import commit_id
from transforms.matching import match_payments
from transforms.references import new_betalingskenmerk

D = dt.date(2026, 11, 24)


def portfolio(
    n_items: int, n_lines: int, seed: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = random.Random(seed)
    n_debtors = max(n_items // 4, 1)
    items = pd.DataFrame(
        {
            "invoice_id": [f"F{i:08d}" for i in range(n_items)],
            "debtor_id": [f"R{i % n_debtors:07d}" for i in range(n_items)],
            "open_cents": [50_000 + (i % 400) * 100 for i in range(n_items)],
            "payment_reference": [new_betalingskenmerk(i + 1) for i in range(n_items)],
            "due_date": [D - dt.timedelta(days=i % 90) for i in range(n_items)],
        }
    )
    debtors = pd.DataFrame(
        {
            "debtor_id": [f"R{i:07d}" for i in range(n_debtors)],
            "name": [f"klant {i}" for i in range(n_debtors)],
            "iban": [f"NL{i % 97:02d}BANK{i:010d}" for i in range(n_debtors)],
        }
    )
    rows = []
    for k in range(n_lines):
        i = rng.randrange(n_items)
        ref, amount = items.at[i, "payment_reference"], int(items.at[i, "open_cents"])
        kind = rng.random()
        row = {
            "payment_id": f"p{k}",
            "booking_date": D,
            "value_date": D,
            "amount_cents": amount,
            "currency": "EUR",
            "counterparty_iban": None,
            "counterparty_name": None,
            "remittance": None,
            "structured_reference": None,
            "end_to_end_id": None,
            "bank_reference": None,
            "reversal": False,
            "return_reason": None,
        }
        if kind < 0.5:
            row["structured_reference"] = ref
        elif kind < 0.65:
            row["remittance"] = f"huur {ref[:4]} {ref[4:8]} {ref[8:12]} {ref[12:]}"
        elif kind < 0.75:
            row["remittance"] = f"factuur {items.at[i, 'invoice_id'].replace('0', 'O', 2)}"
        elif kind < 0.85:
            d = int(items.at[i, "debtor_id"][1:])
            row["counterparty_iban"] = f"NL{d % 97:02d}BANK{d:010d}"
        else:
            row["remittance"] = f"gift {k}"
            row["amount_cents"] = rng.randrange(100, 100_000)
        rows.append(row)
    return pd.DataFrame(rows), items, debtors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=300_000)
    args = ap.parse_args()
    t = time.perf_counter()
    payments, items, debtors = portfolio(args.items, args.lines)
    build = time.perf_counter() - t
    t = time.perf_counter()
    result = match_payments(payments, items, debtors)
    took = time.perf_counter() - t
    peak = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )  # the whole process, generator included
    mix = result.payments["status"].value_counts().to_dict()
    out = {
        "benchmark": "matching",
        "items": args.items,
        "lines": args.lines,
        "seconds": round(took, 2),
        "lines_per_second": round(args.lines / took),
        "peak_rss_mb": round(peak / 2**20),
        "outcomes": mix,
        "generate_seconds": round(build, 1),
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": commit_id(),
        "machine": {"cpus": os.cpu_count()},
    }
    print(
        f"matching {args.lines} lines against {args.items} open items: {took:.1f} s, "
        f"{args.lines / took:,.0f} lines/s, peak RSS {peak / 2**20:,.0f} MiB (with the generated data); outcomes {mix}"
    )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    (res / f"matching-{dt.date.today().isoformat()}.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
