import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generator import camt053
from transforms.statements import StatementError, entries_as_json_rows, parse_camt053


def test_oca_camt053_sample(corpus: Path) -> None:
    df = parse_camt053((corpus / "oca-test-camt053.xml").read_bytes(), "oca")
    # three entries; the batch entry with NbOfTxs 2 is split into its transactions
    assert len(df) == 4
    assert list(df["amount_cents"]) == [-75425, -56405, -10000, 140531]
    rev = df[df["reversal"]]
    assert len(rev) == 2 and set(rev["return_reason"]) == {"AC06"}
    assert df.iloc[0]["end_to_end_id"] == "435005714488-ABNO33052620"
    assert df.iloc[0]["counterparty_iban"] == "NL46ABNA0499998748"  # the creditor of a debit


def test_json_rows_have_signed_decimal_strings(corpus: Path) -> None:
    rows = entries_as_json_rows(parse_camt053((corpus / "oca-test-camt053.xml").read_bytes()))
    assert rows[0]["amount"] == "-754.25" and rows[0]["booking_date"] == "2014-01-05"
    assert rows[3]["amount"] == "1405.31"


def test_entity_expansion_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Document>&b;</Document>'
    with pytest.raises(StatementError, match="DOCTYPE/ENTITY"):
        parse_camt053(bomb, "bomb.xml")


def test_broken_xml_names_the_line() -> None:
    with pytest.raises(StatementError, match=r"broken.xml: line 2"):
        parse_camt053(b"<Document>\n<BkToCstmrStmt></Document>", "broken.xml")


def test_bad_amount_names_the_entry() -> None:
    doc = camt053(
        pd.DataFrame(
            [
                {
                    "amount": "12.50",
                    "name": "A",
                    "iban": None,
                    "structured": None,
                    "text": "x",
                    "e2e": "E",
                }
            ]
        ),
        dt.date(2026, 11, 23),
    )
    doc = doc.replace(b">12.50<", b">12,50<")  # balance and entry alike
    with pytest.raises(
        StatementError, match=r"s.xml: Stmt\[1\]/Ntry\[1\]: Amt .12,50. is not a decimal"
    ):
        parse_camt053(doc, "s.xml")


amounts = st.decimals(min_value="0.01", max_value="99999.99", places=2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(amounts, st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)),
        min_size=1,
        max_size=20,
    )
)
def test_round_trip_of_generated_statements(rows: list) -> None:
    frame = pd.DataFrame(
        [
            {
                "amount": f"{a:.2f}",
                "name": "N",
                "iban": "NL91ABNA0417164300",
                "structured": None,
                "text": t or None,
                "e2e": f"E{i}",
            }
            for i, (a, t) in enumerate(rows)
        ]
    )
    df = parse_camt053(camt053(frame, dt.date(2026, 1, 5)))
    assert len(df) == len(rows)
    assert list(df["amount_cents"]) == [int(a * 100) for a, _ in rows]


CAMT_08 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-24T06:00:00</CreDtTm></GrpHdr>
  <Stmt><Id>S1</Id><Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>
   <Ntry><Amt Ccy="EUR">120.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>2026-11-24</Dt></BookgDt><ValDt><Dt>2026-11-24</Dt></ValDt>
    <NtryDtls><TxDtls><Refs><EndToEndId>E2E-1</EndToEndId></Refs>
     <Amt Ccy="EUR">120.00</Amt>
     <RltdPties><Dbtr><Pty><Nm>J. de Vries</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>NL20INGB0001234567</IBAN></Id></DbtrAcct></RltdPties>
     <RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>CUR</Issr></Tp><Ref>5000056789012345</Ref></CdtrRefInf></Strd></RmtInf>
    </TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="EUR">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts><BookgDt><Dt>2026-11-24</Dt></BookgDt></Ntry>
  </Stmt></BkToCstmrStmt></Document>"""


def test_camt_053_001_08_party_wrapper_and_status_code() -> None:
    df = parse_camt053(CAMT_08, "v8.xml")
    assert len(df) == 1  # the pending entry is not a payment
    row = df.iloc[0]
    assert (row["counterparty_name"], row["counterparty_iban"]) == (
        "J. de Vries",
        "NL20INGB0001234567",
    )
    assert row["structured_reference"] == "5000056789012345" and row["amount_cents"] == 12000


def test_layout_whitespace_does_not_change_what_is_read(corpus: Path) -> None:
    """The parser drops the indentation between elements: the same document written
    compactly, indented or with blank remittance lines reads the same."""
    from lxml import etree

    for doc in [CAMT_08, (corpus / "oca-test-camt053.xml").read_bytes()]:
        root = etree.fromstring(doc)
        for el in root.iter():
            if el.text is not None and not el.text.strip():
                el.text = None
            el.tail = None
        compact = etree.tostring(root)
        indented = etree.tostring(root, pretty_print=True)

        def read(data: bytes) -> pd.DataFrame:  # the id holds the file's hash
            return parse_camt053(data).drop(columns=["payment_id"])

        want = read(compact)
        assert len(want) > 0
        pd.testing.assert_frame_equal(read(indented), want)
        pd.testing.assert_frame_equal(read(doc), want)
    blank = CAMT_08.replace(
        b"<RmtInf><Strd>", b"<RmtInf><Ustrd>   </Ustrd>\n<Ustrd> rest volgt </Ustrd><Strd>"
    )
    assert parse_camt053(blank).iloc[0]["remittance"] == "rest volgt"


def test_a_document_that_is_not_camt_053_is_named_as_such() -> None:
    """The root is judged once the file parsed: another message's entries are not read,
    whatever they hold, and a file with no CAMT element at all is named the same way."""
    camt052 = CAMT_08.replace(b"camt.053.001.08", b"camt.052.001.08").replace(
        b"<CdtDbtInd>CRDT", b"<CdtDbtInd>XXXX"
    )
    assert camt052 != CAMT_08
    for doc in [camt052, b"<Invoice><Ntry/></Invoice>", b"<Document/>"]:
        with pytest.raises(StatementError, match=r"^odd.xml: root element is not a camt.053"):
            parse_camt053(doc, "odd.xml")


def test_a_declaration_is_refused_wherever_and_however_written() -> None:
    """Behind a long comment or in lower case, a DOCTYPE is refused before parsing."""
    ns = b'xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"'
    for decl in [b'<!DOCTYPE d SYSTEM "file:///etc/passwd">', b'<!doctype d [<!entity a "a">]>']:
        doc = (
            b"<?xml version='1.0'?><!-- "
            + b"x" * 5000
            + b" -->"
            + decl
            + b"<Document "
            + ns
            + b"/>"
        )
        with pytest.raises(StatementError, match="DOCTYPE/ENTITY declarations are refused"):
            parse_camt053(doc, "d.xml")


@pytest.mark.parametrize("name", ["oca-test-camt053.xml", "ing.sta", "abnamro.sta"])
def test_a_mapped_file_reads_as_its_bytes(corpus: Path, tmp_path: Path, name: str) -> None:
    """The cycle maps a downloaded statement (a rent day's is 400 MB) instead of reading
    it into the heap: CAMT.053 streams from the mapping, MT940 gets its bytes; the format
    is told the same way, and the frame is the same."""
    import mmap

    from transforms.statements import parse_statement

    path = tmp_path / name
    path.write_bytes(b"\n  " + (corpus / name).read_bytes())  # whitespace before "<" or ":"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        mapped = parse_statement(data, name)
        again = parse_statement(data, name)  # read from its start each time
    expected = parse_statement(path.read_bytes(), name)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(mapped, expected)
    pd.testing.assert_frame_equal(again, expected)


def test_a_mapped_file_over_the_limit_is_refused_before_it_is_read(
    corpus: Path, tmp_path: Path
) -> None:
    import mmap

    from transforms.statements import parse_statement

    path = tmp_path / "ing.sta"
    path.write_bytes((corpus / "ing.sta").read_bytes())
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for fmt in ("camt053", "mt940"):
            with pytest.raises(StatementError, match="exceeds the 100 limit"):
                parse_statement(data, "ing.sta", fmt, max_bytes=100)
