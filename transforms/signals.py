"""Early-warning signals per debtor (first set; DOMAIN.md "Early-warning signals").

Computed for a whole partition at once from the ledger's invoices (open items and paid
history), holds and contacts. The clock (``today``) is a parameter. Each signal is a
column; ``signal_rows`` turns the frame into ledger rows carrying the value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

SIGNALS = (
    "open_overdue_count",
    "overdue_cents",
    "max_days_overdue",
    "paid_history_count",
    "late_history_count",
    "avg_days_late",
    "late_twice_in_a_row",
    "partial_payment",
    "contacts_unanswered",
    "in_debt_assistance",
)

LATE_GRACE_DAYS = 3


def compute_signals(
    debtor_ids: pd.Series,
    invoices: pd.DataFrame,
    active_holds: pd.DataFrame,
    contacts: pd.DataFrame,
    today: dt.date,
) -> pd.DataFrame:
    """One row per debtor with every signal of ``SIGNALS``.

    ``invoices``: debtor_id, invoice_id, due_date, amount_cents, open_cents, paid_date.
    ``active_holds``: debtor_id. ``contacts``: debtor_id, status, sent_at.
    """
    out = pd.DataFrame({"debtor_id": debtor_ids.astype(str).unique()}).set_index("debtor_id")
    inv = invoices.copy()
    today_ts = pd.Timestamp(today)
    due = pd.to_datetime(inv["due_date"])
    paid = pd.to_datetime(inv["paid_date"])
    is_open = inv["open_cents"] > 0
    overdue = is_open & (due < today_ts)
    inv["days_overdue"] = (today_ts - due).dt.days.where(overdue)
    g_over = inv[overdue].groupby("debtor_id")
    out["open_overdue_count"] = g_over.size()
    out["overdue_cents"] = g_over["open_cents"].sum()
    out["max_days_overdue"] = g_over["days_overdue"].max()
    out["partial_payment"] = (
        inv[overdue & (inv["open_cents"] < inv["amount_cents"])].groupby("debtor_id").size() > 0
    )

    year_ago = today_ts - pd.Timedelta(days=365)
    hist = inv[paid.notna() & (paid >= year_ago)].copy()
    hist["days_late"] = (
        pd.to_datetime(hist["paid_date"]) - pd.to_datetime(hist["due_date"])
    ).dt.days.clip(lower=0)
    hist["late"] = hist["days_late"] > LATE_GRACE_DAYS
    g_hist = hist.groupby("debtor_id")
    out["paid_history_count"] = g_hist.size()
    out["late_history_count"] = g_hist["late"].sum()
    out["avg_days_late"] = g_hist["days_late"].mean().round(1)
    hist = hist.sort_values(["debtor_id", "paid_date"])
    hist["from_end"] = hist.groupby("debtor_id").cumcount(ascending=False)
    last2 = hist[hist["from_end"] < 2].groupby("debtor_id")["late"].agg(["sum", "size"])
    earlier = hist[hist["from_end"] >= 2].groupby("debtor_id")["late"].mean()
    # punctual before: at most 20% late among the earlier payments (none known: not punctual)
    punctual_before = earlier.reindex(last2.index).fillna(1.0) <= 0.2
    out["late_twice_in_a_row"] = (last2["sum"] == 2) & (last2["size"] == 2) & punctual_before

    if len(contacts):
        # only contacts sent before today: a re-run on the same day assesses the same
        sent_at = pd.to_datetime(contacts["sent_at"], utc=True)
        before = sent_at < pd.Timestamp(today, tz="Europe/Amsterdam")
        sent = contacts[(contacts["status"] == "sent") & before]
        out["contacts_unanswered"] = sent.groupby("debtor_id").size()
    else:
        out["contacts_unanswered"] = 0
    out["in_debt_assistance"] = out.index.isin(set(active_holds["debtor_id"].astype(str)))

    ints = [
        "open_overdue_count",
        "overdue_cents",
        "max_days_overdue",
        "paid_history_count",
        "late_history_count",
        "contacts_unanswered",
    ]
    for col in ints:
        out[col] = out[col].fillna(0).astype("int64")
    out["avg_days_late"] = out["avg_days_late"].fillna(0.0).astype(float)
    for col in ("partial_payment", "late_twice_in_a_row", "in_debt_assistance"):
        out[col] = out[col].astype("boolean").fillna(False).astype(bool)
    # a debtor with nothing overdue has not left contacts unanswered
    out.loc[out["open_overdue_count"] == 0, "contacts_unanswered"] = 0
    return out.reset_index()


def signal_rows(creditor_id: str, frame: pd.DataFrame, today: dt.date) -> list[dict[str, Any]]:
    """Ledger rows for the signals that fired (a non-zero / true value)."""
    rows: list[dict[str, Any]] = []
    for col in SIGNALS:
        fired = frame[frame[col].astype(bool)]
        for debtor_id, value in zip(fired["debtor_id"], fired[col], strict=True):
            v = value.item() if hasattr(value, "item") else value
            rows.append(
                {
                    "creditor_id": creditor_id,
                    "debtor_id": debtor_id,
                    "signal": col,
                    "value": v,
                    "first_fired": today,
                    "last_seen": today,
                }
            )
    return rows


__all__ = ["LATE_GRACE_DAYS", "SIGNALS", "compute_signals", "signal_rows"]
