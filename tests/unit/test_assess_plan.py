import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.contact_window import AMS
from transforms.segments import assign_segments
from transforms.signals import compute_signals
from transforms.treatment import Policy, overdue_dossiers, plan_next_steps, upcoming_dossiers
from transforms.wik import MAXIMUM

TODAY = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS)


def inv(
    debtor: str, n: int, due: dt.date, amount: int, open_: int, paid: dt.date | None = None
) -> dict:
    return {
        "debtor_id": debtor,
        "invoice_id": f"{debtor}-{n}",
        "due_date": due,
        "amount_cents": amount,
        "open_cents": open_,
        "paid_date": paid,
    }


def history(debtor: str, late_days: list[int]) -> list[dict]:
    rows = []
    for i, late in enumerate(late_days):
        due = TODAY - dt.timedelta(days=30 * (len(late_days) - i) + 20)
        rows.append(inv(debtor, i, due, 70000, 0, due + dt.timedelta(days=late)))
    return rows


def portfolio() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rows = (
        history("ontime", [0, 1, 0, 0])
        + [inv("ontime", 9, TODAY - dt.timedelta(days=4), 70000, 70000)]
        + history("forget", [6, 9, 8, 7])
        + [inv("forget", 9, TODAY - dt.timedelta(days=5), 70000, 70000)]
        + history("cant", [20, 25])
        + [
            inv("cant", 8, TODAY - dt.timedelta(days=40), 70000, 60000),
            inv("cant", 9, TODAY - dt.timedelta(days=10), 70000, 70000),
        ]
        + history("wont", [40, 50])
        + [inv("wont", 9, TODAY - dt.timedelta(days=60), 70000, 70000)]
        + history("prot", [0])
        + [inv("prot", 9, TODAY - dt.timedelta(days=60), 70000, 70000)]
    )
    invoices = pd.DataFrame(rows)
    holds = pd.DataFrame({"debtor_id": ["prot"]})
    contacts = pd.DataFrame(
        {
            "debtor_id": ["wont", "wont"],
            "status": ["sent", "sent"],
            "sent_at": [NOW - dt.timedelta(days=9)] * 2,
        }
    )
    return invoices, holds, contacts


def test_segments_are_assigned_with_reasons() -> None:
    invoices, holds, contacts = portfolio()
    sig = compute_signals(
        pd.Series(["ontime", "forget", "cant", "wont", "prot"]), invoices, holds, contacts, TODAY
    )
    seg = assign_segments(sig).set_index("debtor_id")
    assert seg["segment"].to_dict() == {
        "ontime": "on_time",
        "forget": "forgetful",
        "cant": "cant_pay",
        "wont": "wont_pay",
        "prot": "protected",
    }
    assert {
        "signal": "partial_payment",
        "value": True,
        "rule": "partial_payment is true",
    } in seg.loc["cant", "reasons"]
    assert {r["signal"] for r in seg.loc["wont", "reasons"]} == {
        "max_days_overdue",
        "contacts_unanswered",
        "partial_payment",
    }
    s = sig.set_index("debtor_id")
    assert s.loc["forget", "avg_days_late"] == 7.5 and s.loc["cant", "open_overdue_count"] == 2


def test_late_twice_in_a_row_after_a_punctual_history() -> None:
    invoices = pd.DataFrame(history("x", [0, 0, 1, 0, 8, 9]))
    sig = compute_signals(
        pd.Series(["x"]), invoices, pd.DataFrame({"debtor_id": []}), pd.DataFrame(), TODAY
    )
    assert bool(sig.iloc[0]["late_twice_in_a_row"])


def _debtors(ids: list[str], segment: str = "wont_pay", **extra) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "debtor_id": d,
                "segment": segment,
                "has_email": True,
                "has_phone": True,
                "has_address": True,
                "preferred_day": None,
                "preferred_channel": None,
                "failed_channels": set(),
                **extra,
            }
            for d in ids
        ]
    )


NO_HISTORY = pd.DataFrame(columns=["debtor_id", "dossier", "step", "channel", "status", "at"])


def test_ladder_climbs_one_step_after_the_wait() -> None:
    invoices = pd.DataFrame([inv("d", 1, TODAY - dt.timedelta(days=30), 50000, 50000)])
    dossiers = overdue_dossiers(invoices, TODAY)
    first = plan_next_steps(_debtors(["d"]), dossiers, NO_HISTORY, set(), NOW, Policy())
    assert list(first["step"]) == ["second_reminder"] and first.iloc[0]["costs_cents"] == 0
    hist = pd.DataFrame(
        [
            {
                "debtor_id": "d",
                "dossier": "d-1",
                "step": "second_reminder",
                "channel": "email",
                "status": "sent",
                "at": NOW - dt.timedelta(days=3),
            }
        ]
    )
    assert plan_next_steps(
        _debtors(["d"]), dossiers, hist, set(), NOW, Policy()
    ).empty  # still waiting
    hist["at"] = NOW - dt.timedelta(days=8)
    nxt = plan_next_steps(_debtors(["d"]), dossiers, hist, set(), NOW, Policy())
    assert list(nxt["step"]) == ["wik_letter"] and list(nxt["channel"]) == ["letter"]
    assert nxt.iloc[0]["costs_cents"] == 7500  # 15% of EUR 500


def test_cant_pay_gets_no_costs_and_bounced_channels_drop_out() -> None:
    invoices = pd.DataFrame([inv("d", 1, TODAY - dt.timedelta(days=30), 50000, 50000)])
    deb = _debtors(["d"], segment="cant_pay", failed_channels={"email"})
    plan = plan_next_steps(deb, overdue_dossiers(invoices, TODAY), NO_HISTORY, set(), NOW, Policy())
    assert list(plan["step"]) == ["arrangement_offer"] and list(plan["channel"]) == ["letter"]


segments_st = st.sampled_from(["on_time", "forgetful", "cant_pay", "wont_pay", "protected"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            segments_st,
            st.integers(-10, 120),  # negative: not yet due (a pre-due nudge may apply)
            st.integers(1, 5_000_000),
            st.one_of(st.none(), st.integers(1, 28)),
            st.booleans(),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=12,
    ),
    st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31)),
)
def test_plans_respect_every_limit(rows: list, moment: dt.datetime) -> None:
    now = moment.replace(tzinfo=AMS)
    today = now.date()
    ids = [f"d{i}" for i in range(len(rows))]
    invoices = pd.DataFrame(
        [
            inv(d, 1, today - dt.timedelta(days=age), amt, amt)
            for d, (_, age, amt, *_r) in zip(ids, rows)
        ]
    )
    deb = pd.DataFrame(
        [
            {
                "debtor_id": d,
                "segment": seg,
                "has_email": True,
                "has_phone": False,
                "has_address": True,
                "preferred_day": pday,
                "preferred_channel": None,
                "failed_channels": set(),
            }
            for d, (seg, _a, _m, pday, _h, _c) in zip(ids, rows)
        ]
    )
    held = {d for d, r in zip(ids, rows) if r[4]}
    hist = pd.DataFrame(
        [
            {
                "debtor_id": d,
                "dossier": "other",
                "step": "x",
                "channel": "email",
                "status": "sent",
                "at": now - dt.timedelta(days=1),
            }
            for d, r in zip(ids, rows)
            for _ in range(r[5])
        ],
        columns=NO_HISTORY.columns,
    )
    policy = Policy(contacts_per_week=2)
    dossiers = pd.concat(
        [overdue_dossiers(invoices, today), upcoming_dossiers(invoices, today)], ignore_index=True
    )
    plan = plan_next_steps(deb, dossiers, hist, held, now, policy)
    by_id = dict(zip(ids, rows))
    for r in plan.itertuples():
        seg, age, amt, pday, is_held, recent = by_id[r.debtor_id]
        assert r.debtor_id not in held and seg != "protected"
        assert recent == 0  # the weekly cap and the gap between contacts (history is a day old)
        assert policy.window.is_open(r.send_after)  # never in quiet hours, Sundays or holidays
        sa = r.send_after.astimezone(AMS)
        if pday is not None and today.day < pday:
            assert sa.date() >= today.replace(day=pday)  # not before the preferred day
        assert r.costs_cents <= int(MAXIMUM * 100)
        assert r.costs_cents == 0 or r.step == "wik_letter"


# --------------------------------------------------------- learning, timing, pausing
def test_the_channel_and_hour_a_debtor_responds_at_are_learned() -> None:
    from transforms.treatment import learn_from_events

    at = lambda day, h, m=0: dt.datetime(2026, 11, day, h, m, tzinfo=AMS)  # noqa: E731
    events = pd.DataFrame(
        [
            {"debtor_id": "a", "channel": "sms", "event": "opened", "occurred_at": at(2, 18, 10)},
            {"debtor_id": "a", "channel": "sms", "event": "clicked", "occurred_at": at(9, 18, 40)},
            {"debtor_id": "a", "channel": "email", "event": "opened", "occurred_at": at(3, 8)},
            {"debtor_id": "a", "channel": "email", "event": "bounced", "occurred_at": at(10, 8)},
            {"debtor_id": "b", "channel": "email", "event": "delivered", "occurred_at": at(2, 9)},
        ]
    )
    got = learn_from_events(events).set_index("debtor_id")
    assert got.loc["a", "responsive_channel"] == "sms"
    assert got.loc["a", "send_hour"] == dt.time(18, 0)  # median 18:10, whole or half hours
    assert got.loc["a", "bounced_channels"] == {"email"}
    assert got.loc["b", "send_hour"] is None and got.loc["b", "bounced_channels"] == set()


def test_plans_follow_the_debtors_channel_and_hour() -> None:
    invoices = pd.DataFrame([inv("d", 1, TODAY - dt.timedelta(days=30), 50000, 50000)])
    deb = _debtors(["d"], responsive_channel="sms", send_hour=dt.time(18, 0))
    plan = plan_next_steps(deb, overdue_dossiers(invoices, TODAY), NO_HISTORY, set(), NOW, Policy())
    row = plan.iloc[0]
    assert row["channel"] == "sms" and "sms: where this debtor responds" in row["reasons"]
    assert row["send_after"].astimezone(AMS).time() == dt.time(18, 0)
    late = deb.assign(send_hour=dt.time(21, 0))  # outside the window: the creditor's hour
    evening = plan_next_steps(
        late, overdue_dossiers(invoices, TODAY), NO_HISTORY, set(), NOW, Policy()
    )
    assert evening.iloc[0]["send_after"] == NOW  # 10:00 is open: now


def test_a_promise_to_pay_pauses_and_decisions_say_why() -> None:
    invoices = pd.DataFrame(
        [
            inv("p", 1, TODAY - dt.timedelta(days=30), 50000, 50000),
            inv("h", 1, TODAY - dt.timedelta(days=30), 50000, 50000),
            inv("x", 1, TODAY - dt.timedelta(days=30), 50000, 50000),
        ]
    )
    deb = pd.concat(
        [
            _debtors(["p"], promise_until=TODAY + dt.timedelta(days=5)),
            _debtors(["h", "x"], promise_until=TODAY - dt.timedelta(days=1)),
        ]
    )
    why: dict[str, str] = {}
    plan = plan_next_steps(
        deb, overdue_dossiers(invoices, TODAY), NO_HISTORY, {"h"}, NOW, Policy(), why
    )
    assert list(plan["debtor_id"]) == ["x"]
    assert why["p"] == "promised to pay by 2026-11-28: waiting"
    assert why["h"] == "on hold: no contact"
    assert why["x"].startswith("planned: second_reminder by email")


def test_a_forgetful_debtor_gets_a_nudge_before_the_due_date_then_the_ladder() -> None:
    from transforms.treatment import upcoming_dossiers

    invoices = pd.DataFrame([inv("f", 1, TODAY + dt.timedelta(days=2), 50000, 50000)])
    deb = _debtors(["f"], segment="forgetful")
    plan = plan_next_steps(
        deb, upcoming_dossiers(invoices, TODAY), NO_HISTORY, set(), NOW, Policy()
    )
    assert list(plan["step"]) == ["pre_due_nudge"] and "due in 2 days" in plan.iloc[0]["reasons"]
    early = pd.DataFrame([inv("f", 1, TODAY + dt.timedelta(days=6), 50000, 50000)])
    why: dict[str, str] = {}
    assert plan_next_steps(
        deb, upcoming_dossiers(early, TODAY), NO_HISTORY, set(), NOW, Policy(), why
    ).empty
    assert why["f"] == "due in 6 days: nudge later"
    # after the due date the nudged dossier goes on with the first overdue step
    hist = pd.DataFrame(
        [
            {
                "debtor_id": "f",
                "dossier": "f-1",
                "step": "pre_due_nudge",
                "channel": "sms",
                "status": "sent",
                "at": NOW - dt.timedelta(days=6),
            }
        ]
    )
    overdue = pd.DataFrame([inv("f", 1, TODAY - dt.timedelta(days=4), 50000, 50000)])
    nxt = plan_next_steps(deb, overdue_dossiers(overdue, TODAY), hist, set(), NOW, Policy())
    assert list(nxt["step"]) == ["friendly_reminder"]
    # an on-time payer gets no nudge (no pre-due step in that ladder)
    assert plan_next_steps(
        _debtors(["f"], segment="on_time"),
        upcoming_dossiers(invoices, TODAY),
        NO_HISTORY,
        set(),
        NOW,
        Policy(),
    ).empty


def test_richer_signals_and_what_they_do_to_the_segment() -> None:
    from transforms.signals import segment_changes, signal_rows

    rows = (
        # lateness growing: 0,1,0 days then 9,12,15 days late; paying around the 1st, now the 20th
        [
            inv(
                "trend",
                i,
                TODAY - dt.timedelta(days=30 * (7 - i)),
                70000,
                0,
                TODAY - dt.timedelta(days=30 * (7 - i)) + dt.timedelta(days=late),
            )
            for i, late in enumerate([0, 1, 0, 9, 12, 15])
        ]
        + [
            inv("small", 1, TODAY - dt.timedelta(days=20), 3000, 3000),
            inv("small", 2, TODAY - dt.timedelta(days=50), 2500, 2500),
            inv("small", 3, TODAY + dt.timedelta(days=10), 9000, 9000),
        ]
        + [inv("rdd", 1, TODAY - dt.timedelta(days=10), 70000, 70000)]
        + [inv("broke", 1, TODAY - dt.timedelta(days=10), 70000, 70000)]
    )
    invoices = pd.DataFrame(rows)
    reversals = pd.DataFrame(
        [
            {
                "debtor_id": "rdd",
                "booking_date": TODAY - dt.timedelta(days=3),
                "return_reason": "AM04",
            }
        ]
    )
    arrangements = pd.DataFrame([{"debtor_id": "broke", "status": "broken"}])
    prefs = pd.DataFrame([{"debtor_id": "small", "preferred_day": 25}])
    events = pd.DataFrame(
        [
            {"debtor_id": "small", "message_id": "m1", "event": "delivered"},
            {"debtor_id": "small", "message_id": "m2", "event": "delivered"},
            {"debtor_id": "small", "message_id": "m2", "event": "opened"},
        ]
    )
    ids = pd.Series(["trend", "small", "rdd", "broke"])
    sig = compute_signals(
        ids,
        invoices,
        pd.DataFrame({"debtor_id": []}),
        pd.DataFrame(columns=["debtor_id", "status", "sent_at"]),
        TODAY,
        reversals=reversals,
        arrangements=arrangements,
        preferences=prefs,
        events=events,
    ).set_index("debtor_id")
    assert sig.loc["trend", "days_late_trend"] == 11.7 and sig.loc["trend", "habit_change_day"]
    assert (sig.loc["small", "small_arrears_count"], sig.loc["small", "small_arrears_cents"]) == (
        2,
        5500,
    )
    assert sig.loc["small", "open_claims"] == 3 and sig.loc["small", "preferred_day_set"] == 25
    assert (sig.loc["small", "unopened_contacts"], sig.loc["small", "opened_not_paid"]) == (1, 1)
    assert sig.loc["rdd", "reversed_direct_debit"] == "AM04"
    assert sig.loc["broke", "broken_arrangement"] and not sig.loc["rdd", "broken_arrangement"]
    seg = assign_segments(sig.reset_index()).set_index("debtor_id")
    assert seg.loc["rdd", "segment"] == "cant_pay" and seg.loc["broke", "segment"] == "cant_pay"
    assert {r["signal"] for r in seg.loc["rdd", "reasons"]} == {"reversed_direct_debit"}
    fired = {(r["debtor_id"], r["signal"]) for r in signal_rows("c", sig.reset_index(), TODAY)}
    assert ("trend", "days_late_trend") in fired and ("rdd", "days_late_trend") not in fired
    before = pd.DataFrame(
        [
            {"debtor_id": "rdd", "segment": "forgetful"},
            {"debtor_id": "broke", "segment": "cant_pay"},
        ]
    )
    moved = segment_changes("c", seg.reset_index()[["debtor_id", "segment"]], before, TODAY)
    assert [(m["debtor_id"], m["value"]) for m in moved] == [("rdd", "forgetful -> cant_pay")]
