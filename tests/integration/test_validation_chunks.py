"""Validation in chunks (``validation.chunk_rows``): a day's staged records of one entity
and source are validated and promoted a chunk at a time, so the stage's memory does not
grow with the portfolio. What it decides must be what one batch would have decided: the
same records promoted and quarantined for the same rules, a duplicate id still seen as
one (a chunk is a range of ids: every copy of an id is in one), and the batch-level checks weighing the
whole batch."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from flows import stages
from flows.context import Ctx, make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _ingested(tmp_path: Path, chunk_rows: int) -> Ctx:
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    ctx.cfg.validation.chunk_rows = chunk_rows
    for entity in stages.ENTITIES:
        stages.ingest_entity(ctx, "erp", entity)
    return ctx


def _staged(tmp_path: Path, chunk_rows: int) -> Ctx:
    ctx = _ingested(tmp_path, chunk_rows)
    with ctx.engine.begin() as conn:  # the first invoice exported twice, far apart
        first = conn.execute(
            select(s.staging).where(s.staging.c.entity == "invoices").order_by(s.staging.c.id)
        ).first()
        assert first is not None
        row = {k: v for k, v in first._mapping.items() if k != "id"}
        conn.execute(insert(s.staging).values(**{**row, "staged_at": utcnow()}))
    return ctx


def _ledger(ctx: Ctx) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        invoices = conn.execute(
            select(
                s.invoices.c.invoice_id,
                s.invoices.c.debtor_id,
                s.invoices.c.open_cents,
                s.invoices.c.status,
                s.invoices.c.bucket,
            ).order_by(s.invoices.c.invoice_id)
        ).all()
        debtors = conn.execute(
            select(s.debtors.c.debtor_id, s.debtors.c.name, s.debtors.c.bucket).order_by(
                s.debtors.c.debtor_id
            )
        ).all()
        quarantined = conn.execute(
            select(s.quarantine.c.entity, s.quarantine.c.record_id, s.quarantine.c.failures)
        ).all()
        staged = conn.execute(select(s.staging.c.id)).all()
    return {
        "invoices": invoices,
        "debtors": debtors,
        "quarantine": sorted((q.entity, q.record_id, str(q.failures)) for q in quarantined),
        "staged": staged,
    }


def test_chunks_decide_what_one_batch_decides(tmp_path: Path) -> None:
    whole = _staged(tmp_path / "whole", 100_000)
    small = _staged(tmp_path / "small", 40)
    with small.engine.connect() as conn:
        ids = list(
            conn.execute(
                select(s.staging.c.payload["invoice_id"].as_string())
                .where(s.staging.c.entity == "invoices")
                .order_by(s.staging.c.id)
            ).scalars()
        )
    parts = stages.validation_chunks(ids, 40)
    assert len(parts) > 10  # really in chunks
    assert sorted(i for p in parts for i in p) == list(range(len(ids)))
    for p in parts:  # every copy of an id in one chunk
        assert not {ids[i] for i in p} & {ids[i] for q in parts if q is not p for i in q}
    assert all(p == sorted(p) for p in parts)  # staged order within a chunk

    a, b = stages.validate_staged(whole), stages.validate_staged(small)
    assert a["entities"] == b["entities"] and a["stopped"] is b["stopped"] is None
    assert a["entities"]["invoices"]["rules"]["invoice.id_unique"] == 2  # both copies
    got, want = _ledger(small), _ledger(whole)
    assert got == want and got["staged"] == []
    # the two copies are one record in quarantine (the same payload), not in the ledger
    dup = [q[1] for q in got["quarantine"] if "invoice.id_unique" in q[2]]
    assert len(dup) == 1 and dup[0] not in {i.invoice_id for i in got["invoices"]}


def test_the_log_says_where_each_batchs_time_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One line per entity and source with its counts and chunks and every part of its
    time, in the order the parts come; one line for the stage's own parts."""
    ctx = _ingested(tmp_path, 40)
    monkeypatch.setattr(stages, "SPLIT_SHOWN_FROM", 0.0)  # every part named, however short
    with caplog.at_level(logging.INFO, logger="vangnet"):
        out = stages.validate_staged(ctx)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validate: ")]
    inv = out["entities"]["invoices"]
    parts = [
        "read",
        "debtors and allocations read",
        "parsed",
        "derived checks",
        "GX",
        "batch checks",
        "promoted",
        "quarantined",
        "staging cleared",
        "committed",
    ]
    line = (
        rf"validate: {inv['checked']} invoices from erp, {inv['passed']} passed,"
        rf" {inv['quarantined']} quarantined, in (\d+) chunks: "
        + ", ".join(rf"{p} \d+\.\d s" for p in parts)
    )
    found = [m for m in map(re.compile(line).fullmatch, said) if m]
    assert len(found) == 1, said
    assert int(found[0][1]) == -(-inv["checked"] // 40)  # no copy of an id: chunks of 40
    assert re.fullmatch(
        r"validate: GX context \d+\.\d s, batches \d+\.\d s, statistics \d+\.\d s,"
        r" data docs \d+\.\d s",
        said[-1],
    ), said
    assert len(said) == 3  # debtors, invoices (the demo's ERP stages no payments), the stage


@pytest.mark.parametrize("chunk_rows", [100_000, 40])
def test_an_open_total_jump_is_the_whole_batch(tmp_path: Path, chunk_rows: int) -> None:
    """Each chunk of 40 items moves the open total by a few percent; the batch moves it
    by half: the batch is what is weighed, so contact stops either way."""
    ctx = _ingested(tmp_path, chunk_rows)
    assert stages.validate_staged(ctx)["stopped"] is None
    erp = sqlite3.connect(tmp_path / "demo" / "erp.sqlite")
    erp.execute(
        "UPDATE facturen SET openstaand = '0.00', kosten = '0.00', "
        "gewijzigd_op = '2026-11-24T09:30:00' WHERE betaaldatum IS NULL AND rowid % 3 != 0"
    )
    erp.commit()
    erp.close()
    stages.ingest_entity(ctx, "erp", "invoices")
    out = stages.validate_staged(ctx)
    assert out["stopped"] and "open total" in out["stopped"], out
    with ctx.engine.connect() as conn:
        assert conn.execute(select(s.creditors.c.stopped_reason)).scalar() == out["stopped"]


def test_a_check_that_fails_leaves_the_chunks_before_it_written_and_the_rest_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while a chunk is checked stops the stage after the chunk before it was
    committed: that chunk's records are in the ledger (or quarantine) and out of
    staging, and every record from the failing chunk on is still staged."""
    ctx = _ingested(tmp_path, 40)
    with ctx.engine.connect() as conn:
        staged_invoices = conn.execute(
            select(s.staging.c.id).where(s.staging.c.entity == "invoices")
        ).all()
    calls: list[str] = []
    real_frame = stages.payload_frame

    def frame(entity: str, payloads: list[dict[str, Any]]) -> Any:
        calls.append(entity)
        if calls.count("invoices") == 2:
            raise RuntimeError("the second chunk's check broke")
        return real_frame(entity, payloads)

    monkeypatch.setattr(stages, "payload_frame", frame)
    with pytest.raises(RuntimeError, match="second chunk"):
        stages.validate_staged(ctx)
    ledger = _ledger(ctx)
    with ctx.engine.connect() as conn:
        left = conn.execute(select(s.staging.c.id).where(s.staging.c.entity == "invoices")).all()
        quarantined = conn.execute(
            select(s.quarantine.c.record_id).where(s.quarantine.c.entity == "invoices")
        ).all()
    first_chunk = len(staged_invoices) - len(left)
    assert 0 < first_chunk <= 40  # one chunk written, no more
    assert len(ledger["invoices"]) + len(quarantined) == first_chunk
