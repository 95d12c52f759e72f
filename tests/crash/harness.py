"""The crash-resume harness: a demo creditor whose e-mail and SMS go to the loopback
SendGrid and MessageBird, whose statements come over the loopback SFTP server and
whose ERP is a SQLite database behind the SQLite ODBC driver; its daily cycle is run
in a child process and killed with SIGKILL at random points in every stage, many
times, then run to the end. ``python -m tests.crash.harness --kills N`` runs it longer
than CI does and prints the report."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tests.crash.child import STAGES
from tests.fakes.https import make_ca
from tests.fakes.messagebird import MessageBirdServer
from tests.fakes.messagebird import channel_config as messagebird_channel
from tests.fakes.sendgrid import SendGridServer
from tests.fakes.sendgrid import channel_config as sendgrid_channel

NOW = dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00")
ENV = {"SG_KEY": "SG.test-key", "MB_KEY": "live_test_key"}
SETTLE_SECONDS = 3  # policy.ambiguous_settle_seconds of the harness's creditor

# the ledger as the cycle decides it; surrogate ids, wall-clock stamps and the ids a
# provider hands out say when and by whom, not what
LEDGER_TABLES = (
    "source_cursors",
    "debtors",
    "invoices",
    "erp_payments",
    "statement_files",
    "payments",
    "allocations",
    "quarantine",
    "signals",
    "segments",
    "holds",
    "preferences",
    "contacts",
    "write_backs",
    "skp_messages",
    "skp_replies",
    "arrangements",
    "wgs_signals",
    "cost_bookings",
)
# write_backs.attempts counts a killed attempt too; the ERP's vangnet_bijgewerkt is
# CURRENT_TIMESTAMP
VOLATILE = ("id", "provider_id", "provider_message_id", "sha256", "attempts", "vangnet_bijgewerkt")
ERP_LOG = """
CREATE TABLE IF NOT EXISTS harness_writes (tbl TEXT, record TEXT);
CREATE TRIGGER IF NOT EXISTS harness_facturen AFTER UPDATE ON facturen
  BEGIN INSERT INTO harness_writes VALUES ('facturen', NEW.factuurnr); END;
CREATE TRIGGER IF NOT EXISTS harness_relaties AFTER UPDATE ON relaties
  BEGIN INSERT INTO harness_writes VALUES ('relaties', NEW.relatienr); END;
"""


def _kept(name: str) -> bool:
    return name not in VOLATILE and not name.endswith("_at")


@dataclass
class Creditor:
    cfg: Path
    port: int | None
    env: dict[str, str]
    mailbox: Any = None
    sms: Any = None
    sendgrid: Any = None
    messagebird: Any = None
    sftp: Any = None  # the LocalSftpServer, whose tripwire drops sessions
    pg: Any = None  # a PrivatePostgres holding the ledger, which may be restarted
    faulted: list[Any] = field(default_factory=list)  # the fakes a storm hits

    def __post_init__(self) -> None:
        if not self.faulted:
            self.faulted = [f for f in (self.sendgrid, self.messagebird) if f is not None]


@contextlib.contextmanager
def creditor(
    root: Path, debtors: int, ledger_url: str | None, pg: Any = None
) -> Iterator[Creditor]:
    """The demo creditor in ``root`` with its peers running; ``pg``, a private
    PostgreSQL server that a test may restart, holds its ledger at ``ledger_url`` (or in
    its default database)."""
    from flows.demo import seed, sftp_server

    cfg = seed(root / "demo", debtors, NOW.date())
    with contextlib.closing(sqlite3.connect(cfg.parent / "erp.sqlite")) as erp:
        erp.executescript(ERP_LOG)  # every row the write-back touches, each time
    ca = make_ca(root / "ca")
    with (
        SendGridServer(ca) as sg,
        MessageBirdServer(ca) as mb,
        sftp_server(cfg.parent) as sftp,
    ):
        doc = yaml.safe_load(cfg.read_text())
        doc["channels"]["email"] = sendgrid_channel(sg, timeout_seconds=1)
        doc["channels"]["sms"] = messagebird_channel(mb, ca, timeout_seconds=1)
        # a send that timed out is trusted to the provider's lookup after 3 s here
        doc["policy"]["ambiguous_settle_seconds"] = SETTLE_SECONDS
        if pg is not None and not ledger_url:
            ledger_url = pg.url
        if ledger_url:
            doc["ledger"] = {"url": ledger_url}
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield Creditor(
            cfg,
            sftp.port,
            {**ENV, "SSL_CERT_FILE": str(ca.ca_pem)},
            sg.box,
            mb.centre,
            sg,
            mb,
            sftp=sftp,
            pg=pg,
        )


def _mp() -> Any:
    ctx = mp.get_context("forkserver")  # children fork from a clean, single-threaded parent
    # what every run imports, once: Great Expectations alone takes ~3 s to import
    ctx.set_forkserver_preload(["tests.crash.child", "flows.cycle", "great_expectations"])
    return ctx


def run_once(
    c: Creditor,
    plan: tuple[str, str, float] | None,
    timeout: float = 600,
    engine: str = "tasks",
) -> dict[str, Any]:
    """One run of the cycle: through the tasks' functions (``engine="tasks"``) or the
    Prefect engine itself (``"prefect"``, against the server in ``c.env``).

    - ``("sql", stage, k)`` kills it from inside at the stage's k-th ledger statement
      (with the Prefect engine: at the run's k-th statement, whatever runs it);
    - ``("time", "", seconds)`` kills it from outside that long after it is ready;
    - ``("dbdrop", "", seconds)`` ends every ledger session on the PostgreSQL server
      then (what a client sees of a failover) and lets the run go on or fail;
    - ``("pgrestart", "", seconds)`` crashes the ledger's private PostgreSQL server then
      (``pg_ctl stop -m immediate``) and starts it again;
    - ``("sftpdrop", times, k)`` drops every SFTP session at the server's k-th request
      (and, with ``times`` > 1, again every k-th request after that);
    - ``("faults", storm, 0)`` queues a storm on the creditor's faulted fakes first.

    Returns how it ended (done, killed, failed) and in which stage."""
    from tests.crash import child

    ctx = _mp()
    recv, send = ctx.Pipe(duplex=False)
    inner = (plan[0], plan[1], int(plan[2])) if plan and plan[0] == "sql" else None
    proc = ctx.Process(
        target=child.run_flow if engine == "prefect" else child.run,
        args=(str(c.cfg), NOW.isoformat(), c.port, c.env, inner, send),
    )
    if plan and plan[0] == "faults":
        for fake in c.faulted:
            for kind, times, secs in STORMS[plan[1]]:
                fake.faults.add(kind, times=times, seconds=secs)
    if plan and plan[0] == "sftpdrop":
        c.sftp.tripwire.arm(int(plan[2]), int(plan[1] or 1))
    proc.start()
    send.close()
    stage, out = "", {"ended": "crashed", "stage": ""}
    deadline: float | None = None
    started = time.monotonic()
    while True:
        wait = timeout - (time.monotonic() - started)
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        if wait <= 0 or not recv.poll(max(wait, 0)):
            if deadline is not None and time.monotonic() >= deadline:
                assert plan is not None
                if plan[0] in ("dbdrop", "pgrestart"):
                    if plan[0] == "dbdrop":
                        drop_sessions(ledger_url_of(c))
                    else:
                        c.pg.restart()
                    out["fault_stage"] = stage
                    deadline = None
                    continue
                proc.kill()  # SIGKILL
                out = {"ended": "killed", "stage": stage}
                break
            if time.monotonic() - started >= timeout:
                proc.kill()
                raise TimeoutError(f"the cycle ran over {timeout} s in stage {stage}")
            continue
        try:
            kind, value = recv.recv()
        except EOFError:  # the child is gone without a word: it died on its own
            break
        if kind == "ready" and plan and plan[0] in ("time", "dbdrop", "pgrestart"):
            deadline = time.monotonic() + plan[2]
        elif kind == "stage":
            stage = value
        elif kind == "killed":
            out = {"ended": "killed", "stage": value}
        elif kind == "failed":
            out = {**out, "ended": "failed", "stage": stage, "error": value}
        elif kind == "done":
            out = {**out, "ended": "done", "stage": "", **value}
    proc.join()
    recv.close()
    for fake in c.faulted:
        fake.faults.queue.clear()
    if c.sftp is not None:
        c.sftp.tripwire.disarm()
    faulty = ("faults", "dbdrop", "pgrestart", "sftpdrop")
    if out["ended"] == "failed" and plan and plan[0] in faulty:
        return out
    if out["ended"] in ("crashed", "failed"):
        raise RuntimeError(
            f"the cycle failed in stage {stage!r} (exit code {proc.exitcode}): "
            f"{out.get('error', '')}"
        )
    return out


# what a provider storm queues on each fake: (kind, times, seconds)
STORMS: dict[str, list[tuple[str, int, float]]] = {
    "blips": [("429", 1, 0), ("500", 1, 0)],  # within the task's retries
    "reset": [("reset", 1, 0)],
    "malformed": [("malformed", 1, 0)],
    "slow": [("slow", 1, 1.5)],  # accepted after the client gave up at 1 s
    "429-storm": [("429", 40, 0)],  # beyond every retry: the channel gives up for today
    "outage": [("500", 40, 0)],
}


def drop_sessions(url: str) -> int:
    """End every session on the ledger's database (PostgreSQL)."""
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        n = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    eng.dispose()
    return int(n or 0)


@dataclass
class Report:
    kills: list[dict[str, Any]] = field(default_factory=list)
    finished_before_kill: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def by_stage(self) -> dict[str, int]:
        return dict(Counter(k["stage"] for k in self.kills))


def fault_rounds(
    c: Creditor, kind: str, rng: random.Random, n: int, upto: float, low: float = 0.5
) -> Report:
    """``n`` runs each hit by one fault of ``kind`` at a random point in ``[low, upto]``
    (seconds after the start for "dbdrop" and "pgrestart", the server's request number
    for "sftpdrop"); each may go on through its retries or fail, and says which."""
    report = Report()
    tries = 0
    while len(report.faults) < n:
        tries += 1
        assert tries <= 4 * n, f"{kind}: the runs kept finishing before the fault"
        at = rng.uniform(low, upto) if kind != "sftpdrop" else rng.randint(int(low), int(upto))
        out = run_once(c, (kind, "", at))
        if kind in ("dbdrop", "pgrestart") and "fault_stage" not in out:
            # the run was over first: the same day is quicker (on a fast machine, under
            # the half second ``low`` starts at: then earlier too)
            upto = at * 0.7
            low = min(low, upto)
            continue
        report.faults.append(
            {"kind": kind, "at": round(at, 2), **{k: out.get(k) for k in FAULT_KEYS}}
        )
    return report


FAULT_KEYS = ("ended", "stage", "fault_stage", "error")


def drop_rounds(c: Creditor, baseline: dict[str, Any], rng: random.Random, n: int) -> Report:
    """``n`` runs whose PostgreSQL sessions are all ended at a random moment; each may
    fail (or, where no statement was in flight, go on with fresh connections)."""
    return fault_rounds(c, "dbdrop", rng, n, sum(baseline["seconds"].values()))


def crash_many_prefect(
    c: Creditor, kills: int, baseline: dict[str, Any], rng: random.Random
) -> Report:
    """``kills`` runs of the flow through the Prefect engine, each ended by SIGKILL:
    alternately at a random ledger statement of the run and at a random moment."""
    report = Report()
    total_sql, total_s = baseline["statements"]["flow"], baseline["seconds"]["flow"]
    i = 0
    while len(report.kills) < kills:
        plan: tuple[str, str, float] = (
            ("sql", "", rng.randint(1, total_sql))
            if i % 2 == 0
            else ("time", "", rng.uniform(0.05, total_s))
        )
        i += 1
        out = run_once(c, plan, engine="prefect")
        if out["ended"] == "done":
            report.finished_before_kill += 1
            continue
        report.kills.append({"mode": plan[0], "stage": out["stage"], "point": plan[2]})
    return report


def crash_many(c: Creditor, kills: int, baseline: dict[str, Any], rng: random.Random) -> Report:
    """``kills`` runs each ended by SIGKILL at a random point: in turn per stage, half
    at a random ledger statement inside it, half at a random moment of the cycle."""
    report = Report()
    total = sum(baseline["seconds"].values())
    i = 0
    while len(report.kills) < kills:
        stage = STAGES[i % len(STAGES)]
        if (i // len(STAGES)) % 2 == 0:
            plan: tuple[str, str, float] = (
                "sql",
                stage,
                rng.randint(1, max(baseline["statements"][stage], 1)),
            )
        else:
            plan = ("time", "", rng.uniform(0.05, total))
        i += 1
        out = run_once(c, plan)
        if out["ended"] == "done":
            report.finished_before_kill += 1
            continue
        report.kills.append({"mode": plan[0], "stage": out["stage"], "point": plan[2]})
    return report


def ledger_dump(url: str) -> dict[str, list[tuple[str, ...]]]:
    eng = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(eng, only=LEDGER_TABLES)
    out = {}
    with eng.connect() as conn:
        for name in LEDGER_TABLES:
            cols = [c for c in md.tables[name].columns if _kept(c.name)]
            out[name] = sorted(tuple(repr(v) for v in r) for r in conn.execute(sa.select(*cols)))
    eng.dispose()
    return out


def erp_dump(path: Path) -> dict[str, list[tuple[str, ...]]]:
    con = sqlite3.connect(path)
    out = {}
    tables = "SELECT name FROM sqlite_master WHERE type='table' AND name != 'harness_writes'"
    for (name,) in con.execute(tables):
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")') if _kept(r[1])]
        sel = ", ".join(f'"{c}"' for c in cols)
        out[name] = sorted(
            tuple(repr(v) for v in r) for r in con.execute(f'SELECT {sel} FROM "{name}"')
        )
    con.close()
    return out


def differences(
    want: dict[str, list[tuple[str, ...]]], got: dict[str, list[tuple[str, ...]]], shown: int = 3
) -> dict[str, dict[str, list[tuple[str, ...]]]]:
    """Per table that differs, a few rows only the reference has and only the run has."""
    out = {}
    for name in want:
        a, b = Counter(want[name]), Counter(got.get(name, []))
        if a != b:
            out[name] = {
                "only_reference": sorted((a - b).elements())[:shown],
                "only_crashed": sorted((b - a).elements())[:shown],
            }
    return out


def erp_writes(path: Path) -> Counter[tuple[str, str]]:
    """How often each ERP row was written."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        return Counter(con.execute("SELECT tbl, record FROM harness_writes").fetchall())


def settle(c: Creditor, engine: str = "tasks") -> dict[str, Any]:
    """Run the cycle to its end, then the same day once more: the state a day converges
    to whether or not it was interrupted (a second run sees today's sends, so e.g. a Wgs
    signal may follow; it would with no crash too)."""
    first = run_once(c, None, engine=engine)
    run_once(c, None, engine=engine)
    return first


def ledger_url_of(c: Creditor) -> str:
    from flows.config import load

    return load(c.cfg).ledger_url()


def invariants(url: str, today: dt.date) -> list[str]:
    """What must hold however often the cycle died: nothing allocated beyond a payment,
    no message sent to a debtor on hold, every write-back settled."""
    broken = []
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        over = conn.execute(
            sa.text(
                "SELECT p.payment_id, p.amount_cents, SUM(a.amount_cents) FROM payments p "
                "JOIN allocations a ON a.creditor_id = p.creditor_id AND a.payment_id = p.payment_id "
                "GROUP BY p.payment_id, p.amount_cents HAVING SUM(a.amount_cents) > p.amount_cents"
            )
        ).all()
        broken += [f"payment {p} of {a} cents allocated {s}" for p, a, s in over]
        held = conn.execute(
            sa.text(
                "SELECT c.message_id, c.debtor_id FROM contacts c JOIN holds h "
                "ON h.creditor_id = c.creditor_id AND h.debtor_id = c.debtor_id "
                "WHERE c.status IN ('sent', 'delivered', 'sending') AND h.starts_on <= :d "
                "AND (h.ends_on IS NULL OR h.ends_on >= :d) AND h.lifted_at IS NULL"
            ),
            {"d": today},
        ).all()
        broken += [f"message {m} went to {d}, who is on hold" for m, d in held]
        open_wb = conn.execute(
            sa.text("SELECT record_id, status FROM write_backs WHERE status NOT IN ('applied')")
        ).all()
        broken += [f"write-back {r} left {st}" for r, st in open_wb]
    eng.dispose()
    return broken


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--debtors", type=int, default=120)
    ap.add_argument(
        "--ledger-url", default=None, help="two runs need two databases: give the crashed one"
    )
    ap.add_argument(
        "--engine",
        choices=("tasks", "prefect"),
        default="tasks",
        help="kill the tasks' functions, or the flow under the Prefect engine (a local "
        "prefect server is started for it)",
    )
    ap.add_argument(
        "--pg-restarts",
        type=int,
        default=0,
        help="after the kills, crash and restart the ledger's own PostgreSQL server this "
        "often at random moments (the ledger moves to a private server: initdb, pg_ctl)",
    )
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env: dict[str, str] = {}
        if args.engine == "prefect":
            from bench.prefect_server import prefect_server

            db = f"sqlite+aiosqlite:///{root / 'prefect.db'}"
            _, server_env = stack.enter_context(prefect_server(root / "prefect", db))
            env = {k: server_env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        pg = None
        ref_url, crash_url = None, args.ledger_url
        if args.pg_restarts:
            from tests.crash.pgserver import private_postgres

            pg = stack.enter_context(private_postgres())
            ref_url, crash_url = pg.create_database("reference"), pg.create_database("crashed")
        with creditor(root / "ref", args.debtors, ref_url) as ref:
            ref.env.update(env)
            baseline = settle(ref, args.engine)
            want = ledger_dump(ledger_url_of(ref))
            want_sent = (set(ref.mailbox.deliveries), set(ref.sms.deliveries))
            want_erp = erp_dump(ref.cfg.parent / "erp.sqlite")
            ref_writes = erp_writes(ref.cfg.parent / "erp.sqlite")
        with creditor(root / "crash", args.debtors, crash_url, pg) as c:
            c.env.update(env)
            rng = random.Random(args.seed)
            kill = crash_many_prefect if args.engine == "prefect" else crash_many
            t0 = time.monotonic()
            report = kill(c, args.kills, baseline, rng)
            total = (
                baseline["seconds"]["flow"]
                if args.engine == "prefect"
                else sum(baseline["seconds"].values())
            )
            faults: list[dict[str, Any]] = []
            if args.pg_restarts:
                faults += fault_rounds(c, "pgrestart", rng, args.pg_restarts, total, 0.2).faults
            settle(c, args.engine)
            got = ledger_dump(ledger_url_of(c))
            got_erp = erp_dump(c.cfg.parent / "erp.sqlite")
            writes = erp_writes(c.cfg.parent / "erp.sqlite")
            twice = [k for k, n in {**c.mailbox.deliveries, **c.sms.deliveries}.items() if n != 1]
            result = {
                "engine": args.engine,
                "kills": len(report.kills),
                "by_stage": report.by_stage(),
                "finished_before_kill": report.finished_before_kill,
                "faults": faults,
                "faults_retried_through": sum(1 for f in faults if f["ended"] == "done"),
                "seconds": round(time.monotonic() - t0, 1),
                "messages": len(c.mailbox.deliveries) + len(c.sms.deliveries),
                "sent_twice": len(twice),
                "lost": len(want_sent[0] - set(c.mailbox.deliveries))
                + len(want_sent[1] - set(c.sms.deliveries)),
                "ledger_tables_differing": differences(want, got),
                "erp_tables_differing": differences(want_erp, got_erp),
                "erp_rows_written": len(writes),
                "erp_rows_written_again": sum(1 for n in writes.values() if n > 1),
                "erp_rows_written_again_without_kills": sum(
                    1 for n in ref_writes.values() if n > 1
                ),
                "invariants_broken": invariants(ledger_url_of(c), NOW.date()),
            }
    json.dump(result, sys.stdout, indent=2)
    print()
    ok = not any(
        result[k] for k in ("sent_twice", "lost", "ledger_tables_differing", "erp_tables_differing")
    )
    return 0 if ok and not result["invariants_broken"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
