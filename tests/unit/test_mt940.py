"""MT940 as the Dutch banks deliver it, checked entry by entry against the established
mt-940 parser on the real samples in shared/corpus, and on the structured :86: layouts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import mt940
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.mt940 import parse_86, parse_mt940
from transforms.statements import StatementError, entries_as_json_rows, parse_statement

EXPECTED = {
    "abnamro.sta": (10, Decimal("-345.93")),
    "ing.sta": (7, Decimal("-45.59")),
    "rabobank.sta": (5, Decimal("-1589.09")),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_matches_the_established_parser(corpus: Path, name: str) -> None:
    data = (corpus / name).read_bytes()
    ours = parse_mt940(data, name)
    theirs = list(mt940.parse(str(corpus / name)))
    n, total = EXPECTED[name]
    assert len(ours) == len(theirs) == n
    assert Decimal(int(ours["amount_cents"].sum())) / 100 == total
    for row, t in zip(ours.itertuples(), theirs, strict=True):
        assert Decimal(row.amount_cents) / 100 == t.data["amount"].amount
        assert row.value_date == t.data["date"]
        assert row.booking_date == t.data.get("entry_date", t.data["date"])
        assert row.currency == "EUR"
    assert parse_statement(data, name).equals(ours)  # auto-detected as MT940


def test_rabobank_old_format_counterparty(corpus: Path) -> None:
    df = parse_mt940((corpus / "rabobank.sta").read_bytes())
    first = df.iloc[0]
    assert (first["counterparty_iban"], first["counterparty_name"]) == ("0121470966", "W.P. Jansen")
    assert "NIET AKKOORD MET AFSCHRIJVING" in first["remittance"]


ING_SEPA = """:20:P140220000000001
:25:NL69INGB0123456789EUR
:28C:00000
:60F:C140219EUR662,23
:61:1402200220C1,56NTRFEREF//00000000001005
/TRCD/00100/
:86:/EREF/EV12341REP1231456T1234//CNTP/NL32INGB0000012345/INGBNL2A/ING BA
NK NV INZAKE WEB///REMI/USTD//EV10001REP1000000T1000/
:61:1402200220C500,00NTRFNONREF//00000000001006
:86:/EREF/NOTPROVIDED//CNTP/NL91ABNA0417164300/ABNANL2A/J. DE VRIES///REMI/STRD/CUR/5000056789012345/
:61:1402200220RC500,00NTRFNONREF//00000000001007
:86:/RTRN/AM04/EREF/E2E-77//CNTP/NL91ABNA0417164300/ABNANL2A/J. DE VRIES///REMI/USTD//huur januari/
:62F:C140220EUR663,79
-XXX
"""

ABN_SEPA = """ABNANL2A
940
ABNANL2A
:20:ABN AMRO BANK NV
:25:417164300
:28:28801/1
:60F:C140220EUR100,00
:61:1402210221C45,00N654NONREF
:86:/TRTP/SEPA OVERBOEKING/IBAN/NL20INGB0001234567/BIC/INGBNL2A/NAME/P. JANSEN/REMI/
BETALINGSKENMERK 5000 0567 8901 2345/EREF/NOTPROVIDED
:62F:C140221EUR145,00
-
"""


def test_ing_structured_86() -> None:
    df = parse_mt940(ING_SEPA.encode())
    a, b, c = df.to_dict("records")
    assert (
        a["counterparty_iban"] == "NL32INGB0000012345"
        and a["counterparty_name"] == "ING BANK NV INZAKE WEB"
    )
    assert (
        a["remittance"] == "EV10001REP1000000T1000"
        and a["end_to_end_id"] == "EV12341REP1231456T1234"
    )
    assert a["booking_date"] == dt.date(2014, 2, 20) and a["bank_reference"] == "00000000001005"
    assert b["structured_reference"] == "5000056789012345" and pd.isna(b["end_to_end_id"])
    assert c["reversal"] and c["amount_cents"] == -50000 and c["return_reason"] == "AM04"


def test_abn_amro_sepa_86() -> None:
    row = parse_mt940(ABN_SEPA.encode()).iloc[0]
    assert (row["counterparty_iban"], row["counterparty_name"]) == (
        "NL20INGB0001234567",
        "P. JANSEN",
    )
    assert (
        row["remittance"] == "BETALINGSKENMERK 5000 0567 8901 2345" and row["amount_cents"] == 4500
    )


def test_codewords_split() -> None:
    assert parse_86("/EREF/X1//MARF/M-9//CSID/NL00ZZZ//REMI/USTD//abc/") == {
        "EREF": "X1",
        "MARF": "M-9",
        "CSID": "NL00ZZZ",
        "REMI": "USTD//abc",
    }
    assert parse_86("free text with /EREF/ inside") == {}


def test_a_broken_line_is_named() -> None:
    bad = ING_SEPA.replace(":61:1402200220C1,56", ":61:14022X0220C1,56")
    with pytest.raises(StatementError, match=r"line 5: :61: '14022X0220C1,56"):
        parse_mt940(bad.encode(), "x.sta")
    with pytest.raises(StatementError, match="no MT940 tags"):
        parse_mt940(b"hello", "x.sta")


def test_latin1_files_are_read() -> None:
    data = ABN_SEPA.replace("P. JANSEN", "P. MÜLLER").encode("iso-8859-15")
    assert parse_mt940(data).iloc[0]["counterparty_name"] == "P. MÜLLER"


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 10**9), st.sampled_from(["C", "D", "RC", "RD"])),
        min_size=1,
        max_size=12,
    )
)
def test_amounts_and_signs_round_trip(entries: list[tuple[int, str]]) -> None:
    lines = [":20:X", ":25:NL69INGB0123456789EUR", ":28C:1", ":60F:C140219EUR0,00"]
    for cents, mark in entries:
        lines += [
            f":61:1402200220{mark}{cents // 100},{cents % 100:02d}NTRFNONREF",
            ":86:/REMI/USTD//x/",
        ]
    lines += [":62F:C140220EUR0,00", "-"]
    df = parse_mt940("\n".join(lines).encode())
    expect = [c if m in ("C", "RD") else -c for c, m in entries]
    assert list(df["amount_cents"]) == expect
    assert list(df["reversal"]) == [m.startswith("R") for _, m in entries]
    assert all(r["amount"] for r in entries_as_json_rows(df))


LAYOUTS = Path(__file__).parents[1] / "data" / "mt940"


@pytest.mark.parametrize("name", ["knab.sta", "triodos.sta"])
def test_layout_samples_agree_with_the_established_parser(name: str) -> None:
    ours = parse_mt940((LAYOUTS / name).read_bytes(), name)
    theirs = list(mt940.parse(str(LAYOUTS / name)))
    assert len(ours) == len(theirs) == 2
    for row, t in zip(ours.itertuples(), theirs, strict=True):
        assert Decimal(row.amount_cents) / 100 == t.data["amount"].amount
        assert row.value_date == t.data["date"]


@pytest.mark.parametrize(
    ("name", "iban", "payer", "text"),
    [
        ("knab.sta", "NL91ABNA0417164300", "J DE VRIES", "FACTUUR F2026-0000151 HUUR NOVEMBER"),
        ("sns.sta", "NL91ABNA0417164300", "j. de vries", "5000056789012345 huur november"),
        ("asn.sta", "NL91ABNA0417164300", "j. de vries", "5000056789012345 huur november"),
        (
            "triodos.sta",
            "NL91ABNA0417164300",
            None,
            "J DE VRIES DORPSSTRAAT 5 1234 AB DORP FACTUUR F2026-0000151 HUUR NOVEMBER",
        ),
    ],
)
def test_each_banks_layout_gives_payer_and_text(name: str, iban: str, payer, text: str) -> None:  # type: ignore[no-untyped-def]
    first = entries_as_json_rows(parse_statement((LAYOUTS / name).read_bytes(), name))[0]
    assert first["amount"] in ("412.50", "596.56") and first["booking_date"] == "2026-11-24"
    assert (first["counterparty_iban"], first["counterparty_name"]) == (iban, payer)
    assert first["remittance"] == text


def test_sns_is_read_where_the_established_parser_gives_up() -> None:
    """mt-940 cannot read SNS's :61: (the name on the line after the IBAN); we can."""
    with pytest.raises(RuntimeError):
        list(mt940.parse(str(LAYOUTS / "sns.sta")))
    df = parse_mt940((LAYOUTS / "sns.sta").read_bytes())
    assert list(df["amount_cents"]) == [59656] and df.iloc[0]["bank_reference"] is None
