"""The treatment policy: the next step per debtor, its channel and its moment.

Per segment a ladder of steps; a debtor climbs one step at a time, waiting
``wait_days`` after the previous step (or until ``min_days_overdue`` for the first).
One consolidated message per debtor and dossier (the dossier is the oldest overdue open
item), never one per invoice. Never: during a hold, above the weekly contact cap,
within a few days of another contact, before the debtor's preferred payment day of the
month, or outside the contact window.
Costs only on the WIK 14-day letter and never for "can't pay" debtors or under a hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from transforms.contact_window import AMS, ContactWindow
from transforms.wik import collection_costs_cents


@dataclass(frozen=True)
class Step:
    name: str
    channels: tuple[str, ...]
    wait_days: int = 7  # after the previous step; for the first: min days overdue
    costs: bool = False  # the WIK 14-day letter announces statutory costs


DEFAULT_LADDERS: dict[str, tuple[Step, ...]] = {
    "on_time": (
        Step("friendly_reminder", ("email", "sms", "letter"), 3),
        Step("second_reminder", ("email", "sms", "letter"), 10),
    ),
    "forgetful": (
        Step("friendly_reminder", ("sms", "email", "letter"), 1),
        Step("service_offer", ("email", "sms", "letter"), 7),
        Step("second_reminder", ("email", "sms", "letter"), 7),
    ),
    "cant_pay": (
        Step("arrangement_offer", ("email", "letter", "sms"), 1),
        Step("debt_help_referral", ("letter", "email"), 10),
    ),
    "wont_pay": (
        Step("second_reminder", ("email", "letter", "sms"), 1),
        Step("wik_letter", ("letter",), 7, costs=True),
        Step("handover", ("letter",), 21),
    ),
    "protected": (),
}


@dataclass(frozen=True)
class Policy:
    ladders: Mapping[str, Sequence[Step]] = field(default_factory=lambda: DEFAULT_LADDERS)
    contacts_per_week: int = 2
    min_days_between_contacts: int = 3
    window: ContactWindow = field(default_factory=ContactWindow)
    send_hour: dt.time = dt.time(9, 30)
    vat_rate: Decimal | None = None


PLAN_COLUMNS = [
    "debtor_id",
    "dossier",
    "step",
    "channel",
    "segment",
    "send_after",
    "amount_cents",
    "costs_cents",
    "invoice_ids",
    "reasons",
]


def overdue_dossiers(invoices: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    """Per debtor with overdue open items: dossier, invoice ids, sum and age."""
    inv = invoices[
        (invoices["open_cents"] > 0) & (pd.to_datetime(invoices["due_date"]) < pd.Timestamp(today))
    ]
    if inv.empty:
        return pd.DataFrame(
            columns=["debtor_id", "dossier", "invoice_ids", "overdue_cents", "max_days_overdue"]
        )
    inv = inv.sort_values(["debtor_id", "due_date", "invoice_id"])
    g = inv.groupby("debtor_id", sort=False)
    out = pd.DataFrame(
        {
            "dossier": g["invoice_id"].first(),
            "invoice_ids": g["invoice_id"].agg(list),
            "overdue_cents": g["open_cents"].sum(),
            "oldest_due": g["due_date"].min(),
        }
    ).reset_index()
    out["max_days_overdue"] = (pd.Timestamp(today) - pd.to_datetime(out["oldest_due"])).dt.days
    return out.drop(columns=["oldest_due"])


def plan_next_steps(
    debtors: pd.DataFrame,
    dossiers: pd.DataFrame,
    history: pd.DataFrame,
    held: set[str],
    now: dt.datetime,
    policy: Policy,
) -> pd.DataFrame:
    """The contacts to plan now.

    ``debtors``: debtor_id, segment, has_email, has_phone, has_address, preferred_day,
    preferred_channel, failed_channels (set). ``history``: debtor_id, dossier, step,
    channel, status, at (the moment sent or planned). ``now`` is timezone-aware.
    """
    local_now = now.astimezone(AMS)
    today = local_now.date()
    week_ago = local_now - dt.timedelta(days=7)
    hist = history.copy()
    if len(hist):
        hist["at"] = pd.to_datetime(hist["at"], utc=True)
    live = (
        hist[hist["status"].isin(["planned", "sending", "sent", "ambiguous"])]
        if len(hist)
        else hist
    )
    d = dossiers.merge(debtors, on="debtor_id", how="inner")
    rows: list[dict[str, Any]] = []
    by_debtor = {k: v for k, v in live.groupby("debtor_id")} if len(live) else {}
    for r in d.itertuples(index=False):
        if r.debtor_id in held:
            continue
        ladder = list(policy.ladders.get(r.segment, ()))
        if not ladder:
            continue
        mine = by_debtor.get(r.debtor_id)
        recent = 0 if mine is None else int((mine["at"] >= pd.Timestamp(week_ago)).sum())
        if recent >= policy.contacts_per_week:
            continue
        if (
            mine is not None
            and (
                mine["at"]
                > pd.Timestamp(local_now - dt.timedelta(days=policy.min_days_between_contacts))
            ).any()
        ):
            continue  # a contact went out (or waits to) only days ago: give the debtor room
        taken = hist.iloc[0:0] if mine is None else mine[mine["dossier"] == r.dossier]
        done_steps = list(dict.fromkeys(taken.sort_values("at")["step"]))
        # the next rung not yet taken in this dossier
        rung = next((s for s in ladder if s.name not in done_steps), None)
        if rung is None:
            continue
        if len(taken) == 0:
            if r.max_days_overdue < rung.wait_days:
                continue
        else:
            last_at = taken["at"].max().tz_convert(AMS).date()
            if (today - last_at).days < rung.wait_days:
                continue
        channel = _choose_channel(rung, r)
        if channel is None:
            continue
        earliest = local_now
        pday = getattr(r, "preferred_day", None)
        if pday is not None and not pd.isna(pday) and today.day < int(pday):
            # no reminder before the debtor's preferred payment day this month
            earliest = dt.datetime.combine(today.replace(day=int(pday)), policy.send_hour, AMS)
        send_after = policy.window.next_open(earliest, preferred=policy.send_hour)
        costs = 0
        if rung.costs and r.segment != "cant_pay":
            costs = collection_costs_cents(int(r.overdue_cents), policy.vat_rate)
        rows.append(
            {
                "debtor_id": r.debtor_id,
                "dossier": r.dossier,
                "step": rung.name,
                "channel": channel,
                "segment": r.segment,
                "send_after": send_after,
                "amount_cents": int(r.overdue_cents),
                "costs_cents": costs,
                "invoice_ids": list(r.invoice_ids),
                "reasons": [
                    f"segment {r.segment}",
                    f"{int(r.max_days_overdue)} days overdue",
                    f"step {len(done_steps) + 1} of {len(ladder)}",
                ],
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def _choose_channel(step: Step, r: Any) -> str | None:
    available = {
        "email": bool(r.has_email),
        "sms": bool(r.has_phone),
        "letter": bool(r.has_address),
    }
    failed = r.failed_channels if isinstance(r.failed_channels, (set, frozenset)) else set()
    order = list(step.channels)
    pref = getattr(r, "preferred_channel", None)
    if isinstance(pref, str) and pref in order and not step.costs:
        order.remove(pref)
        order.insert(0, pref)
    for ch in order:
        if available.get(ch) and ch not in failed:
            return ch
    return None


__all__ = [
    "DEFAULT_LADDERS",
    "PLAN_COLUMNS",
    "Policy",
    "Step",
    "overdue_dossiers",
    "plan_next_steps",
]
