"""The production path, on this machine: `prefect server start` on loopback (PostgreSQL
when it runs here, else SQLite), `prefect --no-prompt deploy --all` from prefect.yaml,
the demo deployment run by a process worker, its run and artifacts opened in the
Prefect UI in headless Chromium (screenshots in tests/artifacts/), and the alert
automations reaching a notification block for a failed run and a stopped creditor."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.prefect_server import BIN, prefect_server
from flows.demo import seed
from tests.conftest import PG_HOST, PG_PORT, _fresh_pg_database, _listening

ROOT = Path(__file__).parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "ghp-not-a-real-token-7c1f"  # the git token's value: must never be stored
NOW = "2026-11-24T10:00:00+01:00"
pytestmark = [pytest.mark.e2e]


@contextlib.contextmanager
def _database(tmp: Path) -> Iterator[str]:
    if _listening(PG_HOST, PG_PORT):
        with _fresh_pg_database("prefect_ui") as name:
            yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    else:
        yield f"sqlite+aiosqlite:///{tmp / 'prefect.db'}"


class Server:
    def __init__(self, port: int, env: dict[str, str], tmp: Path) -> None:
        self.port, self.env, self.tmp = port, env, tmp
        self.api = f"http://127.0.0.1:{port}/api"

    def run(self, *args: str, timeout: float = 300) -> str:
        """A command line as an operator would type it, against this server."""
        done = subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.post(f"{self.api}{path}", json=body or {}, timeout=30)
        r.raise_for_status()
        return r.json()

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.api}{path}", timeout=30)
        r.raise_for_status()
        return r.json()

    def python(self, code: str) -> str:
        """In-process Prefect calls (blocks) against this server, in a clean process."""
        return self.run(str(BIN / "python"), "-c", code)

    def start_run(self, deployment: str, **parameters: Any) -> str:
        dep = self.get(f"/deployments/name/{deployment}")
        run = self.post(f"/deployments/{dep['id']}/create_flow_run", {"parameters": parameters})
        return str(run["id"])

    def work(self) -> None:
        """One polling round of a process worker: it runs what is scheduled and exits."""
        self.run(str(BIN / "prefect"), "worker", "start", "--pool", "vangnet-process", "--run-once")

    def state(self, run_id: str) -> str:
        return str(self.get(f"/flow_runs/{run_id}")["state_type"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("prefect-server")
    extra = {
        "VANGNET_HOME": str(ROOT),
        "VANGNET_GIT_URL": "https://git.example.nl/vangnet/vangnet.git",
    }
    with _database(tmp) as db, prefect_server(tmp, db, extra) as (port, env):
        yield Server(port, env, tmp)


@pytest.fixture(scope="module")
def deployed(server: Server) -> Server:
    server.run(str(BIN / "prefect"), "work-pool", "create", "vangnet-process", "--type", "process")
    server.python(
        "from prefect.blocks.system import Secret;"
        f"Secret(value={TOKEN!r}).save('vangnet-git-token')"
    )
    server.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all")
    return server


def test_deploy_all_registers_every_deployment_as_written(deployed: Server) -> None:
    found = {d["name"]: d for d in deployed.post("/deployments/filter")}
    assert set(found) == {
        "demo",
        "woonstichting-noord-daily-cycle",
        "woonstichting-noord-intraday-reconcile",
        "woonstichting-noord-debt-help",
        "woonstichting-noord-data-quality",
    }
    daily = found["woonstichting-noord-daily-cycle"]
    assert daily["work_pool_name"] == "vangnet-process"
    assert {"vangnet", "creditor:woonstichting-noord", "daily"} <= set(daily["tags"])
    assert daily["parameters"] == {
        "creditor_file": "deployments/creditors/woonstichting-noord.yaml"
    }
    (sched,) = daily["schedules"]
    assert sched["schedule"]["cron"] == "15 6 * * *"
    assert sched["schedule"]["timezone"] == "Europe/Amsterdam" and sched["active"] is False
    intraday = found["woonstichting-noord-intraday-reconcile"]["schedules"][0]["schedule"]
    assert intraday["cron"] == "0 9-17/2 * * 1-5"
    # the secret stays a reference in the stored deployment, resolved only in the run
    stored = json.dumps(daily["pull_steps"])
    assert "{{ prefect.blocks.secret.vangnet-git-token }}" in stored and TOKEN not in stored
    assert TOKEN not in json.dumps(list(found.values()))
    assert found["demo"]["schedules"][0]["active"] is True


def _artifact(server: Server, key: str) -> dict[str, Any]:
    found = server.post(
        "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"}
    )
    assert found, f"no artifact {key}"
    return found[0]  # type: ignore[no-any-return]


def test_the_demo_runs_through_a_worker_and_shows_in_the_ui(
    deployed: Server, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    run_id = deployed.start_run(
        "demo-cycle/demo", workdir=str(tmp_path / "demo"), debtors=150, now=NOW
    )
    deployed.work()
    assert deployed.state(run_id) == "COMPLETED"
    cycles = deployed.post(
        "/flow_runs/filter",
        {"flow_runs": {"name": {"any_": ["daily-cycle-demo-woonstichting-2026-11-24"]}}},
    )
    assert len(cycles) == 1 and cycles[0]["state_type"] == "COMPLETED"
    assert {"vangnet", "creditor:demo-woonstichting"} <= set(cycles[0]["tags"])
    summary = _artifact(deployed, "cycle-demo-woonstichting")
    assert "# Daily cycle demo-woonstichting 2026-11-24" in summary["data"]

    ARTIFACTS.mkdir(exist_ok=True)
    ui = f"http://127.0.0.1:{deployed.port}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})

            def shows(path: str, *texts: str, shot: str) -> None:
                page.goto(f"{ui}{path}", timeout=60_000)
                try:
                    for text in texts:
                        page.get_by_text(text).first.wait_for(timeout=60_000)
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "prefect-ui-failure.png"), full_page=True)
                    raise AssertionError(
                        f"{path}: {texts} not shown; the page says:\n{page.inner_text('body')[:2000]}"
                    ) from None
                page.screenshot(path=str(ARTIFACTS / f"prefect-ui-{shot}.png"), full_page=True)

            shows(
                f"/runs/flow-run/{cycles[0]['id']}",
                "daily-cycle-demo-woonstichting-2026-11-24",
                "Completed",
                shot="flow-run",
            )
            shows(
                f"/artifacts/artifact/{summary['id']}",
                "Daily cycle demo-woonstichting 2026-11-24",
                "contacts planned",
                shot="cycle-summary",
            )
            segments = _artifact(deployed, "segments-demo-woonstichting")
            shows(f"/artifacts/artifact/{segments['id']}", "cant_pay", shot="segments")
        finally:
            browser.close()
    for name in ("flow-run", "cycle-summary", "segments"):
        assert (ARTIFACTS / f"prefect-ui-{name}.png").stat().st_size > 20_000


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_alerts_for_a_failed_run_and_a_stopped_creditor(deployed: Server, tmp_path: Path) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        deployed.python(
            "from prefect.blocks.notifications import CustomWebhookNotificationBlock as C;"
            f"C(name='ops', url={url!r}, allow_private_urls=True,"
            " json_data={'subject': '{{subject}}', 'body': '{{body}}'}).save('ops-alerts')"
        )
        out = deployed.run(
            str(BIN / "vangnet"), "automations", "install", "--notify", "custom-webhook/ops-alerts"
        )
        assert out.count("created") == 4
        again = deployed.run(
            str(BIN / "vangnet"), "automations", "install", "--notify", "custom-webhook/ops-alerts"
        )
        assert again.count("replaced") == 4  # idempotent: one automation per name

        # a broken export: every invoice in an unknown currency, so contact stops
        broken = tmp_path / "broken"
        seed(broken, 120, dt.date(2026, 11, 24))
        with sqlite3.connect(broken / "erp.sqlite") as erp:
            erp.execute("UPDATE facturen SET valuta = 'XXX'")
        stopped = deployed.start_run("demo-cycle/demo", workdir=str(broken), debtors=120, now=NOW)
        failing = deployed.start_run(
            "demo-cycle/demo", workdir="/dev/null/nowhere", debtors=120, now=NOW
        )
        deployed.work()
        assert deployed.state(stopped) == "COMPLETED"
        assert deployed.state(failing) in ("FAILED", "CRASHED")

        deadline = time.time() + 90
        while time.time() < deadline and len(_Hook.received) < 2:
            time.sleep(1)
        subjects = [m["subject"] for m in _Hook.received]
        assert any("contact stopped for Woonstichting De Vang" in s for s in subjects), subjects
        assert any(s.startswith("vangnet: demo-cycle-120") for s in subjects), subjects
        stop = next(m for m in _Hook.received if "contact stopped" in m["subject"])
        assert "vangnet creditor resume" in stop["body"] and "2026-11-24" in stop["body"]
    finally:
        hook.shutdown()
