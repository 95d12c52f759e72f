"""The ledger on SQLite (file) and PostgreSQL (loopback): same migrations, same behaviour."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Text, cast, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from ledger import schema as s
from ledger.store import (
    ensure_creditor,
    get_cursor,
    insert_ignore,
    migrate,
    open_ledger,
    set_cursor,
    stage_payloads,
    update_many,
    upsert,
    utcnow,
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_migrations_create_exactly_the_schema(url: str) -> None:
    engine = open_ledger(url)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), s.metadata
        )
        assert diff == []
        tables = set(inspect(conn).get_table_names())
        if conn.dialect.name == "postgresql":  # room for the daily update (0014)
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE relname = 'invoices'"
            ).scalar()
            assert options == ["fillfactor=85"]
    assert {t.name for t in s.ALL_TABLES} <= tables
    for t in s.ALL_TABLES:  # every row carries its creditor
        assert "creditor_id" in t.c
    engine.dispose()


def _open(url: str, start: object) -> str:
    """Open (and so migrate) the ledger at ``url`` once ``start`` is set; what came of it."""
    start.wait(30)  # type: ignore[attr-defined]
    try:
        open_ledger(url).dispose()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the test reports what went wrong
        return f"{type(exc).__name__}: {exc}"[:300]


def test_processes_opening_a_new_ledger_at_once_take_turns(url: str) -> None:
    """The cycle's workers may open a ledger no process has migrated yet, all at once:
    each waits for the other's migration instead of creating the tables a second time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    mp = multiprocessing.get_context("spawn")
    with mp.Manager() as manager, ProcessPoolExecutor(4, mp_context=mp) as pool:
        start = manager.Event()
        outcomes = [pool.submit(_open, url, start) for _ in range(4)]
        start.set()
        assert [f.result(timeout=120) for f in outcomes] == ["ok"] * 4
    engine = open_ledger(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), s.metadata
        )
    engine.dispose()
    assert diff == []


#: what a page's payloads could hold that its JSON array might trip over
AWKWARD = [
    {"invoice_id": "F1", "name": 'Jos\u00e9 "de" Vries\\\n', "note": '},{"x":1}]'},
    {"invoice_id": "F2", "name": "Jos\u00e9 \U0001f600 \u00eb", "amount_cents": -0.0},
    {"invoice_id": "F3", "big": 2**70, "small": 1.5e-300, "gap": None},
    {"invoice_id": "F4", "_errors": ["due_date: 31-13-2026", "amount: abc"], "t": True},
    {"invoice_id": "F5", "tab": "a\tb\x00c", "nested": {"a": [1, {"b": "c"}]}, "e": ""},
]
#: as orjson writes them (ingest: UTF-8 as is), and as ``json`` does (escaped)
AWKWARD_PAYLOADS = [
    *(orjson.dumps(p).decode() for p in AWKWARD if p["invoice_id"] != "F3"),
    *(json.dumps(p) for p in AWKWARD),
]


def test_a_page_is_staged_as_its_texts_in_order(url: str) -> None:
    """A page's payloads land in staging as the very texts ingest made, in the page's
    order (SQLite: one statement over the page as a JSON array)."""
    engine = open_ledger(url)
    page = AWKWARD_PAYLOADS + [f'{{"invoice_id":"G{i:05d}","k":{i}}}' for i in range(2500)]
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        stage_payloads(conn, "c1", "erp", "invoices", page, at)
        stage_payloads(conn, "c1", "erp", "invoices", [], at)  # an empty page: nothing
        stage_payloads(conn, "c1", "erp", "debtors", ['{"debtor_id":"R1"}'], at)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                cast(s.staging.c.payload, Text),
                s.staging.c.creditor_id,
                s.staging.c.source,
                s.staging.c.entity,
                s.staging.c.staged_at,
            ).order_by(s.staging.c.id)
        ).all()
    engine.dispose()
    staged = [r[0] for r in rows]
    assert len(staged) == len(page) + 1
    # every payload reads back as it was, in the page's order; a compact one (orjson's,
    # as ingest writes nearly all) is the very text, and SQLite writes ``json``'s
    # spaced fallback (an integer past 64 bits) compact, with its literals as they were
    assert [json.loads(t) for t in staged] == [json.loads(t) for t in [*page, '{"debtor_id":"R1"}']]
    made_by_orjson = len(AWKWARD) - 1
    assert staged[:made_by_orjson] == page[:made_by_orjson]
    assert staged[len(AWKWARD_PAYLOADS) :] == [*page[len(AWKWARD_PAYLOADS) :], '{"debtor_id":"R1"}']
    big = staged[made_by_orjson + 2]
    assert '"big":1180591620717411303424' in big.replace(" ", "")
    assert "1.5e-300" in big
    assert {tuple(r[1:4]) for r in rows[: len(page)]} == {("c1", "erp", "invoices")}
    assert rows[-1][1:4] == ("c1", "erp", "debtors")
    assert {r[4] for r in rows} == {at}


def _debtor(i: int, name: str = "A") -> dict:
    return {
        "creditor_id": "c1",
        "debtor_id": f"R{i}",
        "source": "erp",
        "name": name,
        "language": "nl",
        "bucket": i % 1024,
        "updated_at": utcnow(),
    }


def test_upsert_writes_only_what_changed_and_cursors_round_trip(url: str) -> None:
    engine = open_ledger(url)
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        assert (
            upsert(
                conn,
                s.debtors,
                [_debtor(i) for i in range(5)],
                ["creditor_id", "debtor_id"],
                ["name", "updated_at"],
                ["name"],
            )
            == 5
        )
    with engine.begin() as conn:
        rows = [_debtor(i, "B" if i == 2 else "A") for i in range(5)]
        assert (
            upsert(
                conn,
                s.debtors,
                rows,
                ["creditor_id", "debtor_id"],
                ["name", "updated_at"],
                ["name"],
            )
            == 1
        )
        set_cursor(conn, "c1", "erp", "debtors", {"watermark": "2026-11-23T06:00:00", "key": "R4"})
    with engine.connect() as conn:
        assert get_cursor(conn, "c1", "erp", "debtors") == {
            "watermark": "2026-11-23T06:00:00",
            "key": "R4",
        }
        assert conn.execute(select(func.count()).select_from(s.debtors)).scalar() == 5
    engine.dispose()


def test_many_row_writes_count_what_they_inserted_or_changed(url: str) -> None:
    """More rows than a batch (2,000) and than a page of insertmanyvalues (1,000): the
    counts are of the rows inserted or changed (on PostgreSQL they come from RETURNING,
    as psycopg2 would otherwise send the rows one by one)."""
    engine = open_ledger(url)
    keys, update, watch = ["creditor_id", "debtor_id"], ["name", "updated_at"], ["name"]
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        assert (
            upsert(conn, s.debtors, [_debtor(i) for i in range(4500)], keys, update, watch) == 4500
        )
    with engine.begin() as conn:
        day2 = [_debtor(i, "B" if i % 7 == 0 else "A") for i in range(5200)]  # 700 new
        assert upsert(conn, s.debtors, day2, keys, update, watch) == 643 + 700
        assert upsert(conn, s.debtors, day2, keys, update, watch) == 0  # nothing changed
        assert insert_ignore(conn, s.debtors, [_debtor(i) for i in range(5000, 7500)]) == 2300
        assert conn.execute(select(func.count()).select_from(s.debtors)).scalar() == 7500
        assert conn.execute(select(func.count()).where(s.debtors.c.name == "B")).scalar() == len(
            range(0, 5200, 7)
        )
    engine.dispose()


def _payment(creditor: str, i: int) -> dict:
    return {
        "creditor_id": creditor,
        "payment_id": f"P{i}",
        "source": "bank",
        "booking_date": dt.date(2026, 11, 30),
        "amount_cents": 100 + i,
        "currency": "EUR",
        "status": "new",
        "created_at": utcnow(),
    }


def test_update_many_sets_each_rows_values_by_key_within_the_fixed_columns(url: str) -> None:
    """More rows than a batch, of every kind of value a stage writes (text with quotes
    and percent signs, JSON, NULLs, dates, timestamps): each row gets its own values,
    a key named twice its last row's, and another creditor's rows stay as they were (on
    PostgreSQL this runs as one UPDATE … FROM a table COPY filled, not row by row)."""
    engine = open_ledger(url)
    with engine.begin() as conn:
        for c in ("c1", "c2"):
            ensure_creditor(conn, c, "Creditor", "housing", "x" * 64)
            insert_ignore(conn, s.payments, [_payment(c, i) for i in range(4500)])
    rows = [
        {
            "payment_id": f"P{i}",
            "status": "matched" if i % 2 else "unmatched",
            "allocated_cents": i,
            "unmatched_reason": None if i % 2 else f"geen kenmerk 100% 'zeker' {i}",
            "suggestions": [{"debtor_id": f"R{i}", "score": 0.5}] if i % 3 == 0 else None,
        }
        for i in range(4200)
    ]
    rows.append({**rows[10], "allocated_cents": 999, "suggestions": {"last": True}})
    rows[6]["unmatched_reason"] = "tab\there\nline \\N \\ back\r"  # COPY escapes these
    with engine.begin() as conn:
        assert update_many(conn, s.payments, {"creditor_id": "c1"}, ["payment_id"], rows) == 4200
    with engine.connect() as conn:
        p = s.payments.c
        got = {
            (r.creditor_id, r.payment_id): r
            for r in conn.execute(
                select(
                    p.creditor_id,
                    p.payment_id,
                    p.status,
                    p.allocated_cents,
                    p.unmatched_reason,
                    p.suggestions,
                )
            )
        }
    assert got[("c1", "P3")].status == "matched" and got[("c1", "P3")].unmatched_reason is None
    assert got[("c1", "P3")].suggestions == [{"debtor_id": "R3", "score": 0.5}]
    assert got[("c1", "P4")].unmatched_reason == "geen kenmerk 100% 'zeker' 4"
    assert got[("c1", "P4")].suggestions is None
    assert got[("c1", "P6")].unmatched_reason == "tab\there\nline \\N \\ back\r"
    assert (got[("c1", "P10")].allocated_cents, got[("c1", "P10")].suggestions) == (
        999,
        {"last": True},
    )
    assert got[("c1", "P4199")].allocated_cents == 4199
    assert got[("c1", "P4200")].status == "new"  # not among the rows
    assert {r.status for k, r in got.items() if k[0] == "c2"} == {"new"}
    assert {r.allocated_cents for k, r in got.items() if k[0] == "c2"} == {0}
    with engine.begin() as conn:  # timestamps and dates through the same path
        n = update_many(
            conn,
            s.payments,
            {"creditor_id": "c2", "status": "new"},
            ["payment_id"],
            [
                {"payment_id": "P1", "value_date": dt.date(2026, 12, 1), "created_at": utcnow()},
                {"payment_id": "P2", "value_date": None, "created_at": utcnow()},
                {"payment_id": "P-none", "value_date": None, "created_at": utcnow()},
            ],
        )
        assert n == 2
        assert conn.execute(
            select(p.value_date).where(p.creditor_id == "c2", p.payment_id == "P1")
        ).scalar() == dt.date(2026, 12, 1)
    engine.dispose()


AWKWARD_TEXTS = ["tab\there", "two\nlines\r\n", "back\\slash \\N", "", "\\N", "é ß 😀", "100% 'x'"]


def test_many_row_inserts_keep_every_awkward_value_and_the_last_of_a_repeated_key(
    url: str,
) -> None:
    """Enough rows for PostgreSQL's COPY path: text with tabs, newlines, backslashes and
    a literal \\N, an empty text apart from NULL, JSON holding the same, dates,
    timestamps and booleans come back as written, on both ledgers; a key named twice
    in one upsert takes its last row."""
    engine = open_ledger(url)
    n = 1500
    rows = []
    for i in range(n):
        text = AWKWARD_TEXTS[i % len(AWKWARD_TEXTS)]
        rows.append(
            {
                **_payment("c1", i),
                "remittance": None if i % 11 == 0 else text,
                "counterparty_name": text,
                "reversal": i % 2 == 0,
                "value_date": dt.date(2026, 11, 1) + dt.timedelta(days=i % 30),
                "suggestions": None if i % 3 else [{"why": text, "score": 0.5}],
            }
        )
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        assert insert_ignore(conn, s.payments, rows) == n
        assert insert_ignore(conn, s.payments, rows) == 0
        keys, cols = ["creditor_id", "payment_id"], ["status", "unmatched_reason"]
        day2 = [{**r, "status": "unmatched", "unmatched_reason": "eerste"} for r in rows[:800]]
        day2.append({**rows[5], "status": "matched", "unmatched_reason": "laatste\tnaam"})
        assert upsert(conn, s.payments, day2, keys, cols, only_if_changed=cols) == 800
    with engine.connect() as conn:
        p = s.payments.c
        got = {
            r.payment_id: r
            for r in conn.execute(
                select(
                    p.payment_id,
                    p.remittance,
                    p.counterparty_name,
                    p.reversal,
                    p.value_date,
                    p.suggestions,
                    p.status,
                    p.unmatched_reason,
                    p.amount_cents,
                )
            )
        }
    for r in rows:
        back = got[r["payment_id"]]
        assert (back.remittance, back.counterparty_name, back.reversal, back.value_date) == (
            r["remittance"],
            r["counterparty_name"],
            r["reversal"],
            r["value_date"],
        ), r["payment_id"]
        assert back.suggestions == r["suggestions"], r["payment_id"]
    assert (got["P5"].status, got["P5"].unmatched_reason) == ("matched", "laatste\tnaam")
    assert (got["P6"].status, got["P6"].unmatched_reason) == ("unmatched", "eerste")
    assert got["P900"].status == "new"
    engine.dispose()


def test_a_many_row_insert_with_values_the_statement_fixes_writes_them_on_every_row(
    url: str,
) -> None:
    """As ingest stages a page: the creditor, source, entity and stamp fixed by the
    statement, the payload (JSON text bound as text) from each row, in order."""
    from sqlalchemy import Text, bindparam

    from ledger.store import execute_many

    engine = open_ledger(url)
    stamp = utcnow()
    stmt = s.staging.insert().values(
        creditor_id="c1",
        source="erp",
        entity="invoices",
        staged_at=stamp,
        payload=bindparam("payload", type_=Text),
    )
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        texts = [f'{{"invoice_id": "F{i}", "note": "a\\tb"}}' for i in range(1200)]
        if conn.dialect.name == "postgresql":  # the COPY path takes it, fixed values and all
            from ledger.store import _pg_insert_plan

            assert _pg_insert_plan(conn, stmt.returning(s.staging.c.id), ["payload"], None)
        assert execute_many(conn, stmt, [{"payload": t} for t in texts]) == 1200
    with engine.connect() as conn:
        st = s.staging.c
        got = conn.execute(
            select(st.creditor_id, st.source, st.entity, st.staged_at, st.payload).order_by(st.id)
        ).all()
    assert {(r.creditor_id, r.source, r.entity, r.staged_at) for r in got} == {
        ("c1", "erp", "invoices", stamp)
    }
    assert [r.payload for r in got] == [
        {"invoice_id": f"F{i}", "note": "a\tb"} for i in range(1200)
    ]
    engine.dispose()


def _contact(**values: object) -> dict[str, object]:
    """A planned reminder of debtor R1 (contacts row), with ``values`` instead."""
    return {
        "creditor_id": "c1",
        "debtor_id": "R1",
        "dossier": "F1",
        "step": "friendly_reminder",
        "channel": "email",
        "message_id": "m1",
        "status": "planned",
        "segment": "on_time",
        "send_after": utcnow(),
        "cycle_date": dt.date(2026, 11, 23),
        "amount_cents": 100,
        "invoice_ids": ["F1"],
        "reasons": [],
        "created_at": utcnow(),
        "updated_at": utcnow(),
        **values,
    }


def test_the_outbox_refuses_a_second_message_for_the_same_step(url: str) -> None:
    engine = open_ledger(url)
    row = _contact()
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        conn.execute(insert(s.contacts).values(**row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(s.contacts).values(**{**row, "message_id": "m2"}))
    engine.dispose()


def test_a_hold_cancels_only_the_planned_contacts_of_its_debtors(url: str) -> None:
    """``cancel_open_contacts``: one debtor, or a set of them larger than one ``IN``
    list (``IN_CHUNK``); a contact already sent, or another debtor's, stays as it is."""
    from flows.stages import cancel_open_contacts
    from ledger.store import IN_CHUNK

    engine = open_ledger(url)
    n = IN_CHUNK + 2
    rows = [
        _contact(debtor_id=f"R{i}", message_id=f"m{i}", status="sent" if i == 1 else "planned")
        for i in range(n + 1)  # R0 .. R<n>; R<n> is nobody's concern here
    ]
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        insert_ignore(conn, s.contacts, rows)
        assert cancel_open_contacts(conn, "c1", "R0", "hold: kennisgeving") == 1
        assert cancel_open_contacts(conn, "c1", "R0", "hold: again") == 0
        many = {f"R{i}" for i in range(1, n)}
        assert cancel_open_contacts(conn, "c1", many, "hold") == n - 2  # R1 was sent
        assert cancel_open_contacts(conn, "c1", set(), "hold") == 0
        got = dict(conn.execute(select(s.contacts.c.debtor_id, s.contacts.c.status)).all())
        why = conn.execute(
            select(s.contacts.c.last_error).where(s.contacts.c.debtor_id == "R0")
        ).scalar()
    assert got["R0"] == "cancelled" and why == "hold: kennisgeving"
    assert got["R1"] == "sent" and got[f"R{n}"] == "planned"
    assert {got[f"R{i}"] for i in range(2, n)} == {"cancelled"}
    engine.dispose()


def test_timestamps_compare_across_zones(url: str) -> None:
    """09:30 in Amsterdam is 08:30 UTC on every dialect (SQLite keeps no offset)."""
    from zoneinfo import ZoneInfo

    engine = open_ledger(url)
    ams = dt.datetime(2026, 11, 24, 9, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        set_cursor(conn, "c1", "erp", "debtors", {})
        conn.execute(s.source_cursors.update().values(updated_at=ams))
    with engine.connect() as conn:
        t = s.source_cursors.c.updated_at
        assert conn.execute(select(t)).scalar() == ams
        assert conn.execute(
            select(t).where(t <= dt.datetime(2026, 11, 24, 8, 30, tzinfo=dt.UTC))
        ).first()
        assert not conn.execute(
            select(t).where(t <= dt.datetime(2026, 11, 24, 8, 29, tzinfo=dt.UTC))
        ).first()
    engine.dispose()


def test_allocations_made_before_components_count_as_principal(url: str) -> None:
    """Upgrading a ledger from revision 0004: its allocations all went to the principal."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from ledger.store import _MIGRATIONS, make_engine

    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            text(
                "INSERT INTO creditors (creditor_id, name, sector, config_sha256, created_at,"
                " updated_at)"
                " VALUES ('c1', 'C', 'housing', 'h', :now, :now)"
            ),
            {"now": utcnow()},
        )
        conn.execute(
            text(
                "INSERT INTO allocations (creditor_id, payment_id, invoice_id, amount_cents,"
                " rule, created_at) VALUES ('c1', 'p1', 'F1', 12345, 'structured_reference', :now)"
            ),
            {"now": utcnow()},
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(select(s.allocations)).one()
    assert (row.principal_cents, row.costs_cents, row.interest_cents) == (12345, 0, 0)
    engine.dispose()


_stamp = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["F-1", "F-2", "F-3", "F-'4", "F-5"]),
            st.integers(0, 10**9),
            st.one_of(st.none(), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))),
            st.one_of(st.none(), st.text(max_size=6)),
            st.sampled_from(["open", "paid", "partial"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_the_driver_executemany_writes_what_sqlalchemy_writes(tmp_path, batches) -> None:  # type: ignore[no-untyped-def]
    """Upserts and inserts through the driver's executemany (SQLite) leave the same rows,
    and report the same counts, as SQLAlchemy's own path: dates, NULLs, quotes, the
    timestamp type's conversion (each distinct value converted once), the only-if-changed
    condition; rows given a column at a time (``ColumnRows``) as rows given as dicts."""
    import ledger.store as store

    got = {}
    for fast, as_columns in ((True, False), (False, False), (True, True), (False, True)):
        key = (fast, as_columns)
        eng = open_ledger(f"sqlite:///{tmp_path / f'l-{fast}-{uuid.uuid4().hex}.sqlite'}")
        counts = []
        with eng.begin() as conn:
            ensure_creditor(conn, "c", "C", "housing", "x")
        for k in range(0, len(batches), 7):
            rows = [
                {
                    "creditor_id": "c",
                    "invoice_id": i,
                    "debtor_id": "D1",
                    "amount_cents": a,
                    "open_cents": a,
                    "currency": "EUR",
                    "invoice_date": dt.date(2026, 1, 1),
                    "due_date": d or dt.date(2026, 2, 1),
                    "paid_date": d,
                    "payment_reference": ref,
                    "status": st_,
                    "bucket": 1,
                    "source": "erp",
                    "updated_at": _stamp,
                }
                for i, a, d, ref, st_ in batches[k : k + 7]
            ]
            rows = list({r["invoice_id"]: r for r in rows}.values())  # one row per key a batch
            if as_columns:
                rows = store.ColumnRows({c: [r[c] for r in rows] for c in rows[0]})
            store.DRIVER_EXECUTEMANY = fast
            try:
                with eng.begin() as conn:
                    cols = [
                        "amount_cents",
                        "open_cents",
                        "paid_date",
                        "payment_reference",
                        "status",
                    ]
                    counts.append(
                        upsert(
                            conn,
                            s.invoices,
                            rows,
                            ["creditor_id", "invoice_id"],
                            [*cols, "updated_at"],
                            only_if_changed=cols,
                        )
                    )
                    counts.append(insert_ignore(conn, s.invoices, rows))
            finally:
                store.DRIVER_EXECUTEMANY = True
        with eng.connect() as conn:
            table = sorted(tuple(r) for r in conn.execute(select(s.invoices)).all())
        got[key] = (counts, table)
        eng.dispose()
    assert got[True, False] == got[False, False] == got[True, True] == got[False, True]


def test_column_rows_are_a_sequence_of_row_mappings() -> None:
    from ledger.store import ColumnRows

    rows = ColumnRows({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert len(rows) == 3 and rows[1] == {"a": 2, "b": None} and rows[-1]["b"] == "z"
    assert rows[1:] == [{"a": 2, "b": None}, {"a": 3, "b": "z"}]
    assert list(rows) == [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": 3, "b": "z"}]
    with pytest.raises(IndexError):
        rows[3]
    with pytest.raises(ValueError, match="different lengths"):
        ColumnRows({"a": [1], "b": [1, 2]})
    assert not ColumnRows({})


def test_a_bind_processor_runs_once_a_distinct_value_and_by_type() -> None:
    from ledger.store import _processed

    calls: list[object] = []

    def p(v: object) -> str:
        calls.append(v)
        return repr(v)

    assert _processed(p, [1, True, 1, True, 1.0, None, None, None]) == [
        "1",
        "True",
        "1",
        "True",
        "1.0",
        "None",
        "None",
        "None",
    ]
    assert sorted(map(repr, calls)) == ["1", "1.0", "None", "True"]
    assert _processed(p, [{"a": 1}, {"a": 1}]) == ["{'a': 1}", "{'a': 1}"]  # unhashable


_AMS_TEN = dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=1)))
_COPY_VALUES = {
    "text": st.text(alphabet=st.sampled_from("ab \\\t\n\rNé"), max_size=4),
    "plain text": st.text(alphabet="abcé ", max_size=4),
    "int": st.integers(-3, 3),
    "bool": st.booleans(),
    "float": st.floats(allow_infinity=False) | st.just(float("nan")),
    "date": st.dates(dt.date(2026, 1, 1), dt.date(2026, 1, 4)),
    "stamp": st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)),
    "decimal": st.decimals(-2, 2, places=1),
    "dict": st.dictionaries(st.just("a"), st.integers(0, 1), max_size=1),
}


@given(
    st.lists(st.sampled_from(sorted(_COPY_VALUES)), min_size=1, max_size=3, unique=True).flatmap(
        lambda kinds: st.lists(st.one_of(st.none(), *(_COPY_VALUES[k] for k in kinds)), max_size=40)
    )
)
@example([0.0, -0.0, 0.0, -0.0])
@example([Decimal("1.0"), Decimal("1.00"), Decimal("1.0")])
@example([_AMS_TEN, _AMS_TEN.astimezone(dt.timezone.utc), _AMS_TEN, None])
@settings(max_examples=300, deadline=None)
def test_a_column_in_copy_text_is_each_value_in_copy_text(values: list[object]) -> None:
    """A column written for COPY a column at a time (one kind and gaps without a call per
    value) reads as each value written alone: repeats, gaps, text that needs escaping,
    1 beside True and 1.0, NaN, equal values that read differently (-0.0, Decimal 1.00,
    one instant in two zones); a value with no COPY text fails it alike."""
    from ledger.store import _copy_text, copy_column

    try:
        alone: list[str] | type[TypeError] = [_copy_text(v) for v in values]
    except TypeError:
        alone = TypeError
    if alone is TypeError:
        with pytest.raises(TypeError):
            copy_column(values)
    else:
        assert copy_column(values) == alone


def test_a_kept_statement_serves_each_shape_of_call_as_its_own(url: str) -> None:
    """upsert and insert_ignore keep their statements per shape: the same table called
    with other keys, other update columns or rows of other columns gets its own."""
    engine = open_ledger(url)
    now = utcnow()
    row = {"creditor_id": "c1", "name": "A", "sector": "housing", "config_sha256": "x"}
    with engine.begin() as conn:
        assert insert_ignore(conn, s.creditors, [{**row, "created_at": now, "updated_at": now}])
        assert not insert_ignore(conn, s.creditors, [{**row, "created_at": now, "updated_at": now}])
        changed = {**row, "name": "B", "sector": "energy", "created_at": now, "updated_at": now}
        # only the name may change: the sector stays
        assert upsert(conn, s.creditors, [changed], ["creditor_id"], ["name"]) == 1
        got = conn.execute(select(s.creditors.c.name, s.creditors.c.sector)).one()
        assert tuple(got) == ("B", "housing")
        # the same call with the sector too, and rows with one column more
        assert upsert(conn, s.creditors, [changed], ["creditor_id"], ["name", "sector"]) == 1
        assert tuple(conn.execute(select(s.creditors.c.name, s.creditors.c.sector)).one()) == (
            "B",
            "energy",
        )
        same = {**changed}
        assert (
            upsert(conn, s.creditors, [same], ["creditor_id"], ["name"], only_if_changed=["name"])
            == 0
        )
        more = {**changed, "creditor_id": "c2", "stopped_reason": "broken export"}
        assert insert_ignore(conn, s.creditors, [more]) == 1
        stopped = dict(
            conn.execute(select(s.creditors.c.creditor_id, s.creditors.c.stopped_reason)).all()
        )
        assert stopped == {"c1": None, "c2": "broken export"}


def test_a_bulk_insert_on_sqlite_leaves_what_a_row_at_a_time_leaves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """From ``SQLITE_BULK_FROM`` rows an INSERT on SQLite goes through a temporary table
    and one INSERT … SELECT: the same rows (ids in the same order), the same dirty marks
    in the same order, the same counts on a first day and a second, as a statement a
    row; a JSON column named by a keyword ("values") and values that look like numbers
    get the column's own affinity either way."""
    import ledger.store as store

    def day(i: int, second: bool) -> dict:
        changed = second and i % 3 == 0
        return {
            "creditor_id": "c",
            "invoice_id": f"F{(i * 7919) % 1300:05d}",  # not in key order
            "debtor_id": f"D{i % 400:04d}",
            "amount_cents": 1000 + i,
            "open_cents": 0 if changed else 1000 + i,
            "currency": "EUR",
            "invoice_date": dt.date(2026, 1, 1) + dt.timedelta(days=i % 60),
            "due_date": dt.date(2026, 2, 1),
            "paid_date": dt.date(2026, 11, 24) if changed else None,
            "payment_reference": f"{i:016d}" if i % 5 else None,  # a text of digits
            "status": "paid" if changed else "open",
            "bucket": i % 1024,
            "source": "erp",
            "source_version": "5" if i % 2 else "2026-11-24 10:00:00",
            "updated_at": _stamp,
        }

    def changes(i: int) -> dict:
        values: object = {"status": "betaald", "open_amount": f"{i}.00"}
        if i % 50 == 0:
            values = 5 if i % 100 else "0012"  # JSON scalars: a number, a text of digits
        return {
            "creditor_id": "c",
            "target": "erp",
            "entity": "invoices",
            "record_id": f"F{i:05d}",
            "change_id": f"ch-{(i * 31) % 1000:04d}",
            "values": values,
            "expected_version": None if i % 7 == 0 else "v1",
            "status": "planned",
            "attempts": 0,
            "created_at": _stamp,
        }

    got = {}
    for bulk_from in (store.SQLITE_BULK_FROM, 10**9):  # the temporary table; a row at a time
        eng = open_ledger(f"sqlite:///{tmp_path / f'l-{bulk_from}.sqlite'}")
        counts = []
        saved, store.SQLITE_BULK_FROM = store.SQLITE_BULK_FROM, bulk_from
        try:
            cols = ["open_cents", "paid_date", "status", "source_version"]
            for second in (False, True):
                with eng.begin() as conn:
                    ensure_creditor(conn, "c", "C", "housing", "x")
                    rows = [day(i, second) for i in range(1300 if second else 1000)]
                    counts.append(
                        upsert(
                            conn,
                            s.invoices,
                            rows,
                            ["creditor_id", "invoice_id"],
                            [*cols, "updated_at"],
                            only_if_changed=cols,
                        )
                    )
                    counts.append(
                        insert_ignore(conn, s.write_backs, [changes(i) for i in range(1200)])
                    )
            with eng.begin() as conn:  # a match's invoices: some move to another debtor
                conn.execute(s.dirty_debtors.delete())  # assessed: the marks taken
                moved = [
                    {
                        "invoice_id": f"F{(i * 7919) % 1300:05d}",
                        "open_cents": i,
                        "debtor_id": f"D{(i + 1) % 400:04d}" if i % 4 == 0 else f"D{i % 400:04d}",
                        "paid_date": None,
                    }
                    for i in range(0, 1300, 2)
                ]
                counts.append(
                    update_many(conn, s.invoices, {"creditor_id": "c"}, ["invoice_id"], moved)
                )
        finally:
            store.SQLITE_BULK_FROM = saved
        with eng.connect() as conn:
            got[bulk_from] = (
                counts,
                [
                    tuple(r)
                    for r in conn.execute(select(s.invoices).order_by(s.invoices.c.invoice_id))
                ],
                [
                    tuple(r)
                    for r in conn.execute(select(s.dirty_debtors).order_by(s.dirty_debtors.c.id))
                ],
                [
                    tuple(r)
                    for r in conn.execute(select(s.write_backs).order_by(s.write_backs.c.id))
                ],
                conn.exec_driver_sql(
                    'SELECT typeof("values"), count(*) FROM write_backs GROUP BY 1 ORDER BY 1'
                ).all(),
                conn.exec_driver_sql(
                    "SELECT typeof(payment_reference), typeof(source_version), count(*)"
                    " FROM invoices GROUP BY 1, 2 ORDER BY 1, 2"
                ).all(),
            )
        eng.dispose()
    bulk, by_row = got[store.SQLITE_BULK_FROM], got[10**9]
    # new; every third changed and 300 new; none new; 650 updated by key
    assert bulk[0] == by_row[0] == [1000, 1000, 334 + 300, 0, 650]
    assert len(bulk[2]) == 300 and bulk[1:] == by_row[1:]  # the update marks the same debtors
    # a JSON number is stored as a number (the column's NUMERIC affinity), a text of
    # digits in a text column stays text
    assert bulk[4] == [("integer", 10), ("text", 990)]  # 1,000 change ids
    assert {(a, b) for a, b, _ in bulk[5]} == {("null", "text"), ("text", "text")}


def test_a_bulk_update_on_sqlite_finds_its_rows_by_key_and_keeps_its_guard(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``update_many`` of many rows on SQLite with a fixed column outside the primary key
    (the replies' messages "answered"): only rows that pass the guard change, and the
    UPDATE … FROM finds each row by its key. Walking the index on (creditor_id, status)
    and scanning the temporary table for each row it found was quadratic (3 s for 7,500
    messages)."""
    from sqlalchemy import event

    eng = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with eng.begin() as conn:
        ensure_creditor(conn, "c", "C", "housing", "x")
        conn.execute(
            insert(s.skp_messages),
            [
                {
                    "creditor_id": "c",
                    "message_id": f"m{i:04d}",
                    "received_at": _stamp,
                    "status": "answered" if i % 10 else "review",
                    "answer_due": dt.date(2026, 12, 8),
                    "payload": {},
                }
                for i in range(1000)
            ],
        )
    plans: list[list[str]] = []

    @event.listens_for(eng, "before_cursor_execute")
    def _plan(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE") and "FROM temp.vangnet_bulk" in statement:
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append([r[3] for r in rows.fetchall()])

    with eng.begin() as conn:
        n = update_many(
            conn,
            s.skp_messages,
            {"creditor_id": "c", "status": "answered"},
            ["message_id"],
            [{"message_id": f"m{i:04d}", "answer_due": None} for i in range(1000)],
        )
    with eng.connect() as conn:
        due = dict(
            conn.execute(
                select(s.skp_messages.c.status, func.count(s.skp_messages.c.answer_due)).group_by(
                    s.skp_messages.c.status
                )
            ).all()
        )
    eng.dispose()
    assert n == 900 and due == {"answered": 0, "review": 100}  # the guard held
    assert len(plans) == 1
    assert plans[0][0] == "SCAN v"
    assert plans[0][1].startswith("SEARCH skp_messages USING INDEX sqlite_autoindex")
    assert plans[0][1].endswith("(creditor_id=? AND message_id=?)")


def test_a_select_by_more_keys_than_sqlite_binds_at_once_reads_them_all(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``frame_in`` reads by 300,000 keys (a large rent day's changed invoices), beyond
    the 250,000 bound values a statement may hold in Debian's SQLite (32,766 in a default
    build), where one IN list of them all fails."""
    from sqlalchemy.exc import OperationalError

    from ledger.store import frame_in

    engine = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        insert_ignore(conn, s.payments, [_payment("c1", i) for i in range(3000)])
    keys = [f"P{i}" for i in range(0, 600_000, 2)]  # 300,000: every other one is there
    p = s.payments.c

    def by(ids):  # type: ignore[no-untyped-def]
        return select(p.payment_id, p.amount_cents).where(
            p.creditor_id == "c1", p.payment_id.in_(ids)
        )

    with engine.connect() as conn:
        with pytest.raises(OperationalError, match="too many SQL variables"):
            conn.execute(by(keys)).all()
        got = frame_in(conn, by, keys)
        none = frame_in(conn, by, [])
    engine.dispose()
    assert sorted(got["payment_id"]) == sorted(f"P{i}" for i in range(0, 3000, 2))
    assert dict(zip(got["payment_id"], got["amount_cents"], strict=True))["P20"] == 120
    assert none.empty and list(none.columns) == ["payment_id", "amount_cents"]


def test_a_table_changed_in_bulk_gets_its_statistics_on_postgres(url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``refresh_statistics`` ANALYZEs, on PostgreSQL, each table that changed by
    ``ANALYZE_FROM`` rows or more, and no other: a table filled in bulk has no
    statistics until autovacuum gets to it (never, where it is off), and the planner
    then reads every row of the creditor for each batch of keys. Nothing on SQLite."""
    import ledger.store as store

    monkeypatch.setattr(store, "ANALYZE_FROM", 25)
    engine = open_ledger(url)
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        n = insert_ignore(conn, s.payments, [_payment("c1", i) for i in range(30)])
        done = store.refresh_statistics(conn, {s.payments: n, s.invoices: 24})
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            tuples = dict(
                conn.exec_driver_sql(
                    "SELECT relname, reltuples FROM pg_class"
                    " WHERE oid IN ('payments'::regclass, 'invoices'::regclass)"
                ).all()
            )
            assert done == ["payments"]
            assert tuples == {"payments": 30, "invoices": -1}  # -1: never analyzed
        else:
            assert done == []
    engine.dispose()


def test_an_invoice_is_promoted_net_of_what_vangnet_allocated(url: str) -> None:
    """``promote``: the ledger's open amount is the source's less what vangnet allocated,
    and so are its open costs and interest, each within what stays open; the status
    follows the open amount."""
    import types

    import pandas as pd

    from flows.stages import promote
    from ledger.records import INVOICE_COLUMNS

    def inv(i: str, open_: int, costs: int = 0, interest: int | None = 0) -> dict:
        return {
            "invoice_id": i,
            "debtor_id": "R1",
            "invoice_date": dt.date(2026, 10, 1),
            "due_date": dt.date(2026, 10, 15),
            "amount_cents": 10_000,
            "open_cents": open_,
            "costs_cents": costs,
            "interest_cents": interest,
            "currency": "EUR",
            "payment_reference": None,
            "paid_date": None,
            "prior_reminders": None,
            "source_version": "1",
            "_errors": None,
        }

    rows = [
        inv("A", 14_120, 4_000, 120),  # paid 5,000: the costs first, then principal
        inv("B", 3_000),  # paid more than is open
        inv("C", 10_000, interest=None),  # nothing paid, no interest given
        inv("D", 120, 50, 100),  # interest beyond what is open
    ]
    valid = pd.DataFrame(rows, columns=[*INVOICE_COLUMNS, "_errors"])
    for c in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
        valid[c] = valid[c].astype("Int64")
    alloc = {"A": (5_000, 4_000, 0), "B": (5_000, 0, 0)}
    engine = open_ledger(url)
    ctx = types.SimpleNamespace(creditor_id="c1")
    with engine.begin() as conn:
        ensure_creditor(conn, "c1", "Creditor", "housing", "x" * 64)
        assert promote(conn, ctx, "invoices", "erp", valid, utcnow(), alloc) == 4
        got = {
            r.invoice_id: (
                r.open_cents,
                r.costs_cents,
                r.interest_cents,
                r.status,
                r.prior_reminders,
            )
            for r in conn.execute(select(s.invoices))
        }
    assert got == {
        "A": (9_120, 0, 120, "partial", 0),
        "B": (0, 0, 0, "paid", 0),
        "C": (10_000, 0, 0, "open", 0),
        "D": (120, 50, 70, "partial", 0),
    }
    engine.dispose()
