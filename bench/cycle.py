"""The daily cycle, stage by stage, on the embedded default, next to its limits.

``vangnet bench [--debtors N] [--json]`` (or ``python -m bench.cycle``) seeds the demo
creditor at scale once (``var/bench/``: the ERP on SQLite behind the SQLite ODBC driver,
today's CAMT.053 on the loopback SFTP server, a Schuldenknooppunt download), copies it,
and runs every stage as the cycle does, timing each with its peak memory. Next to each
stage it runs the same work done bare:

- ingest: raw ``pyodbc`` fetch of the same queries into a DataFrame;
- validate: the same rules as plain pandas masks on the staged rows;
- send: the same number of message files written with plain ``open().write``;
- write back: the creditor's own statements with every applied change's values, as one
  ``executemany`` of Python's ``sqlite3`` on a copy of the ERP as it was before.

For send and write back it also times the floor of the stage's own way (``floor s``):
what the stage cannot leave out and stay correct, with none of its other work. Send:
the same files each synced and renamed into place, as exactly once needs before the
ledger records a message sent. Write back: the same statements over ODBC a statement a
change, as telling a conflict (no row touched) from an applied change needs.

The stages run as the flow runs them on the creditor's ``scale.runner``: with
``processes`` (the default) one pool of worker processes for the cycle, the bank lane
(statements fetched, parsed, checked and stored) on a worker beside ingest, validate and
debt help, and assess and plan a partition a task over the pool. So the cycle's figure
is its wall time, not the sum of its stages; ``fetch`` is the bank lane's own time. Peak
memory is the process tree's (the cycle's process and its workers). The bank's SFTP
server runs in a process of its own, as the bank would be elsewhere. The flow's other
work is timed too: debt help includes the Wgs signals, ``last_look`` is the
Schuldenknooppunt round again right before sending, ``retention`` the purge after write
back (so Prefect's share is what orchestration adds, not work the bench left out).

Then the same day again (nothing new), and, with ``--prefect``, the whole cycle through
Prefect on a fresh copy (the orchestration's share). ``--ledger-url`` puts the ledger
on PostgreSQL. Results go to ``bench/results/cycle-<date>-<debtors>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from bench.odbc import commit_id
from connectors.durable import Folders
from flows.context import forget_engines

TODAY = dt.date(2026, 11, 24)
NOW = "2026-11-24T10:00:00+01:00"
PAGE = os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The resident memory of this process and its descendants (the cycle's worker
    processes), sampled every 20 ms; the peak since ``reset``. ``exclude``: processes
    that are not the cycle's (the bank's SFTP server).

    Each process's own pages (resident less file-backed and shared: its heap) are added
    up; the file-backed pages (Python, NumPy, pandas, ... mapped by every process) are
    counted once, as the largest of them: they are the same physical pages. Adding up
    plain RSS would count those libraries once per worker (about 150 MB each)."""

    def __init__(self) -> None:
        self.peak = 0
        self.exclude: set[int] = set()
        self._pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _pages(pid: int | str) -> tuple[int, int]:
        """(own, shared) bytes resident: statm's resident less shared, and shared."""
        try:
            with open(f"/proc/{pid}/statm") as fh:
                fields = fh.read().split()
            resident, shared = int(fields[1]), int(fields[2])
            return (resident - shared) * PAGE, shared * PAGE
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return 0, 0  # gone between the scan and the read

    def _descendants(self) -> list[int]:
        parent: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        # the name (field 2) may hold spaces: the parent is after its ")"
                        parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                    continue
        found, todo = [], [os.getpid()]
        while todo:
            me = todo.pop()
            kids = [p for p, pp in parent.items() if pp == me and p not in self.exclude]
            found += kids
            todo += kids
        return found

    def now(self) -> int:
        pages = [self._pages("self"), *(self._pages(p) for p in self._pids)]
        return sum(own for own, _ in pages) + max(shared for _, shared in pages)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.02):
            if tick % 25 == 0:  # new workers are looked for twice a second
                self._pids = self._descendants()
            tick += 1
            self.peak = max(self.peak, self.now())

    def reset(self) -> None:
        self.peak = self.now()

    def stop(self) -> None:
        self._stop.set()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def template(root: Path, debtors: int, months: int, lines: int, partitions: int) -> Path:
    """The seeded demo creditor at this scale, made once and reused."""
    from flows.demo import seed

    folder = root / f"template-{debtors}-{months}m-{lines}l-p{partitions}"
    if not (folder / "creditor.yaml").exists():
        t = time.perf_counter()
        seed(folder, debtors, TODAY, months=months, statement_lines=lines)
        cfg = folder / "creditor.yaml"
        text = cfg.read_text().replace("partitions: 4", f"partitions: {partitions}")
        # a rent day's statement at this scale is hundreds of MB: allow it (the default
        # 50 MiB guard stays for real creditors until they say otherwise)
        text = text.replace(
            "    format: camt053", "    format: camt053\n    max_file_bytes: 2147483648"
        )
        cfg.write_text(text)
        print(f"seeded {folder} in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


def fresh_copy(folder: Path, to: Path, ledger_url: str | None) -> Path:
    forget_engines(str(to))
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(folder, to)
    cfg = to / "creditor.yaml"
    text = cfg.read_text().replace(str(folder), str(to))
    if ledger_url:
        text += f"\nledger: {{url: {json.dumps(ledger_url)}}}\n"
    cfg.write_text(text)
    return cfg


@contextmanager
def _timed(rss: PeakRss, out: dict[str, Any]) -> Iterator[None]:
    rss.reset()
    t = time.perf_counter()
    yield
    out["seconds"] = round(time.perf_counter() - t, 2)
    out["peak_mib"] = round(rss.peak / 2**20)


def _bare_ingest(ctx: Any) -> tuple[int, float]:
    import pyodbc

    from connectors.odbc.client import named_to_qmark

    src = ctx.cfg.odbc_sources()["erp"]
    t = time.perf_counter()
    conn = pyodbc.connect(src.connection_string)
    rows = 0
    for spec in src.entities.values():
        sql, params = named_to_qmark(spec.query, {"watermark": "", "last_key": ""})
        cur = conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=cols)
        rows += len(frame)
    conn.close()
    return rows, time.perf_counter() - t


def _save_staged_invoices(ctx: Any, path: Path) -> None:
    """The staged invoices' payloads, one JSON text a line, for the bare validation after
    the cycle: held as a frame in this process through the cycle, they had added 1.5 GB
    at 250k debtors to every stage's peak."""
    from sqlalchemy import Text, cast, select

    from ledger import schema as s

    with ctx.engine.connect() as conn, open(path, "w", encoding="utf-8") as fh:
        texts = conn.execute(
            select(cast(s.staging.c.payload, Text)).where(s.staging.c.entity == "invoices")
        ).scalars()
        for text in texts:
            fh.write(text + "\n")  # compact JSON: a newline in a value is escaped


def _bare_validate(cfg: Path, staged: Path) -> float:
    """The invoice rules as plain pandas masks over the staged invoices, in a process of
    its own (``_bare_validate_child``), so neither its frame nor its time is the cycle's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_bare_validate_child, str(cfg), str(staged)).result()


def _bare_validate_child(cfg: str, staged: str) -> float:
    from bench.validation import pandas_masks
    from flows import stages
    from flows.context import make_ctx
    from ledger.store import json_loads_staged
    from transforms import validation

    ctx = make_ctx(cfg, NOW)
    with open(staged, encoding="utf-8") as fh:
        frame = stages.payload_frame("invoices", [json_loads_staged(line) for line in fh])
    # imported before the clock starts, as in the cycle's process: prepare_for_rules
    # names the rules, and the first to do so imports GX (1.8 s)
    validation._gx()
    t = time.perf_counter()
    prepared, _rules, _id = stages.prepare_for_rules(ctx, "invoices", frame)
    pandas_masks(prepared)
    return time.perf_counter() - t


def _bare_send(folder: Path, n: int, size: int, durable: bool = False) -> float:
    """``n`` files of ``size`` characters written with plain ``open().write``. With
    ``durable``, each made to last as the outbox channel must before the ledger records
    its message as sent (exactly once): its text synced, then renamed into place, and
    the folder synced after the last rename. That is the floor of the stage's own way
    (``floor_seconds``), which no faster code can go under without giving that up."""
    body = "x" * size
    t = time.perf_counter()
    folder.mkdir(parents=True)
    folders = Folders()
    for i in range(n):
        final = folder / f"{i:08d}.txt"
        if durable:
            folders.write(final, body, folder / f".{i:08d}.tmp")
            continue
        with open(final, "w", encoding="utf-8") as fh:
            fh.write(body)
    folders.sync()
    return time.perf_counter() - t


def _bare_write_back(erp: Path, ids: list[str]) -> float:
    """Until 2026-12-06 the bare write back: two columns, one value for every record,
    on the ERP as the stage left it (so none of its rows grows). Kept beside the one
    below, as ``bare_two_columns_seconds``, so earlier results compare."""
    copy = erp.with_name("erp-bare.sqlite")
    shutil.copy(erp, copy)
    t = time.perf_counter()
    with sqlite3.connect(copy) as db:
        db.executemany(
            "UPDATE facturen SET incassostatus = ?, vangnet_openstaand = ? WHERE factuurnr = ?",
            [("betaald", "0.00", i) for i in ids],
        )
    took = time.perf_counter() - t
    copy.unlink()
    return took


def _applied_statements(ctx: Any) -> dict[str, list[list[Any]]]:
    """Every change write back applied, as the creditor's statement for its entity with
    the change's own values (``?`` markers): statement -> its rows' parameters."""
    from sqlalchemy import select

    from connectors.odbc.client import named_to_qmark
    from ledger import schema as s

    w = s.write_backs
    assert ctx.cfg.write_back is not None
    # the bench's creditor writes back over ODBC, to the source it reads (as _bare_ingest)
    statements = ctx.cfg.odbc_sources()[ctx.cfg.write_back.target].write_back
    with ctx.engine.connect() as conn:
        applied = conn.execute(
            select(w.c.entity, w.c.record_id, w.c["values"], w.c.expected_version)
            .where(w.c.status == "applied")
            .order_by(w.c.id)
        ).all()
    params: dict[str, list[list[Any]]] = {}
    for entity, record_id, values, version in applied:
        sql, bound = named_to_qmark(
            statements[entity], {**values, "record_id": record_id, "expected_version": version}
        )
        params.setdefault(sql, []).append(bound)
    return params


def _odbc_statements(ctx: Any, before: Path) -> tuple[float, int]:
    """The floor of write back's own way: the statements ``_bare_statements`` runs, each
    on its own over ODBC to a copy of the ERP as it was before the cycle (the SQLite
    ODBC driver, as the stage), in one transaction, reading each one's row count. A
    statement a change is what tells a conflict (no row touched) from an applied change,
    and the SQLite ODBC driver crashes with ``fast_executemany``; the stage's ledger
    side (claiming the changes, recording their outcome) is left out. (seconds, rows
    touched.)"""
    import pyodbc

    assert ctx.cfg.write_back is not None
    src = ctx.cfg.odbc_sources()[ctx.cfg.write_back.target]
    params = _applied_statements(ctx)
    erp = str(ctx.cfg.path("erp.sqlite"))
    assert erp in src.connection_string, "the ERP's path is not in its connection string"
    conn = pyodbc.connect(src.connection_string.replace(erp, str(before)), autocommit=False)
    touched = 0
    t = time.perf_counter()
    cur = conn.cursor()
    for sql, rows in params.items():
        for row in rows:
            cur.execute(sql, row)
            touched += max(cur.rowcount, 0)
    conn.commit()
    took = time.perf_counter() - t
    conn.close()
    before.unlink()
    return took, touched


def _bare_statements(ctx: Any, before: Path) -> tuple[float, int]:
    """The same work as write back, bare: every change the stage applied, through the
    creditor's own statement for its entity (the version check and every column it
    sets), with the change's own values, as one ``executemany`` an entity in one
    transaction of Python's ``sqlite3``, on a copy of the ERP as it was before the
    cycle (the stage's writes are its only ones). (seconds, rows the statements
    touched)."""
    params = _applied_statements(ctx)
    t = time.perf_counter()
    touched = 0
    with sqlite3.connect(before) as db:
        for sql, rows in params.items():
            touched += db.executemany(sql, rows).rowcount
    took = time.perf_counter() - t
    before.unlink()
    return took, touched


def _pool(ctx: Any) -> Executor:
    """The executor the flow's ``scale.runner`` gives the cycle: worker processes
    (``CyclePool``: spawned, one per core), or threads (Prefect's thread pool)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    sc = ctx.cfg.scale
    if sc.runner == "processes":
        return ProcessPoolExecutor(sc.processes(), mp_context=multiprocessing.get_context("spawn"))
    return ThreadPoolExecutor(sc.max_workers)


def _fetch_lane(cfg: str, port: int) -> dict[str, Any]:
    """The bank lane as the flow's ``bank_lane`` runs it: every statement source."""
    from flows import stages
    from flows.context import make_ctx

    ctx = make_ctx(cfg, NOW)
    t = time.perf_counter()
    with stage_said("statement ") as said:
        sources = ctx.cfg.sftp_sources()
        rows = sum(stages.fetch_statements(ctx, src, port)["entries"] for src in sources)
    return {"seconds": round(time.perf_counter() - t, 2), "rows": rows, "log": said}


#: the log lines in which a stage gives its own split of its time (``flows.stages.Split``)
SAID = ("statement ", "validate: ", "match: ")


@contextmanager
def stage_said(*starts: str) -> Iterator[list[str]]:
    """What the stages log (``vangnet``, INFO) within the block, in the block's thread
    (the bank lane may run on a thread beside), the lines that start with one of
    ``starts`` (default ``SAID``): the stages' own account of where their time went,
    kept with the run's figures."""
    said: list[str] = []
    handler = logging.Handler(logging.INFO)
    here = threading.get_ident()
    handler.emit = lambda record: (  # type: ignore[method-assign]
        said.append(record.getMessage()) if record.thread == here else None
    )
    log = logging.getLogger("vangnet")
    # left at INFO for the bench's process: a level put back at the end of a block
    # would silence another thread's block still open (the bank lane's, beside)
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    log.addHandler(handler)
    try:
        yield said
    finally:
        log.removeHandler(handler)
        said[:] = [m for m in said if m.startswith(starts or SAID)]


def _assess_part(cfg: str, p: int, n: int) -> int:
    from flows import stages
    from flows.context import make_ctx

    return int(stages.assess_partition(make_ctx(cfg, NOW), p, n)["debtors"])


def _plan_part(cfg: str, p: int, n: int) -> int:
    from flows import stages
    from flows.context import make_ctx

    return int(stages.plan_partition(make_ctx(cfg, NOW), p, n)["planned"])


def run_stages(cfg: Path, sftp_port: int, rss: PeakRss, bare: bool) -> dict[str, Any]:
    """Every stage of the daily cycle in its order, as ``flows.cycle._daily_cycle`` runs
    it: the bank lane beside ingest, validate and debt help, partitions over the pool.
    ``cycle`` is the wall time from the pool's start to the end of write back."""
    from sqlalchemy import func, select

    from flows import debt_help, stages
    from flows.context import make_ctx
    from flows.retention import purge
    from ledger import schema as s
    from transforms.validation import Validator

    ctx = make_ctx(str(cfg), NOW)
    n = ctx.cfg.policy.partitions
    out: dict[str, dict[str, Any]] = {}

    def stage(name: str, fn: Callable[[], int]) -> None:
        row: dict[str, Any] = {}
        with stage_said() as said, _timed(rss, row):
            row["rows"] = fn()
        row["rows_per_second"] = round(row["rows"] / row["seconds"]) if row["seconds"] else None
        if said:
            row["log"] = said
        out[name] = row
        print(
            f"  {name:<11} {row['seconds']:>7.2f} s {row['rows']:>9} rows",
            *(f"\n      {line}" for line in said),
            flush=True,
        )

    erp_before = cfg.parent / "erp-before.sqlite"  # the bare write back's, as it was
    if bare:
        shutil.copy(cfg.parent / "erp.sqlite", erp_before)
    started = time.perf_counter()
    ctx.engine  # noqa: B018 - migrated before any worker opens it, as the flow does
    with _pool(ctx) as pool:
        lane = pool.submit(_fetch_lane, str(cfg), sftp_port)
        stage(
            "ingest",
            lambda: sum(stages.ingest_entity(ctx, "erp", e)["rows"] for e in stages.ENTITIES),
        )
        staged = cfg.parent / "bare-invoices.jsonl"
        if bare:
            _save_staged_invoices(ctx, staged)
        stage(
            "validate",
            lambda: sum(
                v["checked"] for v in stages.validate_staged(ctx, Validator())["entities"].values()
            ),
        )
        stage("debt_help", lambda: _debt_help(ctx))
        waited = time.perf_counter()
        fetched = lane.result()
        out["fetch"] = {
            **fetched,
            "rows_per_second": round(fetched["rows"] / fetched["seconds"])
            if fetched["seconds"]
            else None,
            "beside": "ingest, validate, debt_help",
            "waited_seconds": round(time.perf_counter() - waited, 2),
        }
        print(
            f"  {'fetch':<11} {fetched['seconds']:>7.2f} s {fetched['rows']:>9} rows"
            f" (beside ingest, validate and debt help; waited"
            f" {out['fetch']['waited_seconds']:.2f} s for it)",
            *(f"\n      {line}" for line in fetched["log"]),
            flush=True,
        )
        stage("reconcile", lambda: _match(ctx))
        stage("assess", lambda: sum(pool.map(_assess_part, *_parts(cfg, n))))
        stage("plan", lambda: _plan(ctx, pool, cfg, n))
        # as the flow closes its pool (``CyclePool.close_soon``): beside the rest
        closing = threading.Thread(target=pool.shutdown, name="pool-close", daemon=True)
        closing.start()
        stage("last_look", lambda: int(debt_help.exchange_messages(ctx).get("fetched", 0)))
        stage("send", lambda: sum(stages.send_channel(ctx, ch)["sent"] for ch in ctx.cfg.channels))
        stage("write_back", lambda: int(stages.write_back(ctx).get("applied", 0)))
        stage("retention", lambda: sum(purge(ctx).values()))
        closing.join()
    out["fetch"]["peak_mib"] = max(out[k]["peak_mib"] for k in ("ingest", "validate", "debt_help"))
    wall = round(time.perf_counter() - started, 2)

    if bare:
        rows, secs = _bare_ingest(ctx)
        out["ingest"]["bare_seconds"] = round(secs, 2)
        out["ingest"]["bare_rows"] = rows
        out["validate"]["bare_seconds"] = round(_bare_validate(cfg, staged), 2)
        staged.unlink()
        files = list((cfg.parent / "outbox").glob("*/*/*.txt"))
        size = int(sum(f.stat().st_size for f in files[:500]) / max(len(files[:500]), 1))
        # a few small files wait on whatever the disk still writes back of the cycle's
        # gigabytes (the bare once took 2.09 s against 0.20 s in the run before): that
        # is flushed first, and bare and floor run in turn three times, the median kept
        os.sync()
        bare_runs, floor_runs = [], []
        for k in range(3):
            bare_runs.append(_bare_send(cfg.parent / f"bare-outbox-{k}", len(files), size))
            floor_runs.append(
                _bare_send(cfg.parent / f"floor-outbox-{k}", len(files), size, durable=True)
            )
        out["send"]["bare_seconds"] = round(statistics.median(bare_runs), 2)
        out["send"]["floor_seconds"] = round(statistics.median(floor_runs), 2)
        out["send"]["bare_runs"] = [round(x, 3) for x in bare_runs]
        out["send"]["floor_runs"] = [round(x, 3) for x in floor_runs]
        with ctx.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(s.write_backs.c.record_id).where(
                        s.write_backs.c.entity == "invoices", s.write_backs.c.status == "applied"
                    )
                ).scalars()
            )
            out["validate"]["ledger_invoices"] = conn.execute(
                select(func.count()).select_from(s.invoices)
            ).scalar()
        out["write_back"]["bare_two_columns_seconds"] = round(
            _bare_write_back(cfg.parent / "erp.sqlite", ids), 2
        )
        erp_floor = erp_before.with_name("erp-floor.sqlite")
        shutil.copy(erp_before, erp_floor)
        secs, touched = _bare_statements(ctx, erp_before)
        out["write_back"]["bare_seconds"] = round(secs, 2)
        out["write_back"]["bare_rows"] = touched
        secs, touched = _odbc_statements(ctx, erp_floor)
        out["write_back"]["floor_seconds"] = round(secs, 2)
        out["write_back"]["floor_rows"] = touched
        for row in out.values():
            if row.get("bare_seconds"):
                row["ratio_to_bare"] = round(row["seconds"] / row["bare_seconds"], 2)
            if row.get("bare_seconds") and row.get("floor_seconds"):
                row["floor_ratio_to_bare"] = round(row["floor_seconds"] / row["bare_seconds"], 2)
    return {"stages": out, "wall_seconds": wall}


def _parts(cfg: Path, n: int) -> tuple[list[str], list[int], list[int]]:
    """``pool.map``'s arguments for every partition of ``n``."""
    return [str(cfg)] * n, list(range(n)), [n] * n


def _debt_help(ctx: Any) -> int:
    """The debt-help subflow's work: the Schuldenknooppunt round, then the Wgs signals
    (7 s at 250k debtors, which the cycle's figure had left to Prefect's share)."""
    from flows import debt_help

    fetched = int(debt_help.exchange_messages(ctx).get("fetched", 0))
    debt_help.wgs_signals(ctx)
    return fetched


def _match(ctx: Any) -> int:
    from flows import debt_help, stages

    matched = stages.match_new_payments(ctx)
    debt_help.track_arrangements(ctx)
    return int(matched["payments"])


def _reconcile(ctx: Any, port: int) -> int:
    """Reconcile as the intraday flow runs it: fetch, then match (``bench.profile``)."""
    from flows import stages

    for src in ctx.cfg.sftp_sources():
        stages.fetch_statements(ctx, src, port)
    return _match(ctx)


def _plan(ctx: Any, pool: Executor | None = None, cfg: Path | None = None, n: int = 1) -> int:
    from flows import stages

    stages.book_due_costs(ctx)
    stages.accrue_interest(ctx)
    if pool is None or cfg is None:
        return sum(stages.plan_partition(ctx, p, n)["planned"] for p in range(n))
    return sum(pool.map(_plan_part, *_parts(cfg, n)))


@contextmanager
def sftp_peer(workdir: Path, rss: PeakRss | None = None) -> Iterator[Any]:
    """The demo's loopback SFTP server in a process of its own (the bank's side of the
    download is the bank's CPU, not the cycle's process's); ``.port``."""
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    ready = mp.Queue()
    proc = mp.Process(target=_serve_sftp, args=(str(workdir), ready), daemon=True)
    proc.start()
    if rss is not None and proc.pid is not None:
        rss.exclude.add(proc.pid)
    try:
        port = ready.get(timeout=60)
        yield type("Peer", (), {"port": port})()
    finally:
        proc.terminate()
        proc.join(10)


def _serve_sftp(workdir: str, ready: Any) -> None:
    from flows.demo import sftp_server

    with sftp_server(Path(workdir)) as srv:
        ready.put(srv.port)
        threading.Event().wait()  # until terminated


def one_size(args: argparse.Namespace, debtors: int, rss: PeakRss) -> dict[str, Any]:
    root = Path(args.workdir).resolve()
    tpl = template(root, debtors, args.months, args.statement_lines or 0, args.partitions)
    work = root / "run"
    cfg = fresh_copy(tpl, work, args.ledger_url)
    if args.ledger_url:
        _empty_pg(args.ledger_url)
    print(f"{debtors} debtors: first run", flush=True)
    with sftp_peer(work, rss) as srv:
        first = run_stages(cfg, srv.port, rss, bare=True)
        print(f"{debtors} debtors: the same day again", flush=True)
        second = run_stages(cfg, srv.port, rss, bare=False)
    stages = first["stages"]
    result: dict[str, Any] = {
        "debtors": debtors,
        "runner": f"{_runner(cfg)}",
        "stages": stages,
        "cycle_seconds": first["wall_seconds"],
        "stages_sum_seconds": round(sum(r["seconds"] for r in stages.values()), 2),
        "cycle_peak_mib": max(r["peak_mib"] for r in stages.values()),
        "second_run_seconds": second["wall_seconds"],
        "second_run_stages": {k: v["seconds"] for k, v in second["stages"].items()},
    }
    result["second_run_share"] = round(result["second_run_seconds"] / result["cycle_seconds"], 3)
    if args.prefect:
        result["prefect"] = _through_prefect(
            tpl, root / "run-prefect", args.ledger_url, rss, args.prefect_server
        )
        result["prefect"]["orchestration_share"] = round(
            max(result["prefect"]["seconds"] - result["cycle_seconds"], 0)
            / result["prefect"]["seconds"],
            3,
        )
    return result


def _runner(cfg: Path) -> str:
    from flows.context import make_ctx

    sc = make_ctx(str(cfg), NOW).cfg.scale
    return f"{sc.runner} x{sc.processes()}" if sc.runner == "processes" else sc.runner


def save_result(benchmark: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A benchmark's result as ``bench/results/<name>``: what ran, when, on which commit
    and machine, then ``fields``; the whole record, as written."""
    out = {
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "commit": commit_id(),
        "machine": machine(),
        **fields,
    }
    path = Path(__file__).parent / "results"
    path.mkdir(exist_ok=True)
    (path / name).write_text(json.dumps(out, indent=2) + "\n")
    return out


#: the local PostgreSQL server's maintenance database, to make and drop scratch ones
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


@contextmanager
def scratch_pg(prefix: str) -> Iterator[str]:
    """A fresh database on the local PostgreSQL for the block (its SQLAlchemy URL),
    dropped after it whatever happens."""
    import uuid

    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _empty_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()
    forget_engines(url)


@contextmanager
def prefect_api(server: str, workdir: Path) -> Iterator[str]:
    """Where the Prefect leg reports. ``ephemeral``: the temporary server Prefect starts
    for a process with no API URL (``vangnet demo``), on SQLite. ``postgresql``: a
    ``prefect server start`` on a scratch database of the local PostgreSQL, as
    docs/deployment.md §2 sets production up. Yields what it was."""
    if server == "ephemeral":
        yield "ephemeral (SQLite)"
        return
    from prefect.context import refresh_global_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bench.prefect_server import prefect_server

    with scratch_pg("bench_prefect") as url:
        db = url.replace("postgresql+psycopg2://", "postgresql+asyncpg://")
        with prefect_server(workdir / "prefect-server", db) as (port, _env):
            api = f"http://127.0.0.1:{port}/api"
            # in the environment, as a worker machine has it (deployments/worker.env.example),
            # and so in Prefect's process-wide settings: a thread that does not carry the
            # flow's settings (the pool's message forwarder, which hands on its workers'
            # events) read those, found no API URL, and started a temporary server
            os.environ["PREFECT_API_URL"] = api
            refresh_global_settings_context()
            try:
                with temporary_settings({PREFECT_API_URL: api}):
                    yield "prefect server start (PostgreSQL)"
                    # what the run logged, sent while its server still listens
                    APILogWorker.drain_all(timeout=10)
                    EventsWorker.drain_all(timeout=10)
            finally:
                del os.environ["PREFECT_API_URL"]
                refresh_global_settings_context()


def _through_prefect(
    tpl: Path, to: Path, ledger_url: str | None, rss: PeakRss, server: str = "ephemeral"
) -> dict[str, Any]:
    from prefect import flow

    from flows.cycle import daily_cycle

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        """Starts Prefect's local ephemeral server (or opens the first connection to the
        PostgreSQL-backed one), which a deployment's run never pays."""

    row: dict[str, Any] = {}
    with prefect_api(server, to.parent) as row["server"]:
        warm_up()
        cfg = fresh_copy(tpl, to, ledger_url)
        if ledger_url:
            _empty_pg(ledger_url)
        print(f"the whole cycle through Prefect, {row['server']}", flush=True)
        with sftp_peer(to, rss) as srv, _timed(rss, row):
            state = daily_cycle(str(cfg), NOW, srv.port, return_state=True)
        state.result()  # a failed cycle fails the bench, as it did without the state
        row["within_run"] = within_run(state.state_details.flow_run_id, row["seconds"])
    return row


#: the bank lane's tasks: beside the stages, not on the cycle's path (``bank_lane``)
BESIDE = ("fetch-statements",)


def _covered(spans: list[tuple[float, float]]) -> float:
    """The seconds that at least one of ``spans`` (start, end) covers."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def within_run(flow_run_id: Any, wall: float) -> dict[str, Any]:
    """Prefect's share read from the run itself: the cycle's wall time that no task run
    was running in (between a task's Running state and its end), stage by stage. Unlike
    the difference of two cycles, an hour's drift does not enter it; what it misses is
    Prefect slowing the work inside a task (its server's CPU, say), which that difference
    holds. The bank lane's tasks are left out: they run beside the stages, so time they
    cover on the cycle's path would hide orchestration there."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    with get_client(sync_client=True) as client:
        top = client.read_flow_run(flow_run_id)
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        runs = [top, *subflows]
        tasks: list[Any] = []
        while True:  # the API's pages hold at most 200
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in runs])),
                limit=200,
                offset=len(tasks),
            )
            tasks += page
            if len(page) < 200:
                break
    wrappers = {r.parent_task_run_id for r in subflows}  # a subflow's stand-in task run

    def span(run: Any) -> tuple[float, float] | None:
        if run.start_time is None or run.end_time is None:
            return None
        return run.start_time.timestamp(), run.end_time.timestamp()

    work: dict[Any, list[tuple[float, float]]] = {r.id: [] for r in runs}
    for t in tasks:
        sp = span(t)
        if t.id in wrappers or sp is None or t.name.startswith(BESIDE):
            continue
        work[t.flow_run_id].append(sp)
    stages: dict[str, dict[str, float]] = {}
    timed = [(sp, r) for r in subflows if (sp := span(r)) is not None]
    for sp, r in sorted(timed, key=lambda x: x[0]):
        covered = _covered(work[r.id])
        stages[r.name] = {
            "seconds": round(sp[1] - sp[0], 2),
            "in_tasks": round(covered, 2),
            "outside_tasks": round(sp[1] - sp[0] - covered, 2),
        }
    in_tasks = _covered([sp for spans in work.values() for sp in spans])
    # a task run created but not running for over a second, with nothing upstream to wait
    # for: an API call the server refused (503) and the client tried again 2 s later
    slow = {
        t.name: round(t.start_time.timestamp() - t.created.timestamp(), 2)
        for t in tasks
        if t.id not in wrappers
        and t.start_time is not None
        and t.created is not None
        and not t.task_inputs.get("wait_for")
        and t.start_time.timestamp() - t.created.timestamp() > 1.0
    }
    return {
        "in_tasks_seconds": round(in_tasks, 2),
        "outside_tasks_seconds": round(wall - in_tasks, 2),
        "share": round((wall - in_tasks) / wall, 3),
        "task_runs": sum(len(v) for v in work.values()),
        "stages": stages,
        "slow_starts": slow,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--debtors", type=int, default=250_000)
    ap.add_argument("--months", type=int, default=4, help="invoices per debtor")
    ap.add_argument("--statement-lines", type=int, default=None, help="default: 1.2 x debtors")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--scaling", action="store_true", help="also run half the portfolio")
    ap.add_argument("--prefect", action="store_true", help="also the whole cycle via Prefect")
    ap.add_argument("--ledger-url", default=None, help="e.g. postgresql+psycopg2://…/bench")
    ap.add_argument(
        "--prefect-server",
        choices=("ephemeral", "postgresql"),
        default="ephemeral",
        help="with --prefect: Prefect's temporary server (SQLite), or a server on the"
        " local PostgreSQL, as in production",
    )
    ap.add_argument("--workdir", default="var/bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.statement_lines is None:
        args.statement_lines = int(args.debtors * 1.2)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    commit = commit_id()  # the code the run starts with (a commit made meanwhile is not it)
    rss = PeakRss()
    sizes = [args.debtors // 2, args.debtors] if args.scaling else [args.debtors]
    runs = []
    for n in sizes:
        if args.scaling and n != args.debtors:
            saved = args.statement_lines
            args.statement_lines = saved // 2
            runs.append(one_size(args, n, rss))
            args.statement_lines = saved
        else:
            runs.append(one_size(args, n, rss))
    rss.stop()
    out: dict[str, Any] = {
        "benchmark": "cycle",
        "date": dt.date.today().isoformat(),
        "commit": commit if commit == commit_id() else f"{commit}+changed-during-run",
        "machine": machine(),
        "ledger": "postgresql" if args.ledger_url else "sqlite",
        "months": args.months,
        "runs": runs,
    }
    if len(runs) == 2:
        out["growth"] = round(runs[1]["cycle_seconds"] / runs[0]["cycle_seconds"], 2)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    # the commit in the name: two runs of the same size the same day keep both results
    name = f"cycle-{out['date']}-{args.debtors}-{out['ledger']}-{out['commit']}.json"
    (results / name).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out) if args.json else render(out))
    return out


def render(out: dict[str, Any]) -> str:
    lines = []
    for r in out["runs"]:
        lines.append(
            f"\n{r['debtors']:,} debtors ({out['ledger']} ledger, {out['machine']['cpus']} cores,"
            f" runner {r.get('runner', 'threads')})"
        )
        lines.append(
            f"{'stage':<11} {'seconds':>8} {'rows/s':>10} {'peak MiB':>9} {'bare s':>8} {'ratio':>6}"
            f" {'floor s':>8} {'ratio':>6}"
        )
        for name, s in r["stages"].items():
            lines.append(
                f"{name:<11} {s['seconds']:>8.2f} {s['rows_per_second'] or 0:>10,} {s['peak_mib']:>9,}"
                f" {s.get('bare_seconds', ''):>8} {s.get('ratio_to_bare', ''):>6}"
                f" {s.get('floor_seconds', ''):>8} {s.get('floor_ratio_to_bare', ''):>6}"
                + (f"  (beside {s['beside']})" if s.get("beside") else "")
            )
        lines.append(
            f"cycle {r['cycle_seconds']} s wall (stages add up to"
            f" {r.get('stages_sum_seconds', r['cycle_seconds'])} s), peak"
            f" {r['cycle_peak_mib']} MiB; the same day again {r['second_run_seconds']} s"
            f" ({r['second_run_share']:.0%})"
        )
        if "prefect" in r:
            p = r["prefect"]
            lines.append(
                f"through Prefect {p['seconds']} s: orchestration {p['orchestration_share']:.0%}"
                " against the cycle without it"
            )
            w = p.get("within_run")
            if w:
                lines.append(
                    f"within that run: {w['outside_tasks_seconds']} s outside its"
                    f" {w['task_runs']} task runs ({w['share']:.1%})"
                )
                lines += [
                    f"  {name:<28} {x['seconds']:>7.2f} s, {x['outside_tasks']:>5.2f} s outside tasks"
                    for name, x in w["stages"].items()
                ]
                if w.get("slow_starts"):
                    lines.append(
                        "  task runs that waited over a second to start: "
                        + ", ".join(f"{k} {v} s" for k, v in w["slow_starts"].items())
                    )
    if "growth" in out:
        lines.append(f"\n2x the portfolio: {out['growth']}x the time")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
