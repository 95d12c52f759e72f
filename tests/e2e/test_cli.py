"""The `vangnet` command as an operator runs it (a real process, Prefect ephemeral)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VANGNET = [sys.executable, "-m", "flows.cli"]


def vangnet(*args: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [*VANGNET, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.e2e
def test_demo_twice_contacts_nobody_again(tmp_path: Path) -> None:
    wd = tmp_path / "demo"
    first = vangnet(
        "demo",
        "--workdir",
        str(wd),
        "--debtors",
        "120",
        "--json",
        "--now",
        "2026-11-24T10:00",
        home=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    s1 = json.loads(first.stdout.strip().splitlines()[-1])
    assert {"debtors", "invoices", "quarantined", "messages_sent", "write_backs"} <= set(s1)
    assert s1["debtors"] > 100 and s1["invoices"] > 1000 and s1["quarantined"] > 0
    assert sum(s1["messages_sent"].values()) > 0 and s1["write_backs"] > 0
    assert "Traceback" not in first.stderr
    second = vangnet(
        "demo", "--workdir", str(wd), "--json", "--now", "2026-11-24T11:00", home=tmp_path
    )
    assert second.returncode == 0, second.stderr[-3000:]
    s2 = json.loads(second.stdout.strip().splitlines()[-1])
    assert s2["messages_sent"] == {"email": 0, "sms": 0, "letter": 0}
    assert s2["write_backs"] == 0
    assert s2["debtors"] == s1["debtors"] and s2["invoices"] == s1["invoices"]


def test_a_broken_config_is_refused_with_field_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "creditor.yaml"
    bad.write_text(
        "creditor: {id: X, name: n, sector: housing}\nbranding: {}\nsources: {}\nchannels: {}\n"
    )
    r = vangnet("run", "--creditor", str(bad), home=tmp_path)
    assert r.returncode == 2
    assert "creditor.id: use 2-63 lowercase letters" in r.stderr
    assert "branding.display_name: Field required - add this field" in r.stderr


def test_statements_parse_prints_one_json_object_per_entry(corpus: Path, tmp_path: Path) -> None:
    r = vangnet("statements", "parse", str(corpus / "oca-test-camt053.xml"), home=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 4 and rows[3]["amount"] == "1405.31" and rows[0]["currency"] == "EUR"
    broken = tmp_path / "x.xml"
    broken.write_text("<Document><oops></Document>")
    r = vangnet("statements", "parse", str(broken), home=tmp_path)
    assert r.returncode == 1 and "x.xml: line 1" in r.stderr


def test_reference_and_fee_commands(tmp_path: Path) -> None:
    assert vangnet("reference", "check", "5000056789012345", home=tmp_path).returncode == 0
    assert vangnet("reference", "check", "6000056789012345", home=tmp_path).returncode == 1
    new = vangnet("reference", "new", "56789012345", home=tmp_path)
    assert new.stdout.strip() == "5000056789012345"
    fee = vangnet("fees", "wik", "2500", home=tmp_path)
    assert json.loads(fee.stdout) == {"principal": "2500.00", "collection_costs": "375.00"}
