import datetime as dt
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import PAYMENT_COLUMNS
from transforms.matching import MatchPolicy, match_payments, references_in_text
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


def rows(df: pd.DataFrame, *cols: str) -> list[dict]:
    """The records, in the columns a test states (allocations: without the split)."""
    cols = cols or ("payment_id", "invoice_id", "amount_cents", "rule")
    return df[list(cols)].to_dict("records")


def test_structured_reference_full_payment() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 5000, new_betalingskenmerk(1))]), items(("F1", 5000))
    )
    assert r.payments.iloc[0]["status"] == "matched"
    assert rows(r.invoices, "invoice_id", "open_cents", "status") == [
        {"invoice_id": "F1", "open_cents": 0, "status": "paid"}
    ]


def test_reference_written_in_text_with_spaces() -> None:
    ref = new_betalingskenmerk(2)
    text = f"huur nov kenmerk {ref[:4]} {ref[4:8]} {ref[8:12]} {ref[12:]}"
    assert references_in_text(text) == [ref]
    r = match_payments(pd.DataFrame([pay("p1", 100, text=text)]), items(("F1", 5000), ("F2", 300)))
    assert rows(r.allocations) == [
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


def test_invoice_numbers_in_text_split_in_the_order_named() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 50, text="factuur F-100"), pay("p2", 700, text="F-200 en F-100")]),
        items(("F-100", 500), ("F-200", 500)),
    )
    assert r.payments.set_index("payment_id").loc["p1", "status"] == "matched"
    p2 = r.allocations[r.allocations["payment_id"] == "p2"]
    assert list(zip(p2["invoice_id"], p2["amount_cents"])) == [("F-200", 500), ("F-100", 200)]


def test_reversals_without_their_original_and_debits_are_not_allocated() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 5000, new_betalingskenmerk(1), reversal=True), pay("p2", -300)]),
        items(("F1", 5000)),
    )
    assert r.allocations.empty
    assert set(r.payments["status"]) == {"unmatched", "ignored"}


DEBTORS = pd.DataFrame(
    [
        {"debtor_id": "R0000001", "name": "Jan de Vries", "iban": "NL91ABNA0417164300"},
        {"debtor_id": "R0000002", "name": "Fatima el Amrani", "iban": None},
    ]
)


def two_debtors() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "invoice_id": "F2026-0001",
                "debtor_id": "R0000001",
                "open_cents": 30000,
                "payment_reference": None,
                "due_date": D,
            },
            {
                "invoice_id": "F2026-0002",
                "debtor_id": "R0000001",
                "open_cents": 20000,
                "payment_reference": None,
                "due_date": D + dt.timedelta(days=30),
            },
            {
                "invoice_id": "F2026-0003",
                "debtor_id": "R0000002",
                "open_cents": 45000,
                "payment_reference": None,
                "due_date": D,
            },
        ]
    )


def with_payer(row: dict, iban: str | None = None, name: str | None = None) -> dict:
    row.update(counterparty_iban=iban, counterparty_name=name)
    return row


def test_ocr_noise_in_an_invoice_number_still_matches() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 45000, text="fact. F2O26-OOO3")]), two_debtors(), DEBTORS
    )
    assert rows(r.allocations) == [
        {
            "payment_id": "p1",
            "invoice_id": "F2026-0003",
            "amount_cents": 45000,
            "rule": "invoice_number_fuzzy",
        }
    ]


def test_known_iban_and_an_amount_that_fits_pay_oldest_first() -> None:
    r = match_payments(
        pd.DataFrame([with_payer(pay("p1", 50000), iban="NL91 ABNA 0417 1643 00")]),
        two_debtors(),
        DEBTORS,
    )
    assert list(zip(r.allocations["invoice_id"], r.allocations["amount_cents"])) == [
        ("F2026-0001", 30000),
        ("F2026-0002", 20000),
    ]
    assert set(r.allocations["rule"]) == {"payer_iban"}


def test_known_iban_alone_is_below_the_threshold_and_suggested() -> None:
    r = match_payments(
        pd.DataFrame([with_payer(pay("p1", 12345), iban="NL91ABNA0417164300")]),
        two_debtors(),
        DEBTORS,
    )
    row = r.payments.iloc[0]
    assert row["status"] == "unmatched" and "below 0.80" in row["unmatched_reason"]
    assert row["suggestions"][0]["debtor_id"] == "R0000001" and row["suggestions"][0]["rules"] == [
        "payer_iban"
    ]


def test_debtor_number_in_text_and_a_name_that_fits() -> None:
    r = match_payments(
        pd.DataFrame([with_payer(pay("p1", 45000, text="klantnr R0000002"), name="F. el Amrani")]),
        two_debtors(),
        DEBTORS,
    )
    assert (
        r.payments.iloc[0]["status"] == "matched"
        and r.allocations.iloc[0]["invoice_id"] == "F2026-0003"
    )


def test_two_debtors_that_fit_equally_go_to_review() -> None:
    r = match_payments(
        pd.DataFrame([pay("p1", 100, text="F2026-0001 F2026-0003")]), two_debtors(), DEBTORS
    )
    row = r.payments.iloc[0]
    assert row["status"] == "unmatched" and "two debtors fit" in row["unmatched_reason"]
    assert {s["debtor_id"] for s in row["suggestions"]} == {"R0000001", "R0000002"}


def test_a_reversal_undoes_the_original_allocation() -> None:
    history = pd.DataFrame(
        [
            {
                "payment_id": "old",
                "invoice_id": "F2026-0003",
                "debtor_id": "R0000002",
                "amount_cents": 45000,
                "end_to_end_id": "E2E-9",
                "bank_reference": "B1",
                "counterparty_iban": None,
                "payment_amount_cents": 45000,
                "item_open_cents": 0,
            }
        ]
    )
    rev = pay("p9", -45000, reversal=True)
    rev.update(end_to_end_id="E2E-9", return_reason="AM04")
    r = match_payments(pd.DataFrame([rev]), two_debtors().iloc[:2], DEBTORS, history)
    assert rows(r.allocations) == [
        {"payment_id": "p9", "invoice_id": "F2026-0003", "amount_cents": -45000, "rule": "reversal"}
    ]
    assert r.invoices.set_index("invoice_id").loc["F2026-0003", "open_cents"] == 45000
    row = r.payments.iloc[0]
    assert row["status"] == "reversed" and "AM04" in row["unmatched_reason"]


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


def test_a_direct_debit_end_to_end_id_names_the_item() -> None:
    row = pay("p1", 20000)
    row["end_to_end_id"] = "F2026-0002"
    r = match_payments(pd.DataFrame([row]), two_debtors(), DEBTORS)
    assert rows(r.allocations) == [
        {
            "payment_id": "p1",
            "invoice_id": "F2026-0002",
            "amount_cents": 20000,
            "rule": "end_to_end_id",
        }
    ]


def with_parts(*rows: tuple[str, int, int, int]) -> pd.DataFrame:
    """Items of one debtor as (id, principal, costs, interest) still open, oldest first."""
    its = items(*[(i, p + c + n) for i, p, c, n in rows])
    its["costs_cents"] = [c for _, _, c, _ in rows]
    its["interest_cents"] = [n for _, _, _, n in rows]
    its["due_date"] = [D - dt.timedelta(days=len(rows) - k) for k in range(len(rows))]
    its["debtor_id"] = "R0000001"
    return its


ONE_DEBTOR = pd.DataFrame([{"debtor_id": "R0000001", "name": "A. Jansen", "iban": None}])


def split(r, inv: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    a = r.allocations.set_index("invoice_id").loc[inv]
    return int(a["costs_cents"]), int(a["interest_cents"]), int(a["principal_cents"])


def test_a_partial_payment_pays_costs_then_interest_then_principal() -> None:
    """Art. 6:44 BW: 60.00 on 100.00 principal + 40.00 WIK costs + 1.20 interest."""
    its = with_parts(("F1", 10000, 4000, 120))
    ref = its["payment_reference"][0]
    r = match_payments(pd.DataFrame([pay("p1", 6000, ref)]), its)
    assert split(r, "F1") == (4000, 120, 1880)
    left = r.invoices.set_index("invoice_id").loc["F1"]
    assert (left["open_cents"], left["costs_cents"], left["interest_cents"]) == (8120, 0, 0)


def test_a_creditor_can_have_the_principal_paid_first() -> None:
    its = with_parts(("F1", 10000, 4000, 120))
    ref = its["payment_reference"][0]
    policy = MatchPolicy(allocation_order=("principal", "interest", "costs"))
    r = match_payments(pd.DataFrame([pay("p1", 10060, ref)]), its, policy=policy)
    assert split(r, "F1") == (0, 60, 10000)
    left = r.invoices.set_index("invoice_id").loc["F1"]
    assert (left["open_cents"], left["costs_cents"], left["interest_cents"]) == (4060, 4000, 60)


def test_debtor_scope_pays_every_items_costs_before_any_principal() -> None:
    its = with_parts(("F1", 5000, 1000, 0), ("F2", 5000, 1500, 0))
    debtors = ONE_DEBTOR
    p = pay("p1", 3000, text="klantnummer R0000001")
    item_scope = match_payments(pd.DataFrame([p]), its, debtors)
    assert split(item_scope, "F1") == (1000, 0, 2000) and "F2" not in set(
        item_scope.allocations["invoice_id"]
    )
    debtor_scope = match_payments(
        pd.DataFrame([p]), its, debtors, policy=MatchPolicy(allocation_scope="debtor")
    )
    assert split(debtor_scope, "F1") == (1000, 0, 500)
    assert split(debtor_scope, "F2") == (1500, 0, 0)


def test_a_reversal_gives_back_exactly_the_components_it_took() -> None:
    history = pd.DataFrame(
        [
            {
                "payment_id": "old",
                "invoice_id": "F1",
                "debtor_id": "R1",
                "amount_cents": 6000,
                "costs_cents": 4000,
                "interest_cents": 120,
                "end_to_end_id": "E2E-1",
                "bank_reference": None,
                "counterparty_iban": None,
                "payment_amount_cents": 6000,
                "item_open_cents": 8120,
                "item_costs_cents": 0,
                "item_interest_cents": 0,
            }
        ]
    )
    rev = pay("p2", -6000, reversal=True)
    rev.update(end_to_end_id="E2E-1", return_reason="MD06")
    r = match_payments(pd.DataFrame([rev]), with_parts(("F9", 100, 0, 0)), history=history)
    assert split(r, "F1") == (-4000, -120, -1880)
    back = r.invoices.set_index("invoice_id").loc["F1"]
    assert (back["open_cents"], back["costs_cents"], back["interest_cents"]) == (14120, 4000, 120)


def test_an_allocation_order_must_name_each_component_once() -> None:
    with pytest.raises(ValueError, match="costs, interest, principal"):
        MatchPolicy(allocation_order=("costs", "costs", "principal"))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 20_000), st.integers(0, 4_000), st.integers(0, 500)),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(1, 40_000), min_size=1, max_size=8),
    st.permutations(["costs", "interest", "principal"]),
    st.sampled_from(["item", "debtor"]),
)
def test_component_invariants(
    parts: list[tuple[int, int, int]], amounts: list[int], order: list[str], scope: str
) -> None:
    its = with_parts(*[(f"F{k}", p, c, n) for k, (p, c, n) in enumerate(parts)])
    debtors = ONE_DEBTOR
    pays = pd.DataFrame([pay(f"p{k}", a, text="R0000001") for k, a in enumerate(amounts)])
    policy = MatchPolicy(allocation_order=tuple(order), allocation_scope=scope)  # type: ignore[arg-type]
    r = match_payments(pays, its, debtors, policy=policy)
    a = r.allocations
    # every allocation is exactly the sum of its parts, and no part goes negative
    assert (
        a["costs_cents"] + a["interest_cents"] + a["principal_cents"] == a["amount_cents"]
    ).all()
    left = its.set_index("invoice_id")
    left["principal_cents"] = left["open_cents"] - left["costs_cents"] - left["interest_cents"]
    new = r.invoices.set_index("invoice_id")
    for inv, row in left.iterrows():
        got = a[a["invoice_id"] == inv][["costs_cents", "interest_cents"]].sum()
        assert int(got["costs_cents"]) <= row["costs_cents"]
        assert int(got["interest_cents"]) <= row["interest_cents"]
        if inv in new.index:
            assert new.loc[inv, "costs_cents"] == row["costs_cents"] - int(got["costs_cents"])
            assert (
                new.loc[inv, "costs_cents"] + new.loc[inv, "interest_cents"]
                <= new.loc[inv, "open_cents"]
            )
    # a component later in the order is only paid once the earlier ones of that item are
    if scope == "item":
        paid: dict[tuple[str, str], int] = {}
        for row in a.itertuples():
            for comp in order:
                paid[row.invoice_id, comp] = paid.get((row.invoice_id, comp), 0) + int(
                    getattr(row, f"{comp}_cents")
                )
            for k, comp in enumerate(order[1:], start=1):
                if getattr(row, f"{comp}_cents"):
                    for earlier in order[:k]:
                        owed = left.loc[row.invoice_id, f"{earlier}_cents"]
                        assert paid[row.invoice_id, earlier] == owed


_NAMEISH = st.text(alphabet="abcdeijklmnorstuvz .-'", max_size=30)


@settings(max_examples=600, deadline=None)
@given(
    a=_NAMEISH,
    b=st.one_of(_NAMEISH, st.text(alphabet="aeijn ", max_size=30)),
    at_least=st.sampled_from([0.5, 0.85, 0.95, 1.0]),
)
def test_name_similarity_agrees_with_difflib(a: str, b: str, at_least: float) -> None:
    """The cheap bounds in front of difflib never change its verdict (the second
    alphabet repeats few letters: pairs close in character counts, far in order)."""
    import difflib

    from transforms.matching import similar

    want = difflib.SequenceMatcher(None, a, b).ratio() >= at_least
    assert similar(a, b, at_least) == want
    assert similar(a, b, at_least) == want  # again: the counts now come from the cache


def test_name_similarity_bound_is_difflibs_quick_ratio() -> None:
    """Same letters in another order pass the character bound and are then judged by
    difflib itself; one letter in three changed fails on the bound alone."""
    from transforms.matching import similar

    assert difflib_quick("jansen", "nesnaj") == 1.0
    assert not similar("jansen", "nesnaj")  # ratio 0.33: order matters
    assert similar("de vries", "de vries")
    assert not similar("bakker", "bokkor")  # quick_ratio 0.67


def difflib_quick(a: str, b: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, a, b).quick_ratio()


def test_name_similarity_near_and_far() -> None:
    from transforms.matching import similar

    assert similar("j. de vries", "j de vries")
    assert not similar("j. de vries", "a. bakker-van den heuvel")
    assert not similar("", "jansen")


_NAMES = [
    "jan de vries",
    "jan de vriess",
    "jannes vries",
    "piet de vries",
    "jet vries",
    "anna jansen",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(_NAMES), min_size=1, max_size=6),
    st.lists(
        st.sampled_from([*_NAMES, "j. de vries", "vries jan", "onbekende betaler"]), min_size=1
    ),
)
def test_name_alike_is_the_comparison_it_keeps_and_forgets_it_when_a_name_is_added(
    names: list[str], payers: list[str]
) -> None:
    """``NameIndex.alike`` answers as comparing the payer with every debtor sharing a
    word would, in the same order, whether asked once or again, and after a debtor is
    added."""
    from transforms.matching import NameIndex, similar

    index = NameIndex()

    def direct(payer: str) -> list[str]:
        return [
            d
            for d in index.sharing_a_word(payer)
            if index[d][:1] == payer[:1] and similar(payer, index[d])
        ]

    for i, n in enumerate(names[:-1]):
        index[f"R{i}"] = n
    for payer in payers + payers:
        assert index.alike(payer) == direct(payer)
    index["R-last"] = names[-1]
    for payer in payers:
        assert index.alike(payer) == direct(payer)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
    | st.from_regex(r"[A-Za-z0-9 ./|-]{0,16}", fullmatch=True)
)
def test_an_ocr_key_is_the_upper_cased_letters_and_digits_with_confusions_read_as_digits(
    token: str,
) -> None:
    """The ASCII path (one ``bytes.translate``) gives what the two steps give: keep only
    0-9 and A-Z of the upper-cased token, then read O, Q, D as 0, I, L as 1, S as 5, B as
    8, Z as 2; so does the path for any other text."""
    from transforms.matching import _OCR, _ocr_key

    assert _ocr_key(token) == re.sub(r"[^0-9A-Z]", "", token.upper()).translate(_OCR)
    assert _ocr_key("f2026-0000OIS") == "F20260000015" == _ocr_key("F2026 0000 01S")
