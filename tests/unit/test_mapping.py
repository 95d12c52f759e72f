import datetime as dt

import pytest

from connectors.errors import FatalError
from connectors.odbc.client import named_to_qmark
from connectors.odbc.mapping import parse_cents, parse_date, to_canonical

COLS = {
    "invoice_id": "nr",
    "debtor_id": "rel",
    "invoice_date": "d",
    "due_date": "v",
    "amount_cents": "b",
    "open_cents": "o",
    "currency": "c",
    "payment_reference": "k",
    "paid_date": "p",
    "source_version": "w",
}


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("123.45", 12345),
        ("1.234,56", 123456),
        ("12,5", 1250),
        (7, 700),
        ("1,23E+05", None),
        ("€ 10", 1000),
    ],
)
def test_parse_cents(raw: object, cents: int | None) -> None:
    if cents is None:
        with pytest.raises(ValueError):
            parse_cents(raw)
    else:
        assert parse_cents(raw) == cents


def test_parse_dates_iso_and_dutch() -> None:
    assert parse_date("2026-11-23") == dt.date(2026, 11, 23)
    assert parse_date("23-11-2026") == dt.date(2026, 11, 23)
    assert parse_date("31-12-26") == dt.date(2026, 12, 31)
    with pytest.raises(ValueError, match="is not a date"):
        parse_date("31-13-2026")


def test_unreadable_values_are_kept_with_the_reason() -> None:
    df = to_canonical(
        "invoices",
        [
            {
                "nr": "F1",
                "rel": "R1",
                "d": "2026-01-01",
                "v": "31-13-2026",
                "b": "abc",
                "o": None,
                "c": "eur",
                "k": "5000 0567 8901 2345",
                "p": None,
                "w": "x",
            }
        ],
        COLS,
    )
    row = df.iloc[0]
    assert row["invoice_id"] == "F1" and row["currency"] == "EUR"
    assert row["payment_reference"] == "5000056789012345"
    assert (
        "due_date: '31-13-2026' is not a date" in row["_errors"]
        and "amount_cents" in row["_errors"]
    )


def test_named_parameters_become_ordered_qmarks() -> None:
    sql, values = named_to_qmark(
        "SELECT * FROM t WHERE a > :w OR (a = :w AND k > :k) AND x = '12:30'", {"w": 1, "k": 2}
    )
    assert sql == "SELECT * FROM t WHERE a > ? OR (a = ? AND k > ?) AND x = '12:30'"
    assert values == [1, 1, 2]
    with pytest.raises(FatalError, match="without a value: missing"):
        named_to_qmark("SELECT :missing", {})


# ---------------------------------------------------------------- page-wise == row-wise

import pandas as pd  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connectors.odbc import mapping  # noqa: E402

amounts = st.one_of(
    st.none(),
    st.just(""),
    st.just("  "),
    st.integers(-(10**6), 10**9).map(lambda c: f"{c / 100:.2f}"),
    st.integers(-(10**6), 10**9).map(lambda c: f"{c // 100}.{abs(c) % 10}"),
    st.integers(-(10**6), 10**9),
    st.booleans(),
    # within 2**53 cents: beyond that the row-wise frame went through float64 and lost
    # digits (the page-wise one keeps them; such amounts fail validation either way)
    st.floats(min_value=-1e9, max_value=1e9),
    st.sampled_from([float("nan"), float("inf"), 1e16]),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6
    ),
    st.sampled_from(
        ["1.234,56", "12,5", "€ 10", "1,23E+05", "abc", " 12.50 ", "12.", "-0", "0012.5"]
    ),
)
dates = st.one_of(
    st.none(),
    st.just(""),
    st.dates(min_value=dt.date(1, 1, 1)),
    st.datetimes(min_value=dt.datetime(1, 1, 1)),
    st.dates().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.strftime("%d-%m-%Y")),
    st.sampled_from(
        ["2026-02-30", "31-13-2026", "20261124", " 2026-11-24 ", "2026-11-24T06:00:00", "x"]
    ),
)
counts = st.one_of(
    st.none(), st.integers(-5, 50), st.booleans(), st.sampled_from(["3", " 4 ", "3.7", "+2", "x"])
)
texts = st.one_of(st.none(), st.just(""), st.text(max_size=12), st.integers(0, 99))
FULL = {**COLS, "costs_cents": "kc", "interest_cents": "ki", "prior_reminders": "h"}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert [dict(r) for r in a.astype(object).where(a.notna(), None).to_dict("records")] == [
        dict(r) for r in b.astype(object).where(b.notna(), None).to_dict("records")
    ]
    assert list(a.dtypes) == list(b.dtypes)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "nr": texts,
                "rel": texts,
                "d": dates,
                "v": dates,
                "b": amounts,
                "o": amounts,
                "kc": amounts,
                "ki": amounts,
                "c": texts,
                "k": texts,
                "p": dates,
                "h": counts,
                "w": texts,
            }
        ),
        min_size=1,
        max_size=25,
    )
)
def test_invoices_page_wise_equal_row_wise(records: list[dict]) -> None:
    _same(mapping._invoices_vectorised(records, FULL), mapping._invoices_rows(records, FULL))


DEBTOR_COLS = {
    "debtor_id": "id",
    "name": "n",
    "email": "e",
    "phone": "t",
    "iban": "i",
    "street": "s",
    "postcode": "pc",
    "city": "pl",
    "language": "l",
    "source_version": "w",
}
phones = st.one_of(
    st.none(), st.just(""), st.sampled_from(["0612345678", "+31 6 1234 5678", "06-1234", "x"])
)
postcodes = st.one_of(
    st.none(), st.just(""), st.sampled_from(["1234ab", "1234 AB", " 9712 cd", "123", "12345678"])
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": texts,
                "n": texts,
                "e": texts,
                "t": phones,
                "i": texts,
                "s": texts,
                "pc": postcodes,
                "pl": texts,
                "l": st.one_of(texts, st.just("EN")),
                "w": texts,
            }
        ),
        min_size=1,
        max_size=25,
    )
)
def test_debtors_page_wise_equal_row_wise(records: list[dict]) -> None:
    _same(
        mapping._debtors_vectorised(records, DEBTOR_COLS),
        mapping._debtors_rows(records, DEBTOR_COLS),
    )
