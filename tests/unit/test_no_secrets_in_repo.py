"""No secret is committed: every file git tracks is scanned for private keys and for
the shapes of the providers' credentials, and every creditor configuration in the
repository names its secrets (``{env: ...}``, ``{block: ...}``, ``{file: ...}``) instead
of holding them. The test doubles' made-up keys (``SG.test-key``) have none of the
real shapes; a real one pasted by mistake fails here before it lands."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
SHAPES = {
    "private key": re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "SendGrid API key": re.compile(rb"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    "MessageBird live key": re.compile(rb"\blive_[A-Za-z0-9]{25}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "AWS access key": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
    "Salesforce session id": re.compile(rb"\b00D[A-Za-z0-9]{12}![A-Za-z0-9_.]{40,}"),
    "JWT": re.compile(rb"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}"),
}
SECRET_KEYS = re.compile(r"(password|secret|token|api_key|private_key|client_key)$", re.I)


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / p.decode() for p in out.split(b"\0") if p]


def test_no_tracked_file_holds_a_key_or_token() -> None:
    found = []
    files = _tracked()
    for path in files:
        if not path.is_file():
            continue
        data = path.read_bytes()
        found += [
            f"{path.relative_to(ROOT)}: {what}" for what, rx in SHAPES.items() if rx.search(data)
        ]
    assert len(files) > 100
    assert found == []


def _plain_secrets(node: object, where: str = "") -> list[str]:
    """Keys that name a secret but hold a literal string."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{where}.{k}" if where else str(k)
            if SECRET_KEYS.search(str(k)) and isinstance(v, str):
                out.append(here)
            out += _plain_secrets(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _plain_secrets(v, f"{where}[{i}]")
    return out


def test_configurations_name_their_secrets_instead_of_holding_them() -> None:
    configs = [
        p
        for p in _tracked()
        if p.suffix in (".yaml", ".yml") and p.is_file() and "sources" in p.read_text()
    ]
    assert configs, "no creditor configuration found"
    for path in configs:
        plain = _plain_secrets(yaml.safe_load(path.read_text()))
        assert plain == [], f"{path.relative_to(ROOT)} holds secrets in the clear: {plain}"


def test_the_shapes_catch_what_they_name() -> None:
    """Built here at run time, so this file itself holds none of them."""
    samples = {
        "private key": b"-----BEGIN " + b"OPENSSH PRIVATE KEY-----",
        "SendGrid API key": b"SG." + b"a1" * 11 + b"." + b"B" * 43,
        "MessageBird live key": b"key live_" + b"x" * 25 + b" end",
        "GitHub token": b" ghp_" + b"Z" * 36 + b" ",
        "AWS access key": b" AKIA" + b"Q" * 16 + b" ",
        "Salesforce session id": b" 00D" + b"a" * 12 + b"!" + b"b" * 60,
        "JWT": b" eyJ" + b"h" * 12 + b".eyJ" + b"p" * 12 + b"." + b"s" * 30,
    }
    assert set(samples) == set(SHAPES)
    for what, sample in samples.items():
        assert SHAPES[what].search(sample), what
