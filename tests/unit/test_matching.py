import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import PAYMENT_COLUMNS
from transforms.matching import match_payments, references_in_text
from transforms.references import new_betalingskenmerk

D = dt.date(2026, 11, 23)


def pay(
    pid: str, cents: int, ref: str | None = None, text: str | None = None, reversal: bool = False
) -> dict:
    row = dict.fromkeys(PAYMENT_COLUMNS)
    row.update(
        payment_id=pid,
        booking_date=D,
        amount_cents=cents,
        currency="EUR",
        structured_reference=ref,
        remittance=text,
        reversal=reversal,
    )
    return row


def items(*rows: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "invoice_id": i,
                "debtor_id": "R1",
                "open_cents": c,
                "payment_reference": new_betalingskenmerk(n + 1),
                "due_date": D,
            }
            for n, (i, c) in enumerate(rows)
        ]
    )


def test_structured_reference_full_payment() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 5000, new_betalingskenmerk(1))]), items(("F1", 5000))
    )
    assert r.payments.iloc[0]["status"] == "matched"
    assert r.invoices.to_dict("records") == [
        {"invoice_id": "F1", "open_cents": 0, "status": "paid"}
    ]


def test_reference_written_in_text_with_spaces() -> None:
    ref = new_betalingskenmerk(2)
    text = f"huur nov kenmerk {ref[:4]} {ref[4:8]} {ref[8:12]} {ref[12:]}"
    assert references_in_text(text) == [ref]
    r = match_payments(pd.DataFrame([pay("p1", 100, text=text)]), items(("F1", 5000), ("F2", 300)))
    assert r.allocations.to_dict("records") == [
        {"payment_id": "p1", "invoice_id": "F2", "amount_cents": 100, "rule": "reference_in_text"}
    ]
    assert r.invoices.iloc[0]["status"] == "partial"


def test_overpayment_keeps_credit_and_unknown_goes_to_review() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 7000, new_betalingskenmerk(1)), pay("p2", 10, text="gift")]),
        items(("F1", 5000)),
    )
    out = r.payments.set_index("payment_id")
    assert out.loc["p1", "status"] == "overpaid" and out.loc["p1", "allocated_cents"] == 5000
    assert "2000 cents kept as credit" in out.loc["p1", "unmatched_reason"]
    assert out.loc["p2", "status"] == "unmatched"


def test_invoice_number_in_text_and_ambiguity() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 50, text="factuur F-100"), pay("p2", 50, text="F-100 en F-200")]),
        items(("F-100", 500), ("F-200", 500)),
    )
    out = r.payments.set_index("payment_id")
    assert out.loc["p1", "status"] == "matched"
    assert out.loc["p2", "status"] == "unmatched" and "several" in out.loc["p2", "unmatched_reason"]


def test_reversals_and_debits_are_not_allocated() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 5000, new_betalingskenmerk(1), reversal=True), pay("p2", -300)]),
        items(("F1", 5000)),
    )
    assert r.allocations.empty
    assert set(r.payments["status"]) == {"unmatched", "ignored"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 50_000), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 7), st.integers(1, 80_000)), min_size=1, max_size=15),
)
def test_allocation_invariants(opens: list[int], payments: list[tuple[int, int]]) -> None:
    its = items(*[(f"F{i}", c) for i, c in enumerate(opens)])
    refs = list(its["payment_reference"])
    p = pd.DataFrame(
        [
            pay(f"p{k}", amt, refs[i] if i < len(refs) else None)
            for k, (i, amt) in enumerate(payments)
        ]
    )
    r = match_payments(p, its)
    alloc_per_payment = r.allocations.groupby("payment_id")["amount_cents"].sum()
    for row in p.itertuples():
        got = int(alloc_per_payment.get(row.payment_id, 0))
        assert 0 <= got <= row.amount_cents  # never more than the payment
    alloc_per_item = r.allocations.groupby("invoice_id")["amount_cents"].sum()
    for inv in its.itertuples():
        assert int(alloc_per_item.get(inv.invoice_id, 0)) <= inv.open_cents  # never more than owed
    total = int(p["amount_cents"].sum())
    unallocated = total - int(r.allocations["amount_cents"].sum()) if len(r.allocations) else total
    assert int(r.payments["allocated_cents"].sum()) + unallocated == total
    # re-running on the remaining items with the same payments is deterministic
    assert match_payments(p, its).allocations.equals(r.allocations)
