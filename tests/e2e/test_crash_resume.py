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
from pathlib import Path

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
        report = h.crash_many(c, kills, baseline, random.Random(20261124))
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
