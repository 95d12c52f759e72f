"""``vangnet explain``: one debtor as a caseworker would write it down.

Everything shown comes from the ledger and the same planner the cycle runs: the
segment with the signals and values behind it (and since when), holds, promises and
preferences, what the debtor's own history taught (channel, hour), what is planned, or
why nothing is. Personal data stays out: the debtor appears by number and initials.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select

from flows import stages
from flows.context import Ctx
from ledger import schema as s
from transforms import treatment
from transforms.masking import mask_name
from transforms.partition import bucket_of
from transforms.segments import LABELS_NL

SIGNAL_TEXT = {
    "open_overdue_count": "overdue items",
    "overdue_cents": "arrears",
    "max_days_overdue": "days past the oldest due date",
    "paid_history_count": "payments in the last year",
    "late_history_count": "of which late",
    "avg_days_late": "average days late",
    "late_twice_in_a_row": "a punctual payer, late twice in a row",
    "partial_payment": "paid part",
    "contacts_unanswered": "reminders without a response",
    "in_debt_assistance": "in debt assistance",
}


def _euro(cents: int) -> str:
    return f"EUR {cents / 100:,.2f}"


def _value(signal: str, v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if signal.endswith("_cents"):
        return _euro(int(v))
    return str(v)


def explain(ctx: Ctx, debtor_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        d = conn.execute(
            select(s.debtors.c.name).where(
                s.debtors.c.creditor_id == ctx.creditor_id, s.debtors.c.debtor_id == debtor_id
            )
        ).first()
        if d is None:
            raise LookupError(f"no debtor {debtor_id} for {ctx.creditor_id}")
        segs = conn.execute(
            select(
                s.segments.c.as_of, s.segments.c.segment, s.segments.c.score, s.segments.c.reasons
            )
            .where(s.segments.c.creditor_id == ctx.creditor_id, s.segments.c.debtor_id == debtor_id)
            .order_by(s.segments.c.as_of.desc())
        ).all()
        last_seen = conn.execute(
            select(func.max(s.signals.c.last_seen)).where(
                s.signals.c.creditor_id == ctx.creditor_id, s.signals.c.debtor_id == debtor_id
            )
        ).scalar()
        sigs = conn.execute(
            select(s.signals.c.signal, s.signals.c.value, s.signals.c.first_fired).where(
                s.signals.c.creditor_id == ctx.creditor_id,
                s.signals.c.debtor_id == debtor_id,
                s.signals.c.last_seen == last_seen,
            )
        ).all()
        items = conn.execute(
            select(
                s.invoices.c.invoice_id,
                s.invoices.c.due_date,
                s.invoices.c.open_cents,
                s.invoices.c.costs_cents,
            )
            .where(
                s.invoices.c.creditor_id == ctx.creditor_id,
                s.invoices.c.debtor_id == debtor_id,
                s.invoices.c.open_cents > 0,
            )
            .order_by(s.invoices.c.due_date)
        ).all()
        holds = conn.execute(
            select(s.holds.c.kind, s.holds.c.starts_on, s.holds.c.reason).where(
                s.holds.c.creditor_id == ctx.creditor_id,
                s.holds.c.debtor_id == debtor_id,
                s.holds.c.lifted_at.is_(None),
            )
        ).all()
        pref = conn.execute(
            select(s.preferences).where(
                s.preferences.c.creditor_id == ctx.creditor_id,
                s.preferences.c.debtor_id == debtor_id,
            )
        ).first()
        contacts = conn.execute(
            select(
                s.contacts.c.step,
                s.contacts.c.channel,
                s.contacts.c.status,
                func.coalesce(s.contacts.c.sent_at, s.contacts.c.send_after).label("at"),
            )
            .where(
                and_(
                    s.contacts.c.creditor_id == ctx.creditor_id, s.contacts.c.debtor_id == debtor_id
                )
            )
            .order_by(func.coalesce(s.contacts.c.sent_at, s.contacts.c.send_after))
        ).all()
    n = ctx.cfg.policy.partitions
    decision = None
    learned: dict[str, Any] = {}
    inputs = stages.plan_inputs(ctx, bucket_of(debtor_id) % n, n)
    if inputs is not None:
        frame_, dossiers, hist, held = inputs
        mine = frame_[frame_["debtor_id"] == debtor_id]
        if len(mine):
            row = mine.iloc[0]
            learned = {
                "responsive_channel": row.get("responsive_channel")
                if isinstance(row.get("responsive_channel"), str)
                else None,
                "send_hour": row["send_hour"].isoformat(timespec="minutes")
                if isinstance(row.get("send_hour"), dt.time)
                else None,
            }
            why: dict[str, str] = {}
            treatment.plan_next_steps(
                mine,
                dossiers[dossiers["debtor_id"] == debtor_id],
                hist,
                held,
                ctx.now,
                stages._policy(ctx),
                why,
            )
            decision = why.get(debtor_id, "nothing is open or due: no contact needed")
    current = segs[0] if segs else None
    since = None
    for row in segs:
        if current is not None and row.segment == current.segment:
            since = row.as_of
        else:
            break
    out = {
        "debtor": debtor_id,
        "initials": mask_name(d.name),
        "as_of": current.as_of.isoformat() if current else None,
        "segment": current.segment if current else None,
        "segment_nl": LABELS_NL.get(current.segment, current.segment) if current else None,
        "segment_since": since.isoformat() if since else None,
        "previous_segment": next(
            (r.segment for r in segs if current and r.segment != current.segment), None
        ),
        "score": current.score if current else None,
        "reasons": current.reasons if current else [],
        "signals": [
            {"signal": r.signal, "value": r.value, "since": r.first_fired.isoformat()} for r in sigs
        ],
        "open_items": [
            {
                "invoice": r.invoice_id,
                "due": r.due_date.isoformat(),
                "open_cents": r.open_cents,
                "costs_cents": r.costs_cents,
            }
            for r in items
        ],
        "holds": [
            {"kind": h.kind, "since": h.starts_on.isoformat(), "reason": h.reason} for h in holds
        ],
        "preferences": {
            "preferred_day": pref.preferred_day if pref else None,
            "channel": pref.channel if pref else None,
            "promise_until": pref.promise_until.isoformat()
            if pref and pref.promise_until
            else None,
        },
        "learned": learned,
        "contacts": [
            {"step": c.step, "channel": c.channel, "status": c.status, "at": c.at.isoformat()}
            for c in contacts
        ],
        "next": decision,
    }
    out["note"] = note(out)
    return out


def note(e: dict[str, Any]) -> str:
    """The caseworker's note."""
    lines = [f"Debtor {e['debtor']} ({e['initials']}), as assessed on {e['as_of'] or '(not yet)'}."]
    total = sum(i["open_cents"] for i in e["open_items"])
    if e["open_items"]:
        oldest = e["open_items"][0]
        costs = sum(i["costs_cents"] for i in e["open_items"])
        lines.append(
            f"Open: {len(e['open_items'])} item(s), {_euro(total)} in all"
            + (f" (of which {_euro(costs)} collection costs)" if costs else "")
            + f"; the oldest ({oldest['invoice']}) fell due on {oldest['due']}."
        )
    else:
        lines.append("Nothing is open.")
    for h in e["holds"]:
        lines.append(
            f"On hold since {h['since']}: {h['reason']} ({h['kind']}). No contact, no costs."
        )
    if e["segment"]:
        since = f" since {e['segment_since']}" if e["segment_since"] else ""
        prev = e["previous_segment"]
        before = f" (before that: {LABELS_NL.get(prev, prev)})" if prev else ""
        lines.append(f"Segment: {e['segment_nl']} ({e['segment']}){since}{before}.")
        why = [
            f"{SIGNAL_TEXT.get(r['signal'], r['signal'])}: "
            f"{_value(r['signal'], r['value'])} ({r['rule']})"
            for r in e["reasons"]
        ]
        if why:
            lines.append("Because: " + "; ".join(why) + ".")
    p = e["preferences"]
    prefs = []
    if p["preferred_day"]:
        prefs.append(f"prefers to pay around day {p['preferred_day']} of the month")
    if p["channel"]:
        prefs.append(f"asked for {p['channel']}")
    if p["promise_until"]:
        prefs.append(f"promised to pay by {p['promise_until']}")
    if e["learned"].get("responsive_channel"):
        prefs.append(f"responds mostly to {e['learned']['responsive_channel']}")
    if e["learned"].get("send_hour"):
        prefs.append(f"usually around {e['learned']['send_hour']}")
    if prefs:
        lines.append("Preferences: " + ", ".join(prefs) + ".")
    sent = [c for c in e["contacts"] if c["status"] == "sent"]
    if sent:
        last = sent[-1]
        lines.append(
            f"Contact: {len(sent)} message(s) sent, the last one {last['step']} by "
            f"{last['channel']} on {last['at'][:10]}."
        )
    planned = [c for c in e["contacts"] if c["status"] == "planned"]
    if planned:
        lines.append(
            "Planned: "
            + "; ".join(
                f"{c['step']} by {c['channel']} at {c['at'][:16].replace('T', ' ')}"
                for c in planned
            )
            + "."
        )
    elif e["next"]:
        lines.append(f"Next: {e['next']}.")
    return "\n".join(lines)


__all__ = ["explain", "note"]
