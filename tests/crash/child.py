"""One run of the daily cycle in a process the harness may kill.

The stages run in the order of ``flows.cycle._daily_cycle`` through the Prefect tasks'
own functions (``task.fn``): what each task does, without the orchestration API, so a
kill lands in vangnet's code and not in Prefect's bookkeeping. A ``plan`` of
``("sql", stage, k)`` makes the process SIGKILL itself right after the ledger's k-th
SQL statement inside ``stage`` (or at the stage's end, when it runs fewer); the harness
kills ``("time", ...)`` runs from outside at a random moment.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

STAGES = (
    "ingest",
    "validate",
    "debt_help",
    "reconcile",
    "assess",
    "plan",
    "last_look",
    "send",
    "write_back",
    "retention",
)


def _steps(ctx: Any, port: int | None) -> list[tuple[str, Callable[[], Any]]]:
    from flows import cycle as c
    from flows import stages

    n = ctx.cfg.policy.partitions

    def ingest() -> None:
        for src in ctx.cfg.reader_sources():
            for ent in stages.ENTITIES:
                c.ingest_entity.fn(ctx, src, ent)

    def reconcile() -> None:
        for src in ctx.cfg.sftp_sources():
            c.fetch_statements.fn(ctx, src, port)
        c.match_payments.fn(ctx)
        c.track_arrangements.fn(ctx)

    def plan() -> None:
        c.book_costs.fn(ctx)
        for p in range(n):
            c.plan_partition.fn(ctx, p, n)

    return [
        ("ingest", ingest),
        ("validate", lambda: c.validate_staged.fn(ctx)),
        ("debt_help", lambda: (c.debt_help_exchange.fn(ctx), c.wgs_signals.fn(ctx))),
        ("reconcile", reconcile),
        ("assess", lambda: [c.assess_partition.fn(ctx, p, n) for p in range(n)]),
        ("plan", plan),
        ("last_look", lambda: c.debt_help_exchange.fn(ctx, "last-look")),
        ("send", lambda: [c.send_channel.fn(ctx, ch) for ch in ctx.cfg.channels]),
        ("write_back", lambda: c.write_back.fn(ctx)),
        ("retention", lambda: c.retention.fn(ctx)),
    ]


def run(
    cfg: str,
    now: str,
    port: int | None,
    env: dict[str, str],
    plan: tuple[str, str, int] | None,
    pipe: Connection,
) -> None:
    """The child's body: reports ``ready``, each stage, and at the end the ledger
    statements and seconds per stage."""
    os.environ.update(env)
    from sqlalchemy import event

    from flows.context import make_ctx

    ctx = make_ctx(cfg, dt.datetime.fromisoformat(now))
    counts = dict.fromkeys(STAGES, 0)
    seconds = dict.fromkeys(STAGES, 0.0)
    current = [""]

    def die() -> None:
        pipe.send(("killed", current[0]))
        os.kill(os.getpid(), signal.SIGKILL)

    def counted(*_: Any) -> None:
        counts[current[0]] += 1
        if plan and plan[0] == "sql" and plan[1] == current[0] and counts[current[0]] >= plan[2]:
            die()

    event.listen(ctx.engine, "after_cursor_execute", counted)
    pipe.send(("ready", ""))
    for name, step in _steps(ctx, port):
        current[0] = name
        pipe.send(("stage", name))
        t0 = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - t0
        if plan and plan[0] == "sql" and plan[1] == name:
            die()  # fewer statements than k this time: killed between stages
    pipe.send(("done", {"statements": counts, "seconds": seconds}))
