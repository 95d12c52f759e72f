"""What a task sees in a worker of the cycle's process pool (importable by a spawned
worker: ``tests/e2e/test_scale_out.py``)."""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, task
from prefect.settings import PREFECT_API_URL

from flows.cycle import CyclePool, _api_url


@task(name="probe")
def probe(i: int) -> dict[str, Any]:
    time.sleep(0.2)  # long enough for the pool to spread the tasks over its workers
    return {"i": i, "pid": os.getpid(), "api": PREFECT_API_URL.value()}


@flow(name="probe-inner", task_runner=CyclePool(max_workers=2))
def inner() -> list[dict[str, Any]]:
    return [f.result() for f in [probe.submit(i) for i in range(4)]]


@flow(name="probe-outer")
def outer() -> dict[str, Any]:
    with CyclePool(max_workers=2) as pool:
        mine = [pool.submit(probe, {"i": i}) for i in range(4)]
        first = [f.result() for f in mine]
        borrowed = inner()
        pool.close_soon()  # as the cycle does after plan
        beside = inner()  # the pool is closing: the subflow starts one of its own
    alone = inner()  # no pool running: the subflow starts one of its own
    return {
        "pid": os.getpid(),
        "api": _api_url(),
        "first": first,
        "borrowed": borrowed,
        "beside": beside,
        "alone": alone,
        "closed": [not _alive(r["pid"]) for r in first],
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":  # ``python -m tests.e2e.pool_probe``: in Prefect's ephemeral mode
    import json

    print("PROBE " + json.dumps(outer()))
