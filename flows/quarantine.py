"""Quarantine operations: list, show, release (re-validated), discard. Every action is
audited with the operator's id; personal values are shown masked, as in the artifacts.

A released record goes through the same rules as on the day it arrived, against the
ledger as it is now (an invoice whose debtor has since arrived passes; one with a bad
IBAN still fails and stays, with its new failures). A statement file that could not be
read is not released from here: fix it at the source and upload it again.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select, update

from flows import stages
from flows.context import Ctx
from ledger import schema as s
from ledger.records import PAYMENT_COLUMNS
from ledger.store import audit, insert_ignore, utcnow
from transforms import validation
from transforms.masking import mask_value

RELEASABLE = ("debtors", "invoices", "payments", "statement_line", "skp_message")


def list_open(ctx: Ctx, entity: str | None = None, rule: str | None = None) -> list[dict[str, Any]]:
    q = s.quarantine
    stmt = select(q).where(q.c.creditor_id == ctx.creditor_id, q.c.status == "open")
    if entity:
        stmt = stmt.where(q.c.entity == entity)
    with ctx.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(q.c.id)).all()
    out = []
    for r in rows:
        rules = [f["rule"] for f in r.failures]
        if rule and rule not in rules:
            continue
        out.append(
            {
                "id": r.id,
                "entity": r.entity,
                "source": r.source,
                "record": r.record_id,
                "rules": ", ".join(rules),
                "since": r.cycle_date.isoformat(),
            }
        )
    return out


def show(ctx: Ctx, qid: int) -> dict[str, Any]:
    """One record: its failures and its fields, personal ones masked."""
    row = _row(ctx, qid)
    return {
        "id": row.id,
        "entity": row.entity,
        "source": row.source,
        "record": row.record_id,
        "status": row.status,
        "since": row.cycle_date.isoformat(),
        "failures": row.failures,
        "fields": {k: mask_value(k, v) for k, v in row.payload.items() if k != "_errors"},
        "read_errors": row.payload.get("_errors"),
    }


def _row(ctx: Ctx, qid: int) -> Any:
    q = s.quarantine
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(q).where(q.c.creditor_id == ctx.creditor_id, q.c.id == qid)
        ).first()
    if row is None:
        raise LookupError(f"no quarantined record {qid} for {ctx.creditor_id}")
    return row


def release(ctx: Ctx, qids: list[int], operator: str) -> dict[str, Any]:
    """Re-validate and, where the record passes now, take it into the ledger."""
    out: dict[str, Any] = {"released": [], "still_failing": {}}
    validator = validation.Validator()
    for qid in qids:
        row = _row(ctx, qid)
        if row.status != "open":
            raise ValueError(f"record {qid} is {row.status}, not open")
        if row.entity not in RELEASABLE:
            raise ValueError(
                f"a {row.entity} cannot be released here: fix it at the source and send it again"
            )
        passed, failures = _revalidate(ctx, validator, row)
        q = s.quarantine
        with ctx.engine.begin() as conn:
            if passed is not None:
                now = utcnow()
                if row.entity == "skp_message":  # handled with the next exchange round
                    m = s.skp_messages
                    conn.execute(
                        update(m)
                        .where(m.c.creditor_id == ctx.creditor_id, m.c.message_id == row.record_id)
                        .values(status="new", note=None)
                    )
                elif row.entity == "statement_line":
                    insert_ignore(
                        conn, s.payments, stages.payment_rows(ctx, row.source, passed, now)
                    )
                else:
                    stages.promote(conn, ctx, row.entity, row.source, passed, now)
                conn.execute(
                    update(q).where(q.c.id == qid).values(status="released", resolved_at=now)
                )
                audit(
                    conn,
                    ctx.creditor_id,
                    operator,
                    "quarantine.released",
                    row.record_id,
                    {"id": qid, "entity": row.entity},
                )
                out["released"].append(qid)
            else:
                conn.execute(update(q).where(q.c.id == qid).values(failures=failures))
                audit(
                    conn,
                    ctx.creditor_id,
                    operator,
                    "quarantine.release_refused",
                    row.record_id,
                    {"id": qid, "rules": [f["rule"] for f in failures]},
                )
                out["still_failing"][qid] = [f["rule"] for f in failures]
    return out


def _revalidate(
    ctx: Ctx, validator: validation.Validator, row: Any
) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    payload = dict(row.payload)
    if row.entity == "skp_message":
        from connectors.schuldenknooppunt import InMessage
        from flows.debt_help import check_messages

        m = s.skp_messages
        with ctx.engine.connect() as conn:
            stored = conn.execute(
                select(m.c.payload).where(
                    m.c.creditor_id == ctx.creditor_id, m.c.message_id == row.record_id
                )
            ).scalar()
        if stored is None:
            raise LookupError(f"message {row.record_id} is no longer in the ledger")
        failures = check_messages(ctx, [InMessage.from_json(stored)]).get(row.record_id)
        return (None, failures) if failures else (pd.DataFrame(), [])
    if row.entity == "statement_line":
        df = pd.DataFrame([payload], columns=list(PAYMENT_COLUMNS))
        for c in ("booking_date", "value_date"):
            df[c] = pd.to_datetime(df[c], errors="coerce").dt.date
        prepared = validation.derive_statement_checks(df, ctx.today)
        rules = validation.statement_rules(tuple(ctx.cfg.policy.currencies))
        id_col = "payment_id"
    else:
        df = stages.payload_frame(row.entity, [payload])
        prepared, rules, id_col = stages.prepare_for_rules(ctx, row.entity, df)
    outcome = validator.validate(row.entity, df, rules, id_col, prepared, row.source)
    if outcome.rejected.empty:
        return outcome.valid, []
    return None, next(iter(outcome.failures.values()))


def discard(ctx: Ctx, qids: list[int], operator: str, reason: str) -> int:
    """Give up on records (a test row, a duplicate the source will never fix); audited."""
    if not reason.strip():
        raise ValueError("discarding needs a reason (it is audited)")
    q = s.quarantine
    n = 0
    with ctx.engine.begin() as conn:
        for qid in qids:
            row = conn.execute(
                select(q.c.record_id, q.c.status).where(
                    q.c.creditor_id == ctx.creditor_id, q.c.id == qid
                )
            ).first()
            if row is None or row.status != "open":
                raise ValueError(f"record {qid} is not an open quarantined record")
            conn.execute(
                update(q).where(q.c.id == qid).values(status="discarded", resolved_at=utcnow())
            )
            audit(
                conn,
                ctx.creditor_id,
                operator,
                "quarantine.discarded",
                row.record_id,
                {"id": qid, "reason": reason},
            )
            n += 1
    return n


def summary(ctx: Ctx) -> list[dict[str, Any]]:
    """Open records per entity and rule (for the weekly data-quality report)."""
    counts: dict[tuple[str, str], int] = {}
    for r in list_open(ctx):
        for rule in r["rules"].split(", "):
            counts[(r["entity"], rule)] = counts.get((r["entity"], rule), 0) + 1
    return [{"entity": e, "rule": k, "open": n} for (e, k), n in sorted(counts.items())]


__all__ = ["discard", "list_open", "release", "show", "summary"]
