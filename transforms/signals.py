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
    "open_claims",
    "small_arrears_count",
    "small_arrears_cents",
    "days_late_trend",
    "habit_change_day",
    "reversed_direct_debit",
    "broken_arrangement",
    "preferred_day_set",
    "unopened_contacts",
    "opened_not_paid",
)
SMALL_ARREARS_CENTS = 5_000  # an overdue item below EUR 50: "small arrears piling up"
#: return reasons that say "no money" (SEPA R-transactions): insufficient funds,
#: account blocked, account closed
NO_MONEY_REASONS = frozenset({"AM04", "MS02", "AC06", "AC04"})

LATE_GRACE_DAYS = 3


def compute_signals(
    debtor_ids: pd.Series,
    invoices: pd.DataFrame,
    active_holds: pd.DataFrame,
    contacts: pd.DataFrame,
    today: dt.date,
    *,
    reversals: pd.DataFrame | None = None,
    arrangements: pd.DataFrame | None = None,
    preferences: pd.DataFrame | None = None,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per debtor with every signal of ``SIGNALS``.

    ``invoices``: debtor_id, invoice_id, due_date, amount_cents, open_cents, paid_date.
    ``active_holds``: debtor_id. ``contacts``: debtor_id, status, sent_at.
    Optional: ``reversals`` (debtor_id, booking_date, return_reason) of reversed or
    returned payments; ``arrangements`` (debtor_id, status); ``preferences``
    (debtor_id, preferred_day); ``events`` (debtor_id, message_id, event) of contacts.
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

    out["open_claims"] = inv[is_open].groupby("debtor_id").size()
    small = inv[overdue & (inv["open_cents"] < SMALL_ARREARS_CENTS)].groupby("debtor_id")
    out["small_arrears_count"] = small.size()
    out["small_arrears_cents"] = small["open_cents"].sum()
    # trend: the last three payments' days late against the three before (> 0: growing)
    recent3 = hist[hist["from_end"] < 3].groupby("debtor_id")["days_late"].mean()
    before3 = (
        hist[(hist["from_end"] >= 3) & (hist["from_end"] < 6)]
        .groupby("debtor_id")["days_late"]
        .mean()
    )
    out["days_late_trend"] = (recent3 - before3).round(1)
    # habit: the day of the month they pay moved by more than a week
    hist["pay_day"] = pd.to_datetime(hist["paid_date"]).dt.day
    day_now = hist[hist["from_end"] < 3].groupby("debtor_id")["pay_day"].median()
    day_before = (
        hist[(hist["from_end"] >= 3) & (hist["from_end"] < 9)]
        .groupby("debtor_id")["pay_day"]
        .median()
    )
    out["habit_change_day"] = (day_now - day_before).abs() > 7
    if reversals is not None and len(reversals):
        rv = reversals[
            pd.to_datetime(reversals["booking_date"]) >= today_ts - pd.Timedelta(days=90)
        ].sort_values("booking_date")
        out["reversed_direct_debit"] = (
            rv.groupby("debtor_id")["return_reason"].last().fillna("reversed")
        )
    else:
        out["reversed_direct_debit"] = ""
    if arrangements is not None and len(arrangements):
        out["broken_arrangement"] = (
            arrangements[arrangements["status"] == "broken"].groupby("debtor_id").size() > 0
        )
    else:
        out["broken_arrangement"] = False
    if preferences is not None and len(preferences):
        set_day = preferences[preferences["preferred_day"].notna()]
        out["preferred_day_set"] = set_day.groupby("debtor_id")["preferred_day"].first()
    else:
        out["preferred_day_set"] = 0
    if events is not None and len(events):
        per_msg = events.groupby(["debtor_id", "message_id"])["event"].agg(set)
        delivered = per_msg.map(lambda e: "delivered" in e and "opened" not in e)
        opened = per_msg.map(lambda e: "opened" in e or "clicked" in e)
        out["unopened_contacts"] = delivered.groupby("debtor_id").sum()
        out["opened_not_paid"] = opened.groupby("debtor_id").sum()
    else:
        out["unopened_contacts"] = 0
        out["opened_not_paid"] = 0

    ints = [
        "open_overdue_count",
        "overdue_cents",
        "max_days_overdue",
        "paid_history_count",
        "late_history_count",
        "contacts_unanswered",
        "open_claims",
        "small_arrears_count",
        "small_arrears_cents",
        "preferred_day_set",
        "unopened_contacts",
        "opened_not_paid",
    ]
    for col in ints:
        out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype("int64")
    for col in ("avg_days_late", "days_late_trend"):
        out[col] = out[col].fillna(0.0).astype(float)
    for col in (
        "partial_payment",
        "late_twice_in_a_row",
        "in_debt_assistance",
        "habit_change_day",
        "broken_arrangement",
    ):
        out[col] = out[col].astype("boolean").fillna(False).astype(bool)
    out["reversed_direct_debit"] = out["reversed_direct_debit"].fillna("").astype(str)
    # a debtor with nothing overdue has not left contacts unanswered, opened or not
    nothing_due = out["open_overdue_count"] == 0
    for col in ("contacts_unanswered", "unopened_contacts", "opened_not_paid"):
        out.loc[nothing_due, col] = 0
    return out.reset_index()


def signal_rows(creditor_id: str, frame: pd.DataFrame, today: dt.date) -> list[dict[str, Any]]:
    """Ledger rows for the signals that fired (a non-zero / true value)."""
    rows: list[dict[str, Any]] = []
    for col in SIGNALS:
        # a trend fires when lateness grows; every other signal when non-zero / true
        fires = frame[col] > 0 if col == "days_late_trend" else frame[col].astype(bool)
        fired = frame[fires]
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


def segment_changes(
    creditor_id: str, new: pd.DataFrame, previous: pd.DataFrame, today: dt.date
) -> list[dict[str, Any]]:
    """A change of segment is itself a signal (value "old -> new")."""
    if previous.empty:
        return []
    m = new.merge(previous, on="debtor_id", suffixes=("", "_before"))
    moved = m[m["segment"] != m["segment_before"]]
    return [
        {
            "creditor_id": creditor_id,
            "debtor_id": d,
            "signal": "segment_changed",
            "value": f"{b} -> {a}",
            "first_fired": today,
            "last_seen": today,
        }
        for d, a, b in zip(
            moved["debtor_id"], moved["segment"], moved["segment_before"], strict=True
        )
    ]


__all__ = [
    "LATE_GRACE_DAYS",
    "NO_MONEY_REASONS",
    "SIGNALS",
    "SMALL_ARREARS_CENTS",
    "compute_signals",
    "segment_changes",
    "signal_rows",
]
