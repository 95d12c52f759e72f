"""A Kennisgeving that reaches the Schuldenknooppunt while the daily cycle is already
running still stops every pending contact for that debtor in that same cycle: the
cycle takes a last look at the hub right before sending. Through Prefect, with the
SOAP adapter against the loopback hub (mutual TLS)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from flows.context import make_ctx
from flows.cycle import daily_cycle
from flows.demo import sftp_server
from ledger import schema as s
from tests.fakes.https import make_ca, make_client_cert
from tests.fakes.schuldenknooppunt import HubServer, bericht, exchange_config

from .conftest import MORNING

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_kennisgeving_arriving_mid_cycle_stops_contact_that_cycle(
    demo_dir: Path, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path / "pki")
    cert, key = make_client_cert(ca, tmp_path / "pki")
    with HubServer(ca) as hub:
        cfg = demo_dir / "creditor.yaml"
        doc = yaml.safe_load(cfg.read_text())
        doc["debt_help"]["exchange"] = exchange_config(hub, ca, cert, key)
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))

        def run(now: dt.datetime) -> dict:
            with sftp_server(demo_dir) as srv:
                return daily_cycle(str(cfg), now.isoformat(), srv.port)

        evening = run(MORNING.replace(hour=21))  # plans, sends nothing after 20:00
        assert evening["plan"]["planned"] > 0
        ctx = make_ctx(str(cfg))
        with ctx.engine.connect() as conn:
            debtor = conn.execute(
                select(s.contacts.c.debtor_id)
                .where(s.contacts.c.status == "planned")
                .order_by(s.contacts.c.debtor_id)
                .limit(1)
            ).scalar()
        # the counsellor sends it while the next morning's cycle has already fetched
        hub.hub.put(
            "KG-MID",
            bericht("KG-MID", "Kennisgeving", "2026-11-25", client=debtor),
            after_fetch=hub.hub.fetches + 1,
        )
        morning = run(MORNING + dt.timedelta(days=1))

    assert morning["debt_help"]["holds"] == 0  # not there yet at the start of the cycle
    assert morning["debt_help_last_look"]["holds"] == 1
    assert morning["debt_help_last_look"]["cancelled_contacts"] >= 1
    assert sum(r["sent"] for r in morning["send"].values()) > 0  # everyone else is reached
    with ctx.engine.connect() as conn:
        statuses = set(
            conn.execute(
                select(s.contacts.c.status).where(s.contacts.c.debtor_id == debtor)
            ).scalars()
        )
    assert statuses == {"cancelled"}
    assert hub.hub.confirmed[-1] == "KG-MID"
    answered = [b.findtext("{*}InAntwoordOp") for b in hub.hub.answers.values()]
    assert "KG-MID" in answered
