"""The deployments beside the daily cycle, through Prefect on the demo creditor: the
intraday reconciliation, the daily Schuldenknooppunt round and the weekly data-quality
report."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cycle import daily_cycle, data_quality_report, debt_help_daily, intraday_reconcile
from flows.demo import sftp_server

from .conftest import MORNING

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_intraday_debt_help_and_data_quality_flows(demo_dir: Path) -> None:
    cfg = str(demo_dir / "creditor.yaml")
    with sftp_server(demo_dir) as srv:
        # a statement read before the ERP: nothing fits yet, nothing is lost
        early = intraday_reconcile(cfg, MORNING.isoformat(), srv.port)
        assert early["reconcile"]["files"][0]["files"] == 1 and early["reconcile"]["matched"] == 0
        cycle = daily_cycle(cfg, MORNING.isoformat(), srv.port)
        assert cycle["reconcile"]["matched"] > 0  # tried again once the invoices are known
        again = intraday_reconcile(cfg, MORNING.isoformat(), srv.port)
    assert again["reconcile"]["files"][0]["files"] == 0 and again["write_back"]["applied"] == 0
    hub = debt_help_daily(cfg, MORNING.isoformat())
    assert hub["fetched"] == 0 and hub["route"] == "PortalExchange"  # the cycle fetched already
    dq = data_quality_report(cfg, MORNING.isoformat())
    assert dq["open_failures"] > 0
    assert {"entity", "rule", "open"} <= set(dq["by_rule"][0])
