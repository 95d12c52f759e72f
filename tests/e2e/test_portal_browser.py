"""The self-service page in a real browser: Debian's Chromium driven by Playwright opens
the link from a demo message, picks a preferred day on a phone-sized screen, submits,
and the choice is in the ledger and, after the write-back, in the demo ERP. Screenshots
(phone and desktop) are saved to tests/artifacts/."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from portal.app import create_app
from tests.cycle_steps import up_to_plan
from tests.integration.portal.test_portal import Served
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
pytestmark = [pytest.mark.e2e]


def test_a_debtor_picks_a_preferred_day_in_the_browser(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    cfg = seed(tmp_path / "demo", 120, NOW.date())
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    stages.send_channel(ctx, "email")
    message = next((tmp_path / "demo" / "outbox" / "email").glob("*/*.txt"))
    head, body = message.read_text().split("\n\n", 1)
    link = re.findall(r"https?://\S+/r/[A-Za-z0-9_.-]+", body)[0]
    with ctx.engine.connect() as conn:
        debtor = conn.execute(
            select(s.contacts.c.debtor_id).where(
                s.contacts.c.message_id == json.loads(head)["message_id"]
            )
        ).scalar()
    ARTIFACTS.mkdir(exist_ok=True)
    with Served(create_app([str(cfg)], NOW.isoformat())) as served, sync_playwright() as pw:
        url = re.sub(r"^https?://[^/]+", f"http://127.0.0.1:{served.port}", link)
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ],
        )
        try:
            desktop = browser.new_page(viewport={"width": 1280, "height": 900})
            desktop.goto(url)
            desktop.screenshot(path=str(ARTIFACTS / "portal-desktop.png"), full_page=True)
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(url)
            assert "Uw betalingen" in phone.title()
            phone.screenshot(path=str(ARTIFACTS / "portal-phone.png"), full_page=True)
            phone.select_option("select[name=day]", "26")
            phone.click("form[action$='/day'] button")
            phone.wait_for_load_state()
            assert "Dank u wel" in phone.content()
            phone.screenshot(path=str(ARTIFACTS / "portal-phone-confirmed.png"))
        finally:
            browser.close()
    with ctx.engine.connect() as conn:
        day = conn.execute(
            select(s.preferences.c.preferred_day).where(s.preferences.c.debtor_id == debtor)
        ).scalar()
    assert day == 26
    stages.write_back(ctx)  # what the reconciliation flow does next
    with sqlite3.connect(tmp_path / "demo" / "erp.sqlite") as erp:
        in_erp = erp.execute(
            "SELECT voorkeursdag FROM relaties WHERE relatienr = ?", (debtor,)
        ).fetchone()
    assert in_erp == (26,)
    assert (ARTIFACTS / "portal-phone.png").stat().st_size > 1000
    shutil.copy(ARTIFACTS / "portal-phone.png", tmp_path / "portal-phone.png")
