"""prefect.yaml: every deployment points at a real flow that takes its parameters, on a
valid schedule in Europe/Amsterdam and the documented work pool."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml
from prefect.client.schemas.schedules import CronSchedule

ROOT = Path(__file__).parents[2]


def test_every_deployment_resolves_to_a_flow_taking_its_parameters() -> None:
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = [d["name"] for d in doc["deployments"]]
    assert len(names) == len(set(names))
    kinds = set()
    for d in doc["deployments"]:
        path, func = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        kinds.add(flow.name)
        params = inspect.signature(flow.fn).parameters
        assert set(d.get("parameters") or {}) <= set(params), d["name"]
        for sched in d["schedules"]:
            assert sched["timezone"] == "Europe/Amsterdam"
            CronSchedule(cron=sched["cron"], timezone=sched["timezone"])  # raises when invalid
        assert d["work_pool"]["name"] == "vangnet-process"
        assert any(t.startswith("creditor:") for t in d["tags"])
    assert {"daily-cycle", "intraday-reconcile", "debt-help-daily", "data-quality-report"} <= kinds
