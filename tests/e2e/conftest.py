from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.demo import seed
from transforms.contact_window import AMS

TODAY = dt.date(2026, 11, 24)  # a Tuesday
MORNING = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("template")
    seed(d, 160, TODAY)
    return d


@pytest.fixture
def demo_dir(seeded_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a seeded demo creditor (config paths are rewritten to the copy)."""
    d = tmp_path / "demo"
    shutil.copytree(seeded_template, d)
    cfg = d / "creditor.yaml"
    cfg.write_text(cfg.read_text().replace(str(seeded_template), str(d)))
    return d
