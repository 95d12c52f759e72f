"""Crash-resume: the daily cycle is killed with SIGKILL at random points in every stage,
many times, and run again each time (tests/crash/harness.py). Its e-mail goes to the
loopback SendGrid, its SMS to the loopback MessageBird, its statement comes over the
loopback SFTP server, its ERP is SQLite behind the SQLite ODBC driver; the ledger is
SQLite and PostgreSQL. Afterwards, compared with the same day run without a kill:

- every due message was accepted by its provider exactly once (none lost, none twice);
- the statement file was processed once: payments, allocations and the file's record
  are the reference's, row for row, and the file is in ``processed/`` only;
- the ledger (cursors, debtors, invoices, payments, allocations, holds, contacts,
  write-backs, ... 19 tables) is the reference's row for row: no cursor moved past data
  that was not committed, nothing half-done stayed;
- the ERP holds the reference's values; a row is written again only when a kill fell
  inside the write-back (absolute values under a version check), never otherwise;
- the ledger invariants hold: no payment allocated beyond its amount, no message to a
  debtor on hold, every write-back applied.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.crash import harness as h

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("ledger", "kills"),
    [("sqlite", 24), ("postgresql", 12)],
)
def test_the_cycle_survives_sigkill_in_every_stage(
    tmp_path: Path, request: pytest.FixtureRequest, ledger: str, kills: int
) -> None:
    urls = (
        (request.getfixturevalue("pg_url"), request.getfixturevalue("pg_url_b"))
        if ledger == "postgresql"
        else (None, None)
    )
    with h.creditor(tmp_path / "reference", 120, urls[0]) as ref:
        baseline = h.settle(ref)
        want = h.ledger_dump(h.ledger_url_of(ref))
        want_erp = h.erp_dump(ref.cfg.parent / "erp.sqlite")
        want_mail, want_sms = set(ref.mailbox.deliveries), set(ref.sms.deliveries)
        assert h.erp_writes(ref.cfg.parent / "erp.sqlite").most_common(1)[0][1] == 1
    assert len(want_mail) > 10 and len(want_sms) > 3 and want["payments"]

    with h.creditor(tmp_path / "crashed", 120, urls[1]) as c:
        rng = random.Random(20261124)
        report = h.crash_many(c, kills, baseline, rng)
        drops = h.drop_rounds(c, baseline, rng, 3) if ledger == "postgresql" else h.Report()
        h.settle(c)
        got = h.ledger_dump(h.ledger_url_of(c))
        got_erp = h.erp_dump(c.cfg.parent / "erp.sqlite")
        writes = h.erp_writes(c.cfg.parent / "erp.sqlite")
        broken = h.invariants(h.ledger_url_of(c), h.NOW.date())
        mail, sms = dict(c.mailbox.deliveries), dict(c.sms.deliveries)
        statements = c.cfg.parent / "sftp" / "statements"

    print(f"{ledger}: {len(report.kills)} kills survived, by stage {report.by_stage()}")
    assert len(report.kills) == kills
    assert set(report.by_stage()) == set(h.STAGES)  # a kill landed in every stage
    assert set(mail) == want_mail and set(sms) == want_sms  # none lost
    assert set(mail.values()) == {1} and set(sms.values()) == {1}  # none twice
    assert h.differences(want, got) == {}
    assert h.differences(want_erp, got_erp) == {}
    assert not list((statements / "incoming").glob("*.xml"))
    assert len(list((statements / "processed").rglob("*.xml"))) == 1
    write_back_kills = report.by_stage().get("write_back", 0)
    assert max(writes.values()) <= 1 + write_back_kills
    assert broken == []
    # the database going away mid-run (every session ended, as at a restart) fails that
    # run at most, naming the database; the next run catches up (asserted above)
    for d in drops.faults:
        assert d["ended"] == "done" or "OperationalError" in d["error"], d


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The day run without a fault, on SQLite."""
    with h.creditor(tmp_path_factory.mktemp("reference"), 120, None) as ref:
        h.settle(ref)
        return {
            "ledger": h.ledger_dump(h.ledger_url_of(ref)),
            "mail": set(ref.mailbox.deliveries),
            "sms": set(ref.sms.deliveries),
        }


@pytest.mark.parametrize("storm", list(h.STORMS))
def test_a_provider_storm_costs_no_message_and_sends_none_twice(
    tmp_path: Path, reference: dict[str, Any], storm: str
) -> None:
    """SendGrid and MessageBird both answer the send stage with the storm (429s, 5xx,
    connection resets, a body that is not JSON, an answer after the client's 1 s
    timeout by which the message was accepted); the run retries as its tasks do and
    either goes through or fails in send, naming the provider; the next run of the day
    sends what is left. Each message reaches its provider once."""
    with h.creditor(tmp_path, 120, None) as c:
        first = h.run_once(c, ("faults", storm, 0))
        injected = c.sendgrid.faults.injected + c.messagebird.faults.injected
        # the next scheduled run comes hours later: by then a send we never heard back
        # from is past its settle period and is looked up (not so in the next second)
        time.sleep(h.SETTLE_SECONDS + 0.5)
        h.settle(c)
        got = h.ledger_dump(h.ledger_url_of(c))
        mail, sms = dict(c.mailbox.deliveries), dict(c.sms.deliveries)
    assert injected, "the storm met no request"
    if storm in ("429-storm", "outage"):
        assert first["ended"] == "failed" and first["stage"] == "send"
        assert "SendGrid" in first["error"] or "MessageBird" in first["error"]
    else:
        assert first["ended"] == "done", first.get("error")
    assert set(mail) == reference["mail"] and set(sms) == reference["sms"]
    assert set(mail.values()) == {1} and set(sms.values()) == {1}
    assert h.differences(reference["ledger"], got) == {}


# the requests of a day's statement pickup at the SFTP server, in order: list, stat,
# open, read (the file is one pipelined segment), stat, stat, mkdir, stat, rename
# (tripwire.seen)
SFTP_DROPS = {
    "listing": (1, 1),
    "the transfer": (4, 1),
    "right after the transfer": (5, 1),
    "the move to processed/": (9, 1),
    "every fifth request, three times": (5, 3),
}


@pytest.mark.parametrize("where", list(SFTP_DROPS))
def test_an_sftp_connection_dropped_mid_transfer_or_mid_move_books_the_file_once(
    tmp_path: Path, reference: dict[str, Any], where: str
) -> None:
    """The bank's SFTP server drops every session at one request of the day's pickup
    (the listing, a block of the transfer, the move after the ledger committed the file)
    or keeps dropping them. The fetch task retries on a new connection, or, past its
    retries, the run fails in reconcile naming SFTP; the next run fetches again. The
    statement is booked once and ends in processed/, and the day is the reference's."""
    k, times = SFTP_DROPS[where]
    with h.creditor(tmp_path, 120, None) as c:
        first = h.run_once(c, ("sftpdrop", str(times), k))
        fired, kinds = c.sftp.tripwire.fired, list(c.sftp.tripwire.seen)
        h.settle(c)
        got = h.ledger_dump(h.ledger_url_of(c))
        mail, sms = dict(c.mailbox.deliveries), dict(c.sms.deliveries)
        statements = c.cfg.parent / "sftp" / "statements"
    assert fired == times, " ".join(kinds)
    if times > 2:  # beyond the fetch task's two retries
        assert first["ended"] == "failed" and first["stage"] == "reconcile", first
        assert "SFTP" in first["error"], first["error"]
    else:
        assert first["ended"] == "done", first.get("error")
    assert not list((statements / "incoming").glob("*.xml"))
    assert len(list((statements / "processed").rglob("*.xml"))) == 1
    assert h.differences(reference["ledger"], got) == {}  # payments booked once
    assert set(mail) == reference["mail"] and set(sms) == reference["sms"]
    assert set(mail.values()) == {1} and set(sms.values()) == {1}


@pytest.mark.postgres
def test_a_real_postgresql_restart_mid_cycle_loses_nothing(tmp_path: Path) -> None:
    """The ledger's own PostgreSQL server (tests/crash/pgserver.py: initdb, pg_ctl) is
    crashed (``pg_ctl stop -m immediate``) and started again at random moments of the
    cycle, four times. A transaction in flight is rolled back by the server; the task
    sees its connection lost, and retries on a fresh one (``flows.cycle.retriable``), or
    fails that run naming the database. The day then converges to the reference day on
    the same server, row for row, with every message sent once."""
    from tests.crash import pgserver

    why = pgserver.available()
    if why:
        pytest.skip(why)
    with pgserver.private_postgres() as pg:
        with h.creditor(tmp_path / "reference", 120, pg.create_database("reference")) as ref:
            baseline = h.settle(ref)
            want = h.ledger_dump(h.ledger_url_of(ref))
            want_mail, want_sms = set(ref.mailbox.deliveries), set(ref.sms.deliveries)
        with h.creditor(tmp_path / "restarted", 120, pg.create_database("restarted"), pg) as c:
            rng = random.Random(20261201)
            total = sum(baseline["seconds"].values())
            report = h.fault_rounds(c, "pgrestart", rng, 4, total, low=0.2)
            h.settle(c)
            got = h.ledger_dump(h.ledger_url_of(c))
            broken = h.invariants(h.ledger_url_of(c), h.NOW.date())
            mail, sms = dict(c.mailbox.deliveries), dict(c.sms.deliveries)
        restarts = pg.restarts
    print(f"postgresql restarts: {report.faults}")
    assert restarts == 4
    for f in report.faults:
        assert f["ended"] == "done" or "OperationalError" in f["error"], f
    assert set(mail) == want_mail and set(sms) == want_sms
    assert set(mail.values()) == {1} and set(sms.values()) == {1}
    assert h.differences(want, got) == {}
    assert broken == []


# each kill costs about 17 s (a run through the engine, then the run that resumes it);
# two of each mode. `python -m tests.crash.harness --engine prefect --kills N` runs more.
PREFECT_KILLS = 4


def test_the_cycle_survives_sigkill_under_the_prefect_engine(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    """The daily-cycle flow itself, as a deployment runs it (``daily_cycle`` through the
    Prefect engine against a real ``prefect server``: subflows, task runs on the thread
    pool, retries, artifacts, events), SIGKILLed ``PREFECT_KILLS`` times: at a random ledger
    statement of the run (whichever task or flow then runs it) and at random moments,
    which also land in Prefect's own calls to its API. Each killed run stays behind on
    the server as it was; the next run of the day starts a new one. The day ends as the
    uninterrupted reference day: each message once, the ledger row for row."""
    from bench.prefect_server import prefect_server

    db = f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    with prefect_server(tmp_path / "prefect", db) as (port, env):  # noqa: SIM117 - in turn
        with h.creditor(tmp_path / "crashed", 120, None) as c:
            c.env = {**c.env, **{k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")}}
            baseline = h.run_once(c, None, engine="prefect")  # a clean run: its size
            report = h.crash_many_prefect(c, PREFECT_KILLS, baseline, random.Random(20261201))
            h.settle(c, engine="prefect")
            got = h.ledger_dump(h.ledger_url_of(c))
            mail, sms = dict(c.mailbox.deliveries), dict(c.sms.deliveries)
            runs = httpx.post(
                f"http://127.0.0.1:{port}/api/flow_runs/filter",
                json={"flow_runs": {"parent_task_run_id": {"is_null_": True}}},
                timeout=30,
            ).json()
    print(f"prefect engine: {len(report.kills)} kills survived, by stage {report.by_stage()}")
    assert len(report.kills) == PREFECT_KILLS
    assert {k["mode"] for k in report.kills} == {"sql", "time"}
    states = [r["state_type"] for r in runs if r["name"].startswith("daily-cycle-")]
    # the clean one, the settle runs, the runs that finished before their kill, and
    # the killed ones; a kill that lands after the engine reported the flow's final
    # state but before the child said so counts as a kill yet stays COMPLETED: that
    # can only be a run whose last task was the last stage (retention)
    assert len(states) == 3 + report.finished_before_kill + PREFECT_KILLS
    late = states.count("COMPLETED") - 3 - report.finished_before_kill
    assert 0 <= late <= sum(k["stage"] == "retention" for k in report.kills)
    assert states.count("RUNNING") + states.count("PENDING") == PREFECT_KILLS - late
    assert set(mail) == reference["mail"] and set(sms) == reference["sms"]
    assert set(mail.values()) == {1} and set(sms.values()) == {1}
    assert h.differences(reference["ledger"], got) == {}
