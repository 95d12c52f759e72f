"""The same day's second assessment takes only the debtors the ledger marked dirty, and
ends exactly where a full one would: marks come from the ledger's own triggers, so a
change by any path (here raw SQL on every watched table) is seen; without the triggers
the assessment is a full one again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update

from bench.dirty_marks import invoice_row
from flows import stages
from flows.context import make_ctx
from flows.demo import sftp_server
from ledger import schema as s
from ledger.store import dirty_tracking, utcnow
from tests.cycle_steps import seeded, up_to_plan
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _assess(ctx: Any) -> list[dict[str, Any]]:
    n = ctx.cfg.policy.partitions
    return [stages.assess_partition(ctx, p, n) for p in range(n)]


def _assessment(ctx: Any) -> dict[str, list[tuple[Any, ...]]]:
    with ctx.engine.connect() as conn:
        sig = conn.execute(
            select(s.signals.c.debtor_id, s.signals.c.signal, s.signals.c.value).order_by(
                s.signals.c.debtor_id, s.signals.c.signal
            )
        ).all()
        seg = conn.execute(
            select(s.segments.c.debtor_id, s.segments.c.segment, s.segments.c.score)
            .where(s.segments.c.as_of == ctx.today)
            .order_by(s.segments.c.debtor_id)
        ).all()
    return {"signals": [tuple(r) for r in sig], "segments": [tuple(r) for r in seg]}


def _debtors_with(conn: Any, table: Any, k: int) -> list[str]:
    return list(conn.execute(select(table.c.debtor_id).distinct().limit(k)).scalars())


def test_the_second_assessment_takes_only_what_changed_and_ends_as_a_full_one(
    tmp_path: Path, ledger_url: str | None
) -> None:
    cfg = seeded(tmp_path / "demo", 160, NOW.date(), ledger_url)
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)  # the day's first, full assessment
    with ctx.engine.connect() as conn:
        assert dirty_tracking(conn)
        total = conn.execute(select(func.count()).select_from(s.debtors)).scalar()
    # the day goes on: payments matched, messages sent (allocations, invoices, contacts)
    with sftp_server(cfg.parent) as srv:
        stages.fetch_statements(ctx, "bank", srv.port)
    stages.match_new_payments(ctx)
    for ch in ctx.cfg.channels:
        stages.send_channel(ctx, ch)
    # and every other watched table changes behind the code's back
    with ctx.engine.begin() as conn:
        later = NOW.date() - dt.timedelta(days=400)
        inv_debtor, gone_debtor = _debtors_with(conn, s.invoices, 2)
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.debtor_id == inv_debtor)
            .values(due_date=later, open_cents=s.invoices.c.amount_cents)
        )
        conn.execute(delete(s.invoices).where(s.invoices.c.debtor_id == gone_debtor))
        everyone = list(conn.execute(select(s.debtors.c.debtor_id)).scalars())
        # an invoice moved from one unmarked debtor to another: both are marked
        unmarked = select(s.debtors.c.debtor_id).where(
            s.debtors.c.debtor_id.not_in(select(s.dirty_debtors.c.debtor_id))
        )
        moved = conn.execute(
            select(s.invoices.c.invoice_id, s.invoices.c.debtor_id).where(
                s.invoices.c.debtor_id.in_(unmarked)
            )
        ).first()
        assert moved is not None
        target = conn.execute(unmarked.where(s.debtors.c.debtor_id != moved.debtor_id)).scalar()
        assert target is not None
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.invoice_id == moved.invoice_id)
            .values(debtor_id=target)
        )
        held = everyone[-1]
        conn.execute(
            insert(s.holds).values(
                creditor_id=ctx.creditor_id,
                debtor_id=held,
                kind="debt_assistance",
                reason="test",
                starts_on=NOW.date(),
                created_at=utcnow(),
            )
        )
        conn.execute(
            insert(s.preferences).values(
                creditor_id=ctx.creditor_id,
                debtor_id=everyone[-2],
                preferred_day=25,
                source="operator",
                updated_at=utcnow(),
            )
        )
        sent = conn.execute(
            select(s.contacts.c.message_id, s.contacts.c.debtor_id).where(
                s.contacts.c.status == "sent"
            )
        ).first()
        assert sent is not None
        conn.execute(
            insert(s.contact_events).values(
                creditor_id=ctx.creditor_id,
                message_id=sent.message_id,
                event="bounced",
                provider_event_id="ev-incremental",
                occurred_at=utcnow(),
                detail={},
            )
        )
        marked = set(conn.execute(select(s.dirty_debtors.c.debtor_id).distinct()).scalars())
    assert {inv_debtor, gone_debtor, held, everyone[-2], sent.debtor_id} <= marked
    assert {moved.debtor_id, target} <= marked

    second = _assess(ctx)
    assert all(r["incremental"] for r in second)
    assessed = sum(r["debtors"] for r in second)
    assert 0 < assessed < total
    assert sum(sum(r["segments"].values()) for r in second) == total  # counts: everyone
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.dirty_debtors)).scalar() == 0
    incremental = _assessment(ctx)
    assert _assess(ctx) and incremental == _assessment(ctx)  # nothing new: nothing moves

    # what a full assessment of the same ledger gives
    with ctx.engine.begin() as conn:
        conn.execute(delete(s.cycle_runs))
    full = _assess(ctx)
    assert not any(r["incremental"] for r in full)
    assert sum(r["debtors"] for r in full) == total
    assert _assessment(ctx) == incremental


def test_without_its_triggers_the_assessment_is_a_full_one(
    tmp_path: Path, ledger_url: str | None
) -> None:
    cfg = seeded(tmp_path / "demo", 40, NOW.date(), ledger_url)
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    assert all(r["incremental"] for r in _assess(ctx))
    from flows.doctor import _ledger

    assert "warn" not in _ledger(ctx.cfg)
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER dirty_holds_insert"))
        else:
            conn.execute(text("DROP TRIGGER dirty_holds_insert ON holds"))
        assert not dirty_tracking(conn)
        total = conn.execute(select(func.count()).select_from(s.debtors)).scalar()
    assert "triggers missing" in _ledger(ctx.cfg)["warn"]  # the doctor says so
    again = _assess(ctx)
    assert not any(r["incremental"] for r in again)
    assert sum(r["debtors"] for r in again) == total


def test_the_migration_watches_what_the_code_expects() -> None:
    import importlib.util

    path = Path(s.__file__).parent / "migrations" / "versions" / "0009_dirty_debtors.py"
    spec = importlib.util.spec_from_file_location("m0009", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.WATCHED) == set(s.DIRTY_WATCHED)


def _invoice(i: int, debtor: str, amount: int) -> dict[str, Any]:
    return invoice_row(f"F{i:05d}", debtor, amount, 0, utcnow())


def _marks(engine: Any) -> list[str]:
    with engine.begin() as conn:
        got = list(conn.execute(select(s.dirty_debtors.c.debtor_id)).scalars())
        conn.execute(delete(s.dirty_debtors))  # claimed, as assess does
    return sorted(got)


def test_an_upsert_marks_each_debtor_it_inserts_or_changes_once(
    tmp_path: Path, ledger_url: str | None
) -> None:
    """Validate's path: ``upsert`` of enough rows to go through its bulk form (COPY and
    one INSERT … SELECT … ON CONFLICT on PostgreSQL, whose statement triggers see the
    inserted rows as an INSERT and the changed ones as an UPDATE); on PostgreSQL also
    down to 0009's row triggers and up again."""
    from alembic import command
    from alembic.config import Config

    from ledger.store import _MIGRATIONS, ensure_creditor, open_ledger, upsert

    engine = open_ledger(ledger_url or f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "C", "housing", "x")
    keys, compared = ["creditor_id", "invoice_id"], ["debtor_id", "amount_cents", "open_cents"]

    def day(rows: list[dict[str, Any]]) -> int:
        with engine.begin() as conn:
            return upsert(conn, s.invoices, rows, keys, compared, only_if_changed=compared)

    first = [_invoice(i, f"D{i // 4:04d}", 1000) for i in range(2000)]
    assert day(first) == 2000
    assert _marks(engine) == [f"D{k:04d}" for k in range(500)]
    # the same day again: one changed invoice, one moved to another debtor, one new
    again = [dict(r) for r in first]
    again[10]["amount_cents"] = 1001  # D0002
    again[20]["debtor_id"] = "D0400"  # from D0005
    again.append(_invoice(2000, "D0600", 1000))
    assert day(again) == 3
    assert _marks(engine) == ["D0002", "D0005", "D0400", "D0600"]
    assert day(again) == 0 and _marks(engine) == []  # nothing new: no marks

    if engine.dialect.name != "postgresql":
        return
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
        assert not dirty_tracking(conn)
        names = set(conn.execute(text("SELECT tgname FROM pg_trigger")).scalars())
        assert "dirty_invoices" in names and "dirty_invoices_insert" not in names
    again[30]["amount_cents"] = 1001
    assert day(again) == 1 and _marks(engine) == ["D0007"]  # 0009's row trigger marks
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        assert dirty_tracking(conn)
    again[40]["amount_cents"] = 1001
    assert day(again) == 1 and _marks(engine) == ["D0010"]
    engine.dispose()


def test_an_incremental_read_goes_in_by_the_debtors_not_the_partition(tmp_path: Path) -> None:
    """With ``only``, a partition's invoices are found through the debtor index (SQLite
    had taken the bucket index and read the whole partition for a few debtors); the
    full read goes through the bucket index."""
    cfg = seeded(tmp_path / "demo", 40, NOW.date(), None)
    ctx = make_ctx(str(cfg), NOW)
    i = s.invoices

    def plan(only: list[str] | None) -> str:
        stmt = select(i.c.invoice_id).where(stages._partition_filter(i, ctx, 0, 8, only))
        sql = str(stmt.compile(ctx.engine, compile_kwargs={"literal_binds": True}))
        with ctx.engine.connect() as conn:
            return " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))

    assert "ix_invoices_debtor" in plan(["D1", "D2"])
    assert "ix_invoices_bucket" in plan(None)
