"""The matcher's fixed point: a run's outcome is what a second run over the ledger it
leaves would give (that run changes nothing), whichever order the evidence arrived in
within the day; and the mark of its inputs that lets a second run see that without
matching again."""

import datetime as dt
import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import PAYMENT_COLUMNS
from transforms.matching import (
    MARKED_COLUMNS,
    MatchInputs,
    MatchPolicy,
    MatchResult,
    _canonical,
    match_payments,
)
from transforms.references import new_betalingskenmerk

D = dt.date(2026, 11, 23)
RETRY_FROM = D - dt.timedelta(days=30)
HISTORY_FROM = D - dt.timedelta(days=400)


def line(pid: str, cents: int, booked: dt.date = D, **extra: object) -> dict:
    row = dict.fromkeys(PAYMENT_COLUMNS)
    row.update(
        payment_id=pid,
        booking_date=booked,
        amount_cents=cents,
        currency="EUR",
        reversal=False,
        status="new",
    )
    row.update(extra)
    return row


def item(inv: str, debtor: str, cents: int, n: int, due: dt.date = D) -> dict:
    return {
        "invoice_id": inv,
        "debtor_id": debtor,
        "open_cents": cents,
        "costs_cents": 0,
        "interest_cents": 0,
        "payment_reference": new_betalingskenmerk(n),
        "due_date": due,
    }


DEBTORS = pd.DataFrame(
    [
        {"debtor_id": "R1", "name": "Jan de Vries", "iban": "NL91ABNA0417164300"},
        {"debtor_id": "R2", "name": "Fatima el Amrani", "iban": None},
    ]
)
NO_HISTORY = pd.DataFrame(columns=list(MARKED_COLUMNS["history"]))


def inputs(lines: list[dict], items: list[dict]) -> MatchInputs:
    return MatchInputs(pd.DataFrame(lines), pd.DataFrame(items), DEBTORS, NO_HISTORY)


def run(i: MatchInputs, policy: MatchPolicy | None = None) -> MatchResult:
    return match_payments(
        i.payments, i.items, i.debtors, i.history, policy, history_from=HISTORY_FROM
    )


def outcome(r: MatchResult) -> dict[str, tuple]:
    return {
        p.payment_id: (p.status, p.unmatched_reason, repr(p.suggestions))
        for p in r.payments.itertuples()
    }


def allocated(r: MatchResult) -> list[tuple[str, str, int, str]]:
    return sorted(
        zip(
            r.allocations["payment_id"],
            r.allocations["invoice_id"],
            r.allocations["amount_cents"],
            r.allocations["rule"],
            strict=True,
        )
    )


def next_run_changes_nothing(i: MatchInputs, r: MatchResult) -> MatchResult:
    after = i.after(r, RETRY_FROM, HISTORY_FROM)
    assert after is not None
    again = run(after)
    assert allocated(again) == [], "a second run over the same ledger allocated"
    assert len(again.invoices) == 0
    first = outcome(r)
    for pid, out in outcome(again).items():
        assert out == first[pid], pid
    return again


def test_a_second_payment_of_a_settled_item_is_weighed_as_naming_nothing() -> None:
    items = [item("F1", "R1", 5000, 1), item("F2", "R1", 7000, 2, D + dt.timedelta(days=30))]
    ref = items[0]["payment_reference"]
    iban = "NL91ABNA0417164300"  # R1's own
    i = inputs(
        [
            line("a", 5000, structured_reference=ref),
            # the same invoice paid twice, from the debtor's account: the reference
            # no longer points at anything open, so it is the payer's money for the
            # oldest open item, as it is when it arrives the next day
            line("b", 7000, structured_reference=ref, counterparty_iban=iban),
        ],
        items,
    )
    r = run(i)
    assert allocated(r) == [
        ("a", "F1", 5000, "structured_reference"),
        ("b", "F2", 7000, "payer_iban"),
    ]
    next_run_changes_nothing(i, r)

    # split over two days, the same allocations
    day1 = inputs([i.payments.iloc[0].to_dict()], items)
    r1 = run(day1)
    day2 = day1.after(r1, RETRY_FROM, HISTORY_FROM)
    assert day2 is not None
    r2 = run(MatchInputs(i.payments.iloc[[1]], day2.items, DEBTORS, day2.history))
    assert allocated(r1) + allocated(r2) == allocated(r)


def test_a_line_weighed_before_the_payment_that_links_its_iban_is_weighed_again() -> None:
    items = [item("F1", "R2", 4500, 1), item("F2", "R2", 3000, 2, D + dt.timedelta(days=9))]
    stranger = "NL20INGB0001234567"  # R2 has no IBAN on file
    i = inputs(
        [
            # booked first: an unknown account, an amount and nothing else
            line("x", 3000, D - dt.timedelta(days=1), counterparty_iban=stranger),
            # booked later: the same account pays F1 by its reference
            line(
                "y",
                4500,
                structured_reference=items[0]["payment_reference"],
                counterparty_iban=stranger,
            ),
        ],
        items,
    )
    r = run(i)
    assert allocated(r) == [
        ("x", "F2", 3000, "payer_iban"),
        ("y", "F1", 4500, "structured_reference"),
    ]
    next_run_changes_nothing(i, r)


def test_a_reversal_booked_before_its_original_still_undoes_it() -> None:
    items = [item("F1", "R1", 5000, 1)]
    i = inputs(
        [
            line(
                "back",
                -5000,
                D - dt.timedelta(days=1),
                reversal=True,
                end_to_end_id="E2E-7",
                return_reason="MD06",
            ),
            line(
                "dd",
                5000,
                end_to_end_id="E2E-7",
                structured_reference=items[0]["payment_reference"],
            ),
        ],
        items,
    )
    r = run(i)
    assert allocated(r) == [
        ("back", "F1", -5000, "reversal"),
        ("dd", "F1", 5000, "structured_reference"),
    ]
    assert dict(zip(r.invoices["invoice_id"], r.invoices["open_cents"], strict=True)) == {
        "F1": 5000
    }
    assert outcome(r)["back"][0] == "reversed"
    next_run_changes_nothing(i, r)


def test_a_reopened_item_is_evidence_again_for_a_line_weighed_while_it_was_settled() -> None:
    items = [item("F1", "R2", 5000, 1)]
    ref = items[0]["payment_reference"]
    i = inputs(
        [
            line(
                "pay",
                5000,
                D - dt.timedelta(days=2),
                structured_reference=ref,
                end_to_end_id="E2E-1",
            ),
            line("again", 5000, D - dt.timedelta(days=1), structured_reference=ref),
            line("back", -5000, D, reversal=True, end_to_end_id="E2E-1"),
        ],
        items,
    )
    r = run(i)
    # "again" found F1 settled (naming nothing) and was unmatched; the reversal reopened
    # F1, so "again" pays it after all
    assert ("again", "F1", 5000, "structured_reference") in allocated(r)
    next_run_changes_nothing(i, r)


@st.composite
def days(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    """A small portfolio and a day of lines whose evidence overlaps: references paid
    twice, accounts first seen on a later line, reversals before or after their
    originals, numbers with OCR noise, debits."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    n_items = draw(st.integers(1, 6))
    items = [
        item(
            f"F2026-{k:04d}",
            rng.choice(["R1", "R2"]),
            rng.choice([2500, 4000, 5000, 9000]),
            k + 1,
            D - dt.timedelta(days=rng.randrange(60)),
        )
        for k in range(n_items)
    ]
    if draw(st.booleans()):  # a twin whose number reads the same through OCR noise
        twin = items[0]["invoice_id"].replace("0", "O", 2)
        items.append(item(twin, rng.choice(["R1", "R2"]), 4000, n_items + 1, D))
    ibans = ["NL91ABNA0417164300", "NL20INGB0001234567", "NL02RABO0123456789", None]
    lines: list[dict] = []
    for k in range(draw(st.integers(1, 12))):
        it = rng.choice(items)
        kind = rng.randrange(6)
        booked = D - dt.timedelta(days=rng.randrange(3))
        extra: dict = {"counterparty_iban": rng.choice(ibans), "end_to_end_id": f"E{k}"}
        cents = rng.choice([it["open_cents"], it["open_cents"] // 2, 2500, 9000, 11000])
        if kind == 0:
            extra["structured_reference"] = it["payment_reference"]
        elif kind == 1:
            extra["remittance"] = f"factuur {it['invoice_id'].replace('0', 'O')}"
        elif kind == 2 and lines:
            orig = rng.choice(lines)
            cents = -abs(orig["amount_cents"])
            extra.update(reversal=True, end_to_end_id=orig["end_to_end_id"])
        elif kind == 3:
            cents = -cents  # a debit
        elif kind == 4:
            extra["remittance"] = f"klantnr {it['debtor_id']}"
        lines.append(line(f"p{k:02d}", cents, booked, **extra))
    return lines, items


@settings(max_examples=1000, deadline=None)
@given(days(), st.sampled_from(["item", "debtor"]))
def test_a_second_run_over_the_ledger_a_run_leaves_changes_nothing(
    day: tuple[list[dict], list[dict]], scope: str
) -> None:
    lines, items = day
    i = inputs(lines, items)
    policy = MatchPolicy(allocation_scope=scope)
    r = match_payments(i.payments, i.items, i.debtors, i.history, policy, history_from=HISTORY_FROM)
    after = i.after(r, RETRY_FROM, HISTORY_FROM)
    assert after is not None
    again = match_payments(
        after.payments, after.items, after.debtors, after.history, policy, history_from=HISTORY_FROM
    )
    assert allocated(again) == []
    first = outcome(r)
    assert all(out == first[pid] for pid, out in outcome(again).items())


def test_canonical_columns_hash_alike_whatever_the_dtype() -> None:
    def hashed(col: pd.Series) -> list[int]:
        return list(pd.util.hash_pandas_object(_canonical(col), index=False, categorize=False))

    assert hashed(pd.Series([1, 2])) == hashed(pd.Series([1, 2], dtype=object))
    assert hashed(pd.Series([1, 2])) == hashed(pd.Series([1.0, 2.0]))
    assert hashed(pd.Series([True, False])) == hashed(pd.Series([1, 0]))
    assert hashed(pd.Series([1, None], dtype=object)) == hashed(pd.Series([1.0, float("nan")]))
    assert hashed(pd.Series(["a", None])) == hashed(pd.Series(["a", float("nan")], dtype=object))
    assert hashed(pd.Series([D])) == hashed(pd.Series([D], dtype=object))
    assert hashed(pd.Series([1.5])) != hashed(pd.Series([1]))


def test_the_mark_tells_a_missing_value_from_an_empty_or_a_nan_text() -> None:
    items = [item("F1", "R1", 5000, 1)]
    lines = [line("a", 5000)]
    marks = {
        MatchInputs(
            inputs(lines, items).payments.assign(remittance=[text]),
            pd.DataFrame(items),
            DEBTORS,
            NO_HISTORY,
        ).mark(MatchPolicy())
        for text in (None, "", "nan")
    }
    assert len(marks) == 3


def test_the_mark_sees_contents_not_row_order_and_names_the_policy() -> None:
    items = [item("F1", "R1", 5000, 1), item("F2", "R2", 7000, 2)]
    lines = [line("a", 5000, structured_reference=items[0]["payment_reference"]), line("b", 1)]
    i = inputs(lines, items)
    policy = MatchPolicy()
    shuffled = inputs(lines[::-1], items[::-1])
    assert i.mark(policy) == shuffled.mark(policy)
    assert i.mark(policy) != i.mark(MatchPolicy(threshold=0.85))
    changed = [dict(items[0], open_cents=4999), items[1]]
    assert i.mark(policy) != inputs(lines, changed).mark(policy)
    renamed = MatchInputs(
        i.payments, i.items, DEBTORS.assign(name=["Jan de Vries", "F. Amrani"]), NO_HISTORY
    )
    assert i.mark(policy) != renamed.mark(policy)


def test_the_inputs_after_a_run_are_the_ones_the_next_run_weighs() -> None:
    items = [item("F1", "R1", 5000, 1), item("F2", "R1", 7000, 2)]
    i = inputs(
        [
            line(
                "a",
                5000,
                structured_reference=items[0]["payment_reference"],
                counterparty_iban="NL20INGB0001234567",
                end_to_end_id="E1",
            ),
            line("b", 1234),  # nothing fits
            line("old", 99, D - dt.timedelta(days=45)),  # nothing fits, past the retry window
        ],
        items,
    )
    r = run(i)
    after = i.after(r, RETRY_FROM, HISTORY_FROM)
    assert after is not None
    assert list(after.payments["payment_id"]) == ["b"] and set(after.payments["status"]) == {
        "unmatched"
    }
    assert list(after.items["invoice_id"]) == ["F2"]  # F1 is settled: not read again
    assert after.history.to_dict("records") == [
        {
            "payment_id": "a",
            "invoice_id": "F1",
            "debtor_id": "R1",
            "amount_cents": 5000,
            "costs_cents": 0,
            "interest_cents": 0,
            "end_to_end_id": "E1",
            "bank_reference": None,
            "counterparty_iban": "NL20INGB0001234567",
            "payment_amount_cents": 5000,
        }
    ]
    # a reversal that reopens an item the run was not given: the next run reads it
    history = pd.DataFrame(
        [
            {
                **after.history.iloc[0].to_dict(),
                "payment_id": "z",
                "invoice_id": "F-OLD",
                "end_to_end_id": "E-OLD",
                "item_open_cents": 0,
            }
        ]
    )
    j = MatchInputs(
        pd.DataFrame([line("rv", -5000, reversal=True, end_to_end_id="E-OLD")]),
        pd.DataFrame(items),
        DEBTORS,
        history,
    )
    rj = run(j)
    assert outcome(rj)["rv"][0] == "reversed"
    assert j.after(rj, RETRY_FROM, HISTORY_FROM) is None
