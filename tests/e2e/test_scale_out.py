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
        cfg.read_text().replace(str(demo_dir), str(on_dask))
        + f"\nscale:\n  runner: dask\n  dask_address: {dask_cluster}\n"
    )
    runner = task_runner(make_ctx(str(cfg), MORNING))
    assert type(runner).__name__ == "DaskTaskRunner"

    distributed = pytest.importorskip("distributed")
    threads = run(demo_dir, MORNING)
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
    cfg.write_text(cfg.read_text() + "\nscale: {runner: dask, dask_address_env: VANGNET_DASK}\n")
    ctx = make_ctx(str(cfg), MORNING)
    with pytest.raises(ValueError, match="VANGNET_DASK is not set"):
        task_runner(ctx)
    monkeypatch.setenv("VANGNET_DASK", "tcp://127.0.0.1:8786")
    assert task_runner(make_ctx(str(cfg), MORNING)).address == "tcp://127.0.0.1:8786"
