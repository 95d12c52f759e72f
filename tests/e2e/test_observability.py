"""What operations see in the Prefect UI after a cycle: a run name with creditor and
date, tags, a table per stage, a markdown summary and progress that reached 100%."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterName,
)

from .conftest import MORNING
from .test_daily_cycle import run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


async def _latest(key: str) -> Any:
    async with get_client() as client:
        found = await client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return found[0]


async def _runs(name: str) -> list[Any]:
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )


def test_a_cycle_leaves_named_runs_and_artifacts(demo_dir: Path) -> None:
    with tags("vangnet", "creditor:demo-woonstichting"):
        result = run(demo_dir, MORNING)
    creditor = result["creditor"]

    runs = asyncio.run(_runs(f"daily-cycle-{creditor}-2026-11-24"))
    assert len(runs) == 1 and runs[0].state.is_completed()
    assert {"vangnet", f"creditor:{creditor}"} <= set(runs[0].tags)

    summary = asyncio.run(_latest(f"cycle-{creditor}"))
    assert summary.type == "markdown"
    assert f"# Daily cycle {creditor} 2026-11-24" in summary.data
    assert f"{result['plan']['planned']} contacts planned" in summary.data

    for stage in ("ingest", "assess", "plan", "send"):
        progress = asyncio.run(_latest(f"{stage}-progress-{creditor}"))
        assert progress.type == "progress" and float(progress.data) == 100.0, stage

    segments = asyncio.run(_latest(f"segments-{creditor}"))
    table = json.loads(segments.data) if isinstance(segments.data, str) else segments.data
    assert sum(r["debtors"] for r in table) == result["assess"]["debtors"]
    for stage in ("ingest", "validate", "reconcile", "plan", "send", "write-back", "debt-help"):
        assert asyncio.run(_latest(f"{stage}-{creditor}")).type == "table", stage
