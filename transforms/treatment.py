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
    #: a nudge before the due date: ``wait_days`` is then the days *before* due
    pre_due: bool = False


DEFAULT_LADDERS: dict[str, tuple[Step, ...]] = {
    "on_time": (
        Step("friendly_reminder", ("email", "sms", "letter"), 3),
        Step("second_reminder", ("email", "sms", "letter"), 10),
    ),
    "forgetful": (
        Step("pre_due_nudge", ("sms", "email"), 3, pre_due=True),
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


def upcoming_dossiers(invoices: pd.DataFrame, today: dt.date, days: int = 7) -> pd.DataFrame:
    """Per debtor with nothing overdue, the open item falling due soonest within ``days``
    (for a pre-due nudge): dossier, invoice ids, amount and days until due (negative
    ``max_days_overdue``)."""
    due = pd.to_datetime(invoices["due_date"])
    now = pd.Timestamp(today)
    is_open = invoices["open_cents"] > 0
    late = set(invoices.loc[is_open & (due < now), "debtor_id"])
    soon = invoices[is_open & (due >= now) & (due <= now + pd.Timedelta(days=days))]
    soon = soon[~soon["debtor_id"].isin(late)].sort_values(["debtor_id", "due_date", "invoice_id"])
    if soon.empty:
        return pd.DataFrame(
            columns=["debtor_id", "dossier", "invoice_ids", "overdue_cents", "max_days_overdue"]
        )
    first = soon.groupby("debtor_id", sort=False).first().reset_index()
    return pd.DataFrame(
        {
            "debtor_id": first["debtor_id"],
            "dossier": first["invoice_id"],
            "invoice_ids": [[i] for i in first["invoice_id"]],
            "overdue_cents": first["open_cents"],
            "max_days_overdue": (now - pd.to_datetime(first["due_date"])).dt.days,
        }
    )


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
    decisions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The contacts to plan now.

    ``debtors``: debtor_id, segment, has_email, has_phone, has_address, preferred_day,
    preferred_channel, failed_channels (set); optional: responsive_channel (where the
    debtor opens, clicks or pays), send_hour (a time they respond at), promise_until (a
    promise to pay: nothing before that date). ``dossiers``: overdue (and, for a
    pre-due nudge, upcoming) dossiers. ``history``: debtor_id, dossier, step, channel,
    status, at (the moment sent or planned). ``now`` is timezone-aware.
    ``decisions`` (optional) receives, per debtor, why a contact was or was not planned.
    """
    local_now = now.astimezone(AMS)
    today = local_now.date()
    week_ago = local_now - dt.timedelta(days=7)
    note = decisions if decisions is not None else {}
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
    # per debtor, once: the contacts of the last 7 days, the latest one, and where its
    # rows are (the frame of one debtor's rows only for the debtors that get that far:
    # a frame per debtor, and two comparisons on it, were most of a same-day plan)
    recent_by: dict[Any, int] = {}
    last_by: dict[Any, Any] = {}
    rows_of: dict[Any, Any] = {}
    if len(live):
        by = live.groupby("debtor_id")
        recent_by = (
            (live["at"] >= pd.Timestamp(week_ago)).groupby(live["debtor_id"]).sum().to_dict()
        )
        last_by = by["at"].max().to_dict()
        rows_of = by.indices
    too_soon = pd.Timestamp(local_now - dt.timedelta(days=policy.min_days_between_contacts))
    for r in d.itertuples(index=False):
        if r.debtor_id in held:
            note[r.debtor_id] = "on hold: no contact"
            continue
        ladder = list(policy.ladders.get(r.segment, ()))
        if not ladder:
            note[r.debtor_id] = f"segment {r.segment} has no contact steps"
            continue
        promise = getattr(r, "promise_until", None)
        if isinstance(promise, dt.date) and promise >= today:
            note[r.debtor_id] = f"promised to pay by {promise.isoformat()}: waiting"
            continue
        recent = int(recent_by.get(r.debtor_id, 0))
        if recent >= policy.contacts_per_week:
            note[r.debtor_id] = f"weekly cap reached ({recent} contacts in 7 days)"
            continue
        last = last_by.get(r.debtor_id)
        if last is not None and not pd.isna(last) and last > too_soon:
            note[r.debtor_id] = (
                f"a contact was sent or planned within {policy.min_days_between_contacts} days"
            )
            continue  # a contact went out (or waits to) only days ago: give the debtor room
        at = rows_of.get(r.debtor_id)
        mine = None if at is None else live.iloc[at]
        taken = hist.iloc[0:0] if mine is None else mine[mine["dossier"] == r.dossier]
        done_steps = list(dict.fromkeys(taken.sort_values("at")["step"]))
        upcoming = r.max_days_overdue < 0
        # the next rung not yet taken in this dossier (pre-due rungs only before due)
        rung = next(
            (s for s in ladder if s.name not in done_steps and (s.pre_due == upcoming)), None
        )
        if rung is None:
            note[r.debtor_id] = (
                "not yet due" if upcoming else "every step of the ladder has been taken"
            )
            continue
        if rung.pre_due:
            if -r.max_days_overdue > rung.wait_days:
                note[r.debtor_id] = f"due in {-r.max_days_overdue} days: nudge later"
                continue
        elif len(taken[~taken["step"].isin([s.name for s in ladder if s.pre_due])]) == 0:
            if r.max_days_overdue < rung.wait_days:
                note[r.debtor_id] = (
                    f"{int(r.max_days_overdue)} days overdue: first step after {rung.wait_days}"
                )
                continue
        else:
            last_at = taken["at"].max().tz_convert(AMS).date()
            if (today - last_at).days < rung.wait_days:
                note[r.debtor_id] = (
                    f"next step {rung.name} {rung.wait_days} days after the last"
                    f" ({last_at.isoformat()})"
                )
                continue
        channel = _choose_channel(rung, r)
        if channel is None:
            note[r.debtor_id] = f"no usable channel for {rung.name}"
            continue
        earliest = local_now
        pday = getattr(r, "preferred_day", None)
        if pday is not None and not pd.isna(pday) and today.day < int(pday):
            # no reminder before the debtor's preferred payment day this month
            earliest = dt.datetime.combine(today.replace(day=int(pday)), policy.send_hour, AMS)
        hour = _send_hour(r, policy)
        if hour > earliest.timetz().replace(tzinfo=None) and policy.window.is_open(earliest):
            # later today, at the hour this debtor tends to respond
            earliest = dt.datetime.combine(earliest.date(), hour, AMS)
        send_after = policy.window.next_open(earliest, preferred=hour)
        costs = 0
        if rung.costs and r.segment != "cant_pay":
            costs = collection_costs_cents(int(r.overdue_cents), policy.vat_rate)
        reasons = [
            f"segment {r.segment}",
            f"due in {-int(r.max_days_overdue)} days"
            if upcoming
            else f"{int(r.max_days_overdue)} days overdue",
            f"step {len(done_steps) + 1} of {len(ladder)}",
        ]
        if channel == getattr(r, "responsive_channel", None):
            reasons.append(f"{channel}: where this debtor responds")
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
                "reasons": reasons,
            }
        )
        note[r.debtor_id] = f"planned: {rung.name} by {channel} at {send_after.isoformat()}"
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


RESPONSE_EVENTS = frozenset({"opened", "clicked", "paid"})
FAILURE_EVENTS = frozenset({"bounced", "dropped", "failed", "undeliverable"})


def learn_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """What the debtor's own history says, per debtor: ``responsive_channel`` (where they
    open, click or pay most), ``send_hour`` (the median local hour of those responses,
    whole or half hours) and ``bounced_channels`` (channels whose last word was a bounce
    or failure). ``events``: debtor_id, channel, event, occurred_at (aware)."""
    cols = ["debtor_id", "responsive_channel", "send_hour", "bounced_channels"]
    if events.empty:
        return pd.DataFrame(columns=cols)
    ev = events.copy()
    ev["local"] = pd.to_datetime(ev["occurred_at"], utc=True).dt.tz_convert(AMS)
    resp = ev[ev["event"].isin(RESPONSE_EVENTS)]
    out = pd.DataFrame({"debtor_id": ev["debtor_id"].unique()}).set_index("debtor_id")
    if len(resp):
        counts = resp.groupby(["debtor_id", "channel"]).size().reset_index(name="n")
        counts = counts.sort_values(["debtor_id", "n", "channel"], ascending=[True, False, True])
        out["responsive_channel"] = counts.groupby("debtor_id")["channel"].first()
        minutes = resp["local"].dt.hour * 60 + resp["local"].dt.minute
        med = minutes.groupby(resp["debtor_id"]).median()
        hours = {d: dt.time(int(m) // 60, int(m) // 30 % 2 * 30) for d, m in med.items()}
        out["send_hour"] = [hours.get(d) for d in out.index]
    else:
        out["responsive_channel"] = None
        out["send_hour"] = None
    last = ev.sort_values("local").groupby(["debtor_id", "channel"])["event"].last().reset_index()
    bounced = last[last["event"].isin(FAILURE_EVENTS)].groupby("debtor_id")["channel"].agg(set)
    out["bounced_channels"] = [bounced.get(d, set()) for d in out.index]
    return out.reset_index()[cols]


def _send_hour(r: Any, policy: Policy) -> dt.time:
    """The debtor's own hour when known and allowed, else the creditor's."""
    h = getattr(r, "send_hour", None)
    if isinstance(h, dt.time) and policy.window.start <= h < policy.window.end:
        return h
    return policy.send_hour


def _choose_channel(step: Step, r: Any) -> str | None:
    available = {
        "email": bool(r.has_email),
        "sms": bool(r.has_phone),
        "letter": bool(r.has_address),
    }
    failed = r.failed_channels if isinstance(r.failed_channels, (set, frozenset)) else set()
    order = list(step.channels)
    # the channel where the debtor responds (opens, clicks, pays) comes first; a channel
    # they chose themselves comes before that; the legal letter stays a letter
    for wanted in (getattr(r, "responsive_channel", None), getattr(r, "preferred_channel", None)):
        if isinstance(wanted, str) and wanted in order and not step.costs:
            order.remove(wanted)
            order.insert(0, wanted)
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
    "learn_from_events",
    "plan_next_steps",
    "upcoming_dossiers",
]
