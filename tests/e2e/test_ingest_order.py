"""The ingest subflow through Prefect: a source's entities are read one after the other,
and one that fails does not keep the next from being read."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flows import stages
from flows.context import make_ctx
from flows.cycle import ingest

from .conftest import MORNING

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_sources_entities_run_in_turn_past_a_failure(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(str(demo_dir / "creditor.yaml"), MORNING)
    real = stages.ingest_entity
    started: dict[str, float] = {}
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def timed(c: Any, source: str, entity: str) -> dict[str, Any]:
        with lock:
            running.append(entity)
            if len(running) > 1:
                overlaps.append(tuple(running))
        started[entity] = time.monotonic()
        try:
            time.sleep(0.5)  # long enough for entities run side by side to meet
            if entity == "debtors":
                raise ValueError("export unreadable")  # not retriable: fails at once
            return real(c, source, entity)
        finally:
            with lock:
                running.remove(entity)

    monkeypatch.setattr(stages, "ingest_entity", timed)
    state = ingest(ctx, return_state=True)

    assert state.is_failed()  # the failed entity fails the stage, loudly
    entities = [e for e in stages.ENTITIES if e in ctx.cfg.reader_sources()["erp"].entities]
    assert entities[0] == "debtors" and len(entities) > 1
    assert sorted(started) == sorted(entities)  # the later ones were still read
    assert sorted(started, key=started.__getitem__) == entities
    assert overlaps == []  # never two at once
