import datetime as dt
import json

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.schuldenknooppunt import InMessage, MessageError, Proposal, canonical_type
from connectors.schuldenknooppunt import soap_schema as schema
from connectors.schuldenknooppunt.messages import ClaimLine, Reply, Unreadable
from connectors.schuldenknooppunt.portal import row_to_message
from transforms import debt_help as rules
from transforms.spreadsheet import safe_cell

D = dt.date(2026, 11, 24)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (dt.date(2026, 11, 24), 10, dt.date(2026, 12, 8)),  # two weekends
        (dt.date(2026, 12, 18), 10, dt.date(2027, 1, 5)),  # Christmas, Boxing Day, New Year
        (dt.date(2027, 4, 23), 3, dt.date(2027, 4, 29)),  # King's Day (27 April, a Tuesday)
        (dt.date(2027, 5, 3), 3, dt.date(2027, 5, 10)),  # Liberation Day (every year), Ascension
    ],
)
def test_answer_deadline_counts_dutch_working_days(start, days, due) -> None:  # type: ignore[no-untyped-def]
    assert rules.add_working_days(start, days) == due


def test_extra_closed_days_push_the_deadline() -> None:
    assert rules.add_working_days(D, 1, [dt.date(2026, 11, 25)]) == dt.date(2026, 11, 26)


@pytest.mark.parametrize(
    "spelled",
    ["Schuldregeling beëindigd", "SchuldregelingBeeindigd", "schuldregeling_beeindigd"],
)
def test_message_types_are_read_however_they_are_spelled(spelled: str) -> None:
    assert canonical_type(spelled) == "schuldregeling_beeindigd"


def test_an_unknown_message_type_is_an_error() -> None:
    with pytest.raises(MessageError, match="unknown message type"):
        canonical_type("Aanmaning")


DEBTORS = pd.DataFrame(
    [
        {
            "debtor_id": "R1",
            "name": "Jan de Vries",
            "postcode": "1234 AB",
            "street": "Dorpsstraat 5",
        },
        {
            "debtor_id": "R2",
            "name": "Anna de Vries",
            "postcode": "1234 AB",
            "street": "Dorpsstraat 5",
        },
        {"debtor_id": "R3", "name": "Piet Bakker", "postcode": "9999 ZZ", "street": "Laan 12a"},
    ]
)


def _msg(**kw) -> InMessage:  # type: ignore[no-untyped-def]
    return InMessage(message_id="M1", type="saldoverzoek", sent_on=D, **kw)


def test_the_debtor_is_found_by_number_then_address_never_guessed() -> None:
    assert rules.resolve_debtor(_msg(client_number="R3"), DEBTORS).debtor_id == "R3"
    assert rules.resolve_debtor(_msg(client_number="R9"), DEBTORS).how == "unknown"
    by_address = rules.resolve_debtor(_msg(postcode="9999zz", house_number="12a"), DEBTORS)
    assert (by_address.debtor_id, by_address.how) == ("R3", "address")
    two = rules.resolve_debtor(_msg(postcode="1234 AB", house_number="5"), DEBTORS)
    assert two.how == "ambiguous" and two.debtor_id is None and "R1, R2" in (two.note or "")
    named = rules.resolve_debtor(
        _msg(postcode="1234 AB", house_number="5", name="Anna de Vries"), DEBTORS
    )
    assert named.debtor_id == "R2"


def test_one_lookup_serves_a_round_and_indexes_postcodes_only_when_asked() -> None:
    lookup = rules.DebtorLookup(DEBTORS)
    assert rules.resolve_debtor(_msg(client_number="R1"), lookup).debtor_id == "R1"
    assert lookup._by_postcode is None  # a client number needs no address index
    for postcode in ("9999 ZZ", "9999zz", " 9999-ZZ "):  # normalised on both sides
        found = rules.resolve_debtor(_msg(postcode=postcode, house_number="12"), lookup)
        assert (found.debtor_id, found.how) == ("R3", "address")
    assert rules.resolve_debtor(_msg(postcode="1111 AA", house_number="1"), lookup).how == "unknown"


ITEMS = pd.DataFrame(
    [
        {
            "invoice_id": "F2026-0012",
            "invoice_date": dt.date(2026, 9, 1),
            "amount_cents": 70000,
            "open_cents": 74000,
            "costs_cents": 4000,
            "interest_cents": 0,
        },
        {
            "invoice_id": "F2026-0013",
            "invoice_date": dt.date(2026, 10, 1),
            "amount_cents": 70000,
            "open_cents": 20000,
            "costs_cents": 0,
            "interest_cents": 150,
        },
        {
            "invoice_id": "F2025-0013",
            "invoice_date": dt.date(2025, 10, 1),
            "amount_cents": 70000,
            "open_cents": 70000,
            "costs_cents": 0,
            "interest_cents": 0,
        },
        {
            "invoice_id": "F2026-0001",
            "invoice_date": dt.date(2026, 1, 1),
            "amount_cents": 70000,
            "open_cents": 0,
            "costs_cents": 0,
            "interest_cents": 0,
        },
    ]
)


def test_saldo_answer_lists_every_open_claim_with_its_parts() -> None:
    ans = rules.saldo_answer("R1", ITEMS, ["f2026 0012", "F2O26-OO13", "X-77"], "huur")
    assert [c.invoice_number for c in ans.claims] == ["F2025-0013", "F2026-0012", "F2026-0013"]
    first = next(c for c in ans.claims if c.invoice_number == "F2026-0012")
    assert (first.principal_cents, first.costs_cents, first.original_cents) == (70000, 4000, 70000)
    second = next(c for c in ans.claims if c.invoice_number == "F2026-0013")
    assert (second.principal_cents, second.interest_cents) == (19850, 150)
    assert first.shv_invoice_number == "f2026 0012"
    assert second.shv_invoice_number == "F2O26-OO13"  # OCR-ish noise, one fit
    assert ans.not_found == ["X-77"] and not ans.needs_review
    assert "X-77" in (ans.note or "")


def test_a_counsellor_number_that_fits_two_claims_goes_to_review() -> None:
    ans = rules.saldo_answer("R1", ITEMS, ["13"], "huur")  # 2026-0013 or 2025-0013?
    assert ans.needs_review and ans.ambiguous == ["13"]


@pytest.mark.parametrize(
    ("proposal", "total", "expected"),
    [
        (Proposal(percentage=35, term_months=18), 100_000, True),
        (Proposal(percentage=20, term_months=18), 100_000, None),
        (Proposal(amount_cents=30_000, term_months=18), 100_000, True),  # 30% by amount
        (Proposal(percentage=90, term_months=48), 100_000, None),  # too long
        (Proposal(percentage=1, term_months=12), 20_000, True),  # small claim
        (None, 100_000, None),
    ],
)
def test_a_proposal_is_accepted_within_policy_or_goes_to_a_person(
    proposal, total, expected
) -> None:  # type: ignore[no-untyped-def]
    policy = rules.ProposalPolicy(accept_min_percentage=30, accept_below_cents=25_000)
    accept, why = rules.decide_proposal(proposal, total, policy)
    assert accept is expected and why


def test_instalments_add_up_and_fall_monthly() -> None:
    plan = rules.instalments(
        100_001, Proposal(percentage=35, term_months=3, first_payment=dt.date(2027, 1, 31)), D
    )
    assert [p["due_on"] for p in plan] == ["2027-01-28", "2027-02-28", "2027-03-28"]
    assert sum(p["amount_cents"] for p in plan) == 35_000


def test_wgs_needs_the_threshold_and_all_four_preconditions() -> None:
    items = pd.DataFrame(
        [
            {"debtor_id": d, "due_date": D - dt.timedelta(days=days), "open_cents": 50_000}
            for d, days in [("A", 45), ("B", 45), ("C", 10), ("D", 45), ("E", 45), ("F", 45)]
        ]
    )
    contacts = pd.DataFrame(
        [
            {"debtor_id": "A", "channel": "letter", "status": "sent"},
            {"debtor_id": "A", "channel": "sms", "status": "sent"},
            {"debtor_id": "B", "channel": "letter", "status": "sent"},  # no personal try
            {"debtor_id": "C", "channel": "email", "status": "sent"},  # not late enough
            {"debtor_id": "D", "channel": "email", "status": "sent"},  # in debt help
            {"debtor_id": "E", "channel": "email", "status": "sent"},  # refused sharing
            {"debtor_id": "F", "channel": "email", "status": "sent"},
        ]
    )
    earlier = pd.DataFrame(
        [{"debtor_id": "F", "signal_date": D - dt.timedelta(days=20), "arrears_cents": 50_000}]
    )
    out = rules.wgs_candidates(D, items, contacts, {"D"}, {"E"}, earlier, rules.WgsPolicy())
    assert list(out["debtor_id"]) == ["A"]  # F: same arrears signalled 20 days ago
    assert out.iloc[0]["days_late"] == 45 and all(out.iloc[0]["preconditions"].values())


def _wgs_one_by_one(today, items, contacts, held, refused, earlier, policy):  # type: ignore[no-untyped-def]
    """The rule as first written, a debtor at a time (slow at scale; the reference)."""
    if items.empty:
        return []
    due = pd.to_datetime(items["due_date"]).dt.date
    overdue = items[(due < today) & (items["open_cents"] > 0)].assign(due=due)
    if overdue.empty:
        return []
    per = overdue.groupby("debtor_id").agg(arrears=("open_cents", "sum"), arisen=("due", "min"))
    sent = contacts[contacts["status"] == "sent"]
    personal = set(sent[sent["channel"].isin(policy.personal_channels)]["debtor_id"])
    written = set(sent[sent["channel"].isin(policy.written_channels)]["debtor_id"])
    pointed = set(sent["debtor_id"]) if policy.messages_point_to_help else set()
    last = earlier.sort_values("signal_date").groupby("debtor_id").last()
    out = []
    for debtor, r in per.iterrows():
        days = (today - r["arisen"]).days
        if days < policy.min_days_late or r["arrears"] < policy.min_arrears_cents:
            continue
        if debtor in held or debtor in refused:
            continue
        if not (debtor in personal and debtor in pointed and debtor in written):
            continue
        if debtor in last.index:
            prev = last.loc[debtor]
            if (today - prev["signal_date"]).days < policy.repeat_after_days and int(
                r["arrears"]
            ) <= int(prev["arrears_cents"]):
                continue
        out.append((debtor, int(r["arrears"]), r["arisen"], days))
    return out


_who = st.sampled_from(["A", "B", "C", "D"])


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            _who, st.sampled_from([-1, 0, 1, 29, 30, 31, 95]), st.sampled_from([0, 1, 500, 1_000])
        ),
        min_size=1,
        max_size=8,
    ),
    contacts=st.lists(
        st.tuples(
            _who,
            st.sampled_from(["sms", "email", "letter", "phone", "portal"]),
            st.sampled_from(["sent", "sent", "failed"]),
        ),
        max_size=10,
    ),
    held=st.sets(_who, max_size=1),
    refused=st.sets(_who, max_size=1),
    earlier=st.lists(
        st.tuples(
            _who, st.sampled_from([0, 89, 90, 91]), st.sampled_from([0, 1_000, 1_500, 3_000])
        ),
        max_size=6,
    ),
    point=st.booleans(),
)
# the edges: signalled exactly repeat_after_days ago; an item due today is not late yet
@example([("A", 31, 1_000)], [("A", "email", "sent")], set(), set(), [("A", 90, 1_000)], True)
@example([("A", 31, 1_000), ("A", 0, 500)], [("A", "email", "sent")], set(), set(), [], True)
def test_wgs_selection_a_column_at_a_time_is_the_rule_a_debtor_at_a_time(
    items, contacts, held, refused, earlier, point
) -> None:  # type: ignore[no-untyped-def]
    items_f = pd.DataFrame(
        [(d, D - dt.timedelta(days=n), c) for d, n, c in items],
        columns=["debtor_id", "due_date", "open_cents"],
    )
    contacts_f = pd.DataFrame(contacts, columns=["debtor_id", "channel", "status"])
    earlier_f = pd.DataFrame(
        [(d, D - dt.timedelta(days=n), c) for d, n, c in earlier],
        columns=["debtor_id", "signal_date", "arrears_cents"],
    )
    policy = rules.WgsPolicy(messages_point_to_help=point)
    got = rules.wgs_candidates(D, items_f, contacts_f, held, refused, earlier_f, policy)
    assert [
        (r.debtor_id, r.arrears_cents, r.arisen_on, r.days_late) for r in got.itertuples()
    ] == _wgs_one_by_one(D, items_f, contacts_f, held, refused, earlier_f, policy)
    assert all(all(p.values()) for p in got["preconditions"])


# ----------------------------------------------------------------- wire safety
def test_entity_declarations_in_a_hub_response_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>'
    )
    with pytest.raises(MessageError, match="DOCTYPE/ENTITY"):
        schema.parse_messages(bomb)


def test_the_schema_round_trips_a_message_and_reads_back_an_answer() -> None:
    reply = Reply(
        reply_id="r1",
        type="betaalvoorstel_antwoord",
        in_reply_to="BV-1",
        creditor_code="WOONCORP",
        client_number="R1",
        accepted=True,
        reason="binnen beleid",
        created_on=D,
    )
    xml = schema.send_request("WOONCORP", reply)
    assert b"<skn:Akkoord>true</skn:Akkoord>" in xml and b"Betaalvoorstel antwoord" in xml
    ns = schema.DEFAULT_NAMESPACE
    resp = (
        f'<soap:Envelope xmlns:soap="{schema.SOAP_ENV}" xmlns:skn="{ns}"><soap:Body>'
        "<skn:OphalenBerichtenResponse>"
        "<skn:Bericht><skn:BerichtId>B1</skn:BerichtId><skn:BerichtType>Betaalvoorstel</skn:BerichtType>"
        "<skn:Datum>2026-11-24</skn:Datum><skn:Voorstel><skn:Percentage>37,5</skn:Percentage>"
        "<skn:Looptijd>18</skn:Looptijd></skn:Voorstel></skn:Bericht>"
        "<skn:Bericht><skn:BerichtId>B2</skn:BerichtId><skn:BerichtType>Onbekend</skn:BerichtType>"
        "<skn:Datum>2026-11-24</skn:Datum></skn:Bericht>"
        "</skn:OphalenBerichtenResponse></soap:Body></soap:Envelope>"
    ).encode()
    good, bad = schema.parse_messages(resp)
    assert isinstance(good, InMessage) and good.proposal == Proposal(37.5, None, 18, None)
    assert (
        isinstance(bad, Unreadable)
        and bad.message_id == "B2"
        and "unknown message type" in bad.error
    )


def test_a_bsn_is_kept_only_where_allowed() -> None:
    m = row_to_message(
        {
            "BerichtId": "K1",
            "BerichtType": "Kennisgeving Publiek",
            "Datum": "24-11-2026",
            "BSN": "111222333",
        }
    )
    assert m.sent_on == D and m.to_json()["bsn"] is None
    assert m.to_json(keep_bsn=True)["bsn"] == "111222333"
    assert InMessage.from_json(m.to_json()) == InMessage(**{**m.__dict__, "bsn": None})


@pytest.mark.parametrize("cell", ["=1+1", "+31612345678", "-5", "@SUM(A1)", "\t=x"])
def test_spreadsheet_formulas_are_neutralised_in_exports(cell: str) -> None:
    assert safe_cell(cell).startswith("'")
    assert safe_cell("Dorpsstraat 5") == "Dorpsstraat 5"


def test_an_arrangement_is_completed_kept_or_broken() -> None:
    plan = rules.instalments(
        30_000, Proposal(amount_cents=30_000, term_months=3, first_payment=dt.date(2027, 1, 1)), D
    )
    assert rules.arrangement_status(plan, 30_000, dt.date(2027, 1, 2)) == "completed"
    assert rules.arrangement_status(plan, 0, dt.date(2027, 1, 20)) == "active"  # within grace
    assert rules.arrangement_status(plan, 10_000, dt.date(2027, 2, 20)) == "active"  # in grace
    assert rules.arrangement_status(plan, 0, dt.date(2027, 2, 1)) == "broken"
    assert rules.arrangement_status(plan, 10_000, dt.date(2027, 3, 31)) == "broken"


# ------------------------------------------------------------- the message suite
MESSAGE_CASES = {
    "skn.date_plausible": {"sent_on": dt.date(2026, 11, 26)},  # the 25th just passes
    "skn.client_identified": {"client_number": None},
    "skn.proposal_sane": {"percentage": 101.0},
    "skn.bsn_valid": {"bsn": "111222334"},
}


@pytest.mark.parametrize("rule", sorted(MESSAGE_CASES))
def test_each_message_rule_breaks_and_passes(rule: str) -> None:
    from transforms import validation as v

    good = {
        "message_id": "ok",
        "type": "betaalvoorstel",
        "sent_on": dt.date(2026, 11, 25),
        "client_number": "R1",
        "postcode": None,
        "house_number": None,
        "percentage": 100.0,
        "term_months": 120,
        "bsn": "111222333",
    }
    bad = {**good, "message_id": "bad", **MESSAGE_CASES[rule]}
    df = pd.DataFrame([good, bad])
    out = v.Validator().validate(
        "skn_messages", df, v.message_rules(), "message_id", v.derive_message_checks(df, D)
    )
    assert list(out.valid["message_id"]) == ["ok"]
    assert [f["rule"] for f in out.failures["bad"]] == [rule]
    if rule == "skn.bsn_valid":
        assert out.failures["bad"][0]["value"] == "*********"  # never shown


def test_a_statusbericht_needs_no_client_and_duplicates_are_caught() -> None:
    from transforms import validation as v

    row = {
        "message_id": "S1",
        "type": "statusbericht_shv",
        "sent_on": D,
        "client_number": None,
        "postcode": None,
        "house_number": None,
        "percentage": None,
        "term_months": None,
        "bsn": None,
    }
    df = pd.DataFrame([row, row])
    out = v.Validator().validate(
        "skn_messages", df, v.message_rules(), "message_id", v.derive_message_checks(df, D)
    )
    assert {f["rule"] for fs in out.failures.values() for f in fs} == {"skn.id_unique"}


def test_messages_and_replies_are_stored_as_json_of_every_field_and_read_back() -> None:
    msg = InMessage(
        message_id="BV-1",
        type="betaalvoorstel",
        sent_on=D,
        client_number="R1",
        birth_date=dt.date(1980, 2, 29),
        bsn="111222333",
        invoice_numbers=["F1", "F2"],
        proposal=Proposal(35.0, 120_00, 18, dt.date(2027, 1, 1)),
    )
    stored = msg.to_json(keep_bsn=True)
    assert json.loads(json.dumps(stored)) == stored  # plain JSON throughout
    assert stored["proposal"] == {
        "percentage": 35.0,
        "amount_cents": 12000,
        "term_months": 18,
        "first_payment": "2027-01-01",
    }
    assert (stored["birth_date"], stored["sent_on"]) == ("1980-02-29", "2026-11-24")
    assert set(stored) == set(msg.__dict__)  # every field, none more
    assert InMessage.from_json(stored) == msg
    stored["invoice_numbers"].append("F3")  # the stored form is a copy
    assert msg.invoice_numbers == ["F1", "F2"]
    reply = Reply(
        reply_id="r1",
        type="saldoverzoek_antwoord",
        in_reply_to="S-1",
        creditor_code="WOONCORP",
        claims=[ClaimLine("R1", "F1", "huur", dt.date(2026, 9, 1), 70_000, 65_000, 4_000, 500)],
        created_on=D,
    )
    out = reply.to_json()
    assert json.loads(json.dumps(out)) == out
    assert out["claims"][0]["arisen_on"] == "2026-09-01" and out["created_on"] == "2026-11-24"
    assert Reply.from_json(out) == reply
