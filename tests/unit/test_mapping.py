import datetime as dt
import re
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.errors import FatalError
from connectors.odbc.client import named_to_qmark
from connectors.odbc.mapping import _cents_by_decimal, parse_cents, parse_date, to_canonical

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


@given(st.text(max_size=60))
def test_an_odata_string_literal_cannot_end_early(value: str) -> None:
    """Whatever an invoice number holds (quotes, ``' or 1 eq 1``), its OData literal is
    one quoted string that reads back as the value: nothing in it becomes syntax."""
    from connectors.exact_online.mapping import odata_literal

    lit = odata_literal(value, number=False)
    inner = lit[1:-1]
    assert lit[0] == lit[-1] == "'"
    assert "'" not in inner.replace("''", "")  # every quote inside is doubled
    assert inner.replace("''", "'") == value


@given(st.text(max_size=20))
@example("\u0662\u0666")  # Arabic-Indic 26: a digit to the re module's \d
@example("-0042")
def test_an_odata_number_literal_is_digits_or_refused(value: str) -> None:
    from connectors.exact_online.mapping import odata_literal

    try:
        lit = odata_literal(value, number=True)
    except ValueError:
        return
    assert re.fullmatch(r"-?[0-9]+", lit) and lit == value


@given(
    st.from_regex(r"-?[0-9]{1,15}(\.[0-9]{0,3})?", fullmatch=True)
    | st.from_regex(r" ?-?[0-9]{1,4}([.,][0-9]{1,3})? ?", fullmatch=True)
)
@example("007.50")
@example("-0.5")
@example("12.345")
def test_a_plain_amount_reads_as_the_decimal_reading_does(raw: str) -> None:
    """The fast path (no Decimal for "1234.56") rounds and signs as the full reading."""
    assert parse_cents(raw) == _cents_by_decimal(raw)


_VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.just("  "),
    st.sampled_from(["2026-01-31", "31-01-2026", "31-13-2026", "12.50", "1.234,56", "abc"]),
    st.integers(-5, 5),
    st.text(max_size=6),
    # equal as keys, not as readings: the page reads each distinct value once, by type
    st.sampled_from([1, 1.0, True, False, 0, Decimal("1.0"), Decimal("1.005")]),
    st.floats(allow_infinity=False),
)


@given(
    st.lists(
        st.fixed_dictionaries({k: _VALUES for k in ("b", "o", "d", "v", "p", "n")}),
        min_size=1,
        max_size=12,
    )
)
@example([{k: v for k in ("b", "o", "d", "v", "p", "n")} for v in (1, True, 1.0, True, "x", "x")])
def test_a_page_reads_each_value_as_its_own_reading_does(records: list[dict[str, object]]) -> None:
    """Read a column at a time, each row still gets what its values give one by one,
    and its errors in the order of its columns."""
    _reads_as_one_by_one(records)


#: an export's column: text of one kind (and gaps), read a distinct value at a time
_TEXTS = st.one_of(
    st.none(),
    st.just(""),
    st.just("  "),
    st.sampled_from(["2026-01-31", "31-01-2026", "31-13-2026", "12.50", "1.234,56", "abc", "7"]),
    st.text(max_size=6),
)


@given(
    st.lists(
        st.fixed_dictionaries({k: _TEXTS for k in ("b", "o", "d", "v", "p", "n")}),
        min_size=1,
        max_size=40,
    )
)
@example(
    [{k: v for k in ("b", "o", "d", "v", "p", "n")} for v in ("12.50", None, "x", "12.50", " ")]
)
def test_a_page_of_text_columns_reads_as_one_by_one(records: list[dict[str, object]]) -> None:
    """Columns of one kind of value, as exports give them, are read a distinct value at
    a time: each row still gets its own reading and its errors, repeats and all."""
    _reads_as_one_by_one(records)


def _reads_as_one_by_one(records: list[dict[str, object]]) -> None:
    cols = {**COLS, "prior_reminders": "n"}
    df = to_canonical("invoices", records, cols)
    fields = [
        ("amount_cents", "b", parse_cents, True),
        ("open_cents", "o", parse_cents, False),
        ("invoice_date", "d", parse_date, True),
        ("due_date", "v", parse_date, True),
        ("paid_date", "p", parse_date, False),
        ("prior_reminders", "n", int, False),
    ]
    for rec, (_, row) in zip(records, df.iterrows(), strict=True):
        errors, got = [], {}
        for name, key, fn, required in fields:
            raw = rec[key]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                got[name] = None
                if required:
                    errors.append(f"{name}: missing")
                continue
            try:
                got[name] = fn(raw)
            except ValueError as exc:
                got[name] = None
                errors.append(f"{name}: {exc}")
        # a page whose other rows carry errors holds "none" as the str column's missing
        # value (NaN), as open_cents does below: missing, either way
        want_errors = "; ".join(errors) or None
        assert row["_errors"] == want_errors or (want_errors is None and pd.isna(row["_errors"]))
        for name in ("invoice_date", "due_date", "paid_date"):
            assert row[name] == got[name] or (row[name] is None and got[name] is None)
        want_open = got["amount_cents"] if got["open_cents"] is None else got["open_cents"]
        assert (pd.isna(row["open_cents"]) and want_open is None) or row["open_cents"] == want_open
        assert row["prior_reminders"] == (got["prior_reminders"] or 0)
