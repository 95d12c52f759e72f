"""What operations see in the Prefect UI after a cycle: a run name with creditor and
date, tags, a table per stage, a markdown summary and progress that reached 100%."""

from __future__ import annotations

import asyncio
import json
import uuid
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
    FlowRunFilterTags,
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


async def _runs(name: str, tag: str) -> list[Any]:
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name]), tags=FlowRunFilterTags(all_=[tag])
            )
        )


def test_a_cycle_leaves_named_runs_and_artifacts(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_engine import FlowRunEngine

    beating: list[str] = []  # the flow runs that sent a heartbeat
    send = FlowRunEngine._emit_flow_run_heartbeat

    def heartbeat(engine: Any, *args: Any, **kwargs: Any) -> None:
        beating.append(engine.flow_run.name)
        send(engine, *args, **kwargs)

    monkeypatch.setattr(FlowRunEngine, "_emit_flow_run_heartbeat", heartbeat)
    mine = f"test-{uuid.uuid4().hex[:8]}"  # other tests run the same creditor and day
    with tags(mine):
        result = run(demo_dir, MORNING)
    creditor = result["creditor"]

    runs = asyncio.run(_runs(f"daily-cycle-{creditor}-2026-11-24", mine))
    assert len(runs) == 1 and runs[0].state.is_completed()
    # the cycle's own run sends heartbeats (zombie detection), its stages' subflows not:
    # each would wait up to a second for its heartbeat thread (subflows_without_heartbeats)
    assert set(beating) == {runs[0].name}
    # every stage carries the creditor's tags (a deployment's tags reach only its top run)
    for stage in ("ingest", "validate", "assess", "plan", "send", "write-back"):
        (sub,) = asyncio.run(_runs(f"{stage}-{creditor}", mine))
        assert {"vangnet", f"creditor:{creditor}"} <= set(sub.tags), stage

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


async def _logs_and_artifacts() -> str:
    from prefect.client.schemas.filters import LogFilter

    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(), limit=200)
        offset, texts = 0, [entry.message for entry in logs]
        while len(logs) == 200:
            offset += 200
            logs = await client.read_logs(log_filter=LogFilter(), limit=200, offset=offset)
            texts += [entry.message for entry in logs]
        artifacts = await client.read_artifacts()
    return "\n".join(texts + [json.dumps(a.data, default=str) for a in artifacts])


def test_logs_and_artifacts_carry_ids_not_names_ibans_emails_or_phones(demo_dir: Path) -> None:
    import sqlite3

    run(demo_dir, MORNING)
    with sqlite3.connect(demo_dir / "erp.sqlite") as erp:
        people = erp.execute("SELECT naam, email, iban, telefoon FROM relaties").fetchall()
    seen = asyncio.run(_logs_and_artifacts())
    assert "demo-woonstichting" in seen  # the logs and artifacts were read
    phones = [f"+31{p[1:]}" for *_, p in people if p]  # as the ledger keeps them (E.164)
    values = [v for row in people for v in row if v] + phones
    leaked = [v for v in values if len(v) > 5 and v in seen]
    assert not leaked, leaked[:5]
