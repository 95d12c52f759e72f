"""The daily collection cycle as Prefect flows: a table of contents.

Tasks get a config path, the cycle clock and a partition; they read what they need
from the ledger (never large objects through Prefect). One task per source x entity,
per partition or per channel; never one per record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import allow_failure, flow, get_run_logger, tags, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event
from prefect.futures import PrefectFuture, as_completed
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    temporary_settings,
)
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner
from sqlalchemy.exc import DBAPIError

from connectors.errors import RetriableError
from flows import debt_help as debt_help_stage
from flows import stages
from flows.context import Ctx, clock, make_ctx
from transforms.contact_window import AMS
from transforms.segments import LABELS_NL
from transforms.validation import Validator

# what PostgreSQL and SQLite say while a server restarts or another writer holds the file
_LEDGER_TRANSIENT = (
    "connection refused",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "server closed the connection",
    "terminating connection",
    "database is locked",
)


def retriable(exc: BaseException) -> bool:
    """What is worth the task's next attempt: what the connectors call retriable (429,
    5xx, timeouts, drops), and the ledger's connection lost or refused (the database
    restarted or failed over: the transaction was rolled back, and every stage is
    idempotent, so running it again is safe)."""
    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, DBAPIError):
        text = str(exc.orig).lower()
        return exc.connection_invalidated or any(t in text for t in _LEDGER_TRANSIENT)
    return False


def _retriable(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - sorted by retriable() below
        return retriable(exc)
    return False


RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [5, 30],
    "retry_condition_fn": _retriable,
}


def _key(stage: str, ctx: Ctx) -> str:
    return f"{stage}-{ctx.creditor_id}"


def _gather(ctx: Ctx, stage: str, futures: list[PrefectFuture[Any]]) -> list[Any]:
    """The tasks' results in submission order, with a progress artifact that moves as
    each partition (or source, or channel) finishes."""
    progress: Any = create_progress_artifact(
        progress=0.0,
        key=_key(f"{stage}-progress", ctx),
        description=f"{stage} {ctx.creditor_id}: share of {len(futures)} tasks done",
    )
    index = {id(f): i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, fut in enumerate(as_completed(futures), 1):
        results[index[id(fut)]] = fut.result()
        update_progress_artifact(progress, progress=100.0 * done / len(futures))
    return results


def creditor_resource(ctx: Ctx) -> dict[str, str]:
    """The creditor as a Prefect event resource (automations match on it)."""
    return {
        "prefect.resource.id": f"vangnet.creditor.{ctx.creditor_id}",
        "prefect.resource.name": ctx.cfg.creditor.name,
    }


@task(name="ingest-entity", task_run_name="ingest-{source}-{entity}", **RETRIES)
def ingest_entity(ctx: Ctx, source: str, entity: str) -> dict[str, Any]:
    return stages.ingest_entity(ctx, source, entity)


@task(name="validate-staged", **RETRIES)
def validate_staged(ctx: Ctx) -> dict[str, Any]:
    return stages.validate_staged(ctx, Validator(stages.data_docs_dir(ctx)))


@task(name="debt-help-exchange", task_run_name="debt-help-{moment}", **RETRIES)
def debt_help_exchange(ctx: Ctx, moment: str = "exchange") -> dict[str, Any]:
    return debt_help_stage.exchange_messages(ctx)


@task(name="track-arrangements", **RETRIES)
def track_arrangements(ctx: Ctx) -> dict[str, Any]:
    return debt_help_stage.track_arrangements(ctx)


@task(name="wgs-signals", **RETRIES)
def wgs_signals(ctx: Ctx) -> dict[str, Any]:
    return debt_help_stage.wgs_signals(ctx)


@task(name="fetch-statements", task_run_name="fetch-statements-{source}", **RETRIES)
def fetch_statements(ctx: Ctx, source: str, port: int | None) -> dict[str, Any]:
    return stages.fetch_statements(ctx, source, port)


@task(name="match-payments", **RETRIES)
def match_payments(ctx: Ctx) -> dict[str, Any]:
    return stages.match_new_payments(ctx)


@task(name="assess-partition", task_run_name="assess-p{p}-of-{n}", **RETRIES)
def assess_partition(ctx: Ctx, p: int, n: int) -> dict[str, Any]:
    return stages.assess_partition(ctx, p, n)


@task(name="book-costs", **RETRIES)
def book_costs(ctx: Ctx) -> dict[str, Any]:
    return {**stages.book_due_costs(ctx), "interest": stages.accrue_interest(ctx)}


@task(name="plan-partition", task_run_name="plan-p{p}-of-{n}", **RETRIES)
def plan_partition(ctx: Ctx, p: int, n: int) -> dict[str, Any]:
    return stages.plan_partition(ctx, p, n)


@task(name="send-channel", task_run_name="send-{channel}", **RETRIES)
def send_channel(ctx: Ctx, channel: str) -> dict[str, Any]:
    return stages.send_channel(ctx, channel)


@task(name="retention", **RETRIES)
def retention(ctx: Ctx) -> dict[str, Any]:
    from flows.retention import purge

    return purge(ctx)


@task(name="write-back", **RETRIES)
def write_back(ctx: Ctx) -> dict[str, Any]:
    return stages.write_back(ctx)


# ------------------------------------------------------------------------- stages
@flow(name="ingest", flow_run_name="ingest-{ctx.creditor_id}")
def ingest(ctx: Ctx) -> dict[str, Any]:
    """A task per source and entity. The sources are read side by side (other systems,
    waited on over the network); a source's entities one after the other, each whatever
    the one before it came to (``allow_failure``: all land in staging only, so none needs
    another). Side by side in the flow's threads, a source's entities fought over the
    interpreter's lock: the 250k bench's ERP took 30.8-35.6 s so, 23.5-29.4 s one after
    the other (``bench.ingest_order``, docs/performance.md)."""
    futures: list[PrefectFuture[Any]] = []
    for src, settings in ctx.cfg.reader_sources().items():
        before: PrefectFuture[Any] | None = None
        for ent in stages.ENTITIES:
            if ent not in settings.entities:
                continue
            wait = [allow_failure(before)] if before is not None else None
            before = ingest_entity.submit(ctx, src, ent, wait_for=wait, return_state=False)
            futures.append(before)
    results = _gather(ctx, "ingest", futures)
    create_table_artifact(
        key=_key("ingest", ctx), table=results, description=f"Ingest {ctx.creditor_id} {ctx.today}"
    )
    return {"rows": sum(r["rows"] for r in results), "detail": results}


@flow(name="validate", flow_run_name="validate-{ctx.creditor_id}")
def validate(ctx: Ctx) -> dict[str, Any]:
    out = validate_staged(ctx)
    table = []
    for entity, summ in out["entities"].items():
        table.append(
            {
                "entity": entity,
                "rule": "(all)",
                "checked": summ["checked"],
                "passed": summ["passed"],
                "quarantined": summ["quarantined"],
            }
        )
        for rule, n in sorted(summ["rules"].items()):
            table.append(
                {
                    "entity": entity,
                    "rule": rule,
                    "checked": summ["checked"],
                    "passed": summ["checked"] - n,
                    "quarantined": n,
                }
            )
    create_table_artifact(
        key=_key("validate", ctx),
        table=table,
        description="Checked, passed and quarantined per rule"
        + (f"; GX Data Docs: {out['data_docs']}" if out.get("data_docs") else ""),
    )
    if out["stopped"]:
        create_markdown_artifact(
            key=_key("stopped", ctx),
            markdown=f"# Contact stopped for {ctx.creditor_id}\n\n**{out['stopped']}**\n\n"
            "No message goes out until an operator has looked at the export and run "
            "`vangnet creditor resume`.",
        )
        get_run_logger().error("creditor %s stopped: %s", ctx.creditor_id, out["stopped"])
        emit_event(
            event="vangnet.creditor.stopped",
            resource=creditor_resource(ctx),
            payload={"reason": out["stopped"], "cycle_date": ctx.today.isoformat()},
        )
    return out


@flow(name="debt-help", flow_run_name="debt-help-{ctx.creditor_id}")
def debt_help(ctx: Ctx) -> dict[str, Any]:
    """The Schuldenknooppunt round (fetch, store, confirm, handle, answer) and the
    statutory early signals."""
    out = debt_help_exchange(ctx)
    out["wgs"] = wgs_signals(ctx)
    _debt_help_artifacts(ctx, out)
    return out


@flow(name="debt-help-last-look", flow_run_name="debt-help-last-look-{ctx.creditor_id}")
def debt_help_last_look(ctx: Ctx) -> dict[str, Any]:
    """Right before sending: a Kennisgeving that arrived mid-cycle still stops contact."""
    out = debt_help_exchange(ctx, "last-look")
    _debt_help_artifacts(ctx, out)
    return out


def _debt_help_artifacts(ctx: Ctx, out: dict[str, Any]) -> None:
    counts = {k: v for k, v in out.items() if isinstance(v, int | str) and k != "route"}
    create_table_artifact(
        key=_key("debt-help", ctx),
        table=[{"route": out.get("route", "none"), **counts}],
        description="Schuldenknooppunt messages, holds and answers",
    )
    create_table_artifact(
        key=_key("debt-help-due", ctx),
        table=out.get("due")
        or [{"message_id": "-", "type": "-", "answer_due": "-", "note": "nothing due"}],
        description="Schuldenknooppunt messages owing an answer (10 working days), soonest first",
    )


@flow(name="reconcile", flow_run_name="reconcile-{ctx.creditor_id}")
def reconcile(
    ctx: Ctx, sftp_port: int | None = None, fetched: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Bank lines matched to open items. ``fetched``: what the daily cycle's bank lane
    fetched beside ingest and validate; without it (intraday), the statements are
    fetched here first."""
    if fetched is None:
        fetched = [fetch_statements(ctx, src, sftp_port) for src in ctx.cfg.sftp_sources()]
    matched = match_payments(ctx)
    matched["arrangements"] = track_arrangements(ctx)
    create_table_artifact(
        key=_key("reconcile", ctx),
        table=[
            {
                **{k: v for k, v in matched.items() if k not in ("unmatched_list", "arrangements")},
                **{f"arrangements_{k}": v for k, v in matched["arrangements"].items()},
            }
        ],
        description="Payments matched to open items",
    )
    create_table_artifact(
        key=_key("unmatched-payments", ctx),
        table=matched["unmatched_list"] or [{"payment_id": "-", "reason": "none"}],
        description=f"Payments for review (no automatic match): {matched['unmatched']}"
        + (
            f", the first {stages.UNMATCHED_SHOWN} shown; all are in the ledger (status unmatched)"
            if matched["unmatched"] > stages.UNMATCHED_SHOWN
            else ""
        ),
    )
    return {"files": fetched, **{k: v for k, v in matched.items() if k != "unmatched_list"}}


@flow(name="assess", flow_run_name="assess-{ctx.creditor_id}")
def assess(ctx: Ctx) -> dict[str, Any]:
    n = ctx.cfg.policy.partitions
    results = _gather(ctx, "assess", [assess_partition.submit(ctx, p, n) for p in range(n)])
    totals: dict[str, int] = {}
    for r in results:
        for k, v in r["segments"].items():
            totals[k] = totals.get(k, 0) + v
    create_table_artifact(
        key=_key("segments", ctx),
        table=[
            {"segment": k, "label": LABELS_NL.get(k, k), "debtors": v}
            for k, v in sorted(totals.items())
        ],
        description="Debtors per segment",
    )
    return {
        "debtors": sum(totals.values()),
        # the same day again: only the debtors whose inputs changed (stages.assess_partition)
        "assessed": sum(r["debtors"] for r in results),
        "incremental": all(r.get("incremental") for r in results),
        "segments": totals,
    }


@flow(name="plan", flow_run_name="plan-{ctx.creditor_id}")
def plan(ctx: Ctx) -> dict[str, Any]:
    n = ctx.cfg.policy.partitions
    costs = book_costs(ctx)
    results = _gather(ctx, "plan", [plan_partition.submit(ctx, p, n) for p in range(n)])
    by_step: dict[str, int] = {}
    for r in results:
        for k, v in r.get("by_step", {}).items():
            by_step[k] = by_step.get(k, 0) + v
    rows = [
        dict(zip(("segment", "step", "channel"), k.split(":"), strict=True), planned=v)
        for k, v in sorted(by_step.items())
    ]
    trials = stages.experiment_report(ctx)
    if trials:
        create_table_artifact(
            key=_key("experiments", ctx),
            table=trials,
            description="A/B variants: outcomes per arm (paid with 95% Wilson interval,"
            " responded, complaints, hardship); guardrail stops",
        )
    create_table_artifact(
        key=_key("plan", ctx),
        table=rows or [{"segment": "-", "step": "-", "channel": "-", "planned": 0}],
        description="Planned steps per segment",
    )
    return {"planned": sum(r["planned"] for r in results), "by_step": by_step, "costs": costs}


@flow(name="send", flow_run_name="send-{ctx.creditor_id}")
def send(ctx: Ctx) -> dict[str, Any]:
    results = _gather(ctx, "send", [send_channel.submit(ctx, ch) for ch in ctx.cfg.channels])
    create_table_artifact(key=_key("send", ctx), table=results, description="Messages per channel")
    return {r["channel"]: r for r in results}


@flow(name="write-back", flow_run_name="write-back-{ctx.creditor_id}")
def write_back_stage(ctx: Ctx) -> dict[str, Any]:
    out = write_back(ctx)
    create_table_artifact(
        key=_key("write-back", ctx),
        table=[out],
        description="Statuses written into the creditor's system",
    )
    return out


# ---------------------------------------------------------------------- the cycle
class CyclePool(ProcessPoolTaskRunner):
    """Prefect's process pool, started once for a cycle and shared by its stages.

    The cycle starts it (``cycle_pool``); a partitioned stage's subflow gets a duplicate,
    which borrows the running pool's worker processes instead of spawning its own (each
    new pool spawns its workers and imports pandas, SQLAlchemy and the stages again:
    2-4 s a pool). A duplicate entered when no pool runs in this thread starts one.

    In Prefect's ephemeral mode (no API URL set) the workers are pointed at the parent's
    temporary server; left alone, each worker starts a temporary server of its own
    (about 5 s each, and a second API to report to)."""

    _running = threading.local()  # the pool started in this thread, if any

    def __init__(self, max_workers: int | None = None) -> None:
        import os

        super().__init__(
            max_workers=max_workers, initializer=exit_with_parent, initargs=(os.getpid(),)
        )
        self._borrowed = False
        self._closing: threading.Thread | None = None
        self._close_error: BaseException | None = None

    def duplicate(self) -> CyclePool:
        return type(self)(max_workers=self._max_workers)

    @classmethod
    def running(cls) -> CyclePool | None:
        return getattr(cls._running, "pool", None)

    def __enter__(self) -> CyclePool:
        owner = self.running()
        if owner is None or owner._executor is None:
            super().__enter__()
            CyclePool._running.pool = self
            return self
        TaskRunner.__enter__(self)
        self._borrowed = True
        self._executor = owner._executor
        self._resolver_executor = owner._resolver_executor
        self._subprocess_message_queue = owner._subprocess_message_queue
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if self._borrowed:  # the pool is the owner's: leave it running
            self._executor = self._resolver_executor = None
            self._subprocess_message_queue = None
            self._cached_context = self._cached_env = None
            self._borrowed = False
            TaskRunner.__exit__(self, exc_type, exc_value, traceback)
            return
        if self._closing is not None:  # closing since ``close_soon``: wait for it
            self._closing.join()
            self._closing = None
            if self._close_error is not None and exc_type is None:
                raise self._close_error
            return
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            if self.running() is self:
                CyclePool._running.pool = None

    def close_soon(self) -> None:
        """Start closing the pool on a thread of its own, for a cycle whose next stages
        run in the flow's process: the workers' exit (Prefect flushes what they logged,
        then each interpreter ends; 1.4-1.7 s at 250k debtors) then overlaps those stages
        instead of coming before them. ``__exit__`` waits for it. A borrowed pool is the
        owner's to close: nothing happens."""
        if self._borrowed or self._closing is not None or self._executor is None:
            return
        if self.running() is self:  # no subflow borrows a pool that is closing
            CyclePool._running.pool = None

        def close() -> None:
            try:
                ProcessPoolTaskRunner.__exit__(self, None, None, None)
            except BaseException as exc:  # noqa: BLE001 - raised again by __exit__
                self._close_error = exc

        self._closing = threading.Thread(target=close, name="cycle-pool-close", daemon=True)
        self._closing.start()

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> Any:
        # the context and environment the workers get are taken at the first submit
        url = None if self._cached_context is not None or PREFECT_API_URL.value() else _api_url()
        if url is None:
            return super().submit(task, parameters, wait_for, dependencies)
        with temporary_settings({PREFECT_API_URL: url}):
            return super().submit(task, parameters, wait_for, dependencies)


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A pool worker's watchdog: the worker exits as soon as the process that started it
    is gone (killed, or crashed), instead of finishing its task on a ledger that a new
    run may already be writing."""
    import os

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(70)  # EX_SOFTWARE: the cycle that owned this worker is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _api_url() -> str | None:
    """The API this flow run reports to (the ephemeral server's, when none is set)."""
    from prefect.context import FlowRunContext

    run = FlowRunContext.get()
    client = getattr(run, "client", None) if run is not None else None
    url = getattr(client, "api_url", None)
    return str(url).rstrip("/") if url else None


@contextmanager
def cycle_pool(ctx: Ctx) -> Iterator[CyclePool | None]:
    """The creditor's worker processes for the length of a cycle (``scale.runner:
    processes``), or None (threads or Dask: each stage makes its own runner)."""
    sc = ctx.cfg.scale
    if sc.runner != "processes":
        yield None
        return
    with CyclePool(max_workers=sc.processes()) as pool:
        yield pool


def task_runner(ctx: Ctx) -> Any:
    """The creditor's ``scale.runner`` for a partitioned stage: the cycle's process pool
    (borrowed, see ``CyclePool``), Prefect's thread pool, or a Dask cluster (the
    scheduler at ``dask_address``, or a temporary local cluster of processes)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    sc = ctx.cfg.scale
    if sc.runner == "processes":
        return CyclePool(max_workers=sc.processes())
    if sc.runner == "threads":
        return ThreadPoolTaskRunner(max_workers=sc.max_workers)
    from prefect_dask import DaskTaskRunner

    address = sc.address()
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": sc.dask_workers, "threads_per_worker": 1, "processes": True}
    )


def creditor_tags(creditor_id: str) -> Any:
    """Tags on every stage and task of a creditor's run (the deployment's tags reach only
    the top run), so the UI filters a creditor's work by one tag."""
    return tags("vangnet", f"creditor:{creditor_id}")


def subflows_without_heartbeats() -> Any:
    """The stages' subflow runs send no heartbeats of their own; the run they belong to
    keeps its own. Prefect (3.8) gives every flow run a heartbeat thread (every 180 s by
    default) that sleeps in steps of a second, and a run that ends waits for it to see
    so: up to a second per subflow, about 6 s of the cycle's nine at 250k debtors
    (docs/performance.md). The subflows run in their parent's process, so the parent's
    heartbeat already says whether they live: zombie detection marks the parent
    ``CRASHED`` when it stops (``vangnet-run-unresponsive``, docs/reliability.md)."""
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def _scaled(stage: Any, ctx: Ctx) -> Any:
    """A partitioned stage on the creditor's task runner."""
    return stage.with_options(task_runner=task_runner(ctx))


def _run_name(kind: str) -> Any:
    """A run name that says what, which creditor and which day."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters
        ctx = make_ctx(params["creditor_file"], params.get("now"))
        return f"{kind}-{ctx.creditor_id}-{ctx.today.isoformat()}"

    return name


_cycle_run_name = _run_name("daily-cycle")


@flow(name="daily-cycle", flow_run_name=_cycle_run_name, log_prints=True)
def daily_cycle(
    creditor_file: str, now: str | None = None, sftp_port: int | None = None
) -> dict[str, Any]:
    """ingest -> validate -> debt help -> reconcile -> assess -> plan -> debt help (last
    look) -> send -> write back; the bank's statements are fetched beside ingest and
    validate (``bank_lane``), on another core."""
    ctx = make_ctx(creditor_file, now)
    with creditor_tags(ctx.creditor_id), subflows_without_heartbeats():
        return _daily_cycle(ctx, sftp_port)


def bank_lane(ctx: Ctx, sftp_port: int | None, pool: CyclePool | None) -> list[Any]:
    """The statements fetched (downloaded, parsed, checked, stored) beside ingest and
    validate: they need nothing those stages write, and on a rent day they are a third of
    the cycle's work. On the cycle's process pool when it has one (another core), else
    on the flow's own runner. Futures of one task per statement source."""
    sources = list(ctx.cfg.sftp_sources())
    if pool is not None:
        return [
            pool.submit(fetch_statements, {"ctx": ctx, "source": s, "port": sftp_port})
            for s in sources
        ]
    return [fetch_statements.submit(ctx, s, sftp_port) for s in sources]


def _daily_cycle(ctx: Ctx, sftp_port: int | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"creditor": ctx.creditor_id, "cycle_date": ctx.today.isoformat()}
    ctx.engine  # noqa: B018 - the ledger migrated and the creditor known before any worker opens it
    with cycle_pool(ctx) as pool:
        bank = bank_lane(ctx, sftp_port, pool)
        summary["ingest"] = ingest(ctx)
        summary["validate"] = validate(ctx)
        summary["debt_help"] = debt_help(ctx)
        summary["reconcile"] = reconcile(ctx, sftp_port, [f.result() for f in bank])
        summary["assess"] = _scaled(assess, ctx)(ctx)
        summary["plan"] = _scaled(plan, ctx)(ctx)
        if pool is not None:  # the rest runs in this process, beside the pool's closing
            pool.close_soon()
        summary["debt_help_last_look"] = debt_help_last_look(ctx)
        summary["send"] = send(ctx)
        summary["write_back"] = write_back_stage(ctx)
        summary["retention"] = retention(ctx)
    create_markdown_artifact(
        key=_key("cycle", ctx), markdown=cycle_markdown(summary), description="Daily cycle summary"
    )
    emit_event(
        event="vangnet.cycle.completed",
        resource=creditor_resource(ctx),
        payload={
            "cycle_date": ctx.today.isoformat(),
            "stopped": summary["validate"].get("stopped"),
            "planned": summary["plan"]["planned"],
            "sent": sum(r["sent"] for r in summary["send"].values()),
        },
    )
    return summary


@flow(name="intraday-reconcile", flow_run_name=_run_name("intraday-reconcile"), log_prints=True)
def intraday_reconcile(
    creditor_file: str, now: str | None = None, sftp_port: int | None = None
) -> dict[str, Any]:
    """During the day: today's new statement files matched, and the statuses written back,
    so a debtor who paid this morning is not reminded this afternoon."""
    ctx = make_ctx(creditor_file, now)
    with creditor_tags(ctx.creditor_id), subflows_without_heartbeats():
        return {"reconcile": reconcile(ctx, sftp_port), "write_back": write_back_stage(ctx)}


@flow(name="debt-help-daily", flow_run_name=_run_name("debt-help-daily"), log_prints=True)
def debt_help_daily(creditor_file: str, now: str | None = None) -> dict[str, Any]:
    """The Schuldenknooppunt round on its own (the hub wants a daily fetch even on a day
    the cycle does not run), with what is due."""
    ctx = make_ctx(creditor_file, now)
    with creditor_tags(ctx.creditor_id), subflows_without_heartbeats():
        return debt_help(ctx)


@flow(name="data-quality-report", flow_run_name=_run_name("data-quality-report"), log_prints=True)
def data_quality_report(creditor_file: str, now: str | None = None) -> dict[str, Any]:
    """Weekly: what waits in quarantine, per entity and rule, as a table and a summary."""
    from flows.quarantine import summary as open_summary

    ctx = make_ctx(creditor_file, now)
    rows = open_summary(ctx)
    create_table_artifact(
        key=_key("data-quality", ctx),
        table=rows or [{"entity": "-", "rule": "-", "open": 0}],
        description="Records waiting in quarantine, per entity and rule",
    )
    total = sum(r["open"] for r in rows)
    create_markdown_artifact(
        key=_key("data-quality-summary", ctx),
        markdown=f"# Data quality {ctx.creditor_id} {ctx.today.isoformat()}\n\n"
        f"{total} rule failures on records waiting in quarantine. Look at them with "
        "`vangnet quarantine list`; release what the source has fixed.",
        description="Weekly data-quality summary",
    )
    return {"open_failures": total, "by_rule": rows}


@flow(name="demo-cycle", flow_run_name="demo-cycle-{debtors}", log_prints=True)
def demo_cycle(
    workdir: str = "var/demo", debtors: int = 2000, now: str | None = None
) -> dict[str, Any]:
    """The embedded default: seed the demo creditor on first use, serve its bank's
    statements on a loopback SFTP server for the length of the run, run the cycle."""
    from pathlib import Path

    from flows.demo import seed, sftp_server

    moment = clock(now)
    wd = Path(workdir).resolve()
    cfg = seed(wd, debtors, moment.astimezone(AMS).date())
    with (
        sftp_server(wd) as server,
        creditor_tags(make_ctx(str(cfg), moment).creditor_id),
        subflows_without_heartbeats(),
    ):
        return daily_cycle(str(cfg), moment.isoformat(), server.port)


def cycle_markdown(summary: dict[str, Any]) -> str:
    v = summary["validate"]["entities"]
    sent = {ch: r["sent"] for ch, r in summary["send"].items()}
    rec, wb = summary["reconcile"], summary["write_back"]
    dh, last = summary["debt_help"], summary.get("debt_help_last_look") or {}
    lines = [
        f"# Daily cycle {summary['creditor']} {summary['cycle_date']}",
        "",
        "| stage | result |",
        "|---|---|",
        f"| ingest | {summary['ingest']['rows']} records read |",
        "| validate | "
        + ", ".join(
            f"{e}: {x['passed']} passed, {x['quarantined']} quarantined" for e, x in v.items()
        )
        + " |",
        "| debt help | "
        + f"{dh.get('holds', 0) + last.get('holds', 0)} new holds, "
        + f"{dh.get('answers_sent', 0) + last.get('answers_sent', 0)} answers sent, "
        + f"{dh.get('review', 0)} for review, {len(last.get('due') or dh.get('due') or [])} due |",
        f"| reconcile | {rec['matched']} of {rec['payments']} payments matched |",
        "| assess | "
        + ", ".join(f"{k} {n}" for k, n in sorted(summary["assess"]["segments"].items()))
        + (
            f" (re-assessed {summary['assess']['assessed']}: only what changed today)"
            if summary["assess"].get("incremental")
            else ""
        )
        + " |",
        f"| plan | {summary['plan']['planned']} contacts planned |",
        "| send | " + ", ".join(f"{k} {n}" for k, n in sent.items()) + " |",
        f"| write back | {wb.get('applied', 0)} applied, {wb.get('conflict', 0)} conflicts |",
    ]
    if summary["validate"].get("stopped"):
        lines += ["", f"**Contact stopped: {summary['validate']['stopped']}**"]
    return "\n".join(lines)
