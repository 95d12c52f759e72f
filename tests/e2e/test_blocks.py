"""`vangnet blocks register`: the Secret blocks a creditor file names are created on the
Prefect server from VANGNET_SECRET_* variables or key files, never printed, and the
cycle then reads its secrets from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from typer.testing import CliRunner

from flows.cli import app
from flows.doctor import run_checks

from .conftest import MORNING
from .test_daily_cycle import run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_register_from_env_and_files_then_the_cycle_uses_them(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = demo_dir / "creditor.yaml"
    text = cfg.read_text()
    text = text.replace(
        "private_key: {file: keys/client_ed25519}", "private_key: {block: demo-t1-bank-sftp-key}"
    ).replace("secret: {file: keys/self_service.key}", "secret: {block: demo-t1-self-service}")
    assert text.count("{block: demo-t1-") == 2
    cfg.write_text(text)
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(demo_dir / "keys" / "client_ed25519", keys / "demo-t1-bank-sftp-key")
    signing = (demo_dir / "keys" / "self_service.key").read_text()
    runner = CliRunner()
    args = ["blocks", "register", "--creditor", str(cfg), "--json"]

    # nothing to take the values from yet: both named, both missing, exit 1
    first = runner.invoke(app, args)
    assert first.exit_code == 1
    assert {r["status"] for r in json.loads(first.output)} == {"missing"}
    assert "VANGNET_SECRET_DEMO_T1_SELF_SERVICE" in first.output

    monkeypatch.setenv("VANGNET_SECRET_DEMO_T1_SELF_SERVICE", signing)
    second = runner.invoke(app, [*args, "--from-dir", str(keys)])
    assert second.exit_code == 0, second.output
    rows = {r["block"]: r for r in json.loads(second.output)}
    assert rows["demo-t1-self-service"]["status"] == "created"
    assert rows["demo-t1-self-service"]["field"] == "self_service.secret"
    assert rows["demo-t1-bank-sftp-key"]["status"] == "created"
    assert rows["demo-t1-bank-sftp-key"]["field"] == "sources.bank.private_key"
    assert signing not in second.output and "PRIVATE KEY" not in second.output
    assert Secret.load("demo-t1-self-service").get() == signing

    third = runner.invoke(app, args)
    assert {r["status"] for r in json.loads(third.output)} == {"present"}

    # the doctor finds them, and the cycle reads the SFTP key and the signing key from them
    checks = {c.component: c for c in run_checks(cfg)}
    assert checks["secret sources.bank.private_key"].status == "ok"
    assert (
        "block:demo-t1-bank-sftp-key resolves" in checks["secret sources.bank.private_key"].detail
    )
    result = run(demo_dir, MORNING)
    assert result["reconcile"]["payments"] > 0 and result["plan"]["planned"] > 0
