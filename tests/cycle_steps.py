"""The daily cycle's stages without Prefect, for tests that need a creditor that has
read its ERP (and, when asked, assessed and planned): one place instead of each test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import insert, select

from flows import stages
from flows.context import Ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from transforms.validation import Validator


def seeded(folder: Path, debtors: int, today: dt.date, ledger_url: str | None) -> Path:
    """The demo creditor, its ledger on ``ledger_url`` (None: the embedded SQLite one)."""
    cfg = seed(folder, debtors, today)
    if ledger_url:
        cfg.write_text(cfg.read_text() + f"\nledger: {{url: '{ledger_url}'}}\n")
    return cfg


def ingest_and_validate(ctx: Ctx) -> dict:  # type: ignore[type-arg]
    for entity in stages.ENTITIES:
        stages.ingest_entity(ctx, "erp", entity)
    return stages.validate_staged(ctx, Validator())


def assess_all(ctx: Ctx) -> None:
    n = ctx.cfg.policy.partitions
    for p in range(n):
        stages.assess_partition(ctx, p, n)


def plan_all(ctx: Ctx) -> None:
    n = ctx.cfg.policy.partitions
    for p in range(n):
        stages.plan_partition(ctx, p, n)


def up_to_plan(ctx: Ctx) -> None:
    """Ingest, validate, assess and plan every partition."""
    ingest_and_validate(ctx)
    n = ctx.cfg.policy.partitions
    for p in range(n):
        stages.assess_partition(ctx, p, n)
        stages.plan_partition(ctx, p, n)


def planned_ids(ctx: Ctx, channel: str) -> set[str]:
    """The message ids waiting to go out on a channel."""
    c = s.contacts
    with ctx.engine.connect() as conn:
        return set(
            conn.execute(
                select(c.c.message_id).where(c.c.channel == channel, c.c.status == "planned")
            ).scalars()
        )


def insert_payment(ctx: Ctx, pid: str, cents: int, booked: dt.date, **extra: object) -> None:
    """A bank statement line, status new, as the statement fetch stores one."""
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(s.payments).values(
                creditor_id=ctx.creditor_id,
                payment_id=pid,
                source="bank",
                booking_date=booked,
                amount_cents=cents,
                currency="EUR",
                status="new",
                created_at=utcnow(),
                **extra,
            )
        )
