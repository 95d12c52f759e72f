"""Scale-out: the partitioned stages on a Dask cluster (prefect-dask) leave the same
ledger as Prefect's thread pool."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.context import make_ctx
from flows.cycle import task_runner
from tests.crash import harness as h

from .conftest import MORNING
from .test_daily_cycle import run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def ledger_dump(demo: Path) -> dict[str, list[tuple[str, ...]]]:
    return h.ledger_dump(f"sqlite:///{demo / 'ledger.sqlite'}")


def _task_keys(dask_scheduler: Any) -> set[str]:
    return {str(e[0]) for e in dask_scheduler.transition_log}


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_cluster_gives_the_same_ledger_as_the_thread_pool(
    demo_dir: Path, tmp_path: Path, dask_cluster: str
) -> None:
    on_dask = tmp_path / "on-dask"
    shutil.copytree(demo_dir, on_dask)
    cfg = on_dask / "creditor.yaml"
    cfg.write_text(
        cfg.read_text()
        .replace(str(demo_dir), str(on_dask))
        .replace("  runner: threads", f"  runner: dask\n  dask_address: {dask_cluster}")
    )
    runner = task_runner(make_ctx(str(cfg), MORNING))
    assert type(runner).__name__ == "DaskTaskRunner"

    distributed = pytest.importorskip("distributed")
    threads = run(demo_dir, MORNING)  # the small demo creditor: threads
    with distributed.Client(dask_cluster) as client:
        before = client.run_on_scheduler(_task_keys)
        dask = run(on_dask, MORNING)
        ran = client.run_on_scheduler(_task_keys) - before
    # the partition tasks really ran on the cluster: one per partition, assess and plan
    assert sum("assess" in k for k in ran) == 4 and sum("plan" in k for k in ran) == 4

    assert dask["assess"] == threads["assess"] and dask["plan"]["planned"] > 0
    assert dask["plan"]["by_step"] == threads["plan"]["by_step"]
    a, b = ledger_dump(demo_dir), ledger_dump(on_dask)
    for name in h.LEDGER_TABLES:
        assert a[name] == b[name], f"{name} differs between the thread pool and Dask"
    assert len(a["segments"]) > 100 and len(a["contacts"]) > 0


def test_dask_runner_reads_its_address_from_the_environment(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = demo_dir / "creditor.yaml"
    cfg.write_text(
        cfg.read_text().replace(
            "  runner: threads", "  runner: dask\n  dask_address_env: VANGNET_DASK"
        )
    )
    ctx = make_ctx(str(cfg), MORNING)
    with pytest.raises(ValueError, match="VANGNET_DASK is not set"):
        task_runner(ctx)
    monkeypatch.setenv("VANGNET_DASK", "tcp://127.0.0.1:8786")
    assert task_runner(make_ctx(str(cfg), MORNING)).address == "tcp://127.0.0.1:8786"


def test_the_process_pool_gives_the_same_ledger_as_the_thread_pool(
    demo_dir: Path, tmp_path: Path
) -> None:
    """The default runner (``processes``): the bank lane beside ingest and validate, the
    partitions over the workers; the same cycle as one thread of work does, row by row.
    (The small demo creditor says ``threads``: ``flows.demo.demo_runner``.)"""
    from flows.config import ScaleSettings
    from flows.demo import demo_runner

    assert ScaleSettings().runner == "processes"  # a creditor that says nothing
    assert demo_runner(160)[0] == "threads" and demo_runner(250_000)[0] == "processes"
    on_threads = tmp_path / "on-threads"
    shutil.copytree(demo_dir, on_threads)
    cfg = on_threads / "creditor.yaml"
    cfg.write_text(cfg.read_text().replace(str(demo_dir), str(on_threads)))
    assert type(task_runner(make_ctx(str(cfg), MORNING))).__name__ == "ThreadPoolTaskRunner"
    pooled_cfg = demo_dir / "creditor.yaml"
    pooled_cfg.write_text(pooled_cfg.read_text().replace("runner: threads", "runner: processes"))
    assert make_ctx(str(pooled_cfg), MORNING).cfg.scale.runner == "processes"

    pooled = run(demo_dir, MORNING)
    threads = run(on_threads, MORNING)
    assert pooled["reconcile"]["files"][0]["entries"] > 0  # the lane fetched the statement
    assert pooled["reconcile"]["matched"] == threads["reconcile"]["matched"] > 0
    assert pooled["assess"] == threads["assess"]
    assert pooled["plan"]["by_step"] == threads["plan"]["by_step"]
    a, b = ledger_dump(demo_dir), ledger_dump(on_threads)
    for name in h.LEDGER_TABLES:
        assert a[name] == b[name], f"{name} differs between the process pool and the threads"
    assert len(a["segments"]) > 100 and len(a["payments"]) > 0


def test_workers_report_to_the_ephemeral_server_of_the_flow(tmp_path: Path) -> None:
    """The cycle's pool, as a deployment-less run has it (``vangnet demo``, the bench):
    without an API URL Prefect runs a temporary server for the flow, and the pool's
    workers report to it instead of starting one each. Tasks run in worker processes; a
    subflow's pool borrows the running one's workers (no second pool); with no pool
    running, or the cycle's closing (``CyclePool.close_soon``), a subflow starts one of
    its own; leaving the cycle's pool waits for its closing (``tests/e2e/pool_probe.py``)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.pool_probe"],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("PROBE ", 1)[1])
    first = {r["pid"] for r in out["first"]}
    borrowed = {r["pid"] for r in out["borrowed"]}
    alone = {r["pid"] for r in out["alone"]}
    assert out["pid"] not in first | borrowed | alone
    assert len(first) == 2 and borrowed <= first  # the same two workers
    assert alone.isdisjoint(first)  # a pool of its own, once the cycle's was closed
    beside = {r["pid"] for r in out["beside"]}
    assert beside.isdisjoint(first)  # a pool of its own while the cycle's closes
    assert out["closed"] == [True] * 4  # leaving the block waited for the closing
    assert out["api"] and out["api"].startswith("http://127.0.0.1:")
    seen = {r["api"] for r in out["first"] + out["borrowed"] + out["beside"] + out["alone"]}
    assert seen == {out["api"]}
    assert (done.stdout + done.stderr).count("Starting temporary server") == 1


def _orphan(ready: Any) -> None:
    """A process that starts a watched worker, says its pid, and dies without a word."""
    import multiprocessing
    import os

    child = multiprocessing.get_context("spawn").Process(target=_watched, args=(os.getpid(),))
    child.start()
    ready.put(child.pid)
    ready.close()
    ready.join_thread()  # the pid written before the exit (put hands it to a thread)
    os._exit(9)  # as a killed flow-run process would: no clean-up, no pool shutdown


def _watched(parent: int) -> None:
    from flows.cycle import exit_with_parent

    exit_with_parent(parent, every=0.05)
    import time

    time.sleep(60)  # a task still running when its cycle's process is gone


def test_a_worker_exits_when_its_cycle_process_is_gone() -> None:
    import multiprocessing
    import os
    import time

    mp = multiprocessing.get_context("spawn")
    ready = mp.Queue()
    parent = mp.Process(target=_orphan, args=(ready,))
    parent.start()
    child = ready.get(timeout=60)
    parent.join(30)
    deadline = time.monotonic() + 20
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            os.kill(child, 0)
            with open(f"/proc/{child}/stat") as fh:  # a zombie has exited already
                alive = fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            alive = False
        time.sleep(0.05)
    assert not alive, "the worker outlived the process that started it"
