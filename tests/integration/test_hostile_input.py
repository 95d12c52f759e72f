"""Hostile input, each kind given a clear error or a quarantine row, nothing executed,
nothing crashed: XML entity bombs and external entities in bank statements, SQL
injection strings, bidi-override spoofing and oversized values in the ERP export; and
the statement and CSV parsers fuzzed (hypothesis) to fail only with StatementError."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bench.generator import camt053, generate
from flows import stages
from flows.context import make_ctx
from flows.demo import seed, sftp_server
from ledger import schema as s
from tests.cycle_steps import ingest_and_validate
from transforms.contact_window import AMS
from transforms.csv_payments import CsvMapping
from transforms.statements import StatementError, parse_statement

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
DATA = Path(__file__).parents[1] / "data" / "mt940"

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-24</Dt></BookgDt>
<NtryDtls><TxDtls><RmtInf><Ustrd>&lol3;</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-24</Dt></BookgDt>
<NtryDtls><TxDtls><RmtInf><Ustrd>&xxe;</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"""


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return seed(tmp_path / "demo", 120, NOW.date()).parent


def test_entity_bombs_and_external_entities_are_quarantined_not_expanded(demo: Path) -> None:
    incoming = demo / "sftp" / "statements" / "incoming"
    (incoming / "bomb.xml").write_bytes(BOMB)
    (incoming / "xxe.xml").write_bytes(XXE)
    ctx = make_ctx(str(demo / "creditor.yaml"), NOW)
    ingest_and_validate(ctx)
    with sftp_server(demo) as srv:
        out = stages.fetch_statements(ctx, "bank", srv.port)
    assert out["failed"] == 2 and out["files"] == 1  # the real statement still went in
    failed = {p.name for p in (demo / "sftp" / "statements" / "failed").iterdir()}
    assert failed == {"bomb.xml", "xxe.xml"}
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(s.quarantine.c.record_id, s.quarantine.c.failures).where(
                s.quarantine.c.entity == "statement_file"
            )
        ).all()
        texts = conn.execute(select(s.payments.c.remittance)).scalars().all()
    reasons = {r: f[0]["value"] for r, f in rows}
    assert set(reasons) == {"bomb.xml", "xxe.xml"}
    assert all("DOCTYPE/ENTITY declarations are refused" in v for v in reasons.values())
    assert not any("root:" in (t or "") or "lollol" in (t or "") for t in texts)


def test_injection_spoofing_and_oversized_values_from_the_erp(demo: Path) -> None:
    erp = demo / "erp.sqlite"
    with sqlite3.connect(erp) as db:
        ids = [r[0] for r in db.execute("SELECT relatienr FROM relaties ORDER BY relatienr")]
        inv = [r[0] for r in db.execute("SELECT factuurnr FROM facturen ORDER BY factuurnr")]
        db.execute(
            "UPDATE relaties SET naam = ? WHERE relatienr = ?",
            ("Robert'); DROP TABLE relaties;--", ids[0]),
        )
        db.execute(
            "UPDATE relaties SET naam = ? WHERE relatienr = ?",
            ("Jan \u202eknaB\u202c de Vries", ids[1]),
        )
        db.execute("UPDATE relaties SET plaats = ? WHERE relatienr = ?", ("X" * 100_000, ids[2]))
        db.execute(
            "UPDATE facturen SET factuurnr = ? WHERE factuurnr = ?", ("F' OR '1'='1", inv[0])
        )
        db.execute(
            "UPDATE facturen SET betalingskenmerk = ? WHERE factuurnr = ?", ("1; DELETE", inv[1])
        )
        before = {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("relaties", "facturen")
        }
    ctx = make_ctx(str(demo / "creditor.yaml"), NOW)
    v = ingest_and_validate(ctx)
    assert v["entities"]["debtors"]["rules"].get("debtor.text_clean") == 1  # the bidi override
    assert v["entities"]["debtors"]["rules"].get("debtor.fields_fit") == 1  # the 100 kB city
    with ctx.engine.connect() as conn:
        names = dict(conn.execute(select(s.debtors.c.debtor_id, s.debtors.c.name)).all())
        invoice_ids = set(conn.execute(select(s.invoices.c.invoice_id)).scalars())
        q = conn.execute(select(s.quarantine.c.failures, s.quarantine.c.record_id)).all()
    # strings are data: stored as written, never run
    assert names[ids[0]] == "Robert'); DROP TABLE relaties;--"
    assert "F' OR '1'='1" in invoice_ids
    assert any(r == inv[1] and "invoice.reference_check_digit" in json.dumps(f) for f, r in q)
    # the quarantine row says which rule, and never holds the 100 kB value whole
    big = next(f for f, r in q if r == ids[2])
    assert big[0]["rule"] == "debtor.fields_fit" and len(json.dumps(big)) < 2_000
    n = ctx.cfg.policy.partitions
    for p in range(n):
        stages.assess_partition(ctx, p, n)
        stages.plan_partition(ctx, p, n)
    stages.write_back(ctx)
    with sqlite3.connect(erp) as db:
        after = {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("relaties", "facturen")
        }
    assert after == before


def _camt_sample() -> bytes:
    p = generate(30, NOW.date(), statement_lines=20)
    return camt053(p.statement, NOW.date())


SAMPLES = [_camt_sample(), *(f.read_bytes() for f in sorted(DATA.glob("*.sta")))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SAMPLES))),
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=8)), max_size=6),
    st.sampled_from(["auto", "camt053", "mt940"]),
)
def test_statement_parsers_fail_only_with_statement_errors(
    which: int, edits: list[tuple[int, bytes]], fmt: str
) -> None:
    data = bytearray(SAMPLES[which])
    for pos, chunk in edits:
        at = pos % (len(data) + 1)
        data[at : at + len(chunk)] = chunk
    with contextlib.suppress(StatementError):  # anything else fails the test
        parse_statement(bytes(data), "fuzz", fmt)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2_000) | st.text(max_size=500).map(lambda t: t.encode("utf-8")))
def test_csv_export_parser_fails_only_with_statement_errors(data: bytes) -> None:
    mapping = CsvMapping.model_validate(
        {
            "columns": {
                "booking_date": "Datum",
                "amount": "Bedrag",
                "counterparty_iban": "Rekening",
                "remittance": "Omschrijving",
            }
        }
    )
    with contextlib.suppress(StatementError):  # anything else fails the test
        parse_statement(b"Datum;Bedrag;Rekening;Omschrijving\n" + data, "fuzz.csv", "csv", mapping)
