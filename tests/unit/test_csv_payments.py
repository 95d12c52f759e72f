import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.csv_payments import CsvMapping, parse_csv_payments
from transforms.statements import StatementError, parse_statement

ING = CsvMapping(
    delimiter=",",
    date_format="%Y%m%d",
    sign="debit_column",
    direction_column="Af Bij",
    columns={
        "booking_date": "Datum",
        "amount": "Bedrag (EUR)",
        "counterparty_name": "Naam / Omschrijving",
        "counterparty_iban": "Tegenrekening",
        "remittance": "Mededelingen",
    },
)
ING_CSV = (
    '"Datum","Naam / Omschrijving","Rekening","Tegenrekening","Code","Af Bij","Bedrag (EUR)","Mutatiesoort","Mededelingen"\n'
    '"20261123","J. de Vries","NL91ABNA0417164300","NL20INGB0001234567","OV","Bij","743,01","Overschrijving","Betalingskenmerk: 5000 0567 8901 2345"\n'
    '"20261123","Energie BV","NL91ABNA0417164300","NL02RABO0123456789","IC","Af","1.234,50","Incasso","factuur 88"\n'
)


def test_ing_style_export() -> None:
    df = parse_csv_payments(ING_CSV.encode(), ING)
    assert list(df["amount_cents"]) == [74301, -123450]
    a = df.iloc[0]
    assert (
        a["booking_date"] == dt.date(2026, 11, 23)
        and a["counterparty_iban"] == "NL20INGB0001234567"
    )
    assert "5000 0567 8901 2345" in a["remittance"]
    assert parse_statement(ING_CSV.encode(), "x.csv", "csv", ING).equals(df)


def test_errors_name_line_and_column() -> None:
    bad = ING_CSV.replace('"743,01"', '"7,43,01"')
    with pytest.raises(
        StatementError, match=r"x.csv: line 2: 'Bedrag \(EUR\)': '7,43,01' is not an amount"
    ):
        parse_csv_payments(bad.encode(), ING, "x.csv")
    with pytest.raises(StatementError, match=r"line 3: 'Datum' '2026-11-23' is not a date"):
        parse_csv_payments(
            ING_CSV.replace('"20261123","Energie', '"2026-11-23","Energie').encode(), ING, "x.csv"
        )
    with pytest.raises(StatementError, match=r"line 1: column\(s\) 'Af Bij' not in the header"):
        parse_csv_payments(ING_CSV.replace('"Af Bij"', '"Richting"').encode(), ING, "x.csv")
    with pytest.raises(StatementError, match="not utf-8-sig"):
        parse_csv_payments("Datum;Bedrag\n20261123;€ 5\n".encode("cp1252"), ING, "x.csv")
    with pytest.raises(StatementError, match="needs a column mapping"):
        parse_statement(b"a;b", "x.csv", "csv")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=20))
def test_signed_amounts_round_trip(amounts: list[int]) -> None:
    m = CsvMapping(columns={"booking_date": "d", "amount": "a"})
    lines = ["d;a"] + [
        f"2026-11-23;{'-' if c < 0 else ''}{abs(c) // 100:,}".replace(",", ".")
        + f",{abs(c) % 100:02d}"
        for c in amounts
    ]
    assert list(parse_csv_payments("\n".join(lines).encode(), m)["amount_cents"]) == amounts
