"""One run of the daily cycle in a process the harness may kill.

The stages run in the order of ``flows.cycle._daily_cycle`` through the Prefect tasks'
own functions (``task.fn``), with each task's retry policy and every channel tried (as
the flow's parallel tasks are): what each task does, without the orchestration API, so
a kill lands in vangnet's code and not in Prefect's bookkeeping. A ``plan`` of
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


def _call(task: Any, *args: Any) -> Any:
    """A task's function with the task's own retry policy (its number of retries, on
    what ``flows.cycle.retriable`` says is worth another try), the delays shortened to
    a tenth."""
    from flows.cycle import retriable

    delays = task.retry_delay_seconds or [0]
    for attempt in range(task.retries + 1):
        try:
            return task.fn(*args)
        except Exception as exc:
            if attempt == task.retries or not retriable(exc):
                raise
            time.sleep(delays[min(attempt, len(delays) - 1)] / 10)
    return None


def _each(calls: list[Callable[[], Any]]) -> None:
    """Run every call (as the flow's parallel tasks all run), then raise the first error."""
    errors = []
    for call in calls:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - raised below, after the others ran
            errors.append(exc)
    if errors:
        raise errors[0]


def _steps(ctx: Any, port: int | None) -> list[tuple[str, Callable[[], Any]]]:
    from flows import cycle as c
    from flows import stages

    n = ctx.cfg.policy.partitions

    def ingest() -> None:
        _each(
            [
                lambda src=src, ent=ent: _call(c.ingest_entity, ctx, src, ent)
                for src in ctx.cfg.reader_sources()
                for ent in stages.ENTITIES
            ]
        )

    def reconcile() -> None:
        for src in ctx.cfg.sftp_sources():
            _call(c.fetch_statements, ctx, src, port)
        _call(c.match_payments, ctx)
        _call(c.track_arrangements, ctx)

    def plan() -> None:
        _call(c.book_costs, ctx)
        for p in range(n):
            _call(c.plan_partition, ctx, p, n)

    return [
        ("ingest", ingest),
        ("validate", lambda: _call(c.validate_staged, ctx)),
        ("debt_help", lambda: (_call(c.debt_help_exchange, ctx), _call(c.wgs_signals, ctx))),
        ("reconcile", reconcile),
        ("assess", lambda: [_call(c.assess_partition, ctx, p, n) for p in range(n)]),
        ("plan", plan),
        ("last_look", lambda: _call(c.debt_help_exchange, ctx, "last-look")),
        (
            "send",
            lambda: _each(
                [lambda ch=ch: _call(c.send_channel, ctx, ch) for ch in ctx.cfg.channels]
            ),
        ),
        ("write_back", lambda: _call(c.write_back, ctx)),
        ("retention", lambda: _call(c.retention, ctx)),
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
        try:
            step()
        except Exception as exc:  # a provider or the database gave out: the run fails
            pipe.send(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))
            raise
        seconds[name] = time.perf_counter() - t0
        if plan and plan[0] == "sql" and plan[1] == name:
            die()  # fewer statements than k this time: killed between stages
    pipe.send(("done", {"statements": counts, "seconds": seconds}))


def run_flow(
    cfg: str,
    now: str,
    port: int | None,
    env: dict[str, str],
    plan: tuple[str, str, int] | None,
    pipe: Connection,
) -> None:
    """The cycle as a deployment runs it: ``flows.cycle.daily_cycle`` through the Prefect
    engine, against the Prefect server in ``env`` (PREFECT_API_URL), with its subflows,
    task runs, thread pool, retries, artifacts and events. Reports the task (or flow)
    that runs each ledger statement as the stage; a ``("sql", "", k)`` plan dies at the
    run's k-th ledger statement, wherever the engine is then."""
    os.environ.update(env)
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from flows.cycle import daily_cycle

    counts = [0]
    current = [""]

    def where() -> str:
        t = TaskRunContext.get()
        if t is not None:
            return str(t.task.name)
        f = FlowRunContext.get()
        return str(f.flow.name) if f is not None else ""

    def counted(*_: Any) -> None:
        counts[0] += 1
        here = where()
        if here != current[0]:
            current[0] = here
            pipe.send(("stage", here))
        if plan and plan[0] == "sql" and counts[0] >= plan[2]:
            pipe.send(("killed", here))
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "after_cursor_execute", counted)  # every engine the run opens
    pipe.send(("ready", ""))
    t0 = time.perf_counter()
    # the forkserver imported prefect before this child had its environment
    server = {PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_HOME: env["PREFECT_HOME"]}
    try:
        with temporary_settings(updates=server):
            daily_cycle(cfg, now, port)
    except Exception as exc:
        pipe.send(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))
        raise
    pipe.send(
        ("done", {"statements": {"flow": counts[0]}, "seconds": {"flow": time.perf_counter() - t0}})
    )
