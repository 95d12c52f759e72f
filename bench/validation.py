"""Validation throughput: ``python -m bench.validation [--invoices 1000000]``.

The invoice suite run by vangnet (GX Core, one context for the run, every failing
record with every rule it broke) against its limit: the same rules as plain pandas
masks. Both include the derived checks GX has no expectation for (payment reference
check digits, known debtor, open within amount), computed once and shared, and both
produce the same set of rejected rows (checked). Target: within 3x of the limit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time

import numpy as np
import pandas as pd

from bench.cycle import save_result
from ledger.records import INVOICE_COLUMNS
from transforms import validation
from transforms.references import new_betalingskenmerk

D = dt.date(2026, 11, 24)


def invoices(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.integers(5_000, 120_000, n)
    inv_date = pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    df = pd.DataFrame(
        {
            "invoice_id": [f"F{i:08d}" for i in range(n)],
            "debtor_id": [f"R{i % (n // 4 + 1):07d}" for i in range(n)],
            "invoice_date": inv_date.date,
            "due_date": (inv_date + pd.Timedelta(days=14)).date,
            "amount_cents": amount,
            "open_cents": amount,
            "costs_cents": 0,
            "interest_cents": 0,
            "currency": "EUR",
            "payment_reference": [new_betalingskenmerk(i + 1) for i in range(n)],
            "paid_date": None,
            "prior_reminders": 0,
            "source_version": "1",
            "_errors": None,
        },
        columns=[*INVOICE_COLUMNS, "_errors"],
    )
    bad = rng.choice(n, size=max(n // 200, 1), replace=False)  # 0.5% broken, five kinds
    for k, i in enumerate(bad):
        kind = k % 5
        if kind == 0:
            df.at[i, "amount_cents"] = -1
        elif kind == 1:
            df.at[i, "currency"] = "USD"
        elif kind == 2:
            df.at[i, "debtor_id"] = "R9999999"
        elif kind == 3:
            ref = df.at[i, "payment_reference"]
            df.at[i, "payment_reference"] = str((int(ref[0]) + 1) % 10) + ref[1:]
        else:
            df.at[i, "due_date"] = df.at[i, "invoice_date"] - dt.timedelta(days=1)
    for c in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
        df[c] = df[c].astype("Int64")
    return df


def pandas_masks(p: pd.DataFrame) -> pd.Series:
    """The invoice rules as plain boolean masks: True where a row fails any."""
    amount, open_ = p["amount_cents"], p["open_cents"]
    fails = (
        ~p["parse_ok"].astype(bool)
        | ~p["fields_fit"]
        | p["invoice_id"].isna()
        | p["invoice_id"].duplicated(keep=False)
        | amount.isna()
        | ~amount.between(1, validation.MAX_PLAUSIBLE_CENTS).fillna(False)
        | open_.isna()
        | (open_.fillna(0) < 0)
        | ~p["open_within_amount"]
        | ~p["components_within_open"]
        | ~p["currency"].isin(["EUR"])
        | p["due_date"].isna()
        | (pd.to_datetime(p["due_date"]) < pd.to_datetime(p["invoice_date"]))
        | ~p["due_not_absurd"]
        | ~p["reference_valid"]
        | ~p["debtor_known"]
    )
    return fails.fillna(True).astype(bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--invoices", type=int, default=1_000_000)
    args = ap.parse_args()
    t = time.perf_counter()
    df = invoices(args.invoices)
    known = {f"R{i:07d}" for i in range(args.invoices // 4 + 1)}
    gen = time.perf_counter() - t

    t = time.perf_counter()
    prepared = validation.derive_invoice_checks(df, known)
    derive = time.perf_counter() - t

    t = time.perf_counter()
    fails = pandas_masks(prepared)
    bare = time.perf_counter() - t

    t = time.perf_counter()
    v = validation.Validator()  # one context for the run
    context = time.perf_counter() - t
    t = time.perf_counter()
    outcome = v.validate(
        "invoices", df, validation.invoice_rules(), "invoice_id", prepared, "bench"
    )
    gx = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    same = set(outcome.rejected.index) == set(prepared.index[fails])
    out = save_result(
        "validation",
        f"validation-{dt.date.today().isoformat()}.json",
        {
            "invoices": args.invoices,
            "rules": len(validation.invoice_rules()),
            "rejected": len(outcome.rejected),
            "same_rows_rejected_as_pandas": same,
            "derive_seconds": round(derive, 2),
            "gx_seconds": round(gx, 2),
            "gx_context_seconds": round(context, 2),
            "pandas_seconds": round(bare, 2),
            "ratio_rules_only": round(gx / bare, 1),
            "ratio_with_derived_checks": round((gx + derive) / (bare + derive), 2),
            "rows_per_second": round(args.invoices / (gx + derive)),
            "peak_rss_mb": round(peak / 2**20),
            "generate_seconds": round(gen, 1),
        },
    )
    print(
        f"validation of {args.invoices:,} invoices, {out['rules']} rules: GX {gx:.1f} s + derived "
        f"checks {derive:.1f} s = {args.invoices / (gx + derive):,.0f} rows/s; plain pandas masks "
        f"{bare:.2f} s (+ the same derived checks): {out['ratio_with_derived_checks']}x the limit "
        f"({out['ratio_rules_only']}x on the rules alone); {len(outcome.rejected):,} rejected, "
        f"same rows as pandas: {same}; GX context {context:.1f} s once per run; "
        f"peak RSS {peak / 2**20:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
