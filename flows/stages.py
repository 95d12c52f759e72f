"""The stages of the daily cycle as plain functions of a ``Ctx`` (the service layer).

``flows/cycle.py`` wraps them in Prefect tasks and flows; tests call them directly too.
Each stage reads what it needs from the ledger, commits its own results, and returns a
small summary (counts and ids only, never personal data) for the artifacts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import mmap
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    update,
)

from connectors.exact_online import ExactClient, ExactReader, ExactWriter
from connectors.exact_online.settings import ExactOnlineSettings
from connectors.letters import LetterChannel, LetterSettings
from connectors.messagebird import MessageBirdChannel, MessageBirdSettings
from connectors.odbc import OdbcReader, OdbcWriter
from connectors.outbox import OutboxChannel
from connectors.salesforce import SalesforceClient, SalesforceReader, SalesforceWriter
from connectors.salesforce.settings import SalesforceSettings
from connectors.sendgrid import SendGridChannel, SendGridSettings
from connectors.sftp import SftpClient
from connectors.sftp.client import ChecksumMismatch, ChecksumMissing
from connectors.sftp.settings import SftpSettings
from flows.ahead import ReadAhead
from flows.config import resolve_secret
from flows.context import Ctx
from flows.memory import releasing_memory
from ledger import schema as s
from ledger.ports import Channel, Cursor, Page, SourceReader, StatusWriter
from ledger.records import (
    DEBTOR_COLUMNS,
    ERP_PAYMENT_COLUMNS,
    INVOICE_COLUMNS,
    PAYMENT_COLUMNS,
    OutboundMessage,
    WriteBack,
    WriteResult,
    json_column,
    json_records,
    ledger_column,
    tuples,
)
from ledger.store import (
    ColumnRows,
    audit,
    chunks,
    dirty_tracking,
    frame,
    frame_in,
    get_cursor,
    insert_ignore,
    json_loads_staged,
    json_texts,
    refresh_statistics,
    set_cursor,
    stage_payloads,
    update_many,
    upsert,
    utcnow,
)
from ledger.tokens import TokenStore
from transforms import (
    experiments,
    messages,
    segments,
    selfservice,
    signals,
    treatment,
    validation,
)
from transforms.contact_window import AMS, ContactWindow
from transforms.matching import MatchInputs, MatchResult, match_payments
from transforms.partition import bucket_column, bucket_of, partition_buckets
from transforms.statements import StatementError, parse_statement
from transforms.wik import (
    DEFAULT_INTEREST_RATES,
    SMALL_CLAIM_CENTS,
    SMALL_CLAIMS_WINDOW_DAYS,
    RateUnknown,
    capped_small_claim_costs,
    statutory_interest_cents,
    wik_deadline,
)

log = logging.getLogger("vangnet")

ENTITIES = ("debtors", "invoices", "payments")  # validated in this order (references)
ACTOR = "daily-cycle"


# --------------------------------------------------------------------------- ingest
def reader_for(ctx: Ctx, source: str) -> SourceReader:
    """The SourceReader of a configured source (the composition root builds connectors)."""
    settings = ctx.cfg.reader_sources()[source]
    if isinstance(settings, SalesforceSettings):
        return SalesforceReader(_salesforce_client(ctx, settings), source)
    if isinstance(settings, ExactOnlineSettings):
        return ExactReader(exact_client(ctx, source), source)
    return OdbcReader(settings, resolve_secret(settings.password, ctx.cfg.base_dir), source=source)


def writer_for(ctx: Ctx, target: str) -> StatusWriter:
    settings = ctx.cfg.reader_sources()[target]
    if isinstance(settings, SalesforceSettings):
        return SalesforceWriter(_salesforce_client(ctx, settings))
    if isinstance(settings, ExactOnlineSettings):
        return ExactWriter(exact_client(ctx, target))
    return OdbcWriter(settings, resolve_secret(settings.password, ctx.cfg.base_dir))


def sftp_client(ctx: Ctx, settings: SftpSettings) -> SftpClient:
    """An SFTP client with the secrets its settings name (statements, the portal route,
    the doctor)."""
    return SftpClient(
        settings,
        resolve_secret(settings.password, ctx.cfg.base_dir),
        resolve_secret(settings.private_key, ctx.cfg.base_dir),
    )


def _salesforce_client(ctx: Ctx, settings: SalesforceSettings) -> SalesforceClient:
    cid = resolve_secret(settings.client_id, ctx.cfg.base_dir)
    secret = resolve_secret(settings.client_secret, ctx.cfg.base_dir)
    assert cid is not None and secret is not None
    return SalesforceClient(settings, cid, secret)


def exact_client(ctx: Ctx, source: str) -> ExactClient:
    settings = ctx.cfg.reader_sources()[source]
    assert isinstance(settings, ExactOnlineSettings)
    cid = resolve_secret(settings.client_id, ctx.cfg.base_dir)
    secret = resolve_secret(settings.client_secret, ctx.cfg.base_dir)
    assert cid is not None and secret is not None
    return ExactClient(settings, cid, secret, TokenStore(ctx.engine, ctx.creditor_id, source))


@releasing_memory
def ingest_entity(ctx: Ctx, source: str, entity: str) -> dict[str, Any]:
    """Read changed records page by page into staging; the cursor moves only with the
    page it belongs to, in the same transaction."""
    reader = reader_for(ctx, source)
    since = _get_cursor(ctx, source, entity)
    pages = rows = 0

    def prepared(page: Page) -> tuple[list[str], Cursor]:
        return json_texts(page.frame), page.cursor  # written as JSON text once, here

    # the next page is read (and made JSON) on a thread while this one is written
    with ReadAhead(reader.read(entity, since), prepared) as ahead:
        for payloads, cursor in ahead:
            with ctx.engine.begin() as conn:
                stage_payloads(conn, ctx.creditor_id, source, entity, payloads, utcnow())
                set_cursor(conn, ctx.creditor_id, source, entity, cursor)
            pages += 1
            rows += len(payloads)
    out: dict[str, Any] = {"source": source, "entity": entity, "pages": pages, "rows": rows}
    client = getattr(reader, "client", None)
    if client is not None:  # an API source: report the budget used
        out["api_requests"] = client.requests
        out["api_usage"] = json.dumps(client.usage)
    return out


def _get_cursor(ctx: Ctx, source: str, entity: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return get_cursor(conn, ctx.creditor_id, source, entity)


# ------------------------------------------------------------------------- validate
@releasing_memory
def validate_staged(ctx: Ctx, validator: validation.Validator | None = None) -> dict[str, Any]:
    """Promote staged records to the ledger or quarantine them; stop contact for a
    creditor whose export is clearly broken."""
    stage = Split()
    validator = validator or validation.Validator(data_docs_dir(ctx))
    stage.took("GX context")
    out: dict[str, Any] = {"entities": {}, "stopped": None, "data_docs": None}
    for entity in ENTITIES:
        read_from = time.perf_counter()
        with ctx.engine.connect() as conn:
            staged = frame(
                conn,
                select(
                    s.staging.c.id,
                    s.staging.c.source,
                    # as text on every ledger: psycopg2 decodes a json column itself, with
                    # the standard library (orjson, in _validate_part, is 3x faster)
                    cast(s.staging.c.payload, Text).label("payload"),
                    # the record's id, for the chunks: read by the database, not parsed
                    # from every payload once more here (1.8-3.4 s of a million invoices)
                    s.staging.c.payload[ID_COLUMNS[entity]].as_string().label("record_id"),
                )
                .where(s.staging.c.creditor_id == ctx.creditor_id, s.staging.c.entity == entity)
                .order_by(s.staging.c.id),
            )
        read = time.perf_counter() - read_from
        if staged.empty:
            out["entities"][entity] = {
                "checked": 0,
                "passed": 0,
                "quarantined": 0,
                "changed": 0,
                "rules": {},
            }
            continue
        for source, part in staged.groupby("source", sort=True):
            split = Split()  # the entity's read, by each source's share of its rows
            split.add("read", read * len(part) / len(staged))
            summary, stop = _validate_part(ctx, validator, entity, str(source), part, split)
            prev = out["entities"].get(entity)
            out["entities"][entity] = summary if prev is None else _merge(prev, summary)
            out["stopped"] = out["stopped"] or stop
    stage.took("batches")
    with ctx.engine.begin() as conn:  # the next stages read what was promoted
        refresh_statistics(
            conn,
            {PROMOTED_TO[e]: summary["changed"] for e, summary in out["entities"].items()},
        )
    if out["stopped"]:
        with ctx.engine.begin() as conn:
            conn.execute(
                update(s.creditors)
                .where(s.creditors.c.creditor_id == ctx.creditor_id)
                .values(stopped_reason=out["stopped"])
            )
            audit(
                conn,
                ctx.creditor_id,
                ACTOR,
                "creditor.stopped",
                ctx.creditor_id,
                {"reason": out["stopped"], "cycle_date": ctx.today.isoformat()},
            )
        log.error("creditor %s stopped: %s", ctx.creditor_id, out["stopped"])
    stage.took("statistics")
    out["data_docs"] = validator.build_docs()
    stage.took("data docs")
    log.info("validate: %s", stage.shown() or "nothing of note")
    return out


def data_docs_dir(ctx: Ctx) -> str | None:
    """Where this run's GX Data Docs go: ``validation.data_docs_dir/<cycle date>``."""
    d = ctx.cfg.validation.data_docs_dir
    return str(ctx.cfg.path(d) / ctx.today.isoformat()) if d else None


def quarantine_rows(
    ctx: Ctx,
    source: str,
    entity: str,
    outcome: validation.ValidationOutcome,
    now: dt.datetime,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Quarantine rows for the records a validation rejected: each with every rule it
    broke; the fingerprint makes the same record arriving again one row."""
    rows = []
    for rid, rec in zip(outcome.rejected_keys, json_records(outcome.rejected), strict=True):
        payload = {**rec, **(extra or {})}
        rows.append(
            {
                "creditor_id": ctx.creditor_id,
                "source": source,
                "entity": entity,
                "record_id": rid,
                "fingerprint": hashlib.sha256(
                    json.dumps(payload, sort_keys=True, default=str).encode()
                ).hexdigest(),
                "failures": outcome.failures.get(rid, []),
                "payload": payload,
                "status": "open",
                "cycle_date": ctx.today,
                "created_at": now,
            }
        )
    return rows


def payload_frame(entity: str, payloads: list[dict[str, Any]]) -> pd.DataFrame:
    """Staged (or quarantined) payloads back to the canonical frame of their entity."""
    cols = list(
        {"debtors": DEBTOR_COLUMNS, "invoices": INVOICE_COLUMNS, "payments": ERP_PAYMENT_COLUMNS}[
            entity
        ]
    )
    df = pd.DataFrame(payloads, columns=[*cols, "_errors"])
    for c in ("invoice_date", "due_date", "paid_date", "paid_on"):
        if c in df:
            df[c] = pd.to_datetime(df[c], errors="coerce").dt.date
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


#: each staged entity's record id column
ID_COLUMNS = {"debtors": "debtor_id", "invoices": "invoice_id", "payments": "payment_id"}
#: the ledger table each entity's valid records are promoted to
PROMOTED_TO = {"debtors": s.debtors, "invoices": s.invoices, "payments": s.erp_payments}


def prepare_for_rules(
    ctx: Ctx, entity: str, df: pd.DataFrame, known: set[str] | None = None
) -> tuple[pd.DataFrame, list[validation.Rule], str]:
    """(the frame with derived check columns, the entity's rules, its id column).
    ``known``: the creditor's debtor ids, when the caller has read them already."""
    if entity == "debtors":
        return validation.derive_debtor_checks(df), validation.debtor_rules(), ID_COLUMNS[entity]
    if known is None:
        known = _known_debtors(ctx)
    currencies = tuple(ctx.cfg.policy.currencies)
    if entity == "invoices":
        for c in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        prepared = validation.derive_invoice_checks(df, known, ctx.cfg.validation.max_due_days)
        return prepared, validation.invoice_rules(currencies), ID_COLUMNS[entity]
    df["amount_cents"] = pd.to_numeric(df["amount_cents"], errors="coerce").astype("Int64")
    return (
        validation.derive_payment_checks(df, known),
        validation.payment_rules(currencies),
        ID_COLUMNS[entity],
    )


def _known_debtors(ctx: Ctx) -> set[str]:
    with ctx.engine.connect() as conn:
        return set(
            conn.execute(
                select(s.debtors.c.debtor_id).where(s.debtors.c.creditor_id == ctx.creditor_id)
            ).scalars()
        )


def validation_chunks(record_ids: list[Any], chunk_rows: int) -> list[list[int]]:
    """The positions of a batch's staged records (their ids, in staged order, None
    where a payload has none) in chunks of about ``chunk_rows``, each in staged order.
    A chunk holds a range of record ids (in their text's order), so every copy of an
    id is in one chunk and a rule over the batch (``*.id_unique``) sees them together;
    the records without an id are one range too. A range, not a hash of the id: a
    chunk then writes one stretch of the ledger's key index (hashed, each chunk wrote
    all over it, and validate took 30% longer at 250k debtors). One chunk (every
    position) when the batch fits."""
    n = len(record_ids)
    if n <= chunk_rows:
        return [list(range(n))]
    keys = ["" if rid is None else str(rid) for rid in record_ids]
    order = sorted(range(n), key=keys.__getitem__)
    out: list[list[int]] = [[]]
    for i in order:
        cur = out[-1]
        if len(cur) >= chunk_rows and keys[i] != keys[cur[-1]]:
            out.append(cur := [])
        cur.append(i)
    return [sorted(c) for c in out]


class _BatchChecks:
    """What the batch-level checks weigh, over all of a batch's chunks: the share of
    rejects, the amounts, and (invoices) how far the batch moved the creditor's open
    total: the total the ledger held before the first chunk against the one after the
    last, as if the batch were validated at once."""

    def __init__(self, ctx: Ctx, entity: str) -> None:
        self.ctx, self.entity = ctx, entity
        self.checked = self.rejected = 0
        self.any_amount = False
        self.total: int | None = None  # the open total before the batch (invoices)

    def add(self, conn: Any, outcome: validation.ValidationOutcome) -> None:
        """Count a chunk's outcome, before its records are promoted (``conn``)."""
        self.checked += outcome.checked
        self.rejected += len(outcome.rejected)
        if self.entity != "invoices":
            return
        if not self.any_amount:
            self.any_amount = not validation.amounts_all_zero(outcome)
        if self.total is None:
            self.total = _open_total(conn, self.ctx)

    def stop(self) -> str | None:
        share = self.ctx.cfg.policy.max_reject_share
        stop = validation.batch_stop(
            self.entity, self.checked, self.rejected, not self.any_amount, share
        )
        v = self.ctx.cfg.validation
        total = self.total
        if stop or total is None or total <= 0 or total < v.min_open_total_cents:
            return stop  # the open-total check: invoices, above the minimum total
        with self.ctx.engine.connect() as conn:
            after = _open_total(conn, self.ctx)
        change = (after - total) / total
        if abs(change) > v.max_open_total_change:
            return (
                f"invoices: this export moved the open total from {total / 100:,.2f} to"
                f" {after / 100:,.2f} ({change:+.0%}), beyond the"
                f" {v.max_open_total_change:.0%} limit: the export looks broken"
            )
        return None


def _open_total(conn: Any, ctx: Ctx) -> int:
    """The creditor's open total in the ledger, in cents."""
    inv = s.invoices
    q = select(func.coalesce(func.sum(inv.c.open_cents), 0))
    return int(conn.execute(q.where(inv.c.creditor_id == ctx.creditor_id)).scalar() or 0)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    rules = dict(a["rules"])
    for k, v in b["rules"].items():
        rules[k] = rules.get(k, 0) + v
    return {k: (a[k] + b[k] if k != "rules" else rules) for k in a}


def _validate_part(
    ctx: Ctx,
    validator: validation.Validator,
    entity: str,
    source: str,
    part: pd.DataFrame,
    split: Split,
) -> tuple[dict[str, Any], str | None]:
    """One source's staged records of an entity, validated and promoted a chunk at a
    time (``validation_chunks``), each chunk with its staging rows in one transaction:
    a million invoices in one frame (and the rules' copies of it) were 3 GB of the
    stage's peak. The batch-level checks weigh the whole batch (``_BatchChecks``).
    ``split``: where the time goes, part by part, for the batch's log line."""
    took = split.took
    texts = part["payload"].tolist()
    staged_ids = part["id"].tolist()
    known = _known_debtors(ctx) if entity != "debtors" else None
    positions = validation_chunks(part["record_id"].tolist(), ctx.cfg.validation.chunk_rows)
    alloc = None
    if entity == "invoices" and len(positions) > 1:  # one read for every chunk
        with ctx.engine.connect() as conn:
            alloc = _allocated(conn, ctx, None)
    took("debtors and allocations read")
    checks = _BatchChecks(ctx, entity)
    summary: dict[str, Any] | None = None
    for chunk in positions:
        # read into dicts only here, for the frame: a day's million dicts held beside it
        # (and beside the rules' work on it) were 1.5 GB of the stage's peak
        df = payload_frame(entity, [json_loads_staged(texts[i]) for i in chunk])
        took("parsed")
        prepared, rules, id_col = prepare_for_rules(ctx, entity, df, known)
        took("derived checks")
        outcome = validator.validate(entity, df, rules, id_col, prepared, source)
        del df, prepared
        took("GX")
        now = utcnow()
        with ctx.engine.begin() as conn:
            checks.add(conn, outcome)
            took("batch checks")
            changed = promote(conn, ctx, entity, source, outcome.valid, now, alloc)
            took("promoted")
            new_q = insert_ignore(
                conn, s.quarantine, quarantine_rows(ctx, source, entity, outcome, now)
            )
            took("quarantined")
            for ids in chunks([int(staged_ids[i]) for i in chunk]):
                conn.execute(delete(s.staging).where(s.staging.c.id.in_(ids)))
            took("staging cleared")
        took("committed")
        one = {
            "checked": outcome.checked,
            "passed": len(outcome.valid),
            "quarantined": len(outcome.rejected),
            "new_in_quarantine": new_q,
            "changed": changed,
            "rules": {k: v for k, v in outcome.per_rule.items() if v},
        }
        summary = one if summary is None else _merge(summary, one)
    assert summary is not None  # a part has a row: it came from a groupby
    stop = checks.stop()
    took("batch checks")
    log.info(
        "validate: %d %s from %s, %d passed, %d quarantined, in %d chunks: %s",
        summary["checked"],
        entity,
        source,
        summary["passed"],
        summary["quarantined"],
        len(positions),
        split.shown() or "nothing of note",
    )
    return summary, stop


def promote(
    conn: Any,
    ctx: Ctx,
    entity: str,
    source: str,
    valid: pd.DataFrame,
    now: dt.datetime,
    alloc: dict[str, tuple[int, int, int]] | None = None,
) -> int:
    """The valid records into the ledger; the number changed. ``alloc``: what
    ``_allocated`` gives for every invoice, when the caller has read it already."""
    if valid.empty:
        return 0
    v = valid.drop(columns=["_errors"]).copy()
    v["creditor_id"] = ctx.creditor_id
    v["source"] = source
    v["updated_at"] = now
    if entity == "debtors":
        v["bucket"] = bucket_column(v["debtor_id"])
        rows = _promoted_rows(v, now)
        compared = [c for c in DEBTOR_COLUMNS if c != "debtor_id"]
        return upsert(
            conn,
            s.debtors,
            rows,
            ["creditor_id", "debtor_id"],
            [*compared, "updated_at", "source"],
            only_if_changed=compared,
        )
    if entity == "payments":
        v["bucket"] = bucket_column(v["debtor_id"])
        rows = _promoted_rows(v, now)
        cols = [c for c in ERP_PAYMENT_COLUMNS if c != "payment_id"]
        return upsert(
            conn,
            s.erp_payments,
            rows,
            ["creditor_id", "payment_id"],
            [*cols, "bucket", "updated_at", "source"],
            only_if_changed=cols,
        )
    # invoices: the ledger's open amount is the source's minus what vangnet allocated, and
    # so are its open costs and interest (component by component)
    if alloc is None:
        alloc = _allocated(conn, ctx, list(v["invoice_id"]) if len(v) <= 20_000 else None)
    # a column at a time (a Python loop over a day's million invoices took 1.8 s, this 0.2)
    n = len(v)
    a_total, a_costs, a_interest = (np.zeros(n, dtype=np.int64) for _ in range(3))
    if alloc:
        for k, i in enumerate(v["invoice_id"].tolist()):
            got = alloc.get(i)
            if got is not None:
                a_total[k], a_costs[k], a_interest[k] = got
    open_ = np.maximum(_int64(v["open_cents"]) - a_total, 0)
    costs = np.minimum(np.maximum(_int64(v["costs_cents"], 0) - a_costs, 0), open_)
    interest = np.minimum(np.maximum(_int64(v["interest_cents"], 0) - a_interest, 0), open_ - costs)
    v["open_cents"], v["costs_cents"], v["interest_cents"] = open_, costs, interest
    amount = _int64(v["amount_cents"])
    v["status"] = np.where(open_ == 0, "paid", np.where(open_ < amount, "partial", "open"))
    v["bucket"] = bucket_column(v["debtor_id"])
    v["prior_reminders"] = v["prior_reminders"].fillna(0).astype(int)
    rows = _promoted_rows(v, now)
    compared = [c for c in INVOICE_COLUMNS if c != "invoice_id"] + ["status", "bucket"]
    return upsert(
        conn,
        s.invoices,
        rows,
        ["creditor_id", "invoice_id"],
        [*compared, "updated_at", "source"],
        only_if_changed=compared,
    )


def _int64(col: pd.Series, gap: int | None = None) -> np.ndarray:
    """An amount column as int64; a gap is ``gap``, or an error where the rules allow
    none (an open amount, an amount: ``invoice.open_present``, ``amount_present``)."""
    return (col if gap is None else col.fillna(gap)).to_numpy(dtype=np.int64)


def _promoted_rows(v: pd.DataFrame, now: dt.datetime) -> ColumnRows:
    """The frame's rows as the ledger takes them, a column at a time (no mapping per
    row): Python values, dates as dates, gaps as None; and the stamp."""
    cols = {str(c): ledger_column(v[c]) for c in v.columns if c != "updated_at"}
    cols["updated_at"] = [now] * len(v)
    return ColumnRows(cols)


def _allocated(
    conn: Any, ctx: Ctx, invoice_ids: list[str] | None
) -> dict[str, tuple[int, int, int]]:
    """Per invoice what vangnet allocated: (total, costs, interest); all invoices of the
    creditor when ``invoice_ids`` is None (cheaper than a huge IN list)."""
    al = s.allocations
    q = select(
        al.c.invoice_id,
        func.sum(al.c.amount_cents),
        func.sum(al.c.costs_cents),
        func.sum(al.c.interest_cents),
    ).where(al.c.creditor_id == ctx.creditor_id)
    if invoice_ids is not None:
        q = q.where(al.c.invoice_id.in_(invoice_ids))
    return {
        r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0))
        for r in conn.execute(q.group_by(al.c.invoice_id))
    }


# ------------------------------------------------------------------------ debt help
# the Schuldenknooppunt exchange lives in flows/debt_help.py; holds are shared here
#: one statement object for every call (debt help cancels a debtor's contacts per
#: message: building the UPDATE each time cost several times running it)
_CANCEL_CONTACTS = (
    update(s.contacts)
    .where(
        s.contacts.c.creditor_id == bindparam("creditor"),
        s.contacts.c.debtor_id.in_(bindparam("debtors", expanding=True)),
        s.contacts.c.status == "planned",
    )
    .values(status="cancelled", last_error=bindparam("why"), updated_at=bindparam("at"))
)


def cancel_open_contacts(conn: Any, creditor_id: str, debtor_ids: str | set[str], why: str) -> int:
    """Cancel every still-planned contact of these debtors, in one statement each
    ``IN_CHUNK`` of them."""
    ids = [debtor_ids] if isinstance(debtor_ids, str) else sorted(debtor_ids)
    now = utcnow()
    n = 0
    for part in chunks(ids):
        bound = {"creditor": creditor_id, "debtors": list(part), "why": why, "at": now}
        res = conn.execute(_CANCEL_CONTACTS, bound)
        n += int(res.rowcount or 0)
    return n


def active_holds(conn: Any, creditor_id: str, today: dt.date) -> pd.DataFrame:
    h = s.holds
    return frame(
        conn,
        select(h.c.debtor_id).where(
            h.c.creditor_id == creditor_id,
            h.c.lifted_at.is_(None),
            h.c.starts_on <= today,
            (h.c.ends_on.is_(None)) | (h.c.ends_on >= today),
        ),
    )


# ------------------------------------------------------------------------ reconcile
@releasing_memory
def fetch_statements(ctx: Ctx, source: str, server_port: int | None = None) -> dict[str, Any]:
    """Pick up statement files over SFTP; each file enters the ledger once (by content
    hash) before it is moved to processed/ (or failed/ when it cannot be read)."""
    settings = ctx.cfg.sftp_sources()[source]
    if server_port is not None:
        settings = settings.model_copy(update={"port": server_port})
    out = {"files": 0, "duplicates": 0, "failed": 0, "entries": 0, "waiting_for_checksum": 0}
    local = ctx.var_dir("statements")
    with sftp_client(ctx, settings) as client:
        for name in client.list_new():
            t0 = time.perf_counter()
            try:
                got = client.download(name, local)
            except ChecksumMissing:
                out["waiting_for_checksum"] += 1  # still being uploaded: next run
                continue
            except ChecksumMismatch as exc:
                out["failed"] += 1
                _quarantine_file(ctx, source, name, "", "statement.checksum", str(exc))
                client.move(name, settings.failed_dir)
                continue
            with ctx.engine.connect() as conn:
                seen = conn.execute(
                    select(s.statement_files.c.file_name).where(
                        s.statement_files.c.creditor_id == ctx.creditor_id,
                        s.statement_files.c.content_sha256 == got.sha256,
                    )
                ).first()
            if seen:
                out["duplicates"] += 1
                client.move(name, settings.processed_dir)
                continue
            try:
                with _mapped(got.local_path) as data:
                    entries = parse_statement(
                        data,
                        name,
                        settings.format,
                        ctx.cfg.csv_mapping(source),
                        settings.max_file_bytes,
                    )
            except StatementError as exc:
                out["failed"] += 1
                _quarantine_file(ctx, source, name, got.sha256, "statement.parseable", str(exc))
                client.move(name, settings.failed_dir)
                continue
            t1 = time.perf_counter()
            entries, rejected = _check_statement_lines(ctx, source, name, entries)
            out["quarantined_lines"] = out.get("quarantined_lines", 0) + rejected
            t2 = time.perf_counter()
            now = utcnow()
            rows = payment_rows(ctx, source, entries, now)
            with ctx.engine.begin() as conn:
                new_lines = insert_ignore(conn, s.payments, rows)
                insert_ignore(
                    conn,
                    s.statement_files,
                    [
                        {
                            "creditor_id": ctx.creditor_id,
                            "content_sha256": got.sha256,
                            "source": source,
                            "file_name": name,
                            "format": settings.format,
                            "entries": len(rows),
                            "received_at": now,
                        }
                    ],
                )
                audit(
                    conn,
                    ctx.creditor_id,
                    ACTOR,
                    "statement.received",
                    name,
                    {"sha256": got.sha256, "entries": len(rows)},
                )
            with ctx.engine.begin() as conn:
                refresh_statistics(conn, {s.payments: new_lines})
            client.move(name, settings.processed_dir)
            out["files"] += 1
            out["entries"] += len(rows)
            log.info(
                "statement %s: %d lines, %d quarantined; downloaded and parsed %.1f s,"
                " checked %.1f s, stored %.1f s",
                name,
                len(rows),
                rejected,
                t1 - t0,
                t2 - t1,
                time.perf_counter() - t2,
            )
    return out


@contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """A downloaded file, mapped read-only (a rent day's statement is 400 MB: read into
    the heap, it was the bank lane's peak); an empty file (which cannot be mapped) as
    its bytes."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def payment_rows(
    ctx: Ctx, source: str, entries: pd.DataFrame, now: dt.datetime
) -> list[dict[str, Any]]:
    """Parsed bank lines as ``payments`` rows, waiting to be matched."""
    rows = []
    cols = [c for c in entries.columns if c in PAYMENT_COLUMNS]
    for row, reversal in zip(json_records(entries[cols]), entries["reversal"], strict=True):
        for c in ("booking_date", "value_date"):
            v = row.get(c)
            row[c] = dt.date.fromisoformat(v[:10]) if isinstance(v, str) else v
        row.update(
            creditor_id=ctx.creditor_id,
            source=source,
            status="new",
            allocated_cents=0,
            created_at=now,
        )
        row["reversal"] = bool(reversal)
        rows.append(row)
    return rows


def _check_statement_lines(
    ctx: Ctx, source: str, file_name: str, entries: pd.DataFrame
) -> tuple[pd.DataFrame, int]:
    """Bank lines through the statement suite; a bad line goes to quarantine with every
    rule it broke (it is never matched until released), the rest goes on."""
    if entries.empty:
        return entries, 0
    prepared = validation.derive_statement_checks(entries, ctx.today)
    outcome = validation.shared_validator().validate(
        "statement_lines",
        entries,
        validation.statement_rules(tuple(ctx.cfg.policy.currencies)),
        "payment_id",
        prepared,
        source,
    )
    valid = outcome.valid
    bad_refs = [
        entries.index[i]
        for i, rules in outcome.warnings.items()
        if "statement.reference_check_digit" in rules and entries.index[i] in valid.index
    ]
    if bad_refs:  # a reference that fails its check digit is not trusted as one
        valid = valid.copy()
        for ix in bad_refs:
            ref = valid.at[ix, "structured_reference"]
            text = valid.at[ix, "remittance"]
            valid.at[ix, "remittance"] = f"{text} {ref}" if isinstance(text, str) else ref
            valid.at[ix, "structured_reference"] = None
    if outcome.rejected.empty:
        return valid, 0
    rows = quarantine_rows(ctx, source, "statement_line", outcome, utcnow(), {"_file": file_name})
    with ctx.engine.begin() as conn:
        insert_ignore(conn, s.quarantine, rows)
    return valid, len(rows)


def _quarantine_file(ctx: Ctx, source: str, name: str, sha: str, rule: str, why: str) -> None:
    with ctx.engine.begin() as conn:
        insert_ignore(
            conn,
            s.quarantine,
            [
                {
                    "creditor_id": ctx.creditor_id,
                    "source": source,
                    "entity": "statement_file",
                    "record_id": name,
                    "fingerprint": sha or hashlib.sha256(f"{name}:{why}".encode()).hexdigest(),
                    "failures": [{"rule": rule, "column": "file", "value": why[:300]}],
                    "payload": {"file": name, "sha256": sha},
                    "status": "open",
                    "cycle_date": ctx.today,
                    "created_at": utcnow(),
                }
            ],
        )


RETRY_UNMATCHED_DAYS = 30
#: how far back allocations are history (IBANs that paid a debtor, payments to reverse)
HISTORY_DAYS = 400
#: where the mark of the matcher's inputs, as its last run left them, is kept
MATCH_MARK = ("ledger", "match")


def _match_windows(ctx: Ctx) -> tuple[dt.date, dt.date]:
    """The first booking date of the unmatched lines tried again, and of the history."""
    return (
        ctx.today - dt.timedelta(days=RETRY_UNMATCHED_DAYS),
        ctx.today - dt.timedelta(days=HISTORY_DAYS),
    )


def match_inputs(conn: Connection, ctx: Ctx) -> MatchInputs:
    """What the matcher weighs, as the ledger holds it now: the payments to weigh (none:
    the other frames are left empty), the open items, the debtors, the history."""
    inv_t, pay_t, al = s.invoices, s.payments, s.allocations
    retry_from, since = _match_windows(ctx)
    pay = frame(
        conn,
        # new lines, and recent ones nothing fitted yet: their invoice or debtor may
        # have arrived since (a payment read before the ERP export is not lost); the
        # columns the matcher weighs and the status, not the whole row (a timestamp and
        # an earlier run's suggestions decoded per line for nothing)
        select(*[pay_t.c[c] for c in PAYMENT_COLUMNS], pay_t.c.status).where(
            pay_t.c.creditor_id == ctx.creditor_id,
            (pay_t.c.status == "new")
            | ((pay_t.c.status == "unmatched") & (pay_t.c.booking_date >= retry_from)),
        ),
    )
    if pay.empty:
        return MatchInputs(pay, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    items = frame(
        conn,
        select(
            inv_t.c.invoice_id,
            inv_t.c.debtor_id,
            inv_t.c.open_cents,
            inv_t.c.costs_cents,
            inv_t.c.interest_cents,
            inv_t.c.payment_reference,
            inv_t.c.due_date,
        ).where(inv_t.c.creditor_id == ctx.creditor_id, inv_t.c.open_cents > 0),
    )
    debtors = frame(
        conn,
        select(s.debtors.c.debtor_id, s.debtors.c.name, s.debtors.c.iban).where(
            s.debtors.c.creditor_id == ctx.creditor_id
        ),
    )
    history = frame(
        conn,
        select(
            al.c.payment_id,
            al.c.invoice_id,
            inv_t.c.debtor_id,
            al.c.amount_cents,
            al.c.costs_cents,
            al.c.interest_cents,
            pay_t.c.end_to_end_id,
            pay_t.c.bank_reference,
            pay_t.c.counterparty_iban,
            pay_t.c.amount_cents.label("payment_amount_cents"),
            inv_t.c.open_cents.label("item_open_cents"),
            inv_t.c.costs_cents.label("item_costs_cents"),
            inv_t.c.interest_cents.label("item_interest_cents"),
        )
        .join(
            pay_t,
            and_(pay_t.c.creditor_id == al.c.creditor_id, pay_t.c.payment_id == al.c.payment_id),
        )
        .join(
            inv_t,
            and_(inv_t.c.creditor_id == al.c.creditor_id, inv_t.c.invoice_id == al.c.invoice_id),
        )
        .where(
            al.c.creditor_id == ctx.creditor_id,
            al.c.amount_cents > 0,
            pay_t.c.booking_date >= since,
        ),
    )
    return MatchInputs(pay, items, debtors, history)


#: the parts of a stage's split its log line names (``Split``): those that took this long (s)
SPLIT_SHOWN_FROM = 0.05


class Split:
    """Where a stage's time goes, part by part, for its log line: ``took(part)`` adds the
    time since the last lap (or since ``start``) to that part; a part named again adds
    up. ``shown()`` is the parts of at least ``SPLIT_SHOWN_FROM`` seconds, in the order
    they first came, as ``"name 1.2 s, other 0.3 s"``."""

    def __init__(self, start: float | None = None) -> None:
        self.parts: dict[str, float] = {}
        self.lap = time.perf_counter() if start is None else start

    def add(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def took(self, part: str) -> None:
        at = time.perf_counter()
        self.add(part, at - self.lap)
        self.lap = at

    def shown(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.parts.items() if v >= SPLIT_SHOWN_FROM)


@releasing_memory
def match_new_payments(ctx: Ctx) -> dict[str, Any]:
    """Allocate new payments to open items (or undo the payments they reverse); plan the
    status write-backs that follow.

    A run leaves the ledger at a fixed point of the matcher (``match_payments``): run
    again over it, the matcher changes nothing. So the run keeps the mark of the inputs
    it leaves (``MatchInputs.after``); a run that reads inputs with the same mark (the
    same day again, or a day without statement lines, ERP changes or new debtors) has
    nothing to do and says so, without matching the unmatched lines again."""
    inv_t, pay_t, al = s.invoices, s.payments, s.allocations
    retry_from, since = _match_windows(ctx)
    t0 = time.perf_counter()
    with ctx.engine.connect() as conn:
        inputs = match_inputs(conn, ctx)
        pay, items, debtors, history = inputs.payments, inputs.items, inputs.debtors, inputs.history
        if pay.empty:
            return _matched_summary(pay, None)
        policy = ctx.cfg.policy.match_policy()
        # a new line is never in the inputs a run leaves: no mark to compare then
        if not (pay["status"] == "new").any() and inputs.mark(policy) == get_cursor(
            conn, ctx.creditor_id, *MATCH_MARK
        ).get("mark"):
            log.info(
                "match: the %d payments to weigh and what they are weighed against are as"
                " the last run left them: nothing to do",
                len(pay),
            )
            return _matched_summary(pay, None, shown=_unmatched_shown(conn, ctx, pay))
    t1 = time.perf_counter()
    result = match_payments(pay, items, debtors, history, policy, history_from=since)
    t2 = time.perf_counter()
    after = inputs.after(result, retry_from, since)
    now = utcnow()
    split = Split(t2)  # the written part's own split, from the next mark's inputs on
    took = split.took
    took("inputs' mark")
    with ctx.engine.begin() as conn:
        if n := len(result.allocations):  # a column at a time, as promote's rows
            cols = {str(c): json_column(v) for c, v in result.allocations.items()}
            cols.update(creditor_id=[ctx.creditor_id] * n, created_at=[now] * n)
            insert_ignore(conn, al, ColumnRows(cols))
        took("allocations")
        update_many(
            conn,
            pay_t,
            {"creditor_id": ctx.creditor_id},
            ["payment_id"],
            [
                {
                    "payment_id": r.payment_id,
                    "status": r.status,
                    "allocated_cents": int(r.allocated_cents),
                    "unmatched_reason": r.unmatched_reason,
                    "suggestions": r.suggestions or None,
                }
                for r in tuples(result.payments)
            ],
        )
        took("payments")
        # one read of what the status write-backs need too (the version each is written
        # under): they are planned from the rows written here, not read back after
        ledger_side = {
            r[0]: (r[1], r[2])
            for r in frame_in(
                conn,
                lambda ids: select(
                    inv_t.c.invoice_id, inv_t.c.amount_cents, inv_t.c.source_version
                ).where(inv_t.c.creditor_id == ctx.creditor_id, inv_t.c.invoice_id.in_(ids)),
                result.invoices["invoice_id"],
            ).itertuples(index=False, name=None)
        }
        changed = []
        for r in tuples(result.invoices):
            open_ = int(r.open_cents)
            amount = ledger_side[r.invoice_id][0] if r.invoice_id in ledger_side else open_ + 1
            status = "paid" if open_ == 0 else ("open" if open_ >= amount else "partial")
            changed.append(
                {
                    "invoice_id": r.invoice_id,
                    "open_cents": open_,
                    "costs_cents": int(r.costs_cents),
                    "interest_cents": int(r.interest_cents),
                    "status": status,
                    "paid_date": ctx.today if status == "paid" else None,
                    "updated_at": now,
                }
            )
        update_many(conn, inv_t, {"creditor_id": ctx.creditor_id}, ["invoice_id"], changed)
        took("invoices")
        # an invoice the ledger does not hold (allocated, since deleted) is not written
        # back, as the read after the update would not have found it either
        planned = _status_write_backs(
            conn,
            ctx,
            [
                (c, ledger_side[c["invoice_id"]][1])
                for c in changed
                if c["invoice_id"] in ledger_side
            ],
        )
        took("write-backs")
        refresh_statistics(conn, {al: len(result.allocations), s.write_backs: planned})
        took("statistics")
        # in the same transaction: the mark names exactly the ledger these writes leave
        # (no time in it: the cursor row's updated_at says when)
        set_cursor(
            conn,
            ctx.creditor_id,
            *MATCH_MARK,
            {"mark": after.mark(policy) if after is not None else None},
        )
        took("inputs' mark")
    took("commit")
    shown = split.shown()
    log.info(
        "match: %d lines against %d open items: read %.1f s, weighed %.1f s (%d again in %d"
        " passes), written %.1f s%s",
        len(pay),
        len(items),
        t1 - t0,
        t2 - t1,
        result.weighed_again,
        result.passes,
        time.perf_counter() - t2,
        f" ({shown})" if shown else "",
    )
    return _matched_summary(pay, result, planned)


def _unmatched_shown(conn: Connection, ctx: Ctx, pay: pd.DataFrame) -> pd.DataFrame:
    """The first UNMATCHED_SHOWN unmatched payments of ``pay`` with the reason and the
    suggestions an earlier run stored (``match_inputs`` reads neither)."""
    ids = pay.loc[pay["status"] == "unmatched", "payment_id"].tolist()[:UNMATCHED_SHOWN]
    pay_t = s.payments
    stored = frame(
        conn,
        select(pay_t.c.payment_id, pay_t.c.unmatched_reason, pay_t.c.suggestions).where(
            pay_t.c.creditor_id == ctx.creditor_id, pay_t.c.payment_id.in_(ids)
        ),
    ).set_index("payment_id")
    return pd.DataFrame(
        {
            "payment_id": ids,
            "status": "unmatched",
            "unmatched_reason": [stored.at[i, "unmatched_reason"] for i in ids],
            "suggestions": [stored.at[i, "suggestions"] for i in ids],
        },
        columns=["payment_id", "status", "unmatched_reason", "suggestions"],
    )


def _matched_summary(
    pay: pd.DataFrame,
    result: MatchResult | None,
    planned: int = 0,
    shown: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The match stage's figures; without a result (nothing to do), the payments read
    as they stand, with ``shown`` (see ``_unmatched_shown``) for the artifact's list."""
    outcome = result.payments if result is not None else pay
    unmatched = outcome[outcome["status"] == "unmatched"]
    listed = unmatched if result is not None else shown
    if listed is None:
        listed = pd.DataFrame(columns=["payment_id", "unmatched_reason", "suggestions"])
    allocs = result.allocations if result is not None else None
    return {
        "payments": len(pay),
        "matched": int(outcome["status"].isin(["matched", "overpaid"]).sum())
        if result is not None
        else 0,
        "unmatched": len(unmatched),
        "reversed": int((outcome["status"] == "reversed").sum()) if result is not None else 0,
        "allocated_cents": int(allocs["amount_cents"].sum())
        if allocs is not None and len(allocs)
        else 0,
        "write_backs_planned": planned,
        "weighed_again": result.weighed_again if result is not None else 0,
        "unchanged": result is None and len(pay) > 0,
        # for the artifact: the first UNMATCHED_SHOWN (a Prefect artifact is not a
        # report of 40,000 rows); all of them are in the ledger, status unmatched
        "unmatched_list": [
            {"payment_id": p, "reason": r, "suggestion": (sg[0]["debtor_id"] if sg else "")}
            for p, r, sg in zip(
                listed["payment_id"][:UNMATCHED_SHOWN],
                listed["unmatched_reason"][:UNMATCHED_SHOWN],
                listed["suggestions"][:UNMATCHED_SHOWN],
                strict=True,
            )
        ],
    }


UNMATCHED_SHOWN = 500


STATUS_NL = {"paid": "betaald", "partial": "deels betaald", "open": "open"}


#: ``json.dumps(..., sort_keys=True)``'s text exactly (a change id must not change with
#: a release), without building an encoder for every change (2 s at 200k changes)
_CHANGE_TEXT = json.JSONEncoder(sort_keys=True)


def _write_back_row(
    ctx: Ctx,
    target: str,
    entity: str,
    record_id: str,
    values: dict[str, Any],
    version: str | None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """A planned write-back; its id derives from what it writes, so the same change is
    planned once however often it is computed. ``now``: one stamp for a call's many
    (each distinct stamp is formatted for the ledger again)."""
    change_id = hashlib.sha256(
        _CHANGE_TEXT.encode([ctx.creditor_id, target, entity, record_id, values]).encode()
    ).hexdigest()[:32]
    return {
        "creditor_id": ctx.creditor_id,
        "target": target,
        "entity": entity,
        "record_id": record_id,
        "change_id": change_id,
        "values": values,
        "expected_version": version,
        "status": "planned",
        "attempts": 0,
        "created_at": now or utcnow(),
    }


def plan_preference_write_backs(ctx: Ctx) -> int:
    """A debtor's preferred payment day and channel go back to the creditor's system,
    when its write-back target maps ``debtors``."""
    wb = ctx.cfg.write_back
    if wb is None or "debtors" not in ctx.cfg.write_back_entities():
        return 0
    p, d = s.preferences, s.debtors
    with ctx.engine.begin() as conn:
        prefs = conn.execute(
            select(p.c.debtor_id, p.c.preferred_day, p.c.channel, d.c.source_version)
            .join(d, and_(d.c.creditor_id == p.c.creditor_id, d.c.debtor_id == p.c.debtor_id))
            .where(p.c.creditor_id == ctx.creditor_id)
        ).all()
        now = utcnow()
        rows = [
            _write_back_row(
                ctx,
                wb.target,
                "debtors",
                r.debtor_id,
                {"preferred_day": r.preferred_day, "channel": r.channel},
                r.source_version,
                now,
            )
            for r in prefs
        ]
        return insert_ignore(conn, s.write_backs, rows)


def _plan_status_write_backs(conn: Any, ctx: Ctx, invoice_ids: list[str]) -> int:
    wb = ctx.cfg.write_back
    if wb is None or not invoice_ids:
        return 0
    inv = frame_in(
        conn,
        lambda ids: select(
            s.invoices.c.invoice_id,
            s.invoices.c.open_cents,
            s.invoices.c.costs_cents,
            s.invoices.c.interest_cents,
            s.invoices.c.status,
            s.invoices.c.source_version,
        ).where(s.invoices.c.creditor_id == ctx.creditor_id, s.invoices.c.invoice_id.in_(ids)),
        invoice_ids,
    )
    return _status_write_backs(
        conn,
        ctx,
        [(r._asdict(), r.source_version) for r in tuples(inv)],
    )


def _status_write_backs(
    conn: Any, ctx: Ctx, invoices: Sequence[tuple[Mapping[str, Any], str | None]]
) -> int:
    """Plan the status write-backs of these invoices: (its ledger row as now written
    (invoice_id, status, open_cents, costs_cents, interest_cents), the source version it
    is written under); the number newly planned."""
    wb = ctx.cfg.write_back
    if wb is None or not invoices:
        return 0
    now = utcnow()
    rows = [
        _write_back_row(
            ctx,
            wb.target,
            "invoices",
            r["invoice_id"],
            {
                "status": STATUS_NL.get(r["status"], r["status"]),
                "open_amount": f"{int(r['open_cents']) / 100:.2f}",
                "open_costs": f"{int(r['costs_cents']) / 100:.2f}",
                "open_interest": f"{int(r['interest_cents']) / 100:.2f}",
            },
            version,
            now,
        )
        for r, version in invoices
    ]
    return insert_ignore(conn, s.write_backs, rows)


# --------------------------------------------------------------------------- assess
def _partition_filter(table: Any, ctx: Ctx, p: int, n: int, only: list[str] | None = None) -> Any:
    """Partition ``p`` of ``n`` of a table with a ``bucket``; with ``only``, just those
    debtors of it. The buckets are listed (``partition_buckets``), which the
    (creditor_id, bucket) indexes serve; a modulo read every row. With ``only`` the
    debtors' ids are the narrower way in: the bucket is then compared as ``bucket + 0``,
    which no index serves, so the planner takes the debtor index (SQLite took the
    bucket's, and read the partition's 146,000 invoices at 250k to find a few hundred
    debtors' invoices: 0.09 s against 0.004 s a statement)."""
    buckets = partition_buckets(p, n)
    if only is None:
        return and_(table.c.creditor_id == ctx.creditor_id, table.c.bucket.in_(buckets))
    return and_(
        table.c.creditor_id == ctx.creditor_id,
        table.c.debtor_id.in_(only),
        (table.c.bucket + 0).in_(buckets),
    )


def _debtors_here(ctx: Ctx, p: int, n: int, only: list[str] | None = None) -> Any:
    """A select of the ids of the partition's debtors (or of ``only`` among them)."""
    return select(s.debtors.c.debtor_id).where(_partition_filter(s.debtors, ctx, p, n, only))


#: bump when what assess computes changes: the next run of the day is a full one again
ASSESS_LOGIC = 1
#: more changed debtors than this in a partition: it is re-assessed whole
INCREMENTAL_MAX = 5000


@releasing_memory
def assess_partition(ctx: Ctx, p: int, n: int) -> dict[str, Any]:
    """Signals and a segment for each debtor of partition ``p`` of ``n``, as of today.

    The first assessment of a day (or after a change of the creditor's configuration) is
    a full one. A later one the same day takes only the debtors the ledger marked dirty
    since (``dirty_debtors``: its triggers mark every write to what assess reads), claimed
    first and cleared with the results in one transaction: a debtor marked meanwhile keeps
    its new mark, and a crash in between leaves the claim to be taken again. A debtor's
    signals depend only on its own rows and today, so the outcome is the full one's."""
    d = s.dirty_debtors
    stage = f"assess-p{p}-of-{n}"
    marker = {"config_sha256": ctx.cfg.sha256, "logic": ASSESS_LOGIC}
    with ctx.engine.begin() as conn:
        # this partition's marks (claimed ones too: a run that died after claiming them)
        found = conn.execute(
            select(d.c.id, d.c.debtor_id).where(d.c.creditor_id == ctx.creditor_id)
        ).all()
        # a debtor is marked by each write to its rows: hashed once, not once a mark
        here = {who for who in {str(w) for _, w in found} if bucket_of(who) % n == p}
        marks = [(int(i), str(who)) for i, who in found if str(who) in here]
        mark_ids = [i for i, _ in marks]
        for part in chunks(mark_ids):
            conn.execute(update(d).where(d.c.id.in_(list(part))).values(claimed=True))
        done = conn.execute(
            select(s.cycle_runs.c.summary).where(
                s.cycle_runs.c.creditor_id == ctx.creditor_id,
                s.cycle_runs.c.cycle_date == ctx.today,
                s.cycle_runs.c.stage == stage,
            )
        ).scalar()
        changed = sorted({who for _, who in marks})
        # many changes: reading the partition whole is no dearer than by id
        may = done == marker and len(changed) <= INCREMENTAL_MAX
        incremental = may and dirty_tracking(conn)
        if may and not incremental:
            log.warning("dirty-debtor triggers missing: assessing every debtor of %s", stage)
    only = changed if incremental else None
    with ctx.engine.connect() as conn:
        deb = frame(conn, _debtors_here(ctx, p, n, only))
        inv = frame(
            conn,
            select(
                s.invoices.c.debtor_id,
                s.invoices.c.invoice_id,
                s.invoices.c.due_date,
                s.invoices.c.amount_cents,
                s.invoices.c.open_cents,
                s.invoices.c.paid_date,
                s.invoices.c.prior_reminders,
            ).where(_partition_filter(s.invoices, ctx, p, n, only)),
        )
        holds = active_holds(conn, ctx.creditor_id, ctx.today)
        con = frame(
            conn,
            select(s.contacts.c.debtor_id, s.contacts.c.status, s.contacts.c.sent_at)
            .join(
                s.debtors,
                and_(
                    s.debtors.c.creditor_id == s.contacts.c.creditor_id,
                    s.debtors.c.debtor_id == s.contacts.c.debtor_id,
                ),
            )
            .where(_partition_filter(s.debtors, ctx, p, n, only)),
        )
        extra = _signal_inputs(conn, ctx, p, n, only)
    sig_rows: list[dict[str, Any]] = []
    seg_rows: list[dict[str, Any]] = []
    if not deb.empty:
        sig = signals.compute_signals(
            deb["debtor_id"],
            inv,
            holds,
            con,
            ctx.today,
            reversals=extra["reversals"],
            arrangements=extra["arrangements"],
            preferences=extra["preferences"],
            events=extra["events"],
        )
        # reminders the creditor's own system sent count as contacts too
        prior = inv[inv["open_cents"] > 0].groupby("debtor_id")["prior_reminders"].max()
        sig["contacts_unanswered"] = sig["contacts_unanswered"] + sig["debtor_id"].map(
            prior
        ).fillna(0).astype(int)
        sig.loc[sig["open_overdue_count"] == 0, "contacts_unanswered"] = 0
        seg = segments.assign_segments(sig, ctx.cfg.policy.segment_thresholds)
        sig_rows = signals.signal_rows(ctx.creditor_id, sig, ctx.today)
        sig_rows += signals.segment_changes(
            ctx.creditor_id, seg[["debtor_id", "segment"]], extra["previous_segments"], ctx.today
        )
        seg_rows = [
            {
                "creditor_id": ctx.creditor_id,
                "debtor_id": r["debtor_id"],
                "as_of": ctx.today,
                "segment": r["segment"],
                "score": int(r["score"]),
                "reasons": r["reasons"],
            }
            for r in seg.to_dict("records")
        ]
    with ctx.engine.begin() as conn:
        upsert(
            conn,
            s.signals,
            sig_rows,
            ["creditor_id", "debtor_id", "signal"],
            ["value", "last_seen"],
        )
        upsert(
            conn,
            s.segments,
            seg_rows,
            ["creditor_id", "debtor_id", "as_of"],
            ["segment", "score", "reasons"],
        )
        for part in chunks(mark_ids):
            conn.execute(delete(d).where(d.c.id.in_(list(part))))
        upsert(
            conn,
            s.cycle_runs,
            [
                {
                    "creditor_id": ctx.creditor_id,
                    "cycle_date": ctx.today,
                    "stage": stage,
                    "run_count": 1,
                    "summary": marker,
                    "updated_at": utcnow(),
                }
            ],
            ["creditor_id", "cycle_date", "stage"],
            ["summary", "updated_at"],
        )
        counts: dict[Any, Any] = dict(
            conn.execute(
                select(s.segments.c.segment, func.count())
                .where(
                    s.segments.c.creditor_id == ctx.creditor_id,
                    s.segments.c.as_of == ctx.today,
                    s.segments.c.debtor_id.in_(_debtors_here(ctx, p, n)),
                )
                .group_by(s.segments.c.segment)
            ).all()
        )
    return {
        "partition": p,
        "debtors": len(deb),
        "incremental": incremental,
        "segments": {str(k): int(v) for k, v in sorted(counts.items())},
    }


# ----------------------------------------------------------------------------- plan
def _policy(ctx: Ctx) -> treatment.Policy:
    pol = ctx.cfg.policy
    window = ContactWindow(
        start=pol.quiet_end, end=pol.quiet_start, extra_closed_days=pol.extra_closed_days
    )
    ladders = dict(treatment.DEFAULT_LADDERS)
    for segment, steps in pol.ladders.items():
        ladders[segment] = tuple(
            treatment.Step(st.step, tuple(st.channels), st.wait_days, st.costs, st.pre_due)
            for st in steps
        )
    return treatment.Policy(
        ladders=ladders,
        contacts_per_week=pol.contacts_per_week,
        min_days_between_contacts=pol.min_days_between_contacts,
        window=window,
        send_hour=pol.send_hour,
        vat_rate=pol.vat_on_costs,
    )


def creditor_stopped(ctx: Ctx) -> str | None:
    with ctx.engine.connect() as conn:
        return conn.execute(
            select(s.creditors.c.stopped_reason).where(s.creditors.c.creditor_id == ctx.creditor_id)
        ).scalar()


def plan_inputs(
    ctx: Ctx, p: int, n: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, set[str]] | None:
    """What the planner needs for one partition: debtors (with segment, preferences and
    what their history taught), dossiers (overdue and upcoming), contact history, holds."""
    with ctx.engine.connect() as conn:
        held = set(active_holds(conn, ctx.creditor_id, ctx.today)["debtor_id"])
        deb = frame(
            conn,
            select(
                s.debtors.c.debtor_id,
                s.debtors.c.email,
                s.debtors.c.phone,
                s.debtors.c.street,
                s.debtors.c.postcode,
            ).where(_partition_filter(s.debtors, ctx, p, n)),
        )
        # this partition's rows only (by primary key): a scan of every debtor's segment
        # history for each partition grew with every day kept
        debtors_here = _debtors_here(ctx, p, n)
        seg = frame(
            conn,
            select(s.segments.c.debtor_id, s.segments.c.segment).where(
                s.segments.c.creditor_id == ctx.creditor_id,
                s.segments.c.debtor_id.in_(debtors_here),
                s.segments.c.as_of == ctx.today,
            ),
        )
        inv = frame(
            conn,
            select(
                s.invoices.c.debtor_id,
                s.invoices.c.invoice_id,
                s.invoices.c.due_date,
                s.invoices.c.open_cents,
            ).where(_partition_filter(s.invoices, ctx, p, n), s.invoices.c.open_cents > 0),
        )
        pref = frame(
            conn,
            select(
                s.preferences.c.debtor_id,
                s.preferences.c.preferred_day,
                s.preferences.c.channel.label("preferred_channel"),
                s.preferences.c.promise_until,
            ).where(
                s.preferences.c.creditor_id == ctx.creditor_id,
                s.preferences.c.debtor_id.in_(debtors_here),
            ),
        )
        events = _partition_events(conn, ctx, p, n)
        hist = frame(
            conn,
            select(
                s.contacts.c.debtor_id,
                s.contacts.c.dossier,
                s.contacts.c.step,
                s.contacts.c.channel,
                s.contacts.c.status,
                func.coalesce(s.contacts.c.sent_at, s.contacts.c.send_after).label("at"),
            )
            .join(
                s.debtors,
                and_(
                    s.debtors.c.creditor_id == s.contacts.c.creditor_id,
                    s.debtors.c.debtor_id == s.contacts.c.debtor_id,
                ),
            )
            .where(_partition_filter(s.debtors, ctx, p, n)),
        )
    if deb.empty:
        return None
    d = deb.merge(seg, on="debtor_id", how="inner").merge(pref, on="debtor_id", how="left")
    learned = treatment.learn_from_events(events)
    d = d.merge(learned, on="debtor_id", how="left")
    d["has_email"] = d["email"].notna()
    d["has_phone"] = d["phone"].notna()
    d["has_address"] = d["street"].notna() & d["postcode"].notna()
    failed = (
        hist[hist["status"] == "failed"].groupby("debtor_id")["channel"].agg(set)
        if len(hist)
        else pd.Series(dtype=object)
    )
    d["failed_channels"] = d["debtor_id"].map(failed)
    d["failed_channels"] = [
        (x if isinstance(x, set) else set()) | (b if isinstance(b, set) else set())
        for x, b in zip(d["failed_channels"], d["bounced_channels"], strict=True)
    ]
    d["promise_until"] = [
        v if isinstance(v, dt.date) else None for v in d["promise_until"].astype(object)
    ]
    dossiers = pd.concat(
        [treatment.overdue_dossiers(inv, ctx.today), treatment.upcoming_dossiers(inv, ctx.today)],
        ignore_index=True,
    )
    return d, dossiers, hist, held


@releasing_memory
def plan_partition(ctx: Ctx, p: int, n: int) -> dict[str, Any]:
    if creditor_stopped(ctx):
        return {"partition": p, "planned": 0, "stopped": True}
    inputs = plan_inputs(ctx, p, n)
    if inputs is None:
        return {"partition": p, "planned": 0}
    d, dossiers, hist, held = inputs
    with ctx.engine.begin() as conn:  # a hold from any source stops what is still planned
        cancelled = cancel_open_contacts(conn, ctx.creditor_id, held & set(d["debtor_id"]), "hold")
    policy = _policy(ctx)
    plan = treatment.plan_next_steps(d, dossiers, hist, held, ctx.now, policy)
    arms = _assign_variants(ctx, plan, policy)
    now = utcnow()
    rows = []
    for r in plan.to_dict("records"):
        key = f"{ctx.creditor_id}|{r['debtor_id']}|{r['dossier']}|{r['step']}|{r['channel']}"
        rows.append(
            {
                "creditor_id": ctx.creditor_id,
                "debtor_id": r["debtor_id"],
                "dossier": r["dossier"],
                "step": r["step"],
                "channel": r["channel"],
                "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "vangnet:" + key)),
                "status": "planned",
                "segment": r["segment"],
                "send_after": r["send_after"],
                "cycle_date": ctx.today,
                "amount_cents": int(r["amount_cents"]),
                "costs_cents": int(r["costs_cents"]),
                "invoice_ids": list(r["invoice_ids"]),
                "reasons": list(r["reasons"]),
                "variant": arms.get((r["debtor_id"], r["step"])),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        hour = _variant_hour(ctx, rows[-1]["variant"])
        if hour is not None:
            at = dt.datetime.combine(ctx.today, hour, AMS)
            if at > rows[-1]["send_after"]:
                rows[-1]["send_after"] = policy.window.next_open(at, preferred=hour)
    with ctx.engine.begin() as conn:
        added = insert_ignore(conn, s.contacts, rows)
    by_step: dict[str, int] = {}
    for r in rows:
        k = f"{r['segment']}:{r['step']}:{r['channel']}"
        by_step[k] = by_step.get(k, 0) + 1
    return {
        "partition": p,
        "planned": added,
        "considered": len(rows),
        "cancelled_for_hold": cancelled,
        "by_step": by_step,
    }


def _signal_inputs(
    conn: Any, ctx: Ctx, p: int, n: int, only: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """What the richer signals need, for one partition (with ``only``, just those
    debtors of it): reversed or returned payments per debtor, arrangements, preferences,
    contact events, and each debtor's segment before today."""
    al, pay, inv, c, e = s.allocations, s.payments, s.invoices, s.contacts, s.contact_events
    part = _partition_filter(inv, ctx, p, n, only)
    reversals = frame(
        conn,
        select(inv.c.debtor_id, pay.c.booking_date, pay.c.return_reason)
        .select_from(al)
        .join(pay, and_(pay.c.creditor_id == al.c.creditor_id, pay.c.payment_id == al.c.payment_id))
        .join(inv, and_(inv.c.creditor_id == al.c.creditor_id, inv.c.invoice_id == al.c.invoice_id))
        .where(part, al.c.amount_cents < 0, pay.c.status == "reversed"),
    )
    debtors_here = _debtors_here(ctx, p, n, only)
    arrangements = frame(
        conn,
        select(s.arrangements.c.debtor_id, s.arrangements.c.status).where(
            s.arrangements.c.creditor_id == ctx.creditor_id,
            s.arrangements.c.debtor_id.in_(debtors_here),
        ),
    )
    preferences = frame(
        conn,
        select(s.preferences.c.debtor_id, s.preferences.c.preferred_day).where(
            s.preferences.c.creditor_id == ctx.creditor_id,
            s.preferences.c.debtor_id.in_(debtors_here),
        ),
    )
    events = frame(
        conn,
        select(c.c.debtor_id, c.c.message_id, e.c.event)
        .join(e, and_(e.c.creditor_id == c.c.creditor_id, e.c.message_id == c.c.message_id))
        .where(c.c.creditor_id == ctx.creditor_id, c.c.debtor_id.in_(debtors_here)),
    )
    sg = s.segments
    last = (
        select(sg.c.debtor_id, func.max(sg.c.as_of).label("as_of"))
        .where(
            sg.c.creditor_id == ctx.creditor_id,
            sg.c.as_of < ctx.today,
            sg.c.debtor_id.in_(debtors_here),
        )
        .group_by(sg.c.debtor_id)
        .subquery()
    )
    previous = frame(
        conn,
        select(sg.c.debtor_id, sg.c.segment)
        .join(last, and_(last.c.debtor_id == sg.c.debtor_id, last.c.as_of == sg.c.as_of))
        .where(sg.c.creditor_id == ctx.creditor_id),
    )
    return {
        "reversals": reversals,
        "arrangements": arrangements,
        "preferences": preferences,
        "events": events,
        "previous_segments": previous,
    }


def experiments_now(ctx: Ctx) -> dict[str, experiments.Experiment]:
    """The creditor's active experiments by step, with the variants stopped so far."""
    with ctx.engine.connect() as conn:
        stopped: dict[str, set[str]] = {}
        for name, variant in conn.execute(
            select(s.experiment_stops.c.experiment, s.experiment_stops.c.variant).where(
                s.experiment_stops.c.creditor_id == ctx.creditor_id
            )
        ):
            stopped.setdefault(name, set()).add(variant)
    out = {}
    for e in ctx.cfg.experiments:
        if not e.active:
            continue
        out[e.step] = experiments.Experiment(
            name=e.name,
            step=e.step,
            variants=tuple(
                experiments.Variant(k, v.subject, v.intro, v.hour.isoformat() if v.hour else None)
                for k, v in e.variants.items()
            ),
            holdout=e.holdout,
            outcome_days=e.outcome_days,
            min_contacts=e.min_contacts,
            stopped=frozenset(stopped.get(e.name, set())),
        )
    return out


def experiment_report(ctx: Ctx) -> list[dict[str, Any]]:
    """Outcomes per experiment and arm over the contacts whose outcome window has ended;
    a variant that a guardrail stops is recorded (audited) and reported."""
    active = experiments_now(ctx)
    rows: list[dict[str, Any]] = []
    if not active:
        return rows
    c, e, al, pay = s.contacts, s.contact_events, s.allocations, s.payments
    with ctx.engine.connect() as conn:
        sent = frame(
            conn,
            select(c.c.message_id, c.c.debtor_id, c.c.variant, c.c.invoice_ids, c.c.sent_at).where(
                c.c.creditor_id == ctx.creditor_id,
                c.c.status == "sent",
                c.c.variant.is_not(None),
            ),
        )
        if sent.empty:
            return rows
        events = frame_in(
            conn,
            lambda ids: select(e.c.message_id, e.c.event).where(
                e.c.creditor_id == ctx.creditor_id, e.c.message_id.in_(ids)
            ),
            sent["message_id"],
        )
        paid = frame(
            conn,
            select(al.c.invoice_id, pay.c.booking_date)
            .join(
                pay,
                and_(pay.c.creditor_id == al.c.creditor_id, pay.c.payment_id == al.c.payment_id),
            )
            .where(al.c.creditor_id == ctx.creditor_id, al.c.amount_cents > 0),
        )
        holds_from = dict(
            conn.execute(
                select(s.holds.c.debtor_id, func.min(s.holds.c.starts_on))
                .where(s.holds.c.creditor_id == ctx.creditor_id)
                .group_by(s.holds.c.debtor_id)
            ).all()
        )
    ev = events.groupby("message_id")["event"].agg(set).to_dict() if len(events) else {}
    paid_on: dict[str, list[dt.date]] = {}
    for inv_id, booked in zip(paid["invoice_id"], paid["booking_date"], strict=True):
        paid_on.setdefault(inv_id, []).append(booked)
    for exp in active.values():
        mine = sent[sent["variant"].str.startswith(exp.name + ":")]
        records = []
        for r in mine.itertuples(index=False):
            sent_on = pd.Timestamp(r.sent_at).tz_convert(AMS).date()
            until = sent_on + dt.timedelta(days=exp.outcome_days)
            if until > ctx.today:
                continue  # the outcome window is still open
            got = ev.get(r.message_id, set())
            held = holds_from.get(r.debtor_id)
            records.append(
                {
                    "arm": r.variant.split(":", 1)[1],
                    "paid": any(
                        sent_on <= d <= until for i in r.invoice_ids for d in paid_on.get(i, [])
                    ),
                    "responded": bool(got & {"opened", "clicked"}),
                    "complained": bool(got & {"complained", "complaint", "spamreport"}),
                    "hardship": "hardship" in got
                    or (held is not None and sent_on <= held <= until),
                }
            )
        arms = experiments.outcomes(records)
        stop = experiments.to_stop(exp, arms)
        if stop:
            with ctx.engine.begin() as conn:
                insert_ignore(
                    conn,
                    s.experiment_stops,
                    [
                        {
                            "creditor_id": ctx.creditor_id,
                            "experiment": exp.name,
                            "variant": v,
                            "reason": why,
                            "stopped_at": utcnow(),
                        }
                        for v, why in stop.items()
                    ],
                )
                for v, why in stop.items():
                    audit(
                        conn,
                        ctx.creditor_id,
                        ACTOR,
                        "experiment.variant_stopped",
                        exp.name,
                        {"variant": v, "reason": why},
                    )
        for arm in sorted(arms):
            rows.append(
                {
                    "experiment": exp.name,
                    "step": exp.step,
                    **arms[arm].row(),
                    "status": "stopped: " + stop[arm]
                    if arm in stop
                    else ("stopped" if arm in exp.stopped else "running"),
                }
            )
    return rows


def _assign_variants(
    ctx: Ctx, plan: pd.DataFrame, policy: treatment.Policy
) -> dict[tuple[str, str], str]:
    if plan.empty or not ctx.cfg.experiments:
        return {}
    active = experiments_now(ctx)
    return {
        (d, step): f"{active[step].name}:{experiments.assign(active[step], d)}"
        for d, step in zip(plan["debtor_id"], plan["step"], strict=True)
        if step in active
    }


def _self_service_links(ctx: Ctx) -> Any:
    """A function (debtor, message id) -> the debtor's signed self-service link, or None
    when the creditor has no self-service page configured."""
    ss = ctx.cfg.self_service
    if ss is None:
        return lambda debtor, message_id: None
    secret = resolve_secret(ss.secret, ctx.cfg.base_dir)
    assert secret is not None
    key = secret.get_secret_value().encode()
    until = ctx.today + dt.timedelta(days=ss.valid_days)

    def link(debtor: str, message_id: str) -> str:
        token = selfservice.sign(key, ctx.creditor_id, debtor, until, message_id[:12])
        return ss.base_url.rstrip("/") + "/" + token

    return link


def _variant(ctx: Ctx, tag: Any) -> Any:
    """The configured variant behind a contact's ``experiment:arm`` tag (None: control)."""
    if not isinstance(tag, str) or ":" not in tag:
        return None
    name, arm = tag.split(":", 1)
    for e in ctx.cfg.experiments:
        if e.name == name:
            return e.variants.get(arm)
    return None


def _variant_hour(ctx: Ctx, tag: str | None) -> dt.time | None:
    v = _variant(ctx, tag)
    return v.hour if v is not None else None


def _partition_events(conn: Any, ctx: Ctx, p: int, n: int) -> pd.DataFrame:
    """Provider events (delivered, opened, clicked, bounced ...) of this partition's
    contacts, with the debtor and the channel they were about."""
    c, e = s.contacts, s.contact_events
    return frame(
        conn,
        select(c.c.debtor_id, c.c.channel, e.c.event, e.c.occurred_at)
        .join(e, and_(e.c.creditor_id == c.c.creditor_id, e.c.message_id == c.c.message_id))
        .join(
            s.debtors,
            and_(
                s.debtors.c.creditor_id == c.c.creditor_id, s.debtors.c.debtor_id == c.c.debtor_id
            ),
        )
        .where(_partition_filter(s.debtors, ctx, p, n)),
    )


def book_due_costs(ctx: Ctx) -> dict[str, int]:
    """Statutory collection costs become due when a valid 14-day letter went unanswered:
    its 14 days (counted from the day after expected delivery, ``wik_deadline``) have
    passed and the dossier's principal is still open. Booked once per letter, on the
    dossier item (open costs rise by the amount the letter stated), audited, and written
    back. Never during a hold, never for a debtor now in "can't pay"."""
    c, i = s.contacts, s.invoices
    out = {"booked": 0, "booked_cents": 0, "skipped_hold": 0, "skipped_cant_pay": 0}
    with ctx.engine.connect() as conn:
        letters = conn.execute(
            select(c.c.message_id, c.c.debtor_id, c.c.dossier, c.c.costs_cents, c.c.sent_at)
            .outerjoin(
                s.cost_bookings,
                and_(
                    s.cost_bookings.c.creditor_id == c.c.creditor_id,
                    s.cost_bookings.c.message_id == c.c.message_id,
                ),
            )
            .where(
                c.c.creditor_id == ctx.creditor_id,
                c.c.step == "wik_letter",
                c.c.status == "sent",
                c.c.costs_cents > 0,
                s.cost_bookings.c.message_id.is_(None),
            )
        ).all()
        if not letters:
            return out
        held = set(active_holds(conn, ctx.creditor_id, ctx.today)["debtor_id"])
        segment_now = _segments_now(conn, ctx)
    now = utcnow()
    small_since = ctx.today - dt.timedelta(days=SMALL_CLAIMS_WINDOW_DAYS)
    for msg, debtor, dossier, costs, sent_at in letters:
        sent_on = sent_at.astimezone(AMS).date()
        deadline = wik_deadline(sent_on)
        if ctx.today <= deadline:
            continue
        if debtor in held:
            out["skipped_hold"] += 1
            continue
        if segment_now.get(debtor) == "cant_pay":
            out["skipped_cant_pay"] += 1
            continue
        with ctx.engine.begin() as conn:
            item = conn.execute(
                select(i.c.open_cents, i.c.costs_cents, i.c.interest_cents, i.c.amount_cents).where(
                    i.c.creditor_id == ctx.creditor_id, i.c.invoice_id == dossier
                )
            ).first()
            if item is None or item.open_cents - item.costs_cents - item.interest_cents <= 0:
                continue  # paid within the 14 days: no costs
            booked_small = int(
                conn.execute(
                    select(func.coalesce(func.sum(s.cost_bookings.c.amount_cents), 0))
                    .select_from(s.cost_bookings)
                    .join(
                        i,
                        and_(
                            i.c.creditor_id == s.cost_bookings.c.creditor_id,
                            i.c.invoice_id == s.cost_bookings.c.invoice_id,
                        ),
                    )
                    .where(
                        s.cost_bookings.c.creditor_id == ctx.creditor_id,
                        s.cost_bookings.c.debtor_id == debtor,
                        s.cost_bookings.c.booked_on >= small_since,
                        i.c.amount_cents < SMALL_CLAIM_CENTS,
                    )
                ).scalar()
                or 0
            )
            costs = capped_small_claim_costs(
                int(item.amount_cents), int(costs), booked_small, ctx.today
            )
            added = insert_ignore(
                conn,
                s.cost_bookings,
                [
                    {
                        "creditor_id": ctx.creditor_id,
                        "message_id": msg,
                        "debtor_id": debtor,
                        "invoice_id": dossier,
                        "amount_cents": int(costs),
                        "deadline": deadline,
                        "booked_on": ctx.today,
                        "created_at": now,
                    }
                ],
            )
            if not added:
                continue
            conn.execute(
                update(i)
                .where(i.c.creditor_id == ctx.creditor_id, i.c.invoice_id == dossier)
                .values(
                    open_cents=i.c.open_cents + int(costs),
                    costs_cents=i.c.costs_cents + int(costs),
                    updated_at=now,
                )
            )
            audit(
                conn,
                ctx.creditor_id,
                ACTOR,
                "costs.booked",
                debtor,
                {"invoice_id": dossier, "cents": int(costs), "deadline": deadline.isoformat()},
            )
            _plan_status_write_backs(conn, ctx, [dossier])
        out["booked"] += 1
        out["booked_cents"] += int(costs)
    return out


def _segments_now(conn: Any, ctx: Ctx) -> dict[str, str]:
    """Each debtor's latest segment."""
    latest = (
        select(s.segments.c.debtor_id, func.max(s.segments.c.as_of).label("as_of"))
        .where(s.segments.c.creditor_id == ctx.creditor_id)
        .group_by(s.segments.c.debtor_id)
        .subquery()
    )
    return dict(
        conn.execute(
            select(s.segments.c.debtor_id, s.segments.c.segment)
            .join(
                latest,
                and_(
                    latest.c.debtor_id == s.segments.c.debtor_id,
                    latest.c.as_of == s.segments.c.as_of,
                ),
            )
            .where(s.segments.c.creditor_id == ctx.creditor_id)
        ).all()
    )


def accrue_interest(ctx: Ctx) -> dict[str, int]:
    """Statutory interest (when ``policy.charge_interest``) on the principal of items whose
    14-day letter went unanswered, from the day after its term to today; set absolutely
    (a re-run changes nothing), frozen from the start of a hold, none for "can't pay"."""
    pol = ctx.cfg.policy
    out = {"items": 0, "interest_cents": 0, "rate_unknown": 0}
    if not pol.charge_interest:
        return out
    rates = tuple(pol.interest_rates) if pol.interest_rates else DEFAULT_INTEREST_RATES
    b, i = s.cost_bookings, s.invoices
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(
                b.c.debtor_id,
                b.c.invoice_id,
                b.c.deadline,
                i.c.open_cents,
                i.c.costs_cents,
                i.c.interest_cents,
            )
            .join(i, and_(i.c.creditor_id == b.c.creditor_id, i.c.invoice_id == b.c.invoice_id))
            .where(b.c.creditor_id == ctx.creditor_id, i.c.open_cents > 0)
        ).all()
        holds = dict(
            conn.execute(
                select(s.holds.c.debtor_id, func.min(s.holds.c.starts_on))
                .where(s.holds.c.creditor_id == ctx.creditor_id, s.holds.c.lifted_at.is_(None))
                .group_by(s.holds.c.debtor_id)
            ).all()
        )
        segment_now = _segments_now(conn, ctx)
    for debtor, invoice, deadline, open_, costs, interest in rows:
        if segment_now.get(debtor) == "cant_pay":
            continue  # no interest for someone who can't pay (what is booked stays)
        principal = int(open_) - int(costs) - int(interest)
        end = min(ctx.today, holds.get(debtor, ctx.today))
        try:
            wanted = statutory_interest_cents(
                principal, deadline + dt.timedelta(days=1), end, rates, pol.commercial
            )
        except RateUnknown:
            out["rate_unknown"] += 1
            continue
        if wanted == int(interest):
            continue
        with ctx.engine.begin() as conn:
            conn.execute(
                update(i)
                .where(i.c.creditor_id == ctx.creditor_id, i.c.invoice_id == invoice)
                .values(
                    interest_cents=wanted,
                    open_cents=i.c.open_cents + (wanted - int(interest)),
                    updated_at=utcnow(),
                )
            )
        out["items"] += 1
        out["interest_cents"] += wanted - int(interest)
    return out


# ----------------------------------------------------------------------------- send
def _channel(ctx: Ctx, name: str) -> Channel:
    settings = ctx.cfg.channels[name]  # type: ignore[index]
    if isinstance(settings, SendGridSettings):
        key = resolve_secret(settings.api_key, ctx.cfg.base_dir)
        assert key is not None
        return SendGridChannel(name, settings, key)
    if isinstance(settings, LetterSettings):
        pp = settings.print_provider
        return LetterChannel(
            name,
            settings,
            ctx.cfg.base_dir,
            ctx.cfg.branding.display_name,
            (
                resolve_secret(pp.password, ctx.cfg.base_dir) if pp else None,
                resolve_secret(pp.private_key, ctx.cfg.base_dir) if pp else None,
            ),
            today=ctx.today,
        )
    if isinstance(settings, MessageBirdSettings):
        key = resolve_secret(settings.access_key, ctx.cfg.base_dir)
        assert key is not None
        return MessageBirdChannel(name, settings, key)
    settings = settings.model_copy(update={"dir": str(ctx.cfg.path(settings.dir))})
    return OutboxChannel(name, settings)


#: a receipt recorded: one statement object each, run once for all of a batch's
#: receipts of that kind (not an UPDATE built and run per receipt)
_SENT = (
    update(s.contacts)
    .where(s.contacts.c.message_id == bindparam("message"))
    .values(
        status="sent",
        provider_id=bindparam("provider"),
        sent_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
)
_NOT_SENT = (
    update(s.contacts)
    .where(s.contacts.c.message_id == bindparam("message"))
    .values(
        status=bindparam("new_status"), last_error=bindparam("error"), updated_at=bindparam("at")
    )
)


@releasing_memory
def send_channel(
    ctx: Ctx, name: str, batch_size: int = 500, channel: Channel | None = None
) -> dict[str, Any]:
    """Exactly once: planned -> sending (committed) -> provider -> sent | failed.
    Rows left in ``sending`` by a crash become ``ambiguous`` and are resolved by asking
    the channel before anything is sent again."""
    out: dict[str, Any] = {
        "channel": name,
        "resolved_ambiguous": 0,
        "sent": 0,
        "failed": 0,
        "cancelled": 0,
        "waiting": 0,
        "stopped": False,
    }
    if name not in ctx.cfg.channels:
        return out
    if creditor_stopped(ctx):
        out["stopped"] = True
        return out
    channel = channel or _channel(ctx, name)
    c = s.contacts
    base = and_(c.c.creditor_id == ctx.creditor_id, c.c.channel == name)
    with ctx.engine.begin() as conn:
        # updated_at stays the moment of the attempt: a provider may accept a request
        # after our client gave up, and its lookup may lag (SendGrid's Email Activity)
        conn.execute(update(c).where(base, c.c.status == "sending").values(status="ambiguous"))
        amb_at = dict(
            conn.execute(
                select(c.c.message_id, c.c.updated_at).where(base, c.c.status == "ambiguous")
            ).all()
        )
    amb = list(amb_at)
    if amb:
        known = channel.lookup(amb)
        # a channel whose lookup cannot lag (files) is trusted at once
        settle = ctx.cfg.policy.ambiguous_settle_seconds
        settled_before = utcnow() - dt.timedelta(
            seconds=settle if getattr(channel, "lookup_lags", True) else 0
        )
        found = [mid for mid in amb if mid in known]
        # not known to the provider: planned again once it had time to settle; before
        # that, too soon to tell (asked again on the next run)
        unknown = [mid for mid in amb if mid not in known]
        settled = [m for m in unknown if amb_at[m] is None or amb_at[m] <= settled_before]
        out["unsettled"] = len(unknown) - len(settled)
        now = utcnow()
        with ctx.engine.begin() as conn:
            if found:
                conn.execute(
                    _SENT,
                    [{"message": m, "provider": known[m].provider_id, "at": now} for m in found],
                )
            for part in chunks(settled):
                conn.execute(
                    update(c)
                    .where(c.c.message_id.in_(part))
                    .values(status="planned", updated_at=now)
                )
        out["resolved_ambiguous"] = len(amb)
    window = _policy(ctx).window
    if not window.is_open(ctx.now):
        with ctx.engine.connect() as conn:
            out["waiting"] = (
                conn.execute(
                    select(func.count()).select_from(c).where(base, c.c.status == "planned")
                ).scalar()
                or 0
            )
        out["quiet_hours"] = True
        return out
    while True:
        with ctx.engine.begin() as conn:
            due = frame(
                conn,
                select(c)
                .where(base, c.c.status == "planned", c.c.send_after <= ctx.now)
                .order_by(c.c.id)
                .limit(batch_size),
            )
            if due.empty:
                break
            held = set(active_holds(conn, ctx.creditor_id, ctx.today)["debtor_id"])
            still_open = _still_open(conn, ctx, due)
            cancel = [
                m
                for m, d, ok in zip(due["message_id"], due["debtor_id"], still_open, strict=True)
                if d in held or not ok
            ]
            if cancel:
                conn.execute(
                    update(c)
                    .where(c.c.message_id.in_(cancel))
                    .values(
                        status="cancelled",
                        last_error="hold or paid before sending",
                        updated_at=utcnow(),
                    )
                )
                out["cancelled"] += len(cancel)
            due = due[~due["message_id"].isin(cancel)]
            if due.empty:
                continue
            conn.execute(
                update(c)
                .where(c.c.message_id.in_(list(due["message_id"])))
                .values(status="sending", attempts=c.c.attempts + 1, updated_at=utcnow())
            )
        msgs = _render(ctx, due, name)
        receipts = channel.send(msgs)
        now = utcnow()
        sent = [rc for rc in receipts if rc.status == "sent"]
        not_sent = [rc for rc in receipts if rc.status != "sent"]
        with ctx.engine.begin() as conn:
            if sent:
                conn.execute(
                    _SENT,
                    [
                        {"message": rc.message_id, "provider": rc.provider_id, "at": now}
                        for rc in sent
                    ],
                )
            if not_sent:
                conn.execute(
                    _NOT_SENT,
                    [
                        {
                            "message": rc.message_id,
                            "new_status": "planned" if rc.retriable else "failed",
                            "error": rc.error,
                            "at": now,
                        }
                        for rc in not_sent
                    ],
                )
            out["sent"] += len(sent)
            out["failed"] += sum(1 for rc in not_sent if not rc.retriable)
            insert_ignore(
                conn,
                s.contact_events,
                [
                    {
                        "creditor_id": ctx.creditor_id,
                        "message_id": rc.message_id,
                        "event": rc.status,
                        "provider_event_id": f"{name}:{rc.message_id}:{rc.status}",
                        "occurred_at": utcnow(),
                        "detail": {"provider_id": rc.provider_id, **(rc.detail or {})},
                    }
                    for rc in receipts
                ],
            )
    upload = getattr(channel, "upload_batch", None)
    if callable(upload):  # letters: the day's batch to the print-and-mail provider
        out["print_batch"] = upload(ctx.today)
    with ctx.engine.connect() as conn:
        out["waiting"] = (
            conn.execute(
                select(func.count()).select_from(c).where(base, c.c.status == "planned")
            ).scalar()
            or 0
        )
    return out


def _still_open(conn: Any, ctx: Ctx, due: pd.DataFrame) -> list[bool]:
    ids = sorted({i for lst in due["invoice_ids"] for i in lst})
    open_ = set(
        conn.execute(
            select(s.invoices.c.invoice_id).where(
                s.invoices.c.creditor_id == ctx.creditor_id,
                s.invoices.c.invoice_id.in_(ids),
                s.invoices.c.open_cents > 0,
            )
        ).scalars()
    )
    return [any(i in open_ for i in lst) for lst in due["invoice_ids"]]


def _render(ctx: Ctx, due: pd.DataFrame, channel: str) -> list[OutboundMessage]:
    b = ctx.cfg.branding
    with ctx.engine.connect() as conn:
        deb = frame(
            conn,
            select(s.debtors).where(
                s.debtors.c.creditor_id == ctx.creditor_id,
                s.debtors.c.debtor_id.in_(list(due["debtor_id"])),
            ),
        ).set_index("debtor_id")
        # each debtor's fields as a dict: a row looked up by ``.loc`` per message took
        # 0.9 s of 4,739 messages (sampled)
        people = deb.to_dict("index")
        refs = dict(
            conn.execute(
                select(s.invoices.c.invoice_id, s.invoices.c.payment_reference).where(
                    s.invoices.c.creditor_id == ctx.creditor_id,
                    s.invoices.c.invoice_id.in_(list(due["dossier"])),
                )
            ).all()
        )
    out = []
    link_for = _self_service_links(ctx)
    for r in due.itertuples(index=False):
        d = people[r.debtor_id]
        lang = d["language"] if d["language"] in ("nl", "en") else "nl"
        ref = refs.get(r.dossier) or r.dossier
        deadline = wik_deadline(ctx.today) if r.step == "wik_letter" else None
        variant = _variant(ctx, getattr(r, "variant", None))
        subject, body = messages.render(
            r.step,
            lang,
            {
                "name": d["name"],
                "amount_cents": int(r.amount_cents),
                "costs_cents": int(r.costs_cents),
                "deadline": deadline,
                "reference": ref,
                "payment_link": b.payment_link.format(
                    reference=ref, amount=f"{int(r.amount_cents) / 100:.2f}"
                ),
                "phone": b.phone,
                "email": b.email,
                "debt_help": b.debt_help,
                "creditor_name": b.display_name,
                "self_service_link": link_for(r.debtor_id, r.message_id),
            },
        )
        if channel == "sms":  # a short text: what, the reference, the link, a number
            body = messages.sms_text(
                r.step,
                lang,
                {
                    "amount_cents": int(r.amount_cents),
                    "reference": ref,
                    "payment_link": b.payment_link.format(
                        reference=ref, amount=f"{int(r.amount_cents) / 100:.2f}"
                    ),
                    "phone": b.phone,
                    "creditor_name": b.display_name,
                },
            )
        if variant is not None:  # only subject and opening vary; the legal body never
            subject = (
                variant.subject.format(creditor=b.display_name) if variant.subject else subject
            )
            if variant.intro and channel != "sms":  # an SMS stays the short text
                head, _, rest = body.partition("\n\n")
                body = f"{head}\n\n{variant.intro}\n{rest}"
        to = {
            "email": d["email"],
            "sms": d["phone"],
            "letter": f"{d['name']}\n{d['street']}\n{d['postcode']} {d['city']}",
        }[channel]
        out.append(
            OutboundMessage(
                r.message_id,
                ctx.creditor_id,
                r.debtor_id,
                channel,
                r.step,
                str(to),
                subject,
                body,
                send_after=pd.Timestamp(r.send_after).to_pydatetime().astimezone(AMS),
            )
        )
    return out


# ----------------------------------------------------------------------- write back
#: changes handed to the creditor's writer at once (it splits them as its API wants:
#: Salesforce 200 a collection, Exact Online its lookup batch). 500 made a day's 200k
#: status changes 400 transactions in the creditor's database and 400 in the ledger
WRITE_BACK_BATCH = 2000


@releasing_memory
def write_back(
    ctx: Ctx, batch_size: int = WRITE_BACK_BATCH, writer: StatusWriter | None = None
) -> dict[str, Any]:
    """Planned changes -> sending (committed) -> the creditor's system -> applied |
    conflict | failed. Rows left in ``sending`` by a crash are planned again in their
    place (``resumed``) and simply sent again: the statements write absolute values
    under a version check, so applying twice is safe."""
    out: dict[str, Any] = {"applied": 0, "conflict": 0, "failed": 0}
    wb = ctx.cfg.write_back
    if wb is None:
        return out
    if writer is None:
        writer = writer_for(ctx, wb.target)
    w = s.write_backs
    base = and_(w.c.creditor_id == ctx.creditor_id, w.c.target == wb.target)
    out["planned_preferences"] = plan_preference_write_backs(ctx)
    with ctx.engine.begin() as conn:
        out["retried_conflicts"] = _retry_conflicts(conn, ctx, wb.target)
        # one status, so the next batch is a range of (creditor_id, status, id): with
        # two, every batch sorted all the changes still to go
        out["resumed"] = (
            conn.execute(
                update(w).where(base, w.c.status == "sending").values(status="planned")
            ).rowcount
            or 0
        )
    after = 0  # the last id taken: PostgreSQL keeps a taken row's old index entry
    # (status planned) until vacuum, and a scan from the start stepped over every one
    while True:
        with ctx.engine.begin() as conn:
            todo = conn.execute(  # rows as they come: a frame of them cost more than the write
                select(
                    w.c.id,
                    w.c.change_id,
                    w.c.entity,
                    w.c.record_id,
                    cast(w.c["values"], Text),  # decoded below, the batch at once
                    w.c.expected_version,
                )
                .where(base, w.c.status == "planned", w.c.id > after)
                .order_by(w.c.id)
                .limit(batch_size)
            ).all()
            if not todo:
                break
            first, after = todo[0][0], todo[-1][0]
            # the same rows: the batch is every planned one in its id range (a change a
            # concurrent run plans again into it meanwhile waits in sending for the next)
            conn.execute(
                update(w)
                .where(base, w.c.status == "planned", w.c.id.between(first, after))
                .values(status="sending", attempts=w.c.attempts + 1)
            )
        # json, not orjson: orjson reads an integer past 64 bits as a float
        values = json.loads(f"[{','.join(r[4] for r in todo)}]")
        changes = [
            WriteBack(change_id, entity, record_id, v, version)
            for (_id, change_id, entity, record_id, _text, version), v in zip(
                todo, values, strict=True
            )
        ]
        results = writer.write(changes)
        with ctx.engine.begin() as conn:
            _record_write_results(conn, ctx, {r[1]: r[0] for r in todo}, results, out)
            audit(
                conn,
                ctx.creditor_id,
                ACTOR,
                "write_back.batch",
                wb.target,
                {k: v for k, v in out.items()},
            )
    return out


def _record_write_results(
    conn: Connection,
    ctx: Ctx,
    ids: dict[str, int],
    results: Sequence[WriteResult],
    out: dict[str, Any],
) -> None:
    """A batch's results into the ledger: the applied ones (a day's nearly all) by one
    UPDATE of their ids, the rest with their errors; a change its writer said nothing
    of stays ``sending`` and goes again next run, as after a crash."""
    w = s.write_backs
    done_at = utcnow()
    applied = [ids[r.change_id] for r in results if r.status == "applied" and r.change_id in ids]
    others = [r for r in results if r.status != "applied"]
    if applied:
        conn.execute(
            update(w)
            .where(w.c.id.in_(applied))
            .values(status="applied", last_error=None, applied_at=done_at)
        )
    update_many(
        conn,
        w,
        {"creditor_id": ctx.creditor_id},
        ["change_id"],
        [
            {
                "change_id": r.change_id,
                "status": r.status,
                "last_error": r.error,
                "applied_at": None,
            }
            for r in others
        ],
    )
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1


def _retry_conflicts(conn: Any, ctx: Ctx, target: str) -> int:
    """A conflicted change is planned again once the ledger has read the record's newer
    version from the source (so the next attempt checks against what is there now)."""
    w = s.write_backs
    rows = []
    for entity, table, key in (
        ("invoices", s.invoices, "invoice_id"),
        ("debtors", s.debtors, "debtor_id"),
    ):
        rows += conn.execute(
            select(w.c.id, w.c.expected_version, table.c.source_version)
            .join(
                table, and_(table.c.creditor_id == w.c.creditor_id, table.c[key] == w.c.record_id)
            )
            .where(
                w.c.creditor_id == ctx.creditor_id,
                w.c.target == target,
                w.c.status == "conflict",
                w.c.entity == entity,
            )
        ).all()
    moved = [r for r in rows if r.source_version != r.expected_version]
    for r in moved:
        conn.execute(
            update(w)
            .where(w.c.id == r.id)
            .values(status="planned", expected_version=r.source_version)
        )
    if moved:
        audit(
            conn,
            ctx.creditor_id,
            ACTOR,
            "write_back.conflicts_retried",
            target,
            {"count": len(moved)},
        )
    return len(moved)
