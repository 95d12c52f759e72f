"""`prefect server start` on a free loopback port: for the tests that need the real API
server (the production path, kills under the Prefect engine), and for the bench's
Prefect leg on a PostgreSQL-backed server (``bench.cycle --prefect-server postgresql``).
Here, not under tests/, so that ``vangnet bench`` finds it wherever it runs."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_server(
    tmp: Path, database_url: str, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """A Prefect server on its own database; yields its port and the environment a
    client (a worker, the CLI, a flow run) uses to reach it."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and k not in ("PYTEST_CURRENT_TEST",)
    }
    env.update(
        PREFECT_HOME=str(tmp / "home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_API_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        **(extra_env or {}),
    )
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"prefect server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield port, env
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
