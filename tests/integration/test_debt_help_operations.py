"""What operations do by hand: see what is due, answer what is in review, list and lift
holds (audited), export the Wgs signals and record what the municipality fed back."""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from flows import debt_help
from flows.cli import app
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger import store
from ledger.store import utcnow
from tests.cycle_steps import ingest_and_validate, seeded, up_to_plan
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


def _ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    debt_help.exchange_messages(ctx)
    return cfg, ctx


def _sent(ctx, debtor: str, channel: str) -> None:  # type: ignore[no-untyped-def]
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(s.contacts).values(
                creditor_id=ctx.creditor_id,
                debtor_id=debtor,
                dossier="d1",
                step="friendly_reminder",
                channel=channel,
                message_id=str(uuid.uuid4()),
                status="sent",
                segment="wont_pay",
                send_after=utcnow(),
                cycle_date=NOW.date(),
                amount_cents=1,
                invoice_ids=[],
                reasons=[],
                sent_at=utcnow(),
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )


def test_holds_are_listed_and_lifted_only_with_a_reason(tmp_path: Path) -> None:
    cfg, ctx = _ctx(tmp_path)
    cli = CliRunner()
    listed = cli.invoke(app, ["holds", "list", "--creditor", str(cfg), "--json"])
    assert listed.exit_code == 0, listed.output
    holds = [json.loads(line) for line in listed.output.splitlines()]
    assert holds and {h["kind"] for h in holds} == {"debt_assistance"}
    debtor = holds[0]["debtor_id"]
    no_reason = cli.invoke(
        app, ["holds", "lift", debtor, "--creditor", str(cfg), "--reason", " ", "--operator", "ops"]
    )
    assert no_reason.exit_code == 2 and "needs a reason" in no_reason.output
    lifted = cli.invoke(
        app,
        [
            "holds",
            "lift",
            debtor,
            "--creditor",
            str(cfg),
            "--reason",
            "SHV belde: traject gestopt",
            "--operator",
            "ops@wooncorp",
        ],
    )
    assert lifted.exit_code == 0 and "1 hold(s) lifted" in lifted.output
    again = cli.invoke(
        app, ["holds", "lift", debtor, "--creditor", str(cfg), "--reason", "x", "--operator", "ops"]
    )
    assert again.exit_code == 2 and "no active hold" in again.output
    with ctx.engine.connect() as conn:
        actor = conn.execute(
            select(s.audit_log.c.actor).where(
                s.audit_log.c.action == "hold.lifted", s.audit_log.c.subject == debtor
            )
        ).scalar()
        planned = conn.execute(
            select(func.count())
            .select_from(s.write_backs)
            .where(s.write_backs.c.entity == "holds", s.write_backs.c.record_id == debtor)
        ).scalar()
    assert actor == "ops@wooncorp" and planned == 2  # the hold, then its lifting


def test_review_answers_due_list_and_wgs_round_trip(tmp_path: Path) -> None:
    cfg, ctx = _ctx(tmp_path)
    cli = CliRunner()
    inbox = tmp_path / "demo" / "debt-help-inbox"
    with ctx.engine.connect() as conn:
        held = set(conn.execute(select(s.holds.c.debtor_id)).scalars())
        late = [
            d
            for d in conn.execute(
                select(s.invoices.c.debtor_id)
                .where(
                    s.invoices.c.open_cents > 0,
                    s.invoices.c.due_date < NOW.date() - dt.timedelta(days=40),
                )
                .distinct()
                .order_by(s.invoices.c.debtor_id)
            ).scalars()
            if d not in held
        ]
    target = late[0]
    (inbox / "heroverweging.csv").write_text(
        f"BerichtId;BerichtType;Datum;KlantnummerSE\nHV-1;Heroverweging;2026-11-24;{target}\n"
    )
    out = cli.invoke(app, ["debt-help", "run", "--creditor", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    due = cli.invoke(app, ["debt-help", "due", "--creditor", str(cfg), "--json"])
    rows = {json.loads(line)["message_id"]: json.loads(line) for line in due.output.splitlines()}
    assert rows["HV-1"]["status"] == "review" and rows["HV-1"]["working_days_left"] == 10
    wrong = cli.invoke(
        app,
        [
            "debt-help",
            "answer",
            "HV-1",
            "maybe",
            "--creditor",
            str(cfg),
            "--reason",
            "x",
            "--operator",
            "ops",
        ],
    )
    assert wrong.exit_code == 2 and "decision is" in wrong.output
    ok = cli.invoke(
        app,
        [
            "debt-help",
            "answer",
            "HV-1",
            "accept",
            "--creditor",
            str(cfg),
            "--reason",
            "na heroverweging akkoord",
            "--operator",
            "ops",
        ],
    )
    assert ok.exit_code == 0 and "answered" in ok.output

    # Wgs: the four preconditions met for `target` (a text and a letter went out)
    _sent(ctx, target, "sms")
    _sent(ctx, target, "letter")
    exported = cli.invoke(app, ["wgs", "export", "--creditor", str(cfg)])
    assert exported.exit_code == 0, exported.output
    files = list((tmp_path / "demo" / "wgs").glob("*.csv"))
    with open(files[0], encoding="utf-8-sig", newline="") as fh:
        signals = list(csv.DictReader(fh, delimiter=";"))
    assert [r["klantnummer"] for r in signals] == [target]
    sig = signals[0]
    assert (
        sig["status"] == "nieuw"
        and int(sig["dagen_achterstand"]) >= 40
        and sig["soort_schuld"] == "huur"
    )
    with ctx.engine.connect() as conn:
        person = conn.execute(
            select(s.debtors).where(
                s.debtors.c.creditor_id == ctx.creditor_id, s.debtors.c.debtor_id == target
            )
        ).one()
    assert (sig["naam"], sig["postcode"], sig["plaats"]) == (
        person.name,
        person.postcode,
        person.city,
    )  # the signal carries the debtor's own record
    assert (
        json.loads(files[0].with_suffix(".json").read_text())["signalen"][0]["klantnummer"]
        == target
    )
    repeat = cli.invoke(app, ["wgs", "export", "--creditor", str(cfg)])
    assert "0 signal(s)" in repeat.output  # the same signal is made once

    fed = tmp_path / "uitkomsten.csv"
    fed.write_text(
        f"signaal_id;uitkomst;datum\n{sig['signaal_id']};hulp aanvaard;2026-12-01\nonbekend;x;\n"
    )
    outcome = cli.invoke(app, ["wgs", "outcomes", str(fed), "--creditor", str(cfg)])
    assert outcome.exit_code == 1 and "1 recorded, 1 unknown" in outcome.output
    with ctx.engine.connect() as conn:
        row = conn.execute(select(s.wgs_signals)).one()
    assert (row.status, row.outcome, row.outcome_on) == (
        "outcome",
        "hulp aanvaard",
        dt.date(2026, 12, 1),
    )


def test_an_invalid_message_is_held_shown_as_due_and_released_when_it_checks_out(
    tmp_path: Path,
) -> None:
    from flows import quarantine

    cfg, ctx = _ctx(tmp_path)
    inbox = tmp_path / "demo" / "debt-help-inbox"
    with ctx.engine.connect() as conn:
        debtor = conn.execute(select(s.debtors.c.debtor_id).limit(1)).scalar()
    (inbox / "fouten.csv").write_text(
        "BerichtId;BerichtType;Datum;KlantnummerSE;Percentage;BSN\n"
        f"BV-X;Betaalvoorstel;2026-11-24;{debtor};150;\n"
        f"KG-LATER;Kennisgeving;2026-11-27;{debtor};;\n"
        f"KG-BSN;Kennisgeving Publiek;2026-11-24;{debtor};;123456789\n"
    )
    out = debt_help.exchange_messages(ctx)
    assert out["invalid"] == 3 and out["holds"] == 0
    due = {d["message_id"]: d for d in out["due"]}
    assert due["BV-X"]["status"] == "invalid" and due["BV-X"]["note"] == "skn.proposal_sane"
    held = {r["record"]: r for r in quarantine.list_open(ctx, "skp_message")}
    assert held["KG-LATER"]["rules"] == "skn.date_plausible"
    assert held["KG-BSN"]["rules"] == "skn.bsn_valid"
    assert quarantine.show(ctx, held["KG-BSN"]["id"])["failures"][0]["value"] == "*********"

    # three days later the date checks out: released, handled in the next round; the
    # proposal of 150% still fails; the BSN was never kept (not allowed for this creditor),
    # so what is left of that message checks out
    later = make_ctx(str(cfg), "2026-11-27T10:00:00+01:00")
    ids = [held[k]["id"] for k in ("KG-LATER", "KG-BSN", "BV-X")]
    res = quarantine.release(later, ids, "ops")
    assert res["released"] == ids[:2]
    assert res["still_failing"] == {ids[2]: ["skn.proposal_sane"]}
    again = debt_help.exchange_messages(later)
    assert again["holds"] == 2
    with ctx.engine.connect() as conn:
        status = conn.execute(
            select(s.skp_messages.c.status).where(s.skp_messages.c.message_id == "KG-LATER")
        ).scalar()
    assert status == "answered"


def _after_handling(ctx) -> tuple:  # type: ignore[no-untyped-def]
    """What handling left: each message's status, the holds, the planned replies and the
    audit rows of the messages (how many of each)."""
    with ctx.engine.connect() as conn:
        m, h, r, a = s.skp_messages.c, s.holds.c, s.skp_replies.c, s.audit_log.c
        return (
            dict(conn.execute(select(m.message_id, m.status)).all()),
            sorted(conn.execute(select(h.debtor_id, h.kind, h.source_message_id)).all()),
            sorted(conn.execute(select(r.reply_id, r.type, r.debtor_id)).all()),
            sorted(
                conn.execute(
                    select(a.action, func.count()).where(a.action.like("skp.%")).group_by(a.action)
                ).all()
            ),
        )


def test_messages_are_handled_in_groups_and_one_that_fails_keeps_those_before_it(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Messages are handled a group to a transaction. One that fails rolls its group
    back; the messages before it are then handled one at a time (committed, audited
    once), it fails as it would alone, and those after it wait as new. The next run
    handles the rest: the same statuses, holds, replies and audit rows as a run
    where nothing failed."""
    clean_cfg = seed(tmp_path / "clean", 150, NOW.date())
    clean = make_ctx(str(clean_cfg), NOW)
    ingest_and_validate(clean)
    debt_help.exchange_messages(clean)
    expected = _after_handling(clean)
    assert len(expected[0]) == 7 and expected[1]  # seven messages, some of them holds

    cfg = seed(tmp_path / "demo", 150, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    ingest_and_validate(ctx)
    monkeypatch.setattr(debt_help, "HANDLE_GROUP", 3)
    handle, seen = debt_help._handle, []

    def failing_fifth(conn, ctx, msg, debtors, out, later):  # type: ignore[no-untyped-def]
        if msg.message_id not in seen:
            seen.append(msg.message_id)
        if len(seen) > 4 and msg.message_id == seen[4]:
            raise RuntimeError("the fifth message cannot be handled")
        return handle(conn, ctx, msg, debtors, out, later)

    monkeypatch.setattr(debt_help, "_handle", failing_fifth)
    with pytest.raises(RuntimeError, match="fifth"):
        debt_help.exchange_messages(ctx)
    statuses, _, _, audited = _after_handling(ctx)
    assert [statuses[i] != "new" for i in seen] == [True] * 4 + [False]
    assert sum(statuses[i] == "new" for i in statuses) == 3  # the fifth and two after it
    assert sum(n for _, n in audited) == 4  # the rolled-back group left no audit rows

    monkeypatch.setattr(debt_help, "_handle", handle)
    debt_help.exchange_messages(ctx)
    assert _after_handling(ctx) == expected


HEADER = "BerichtId;BerichtType;Datum;KlantnummerSE;KlantnummerSHV;Percentage;Looptijd;Ingangsdatum"


def _handled_in_groups_of(folder: Path, ledger_url: str | None, monkeypatch, size: int) -> tuple:  # type: ignore[no-untyped-def]
    """The demo's messages and a day of messages about the same two debtors, each later
    one acting on what an earlier one did, handled ``size`` to a transaction; what the
    ledger holds afterwards, without the clock's stamps."""
    monkeypatch.setattr(debt_help, "HANDLE_GROUP", size)
    cfg = seeded(folder, 150, NOW.date(), ledger_url)
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    c = s.contacts.c
    with ctx.engine.connect() as conn:
        a, b, c3 = conn.execute(
            select(c.debtor_id)
            .where(c.status == "planned")
            .distinct()
            .order_by(c.debtor_id)
            .limit(3)
        ).scalars()
    (cfg.parent / "debt-help-inbox" / "dag.csv").write_text(
        f"{HEADER}\n"
        f"D1-KG;Kennisgeving;2026-11-17;{a};SHV-A;;;\n"
        f"D2-BV;Betaalvoorstel;2026-11-18;{a};SHV-A;40;18;2027-01-01\n"
        f"D3-AK;Schuldregeling akkoord;2026-11-19;{a};SHV-A;;;\n"  # the proposal: D2's
        f"D4-END;Schuldregeling beëindigd;2026-11-20;{a};SHV-A;;;\n"  # lifts D1's hold
        f"D5-BW;Bewindvoering;2026-11-20;{b};SHV-B;;;\n"
        f"D6-KG;Kennisgeving;2026-11-21;{b};SHV-B;;;\n"
        f"D7-SV;Saldoverzoek;2026-11-21;{b};SHV-B;;;\n"
        f"D8-KG;Kennisgeving;2026-11-21;ONBEKEND-1;SHV-X;;;\n"
        f"D9-KG;Kennisgeving;2026-11-22;{c3};SHV-C;;;\n"
        f"E1-END;Schuldregeling beëindigd;2026-11-22;{c3};SHV-C;;;\n"  # lifts D9's hold
    )
    with ctx.engine.begin() as conn:  # D6's hold is there already: not added, not audited
        conn.execute(
            insert(s.holds).values(
                creditor_id=ctx.creditor_id,
                debtor_id=b,
                kind="debt_assistance",
                reason="by hand",
                source_message_id="D6-KG",
                starts_on=NOW.date(),
                created_at=utcnow(),
            )
        )
    debt_help.exchange_messages(ctx)
    m, h, ar = s.skp_messages.c, s.holds.c, s.arrangements.c
    r, w, au = s.skp_replies.c, s.write_backs.c, s.audit_log.c
    with ctx.engine.connect() as conn:
        return (
            sorted(conn.execute(select(m.message_id, m.status, m.note, m.debtor_id)).all()),
            sorted(
                conn.execute(select(h.debtor_id, h.kind, h.source_message_id, h.lifted_by)).all()
            ),
            sorted(
                conn.execute(
                    select(ar.arrangement_id, ar.debtor_id, ar.total_cents, ar.status)
                ).all()
            ),
            sorted(conn.execute(select(r.reply_id, r.type, r.debtor_id, r.payload)).all()),
            conn.execute(
                select(w.entity, w.record_id, w["values"], w.change_id).order_by(w.id)
            ).all(),
            conn.execute(select(au.actor, au.action, au.subject, au.detail).order_by(au.id)).all(),
            sorted(conn.execute(select(c.debtor_id, c.message_id, c.status, c.last_error)).all()),
            (a, b, c3),
        )


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_a_group_of_messages_leaves_what_they_leave_one_at_a_time(
    tmp_path: Path, monkeypatch, request, ledger: str
) -> None:  # type: ignore[no-untyped-def]
    """A group writes its holds, cancelled contacts, answers, outcomes, audit rows and
    write-backs when it ends, not as each message is handled. Yet a later message acts
    on an earlier one in the same group (an akkoord on the Betaalvoorstel before it, an
    end lifting the hold before it), a hold that is there already is not added again,
    and the ledger ends as it does with every message on its own: the same statuses,
    holds, arrangements, answers and cancelled contacts, and the audit rows and
    write-backs in the same order. The group's writes take the many-row paths here (a
    temporary table on SQLite, COPY on PostgreSQL), as a day's 500 would."""
    urls = (None, None)
    if ledger == "postgresql":
        urls = (request.getfixturevalue("pg_url"), request.getfixturevalue("pg_url_b"))
    alone = _handled_in_groups_of(tmp_path / "alone", urls[0], monkeypatch, 1)
    monkeypatch.setattr(store, "SQLITE_BULK_FROM", 2)
    monkeypatch.setattr(store, "PG_COPY_FROM", 2)
    grouped = _handled_in_groups_of(tmp_path / "grouped", urls[1], monkeypatch, 500)
    assert grouped == alone
    statuses, holds, arrangements, _, write_backs, audited, contacts, (a, b, c3) = grouped
    by_id = {mid: (status, note) for mid, status, note, _ in statuses}
    assert by_id["D3-AK"] == ("done", None)
    assert arrangements == [("skp-D3-AK", a, arrangements[0].total_cents, "ended")]
    actions = [(action, subject) for _, action, subject, _ in audited]
    assert (a, "debt_assistance", "D1-KG", "schuldenknooppunt") in holds
    assert (c3, "debt_assistance", "D9-KG", "schuldenknooppunt") in holds
    assert [v["hold"] for e, rec, v, _ in write_backs if rec == c3] == ["debt_assistance", ""]
    assert [v["hold"] for e, rec, v, _ in write_backs if rec == a] == ["debt_assistance", ""]
    assert [v["hold"] for e, rec, v, _ in write_backs if rec == b] == ["administration"]
    assert ("hold.added", b) in actions and actions.count(("hold.added", b)) == 1
    assert actions.index(("skp.kennisgeving", a)) < actions.index(("hold.lifted", a))
    assert by_id["D8-KG"][0] == "answered"  # an unknown client: Geen medewerking
    # each debtor's planned contacts cancelled, with the reason of its first hold
    assert {(d, st, why) for d, _, st, why in contacts if d in (a, b)} == {
        (a, "cancelled", "hold: Kennisgeving"),
        (b, "cancelled", "hold: Bewindvoering"),
    }


def test_a_statusbericht_goes_out_when_a_reported_balance_changed(tmp_path: Path) -> None:
    """A Statusbericht SE for each held debtor whose open balance moved since vangnet
    last reported it (its Saldoverzoek answer), once: not for an unchanged balance, not
    for a held debtor never reported, not twice for the same change."""
    from sqlalchemy import update

    _, ctx = _ctx(tmp_path)
    r, i = s.skp_replies, s.invoices
    with ctx.engine.connect() as conn:
        reported = sorted(
            conn.execute(select(r.c.debtor_id).where(r.c.type == "saldoverzoek_antwoord")).scalars()
        )
        held = set(
            conn.execute(select(s.holds.c.debtor_id).where(s.holds.c.lifted_at.is_(None))).scalars()
        )
    assert len(reported) >= 2 and set(reported) <= held and held - set(reported)
    assert debt_help.plan_status_messages(ctx) == 0  # nothing moved since the answers
    with ctx.engine.begin() as conn:  # a payment came in for the first: 10.00 less open
        inv = conn.execute(
            select(i.c.invoice_id, i.c.open_cents)
            .where(i.c.debtor_id == reported[0], i.c.open_cents > 1000)
            .order_by(i.c.invoice_id)
            .limit(1)
        ).one()
        conn.execute(
            update(i)
            .where(i.c.invoice_id == inv.invoice_id)
            .values(open_cents=inv.open_cents - 1000)
        )
        # and a held debtor never reported has a changed balance too: no message for it
        unreported = sorted(held - set(reported))[0]
        conn.execute(update(i).where(i.c.debtor_id == unreported).values(open_cents=0))
    assert debt_help.plan_status_messages(ctx) == 1
    assert debt_help.plan_status_messages(ctx) == 0  # the same change is reported once
    with ctx.engine.connect() as conn:
        sent = conn.execute(
            select(r.c.debtor_id, r.c.payload).where(r.c.type == "statusbericht_se")
        ).all()
    assert [row.debtor_id for row in sent] == [reported[0]]
    claims = sent[0].payload["claims"]
    total = sum(c["principal_cents"] + c["costs_cents"] + c["interest_cents"] for c in claims)
    with ctx.engine.connect() as conn:
        open_now = conn.execute(
            select(func.sum(i.c.open_cents)).where(i.c.debtor_id == reported[0], i.c.open_cents > 0)
        ).scalar()
    assert total == open_now


def test_a_message_without_a_client_number_is_found_by_its_address(tmp_path: Path) -> None:
    """A round reads the debtors' addresses only when one of its messages needs them."""
    from connectors.schuldenknooppunt import InMessage

    _, ctx = _ctx(tmp_path)
    with ctx.engine.connect() as conn:
        someone = conn.execute(
            select(s.debtors)
            .where(s.debtors.c.creditor_id == ctx.creditor_id, s.debtors.c.street.is_not(None))
            .order_by(s.debtors.c.debtor_id)
        ).first()
    assert someone is not None
    house = "".join(ch for ch in someone.street.split()[-1] if ch.isdigit())

    def arrive(msg: InMessage) -> None:
        with ctx.engine.begin() as conn:
            conn.execute(
                insert(s.skp_messages).values(
                    creditor_id=ctx.creditor_id,
                    message_id=msg.message_id,
                    type=msg.type,
                    sent_on=msg.sent_on,
                    received_at=utcnow(),
                    status="new",
                    payload=msg.to_json(),
                )
            )

    arrive(InMessage("N1", "statusbericht", NOW.date(), client_number=someone.debtor_id))
    assert debt_help.handle_new(ctx)["handled"] == 1  # the ids alone were read
    arrive(
        InMessage(
            "N2",
            "statusbericht",
            NOW.date(),
            name=someone.name,
            postcode=someone.postcode.lower().replace(" ", ""),
            house_number=house,
        )
    )
    assert debt_help.handle_new(ctx)["handled"] == 1
    with ctx.engine.connect() as conn:
        found = dict(
            conn.execute(
                select(s.skp_messages.c.message_id, s.skp_messages.c.debtor_id).where(
                    s.skp_messages.c.message_id.in_(["N1", "N2"])
                )
            ).all()
        )
    assert found == {"N1": someone.debtor_id, "N2": someone.debtor_id}
